"""Token sequences: edge / path examples, padded sweep tables and the in-context generator.

Vocabulary (same layout as the PyTorch release so embeddings line up):
node ids ``0 .. N-1``, then the nine specials ``|  [PAUSE]  /  $  >  <  [PAD]  [EDGE]  [PATH]``
at ids ``N .. N+8``.

Examples are stored as shifted pairs: position ``t`` of ``inputs`` is scored against
``targets[t]`` with weight ``weights[t]``.  Every example is written as one full token
sequence ``seq`` and split into ``inputs = seq[:-1]``, ``targets = seq[1:]``, both padded
with ``[PAD]`` (weight 0) to the common length T.  Hence ``inputs[t+1] == targets[t]`` on
every scored position of a plain (non-teacherless) example except its last one, whose
target is never fed back (``inputs[t+1]`` is ``[PAD]`` there).  Padding a table to a
longer T later (``stack_tables``) gives exactly what building it at that T would.  Loss
weights are 1 only on the positions that predict a target token.

- edge ``(u, v)``: ``[EDGE] u [PAUSE]×p v`` (task token and pauses optional); the last
  position before ``v`` predicts ``v``.
- path ``r n1 … leaf``: prefix ``[PATH] leaf [PAUSE]×p [r]`` then the target
  (``r n1 … leaf``; ``n1 … leaf`` with the root in the prefix; reversed on request;
  only ``n1`` for the hardest-token target).  Teacherless inputs replace every target
  token fed back as input by ``$``.

In-context path-star (Bachmann & Nagarajan 2024) — public format
----------------------------------------------------------------
Node tokens are the values ``0 .. num_values-1``; the specials sit at
``num_values .. num_values+8`` in the order above.  One example, for a fresh path-star
with degree ``d`` and arms of ``ℓ-1`` nodes (``E = d·(ℓ-1)`` edges, each written
parent→child, i.e. directed away from the root), is the sequence::

    u_1 v_1 |  u_2 v_2 |  …  u_E v_E |  /  source goal  >  source n1 … goal

The edge list is in random order, ``source`` is the root, ``goal`` a uniformly drawn
leaf.  The prefix (``3E + 4`` tokens, ending with ``>``) is followed by the ``ℓ``-token
path, teacher-forced exactly like in-weights path examples: the ``>`` position predicts
``source``.  With ``teacherless=True`` the path tokens fed back as inputs become ``$``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomem_jax.errors import ConfigError

SPECIAL_TOKENS = ("|", "[PAUSE]", "/", "$", ">", "<", "[PAD]", "[EDGE]", "[PATH]")
TARGETS = ("full_path", "hardest_token")


def special_id(num_nodes: int, name: str) -> int:
    """Token id of special ``name`` in the vocabulary of a graph with ``num_nodes`` nodes."""
    return int(num_nodes) + SPECIAL_TOKENS.index(name)


def vocab_size(num_nodes: int) -> int:
    """Nodes plus the nine specials."""
    return int(num_nodes) + len(SPECIAL_TOKENS)


class Examples(NamedTuple):
    """A set of training/eval sequences; position t's output is scored against targets[t]."""

    inputs_NxT: Any  # int32
    targets_NxT: Any  # int32
    weights_NxT: Any  # float32


