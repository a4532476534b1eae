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

from geomem_jax import config, evals, graphs, sweep, tasks
from geomem_jax.errors import ConfigError
from geomem_jax.models.common import unembed
from geomem_jax.program import Program, guarded_update, initial_state

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
    seq_len: int  # path examples (and the padded layout's rows)
    prefix_len: int
    target_len: int
    num_nodes: int
    has_paths: bool
    edge_len: int = 0  # edge queries `[EDGE] u [PAUSE]*`
    edge_rows: int = 0  # by-kind layout: static edge / path slots of one batch
    path_rows: int = 0


def build_graphs(cfg) -> list:
    return [graphs.make_graph(g) for g in sweep.graph_configs(cfg)]


# Tables only one layout reads (the others are shared): dropped before they reach the device.
PADDED_ONLY = ("train_inputs", "train_targets", "train_weights", "edge_inputs", "edge_targets", "edge_weights")
BY_KIND_ONLY = ("edge_query", "edge_next")


def build_data(cfg, graph_list, exps) -> tuple[dict, Dims]:
    """Stacked per-experiment token tables (leading axis S) and the sweep's static dims."""
    spec = tasks.task_spec_from_config(cfg.task)
    per_graph = [
        tasks.build_task_tables(g, spec, direction=cfg.graph.edges, self_edges=cfg.graph.self_edges)
        for g in graph_list
    ]
    chosen = [per_graph[e.graph_index] for e in exps]
    stacked = tasks.stack_tables(chosen)._asdict()
    parents = [_parent_table(g) for g in graph_list]
    n_max = max(g.num_nodes for g in graph_list)
    stacked["parent_SxN"] = np.stack([tasks.pad_to(parents[e.graph_index], (n_max,), -1) for e in exps])
    stacked["root_S"] = np.array([graph_list[e.graph_index].root or 0 for e in exps], np.int32)
    stacked["first_index_S"] = np.array([_first_decision_index(spec, t) for t in chosen], np.int32)
    stacked.update(_successor_tables(chosen, n_max))
    has_paths = all(g.has_paths for g in graph_list)
    edge_rows, path_rows = batch_rows(cfg.train, stacked["edge_rows_S"], stacked["train_path_rows_S"], has_paths)
    dims = Dims(
        vocab_size=stacked["vocab_mask_SxV"].shape[1],
        seq_len=stacked["train_inputs_SxRxT"].shape[2],
        prefix_len=stacked["test_prefix_SxQxP"].shape[2],
        target_len=stacked["test_targets_SxQxL"].shape[2],
        num_nodes=n_max,
        has_paths=has_paths,
        edge_len=stacked["edge_query_SxExPe"].shape[2],
        edge_rows=edge_rows, path_rows=path_rows,
    )
    unused = PADDED_ONLY if cfg.train.batch_layout == "by_kind" else BY_KIND_ONLY
    return {k: v for k, v in stacked.items() if _SHAPE_SUFFIX.sub("", k) not in unused}, dims


def _successor_tables(tables, n_max: int) -> dict:
    """Every node's successors for edge recall: up to evals.TOPK_CAP of them in succ_SxNxK
    (-1 padded), and the few nodes with more ("hubs", e.g. a star's root) listed apart."""
    degrees = [np.diff(t.succ_indptr_N1) for t in tables]
    k = max(1, min(evals.TOPK_CAP, max(int(d.max(initial=0)) for d in degrees)))
    hubs = [np.flatnonzero(d > k) for d in degrees]
    h = max(len(x) for x in hubs)
    m = max([int(d[x].max(initial=0)) for d, x in zip(degrees, hubs)] + [1])
    succ = np.full((len(tables), n_max, k), -1, np.int32)
    hub_nodes = np.zeros((len(tables), h), np.int32)
    hub_succ = np.full((len(tables), h, m), -1, np.int32)
    for i, t in enumerate(tables):
        ptr = t.succ_indptr_N1
        for u in np.flatnonzero((degrees[i] > 0) & (degrees[i] <= k)):
            succ[i, u, :degrees[i][u]] = t.succ_indices_K[ptr[u]:ptr[u + 1]]
        for j, u in enumerate(hubs[i]):
            hub_nodes[i, j] = u
            hub_succ[i, j, :degrees[i][u]] = t.succ_indices_K[ptr[u]:ptr[u + 1]]
    return {"succ_table_SxNxK": succ, "hub_nodes_SxH": hub_nodes, "hub_succ_SxHxM": hub_succ}


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


