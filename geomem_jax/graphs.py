"""Graph families of the paper, their path-query splits, and the release text format.

Everything here is plain numpy and deterministic from the graph seed.

Conventions
-----------
* ``Graph.forward_edges_Ex2`` holds every undirected edge exactly once, oriented
  "forward" (root->leaf for star/tree graphs, i->i+1 for cycles, right/down for
  grids, u<v for the irregular graph), sorted lexicographically.
* Path-star and tree-star graphs are built on "natural" ids (root 0, then nodes
  level by level / arm by arm) and relabelled with ``rng.permutation(N)``; the
  same generator then shuffles the leaves (or the root's children for subtree
  holdout), so one seed fixes both the labels and the split.
* Release format: ``<prefix>_pretrain.txt`` with one ``u=v`` directed edge per line,
  ``<prefix>_train_<P>.txt`` / ``<prefix>_test_<Q>.txt`` with ``leaf=root,...,leaf``.
  File names either geomem's (``default_prefix``) or the release builder's
  (``release_prefix``, parsed and chosen in release_format.py).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import pathlib
import re

import numpy as np
import scipy.sparse

from geomem_jax import release_format
from geomem_jax.errors import ConfigError, ReleaseFormatError, UserError

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


def _check_direction(direction) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError("graph.edges", direction, f"one of {list(DIRECTIONS)}")
    return direction


def _check_size(num_nodes: int, field: str) -> None:
    if num_nodes > MAX_NODES:
        raise ConfigError(field, num_nodes, f"a size giving at most {MAX_NODES} nodes")


def _sorted_edges(edges_Ex2: np.ndarray) -> np.ndarray:
    edges_Ex2 = np.asarray(edges_Ex2, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((edges_Ex2[:, 1], edges_Ex2[:, 0]))
    return edges_Ex2[order]


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


# -------------------------------------------------------------------------- make_graph


def _cfg_get(cfg, key, default=None):
    """cfg[key] for a dict or ConfigDict; ``default`` when absent or None."""
    try:
        value = cfg[key]
    except (KeyError, AttributeError, TypeError):
        return default
    return default if value is None else value


def _require(cfg, key):
    value = _cfg_get(cfg, key)
    if value is None:
        raise ConfigError(f"graph.{key}", None, "a value (required for this family)")
    return value


def make_graph(graph_cfg) -> Graph:
    """Build the graph a config section describes.

    ``graph_cfg`` is a mapping or ml_collections.ConfigDict with keys family, degree,
    path_length, branching, rows, cols, num_nodes, seed, train_fraction, holdout,
    release_dir, self_edges, edges. A non-empty ``release_dir`` is read with
    :func:`read_release_dir` (the dataset matching ``self_edges`` and ``edges``) and the
    family generator is ignored. Raises ConfigError when a family with paths would have
    no held-out (test) paths, or a release dataset has one path split but not the other.
    """
    release_dir = _cfg_get(graph_cfg, "release_dir")
    if release_dir not in (None, ""):
        graph = read_release_dir(release_dir, self_edges=_cfg_get(graph_cfg, "self_edges"),
                                 edges=_cfg_get(graph_cfg, "edges"))
        check_release_splits(graph)
        return graph

    family = _cfg_get(graph_cfg, "family")
    seed = _cfg_get(graph_cfg, "seed", 0)
    frac = _cfg_get(graph_cfg, "train_fraction", DEFAULT_TRAIN_FRACTION)
    if family == "path_star":
        graph = path_star(_require(graph_cfg, "degree"), _require(graph_cfg, "path_length"),
                          seed=seed, train_fraction=frac)
    elif family == "tree_star":
        graph = tree_star(_require(graph_cfg, "degree"), _require(graph_cfg, "path_length"),
                          _require(graph_cfg, "branching"), seed=seed, train_fraction=frac,
                          holdout=_cfg_get(graph_cfg, "holdout", "leaf"))
    elif family == "cycle":
        graph = cycle(_require(graph_cfg, "num_nodes"))
    elif family == "grid":
        graph = grid(_require(graph_cfg, "rows"), _require(graph_cfg, "cols"))
    elif family == "irregular":
        graph = irregular()
    else:
        raise ConfigError("graph.family", family,
                          f"one of {list(FAMILIES)} (or set graph.release_dir)")
    check_split_nonempty(graph)
    return graph


def check_release_splits(graph: Graph) -> None:
    """Raise ConfigError("graph.release_dir") when a dataset read from files has train paths
    but no test paths or the other way round (the release's builder writes both)."""
    num_train, num_test = graph.train_paths_PxL.shape[0], graph.test_paths_QxL.shape[0]
    if (num_train > 0) == (num_test > 0):
        return
    prefix = graph.spec["prefix"]
    have, missing = (f"train_{num_train}", "test_<Q>") if num_train else (f"test_{num_test}", "train_<P>")
    raise ConfigError("graph.release_dir", graph.spec["release_dir"],
                      f"a folder with {prefix}_{missing}.txt beside {prefix}_{have}.txt "
                      "(the release's builder writes both path splits)")


def check_split_nonempty(graph: Graph) -> None:
    """Raise ConfigError("graph.train_fraction") when a graph with paths has no test paths."""
    if graph.has_paths and graph.test_paths_QxL.shape[0] == 0:
        num_leaves = graph.train_paths_PxL.shape[0]
        raise ConfigError("graph.train_fraction", graph.spec.get("train_fraction"),
                          f"a fraction leaving at least one of the {num_leaves} leaves "
                          "held out for testing")


# ------------------------------------------------------------------- release format


def is_from_release(graph: Graph) -> bool:
    """True for a graph read from release-format files (its spec holds the folder and prefix)."""
    return "release_dir" in graph.spec


def default_prefix(graph: Graph) -> str:
    """File prefix for a graph: e.g. path_star_d4_l5_s0, tree_star_d2_l4_k2_s0, cycle_n15.

    A graph read from files keeps the prefix it was read under.
    """
    s = graph.spec
    if is_from_release(graph):
        return s["prefix"]
    if graph.family == "path_star":
        prefix = f"path_star_d{s['degree']}_l{s['path_length']}_s{s['seed']}"
    elif graph.family == "tree_star":
        prefix = f"tree_star_d{s['degree']}_l{s['path_length']}_k{s['branching']}_s{s['seed']}"
        if s.get("holdout", "leaf") != "leaf":
            prefix += f"_{s['holdout']}"
    elif graph.family == "cycle":
        return f"cycle_n{s['num_nodes']}"
    elif graph.family == "grid":
        return f"grid_r{s['rows']}_c{s['cols']}"
    else:
        return graph.family
    if s.get("train_fraction", DEFAULT_TRAIN_FRACTION) != DEFAULT_TRAIN_FRACTION:
        prefix += f"_f{s['train_fraction']:g}"
    return prefix


def release_prefix(graph: Graph, direction: str = "both", self_edges: bool = False) -> str:
    """The prefix the release's builder gives this graph, e.g.
    star_deg_4_deg_tree_1_path_5_nodes_17_sd_00_fb_11_selfedge_0.

    The seed and train fraction are not part of the release's names. A graph read from
    release-named files keeps its own sd token. Raises UserError for a graph read from
    files whose names do not say its family.
    """
    _check_direction(direction)
    if is_from_release(graph):
        name = release_format.parse_prefix(graph.spec["prefix"])
        if name is None:
            raise UserError(f"--naming=release: {graph.spec['release_dir']} holds files named "
                            f"{graph.spec['prefix']}_*, which do not say the graph family; "
                            "give --prefix=NAME or export a generated graph")
        return dataclasses.replace(name, edges=direction, self_edges=bool(self_edges)).prefix
    s = graph.spec
    if graph.family in ("path_star", "tree_star"):
        sizes = {"degree": s["degree"], "branching": s.get("branching", 1), "path_length": s["path_length"],
                 "num_nodes": graph.num_nodes}
    elif graph.family == "grid":
        sizes = {"rows": s["rows"], "cols": s["cols"], "num_nodes": graph.num_nodes}
    elif graph.family == "irregular":
        sizes = {"num_nodes": graph.num_nodes, "num_edges": graph.num_edges}
    else:
        sizes = {"num_nodes": graph.num_nodes}
    name = release_format.ReleaseName(graph.family, sizes, release_format.DEFAULT_SD, direction, bool(self_edges))
    return name.prefix


def _edge_lines(edges_Ex2: np.ndarray) -> str:
    return "".join(f"{u}={v}\n" for u, v in edges_Ex2.tolist())


def _path_lines(paths_PxL: np.ndarray, start_in_prefix: bool = False) -> str:
    """``leaf=root,...,leaf`` lines (``root,leaf=root,...,leaf`` with the start node in the prefix)."""
    lines = []
    for p in paths_PxL.tolist():
        head = f"{p[0]},{p[-1]}" if start_in_prefix else f"{p[-1]}"
        lines.append(head + "=" + ",".join(map(str, p)) + "\n")
    return "".join(lines)


def write_release_dir(graph: Graph, out_dir, prefix: str | None = None, direction: str = "both",
                      self_edges: bool = False, naming: str = "geomem") -> list[pathlib.Path]:
    """Write ``graph`` in the release layout; returns the files written.

    ``<prefix>_pretrain.txt`` always; ``<prefix>_train_<P>.txt`` and
    ``<prefix>_test_<Q>.txt`` when the graph has paths (a split with no paths
    writes no file, since the release format has no empty files). Without a
    ``prefix``, ``naming="geomem"`` uses :func:`default_prefix` and ``"release"``
    :func:`release_prefix` (the names the release's trainer looks for).
    """
    _check_direction(direction)
    if naming not in release_format.NAMINGS:
        raise ConfigError("naming", naming, f"one of {list(release_format.NAMINGS)}")
    if prefix is None:
        prefix = default_prefix(graph) if naming == "geomem" else release_prefix(graph, direction, self_edges)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    edges_Ex2 = graph.directed_edges(direction, self_edges)
    pretrain = out / f"{prefix}_pretrain.txt"
    if edges_Ex2.shape[0] == 0:
        raise ReleaseFormatError(pretrain, None, "the graph has no edges to write "
                                 "(the release format cannot hold an edgeless graph)")
    pretrain.write_text(_edge_lines(edges_Ex2))
    written = [pretrain]
    start_in_prefix = graph.spec.get("path_prefix") == START_LEAF_PREFIX
    if graph.has_paths:
        for split, paths in (("train", graph.train_paths_PxL), ("test", graph.test_paths_QxL)):
            if paths.shape[0] == 0:
                continue
            path = out / f"{prefix}_{split}_{paths.shape[0]}.txt"
            path.write_text(_path_lines(paths, start_in_prefix))
            written.append(path)
    return written


LEAF_PREFIX, START_LEAF_PREFIX = "leaf", "start,leaf"  # the two path-line prefixes the release writes
_EDGE_RE = re.compile(r"(\d+)=(\d+)")
_PATH_RE = re.compile(r"(?:(\d+),)?(\d+)=(\d+(?:,\d+)*)")


def _read_lines(path: pathlib.Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line_no = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ReleaseFormatError(path, line_no, f"not UTF-8 text (byte {err.object[err.start]:#04x})") from None
    if text.strip() == "":
        raise ReleaseFormatError(path, None, "file is empty")
    return text.splitlines()


def _parse_edges(path: pathlib.Path) -> np.ndarray:
    pairs = []
    for line_no, line in enumerate(_read_lines(path), start=1):
        m = _EDGE_RE.fullmatch(line.strip())
        if m is None:
            raise ReleaseFormatError(path, line_no, f"expected 'u=v' with non-negative integers, got {line!r}")
        pairs.append((int(m.group(1)), int(m.group(2))))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _parse_paths(path: pathlib.Path) -> tuple[list[list[int]], str]:
    """The paths of one file and its prefix style (LEAF_PREFIX or START_LEAF_PREFIX)."""
    rows, styles = [], set()
    for line_no, line in enumerate(_read_lines(path), start=1):
        m = _PATH_RE.fullmatch(line.strip())
        if m is None:
            raise ReleaseFormatError(path, line_no, f"expected 'leaf=root,...,leaf', got {line!r}")
        start, leaf = m.group(1), int(m.group(2))
        nodes = [int(x) for x in m.group(3).split(",")]
        if len(nodes) < 2:
            raise ReleaseFormatError(path, line_no, "a path needs at least a root and a leaf")
        if leaf != nodes[-1]:
            raise ReleaseFormatError(path, line_no,
                                     f"leaf {leaf} before '=' differs from the last node {nodes[-1]}")
        if start is not None and int(start) != nodes[0]:
            raise ReleaseFormatError(path, line_no,
                                     f"start {start} before '=' differs from the first node {nodes[0]}")
        styles.add(LEAF_PREFIX if start is None else START_LEAF_PREFIX)
        if len(styles) > 1:
            raise ReleaseFormatError(path, line_no, "mixes 'leaf=' and 'start,leaf=' prefixes")
        rows.append(nodes)
    return rows, styles.pop()


def _find_release_files(root: pathlib.Path, self_edges=None, edges=None):
    """(pretrain file, prefix, train file or None, test file or None) of the dataset to read."""
    if not root.is_dir():
        raise ReleaseFormatError(root, None, "release dir does not exist or is not a directory")
    prefixes = sorted(p.name[: -len("_pretrain.txt")] for p in root.glob("*_pretrain.txt"))
    if not prefixes:
        raise ReleaseFormatError(root, None, "no *_pretrain.txt edges file")
    prefix = release_format.choose_prefix(prefixes, root, self_edges=self_edges, edges=edges)
    found = {}
    for split in ("train", "test"):
        pattern = re.compile(re.escape(prefix) + rf"_{split}_(\d+)\.txt")
        matches = sorted(p for p in root.iterdir() if pattern.fullmatch(p.name))
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise ReleaseFormatError(root, None, f"more than one {prefix}_{split}_*.txt file: {names}")
        found[split] = matches[0] if matches else None
    return root / f"{prefix}_pretrain.txt", prefix, found["train"], found["test"]


def read_release_dir(path, self_edges: bool | None = None, edges: str | None = None) -> Graph:
    """Read one dataset of a release-format folder into a Graph.

    The folder may hold several datasets side by side, as the release's builder leaves
    them (the plain and the self-edge variant): the one whose name fits ``self_edges``
    and ``edges`` (``graph.self_edges``, ``graph.edges``; None fits any) is read, see
    :func:`release_format.choose_prefix`. A release-named dataset gets the family and
    sizes its name says (and the name is checked against the contents); any other
    prefix gives family "release".

    Infers num_nodes (max id + 1; every id must occur in an edge), the edge direction
    (from the name's ``fb`` flags, else "both" when every edge has its reverse, else
    "forward"/"backward" as oriented by the paths, or by which orientation is sorted
    when there are no paths), self-edges, and the splits. The root is the first node
    shared by every path; paths that start at different nodes (the release's cycle,
    grid and irregular datasets) are kept as path queries with ``root=None``. Any
    ``u=u`` line sets ``spec["self_edges"]``; writing back then emits one per node.
    """
    root_dir = pathlib.Path(path)
    pretrain, prefix, train_file, test_file = _find_release_files(root_dir, self_edges, edges)
    name = release_format.parse_prefix(prefix)
    lines_Ex2 = _parse_edges(pretrain)

    is_self_E = lines_Ex2[:, 0] == lines_Ex2[:, 1]
    has_self_edges = bool(is_self_E.any())
    directed_Ex2 = lines_Ex2[~is_self_E]
    num_nodes = int(lines_Ex2.max()) + 1
    seen_N = np.zeros(num_nodes, dtype=bool)
    seen_N[lines_Ex2.reshape(-1)] = True
    if not seen_N.all():
        missing = int(np.flatnonzero(~seen_N)[0])
        raise ReleaseFormatError(pretrain, None, f"node ids must be 0..{num_nodes - 1} and each "
                                 f"must appear in an edge; id {missing} never appears")

    # Detect duplicates and pairing on integer keys (u*N+v) rather than Python sets.
    all_key_E = lines_Ex2[:, 0] * num_nodes + lines_Ex2[:, 1]
    _, first_idx = np.unique(all_key_E, return_index=True)
    if first_idx.shape[0] < all_key_E.shape[0]:
        is_first_E = np.zeros(all_key_E.shape[0], dtype=bool)
        is_first_E[first_idx] = True
        line_no = int(np.flatnonzero(~is_first_E)[0]) + 1
        raise ReleaseFormatError(pretrain, line_no, "duplicate edge")
    key_E = directed_Ex2[:, 0] * num_nodes + directed_Ex2[:, 1]
    uniq = np.unique(key_E)
    reverse_key_E = directed_Ex2[:, 1] * num_nodes + directed_Ex2[:, 0]
    has_reverse_E = np.isin(reverse_key_E, uniq)

    paths, path_prefix = {}, LEAF_PREFIX
    for split, file in (("train", train_file), ("test", test_file)):
        rows = []
        if file is not None:
            rows, path_prefix = _parse_paths(file)
        paths[split] = rows, file

    if has_reverse_E.all() and (name is None or name.edges == "both"):
        direction = "both"
        # Keep, of each pair, the orientation written first (the forward block).
        canon_E = np.minimum(key_E, reverse_key_E)
        _, first_of_pair = np.unique(canon_E, return_index=True)
        forward_Ex2 = directed_Ex2[np.sort(first_of_pair)]
    elif not has_reverse_E.any() and (name is None or name.edges != "both"):
        direction = name.edges if name is not None else _one_way_direction(directed_Ex2, paths, num_nodes)
        forward_Ex2 = directed_Ex2 if direction == "forward" else directed_Ex2[:, ::-1]
    elif name is not None and (has_reverse_E.all() or not has_reverse_E.any()):
        raise ReleaseFormatError(pretrain, None, f"the name says edges {name.edges!r} (fb_"
                                 f"{release_format.FB_BY_DIRECTION[name.edges]}) but the file holds "
                                 f"{'both directions' if has_reverse_E.all() else 'one direction'} of every edge")
    else:
        bad = int(np.flatnonzero(~has_reverse_E)[0])
        raise ReleaseFormatError(pretrain, None, "edges must be either all paired with their "
                                 f"reverse or all one-way; {directed_Ex2[bad, 0]}={directed_Ex2[bad, 1]} "
                                 "has no reverse but other edges do")
    forward_Ex2 = _sorted_edges(forward_Ex2)

    train_PxL, test_QxL, root = _check_paths(paths, forward_Ex2, num_nodes)
    spec = {"family": "release", "release_dir": str(root_dir), "prefix": prefix,
            "edges": direction, "self_edges": has_self_edges, "path_prefix": path_prefix}
    if name is not None:
        _check_against_name(name, pretrain, paths, num_nodes, has_self_edges, root)
        spec.update(family=name.family, **name.sizes)
    return Graph(spec["family"], num_nodes, forward_Ex2, root, train_PxL, test_QxL, spec)


def _check_against_name(name, pretrain: pathlib.Path, paths, num_nodes: int, has_self_edges: bool, root) -> None:
    """A release-named dataset must hold what its name says (sizes, self-edges, a root for stars)."""
    if name.sizes["num_nodes"] != num_nodes:
        raise ReleaseFormatError(pretrain, None, f"the name says nodes_{name.sizes['num_nodes']} "
                                 f"but the edges have {num_nodes} nodes")
    if name.self_edges != has_self_edges:
        raise ReleaseFormatError(pretrain, None, f"the name says selfedge_{int(name.self_edges)} but the file "
                                 f"{'has' if has_self_edges else 'has no'} u=u lines")
    for rows, file in paths.values():
        if rows and "path_length" in name.sizes and len(rows[0]) != name.sizes["path_length"]:
            raise ReleaseFormatError(file, 1, f"path has {len(rows[0])} nodes but the name says "
                                     f"path_{name.sizes['path_length']}")
        if rows and name.family in ("path_star", "tree_star") and root is None:
            raise ReleaseFormatError(file, None, "a star dataset's paths must all start at its root")


def _one_way_direction(directed_Ex2: np.ndarray, paths, num_nodes: int) -> str:
    """Decide whether a one-way edge file holds forward or backward edges."""
    steps = [(p[i], p[i + 1]) for rows, _ in paths.values() for p in rows for i in range(len(p) - 1)]
    if steps:
        key = set((directed_Ex2[:, 0] * num_nodes + directed_Ex2[:, 1]).tolist())
        along = sum((u * num_nodes + v) in key for u, v in steps)
        return "forward" if along * 2 >= len(steps) else "backward"
    # No paths: a file this module wrote is sorted in its forward orientation.
    key_fwd = directed_Ex2[:, 0] * num_nodes + directed_Ex2[:, 1]
    key_bwd = directed_Ex2[:, 1] * num_nodes + directed_Ex2[:, 0]
    fwd_sorted, bwd_sorted = np.all(np.diff(key_fwd) > 0), np.all(np.diff(key_bwd) > 0)
    if fwd_sorted and bwd_sorted:
        # Ambiguous (e.g. a single row of a grid): natural-id families point mostly u < v.
        increasing = int(np.sum(directed_Ex2[:, 0] < directed_Ex2[:, 1]))
        return "forward" if 2 * increasing >= len(directed_Ex2) else "backward"
    return "backward" if bwd_sorted else "forward"


def _split_count(file: pathlib.Path) -> int:
    """The P of ``<prefix>_train_<P>.txt`` (Q of ``_test_<Q>``)."""
    return int(file.name[: -len(".txt")].rsplit("_", 1)[1])


def _check_paths(paths, forward_Ex2: np.ndarray, num_nodes: int):
    """(train (P, L), test (Q, L), root or None) after checking lengths, ids, walks and counts."""
    adj_keys = np.concatenate([forward_Ex2[:, 0] * num_nodes + forward_Ex2[:, 1],
                               forward_Ex2[:, 1] * num_nodes + forward_Ex2[:, 0]])
    adj_keys = np.unique(adj_keys)
    length = None
    starts = set()
    arrays = {}
    for split in ("train", "test"):
        rows, file = paths[split]
        for line_no, nodes in enumerate(rows, start=1):
            if length is None:
                length = len(nodes)
            if len(nodes) != length:
                raise ReleaseFormatError(file, line_no, f"path has {len(nodes)} nodes but "
                                         f"earlier paths have {length}")
            bad = [x for x in nodes if x >= num_nodes]
            if bad:
                raise ReleaseFormatError(file, line_no, f"node id {bad[0]} is outside 0..{num_nodes - 1} "
                                         "(never seen in the edges file)")
            starts.add(nodes[0])
        if rows:
            arr = np.array(rows, dtype=np.int64)
            step_keys = (arr[:, :-1] * num_nodes + arr[:, 1:])
            ok_PxS = np.isin(step_keys, adj_keys)
            if not ok_PxS.all():
                p, s = (int(i[0]) for i in np.nonzero(~ok_PxS))
                raise ReleaseFormatError(file, p + 1, f"not a walk in the graph: {arr[p, s]} and "
                                         f"{arr[p, s + 1]} are not adjacent")
            if _split_count(file) != arr.shape[0]:
                raise ReleaseFormatError(file, None, f"holds {arr.shape[0]} paths but its name says "
                                         f"{_split_count(file)}")
            arrays[split] = arr
    if length is None:
        return _EMPTY_PATHS, _EMPTY_PATHS, None
    empty = np.zeros((0, length), dtype=np.int64)
    root = int(starts.pop()) if len(starts) == 1 else None
    return arrays.get("train", empty), arrays.get("test", empty), root


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