# ---------------------------------------------------------------------------- task spec


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Static layout of the in-weights task (identical for every experiment of a sweep)."""

    pause_tokens: int = 1
    target: str = "full_path"
    task_tokens: bool = True
    reverse_path: bool = False
    teacherless: bool = False
    root_in_prefix: bool = False
    pause_in_edges: bool = False

    def __post_init__(self):
        p = self.pause_tokens
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
            raise ConfigError("task.pause_tokens", p, "an integer >= 0")
        if self.target not in TARGETS:
            raise ConfigError("task.target", self.target, "one of " + ", ".join(TARGETS))
        if self.reverse_path and self.target == "hardest_token":
            raise ConfigError(
                "task.reverse_path", self.reverse_path,
                "False when task.target='hardest_token' (the hardest token is n1, after the root)")


def task_spec_from_config(task_cfg) -> TaskSpec:
    """TaskSpec from a ``task`` config section (ConfigDict or dict); absent fields take defaults."""
    defaults = TaskSpec()
    get = task_cfg.get if hasattr(task_cfg, "get") else lambda k, d: getattr(task_cfg, k, d)
    values = {f.name: get(f.name, getattr(defaults, f.name)) for f in dataclasses.fields(TaskSpec)}
    for name in ("task_tokens", "reverse_path", "teacherless", "root_in_prefix", "pause_in_edges"):
        if not isinstance(values[name], (bool, np.bool_)):
            raise ConfigError(f"task.{name}", values[name], "True or False")
    return TaskSpec(**values)


def prefix_length(spec: TaskSpec) -> int:
    """Number of path-prefix tokens; the last of them predicts the first target token."""
    return int(spec.task_tokens) + 1 + spec.pause_tokens + int(spec.root_in_prefix)


def target_length(spec: TaskSpec, path_length: int) -> int:
    """Number of scored tokens of a path example whose path has ``path_length`` nodes."""
    if spec.target == "hardest_token":
        return 1
    return path_length - int(spec.root_in_prefix)


def edge_prefix_length(spec: TaskSpec) -> int:
    """Tokens of an edge query before ``v``: ``[EDGE]? u [PAUSE]×p?``."""
    return int(spec.task_tokens) + 1 + (spec.pause_tokens if spec.pause_in_edges else 0)


# ---------------------------------------------------------------------------- examples


def _examples_from_sequences(seq_NxS, first_scored: int, num_nodes: int, length: int | None,
                             teacherless: bool) -> Examples:
    """Shift full sequences into (inputs, targets, weights), padded to ``length`` positions.

    ``first_scored`` is the position predicting the first target token; every later
    position up to the end of the sequence is scored too.
    """
    n, s = seq_NxS.shape
    t = s - 1 if length is None else int(length)
    if t < s - 1:
        raise ValueError(f"sequence of {s} tokens needs at least {s - 1} positions, got {t}")
    pad = special_id(num_nodes, "[PAD]")
    inputs_NxT = np.full((n, t), pad, np.int32)
    targets_NxT = np.full((n, t), pad, np.int32)
    inputs_NxT[:, :s - 1] = seq_NxS[:, :-1]
    targets_NxT[:, :s - 1] = seq_NxS[:, 1:]
    weights_NxT = np.zeros((n, t), np.float32)
    weights_NxT[:, first_scored:s - 1] = 1.0
    if teacherless:
        # Target tokens fed back as inputs (positions after the prefix) become `$`.
        inputs_NxT[:, first_scored + 1:s - 1] = special_id(num_nodes, "$")
    return Examples(inputs_NxT, targets_NxT, weights_NxT)


def _empty_examples(length: int) -> Examples:
    return Examples(np.zeros((0, length), np.int32), np.zeros((0, length), np.int32),
                    np.zeros((0, length), np.float32))


def _edge_sequences(src_E, dst_E, num_nodes: int, spec: TaskSpec) -> np.ndarray:
    cols = []
    if spec.task_tokens:
        cols.append(np.full_like(src_E, special_id(num_nodes, "[EDGE]")))
    cols.append(src_E)
    if spec.pause_in_edges:
        cols += [np.full_like(src_E, special_id(num_nodes, "[PAUSE]"))] * spec.pause_tokens
    cols.append(dst_E)
    return np.stack(cols, axis=1).astype(np.int32).reshape(len(src_E), len(cols))


def edge_examples(graph, spec: TaskSpec, direction: str = "both", self_edges: bool = False,
                  length: int | None = None) -> Examples:
    """One example per directed edge (u, v): ``[EDGE] u [PAUSE]×p → v`` (options per spec).

    ``length`` pads the examples to that many positions (default: the natural length).
    """
    edges_Ex2 = np.asarray(graph.directed_edges(direction=direction, self_edges=self_edges),
                           np.int64).reshape(-1, 2)
    seq_ExS = _edge_sequences(edges_Ex2[:, 0], edges_Ex2[:, 1], graph.num_nodes, spec)
    return _examples_from_sequences(seq_ExS, seq_ExS.shape[1] - 2, graph.num_nodes, length,
                                    teacherless=False)


def _path_sequences(paths_PxL, num_nodes: int, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """(prefix_PxPp, target_PxLt) token arrays of path examples."""
    paths_PxL = np.asarray(paths_PxL, np.int64)
    if paths_PxL.ndim != 2 or paths_PxL.shape[1] < 2:
        raise ConfigError("graph.path_length", paths_PxL.shape[-1] if paths_PxL.ndim else None,
                          "paths of at least 2 nodes (root and n1)")
    p = len(paths_PxL)
    root_P, leaf_P = paths_PxL[:, 0], paths_PxL[:, -1]
    cols = []
    if spec.task_tokens:
        cols.append(np.full(p, special_id(num_nodes, "[PATH]")))
    cols.append(leaf_P)
    cols += [np.full(p, special_id(num_nodes, "[PAUSE]"))] * spec.pause_tokens
    if spec.root_in_prefix:
        cols.append(root_P)
    prefix_PxPp = np.stack(cols, axis=1).reshape(p, len(cols))
    if spec.target == "hardest_token":
        target_PxLt = paths_PxL[:, 1:2]
    else:
        target_PxLt = paths_PxL[:, int(spec.root_in_prefix):]
        if spec.reverse_path:
            target_PxLt = target_PxLt[:, ::-1]
    return prefix_PxPp.astype(np.int32), np.ascontiguousarray(target_PxLt, np.int32)


def path_examples(paths_PxL, num_nodes: int, spec: TaskSpec, length: int | None = None) -> Examples:
    """Teacher-forced path examples: prefix ``[PATH] leaf [PAUSE]×p``, then the target tokens.

    ``length`` pads the examples to that many positions (default: the natural length).
    """
    paths_PxL = np.asarray(paths_PxL)
    if paths_PxL.size == 0:
        return _empty_examples(0 if length is None else length)
    prefix_PxPp, target_PxLt = _path_sequences(paths_PxL, num_nodes, spec)
    seq_PxS = np.concatenate([prefix_PxPp, target_PxLt], axis=1)
    return _examples_from_sequences(seq_PxS, prefix_PxPp.shape[1] - 1, num_nodes, length,
                                    spec.teacherless)


# ---------------------------------------------------------------------------- task tables


class TaskTables(NamedTuple):
    """Every token table one experiment needs, padded to one sequence length T."""

    num_nodes: int
    vocab_size: int
    train: Examples  # mixed recipe: edge examples first, then train paths
    edges: Examples
    train_paths: Examples
    test_paths: Examples
    test_prefix_QxP: np.ndarray  # int32 prompt for greedy decoding
    test_targets_QxL: np.ndarray  # int32 tokens the decoder must produce
    train_prefix_PxP: np.ndarray
    train_targets_PxL: np.ndarray
    succ_indptr_N1: np.ndarray  # CSR of out-neighbours under the edge direction used
    succ_indices_K: np.ndarray
    edge_prefix_NxPe: np.ndarray  # int32 edge query `[EDGE] u [PAUSE]*` for every node u
    num_edge_examples: int
    num_train_paths: int
    num_test_paths: int
    path_length: int  # nodes per path (0 without paths)
    prefix_length: int
    target_length: int  # scored tokens per path example (0 without paths)


def _concat_examples(a: Examples, b: Examples) -> Examples:
    return Examples(*(np.concatenate([x, y], axis=0) for x, y in zip(a, b)))


def build_task_tables(graph, spec: TaskSpec, direction: str = "both",
                      self_edges: bool = False) -> TaskTables:
    """Edge, train-path and test-path examples of ``graph``, all padded to one length T."""
    has_paths = bool(graph.has_paths)
    if spec.target == "hardest_token" and (not has_paths or graph.root is None):
        raise ConfigError("task.target", spec.target,
                          f"'full_path' for graph family {graph.family!r}: "
                          "the hardest token needs a rooted graph with paths")
    n = graph.num_nodes
    ell = graph.path_length if has_paths else 0
    if has_paths and ell < 2:
        raise ConfigError("graph.path_length", ell, "an integer >= 2")
    p = prefix_length(spec)
    lt = target_length(spec, ell) if has_paths else 0
    edge_t = edge_prefix_length(spec)  # edge sequence has prefix + 1 tokens
    length = max(edge_t, p + lt - 1 if has_paths else 0)

    edges = edge_examples(graph, spec, direction, self_edges, length=length)
    train_paths = path_examples(graph.train_paths_PxL, n, spec, length=length)
    test_paths = path_examples(graph.test_paths_QxL, n, spec, length=length)

    def prompts(paths):
        if np.asarray(paths).size == 0:
            return np.zeros((0, p), np.int32), np.zeros((0, lt), np.int32)
        return _path_sequences(paths, n, spec)

    test_prefix, test_targets = prompts(graph.test_paths_QxL)
    train_prefix, train_targets = prompts(graph.train_paths_PxL)
    indptr, indices = graph.successors(direction=direction, self_edges=self_edges)
    nodes_N = np.arange(n)
    edge_prefix_NxPe = _edge_sequences(nodes_N, nodes_N, n, spec)[:, :-1]
    return TaskTables(
        num_nodes=n, vocab_size=vocab_size(n),
        train=_concat_examples(edges, train_paths), edges=edges,
        train_paths=train_paths, test_paths=test_paths,
        test_prefix_QxP=test_prefix, test_targets_QxL=test_targets,
        train_prefix_PxP=train_prefix, train_targets_PxL=train_targets,
        succ_indptr_N1=np.asarray(indptr, np.int64), succ_indices_K=np.asarray(indices, np.int64),
        edge_prefix_NxPe=edge_prefix_NxPe,
        num_edge_examples=len(edges.inputs_NxT), num_train_paths=len(train_paths.inputs_NxT),
        num_test_paths=len(test_paths.inputs_NxT),
        path_length=ell, prefix_length=p, target_length=lt)


# ---------------------------------------------------------------------------- sweep padding


def pad_to(x, shape, value) -> np.ndarray:
    """``x`` padded at the end of every axis with ``value`` up to ``shape`` (never cropped)."""
    x = np.asarray(x)
    if x.ndim != len(shape) or any(a > b for a, b in zip(x.shape, shape)):
        raise ValueError(f"cannot pad array of shape {x.shape} to {tuple(shape)}")
    out = np.full(tuple(shape), value, dtype=x.dtype)
    out[tuple(slice(0, a) for a in x.shape)] = x
    return out


def _stack_padded(arrays, shape, fills, dtype) -> np.ndarray:
    """(S, *shape) array: experiment i's array in the leading corner, ``fills[i]`` elsewhere."""
    out = np.empty((len(arrays), *shape), dtype=dtype)
    for i, (x, fill) in enumerate(zip(arrays, fills)):
        corner = np.shape(x)
        out[i][tuple(slice(0, a) for a in corner)] = x
        # Fill only the padding (each byte written once: these tables reach 100s of MB).
        for axis, a in enumerate(corner):
            region = tuple(slice(0, c) for c in corner[:axis]) + (slice(a, None),)
            out[i][region] = fill
    return out


