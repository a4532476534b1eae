"""One experiment's task tables: build_task_tables turns a graph and a TaskSpec into every token
table a run needs (mixed train set, edge / train-path / test-path examples, decoding prompts and
targets, the successor CSR and the per-node edge queries), all padded to one sequence length T.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from geomem_jax.errors import ConfigError
from geomem_jax.tasks.examples import (
    Examples,
    TaskSpec,
    _edge_sequences,
    _path_sequences,
    edge_examples,
    edge_prefix_length,
    path_examples,
    prefix_length,
    target_length,
    vocab_size,
)

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
