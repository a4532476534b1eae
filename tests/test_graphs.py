"""Tests of geomem_jax.graphs against closed forms, hand-built graphs and scipy references."""

import json
import math
import time

import ml_collections
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

from geomem_jax import graphs
from geomem_jax.errors import ConfigError, ReleaseFormatError

# ----------------------------------------------------------------------------- helpers


def edge_set(edges_Ex2):
    return {tuple(e) for e in np.asarray(edges_Ex2).tolist()}


def undirected_reference(num_nodes, pairs):
    """Dense symmetric 0/1 adjacency from an explicit list of undirected pairs."""
    adj = np.zeros((num_nodes, num_nodes))
    for u, v in pairs:
        adj[u, v] = adj[v, u] = 1.0
    return adj


def check_common_invariants(g):
    """Invariants every Graph satisfies, whatever its family."""
    e = g.forward_edges_Ex2
    assert e.dtype == np.int64 and e.ndim == 2 and e.shape[1] == 2
    assert np.array_equal(e, e[np.lexsort((e[:, 1], e[:, 0]))]), "forward edges sorted"
    assert len({frozenset(x) for x in e.tolist()}) == len(e), "each undirected edge once"
    assert np.all(e[:, 0] != e[:, 1])
    adj = g.adjacency()
    assert adj.shape == (g.num_nodes, g.num_nodes) and adj.dtype == np.float64
    assert (adj != adj.T).nnz == 0 and adj.diagonal().sum() == 0
    assert set(np.unique(adj.data).tolist()) <= {1.0}
    assert np.array_equal(g.degrees(), np.asarray(adj.sum(axis=1)).ravel().astype(np.int64))
    json.dumps(graphs.graph_summary(g))


def check_paths(g):
    """Paths are root->leaf walks of length L with distinct leaves covering all leaves."""
    adj = g.adjacency().toarray()
    paths = g.all_paths()
    L = g.path_length
    assert paths.shape[1] == L and g.train_paths_PxL.shape[1] == L == g.test_paths_QxL.shape[1]
    assert np.all(paths[:, 0] == g.root)
    assert np.all(adj[paths[:, :-1], paths[:, 1:]] == 1), "each path is a walk"
    assert all(len(set(p)) == L for p in paths.tolist()), "simple paths"
    deg = g.degrees()
    leaves = set(np.flatnonzero(deg == 1).tolist()) - {g.root}
    assert len(set(paths[:, -1].tolist())) == len(paths), "distinct leaves"
    assert set(paths[:, -1].tolist()) == leaves, "train ∪ test = all leaves"
    dist = scipy.sparse.csgraph.shortest_path(g.adjacency(), indices=g.root, unweighted=True)
    assert np.all(dist[paths[:, -1]] == L - 1)


# --------------------------------------------------------------------- family counts


@pytest.mark.parametrize("d,ell", [(1, 2), (1, 4), (2, 3), (4, 5), (7, 2), (9, 6)])
def test_path_star_closed_forms(d, ell):
    g = graphs.path_star(d, ell, seed=3)
    n = d * (ell - 1) + 1
    assert g.num_nodes == n and g.num_edges == n - 1 and g.family == "path_star"
    expected_deg = sorted([d] + [2] * (d * (ell - 2)) + [1] * d)
    assert sorted(g.degrees().tolist()) == expected_deg
    assert g.degrees()[g.root] == d
    assert scipy.sparse.csgraph.connected_components(g.adjacency())[0] == 1
    check_common_invariants(g)
    check_paths(g)
    assert g.train_paths_PxL.shape[0] == math.floor(0.75 * d)
    assert g.test_paths_QxL.shape[0] == d - math.floor(0.75 * d)
    assert g.spec == {"family": "path_star", "degree": d, "path_length": ell, "seed": 3,
                      "train_fraction": 0.75}