class StackedTables(NamedTuple):
    """Task tables of S experiments stacked on a leading axis, padded to common shapes.

    Each experiment keeps its own token ids (specials at N_i..N_i+8); the stacked
    vocabulary is V = max N_i + 9 and ``vocab_mask_SxV`` marks the ids that exist.
    Padded rows hold the experiment's own [PAD] id with weight 0.
    """

    train_inputs_SxRxT: np.ndarray
    train_targets_SxRxT: np.ndarray
    train_weights_SxRxT: np.ndarray
    train_rows_S: np.ndarray
    edge_inputs_SxExT: np.ndarray
    edge_targets_SxExT: np.ndarray
    edge_weights_SxExT: np.ndarray
    edge_rows_S: np.ndarray
    train_path_inputs_SxPxT: np.ndarray
    train_path_targets_SxPxT: np.ndarray
    train_path_weights_SxPxT: np.ndarray
    train_path_rows_S: np.ndarray
    test_path_inputs_SxQxT: np.ndarray
    test_path_targets_SxQxT: np.ndarray
    test_path_weights_SxQxT: np.ndarray
    test_path_rows_S: np.ndarray
    test_prefix_SxQxP: np.ndarray
    test_targets_SxQxL: np.ndarray
    test_target_mask_SxQxL: np.ndarray
    test_row_mask_SxQ: np.ndarray
    train_prefix_SxPxP: np.ndarray
    train_targets_SxPxL: np.ndarray
    train_target_mask_SxPxL: np.ndarray
    train_row_mask_SxP: np.ndarray
    vocab_mask_SxV: np.ndarray
    num_nodes_S: np.ndarray
    pad_id_S: np.ndarray
    path_length_S: np.ndarray
    target_length_S: np.ndarray
    recall_src_SxK: np.ndarray  # every directed (u, v) successor pair, padded
    recall_dst_SxK: np.ndarray
    recall_mask_SxK: np.ndarray
    out_degree_SxN: np.ndarray  # 0 on padded nodes
    node_mask_SxN: np.ndarray
    edge_prefix_SxNxPe: np.ndarray  # edge query for every node (padded nodes: [PAD])
    # The by-kind layout: edge examples at their own length Pe, scored at their last position only.
    edge_query_SxExPe: np.ndarray  # int32 `[EDGE] u [PAUSE]*`
    edge_next_SxE: np.ndarray  # int32 v


