"""The token vocabulary and the in-weights examples of geomem_jax.tasks: the nine special tokens after
the node ids (special_id, vocab_size), the Examples triple (inputs, targets, weights), the static
TaskSpec layout with its config reader and lengths, and the edge and path examples built from a
graph as shifted, [PAD]-padded numpy token arrays (layout: the geomem_jax.tasks docstring).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

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