@pytest.mark.parametrize("d,ell,k", [(1, 2, 2), (2, 4, 2), (3, 3, 3), (2, 5, 2), (4, 4, 3)])
def test_tree_star_closed_forms(d, ell, k):
    g = graphs.tree_star(d, ell, k, seed=1)
    n = 1 + d * (k ** (ell - 1) - 1) // (k - 1)
    leaves = d * k ** (ell - 2)
    assert g.num_nodes == n and g.num_edges == n - 1
    deg = g.degrees()
    assert deg[g.root] == d
    others = np.delete(deg, g.root)
    assert np.sum(others == 1) == leaves
    assert np.all((others == 1) | (others == k + 1))
    check_common_invariants(g)
    check_paths(g)
    assert len(g.all_paths()) == leaves
    assert g.train_paths_PxL.shape[0] == math.floor(0.75 * leaves)
    # Edges point root -> leaf: BFS depth of the head is one more than of the tail.
    depth = scipy.sparse.csgraph.shortest_path(g.adjacency(), indices=g.root, unweighted=True)
    e = g.forward_edges_Ex2
    assert np.all(depth[e[:, 1]] == depth[e[:, 0]] + 1)


@pytest.mark.parametrize("n", [3, 4, 15])
def test_cycle_matches_circulant(n):
    g = graphs.cycle(n)
    ref = undirected_reference(n, [(i, (i + 1) % n) for i in range(n)])
    assert np.array_equal(g.adjacency().toarray(), ref)
    assert g.num_edges == n and np.all(g.degrees() == 2)
    assert g.root is None and not g.has_paths and g.path_length == 0
    assert g.train_paths_PxL.shape == (0, 0) == g.test_paths_QxL.shape
    assert edge_set(g.forward_edges_Ex2) == {(i, (i + 1) % n) for i in range(n)}
    check_common_invariants(g)


@pytest.mark.parametrize("r,c", [(1, 1), (1, 5), (3, 2), (4, 4)])
def test_grid_matches_kronecker_reference(r, c):
    g = graphs.grid(r, c)
    path = lambda m: scipy.sparse.diags([np.ones(m - 1), np.ones(m - 1)], [-1, 1], shape=(m, m))
    ref = scipy.sparse.kron(scipy.sparse.eye(r), path(c)) + scipy.sparse.kron(path(r), scipy.sparse.eye(c))
    assert np.array_equal(g.adjacency().toarray(), ref.toarray())
    assert g.num_nodes == r * c and g.num_edges == r * (c - 1) + c * (r - 1)
    # Forward = right (+1) and down (+c).
    assert set(np.unique(g.forward_edges_Ex2[:, 1] - g.forward_edges_Ex2[:, 0]).tolist()) <= {1, c}
    check_common_invariants(g)


def test_irregular_hand_built():
    g = graphs.irregular()
    pairs = [(i, (i + 1) % 12) for i in range(12)] + [(1, 3), (5, 8)]
    pairs += [(12, 13), (12, 14), (12, 15), (13, 14), (13, 15), (14, 15)]
    assert g.num_nodes == 16 and g.num_edges == 20
    assert np.array_equal(g.adjacency().toarray(), undirected_reference(16, pairs))
    assert np.all(g.forward_edges_Ex2[:, 0] < g.forward_edges_Ex2[:, 1])
    expected_deg = [2] * 12 + [3] * 4
    for u in (1, 3, 5, 8):
        expected_deg[u] = 3
    assert g.degrees().tolist() == expected_deg
    assert scipy.sparse.csgraph.connected_components(g.adjacency())[0] == 2
    check_common_invariants(g)


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.75, 0.9])
def test_leaf_split_sizes_floor(frac):
    g = graphs.path_star(13, 3, seed=2, train_fraction=frac)
    assert g.train_paths_PxL.shape == (math.floor(frac * 13), 3)
    assert g.test_paths_QxL.shape == (13 - math.floor(frac * 13), 3)
    check_paths(g)