def _stack_examples(examples: list[Examples], pad_ids, rows: int, length: int):
    zeros = [0] * len(examples)
    inputs = _stack_padded([ex.inputs_NxT for ex in examples], (rows, length), pad_ids, np.int32)
    targets = _stack_padded([ex.targets_NxT for ex in examples], (rows, length), pad_ids, np.int32)
    weights = _stack_padded([ex.weights_NxT for ex in examples], (rows, length), zeros, np.float32)
    row_counts_S = np.array([len(ex.inputs_NxT) for ex in examples], np.int32)
    return inputs, targets, weights, row_counts_S


def _stack_prompts(prefixes, targets, pad_ids, rows: int, prefix_len: int, target_len: int):
    falses = [False] * len(prefixes)
    prefix_SxQxP = _stack_padded(prefixes, (rows, prefix_len), pad_ids, np.int32)
    targets_SxQxL = _stack_padded(targets, (rows, target_len), pad_ids, np.int32)
    target_mask = _stack_padded([np.ones(x.shape, bool) for x in targets], (rows, target_len), falses, bool)
    row_mask = _stack_padded([np.ones(len(x), bool) for x in prefixes], (rows,), falses, bool)
    return prefix_SxQxP, targets_SxQxL, target_mask, row_mask


def stack_tables(tables: list[TaskTables]) -> StackedTables:
    """Stack the tables of S experiments (graphs of any sizes, one TaskSpec) on a leading axis."""
    if not tables:
        raise ValueError("stack_tables needs at least one TaskTables")
    prefix_lens = {t.prefix_length for t in tables}
    if len(prefix_lens) != 1:
        raise ValueError(f"experiments of one sweep must share the task spec; prefix lengths {prefix_lens}")
    p = prefix_lens.pop()
    pad_ids = [special_id(t.num_nodes, "[PAD]") for t in tables]
    n_max = max(t.num_nodes for t in tables)
    v = vocab_size(n_max)
    length = max(t.train.inputs_NxT.shape[1] for t in tables)
    rows = lambda xs: max(len(x) for x in xs)
    train = _stack_examples([t.train for t in tables], pad_ids, rows([t.train.inputs_NxT for t in tables]), length)
    edge = _stack_examples([t.edges for t in tables], pad_ids, rows([t.edges.inputs_NxT for t in tables]), length)
    trp = _stack_examples([t.train_paths for t in tables], pad_ids,
                          rows([t.train_paths.inputs_NxT for t in tables]), length)
    tep = _stack_examples([t.test_paths for t in tables], pad_ids,
                          rows([t.test_paths.inputs_NxT for t in tables]), length)
    l_max = max(t.target_length for t in tables)
    test = _stack_prompts([t.test_prefix_QxP for t in tables], [t.test_targets_QxL for t in tables],
                          pad_ids, rows([t.test_prefix_QxP for t in tables]), p, l_max)
    trainp = _stack_prompts([t.train_prefix_PxP for t in tables], [t.train_targets_PxL for t in tables],
                            pad_ids, rows([t.train_prefix_PxP for t in tables]), p, l_max)

    srcs = [np.repeat(np.arange(t.num_nodes), np.diff(t.succ_indptr_N1)) for t in tables]
    k_max = max(len(s) for s in srcs)
    zeros, falses = [0] * len(tables), [False] * len(tables)
    recall_src = _stack_padded(srcs, (k_max,), zeros, np.int32)
    recall_dst = _stack_padded([t.succ_indices_K for t in tables], (k_max,), zeros, np.int32)
    recall_mask = _stack_padded([np.ones(len(s), bool) for s in srcs], (k_max,), falses, bool)
    out_degree = _stack_padded([np.diff(t.succ_indptr_N1) for t in tables], (n_max,), zeros, np.int32)
    node_mask = _stack_padded([np.ones(t.num_nodes, bool) for t in tables], (n_max,), falses, bool)
    pe = tables[0].edge_prefix_NxPe.shape[1]
    edge_prefix = _stack_padded([t.edge_prefix_NxPe for t in tables], (n_max, pe), pad_ids, np.int32)
    num_nodes_S = np.array([t.num_nodes for t in tables], np.int32)
    return StackedTables(
        *train, *edge, *trp, *tep, *test, *trainp,
        vocab_mask_SxV=np.arange(v)[None, :] < (num_nodes_S[:, None] + len(SPECIAL_TOKENS)),
        num_nodes_S=num_nodes_S, pad_id_S=np.array(pad_ids, np.int32),
        path_length_S=np.array([t.path_length for t in tables], np.int32),
        target_length_S=np.array([t.target_length for t in tables], np.int32),
        recall_src_SxK=recall_src, recall_dst_SxK=recall_dst, recall_mask_SxK=recall_mask,
        out_degree_SxN=out_degree, node_mask_SxN=node_mask, edge_prefix_SxNxPe=edge_prefix,
        edge_query_SxExPe=np.ascontiguousarray(edge[0][:, :, :pe]), edge_next_SxE=edge[1][:, :, pe - 1].copy())


