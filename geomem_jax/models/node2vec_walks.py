"""The classic Node2Vec baseline's data path (objective="sgns", see node2vec.py): second-order
walks sampled inside jit, skip-gram pairs, negative sampling and the SGNS loss."""

import jax
import jax.numpy as jnp


def sample_walks(key, nbrs_NxDmax, deg_N, node_mask_N, walks_per_node: int, walk_length: int,
                 p: float = 1.0, q: float = 1.0):
    """Second-order node2vec walks from every valid node, sampled in jit.

    Returns walks_WxL (int32, W = N_pad·walks_per_node, start node = row // walks_per_node)
    and valid_W (start is a real node with at least one neighbour). Walks from
    invalid starts stay at their start.
    """
    n_pad, _ = nbrs_NxDmax.shape
    start_W = jnp.repeat(jnp.arange(n_pad, dtype=jnp.int32), walks_per_node)
    valid_W = node_mask_N[start_W] & (deg_N[start_W] > 0)
    log_p, log_q = -jnp.log(p), -jnp.log(q)
    if walk_length <= 1:
        return start_W[:, None], valid_W

    def hop(k, cand_WxD, logw_WxD, cur_W):
        # one batched categorical (row-wise Gumbel-max) instead of a key per walk: much cheaper to compile
        logw_WxD = jnp.where(cand_WxD >= 0, logw_WxD, -jnp.inf)
        pick_W = jax.random.categorical(k, logw_WxD, axis=-1)
        nxt_W = jnp.take_along_axis(cand_WxD, pick_W[:, None], axis=1)[:, 0]
        return jnp.where(cand_WxD[:, 0] >= 0, nxt_W, cur_W)  # no neighbours: stay

    key0, key_rest = jax.random.split(key)
    cand0_WxD = nbrs_NxDmax[start_W]
    second_W = hop(key0, cand0_WxD, jnp.zeros(cand0_WxD.shape), start_W)  # first hop: uniform

    def body(carry, k):
        prev_W, cur_W = carry
        cand_WxD = nbrs_NxDmax[cur_W]
        prev_nbrs_WxD = nbrs_NxDmax[prev_W]
        # membership of each candidate in prev's (−1 padded) neighbour row
        is_nbr_WxD = jnp.any((cand_WxD[:, :, None] == prev_nbrs_WxD[:, None, :])
                             & (prev_nbrs_WxD[:, None, :] >= 0), axis=-1)
        logw_WxD = jnp.where(cand_WxD == prev_W[:, None], log_p, jnp.where(is_nbr_WxD, 0.0, log_q))
        nxt_W = hop(k, cand_WxD, logw_WxD, cur_W)
        return (cur_W, nxt_W), nxt_W

    cols = [start_W[:, None], second_W[:, None]]
    if walk_length > 2:
        _, tail_RxW = jax.lax.scan(body, (start_W, second_W), jax.random.split(key_rest, walk_length - 2))
        cols.append(tail_RxW.T)
    return jnp.concatenate(cols, axis=1), valid_W


def skipgram_pairs(walks_WxL, valid_W, window: int):
    """(center, context, valid) flat arrays of all in-window ordered pairs of every walk."""
    length = walks_WxL.shape[1]
    centers, contexts, valids = [], [], []
    for o in range(1, min(window, length - 1) + 1):
        a, b = walks_WxL[:, :-o], walks_WxL[:, o:]
        v = jnp.broadcast_to(valid_W[:, None], a.shape)
        centers += [a.ravel(), b.ravel()]
        contexts += [b.ravel(), a.ravel()]
        valids += [v.ravel(), v.ravel()]
    return jnp.concatenate(centers), jnp.concatenate(contexts), jnp.concatenate(valids)


def negative_logits(deg_N, node_mask_N, neg_dist: str):
    """Log-weights of the negative-sampling distribution (−∞ on padded nodes)."""
    if neg_dist == "unigram":
        w = jnp.power(deg_N.astype(jnp.float32), 0.75)
    else:
        w = jnp.ones(deg_N.shape, jnp.float32)
    return jnp.where(node_mask_N & (w > 0), jnp.log(jnp.maximum(w, 1e-30)), -jnp.inf)


def sgns_loss(params, center_P, context_P, valid_P, neg_PxK):
    """Mean over valid pairs of −log σ(v_c·u_o) − Σ_k log σ(−v_c·u_{n_k})."""
    v_PxM = params["V"][center_P]
    pos_P = jnp.sum(v_PxM * params["U"][context_P], axis=-1)
    neg_PxK_scores = jnp.einsum("pm,pkm->pk", v_PxM, params["U"][neg_PxK])
    per_pair = -jax.nn.log_sigmoid(pos_P) - jnp.sum(jax.nn.log_sigmoid(-neg_PxK_scores), axis=-1)
    w = valid_P.astype(per_pair.dtype)
    return jnp.sum(per_pair * w) / jnp.maximum(jnp.sum(w), 1.0)