def test_subtree_holdout_keeps_whole_subtrees():
    d, ell, k = 6, 4, 2
    g = graphs.tree_star(d, ell, k, seed=5, holdout="subtree")
    check_paths(g)
    per_child = k ** (ell - 2)
    train_children = g.train_paths_PxL[:, 1]
    test_children = g.test_paths_QxL[:, 1]
    assert not set(train_children.tolist()) & set(test_children.tolist())
    assert len(set(train_children.tolist())) == math.floor(0.75 * d)
    for children in (train_children, test_children):
        _, counts = np.unique(children, return_counts=True)
        assert np.all(counts == per_child)
    assert g.spec["holdout"] == "subtree"


def test_test_path_edges_are_in_edge_data():
    g = graphs.tree_star(3, 4, 2, seed=0)
    steps = {(a, b) for p in g.test_paths_QxL.tolist() for a, b in zip(p[:-1], p[1:])}
    assert steps <= edge_set(g.directed_edges("forward"))
    assert {(b, a) for a, b in steps} <= edge_set(g.directed_edges("backward"))
    both = edge_set(g.directed_edges("both"))
    assert steps <= both and {(b, a) for a, b in steps} <= both


def test_star_ids_are_a_random_permutation():
    d, ell = 100, 3
    g = graphs.path_star(d, ell, seed=0)
    used = np.unique(g.forward_edges_Ex2)
    assert np.array_equal(used, np.arange(g.num_nodes))
    # Natural layout would be root 0 with children 1..d; ids must carry no structure.
    root_children = set(g.all_paths()[:, 1].tolist())
    assert root_children != set(range(1, d + 1))
    t = graphs.tree_star(8, 3, 2, seed=0)
    assert np.array_equal(np.unique(t.forward_edges_Ex2), np.arange(t.num_nodes))
    assert set(t.all_paths()[:, 1].tolist()) != set(range(1, 9))


