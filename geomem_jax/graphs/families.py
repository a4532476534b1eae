"""The paper's graph families as deterministic numpy generators: path-star G(d, l), tree-star
T(d, l, k) (leaf or subtree holdout), cycle C(n), grid R(r, c) and the fixed 16-node irregular
graph, with the checks of their arguments (each raising ConfigError naming the graph.* key).
Node relabelling and the train/test split of star and tree graphs follow from the seed alone.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from geomem_jax.errors import ConfigError
from geomem_jax.graphs.graph import (
    _EMPTY_PATHS,
    DEFAULT_TRAIN_FRACTION,
    HOLDOUTS,
    MAX_NODES,
    Graph,
    _sorted_edges,
)

# ------------------------------------------------------------------------ validation


def _check_int(field: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(field, value, f"an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(field, value, f"an integer >= {minimum}")
    return int(value)


def _check_fraction(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 < value < 1.0):
        raise ConfigError("graph.train_fraction", value, "a number strictly between 0 and 1")
    return float(value)


def _check_size(num_nodes: int, field: str) -> None:
    if num_nodes > MAX_NODES:
        raise ConfigError(field, num_nodes, f"a size giving at most {MAX_NODES} nodes")


def _split_counts(num_items: int, train_fraction: float) -> int:
    return int(math.floor(train_fraction * num_items))


# --------------------------------------------------------------------------- families


def path_star(degree: int, path_length: int, seed: int = 0,
              train_fraction: float = DEFAULT_TRAIN_FRACTION) -> Graph:
    """Path-star G(d, l): a root with ``degree`` disjoint arms of ``path_length-1`` nodes.

    Node ids are a random permutation from ``seed``; the leaves are shuffled with the
    same generator and the first floor(train_fraction*d) become train queries.
    """
    d = _check_int("graph.degree", degree, 1)
    ell = _check_int("graph.path_length", path_length, 2)
    seed = _check_int("graph.seed", seed, 0)
    frac = _check_fraction(train_fraction)
    arm = ell - 1
    num_nodes = d * arm + 1
    _check_size(num_nodes, "graph.degree")

    # Natural ids: root 0, arm a holds 1 + a*arm + j for j = 0..arm-1 (root side first).
    natural_paths_DxL = np.zeros((d, ell), dtype=np.int64)
    natural_paths_DxL[:, 1:] = 1 + np.arange(d * arm, dtype=np.int64).reshape(d, arm)
    rng = np.random.default_rng(seed)
    perm_N = rng.permutation(num_nodes).astype(np.int64)
    paths_DxL = perm_N[natural_paths_DxL]
    edges_Ex2 = np.stack([paths_DxL[:, :-1], paths_DxL[:, 1:]], axis=-1).reshape(-1, 2)

    leaf_order_D = rng.permutation(d)
    num_train = _split_counts(d, frac)
    spec = {"family": "path_star", "degree": d, "path_length": ell, "seed": seed,
            "train_fraction": frac}
    return Graph("path_star", num_nodes, _sorted_edges(edges_Ex2), int(perm_N[0]),
                 paths_DxL[leaf_order_D[:num_train]], paths_DxL[leaf_order_D[num_train:]], spec)


def tree_star(degree: int, path_length: int, branching: int, seed: int = 0,
              train_fraction: float = DEFAULT_TRAIN_FRACTION, holdout: str = "leaf") -> Graph:
    """Tree-star T(d, l, k): root of degree d, then complete k-ary subtrees; depth l-1.

    ``holdout="leaf"`` shuffles all leaves; ``holdout="subtree"`` shuffles the root's
    children and keeps every leaf under the first floor(train_fraction*d) for training
    (leaves within a subtree in natural order).
    """
    d = _check_int("graph.degree", degree, 1)
    ell = _check_int("graph.path_length", path_length, 2)
    k = _check_int("graph.branching", branching, 2)
    seed = _check_int("graph.seed", seed, 0)
    frac = _check_fraction(train_fraction)
    if holdout not in HOLDOUTS:
        raise ConfigError("graph.holdout", holdout, f"one of {list(HOLDOUTS)}")
    depth = ell - 1
    num_nodes = 1 + d * (k**depth - 1) // (k - 1)  # exact integer arithmetic
    _check_size(num_nodes, "graph.path_length")
    num_leaves = d * k ** (depth - 1)

    # Natural ids level by level: level j >= 1 has d*k^(j-1) nodes starting at offset_j;
    # the node at in-level index i has parent index i // k on level j-1.
    level_sizes = [1] + [d * k ** (j - 1) for j in range(1, depth + 1)]
    offsets = np.concatenate([[0], np.cumsum(level_sizes)[:-1]]).astype(np.int64)
    leaf_index_F = np.arange(num_leaves, dtype=np.int64)
    natural_paths_FxL = np.zeros((num_leaves, ell), dtype=np.int64)
    for level in range(1, depth + 1):
        natural_paths_FxL[:, level] = offsets[level] + leaf_index_F // k ** (depth - level)
    edge_blocks = []
    for level in range(1, depth + 1):
        child_i = np.arange(level_sizes[level], dtype=np.int64)
        parent = offsets[level - 1] + (child_i // k if level >= 2 else 0 * child_i)
        edge_blocks.append(np.stack([parent, offsets[level] + child_i], axis=1))
    natural_edges_Ex2 = np.concatenate(edge_blocks, axis=0)

    rng = np.random.default_rng(seed)
    perm_N = rng.permutation(num_nodes).astype(np.int64)
    paths_FxL = perm_N[natural_paths_FxL]
    edges_Ex2 = perm_N[natural_edges_Ex2]

    if holdout == "leaf":
        leaf_order_F = rng.permutation(num_leaves)
        num_train = _split_counts(num_leaves, frac)
    else:
        leaves_per_child = k ** (depth - 1)
        child_order_D = rng.permutation(d)
        leaf_order_F = (child_order_D[:, None] * leaves_per_child
                        + np.arange(leaves_per_child)[None, :]).reshape(-1)
        num_train = _split_counts(d, frac) * leaves_per_child
    spec = {"family": "tree_star", "degree": d, "path_length": ell, "branching": k,
            "seed": seed, "train_fraction": frac, "holdout": holdout}
    return Graph("tree_star", num_nodes, _sorted_edges(edges_Ex2), int(perm_N[0]),
                 paths_FxL[leaf_order_F[:num_train]], paths_FxL[leaf_order_F[num_train:]], spec)


def cycle(num_nodes: int) -> Graph:
    """Cycle C(n): edges (i, i+1 mod n), natural ids, no paths."""
    n = _check_int("graph.num_nodes", num_nodes, 3)
    _check_size(n, "graph.num_nodes")
    ids_N = np.arange(n, dtype=np.int64)
    edges_Ex2 = np.stack([ids_N, (ids_N + 1) % n], axis=1)
    return Graph("cycle", n, _sorted_edges(edges_Ex2), None, _EMPTY_PATHS, _EMPTY_PATHS,
                 {"family": "cycle", "num_nodes": n})


def grid(rows: int, cols: int) -> Graph:
    """Grid R(r, c): 4-neighbour lattice, row-major ids; edges point right and down."""
    r = _check_int("graph.rows", rows, 1)
    c = _check_int("graph.cols", cols, 1)
    _check_size(r * c, "graph.rows")
    ids_RxC = np.arange(r * c, dtype=np.int64).reshape(r, c)
    right_Ex2 = np.stack([ids_RxC[:, :-1].ravel(), ids_RxC[:, 1:].ravel()], axis=1)
    down_Ex2 = np.stack([ids_RxC[:-1, :].ravel(), ids_RxC[1:, :].ravel()], axis=1)
    edges_Ex2 = np.concatenate([right_Ex2, down_Ex2], axis=0)
    return Graph("grid", r * c, _sorted_edges(edges_Ex2), None, _EMPTY_PATHS, _EMPTY_PATHS,
                 {"family": "grid", "rows": r, "cols": c})


def irregular() -> Graph:
    """The fixed 16-node graph: 12-cycle 0..11 with chords 1-3 and 5-8, plus K4 on 12..15."""
    ring = [(i, (i + 1) % 12) for i in range(12)]
    chords = [(1, 3), (5, 8)]
    k4 = [(u, v) for u in range(12, 16) for v in range(u + 1, 16)]
    edges_Ex2 = np.sort(np.array(ring + chords + k4, dtype=np.int64), axis=1)  # u < v
    return Graph("irregular", 16, _sorted_edges(edges_Ex2), None, _EMPTY_PATHS, _EMPTY_PATHS,
                 {"family": "irregular"})