# ----------------------------------------------------------------------------- batches

OVERFLOW_SIGMAS = 6.0  # uniform mixing: a kind's slots cover its Binomial count up to mean + 6σ


def stratified_edge_rows(batch: int, edge_rows_S, path_rows_S, xp=np):
    """Edge rows of a stratified mixed batch: the proportional count, at least one of each kind."""
    share = edge_rows_S / xp.maximum(edge_rows_S + path_rows_S, 1)
    return xp.clip(xp.round(batch * share), 1, batch - 1).astype(xp.int32)


def batch_rows(train_cfg, edge_rows_S, path_rows_S, has_paths: bool) -> tuple[int, int]:
    """Static (edge, path) slots of one by-kind batch, the same for every experiment of a sweep.

    `mixed` draws uniformly from edges ∪ paths (train.mixing=uniform), so its edge count is
    Binomial(B, E/(E+P)): each kind gets slots up to mean + 6σ and unused slots are masked
    (a batch beyond that drops its extra rows; probability < 1e-9 per step). `stratified`
    draws the proportional count exactly: no slack. `staged` needs B of each (one stage each).
    """
    b = train_cfg.batch_size
    edges_only = train_cfg.recipe == "edges" or not has_paths
    if train_cfg.full_batch:
        return int(edge_rows_S.max()), 0 if edges_only else int(path_rows_S.max())
    if edges_only:
        return b, 0
    if train_cfg.recipe == "staged":
        return b, b
    if train_cfg.mixing == "stratified":
        edge_S = stratified_edge_rows(b, edge_rows_S, path_rows_S)
        return int(edge_S.max()), int((b - edge_S).max())
    share_S = edge_rows_S / np.maximum(edge_rows_S + path_rows_S, 1)
    slots = lambda p: min(b, int(np.ceil((b * p + OVERFLOW_SIGMAS * np.sqrt(b * p * (1 - p))).max())))
    return max(1, slots(share_S)), max(1, slots(1 - share_S))


def _draw_mixed_uniform(key, batch: int, edge_slots: int, path_slots: int, data):
    """The padded layout's uniform draw from edges ∪ paths, split by kind into static slots.

    Returns (edge_idx, edge_valid, path_idx, path_valid): the same rows as `train_*` row
    draws u < E (edges) and u - E (paths), in draw order.
    """
    e, r = data["edge_rows"], data["edge_rows"] + data["train_path_rows"]
    u_B = jax.random.randint(key, (batch,), 0, jnp.maximum(r, 1))
    is_edge_B = u_B < e
    n_edge = jnp.sum(is_edge_B)
    order_B = jnp.argsort(~is_edge_B, stable=True)  # edge draws first, each kind in draw order
    edge_valid, path_valid = jnp.arange(edge_slots) < n_edge, jnp.arange(path_slots) < batch - n_edge
    edge_idx = u_B[order_B[:edge_slots]]  # edge_slots <= batch (batch_rows)
    path_idx = u_B[jnp.take(order_B, n_edge + jnp.arange(path_slots), mode="clip")] - e
    # unused slots read row 0 (weight 0): an index past the table would gather garbage
    return jnp.where(edge_valid, edge_idx, 0), edge_valid, jnp.where(path_valid, path_idx, 0), path_valid