def test_determinism_and_seed_dependence():
    a, b, c = (graphs.path_star(20, 4, seed=s) for s in (7, 7, 8))
    for name in ("forward_edges_Ex2", "train_paths_PxL", "test_paths_QxL"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.root == b.root
    assert not np.array_equal(a.forward_edges_Ex2, c.forward_edges_Ex2)
    t1, t2 = graphs.tree_star(4, 4, 2, seed=1), graphs.tree_star(4, 4, 2, seed=2)
    assert np.array_equal(graphs.tree_star(4, 4, 2, seed=1).train_paths_PxL, t1.train_paths_PxL)
    assert not np.array_equal(t1.train_paths_PxL, t2.train_paths_PxL)


def test_arrays_are_read_only():
    g = graphs.path_star(3, 3)
    with pytest.raises(ValueError):
        g.forward_edges_Ex2[0, 0] = 5


# ------------------------------------------------------------------ edges/successors


def test_directed_edges_release_order():
    g = graphs.cycle(4)
    fwd = [(0, 1), (1, 2), (2, 3), (3, 0)]
    rev = [(1, 0), (2, 1), (3, 2), (0, 3)]
    selfs = [(u, u) for u in range(4)]
    assert g.directed_edges().tolist() == [list(e) for e in fwd + rev]
    assert g.directed_edges("forward").tolist() == [list(e) for e in fwd]
    assert g.directed_edges("backward", self_edges=True).tolist() == [list(e) for e in rev + selfs]
    assert g.directed_edges("both", True).tolist() == [list(e) for e in fwd + rev + selfs]
    assert g.directed_edges().dtype == np.int64
    with pytest.raises(ConfigError, match="graph.edges"):
        g.directed_edges("sideways")


@pytest.mark.parametrize("direction,self_edges", [("both", False), ("forward", True), ("backward", False)])
def test_successors_match_edge_lists(direction, self_edges):
    g = graphs.grid(3, 3)
    indptr, indices = g.successors(direction, self_edges)
    assert indptr.shape == (g.num_nodes + 1,) and indptr[0] == 0 and indptr[-1] == len(indices)
    expected = {u: [] for u in range(g.num_nodes)}
    for u, v in g.directed_edges(direction, self_edges).tolist():
        expected[u].append(v)
    for u in range(g.num_nodes):
        assert indices[indptr[u]:indptr[u + 1]].tolist() == sorted(expected[u])
    if direction == "both" and not self_edges:
        adj = g.adjacency()
        assert np.array_equal(indptr, adj.indptr) and np.array_equal(indices, adj.indices)


# ------------------------------------------------------------------------ make_graph


def test_make_graph_from_dict_and_configdict():
    cfg = dict(family="tree_star", degree=2, path_length=4, branching=2, seed=0,
               train_fraction=0.75, holdout="leaf", rows=None, cols=None, num_nodes=None,
               release_dir="")
    a = graphs.make_graph(cfg)
    b = graphs.make_graph(ml_collections.ConfigDict(cfg))
    ref = graphs.tree_star(2, 4, 2, seed=0)
    for g in (a, b):
        assert np.array_equal(g.forward_edges_Ex2, ref.forward_edges_Ex2)
        assert np.array_equal(g.test_paths_QxL, ref.test_paths_QxL)
    assert graphs.make_graph({"family": "cycle", "num_nodes": 15}).num_nodes == 15
    assert graphs.make_graph({"family": "grid", "rows": 4, "cols": 4}).num_nodes == 16
    assert graphs.make_graph({"family": "irregular", "release_dir": None}).num_nodes == 16
    # numpy integers are integers too.
    assert graphs.make_graph({"family": "path_star", "degree": np.int64(3),
                              "path_length": np.int32(4)}).num_nodes == 10


def test_make_graph_reads_release_dir(tmp_path):
    g = graphs.path_star(4, 5, seed=0)
    graphs.write_release_dir(g, tmp_path)
    r = graphs.make_graph({"family": "cycle", "num_nodes": 5, "release_dir": str(tmp_path)})
    assert r.family == "release" and np.array_equal(r.test_paths_QxL, g.test_paths_QxL)


def test_make_graph_requires_test_paths(tmp_path):
    g = graphs.Graph("path_star", 3, np.array([[0, 1], [0, 2]]), 0,
                     np.array([[0, 1], [0, 2]]), np.zeros((0, 2), np.int64),
                     {"family": "path_star", "train_fraction": 0.99})
    with pytest.raises(ConfigError, match=r"graph.train_fraction.*2 leaves"):
        graphs.check_split_nonempty(g)
    graphs.check_split_nonempty(graphs.cycle(5))  # no paths: nothing to hold out
    (tmp_path / "x_pretrain.txt").write_text("0=1\n0=2\n")
    (tmp_path / "x_train_2.txt").write_text("1=0,1\n2=0,2\n")
    assert graphs.read_release_dir(tmp_path).test_paths_QxL.shape == (0, 2)
    with pytest.raises(ConfigError, match="graph.release_dir"):
        graphs.make_graph({"release_dir": str(tmp_path)})


@pytest.mark.parametrize("cfg,field", [
    ({"family": "path_star", "degree": 0, "path_length": 3}, "graph.degree"),
    ({"family": "path_star", "degree": 2.5, "path_length": 3}, "graph.degree"),
    ({"family": "path_star", "degree": "3", "path_length": 3}, "graph.degree"),
    ({"family": "path_star", "degree": True, "path_length": 3}, "graph.degree"),
    ({"family": "path_star", "degree": 3, "path_length": 1}, "graph.path_length"),
    ({"family": "path_star", "degree": 3}, "graph.path_length"),
    ({"family": "path_star", "degree": 3, "path_length": 3, "seed": -1}, "graph.seed"),
    ({"family": "path_star", "degree": 3, "path_length": 3, "train_fraction": 0.0}, "graph.train_fraction"),
    ({"family": "path_star", "degree": 3, "path_length": 3, "train_fraction": 1}, "graph.train_fraction"),
    ({"family": "path_star", "degree": 3, "path_length": 3, "train_fraction": 1.5}, "graph.train_fraction"),
    ({"family": "tree_star", "degree": 3, "path_length": 3, "branching": 1}, "graph.branching"),
    ({"family": "tree_star", "degree": 3, "path_length": 3, "branching": 2, "holdout": "root"}, "graph.holdout"),
    ({"family": "tree_star", "degree": 3, "path_length": 200, "branching": 2}, "graph.path_length"),
    ({"family": "grid", "rows": 0, "cols": 3}, "graph.rows"),
    ({"family": "grid", "rows": 3, "cols": 0}, "graph.cols"),
    ({"family": "cycle", "num_nodes": 2}, "graph.num_nodes"),
    ({"family": "hexagon"}, "graph.family"),
    ({}, "graph.family"),
])
def test_config_errors_name_the_field(cfg, field):
    with pytest.raises(ConfigError) as info:
        graphs.make_graph(cfg)
    assert info.value.field == field and str(info.value).startswith(field)
    if field == "graph.family":
        assert all(f in str(info.value) for f in graphs.FAMILIES)


# ------------------------------------------------------------------- release format

ROUND_TRIP_GRAPHS = {
    "path_star": lambda: graphs.path_star(4, 5, seed=0),
    "path_star_big_d": lambda: graphs.path_star(40, 3, seed=9, train_fraction=0.5),
    "tree_star": lambda: graphs.tree_star(2, 4, 2, seed=0),
    "tree_star_subtree": lambda: graphs.tree_star(3, 3, 3, seed=4, holdout="subtree"),
    "cycle": lambda: graphs.cycle(15),
    "grid": lambda: graphs.grid(4, 4),
    "grid_row": lambda: graphs.grid(1, 3),
    "irregular": graphs.irregular,
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_GRAPHS))
def test_round_trip_byte_identical(name, tmp_path):
    g = ROUND_TRIP_GRAPHS[name]()
    for direction in graphs.DIRECTIONS:
        for self_edges in (False, True):
            a, b = tmp_path / f"a_{direction}_{self_edges}", tmp_path / f"b_{direction}_{self_edges}"
            written = graphs.write_release_dir(g, a, direction=direction, self_edges=self_edges)
            r = graphs.read_release_dir(a)
            assert r.family == "release" and r.spec["edges"] == direction
            assert r.spec["self_edges"] == self_edges and r.spec["prefix"] == graphs.default_prefix(g)
            assert r.num_nodes == g.num_nodes and r.root == g.root
            assert np.array_equal(r.forward_edges_Ex2, g.forward_edges_Ex2)
            assert np.array_equal(r.train_paths_PxL, g.train_paths_PxL)
            assert np.array_equal(r.test_paths_QxL, g.test_paths_QxL)
            again = graphs.write_release_dir(r, b, prefix=r.spec["prefix"], direction=r.spec["edges"],
                                             self_edges=r.spec["self_edges"])
            assert [p.name for p in again] == [p.name for p in written]
            for p, q in zip(written, again):
                assert p.read_bytes() == q.read_bytes()
                assert p.read_bytes().endswith(b"\n")


