"""The data of an in-weights sweep: stacked per-experiment token tables, the sweep's static
dims, and the draw of one training batch in either layout (padded, by kind)."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from geomem_jax import evals, graphs, sweep, tasks
from geomem_jax.analysis import spectral
from geomem_jax.analysis.geometry import leaf_firsthop_paths

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
    if has_paths:
        stacked.update(_leaf_firsthop_tables([graph_list[e.graph_index] for e in exps]))
    stacked.update(_alignment_tables(graph_list, exps, n_max))
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


def _leaf_firsthop_tables(graph_per_exp) -> dict:
    """(leaf, first hop) node ids of the test paths the leaf × first-hop gap is measured on
    (the analysis's own sample), padded over the sweep; the mask marks real rows."""
    pairs = [leaf_firsthop_paths(g.test_paths_QxL)[:, [-1, 1]] for g in graph_per_exp]
    q_max = max(len(p) for p in pairs)
    return {
        "leaf_hop_SxQx2": np.stack([tasks.pad_to(p.astype(np.int32), (q_max, 2), 0) for p in pairs]),
        "leaf_hop_mask_SxQ": np.stack([np.arange(q_max) < len(p) for p in pairs]),
    }


def alignment_basis(graph) -> tuple[int, np.ndarray] | None:
    """(k, eigvecs_NxK1): the k at which the training logs the spectral alignment and the
    eigenvectors e_0 .. e_k of the analysis's own `spectral.eigenpairs` (float64). k is the
    smallest of `spectral.default_alignment_ks` moved to the end of its eigenspace
    (`spectral.closing_k`), so it is one of the analysis's `spectral/alignment_k<k>`
    (a path-star's d-1 arm modes). None above evals.LOGIT_MARGIN_MAX_NODES nodes (the N x k
    table must stay small) or when the graph has no non-trivial mode."""
    if not 2 <= graph.num_nodes <= evals.LOGIT_MARGIN_MAX_NODES:
        return None
    eigvals_N, eigvecs_NxN = spectral.eigenpairs(graph.adjacency())  # dense: the whole spectrum
    k = spectral.closing_k(eigvals_N, min(spectral.default_alignment_ks(graph.family, graph)), complete=True)
    return None if k is None else (k, eigvecs_NxN[:, : k + 1])


def _alignment_tables(graph_list, exps, n_max: int) -> dict:
    """Each experiment's alignment basis (`alignment_basis`) zero-padded to the sweep's n_max rows
    and largest k + 1 columns; the mode mask marks e_1 .. e_k (column 0 is the trivial mode).
    Empty unless every graph of the sweep has one: the metric exists for all experiments or none."""
    if any(g.num_nodes > evals.LOGIT_MARGIN_MAX_NODES for g in graph_list):  # before any eigh
        return {}
    bases = [alignment_basis(g) for g in graph_list]  # one eigh per distinct graph, not per seed
    if any(b is None for b in bases):
        return {}
    chosen = [bases[e.graph_index] for e in exps]
    k_max = max(k for k, _ in chosen)
    return {
        "align_eigvecs_SxNxK": np.stack([tasks.pad_to(v.astype(np.float32), (n_max, k_max + 1), 0.0)
                                         for _, v in chosen]),
        "align_modes_SxK": np.stack([(np.arange(k_max + 1) >= 1) & (np.arange(k_max + 1) <= k) for k, _ in chosen]),
        "align_k_S": np.array([k for k, _ in chosen], np.float32),  # logged beside it: a float like every metric
    }


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


def program_data(stacked: dict) -> dict:
    """Drops the sweep-shape suffix of StackedTables names (`train_inputs_SxRxT` -> `train_inputs`):
    inside vmap the program sees one experiment, so the leading S is gone."""
    out = {}
    for name, value in stacked.items():
        short = _SHAPE_SUFFIX.sub("", name)
        out[name if short in out else short] = value  # a later clash keeps its full name
    return out


_SHAPE_SUFFIX = re.compile(r"_S(x[A-Za-z0-9]+)*$")


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
