"""In-weights training of sequence models: one pure program per experiment, vmapped over the sweep.

`make_train(cfg)` returns the Program (init / step / evaluate) of one experiment and
the stacked per-experiment inputs; `geomem_jax.loop.run` drives it in chunks.
Static structure (shapes, depth, vocabulary, steps, recipe) is closed over; the
seed key, lr, weight decay, init scale and dropout rate are traced, so a whole
sweep is one compiled program.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

from geomem_jax import config, graphs, sweep, tasks
from geomem_jax.errors import ConfigError
from geomem_jax.program import Program

NEG_INF = -1e9


# ----------------------------------------------------------------------------- model


def build_model(model_cfg, vocab_size: int, max_len: int):
    """The flax module of `model.family` with the config's static switches."""
    if model_cfg.family == "transformer":
        from geomem_jax.models.transformer import Transformer

        if model_cfg.width % model_cfg.heads:
            raise ConfigError("model.heads", model_cfg.heads, f"a divisor of model.width={model_cfg.width}")
        return Transformer(
            vocab_size=vocab_size, max_len=max_len, width=model_cfg.width, layers=model_cfg.layers,
            heads=model_cfg.heads, attention=model_cfg.attention, residual=model_cfg.residual,
            layernorm=model_cfg.layernorm, positions=model_cfg.positions, tied=model_cfg.tied,
            freeze_embeddings=model_cfg.freeze_embeddings, mlp_only=model_cfg.mlp_only,
            position_std=model_cfg.position_std, dtype=_dtype(model_cfg.dtype),
        )
    if model_cfg.family == "mamba":
        from geomem_jax.models.mamba import Mamba

        return Mamba(
            vocab_size=vocab_size, max_len=max_len, width=model_cfg.width, layers=model_cfg.layers,
            d_state=model_cfg.d_state, d_conv=model_cfg.d_conv, expand=model_cfg.expand,
            tied=model_cfg.tied, layernorm=model_cfg.layernorm, residual=model_cfg.residual,
            freeze_embeddings=model_cfg.freeze_embeddings, embed_std=1.0,  # scaled by init_scale later
        )
    raise ConfigError("model.family", model_cfg.family, f"one of {', '.join(config.MODEL_FAMILIES)}")


def _dtype(name: str):
    allowed = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
    if name not in allowed:
        raise ConfigError("model.dtype", name, "one of float32, bfloat16")
    return allowed[name]


def table_paths(model_cfg) -> dict:
    """Where the node tables live in the params tree (read by the analysis stage)."""
    if model_cfg.family == "mamba":
        embed, unembed = ("params", "embed", "embedding"), ("params", "unembed", "embedding")
    else:
        embed, unembed = ("params", "embed"), ("params", "unembed")
    bilinear = None
    if model_cfg.family == "transformer" and model_cfg.mlp_only and model_cfg.layers == 1:
        bilinear = ("params", "block0", "linear", "kernel")
    return {
        "embedding": list(embed),
        "output_embedding": None if model_cfg.tied else list(unembed),
        "bilinear": list(bilinear) if bilinear else None,
    }


# ----------------------------------------------------------------------------- optimiser


def lr_at(step, peak, total_steps: int, warmup_steps: int, schedule: str, final_fraction: float):
    """Linear warm-up to `peak`, then cosine decay to peak*final_fraction (or constant)."""
    step = jnp.asarray(step, jnp.float32)
    warm = jnp.minimum(1.0, (step + 1.0) / max(warmup_steps, 1))
    if schedule == "constant":
        decay = 1.0
    else:
        progress = jnp.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
        decay = final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    factor = jnp.where(step < warmup_steps, warm, decay) if warmup_steps > 0 else decay
    return peak * factor