def test_written_file_layout(tmp_path):
    g = graphs.path_star(4, 5, seed=0)
    files = graphs.write_release_dir(g, tmp_path)
    assert [f.name for f in files] == ["path_star_d4_l5_s0_pretrain.txt",
                                       "path_star_d4_l5_s0_train_3.txt", "path_star_d4_l5_s0_test_1.txt"]
    edge_lines = files[0].read_text().splitlines()
    assert edge_lines == [f"{u}={v}" for u, v in g.directed_edges().tolist()]
    leaf, rest = files[2].read_text().splitlines()[0].split("=")
    assert rest.split(",") == [str(x) for x in g.test_paths_QxL[0]] and leaf == rest.split(",")[-1]
    assert [f.name for f in graphs.write_release_dir(graphs.cycle(15), tmp_path / "c")] == ["cycle_n15_pretrain.txt"]
    assert graphs.default_prefix(graphs.tree_star(2, 4, 2)) == "tree_star_d2_l4_k2_s0"
    assert graphs.default_prefix(graphs.grid(4, 4)) == "grid_r4_c4"
    assert graphs.default_prefix(graphs.irregular()) == "irregular"


def test_hand_written_release_loads(tmp_path):
    # G(2, 3) with root 0 and arms 0-1-2, 0-3-4, typed as the release writes it.
    (tmp_path / "g_pretrain.txt").write_text("0=1\n0=3\n1=2\n3=4\n1=0\n3=0\n2=1\n4=3\n")
    (tmp_path / "g_train_1.txt").write_text("2=0,1,2\n")
    (tmp_path / "g_test_1.txt").write_text("4=0,3,4\n")
    g = graphs.read_release_dir(tmp_path)
    assert g.num_nodes == 5 and g.root == 0 and g.path_length == 3
    assert g.forward_edges_Ex2.tolist() == [[0, 1], [0, 3], [1, 2], [3, 4]]
    assert g.train_paths_PxL.tolist() == [[0, 1, 2]] and g.test_paths_QxL.tolist() == [[0, 3, 4]]
    assert g.spec == {"family": "release", "release_dir": str(tmp_path), "prefix": "g",
                      "edges": "both", "self_edges": False, "path_prefix": "leaf"}
    assert sorted(g.degrees().tolist()) == [1, 1, 2, 2, 2]