# ---------------------------------------------------------------------------- in-context


def in_context_prefix_length(degree: int, path_length: int) -> int:
    """Tokens before the path: ``3·E`` edge tokens then ``/ source goal >``."""
    return 3 * degree * (path_length - 1) + 4


def _check_in_context(degree, path_length, num_values):
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ConfigError("graph.degree", degree, "an integer >= 1")
    if isinstance(path_length, bool) or not isinstance(path_length, (int, np.integer)) or path_length < 2:
        raise ConfigError("graph.path_length", path_length, "an integer >= 2")
    num_nodes = degree * (path_length - 1) + 1
    if isinstance(num_values, bool) or not isinstance(num_values, (int, np.integer)) or num_values < num_nodes:
        raise ConfigError("task.num_values", num_values,
                          f"an integer >= {num_nodes} (the nodes of one G({degree}, {path_length}))")


def _in_context_example(key, degree: int, path_length: int, num_values: int, teacherless: bool):
    arm = path_length - 1
    num_edges = degree * arm
    # Structural node index: root 0, node j (1-based) of arm a is 1 + a*arm + (j-1).
    child_E = np.arange(1, num_edges + 1)
    parent_E = np.where((child_E - 1) % arm == 0, 0, child_E - 1)
    # One draw of random bits serves both shuffles (argsort of 32-bit keys; ties have
    # probability ~n²/2^33 and only bias the order between the tied pair). Cheaper to
    # compile than two jax.random.permutation calls.
    key_bits, key_goal = jax.random.split(key)
    bits = jax.random.bits(key_bits, (num_values + num_edges,), jnp.uint32)
    labels_n = jnp.argsort(bits[:num_values])[:num_edges + 1].astype(jnp.int32)
    order_E = jnp.argsort(bits[num_values:])
    bar = jnp.full((num_edges,), num_values + SPECIAL_TOKENS.index("|"), jnp.int32)
    edge_tokens = jnp.stack([labels_n[parent_E][order_E], labels_n[child_E][order_E], bar], axis=1)
    goal_arm = jax.random.randint(key_goal, (), 0, degree)
    path_L = labels_n[jnp.concatenate([jnp.zeros((1,), jnp.int32),
                                       1 + goal_arm * arm + jnp.arange(arm, dtype=jnp.int32)])]
    sid = lambda name: jnp.full((1,), num_values + SPECIAL_TOKENS.index(name), jnp.int32)
    seq_S = jnp.concatenate([edge_tokens.reshape(-1), sid("/"), path_L[:1], path_L[-1:], sid(">"), path_L])
    p = in_context_prefix_length(degree, path_length)
    pos_T = jnp.arange(seq_S.shape[0] - 1)
    inputs_T = seq_S[:-1]
    if teacherless:
        inputs_T = jnp.where(pos_T >= p, num_values + SPECIAL_TOKENS.index("$"), inputs_T)
    weights_T = (pos_T >= p - 1).astype(jnp.float32)
    return Examples(inputs_T, seq_S[1:], weights_T)