def adamw(opt_cfg, lr, weight_decay):
    """AdamW as in the release (PyTorch semantics: decoupled decay scaled by lr, on all params)."""
    return optax.adamw(lr, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Dims:
    """Static shapes of one sweep (every experiment padded to these)."""

    vocab_size: int
    seq_len: int
    prefix_len: int
    target_len: int
    num_nodes: int
    has_paths: bool


def build_graphs(cfg) -> list:
    return [graphs.make_graph(g) for g in sweep.graph_configs(cfg)]


def build_data(cfg, graph_list, exps) -> tuple[dict, Dims]:
    """Stacked per-experiment token tables (leading axis S) and the sweep's static dims."""
    spec = tasks.task_spec_from_config(cfg.task)
    per_graph = [
        tasks.build_task_tables(g, spec, direction=cfg.graph.edges, self_edges=cfg.graph.self_edges)
        for g in graph_list
    ]
    stacked = tasks.stack_tables([per_graph[e.graph_index] for e in exps])._asdict()
    parents = [_parent_table(g) for g in graph_list]
    n_max = max(g.num_nodes for g in graph_list)
    stacked["parent_SxN"] = np.stack([tasks.pad_to(parents[e.graph_index], (n_max,), -1) for e in exps])
    stacked["root_S"] = np.array([graph_list[e.graph_index].root or 0 for e in exps], np.int32)
    stacked["first_index_S"] = np.array([_first_decision_index(spec, per_graph[e.graph_index]) for e in exps], np.int32)
    dims = Dims(
        vocab_size=stacked["vocab_mask_SxV"].shape[1],
        seq_len=stacked["train_inputs_SxRxT"].shape[2],
        prefix_len=stacked["test_prefix_SxQxP"].shape[2],
        target_len=stacked["test_targets_SxQxL"].shape[2],
        num_nodes=n_max,
        has_paths=all(g.has_paths for g in graph_list),
    )
    return stacked, dims


def _parent_table(graph) -> np.ndarray:
    """parent[v] = the node before v on the root->leaf paths (-1 for the root / non-trees)."""
    parent = np.full(graph.num_nodes, -1, np.int32)
    if graph.root is not None:
        fwd = graph.forward_edges_Ex2
        parent[fwd[:, 1]] = fwd[:, 0]
    return parent


def _first_decision_index(spec, tables) -> int:
    """Index of n1 (the node after the root) in the decoded target."""
    if tables.path_length < 2:
        return 0
    if spec.target == "hardest_token" or spec.root_in_prefix:
        return tables.target_length - 1 if spec.reverse_path else 0
    return tables.target_length - 2 if spec.reverse_path else 1


# ----------------------------------------------------------------------------- program


def _masked(logits_xV, vocab_mask_V):
    return jnp.where(vocab_mask_V, logits_xV, NEG_INF)


def _weighted_ce(logits_BxTxV, targets_BxT, weights_BxT, vocab_mask_V):
    logp = jax.nn.log_softmax(_masked(logits_BxTxV, vocab_mask_V), axis=-1)
    nll_BxT = -jnp.take_along_axis(logp, targets_BxT[..., None], axis=-1)[..., 0]
    return jnp.sum(nll_BxT * weights_BxT) / jnp.maximum(jnp.sum(weights_BxT), 1.0)


def _map_rows(fn, arrays: tuple, chunk: int):
    """fn over row chunks of `arrays` (same leading size) via lax.map; bounded memory."""
    rows = arrays[0].shape[0]
    chunk = max(1, min(chunk, rows))
    n_chunks = -(-rows // chunk)
    pad = n_chunks * chunk - rows
    padded = tuple(jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in arrays)
    shaped = tuple(a.reshape((n_chunks, chunk) + a.shape[1:]) for a in padded)
    out = jax.lax.map(lambda xs: fn(*xs), shaped)
    return jax.tree_util.tree_map(lambda o: o.reshape((n_chunks * chunk,) + o.shape[2:])[:rows], out)


def make_sequence_program(cfg, model, dims: Dims, use_dropout: bool) -> Program:
    """init / step / evaluate of one in-weights experiment (Transformer or Mamba)."""
    spec = tasks.task_spec_from_config(cfg.task)
    recipe, steps, batch = cfg.train.recipe, cfg.train.steps, cfg.train.batch_size
    stage1 = cfg.train.stage1_steps if recipe == "staged" else 0
    emb_paths = table_paths(cfg.model)
    frozen_key = emb_paths["embedding"][1] if cfg.model.freeze_embeddings else None  # top-level params key
    node_chunk, row_chunk = cfg.eval.node_chunk, cfg.eval.row_chunk

    def apply(params, tokens, hp=None, key=None):
        if key is None:
            return model.apply({"params": params}, tokens, deterministic=True)
        return model.apply(
            {"params": params}, tokens, dropout_rate=hp["dropout"], deterministic=False, rngs={"dropout": key}
        )

    def init(key, hp, data):
        k_param, k_run = jax.random.split(key)
        dummy = jnp.zeros((1, dims.seq_len), jnp.int32)
        params = model.init({"params": k_param}, dummy)["params"]
        params = _scale_tables(params, emb_paths, hp["init_scale"])
        opt_state = adamw(cfg.opt, 0.0, 0.0).init(params)
        return {
            "params": params, "opt_state": opt_state, "key": k_run, "step": jnp.zeros((), jnp.int32),
            "diverged_at": jnp.full((), -1, jnp.int32),
        }

    def sample(key, prefix: str, rows_key: str, data):
        if cfg.train.full_batch:
            return data[f"{prefix}_inputs"], data[f"{prefix}_targets"], data[f"{prefix}_weights"]
        idx = jax.random.randint(key, (batch,), 0, jnp.maximum(data[rows_key], 1))
        return tuple(jnp.take(data[f"{prefix}_{part}"], idx, axis=0) for part in ("inputs", "targets", "weights"))

    def batch_at(key, step, data):
        if recipe == "mixed":
            return sample(key, "train", "train_rows", data)
        if recipe == "edges":  # edge memorization only (the tiny-graph study)
            return sample(key, "edge", "edge_rows", data)
        edge_b = sample(key, "edge", "edge_rows", data)
        path_b = sample(key, "train_path", "train_path_rows", data)
        in_stage2 = step >= stage1
        return tuple(jnp.where(in_stage2, p, e) for e, p in zip(edge_b, path_b))

    def lr_of(step, hp):
        if recipe != "staged":
            return lr_at(step, hp["lr"], steps, cfg.opt.warmup_steps, cfg.opt.schedule, cfg.opt.final_lr_fraction)
        lr1 = lr_at(step, cfg.train.stage1_lr, stage1, cfg.opt.warmup_steps, cfg.opt.schedule, cfg.opt.final_lr_fraction)
        lr2 = lr_at(step - stage1, hp["lr"], steps - stage1, cfg.opt.warmup_steps, cfg.opt.schedule,
                    cfg.opt.final_lr_fraction)
        return jnp.where(step >= stage1, lr2, lr1)

    def step_fn(state, hp, data):
        key, k_batch, k_drop = jax.random.split(state["key"], 3)
        step = state["step"]
        inputs, targets, weights = batch_at(k_batch, step, data)

        def loss_fn(params):
            logits = apply(params, inputs, hp, k_drop if use_dropout else None)
            return _weighted_ce(logits, targets, weights, data["vocab_mask"])

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        opt_state = state["opt_state"]
        if recipe == "staged":  # stage 2 starts with a fresh optimiser
            opt_state = jax.tree_util.tree_map(lambda x: jnp.where(step == stage1, jnp.zeros_like(x), x), opt_state)
        opt = adamw(cfg.opt, lr_of(step, hp), hp["weight_decay"])
        updates, opt_state = opt.update(grads, opt_state, state["params"])
        if frozen_key is not None:
            updates = {**updates, frozen_key: jax.tree_util.tree_map(jnp.zeros_like, updates[frozen_key])}
        params = optax.apply_updates(state["params"], updates)
        return _guarded_update(state, params, opt_state, key, loss), {"train/loss": loss}

    def last_logits(params, tokens_BxT, vocab_mask_V):
        return _masked(apply(params, tokens_BxT)[:, -1], vocab_mask_V)

    def greedy(params, prefix_QxP, data):
        """Greedy decoding of target_len tokens after each prefix (fixed shapes, no cache)."""
        q = prefix_QxP.shape[0]
        filler = tasks.special_id(0, "$") + data["num_nodes"] if spec.teacherless else data["pad_id"]
        seq = jnp.concatenate([prefix_QxP, jnp.full((q, dims.target_len - 1), filler, jnp.int32)], axis=1)

        def body(j, carry):
            seq, out = carry
            logits = _masked(apply(params, seq)[:, dims.prefix_len - 1 + j], data["vocab_mask"])
            tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            out = out.at[:, j].set(tok)
            if not spec.teacherless:
                pos = jnp.minimum(dims.prefix_len + j, seq.shape[1] - 1)
                written = jax.lax.dynamic_update_slice(seq, tok[:, None], (0, pos))
                seq = jnp.where(j < dims.target_len - 1, written, seq)
            return seq, out

        _, out = jax.lax.fori_loop(0, dims.target_len, body, (seq, jnp.zeros((q, dims.target_len), jnp.int32)))
        return out

    def evaluate(state, hp, data):
        params = state["params"]
        metrics = {"diverged_at": state["diverged_at"]}
        if dims.has_paths:
            metrics.update(_path_metrics(params, data))
        metrics.update(_edge_recall(params, data))
        table_VxD = _leaf(params, emb_paths["embedding"])
        metrics["geometry/level"] = _geometric_level(table_VxD, data)
        if dims.num_nodes <= LOGIT_MARGIN_MAX_NODES:
            logits_NxV = _map_rows(lambda p: last_logits(params, p, data["vocab_mask"]), (data["edge_prefix"],),
                                   node_chunk)
            margin = logit_margin(table_VxD[:dims.num_nodes], logits_NxV[:, :dims.num_nodes], data)
            metrics["geometry/logit_margin"], metrics["geometry/logit_margin_top1"] = margin
        return metrics

    def _path_metrics(params, data):
        row_mask = data["test_row_mask"]
        gen = _map_rows(lambda p: greedy(params, p, data), (data["test_prefix"],), row_chunk)
        tmask = data["test_target_mask"]
        correct = (gen == data["test_targets"]) | ~tmask
        n_rows = jnp.maximum(jnp.sum(row_mask), 1)
        mean_rows = lambda x: jnp.sum(jnp.where(row_mask, x, 0.0)) / n_rows
        first = jnp.take_along_axis(gen == data["test_targets"], data["first_index"][None, None], axis=1)[:, 0]
        scored = tmask & row_mask[:, None]
        count_L = jnp.sum(scored, axis=0)  # 0 past this graph's path length: reported as None
        per_pos = jnp.where(count_L > 0, jnp.sum((gen == data["test_targets"]) & scored, axis=0) / jnp.maximum(count_L, 1), jnp.nan)
        prev = _previous_tokens(gen, data)
        # a special token has no parent (a plain take would clip it onto a real node)
        parent_of = lambda x: jnp.where((x >= 0) & (x < data["num_nodes"]), jnp.take(data["parent"], x, mode="clip"), -2)
        if spec.reverse_path:
            child_ok = parent_of(prev) == gen
        else:
            child_ok = parent_of(gen) == prev
        child_mask = tmask & row_mask[:, None] & _has_previous(dims.target_len)
        child = jnp.sum(child_ok & child_mask) / jnp.maximum(jnp.sum(child_mask), 1)
        forced = _forced_metrics(params, data)
        return {
            "test/exact_match": mean_rows(jnp.all(correct, axis=1)),
            "test/first_token": mean_rows(first),
            "test/token": per_pos,
            "test/child": child,
            **forced,
        }

    def _previous_tokens(gen_QxL, data):
        if spec.root_in_prefix or spec.target == "hardest_token":
            first_prev = jnp.full((gen_QxL.shape[0], 1), data["root"], jnp.int32)
        else:
            first_prev = jnp.full((gen_QxL.shape[0], 1), -1, jnp.int32)
        return jnp.concatenate([first_prev, gen_QxL[:, :-1]], axis=1)

    def _has_previous(target_len):
        starts_at = 0 if (spec.root_in_prefix or spec.target == "hardest_token") else 1
        return (jnp.arange(target_len) >= starts_at)[None, :]

    def _forced_metrics(params, data):
        def per_chunk(inputs, targets, weights):
            logits = _masked(apply(params, inputs), data["vocab_mask"])
            logp = jax.nn.log_softmax(logits, axis=-1)
            nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
            hit = jnp.argmax(logits, axis=-1) == targets
            scored = weights > 0
            return (
                jnp.sum(nll * weights, axis=1), jnp.sum(weights, axis=1),
                jnp.sum(hit & scored, axis=1), jnp.all(hit | ~scored, axis=1),
            )

        nll, wsum, hits, exact = _map_rows(
            per_chunk, (data["test_path_inputs"], data["test_path_targets"], data["test_path_weights"]), row_chunk
        )
        rows = data["test_row_mask"]
        return {
            "test/forced_loss": jnp.sum(jnp.where(rows, nll, 0.0)) / jnp.maximum(jnp.sum(jnp.where(rows, wsum, 0)), 1),
            "test/forced_accuracy": jnp.sum(jnp.where(rows, hits, 0)) / jnp.maximum(jnp.sum(jnp.where(rows, wsum, 0)), 1),
            "test/forced_exact_match": jnp.sum(rows & exact) / jnp.maximum(jnp.sum(rows), 1),
        }

    def _edge_recall(params, data):
        """Top-k recall@degree: share of u's true successors among its top-k_u next tokens."""
        degree_N = data["out_degree"]

        def pair_hits(src_C, dst_C):
            # rank of the true successor within u's own logits row: one forward pass decides
            # each hit, so a successor ranked exactly k-th is never lost to float noise.
            logits = last_logits(params, jnp.take(data["edge_prefix"], src_C, axis=0), data["vocab_mask"])
            own = jnp.take_along_axis(logits, dst_C[:, None], axis=1)
            return jnp.sum(logits > own, axis=1) < jnp.take(degree_N, src_C)

        src, dst, pmask = data["recall_src"], data["recall_dst"], data["recall_mask"]
        hit_K = _map_rows(pair_hits, (src, dst), node_chunk) & pmask
        hits_N = jax.ops.segment_sum(hit_K.astype(jnp.float32), src, num_segments=dims.num_nodes)
        has = (degree_N > 0) & data["node_mask"]
        recall = jnp.sum(jnp.where(has, hits_N / jnp.maximum(degree_N, 1), 0.0)) / jnp.maximum(jnp.sum(has), 1)
        return {"edge/recall_at_degree": recall}

    return Program(init=init, step=step_fn, evaluate=evaluate)


def _guarded_update(state, params, opt_state, key, loss):
    """The next state, unless the loss is not finite: then this experiment freezes where it was
    and records the step it diverged at (the other experiments of the sweep go on)."""
    ok = jnp.isfinite(loss) & (state["diverged_at"] < 0)
    keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)
    return {
        "params": keep(params, state["params"]),
        "opt_state": keep(opt_state, state["opt_state"]),
        "key": key,
        "step": state["step"] + 1,
        "diverged_at": jnp.where((state["diverged_at"] < 0) & ~jnp.isfinite(loss), state["step"], state["diverged_at"]),
    }


def _leaf(params, path):
    node = params
    for part in path[1:]:
        node = node[part]
    return node


def _geometric_level(table_VxD, data):
    """Mean cos(E_u, E_v) over the directed training edges (u != v), tracked during training."""
    u_KxD, v_KxD = table_VxD[data["recall_src"]], table_VxD[data["recall_dst"]]
    cos_K = jnp.sum(u_KxD * v_KxD, -1) / jnp.maximum(
        jnp.linalg.norm(u_KxD, axis=-1) * jnp.linalg.norm(v_KxD, axis=-1), 1e-12)
    mask_K = data["recall_mask"] & (data["recall_src"] != data["recall_dst"])
    return jnp.sum(jnp.where(mask_K, cos_K, 0.0)) / jnp.maximum(jnp.sum(mask_K), 1)


LOGIT_MARGIN_MAX_NODES = 1024  # an N x N logit matrix (4 MiB) and an SVD of E per experiment and evaluation


def logit_margin(E_NxD, L_NxN, data, rank_tol: float = 1e-6):
    """Geometric margin of any tied-embedding model, from its own edge logits (SPEC §7 generalised).

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


def _scale_tables(params, emb_paths, init_scale):
    """Token (and untied output) tables start at N(0, init_scale^2) rows."""
    params = jax.tree_util.tree_map(lambda x: x, params)  # a copy of the dict tree
    for key in ("embedding", "output_embedding"):
        path = emb_paths[key]
        if path is not None:
            parent = _leaf(params, path[:-1])
            parent[path[-1]] = parent[path[-1]] * init_scale
    return params


def program_data(stacked: dict) -> dict:
    """Drops the sweep-shape suffix of StackedTables names (`train_inputs_SxRxT` -> `train_inputs`):
    inside vmap the program sees one experiment, so the leading S is gone."""
    out = {}
    for name, value in stacked.items():
        short = _SHAPE_SUFFIX.sub("", name)
        out[name if short in out else short] = value  # a later clash keeps its full name
    return out


_SHAPE_SUFFIX = re.compile(r"_S(x[A-Za-z0-9]+)*$")


# ----------------------------------------------------------------------------- in-context task

IN_CONTEXT_EVAL_ROWS = 512


def in_context_dims(cfg) -> tuple[Dims, int]:
    """Static dims of the in-context task (Bachmann & Nagarajan 2024) and its node-value count."""
    d, ell = cfg.graph.degree, cfg.graph.path_length
    num_nodes = d * (ell - 1) + 1
    num_values = cfg.task.num_values or 2 * num_nodes
    tasks._check_in_context(d, ell, num_values)
    prefix = tasks.in_context_prefix_length(d, ell)
    dims = Dims(vocab_size=tasks.vocab_size(num_values), seq_len=prefix + ell - 1, prefix_len=prefix,
                target_len=ell, num_nodes=num_values, has_paths=True)
    return dims, num_values


def _in_context_first_decision(first_QxV, inputs_QxT, targets_QxL, degree: int, path_length: int) -> dict:
    """The first decision as a choice between the source's ``degree`` children (chance exactly 1/d
    whether or not the model has learned to read the edge list), and whether the unrestricted
    argmax is one of those children at all (it has learned the in-context lookup of a valid step).

    ``first_QxV``: logits at the position that predicts n1, after the true source.
    """
    children_QxE, from_source_QxE = tasks.in_context_source_children(inputs_QxT, targets_QxL[:, 0],
                                                                     degree, path_length)
    child_logits_QxE = jnp.where(from_source_QxE, jnp.take_along_axis(first_QxV, children_QxE, axis=1), -jnp.inf)
    chosen_Q = jnp.take_along_axis(children_QxE, jnp.argmax(child_logits_QxE, axis=1)[:, None], axis=1)[:, 0]
    free_Q = jnp.argmax(first_QxV, axis=-1)
    return {
        "test/first_decision": jnp.mean(chosen_Q == targets_QxL[:, 1]),
        "test/first_step_valid": jnp.mean(jnp.any(from_source_QxE & (children_QxE == free_Q[:, None]), axis=1)),
    }


def make_in_context_program(cfg, model, dims: Dims, num_values: int, use_dropout: bool) -> Program:
    """Every batch is a set of fresh, randomly labelled path-stars; evaluation on a fixed fresh set."""
    d, ell, teacherless = cfg.graph.degree, cfg.graph.path_length, cfg.task.teacherless
    batch, steps = cfg.train.batch_size, cfg.train.steps
    vocab_mask = jnp.ones((dims.vocab_size,), bool)

    def draw(key, rows):
        return tasks.in_context_batch(key, rows, d, ell, num_values, teacherless)

    def init(key, hp, data):
        k_param, k_run = jax.random.split(key)
        params = model.init({"params": k_param}, jnp.zeros((1, dims.seq_len), jnp.int32))["params"]
        params = _scale_tables(params, table_paths(cfg.model), hp["init_scale"])
        return {"params": params, "opt_state": adamw(cfg.opt, 0.0, 0.0).init(params), "key": k_run,
                "step": jnp.zeros((), jnp.int32), "diverged_at": jnp.full((), -1, jnp.int32)}

    def step_fn(state, hp, data):
        key, k_batch, k_drop = jax.random.split(state["key"], 3)
        ex = draw(k_batch, batch)

        def loss_fn(params):
            kwargs = ({"dropout_rate": hp["dropout"], "deterministic": False, "rngs": {"dropout": k_drop}}
                      if use_dropout else {})
            logits = model.apply({"params": params}, ex.inputs_NxT, **kwargs)
            return _weighted_ce(logits, ex.targets_NxT, ex.weights_NxT, vocab_mask)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        lr = lr_at(state["step"], hp["lr"], steps, cfg.opt.warmup_steps, cfg.opt.schedule, cfg.opt.final_lr_fraction)
        updates, opt_state = adamw(cfg.opt, lr, hp["weight_decay"]).update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return _guarded_update(state, params, opt_state, key, loss), {"train/loss": loss}

    def evaluate(state, hp, data):
        params = state["params"]
        ex = draw(jax.random.PRNGKey(2**31 - 1), IN_CONTEXT_EVAL_ROWS)  # the same fresh graphs at every eval
        p = dims.prefix_len
        targets_QxL = ex.targets_NxT[:, p - 1:]
        seq = ex.inputs_NxT

        def emit(j, tok, seq, out):
            if not teacherless:
                written = jax.lax.dynamic_update_slice(seq, tok[:, None], (0, jnp.minimum(p + j, seq.shape[1] - 1)))
                seq = jnp.where(j < ell - 1, written, seq)
            return seq, out.at[:, j].set(tok)

        def body(j, carry):
            logits = model.apply({"params": params}, carry[0])[:, p - 1 + j]
            return emit(j, jnp.argmax(logits, axis=-1).astype(jnp.int32), *carry)

        # The teacher-forced pass is also greedy decoding's first step (nothing generated yet).
        forced_QxLxV = model.apply({"params": params}, seq)[:, p - 1:]
        first = emit(0, jnp.argmax(forced_QxLxV[:, 0], axis=-1).astype(jnp.int32), seq, jnp.zeros_like(targets_QxL))
        _, gen = jax.lax.fori_loop(1, ell, body, first)
        return {
            "test/exact_match": jnp.mean(jnp.all(gen == targets_QxL, axis=1)),
            "test/first_token": jnp.mean(gen[:, 1] == targets_QxL[:, 1]),
            "test/token": jnp.mean(gen == targets_QxL, axis=0),
            # Teacher-forced: the Clever-Hans signature is high accuracy after n1, chance at n1.
            "test/forced_token": jnp.mean(jnp.argmax(forced_QxLxV, axis=-1) == targets_QxL, axis=0),
            **_in_context_first_decision(forced_QxLxV[:, 1], ex.inputs_NxT, targets_QxL, d, ell),
            "diverged_at": state["diverged_at"],
        }

    return Program(init=init, step=step_fn, evaluate=evaluate)


# ----------------------------------------------------------------------------- whole runs


def build(cfg):
    """Everything static about a run: experiments, graphs, program, stacked data, meta."""
    config.check_config(cfg)
    exps = sweep.experiments(cfg)
    graph_list = build_graphs(cfg)
    if cfg.train.recipe == "staged" and not all(g.has_paths for g in graph_list):
        raise ConfigError("train.recipe", "staged", "mixed or edges (this graph has no paths for stage 2)")
    if cfg.model.family == "node2vec":
        from geomem_jax.models import node2vec

        program, data, paths = node2vec.program_for_config(cfg, graph_list, exps)
    elif cfg.task.mode == "in_context":
        dims, num_values = in_context_dims(cfg)
        model = build_model(cfg.model, dims.vocab_size, dims.seq_len)
        use_dropout = any(e.hparams["dropout"] > 0 for e in exps)
        program = make_in_context_program(cfg, model, dims, num_values, use_dropout)
        data, paths = {"dummy": np.zeros((len(exps),), np.float32)}, table_paths(cfg.model)
    else:
        stacked, dims = build_data(cfg, graph_list, exps)
        model = build_model(cfg.model, dims.vocab_size, dims.seq_len + dims.target_len)
        use_dropout = any(e.hparams["dropout"] > 0 for e in exps)
        program = make_sequence_program(cfg, model, dims, use_dropout)
        data, paths = program_data(stacked), table_paths(cfg.model)
    meta = {
        "experiments": [
            {
                "index": e.index, "seed": e.seed, "graph_index": e.graph_index,
                "graph": graphs.graph_summary(graph_list[e.graph_index]),
                "graph_spec": dict(graph_list[e.graph_index].spec),
                "hparams": e.hparams, "coords": e.coords(),
                "edges": cfg.graph.edges, "self_edges": bool(cfg.graph.self_edges),
            }
            for e in exps
        ],
        "model": {"family": cfg.model.family, **paths},
        "sweep_keys": ["graph", *sweep.HPARAMS, "seed"],
    }
    return exps, program, data, meta


def make_train(cfg):
    """A pure `train(key, hp, data) -> (state, metrics)` of the whole run, and its stacked inputs.

        train, (keys_S, hp_S, data_S) = make_train(cfg)
        state_S, metrics_S = jax.jit(jax.vmap(train))(keys_S, hp_S, data_S)

    The same computation as `geomem train` (which runs it in chunks to write metrics and
    checkpoints on the way); metrics are the final evaluation plus the mean training loss
    of the last `eval.every` steps.
    """
    exps, program, data, _ = build(cfg)
    steps, tail = cfg.train.steps, min(cfg.eval.every, cfg.train.steps)

    def train(key, hp, data):
        state = program.init(key, hp, data)
        state, step_metrics = jax.lax.scan(lambda s, _: program.step(s, hp, data), state, None, length=steps)
        last = jax.tree_util.tree_map(lambda m: jnp.mean(m[-tail:]), step_metrics)
        return state, {**program.evaluate(state, hp, data), **last}

    return train, (sweep.seed_keys(exps), sweep.hparam_arrays(exps), data)


# ----------------------------------------------------------------------------- memory


def memory_per_experiment(cfg, program, data) -> int:
    """Estimated peak bytes of one experiment: its data, state (params + optimiser), gradients
    and the activations of one training step (logits dominate: batch x T x V)."""
    one = lambda x: x[0]
    data_1 = jax.tree_util.tree_map(one, data)
    hp_1 = {k: jnp.float32(1e-3) for k in sweep.HPARAMS}
    state = jax.eval_shape(program.init, jax.ShapeDtypeStruct((2,), jnp.uint32), hp_1, data_1)
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))
    state_bytes = nbytes(state)
    param_bytes = nbytes(state["params"])
    inputs = data_1.get("train_inputs")
    if inputs is None:  # node2vec / in-context: dense N x N (or per-batch) work arrays
        act_bytes = 4 * nbytes(data_1)
    else:
        rows = inputs.shape[0] if cfg.train.full_batch else cfg.train.batch_size
        seq_len, vocab = inputs.shape[1], data_1["vocab_mask"].shape[0]
        width, layers = cfg.model.width, cfg.model.layers
        act_bytes = 4 * rows * seq_len * (3 * vocab + 24 * width * layers)
    return int(nbytes(data_1) + state_bytes + param_bytes + act_bytes)


def device_memory_bytes() -> int:
    """Memory of one device: the accelerator's limit, or the host's RAM on CPU."""
    import os

    stats = jax.devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg, program, data, num_experiments: int, available: int | None = None) -> int:
    """Refuses a sweep whose estimated footprint does not fit 90% of a device; returns the estimate."""
    from geomem_jax import distributed
    from geomem_jax.errors import UserError

    per_exp = memory_per_experiment(cfg, program, data)
    devices = distributed.num_devices(cfg.mesh.devices)
    per_device = -(-num_experiments // devices)
    available = available or device_memory_bytes()
    budget = 0.9 * available
    if per_exp * per_device > budget:
        fit = max(int(budget // per_exp), 0) * devices
        raise UserError(
            f"the sweep needs about {per_exp * per_device / 2**30:.1f} GiB per device ({per_device} experiments x "
            f"{per_exp / 2**20:.0f} MiB) but a device has {available / 2**30:.1f} GiB: run at most {fit} experiments "
            "(fewer sweep.seeds / sweep.* values / sweep.graphs), a smaller train.batch_size, or more devices (mesh.devices)"
        )
    return per_exp