def test_hand_written_one_way_and_interleaved(tmp_path):
    # Only leaf->root edges: the paths show they are "backward".
    (tmp_path / "h_pretrain.txt").write_text("1=0\n2=1\n")
    (tmp_path / "h_test_1.txt").write_text("2=0,1,2\n")
    g = graphs.read_release_dir(tmp_path)
    assert g.spec["edges"] == "backward" and g.forward_edges_Ex2.tolist() == [[0, 1], [1, 2]]
    # Pairs interleaved and a self-edge: forward = first-written orientation of each pair.
    d = tmp_path / "i"
    d.mkdir()
    (d / "i_pretrain.txt").write_text("2=0\n0=2\n0=1\n1=0\n1=1\n")
    g = graphs.read_release_dir(d)
    assert g.spec["edges"] == "both" and g.spec["self_edges"]
    assert g.forward_edges_Ex2.tolist() == [[0, 1], [2, 0]] and not g.has_paths


BAD_RELEASES = [
    # (files, file named in the message, line number or None, reason fragment)
    ({}, None, None, "no *_pretrain.txt"),
    ({"a_pretrain.txt": ""}, "a_pretrain.txt", None, "empty"),
    ({"a_pretrain.txt": "0=1\n1=0\n", "a_train_1.txt": ""}, "a_train_1.txt", None, "empty"),
    ({"a_pretrain.txt": "0=1\n1-2\n"}, "a_pretrain.txt", 2, "u=v"),
    ({"a_pretrain.txt": "0=1\n-1=2\n"}, "a_pretrain.txt", 2, "u=v"),
    ({"a_pretrain.txt": "0=1\n\n1=2\n"}, "a_pretrain.txt", 2, "u=v"),
    ({"a_pretrain.txt": "0=1\n0=1\n"}, "a_pretrain.txt", 2, "duplicate"),
    ({"a_pretrain.txt": "0=2\n"}, "a_pretrain.txt", None, "id 1 never appears"),
    ({"a_pretrain.txt": "0=1\n1=0\n1=2\n"}, "a_pretrain.txt", None, "reverse"),
    ({"a_pretrain.txt": "0=1\n0=2\n", "a_train_1.txt": "1=0,1\n2=0,2\n3:0,3\n"}, "a_train_1.txt", 3, "leaf=root"),
    ({"a_pretrain.txt": "0=1\n0=2\n", "a_train_1.txt": "2=0,1\n"}, "a_train_1.txt", 1, "differs from the last"),
    ({"a_pretrain.txt": "0=1\n1=2\n", "a_test_1.txt": "2=0,1,2\n2=0,2\n"}, "a_test_1.txt", 2, "2 nodes"),
    ({"a_pretrain.txt": "0=1\n0=2\n", "a_train_2.txt": "1=0,1\n"}, "a_train_2.txt", None, "holds 1 paths"),
    ({"a_pretrain.txt": "0=1\n1=2\n0=3\n", "a_train_1.txt": "2=0,1,2\n3=0,2,3\n"}, "a_train_1.txt", 2, "not a walk"),
    ({"a_pretrain.txt": "0=1\n1=2\n", "a_train_1.txt": "2=0,1,2\n5=0,1,5\n"}, "a_train_1.txt", 2, "never seen"),
    ({"a_pretrain.txt": "0=1\n", "a_train_1.txt": "1=0,1\n", "a_train_2.txt": "1=0,1\n"}, None, None,
     "more than one a_train"),
]