@functools.partial(jax.jit, static_argnames=("batch_size", "degree", "path_length", "num_values",
                                              "teacherless"))
def _in_context_batch(key, batch_size, degree, path_length, num_values, teacherless):
    keys = jax.random.split(key, batch_size)
    return jax.vmap(lambda k: _in_context_example(k, degree, path_length, num_values, teacherless))(keys)


def in_context_batch(key, batch_size: int, degree: int, path_length: int, num_values: int,
                     teacherless: bool = False) -> Examples:
    """``batch_size`` fresh labelled path-stars as Examples of shape (B, 3E+3+ℓ) (format: module doc).

    Everything but ``key`` is static; the call works inside jit and vmap (over keys).
    Vocabulary size is ``num_values + 9``.
    """
    _check_in_context(degree, path_length, num_values)
    return _in_context_batch(key, batch_size=int(batch_size), degree=int(degree),
                             path_length=int(path_length), num_values=int(num_values),
                             teacherless=bool(teacherless))


def in_context_source_children(inputs_NxT, source_N, degree: int, path_length: int):
    """Each row's edge-list children and which of them hang off its source (the first decision's options).

    Returns ``(children_NxE, from_source_NxE)``: the ``v`` of every ``u v |`` triple in the prefix and
    whether its ``u`` is ``source_N``; exactly ``degree`` entries per row are True.
    """
    num_edges = degree * (path_length - 1)
    triples_NxEx3 = inputs_NxT[:, :3 * num_edges].reshape(inputs_NxT.shape[0], num_edges, 3)
    return triples_NxEx3[..., 1], triples_NxEx3[..., 0] == source_N[:, None]


def decode_in_context(example: Examples, num_values: int):
    """Parse one in-context example (1-D fields) into (edges_Ex2, source, goal, path_L) numpy values.

    The full sequence is recovered from ``inputs[0]`` and the targets, so teacherless
    examples decode too; ``path_L`` are the weighted target tokens.
    """
    inputs_T, targets_T, weights_T = (np.asarray(x) for x in example)
    seq_S = np.concatenate([inputs_T[:1], targets_T])
    sep = num_values + SPECIAL_TOKENS.index("/")
    bar = num_values + SPECIAL_TOKENS.index("|")
    slash = int(np.flatnonzero(seq_S == sep)[0])
    triples_Ex3 = seq_S[:slash].reshape(-1, 3)
    if not np.all(triples_Ex3[:, 2] == bar):
        raise ValueError("edge list is not a sequence of `u v |` triples")
    source, goal = int(seq_S[slash + 1]), int(seq_S[slash + 2])
    if seq_S[slash + 3] != num_values + SPECIAL_TOKENS.index(">"):
        raise ValueError("query is not followed by `>`")
    path_L = targets_T[weights_T > 0]
    return triples_Ex3[:, :2].astype(np.int64), source, goal, path_L.astype(np.int64)