def _draw_by_kind(key, step, cfg, dims: Dims, stage1: int, data):
    """Row indices and validity of the edge and path slots of one training batch."""
    b = cfg.train.batch_size
    e_slots, p_slots = dims.edge_rows, dims.path_rows
    k_e, k_p = jax.random.split(key)
    draw = lambda k, n, rows: jax.random.randint(k, (n,), 0, jnp.maximum(rows, 1))
    if cfg.train.full_batch:
        paths = (jnp.arange(p_slots), jnp.arange(p_slots) < data["train_path_rows"]) if p_slots else (None, None)
        return (jnp.arange(e_slots), jnp.arange(e_slots) < data["edge_rows"], *paths)
    if p_slots == 0:  # edges only
        return draw(key, e_slots, data["edge_rows"]), jnp.ones((e_slots,), bool), None, None
    if cfg.train.recipe == "staged":  # one key for both draws, as the padded layout's
        in_stage2 = step >= stage1
        return (draw(key, e_slots, data["edge_rows"]), jnp.full((e_slots,), ~in_stage2),
                draw(key, p_slots, data["train_path_rows"]), jnp.full((p_slots,), in_stage2))
    if cfg.train.mixing == "stratified":
        n_edge = stratified_edge_rows(b, data["edge_rows"], data["train_path_rows"], jnp)
        return (draw(k_e, e_slots, data["edge_rows"]), jnp.arange(e_slots) < n_edge,
                draw(k_p, p_slots, data["train_path_rows"]), jnp.arange(p_slots) < b - n_edge)
    return _draw_mixed_uniform(key, b, e_slots, p_slots, data)


def by_kind_batch(key, step, cfg, dims: Dims, stage1: int, data) -> dict:
    """One training batch as an edge sub-batch at the edge length and a path sub-batch at the
    path length; invalid slots have weight 0."""
    edge_idx, edge_valid, path_idx, path_valid = _draw_by_kind(key, step, cfg, dims, stage1, data)
    batch = {"edge_tokens": jnp.take(data["edge_query"], edge_idx, axis=0),
             "edge_next": jnp.take(data["edge_next"], edge_idx, axis=0),
             "edge_weights": edge_valid.astype(jnp.float32)}
    if path_idx is not None:
        batch["path_inputs"] = jnp.take(data["train_path_inputs"], path_idx, axis=0)
        batch["path_targets"] = jnp.take(data["train_path_targets"], path_idx, axis=0)
        batch["path_weights"] = jnp.take(data["train_path_weights"], path_idx, axis=0) * path_valid[:, None]
    return batch


def padded_batch(key, step, cfg, stage1: int, data):
    """The release's layout: every row padded to the path length, loss weights mark the scored positions."""

    def sample(prefix: str, rows_key: str):
        if cfg.train.full_batch:
            return data[f"{prefix}_inputs"], data[f"{prefix}_targets"], data[f"{prefix}_weights"]
        idx = jax.random.randint(key, (cfg.train.batch_size,), 0, jnp.maximum(data[rows_key], 1))
        return tuple(jnp.take(data[f"{prefix}_{part}"], idx, axis=0) for part in ("inputs", "targets", "weights"))

    if cfg.train.recipe == "mixed":
        return sample("train", "train_rows")
    if cfg.train.recipe == "edges":
        return sample("edge", "edge_rows")
    edge_b, path_b = sample("edge", "edge_rows"), sample("train_path", "train_path_rows")
    return tuple(jnp.where(step >= stage1, p, e) for e, p in zip(edge_b, path_b))


# ----------------------------------------------------------------------------- program


def _weighted_ce(logits_BxTxV, targets_BxT, weights_BxT, vocab_mask_V):
    nll_BxT = evals.nll(evals.masked(logits_BxTxV, vocab_mask_V), targets_BxT)
    return jnp.sum(nll_BxT * weights_BxT) / jnp.maximum(jnp.sum(weights_BxT), 1.0)