@pytest.mark.parametrize("case", range(len(BAD_RELEASES)))
def test_release_format_errors(case, tmp_path):
    files, named, line_no, reason = BAD_RELEASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ReleaseFormatError) as info:
        graphs.read_release_dir(tmp_path)
    msg = str(info.value)
    assert reason in msg
    where = str(tmp_path / named) if named else str(tmp_path)
    assert msg.startswith(f"{where}:{line_no}:" if line_no else f"{where}:")


def test_two_datasets_without_a_choice_is_a_config_error(tmp_path):
    (tmp_path / "a_pretrain.txt").write_text("0=1\n")
    (tmp_path / "b_pretrain.txt").write_text("0=1\n")
    with pytest.raises(ConfigError, match=r"graph\.release_dir=.*holds 2: a_pretrain.txt, b_pretrain.txt"):
        graphs.read_release_dir(tmp_path)


def test_paths_from_different_starts_have_no_root(tmp_path):
    (tmp_path / "a_pretrain.txt").write_text("0=1\n1=2\n0=3\n")
    (tmp_path / "a_train_1.txt").write_text("2=0,1,2\n")
    (tmp_path / "a_test_1.txt").write_text("3=1,0,3\n")
    g = graphs.read_release_dir(tmp_path)
    assert g.root is None and g.family == "release"
    assert g.all_paths().tolist() == [[0, 1, 2], [1, 0, 3]]


def test_missing_release_dir(tmp_path):
    with pytest.raises(ReleaseFormatError, match="not a directory"):
        graphs.read_release_dir(tmp_path / "nope")


def test_write_refuses_edgeless_graph(tmp_path):
    with pytest.raises(ReleaseFormatError, match="no edges"):
        graphs.write_release_dir(graphs.grid(1, 1), tmp_path)
    files = graphs.write_release_dir(graphs.grid(1, 1), tmp_path, self_edges=True)
    assert files[0].read_text() == "0=0\n"
    assert graphs.read_release_dir(tmp_path).num_nodes == 1


def test_graph_summary():
    s = graphs.graph_summary(graphs.tree_star(2, 4, 2, seed=0))
    assert s["family"] == "tree_star" and s["num_nodes"] == 15 and s["num_edges"] == 14
    assert s["path_length"] == 4 and s["num_train_paths"] == 6 and s["num_test_paths"] == 2
    assert s["spec"]["branching"] == 2 and isinstance(s["root"], int)
    assert graphs.graph_summary(graphs.cycle(5))["root"] is None


def test_paper_size_generation_is_fast():
    start = time.perf_counter()
    g = graphs.path_star(10_000, 6, seed=0)
    elapsed = time.perf_counter() - start
    assert g.num_nodes == 50_001 and g.test_paths_QxL.shape == (2_500, 6)
    assert elapsed < 1.0, elapsed
