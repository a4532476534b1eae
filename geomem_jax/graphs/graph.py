"""The Graph type of geomem_jax.graphs: an undirected graph with its root->leaf path queries split
into train/test, its methods (directed edge lists, adjacency, degrees, successors), its JSON summary,
the package's constants (families, edge directions, holdouts, size guard) and the two helpers the
builders and the release reader share (edge-direction check, lexicographic edge sort).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse

from geomem_jax.errors import ConfigError

FAMILIES = ("path_star", "tree_star", "cycle", "grid", "irregular")
DIRECTIONS = ("both", "forward", "backward")
HOLDOUTS = ("leaf", "subtree")
DEFAULT_TRAIN_FRACTION = 0.75
MAX_NODES = 100_000_000  # guards tree-star sizes that would exhaust memory

_EMPTY_PATHS = np.zeros((0, 0), dtype=np.int64)


# ----------------------------------------------------------------------------- Graph


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """An undirected graph plus its root->leaf path queries split into train/test."""

    family: str
    num_nodes: int
    forward_edges_Ex2: np.ndarray
    root: int | None
    train_paths_PxL: np.ndarray
    test_paths_QxL: np.ndarray
    spec: dict

    def __post_init__(self):
        # Freeze the arrays too, so a Graph shared between tasks cannot be mutated.
        for name in ("forward_edges_Ex2", "train_paths_PxL", "test_paths_QxL"):
            arr = np.array(getattr(self, name), dtype=np.int64, copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def has_paths(self) -> bool:
        """True when the graph has root->leaf path queries (train or test)."""
        return self.path_length > 0

    @property
    def path_length(self) -> int:
        """Nodes per root->leaf path including the root; 0 when there are no paths."""
        return int(max(self.train_paths_PxL.shape[1], self.test_paths_QxL.shape[1]))

    @property
    def num_edges(self) -> int:
        """Number of undirected edges."""
        return int(self.forward_edges_Ex2.shape[0])

    def directed_edges(self, direction: str = "both", self_edges: bool = False) -> np.ndarray:
        """Directed edges ``(E', 2)`` in release order.

        Forward edges (sorted), then for "both" their reverses in the same order,
        then the self-edges (u, u) for every node if ``self_edges``.
        "backward" gives only the reverses.
        """
        _check_direction(direction)
        fwd_Ex2 = self.forward_edges_Ex2
        blocks = []
        if direction in ("both", "forward"):
            blocks.append(fwd_Ex2)
        if direction in ("both", "backward"):
            blocks.append(fwd_Ex2[:, ::-1])
        if self_edges:
            ids_N = np.arange(self.num_nodes, dtype=np.int64)
            blocks.append(np.stack([ids_N, ids_N], axis=1))
        return np.ascontiguousarray(np.concatenate(blocks, axis=0), dtype=np.int64)

    def adjacency(self) -> scipy.sparse.csr_matrix:
        """Undirected symmetric 0/1 float64 adjacency (N x N), no self loops."""
        n = self.num_nodes
        src_E, dst_E = self.forward_edges_Ex2[:, 0], self.forward_edges_Ex2[:, 1]
        rows = np.concatenate([src_E, dst_E])
        cols = np.concatenate([dst_E, src_E])
        data = np.ones(rows.shape[0], dtype=np.float64)
        adj = scipy.sparse.csr_matrix((data, (rows, cols)), shape=(n, n))
        adj.sum_duplicates()
        adj.sort_indices()
        return adj

    def degrees(self) -> np.ndarray:
        """Undirected degree of every node, shape (N,), int64."""
        ends = self.forward_edges_Ex2.reshape(-1)
        return np.bincount(ends, minlength=self.num_nodes).astype(np.int64)

    def successors(self, direction: str = "both", self_edges: bool = False):
        """Out-neighbours per node for a directed edge set, as CSR arrays.

        Returns ``(indptr_N1, indices)``: the successors of node u are
        ``indices[indptr_N1[u]:indptr_N1[u+1]]``, sorted ascending.
        """
        edges_Ex2 = self.directed_edges(direction, self_edges)
        order = np.lexsort((edges_Ex2[:, 1], edges_Ex2[:, 0]))
        indices = edges_Ex2[order, 1].copy()
        counts_N = np.bincount(edges_Ex2[:, 0], minlength=self.num_nodes)
        indptr_N1 = np.zeros(self.num_nodes + 1, dtype=np.int64)
        np.cumsum(counts_N, out=indptr_N1[1:])
        return indptr_N1, indices

    def all_paths(self) -> np.ndarray:
        """Train paths followed by test paths, shape (P+Q, L)."""
        if not self.has_paths:
            return _EMPTY_PATHS
        return np.concatenate([self.train_paths_PxL, self.test_paths_QxL], axis=0)


def _check_direction(direction) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError("graph.edges", direction, f"one of {list(DIRECTIONS)}")
    return direction


def _sorted_edges(edges_Ex2: np.ndarray) -> np.ndarray:
    edges_Ex2 = np.asarray(edges_Ex2, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((edges_Ex2[:, 1], edges_Ex2[:, 0]))
    return edges_Ex2[order]


def graph_summary(graph: Graph) -> dict:
    """JSON-able description: sizes, root, path length, split sizes and the spec."""
    return {
        "family": graph.family,
        "num_nodes": int(graph.num_nodes),
        "num_edges": graph.num_edges,
        "root": None if graph.root is None else int(graph.root),
        "path_length": graph.path_length,
        "num_train_paths": int(graph.train_paths_PxL.shape[0]),
        "num_test_paths": int(graph.test_paths_QxL.shape[0]),
        "spec": dict(graph.spec),
    }