def sequence_net(model, model_cfg) -> evals.Net:
    """The model as pure functions of the params (`evals.Net`).

    hidden(params, tokens, hp=None, key=None): final hidden states (dropout when a key is given);
    logits(params, h_xD, vocab_mask_V): the (tied or untied) unembedding of only those states;
    cached(params, tokens, cache, start): hidden states attending to cached earlier positions,
    and the extended cache (Transformer only; None for Mamba).
    """
    paths = table_paths(model_cfg)
    out_path = paths["output_embedding"] or paths["embedding"]
    frozen = model_cfg.freeze_embeddings and not paths["output_embedding"]

    def hidden(params, tokens, hp=None, key=None):
        if key is None:
            return model.apply({"params": params}, tokens, deterministic=True, hidden_only=True)
        return model.apply({"params": params}, tokens, dropout_rate=hp["dropout"], deterministic=False,
                           rngs={"dropout": key}, hidden_only=True)

    def logits(params, h_xD, vocab_mask_V):
        table_VxD = _leaf(params, out_path)
        table_VxD = jax.lax.stop_gradient(table_VxD) if frozen else table_VxD  # as inside the model
        return evals.masked(unembed(h_xD, table_VxD), vocab_mask_V)

    def cached(params, tokens, cache, start):
        return model.apply({"params": params}, tokens, hidden_only=True, cache=cache, start=start, return_cache=True)

    return evals.Net(hidden, logits, cached if model_cfg.family == "transformer" else None)


def by_kind_loss(net: evals.Net, params, batch: dict, first: int, count: int, vocab_mask_V, hp=None, key=None,
                 shared: int = 0):
    """Mean NLL over the scored tokens of both sub-batches: the edge queries' last position and the
    path rows' positions first .. first+count-1; only those positions are unembedded. The first
    `shared` edge-query tokens (the [EDGE] task token, the same in every row) run once for all
    rows (without dropout: a shared position would share its dropout mask)."""
    k_edge, k_path = jax.random.split(key) if key is not None else (None, None)
    if key is None:
        h_ExD = evals.last_hidden(net, params, batch["edge_tokens"], shared)
    else:
        h_ExD = net.hidden(params, batch["edge_tokens"], hp, k_edge)[:, -1]
    nll_E = evals.nll(net.logits(params, h_ExD, vocab_mask_V), batch["edge_next"])
    total, scored = jnp.sum(nll_E * batch["edge_weights"]), jnp.sum(batch["edge_weights"])
    if "path_inputs" in batch:
        h_PxLxD = net.hidden(params, batch["path_inputs"], hp, k_path)[:, first:first + count]
        weights_PxL = batch["path_weights"][:, first:first + count]
        nll_PxL = evals.nll(net.logits(params, h_PxLxD, vocab_mask_V), batch["path_targets"][:, first:first + count])
        total, scored = total + jnp.sum(nll_PxL * weights_PxL), scored + jnp.sum(weights_PxL)
    return total / jnp.maximum(scored, 1.0)


def _init_state(model, params_key, run_key, seq_len: int, emb_paths, init_scale, opt_cfg):
    """Fresh train state: params with tables at N(0, init_scale²), AdamW moments, step 0, not diverged."""
    params = model.init({"params": params_key}, jnp.zeros((1, seq_len), jnp.int32))["params"]
    params = _scale_tables(params, emb_paths, init_scale)
    return initial_state(params, adamw(opt_cfg, 0.0, 0.0).init(params), run_key)


def _apply_step(opt_cfg, state, loss, grads, opt_state, lr, weight_decay, frozen_key, key):
    """One AdamW update; a frozen table gets no update (not even weight decay); guarded against NaN."""
    updates, opt_state = adamw(opt_cfg, lr, weight_decay).update(grads, opt_state, state["params"])
    if frozen_key is not None:
        updates = {**updates, frozen_key: jax.tree_util.tree_map(jnp.zeros_like, updates[frozen_key])}
    return guarded_update(state, optax.apply_updates(state["params"], updates), opt_state, key, loss)


