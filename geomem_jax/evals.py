"""Evaluation of one in-weights sequence model, at module level so that each metric has one
definition that is testable on hand-made parameters.

Every function takes a `Net`: the model's hidden states and its unembedding as two pure
functions, so that logits are computed only where they are read: at the decode position
in greedy decoding, at the scored positions of teacher-forced paths, and at the query
position of the edge queries (once per node, not once per directed edge).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from geomem_jax import metric_names as names

NEG_INF = -1e9
LOGIT_MARGIN_MAX_NODES = 1024  # an N x N logit matrix (4 MiB) and an SVD of E per experiment and evaluation
TOPK_CAP = 16  # recall thresholds by top_k up to this out-degree; nodes above it sort their row


class Net(NamedTuple):
    """hidden(params, tokens_BxT) -> h_BxTxD (deterministic); logits(params, h_xD, vocab_mask_V)
    -> float32 logits_xV with absent tokens at NEG_INF; cached(params, tokens_BxT, cache, start)
    -> (h_BxTxD, cache) for models that can attend to cached positions (None for the others)."""

    hidden: Callable
    logits: Callable
    cached: Callable | None = None


def masked(logits_xV, vocab_mask_V):
    return jnp.where(vocab_mask_V, logits_xV, NEG_INF)


def map_rows(fn, arrays: tuple, chunk: int):
    """fn(*chunks) over row chunks of `arrays` (same leading size; the last chunk padded) via
    lax.map: bounded memory, and fn sees a whole chunk (a prefix shared by its rows runs once)."""
    rows = arrays[0].shape[0]
    chunk = max(1, min(chunk, rows))
    n_chunks = -(-rows // chunk)
    pad = n_chunks * chunk - rows
    shaped = tuple(jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape((n_chunks, chunk) + a.shape[1:])
                   for a in arrays)
    out = jax.lax.map(lambda xs: fn(*xs), shaped)
    return jax.tree_util.tree_map(lambda o: o.reshape((n_chunks * chunk,) + o.shape[2:])[:rows], out)


def last_hidden(net: Net, params, tokens_BxT, shared: int = 0):
    """Hidden state at the last position; the first `shared` tokens (equal in every row, e.g. the
    edge query's [EDGE]) run once for all rows when the model can attend to a cache."""
    if shared and net.cached is not None and tokens_BxT.shape[1] > shared:
        _, cache = net.cached(params, tokens_BxT[:1, :shared], None, 0)
        return net.cached(params, tokens_BxT[:, shared:], cache, shared)[0][:, -1]
    return net.hidden(params, tokens_BxT)[:, -1]


def nll(logits_xV, targets_x):
    """Per-position negative log-likelihood of the targets."""
    logp_xV = jax.nn.log_softmax(logits_xV, axis=-1)
    return -jnp.take_along_axis(logp_xV, targets_x[..., None], axis=-1)[..., 0]


# ----------------------------------------------------------------------------- paths


def greedy_decode(net: Net, params, prefix_QxP, target_len: int, filler_id, vocab_mask_V, teacherless: bool):
    """Greedy decoding of `target_len` tokens after each prefix, unembedded at the decoded position
    only. With a cache: the prefix runs once, then one token per step; otherwise one full
    forward pass (fixed shapes) per decoded token."""
    q, p = prefix_QxP.shape
    next_token = lambda h_QxD: jnp.argmax(net.logits(params, h_QxD, vocab_mask_V), axis=-1).astype(jnp.int32)
    if net.cached is not None:
        h_QxPxD, cache = net.cached(params, prefix_QxP, None, 0)
        out = [next_token(h_QxPxD[:, -1])]
        for j in range(1, target_len):  # static and short: unrolled, the cache grows by one position
            fed_Q = jnp.full((q,), filler_id, jnp.int32) if teacherless else out[-1]
            h_Qx1xD, cache = net.cached(params, fed_Q[:, None], cache, p + j - 1)
            out.append(next_token(h_Qx1xD[:, 0]))
        return jnp.stack(out, axis=1)
    seq_QxT = jnp.concatenate([prefix_QxP, jnp.full((q, target_len - 1), filler_id, jnp.int32)], axis=1)

    def body(j, carry):
        seq_QxT, out_QxL = carry
        tok_Q = next_token(jax.lax.dynamic_index_in_dim(net.hidden(params, seq_QxT), p - 1 + j, axis=1, keepdims=False))
        out_QxL = out_QxL.at[:, j].set(tok_Q)
        if not teacherless:
            pos = jnp.minimum(p + j, seq_QxT.shape[1] - 1)
            written = jax.lax.dynamic_update_slice(seq_QxT, tok_Q[:, None], (0, pos))
            seq_QxT = jnp.where(j < target_len - 1, written, seq_QxT)
        return seq_QxT, out_QxL

    _, out_QxL = jax.lax.fori_loop(0, target_len, body, (seq_QxT, jnp.zeros((q, target_len), jnp.int32)))
    return out_QxL


def forced_metrics(net: Net, params, inputs_QxT, targets_QxT, weights_QxT, row_mask_Q, first: int,
                   count: int, vocab_mask_V, chunk: int) -> dict:
    """Teacher-forced loss, token accuracy and exact match on the scored positions
    first .. first+count-1 (the only ones unembedded)."""

    def per_chunk(inputs_CxT, targets_CxT, weights_CxT):
        h_CxLxD = net.hidden(params, inputs_CxT)[:, first:first + count]
        logits_CxLxV = net.logits(params, h_CxLxD, vocab_mask_V)
        targets_CxL, weights_CxL = targets_CxT[:, first:first + count], weights_CxT[:, first:first + count]
        hit_CxL = jnp.argmax(logits_CxLxV, axis=-1) == targets_CxL
        scored_CxL = weights_CxL > 0
        return (jnp.sum(nll(logits_CxLxV, targets_CxL) * weights_CxL, axis=1), jnp.sum(weights_CxL, axis=1),
                jnp.sum(hit_CxL & scored_CxL, axis=1), jnp.all(hit_CxL | ~scored_CxL, axis=1))

    nll_Q, wsum_Q, hits_Q, exact_Q = map_rows(per_chunk, (inputs_QxT, targets_QxT, weights_QxT), chunk)
    scored = jnp.maximum(jnp.sum(jnp.where(row_mask_Q, wsum_Q, 0)), 1)
    return {
        names.FORCED_LOSS: jnp.sum(jnp.where(row_mask_Q, nll_Q, 0.0)) / scored,
        names.FORCED_ACCURACY: jnp.sum(jnp.where(row_mask_Q, hits_Q, 0)) / scored,
        names.FORCED_EXACT_MATCH: jnp.sum(row_mask_Q & exact_Q) / jnp.maximum(jnp.sum(row_mask_Q), 1),
    }


def path_metrics(gen_QxL, data, first_index, root_is_given: bool, reverse_path: bool) -> dict:
    """Exact match, first decision, per-position and child accuracy of decoded paths.

    root_is_given: the decoded target starts after the root (root in the prefix, or hardest token),
    so the first decoded node's previous node is the root.
    """
    targets_QxL, tmask_QxL, row_mask_Q = data["test_targets"], data["test_target_mask"], data["test_row_mask"]
    correct_QxL = (gen_QxL == targets_QxL) | ~tmask_QxL
    n_rows = jnp.maximum(jnp.sum(row_mask_Q), 1)
    mean_rows = lambda x: jnp.sum(jnp.where(row_mask_Q, x, 0.0)) / n_rows
    first_Q = jnp.take_along_axis(gen_QxL == targets_QxL, first_index[None, None], axis=1)[:, 0]
    scored_QxL = tmask_QxL & row_mask_Q[:, None]
    count_L = jnp.sum(scored_QxL, axis=0)  # 0 past this graph's path length: reported as None
    per_pos_L = jnp.where(count_L > 0, jnp.sum((gen_QxL == targets_QxL) & scored_QxL, axis=0)
                          / jnp.maximum(count_L, 1), jnp.nan)
    q, target_len = gen_QxL.shape
    first_prev = data["root"] if root_is_given else -1
    prev_QxL = jnp.concatenate([jnp.full((q, 1), first_prev, jnp.int32), gen_QxL[:, :-1]], axis=1)
    # a special token has no parent (a plain take would clip it onto a real node)
    parent_of = lambda x: jnp.where((x >= 0) & (x < data["num_nodes"]), jnp.take(data["parent"], x, mode="clip"), -2)
    child_ok_QxL = parent_of(prev_QxL) == gen_QxL if reverse_path else parent_of(gen_QxL) == prev_QxL
    has_prev_L = jnp.arange(target_len) >= (0 if root_is_given else 1)
    child_mask_QxL = scored_QxL & has_prev_L[None, :]
    return {
        names.EXACT_MATCH: mean_rows(jnp.all(correct_QxL, axis=1)),
        names.FIRST_TOKEN: mean_rows(first_Q),
        names.TOKEN: per_pos_L,
        names.CHILD: jnp.sum(child_ok_QxL & child_mask_QxL) / jnp.maximum(jnp.sum(child_mask_QxL), 1),
    }


# ----------------------------------------------------------------------------- edges


def edge_recall(net: Net, params, data, chunk: int, margin_nodes: int = 0, shared: int = 0):
    """Top-k recall@degree: the share of u's true successors among its top-k_u next tokens,
    averaged over the nodes with a successor; one forward pass and one logits row per node.

    A successor v is among the top k of u's row exactly when its logit is at least the row's
    k-th largest value (ties included), so both are read from the same row: no successor ranked
    exactly k-th is lost to float noise. Rows of nodes with at most TOPK_CAP successors take
    that value from lax.top_k; the few nodes with more (a star's root) sort their row.
    With margin_nodes > 0 also returns the first margin_nodes columns of every row (N x margin_nodes).
    shared: leading tokens common to every edge query (the [EDGE] task token), run once per chunk.
    """
    degree_N, succ_NxK = data["out_degree"], data["succ_table"]
    k_cap = succ_NxK.shape[1]

    def per_chunk(prefix_CxPe, degree_C, succ_CxK):
        logits_CxV = net.logits(params, last_hidden(net, params, prefix_CxPe, shared), data["vocab_mask"])
        kth_C = jnp.take_along_axis(jax.lax.top_k(logits_CxV, k_cap)[0],
                                    jnp.clip(degree_C - 1, 0, k_cap - 1)[:, None], axis=1)[:, 0]
        own_CxK = jnp.take_along_axis(logits_CxV, jnp.maximum(succ_CxK, 0), axis=1)
        valid_CxK = (jnp.arange(k_cap)[None, :] < degree_C[:, None]) & (degree_C[:, None] <= k_cap)
        hits_C = jnp.sum(valid_CxK & (own_CxK >= kth_C[:, None]), axis=1)
        return (hits_C, logits_CxV[:, :margin_nodes]) if margin_nodes else (hits_C,)

    out = map_rows(per_chunk, (data["edge_prefix"], degree_N, succ_NxK), chunk)
    hits_N = out[0].astype(jnp.float32)
    if data["hub_nodes"].shape[0]:  # nodes with more than TOPK_CAP successors
        hub_H, hub_succ_HxM = data["hub_nodes"], data["hub_succ"]
        logits_HxV = net.logits(params, last_hidden(net, params, data["edge_prefix"][hub_H], shared),
                                data["vocab_mask"])
        deg_H = degree_N[hub_H]
        kth_H = jnp.take_along_axis(-jnp.sort(-logits_HxV, axis=1), jnp.maximum(deg_H - 1, 0)[:, None], axis=1)[:, 0]
        own_HxM = jnp.take_along_axis(logits_HxV, jnp.maximum(hub_succ_HxM, 0), axis=1)
        hub_hits_H = jnp.sum((hub_succ_HxM >= 0) & (own_HxM >= kth_H[:, None]), axis=1)
        hits_N = hits_N.at[hub_H].add(jnp.where(deg_H > k_cap, hub_hits_H, 0).astype(jnp.float32))
    has_N = (degree_N > 0) & data["node_mask"]
    recall = jnp.sum(jnp.where(has_N, hits_N / jnp.maximum(degree_N, 1), 0.0)) / jnp.maximum(jnp.sum(has_N), 1)
    return (recall, out[1]) if margin_nodes else (recall, None)


def geometric_level(table_VxD, data):
    """Mean cos(E_u, E_v) over the directed training edges (u != v), tracked during training."""
    u_KxD, v_KxD = table_VxD[data["recall_src"]], table_VxD[data["recall_dst"]]
    cos_K = jnp.sum(u_KxD * v_KxD, -1) / jnp.maximum(
        jnp.linalg.norm(u_KxD, axis=-1) * jnp.linalg.norm(v_KxD, axis=-1), 1e-12)
    mask_K = data["recall_mask"] & (data["recall_src"] != data["recall_dst"])
    return jnp.sum(jnp.where(mask_K, cos_K, 0.0)) / jnp.maximum(jnp.sum(mask_K), 1)


def leaf_firsthop_gap(table_VxD, data):
    """Mean off-diagonal minus mean diagonal of the Q x Q cosine distance between test path i's leaf
    and path j's first hop (analysis.geometry's leaf_firsthop_gap, tracked during training;
    positive = each leaf sits by its own arm's first node). nan with fewer than two paths."""
    ids_Qx2, valid_Q = data["leaf_hop"], data["leaf_hop_mask"]
    unit = lambda x_QxD: x_QxD / jnp.maximum(jnp.linalg.norm(x_QxD, axis=-1, keepdims=True), 1e-12)
    dist_QxQ = 1.0 - unit(table_VxD[ids_Qx2[:, 0]]) @ unit(table_VxD[ids_Qx2[:, 1]]).T
    pair_QxQ = valid_Q[:, None] & valid_Q[None, :]
    diag_QxQ = pair_QxQ & jnp.eye(valid_Q.shape[0], dtype=bool)
    num = jnp.sum(valid_Q)
    off_mean = jnp.sum(jnp.where(pair_QxQ & ~diag_QxQ, dist_QxQ, 0.0)) / jnp.maximum(num * num - num, 1)
    gap = off_mean - jnp.sum(jnp.where(diag_QxQ, dist_QxQ, 0.0)) / jnp.maximum(num, 1)
    return jnp.where(num >= 2, gap, jnp.nan)


def spectral_alignment(table_NxD, eigvecs_NxK, node_mask_N, modes_K):
    """analysis.spectral's spectral_alignment, tracked during training: Σ_{i in modes} p_i² / (‖E‖_F² − p_0²),
    p_i = ‖Eᵀ e_i‖₂, E the node rows of node_mask_N, e_0 = column 0 (the trivial mode, never counted).

    Padded rows and columns of eigvecs_NxK are zero; the denominator is ‖E − e_0 e_0ᵀ E‖_F², the same
    number without float32 cancellation when E is mostly trivial. HIGHEST precision: a TF32 product
    would cost 3 digits on a GPU. nan when E has no energy outside the trivial mode, as the analysis.
    """
    dot = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
    E_NxD = jnp.where(node_mask_N[:, None], table_NxD, 0.0).astype(jnp.float32)
    proj_KxD = dot(eigvecs_NxK.T, E_NxD)
    energy_K = jnp.sum(proj_KxD * proj_KxD, axis=1)
    rest_NxD = E_NxD - eigvecs_NxK[:, :1] * proj_KxD[:1]
    nontrivial = jnp.sum(rest_NxD * rest_NxD)
    total = jnp.sum(E_NxD * E_NxD)
    aligned = jnp.sum(jnp.where(modes_K, energy_K, 0.0))
    return jnp.where(nontrivial > 1e-12 * total, aligned / jnp.maximum(nontrivial, 1e-30), jnp.nan)


def logit_margin(E_NxD, L_NxN, data, rank_tol: float = 1e-6):
    """Geometric margin of any tied-embedding model, from its own edge logits (analysis.geometry's margin, generalised).

    L_uv is the model's logit of node v after the edge query of node u. With E = U S Vᵀ, the
    bilinear map that reproduces L on the nodes is W = E⁺ L (Eᵀ)⁺, and its spectral part
    W' = V diag(λ) Vᵀ, λ_k = (Vᵀ W V)_kk, gives E W' Eᵀ = Σ_k (u_kᵀ L u_k) u_k u_kᵀ (the part
    of L diagonal in E's own singular basis; k over singular values above rank_tol·s_max).
    For an E W Eᵀ model this is exactly `analysis.geometry.geometric_margin`. Neighbours are the
    undirected training edges; self counts as a neighbour only when self-edges are trained.
    Returns (margin, margin_top1) averaged over the nodes with a neighbour and a non-neighbour.
    """
    n = E_NxD.shape[0]
    valid_N = data["node_mask"]
    both_NxN = valid_N[:, None] & valid_N[None, :]
    L_NxN = jnp.where(both_NxN, L_NxN, 0.0)
    u_NxR, s_R, _ = jnp.linalg.svd(jnp.where(valid_N[:, None], E_NxD, 0.0), full_matrices=False)
    keep_R = s_R > rank_tol * s_R[0]
    lam_R = jnp.where(keep_R, jnp.einsum("nr,nm,mr->r", u_NxR, L_NxN, u_NxR), 0.0)
    geo_NxN = (u_NxR * lam_R) @ u_NxR.T
    adj_NxN = jnp.zeros((n, n), jnp.int32).at[data["recall_src"], data["recall_dst"]].add(
        data["recall_mask"].astype(jnp.int32)) > 0
    self_NxN = jnp.eye(n, dtype=bool)
    nbr_NxN = (adj_NxN | adj_NxN.T) & both_NxN  # the diagonal stays only for trained self-edges
    non_NxN = both_NxN & ~nbr_NxN & ~self_NxN
    best_nbr_N = jnp.max(jnp.where(nbr_NxN, geo_NxN, -jnp.inf), axis=1)
    best_non_N = jnp.max(jnp.where(non_NxN, geo_NxN, -jnp.inf), axis=1)
    scored_N = valid_N & jnp.any(nbr_NxN, axis=1) & jnp.any(non_NxN, axis=1)
    count = jnp.maximum(jnp.sum(scored_N), 1)
    margin = jnp.sum(jnp.where(scored_N, best_nbr_N - best_non_N, 0.0)) / count
    top1 = jnp.sum(scored_N & (best_nbr_N >= best_non_N)) / count
    return margin, top1
