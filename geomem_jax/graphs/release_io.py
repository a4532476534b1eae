"""Release-folder I/O of geomem_jax.graphs: the file prefixes (geomem's default_prefix and the release
builder's release_prefix), write_release_dir (``u=v`` edge lines, ``leaf=root,...,leaf`` path
lines), read_release_dir with its parsing and checks (ReleaseFormatError naming file and line),
and is_from_release. Name parsing and choice live in geomem_jax.release_format; this module reads
and writes the files.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np

from geomem_jax import release_format
from geomem_jax.errors import ConfigError, ReleaseFormatError, UserError
from geomem_jax.graphs.graph import _EMPTY_PATHS, DEFAULT_TRAIN_FRACTION, Graph, _check_direction, _sorted_edges


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
    """Read one dataset of a release-format folder into a Graph (long on purpose: the format's
    inference steps below, in the order the docstring lists them).

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