def make_sequence_program(cfg, model, dims: Dims, use_dropout: bool) -> Program:
    """init / step / evaluate of one in-weights experiment (Transformer or Mamba)."""
    spec = tasks.task_spec_from_config(cfg.task)
    recipe, steps, layout = cfg.train.recipe, cfg.train.steps, cfg.train.batch_layout
    stage1 = cfg.train.stage1_steps if recipe == "staged" else 0
    emb_paths = table_paths(cfg.model)
    frozen_key = emb_paths["embedding"][1] if cfg.model.freeze_embeddings else None  # top-level params key
    net = sequence_net(model, cfg.model)
    first, count = dims.prefix_len - 1, dims.target_len  # the scored positions of a path row
    shared = int(spec.task_tokens)  # every edge query starts with [EDGE]

    def init(key, hp, data):
        k_param, k_run = jax.random.split(key)
        return _init_state(model, k_param, k_run, dims.seq_len, emb_paths, hp["init_scale"], cfg.opt)

    def lr_of(step, hp):
        schedule = lambda s, peak, total: lr_at(s, peak, total, cfg.opt.warmup_steps, cfg.opt.schedule,
                                                cfg.opt.final_lr_fraction)
        if recipe != "staged":
            return schedule(step, hp["lr"], steps)
        return jnp.where(step >= stage1, schedule(step - stage1, hp["lr"], steps - stage1),
                         schedule(step, cfg.train.stage1_lr, stage1))

    def loss_fn(params, k_batch, k_drop, step, hp, data):
        drop_key = k_drop if use_dropout else None
        if layout == "padded":
            inputs, targets, weights = padded_batch(k_batch, step, cfg, stage1, data)
            out = model.apply({"params": params}, inputs, deterministic=True) if drop_key is None else \
                model.apply({"params": params}, inputs, dropout_rate=hp["dropout"], deterministic=False,
                            rngs={"dropout": drop_key})
            return _weighted_ce(out, targets, weights, data["vocab_mask"])
        batch = by_kind_batch(k_batch, step, cfg, dims, stage1, data)
        return by_kind_loss(net, params, batch, first, count, data["vocab_mask"], hp, drop_key, shared)

    def step_fn(state, hp, data):
        key, k_batch, k_drop = jax.random.split(state["key"], 3)
        step = state["step"]
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], k_batch, k_drop, step, hp, data)
        opt_state = state["opt_state"]
        if recipe == "staged":  # stage 2 starts with a fresh optimiser
            opt_state = jax.tree_util.tree_map(lambda x: jnp.where(step == stage1, jnp.zeros_like(x), x), opt_state)
        new = _apply_step(cfg.opt, state, loss, grads, opt_state, lr_of(step, hp), hp["weight_decay"], frozen_key, key)
        return new, {"train/loss": loss}

    # Teacher-forced chunks unembed rows x count positions: no more logits than a training step has.
    step_logits = ((dims.edge_rows + dims.path_rows * count) if layout == "by_kind"
                   else cfg.train.batch_size * dims.seq_len)
    forced_chunk = max(1, min(cfg.eval.row_chunk, step_logits // max(count, 1)))

    def evaluate(state, hp, data):
        params = state["params"]
        metrics = {"diverged_at": state["diverged_at"]}
        if dims.has_paths:
            filler = tasks.special_id(0, "$") + data["num_nodes"] if spec.teacherless else data["pad_id"]
            gen_QxL = evals.map_rows(
                lambda pre: evals.greedy_decode(net, params, pre, count, filler, data["vocab_mask"], spec.teacherless),
                (data["test_prefix"],), cfg.eval.row_chunk)
            root_given = spec.root_in_prefix or spec.target == "hardest_token"
            metrics.update(evals.path_metrics(gen_QxL, data, data["first_index"], root_given, spec.reverse_path))
            metrics.update(evals.forced_metrics(
                net, params, data["test_path_inputs"], data["test_path_targets"], data["test_path_weights"],
                data["test_row_mask"], first, count, data["vocab_mask"], forced_chunk))
        margin_nodes = dims.num_nodes if dims.num_nodes <= evals.LOGIT_MARGIN_MAX_NODES else 0
        metrics["edge/recall_at_degree"], logits_NxN = evals.edge_recall(net, params, data, cfg.eval.node_chunk,
                                                                         margin_nodes, shared)
        table_VxD = _leaf(params, emb_paths["embedding"])
        metrics["geometry/level"] = evals.geometric_level(table_VxD, data)
        if margin_nodes:
            margin = evals.logit_margin(table_VxD[:dims.num_nodes], logits_NxN, data)
            metrics["geometry/logit_margin"], metrics["geometry/logit_margin_top1"] = margin
        return metrics

    return Program(init=init, step=step_fn, evaluate=evaluate)


def _leaf(params, path):
    node = params
    for part in path[1:]:
        node = node[part]
    return node


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
    """Every batch is a set of fresh, randomly labelled path-stars; evaluation on a fixed fresh set.
    Logits only at the path positions (the prefix's edge list carries no loss)."""
    d, ell, teacherless = cfg.graph.degree, cfg.graph.path_length, cfg.task.teacherless
    batch, steps = cfg.train.batch_size, cfg.train.steps
    vocab_mask = jnp.ones((dims.vocab_size,), bool)
    emb_paths = table_paths(cfg.model)
    frozen_key = emb_paths["embedding"][1] if cfg.model.freeze_embeddings else None
    net = sequence_net(model, cfg.model)
    hidden, logits = net.hidden, net.logits
    first = dims.prefix_len - 1  # predicts the source; every later position is scored too

    def draw(key, rows):
        return tasks.in_context_batch(key, rows, d, ell, num_values, teacherless)

    def init(key, hp, data):
        k_param, k_run = jax.random.split(key)
        return _init_state(model, k_param, k_run, dims.seq_len, emb_paths, hp["init_scale"], cfg.opt)

    def step_fn(state, hp, data):
        key, k_batch, k_drop = jax.random.split(state["key"], 3)
        ex = draw(k_batch, batch)

        def loss_fn(params):
            h_BxLxD = hidden(params, ex.inputs_NxT, hp, k_drop if use_dropout else None)[:, first:]
            nll_BxL = evals.nll(logits(params, h_BxLxD, vocab_mask), ex.targets_NxT[:, first:])
            weights_BxL = ex.weights_NxT[:, first:]
            return jnp.sum(nll_BxL * weights_BxL) / jnp.maximum(jnp.sum(weights_BxL), 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        lr = lr_at(state["step"], hp["lr"], steps, cfg.opt.warmup_steps, cfg.opt.schedule, cfg.opt.final_lr_fraction)
        new = _apply_step(cfg.opt, state, loss, grads, state["opt_state"], lr, hp["weight_decay"], frozen_key, key)
        return new, {"train/loss": loss}

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
            h_QxD = jax.lax.dynamic_index_in_dim(hidden(params, carry[0]), p - 1 + j, axis=1, keepdims=False)
            return emit(j, jnp.argmax(logits(params, h_QxD, vocab_mask), axis=-1).astype(jnp.int32), *carry)

        # The teacher-forced pass is also greedy decoding's first step (nothing generated yet).
        forced_QxLxV = logits(params, hidden(params, seq)[:, p - 1:], vocab_mask)
        first_token_Q = jnp.argmax(forced_QxLxV[:, 0], axis=-1).astype(jnp.int32)
        first_step = emit(0, first_token_Q, seq, jnp.zeros_like(targets_QxL))
        _, gen = jax.lax.fori_loop(1, ell, body, first_step)
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
        stacked, dims = build_data(cfg, graph_list, exps)  # task errors first: they are the more specific
        if cfg.train.recipe in ("staged", "mixed") and not dims.has_paths:
            raise ConfigError("train.recipe", cfg.train.recipe, "edges (this graph has no training paths)")
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
    over the steps since the previous evaluation (the host loop evaluates every `eval.every`
    steps and at the end).
    """
    exps, program, data, _ = build(cfg)
    steps = cfg.train.steps
    tail = steps - cfg.eval.every * ((steps - 1) // cfg.eval.every)

    def train(key, hp, data):
        state = program.init(key, hp, data)
        state, step_metrics = jax.lax.scan(lambda s, _: program.step(s, hp, data), state, None, length=steps)
        last = jax.tree_util.tree_map(lambda m: jnp.mean(m[-tail:]), step_metrics)
        return state, {**program.evaluate(state, hp, data), **last}

    return train, (sweep.seed_keys(exps), sweep.hparam_arrays(exps), data)


# ----------------------------------------------------------------------------- memory


# Floats kept per token and per (layer x width) for the backward pass: Transformer blocks keep
# their LayerNorm, attention and 4x MLP activations; Mamba adds its B x T x E x N scan states.
ACTIVATION_FLOATS = {"transformer": 24, "mamba": 24}
LOGIT_COPIES = 3  # logits, their log-softmax and its gradient live at once


def step_footprint(cfg, data) -> dict:
    """Tokens through the model, unembedded positions, and activation bytes of one training step
    and of the largest evaluation chunk of one experiment (sequence models; data stacked, axis S)."""
    vocab, (rows, seq_len) = data["vocab_mask"].shape[1], data["train_path_inputs"].shape[1:]
    target_len = data["test_targets"].shape[2]
    has_paths = rows > 0 and target_len > 0
    if cfg.train.batch_layout == "padded":
        batch = data["train_inputs"].shape[1] if cfg.train.full_batch else cfg.train.batch_size
        tokens = logit_positions = batch * data["train_inputs"].shape[2]
    else:
        edge_slots, path_slots = batch_rows(cfg.train, np.asarray(data["edge_rows"]),
                                            np.asarray(data["train_path_rows"]), has_paths)
        # the [EDGE] task token that starts every edge query runs once per step (Transformer)
        shared = int(cfg.task.task_tokens and cfg.model.family == "transformer")
        tokens = shared + edge_slots * (data["edge_query"].shape[2] - shared) + path_slots * seq_len
        logit_positions = edge_slots + path_slots * target_len
    per_token = ACTIVATION_FLOATS[cfg.model.family] * cfg.model.width * cfg.model.layers
    if cfg.model.family == "mamba":
        per_token += 3 * cfg.model.expand * cfg.model.d_state * cfg.model.width * cfg.model.layers
    train_bytes = 4 * (tokens * per_token + LOGIT_COPIES * logit_positions * vocab)
    # Evaluation holds one chunk of logits rows (decoding, teacher forcing, edge queries) at a time.
    eval_rows = max(cfg.eval.node_chunk, min(cfg.eval.row_chunk, max(logit_positions // max(target_len, 1), 1))
                    * max(target_len, 1), cfg.eval.row_chunk)
    eval_bytes = 4 * LOGIT_COPIES * eval_rows * vocab
    return {"tokens": tokens, "logit_positions": logit_positions, "train_bytes": train_bytes,
            "eval_bytes": eval_bytes}


def memory_per_experiment(cfg, program, data) -> int:
    """Estimated peak bytes of one experiment: its data, state (params + optimiser), gradients
    and the larger of a training step's and an evaluation chunk's activations (logits dominate
    at large vocabularies: they are computed only at the scored positions)."""
    one = lambda x: x[0]
    data_1 = jax.tree_util.tree_map(one, data)
    hp_1 = {k: jnp.float32(1e-3) for k in sweep.HPARAMS}
    state = jax.eval_shape(program.init, jax.ShapeDtypeStruct((2,), jnp.uint32), hp_1, data_1)
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))
    if "train_path_inputs" not in data_1:  # node2vec / in-context: dense N x N (or per-batch) work arrays
        act_bytes = 4 * nbytes(data_1)
    else:
        footprint = step_footprint(cfg, data)
        act_bytes = max(footprint["train_bytes"], footprint["eval_bytes"])
    return int(nbytes(data_1) + nbytes(state) + nbytes(state["params"]) + act_bytes)


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
    if per_exp > budget:
        raise UserError(
            f"a single experiment needs about {per_exp / 2**20:.0f} MiB but 90% of a device is "
            f"{budget / 2**30:.1f} GiB: use a smaller model (model.width / model.layers), a smaller "
            "train.batch_size or eval.row_chunk / eval.node_chunk, or a larger device")
    if per_exp * per_device > budget:
        fit = int(budget // per_exp) * devices
        raise UserError(
            f"the sweep needs about {per_exp * per_device / 2**30:.1f} GiB per device ({per_device} experiments x "
            f"{per_exp / 2**20:.0f} MiB) but a device has {available / 2**30:.1f} GiB: run at most {fit} experiments "
            "(fewer sweep.seeds / sweep.* values / sweep.graphs), a smaller train.batch_size, "
            "or more devices (mesh.devices)"
        )
    return per_exp
