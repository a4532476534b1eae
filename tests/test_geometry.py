"""Geometric measures vs hand-built cases and explicit-loop references."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist

from geomem_jax import graphs
from geomem_jax.analysis import geometry


def test_geometric_level_on_hand_built_vectors():
    E = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    edges = np.array([[0, 1], [0, 2], [0, 3], [2, 1]])
    expected = (0.0 + 1 / np.sqrt(2) - 1.0 + 1 / np.sqrt(2)) / 4
    assert geometry.geometric_level(E, edges) == pytest.approx(expected)
    assert geometry.geometric_level(E, edges, chunk=3) == pytest.approx(expected)


def _margin_by_loops(E, W, A, self_edges, nodes, self_is_miss=False):
    """The margin written out with explicit loops and the FULL SVD (rows of E beyond A's
    nodes, zero rows of A: the release's special tokens, non-neighbours of every node)."""
    _, _, Vt = np.linalg.svd(E, full_matrices=True)
    V = Vt.T
    lam = np.array([V[:, k] @ W @ V[:, k] for k in range(V.shape[1])])
    W_prime = sum(lam[k] * np.outer(V[:, k], V[:, k]) for k in range(V.shape[1]))
    L = E @ W_prime @ E.T
    margins, hits = [], []
    for u in nodes:
        nbrs = [v for v in range(len(E)) if v != u and A[u, v]] + ([u] if self_edges and not self_is_miss else [])
        non = [v for v in range(len(E)) if v != u and not A[u, v]]
        if not nbrs or not non:
            continue
        best_nbr, best_non = max(L[u, v] for v in nbrs), max(L[u, v] for v in non)
        margins.append(best_nbr - best_non)
        candidates = [v for v in range(len(E)) if v != u or self_edges or self_is_miss]
        hits.append(max(candidates, key=lambda v: L[u, v]) in nbrs)
    return np.mean(margins), np.mean(hits)


@pytest.mark.parametrize("num_nodes,dim,self_edges", [(9, 4, False), (6, 10, False), (9, 4, True)])
def test_geometric_margin_matches_explicit_formula(num_nodes, dim, self_edges):
    rng = np.random.default_rng(num_nodes + dim)
    A = graphs.cycle(num_nodes).adjacency().toarray()
    A[0, 4] = A[4, 0] = 1  # a chord
    E = rng.normal(size=(num_nodes, dim))
    W = rng.normal(size=(dim, dim))
    out = geometry.geometric_margin(E, W, sp.csr_matrix(A), self_edges=self_edges)
    margin, top1 = _margin_by_loops(E, W, A, self_edges, range(num_nodes))
    assert out["margin"] == pytest.approx(margin, abs=1e-9)
    assert out["margin_top1"] == pytest.approx(top1)
    assert out["num_nodes_scored"] == num_nodes


def _path_on_a_half_circle():
    """Path 0-1-2-3 at angles 0°, 60°, 120°, 180° (node 3 at radius 0.4), W = I (rank 2: W′ = I).
    L = E Eᵀ: neighbours 0.5 (0.2 to node 3), self 1 (0.16 for node 3): nodes 0, 1, 2 score
    themselves highest. Our margins 0.9, 0.7, 1.0, 0.4 (mean 0.75), top-1 all hits."""
    angles = np.deg2rad([0, 60, 120, 180])
    E = np.stack([np.cos(angles), np.sin(angles)], 1) * np.array([[1], [1], [1], [0.4]])
    return E, np.eye(2), sp.csr_matrix(np.diag([1, 1, 1], 1) + np.diag([1, 1, 1], -1))


def test_release_conventions_on_hand_computed_cases():
    E, W, adj = _path_on_a_half_circle()
    ours = geometry.geometric_margin(E, W, adj)
    release = geometry.geometric_margin(E, W, adj, self_is_miss=True)
    assert ours["margin"] == pytest.approx(0.75) and ours["margin_top1"] == 1.0
    assert release["margin"] == pytest.approx(0.75)  # the margin itself excludes self either way
    assert release["margin_top1"] == 0.25  # only node 3 has a neighbour above itself
    # A special row s = (2, 0) out-scores the nodes' best non-neighbours: L_us = 2, 1, −1, −0.8.
    special = np.array([[2.0, 0.0]])
    whole = geometry.geometric_margin(E, W, adj, specials_XxD=special, self_is_miss=True)
    assert whole["margin"] == pytest.approx((-1.5 - 0.5 + 1.0 + 0.4) / 4)
    assert whole["margin_top1"] == 0.25
    assert geometry.geometric_margin(E, W, adj, specials_XxD=special)["margin_top1"] == 0.5  # nodes 2, 3
    # Self-edges: ours counts u as its own neighbour (margins 1.4, 1.2, 1.5, 0.4); the release does not.
    ours_self = geometry.geometric_margin(E, W, adj, self_edges=True)
    assert ours_self["margin"] == pytest.approx(1.125) and ours_self["margin_top1"] == 1.0
    release_self = geometry.geometric_margin(E, W, adj, self_edges=True, self_is_miss=True)
    assert (release_self["margin"], release_self["margin_top1"]) == pytest.approx((0.75, 0.25))


@pytest.mark.parametrize("self_edges", [False, True])
def test_release_margin_takes_the_svd_over_the_whole_table(self_edges):
    rng = np.random.default_rng(7)
    A = graphs.cycle(8).adjacency().toarray()
    table = rng.normal(size=(8 + 9, 5))  # 8 nodes and the 9 special rows
    W = rng.normal(size=(5, 5))
    got = geometry.geometric_margin(table[:8], W, sp.csr_matrix(A), self_edges=self_edges,
                                    specials_XxD=table[8:], self_is_miss=True)
    A_table = np.zeros((17, 17))
    A_table[:8, :8] = A
    margin, top1 = _margin_by_loops(table, W, A_table, self_edges, range(8), self_is_miss=True)
    assert got["margin"] == pytest.approx(margin, abs=1e-9) and got["margin_top1"] == pytest.approx(top1)
    assert got["margin"] != pytest.approx(geometry.geometric_margin(table[:8], W, sp.csr_matrix(A))["margin"])


def test_geometric_margin_sign_geometric_vs_associative():
    # Embeddings on a circle, W = I: neighbours are the most similar → positive margin, top1 = 1.
    n = 12
    angles = 2 * np.pi * np.arange(n) / n
    E = np.stack([np.cos(angles), np.sin(angles)], 1)
    adj = graphs.cycle(n).adjacency()
    out = geometry.geometric_margin(E, np.eye(2), adj)
    assert out["margin"] == pytest.approx(np.cos(2 * np.pi / n) - np.cos(4 * np.pi / n))
    assert out["margin_top1"] == 1.0
    # W = −I turns the nearest into the farthest: negative margin.
    assert geometry.geometric_margin(E, -np.eye(2), adj)["margin"] < 0


def test_geometric_margin_on_a_sample():
    rng = np.random.default_rng(5)
    A = graphs.cycle(30).adjacency().toarray()
    E, W = rng.normal(size=(30, 5)), rng.normal(size=(5, 5))
    out = geometry.geometric_margin(E, W, sp.csr_matrix(A), max_nodes=10, seed=3)
    nodes = geometry.sample_nodes(30, 10, seed=3)
    assert len(nodes) == 10 and out["num_nodes_scored"] == 10
    assert out["margin"] == pytest.approx(_margin_by_loops(E, W, A, False, nodes)[0], abs=1e-9)


def _planted_star_embedding(graph, noise, seed):
    """One direction per arm (arms found by BFS from the root) plus noise."""
    from geomem_jax.analysis.plots import star_arms

    arms = star_arms(graph.adjacency(), graph.root)
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(arms.max() + 1, 16))
    E = rng.normal(size=(graph.num_nodes, 16)) * noise
    E[arms >= 0] += dirs[arms[arms >= 0]]
    return E


def test_leaf_firsthop_matrix_and_gap_on_planted_geometry():
    graph = graphs.path_star(6, 5, seed=1, train_fraction=0.5)
    paths = graph.test_paths_QxL
    E = _planted_star_embedding(graph, noise=0.1, seed=0)
    dist = geometry.leaf_firsthop_matrix(E, paths)
    np.testing.assert_allclose(dist, cdist(E[paths[:, -1]], E[paths[:, 1]], "cosine"), atol=1e-12)
    gap = geometry.leaf_firsthop_gap(dist)
    q = len(paths)
    expected = dist[~np.eye(q, dtype=bool)].mean() - np.diag(dist).mean()
    assert gap == pytest.approx(expected)
    assert gap > 0.5
    random_E = np.random.default_rng(1).normal(size=E.shape)
    random_gap = geometry.leaf_firsthop_gap(geometry.leaf_firsthop_matrix(random_E, paths))
    assert abs(random_gap) < 0.5 * gap


def test_path_distance_matrix_matches_pairwise_mean():
    graph = graphs.path_star(3, 4, seed=2, train_fraction=0.67)
    paths = graph.all_paths()
    E = np.random.default_rng(3).normal(size=(graph.num_nodes, 5))
    got = geometry.path_distance_matrix(E, paths)
    for a in range(len(paths)):
        for b in range(len(paths)):
            expected = cdist(E[paths[a, 1:]], E[paths[b, 1:]], "cosine").mean()
            assert got[a, b] == pytest.approx(expected, abs=1e-12)


def test_cosine_by_hop_on_a_circle_is_cos_of_angle():
    n = 10
    angles = 2 * np.pi * np.arange(n) / n
    E = np.stack([np.cos(angles), np.sin(angles)], 1) * np.arange(1, n + 1)[:, None]  # norms don't matter
    adj = graphs.cycle(n).adjacency()
    cos_h = geometry.cosine_by_hop(E, adj, max_hop=6)
    np.testing.assert_allclose(cos_h[:5], np.cos(2 * np.pi * np.arange(1, 6) / n), atol=1e-12)
    assert np.isnan(cos_h[5])  # no pair is 6 hops apart on C(10)
    # sampled sources (chunked) give the same on this vertex-transitive graph
    np.testing.assert_allclose(geometry.cosine_by_hop(E, adj, 5, max_sources=4, chunk=3), cos_h[:5], atol=1e-12)


def _recall_by_sets(S, succ, k, self_edges):
    rec = []
    for u, targets in enumerate(succ):
        if not targets:
            continue
        cand = [v for v in range(len(S)) if v != u or self_edges]
        k_u = len(targets) if k == "degree" else k
        top = sorted(cand, key=lambda v: (-S[u, v], v))[:k_u]
        rec.append(len(set(top) & set(targets)) / min(k_u, len(targets)))
    return np.mean(rec)


@pytest.mark.parametrize("k", [1, 2, 5, "degree"])
def test_edge_recall_at_k_matches_set_computation(k):
    graph = graphs.irregular()
    rng = np.random.default_rng(7)
    S = rng.normal(size=(16, 16))
    indptr, indices = graph.successors("both")
    succ = [list(indices[indptr[u] : indptr[u + 1]]) for u in range(16)]
    for self_edges in (False, True):
        expected = _recall_by_sets(S, succ, k, self_edges)
        assert geometry.edge_recall_at_k(S, (indptr, indices), k, self_edges) == pytest.approx(expected)
    # a perfect memory (score = adjacency) scores 1; the callable form agrees with the array
    A = graph.adjacency().toarray()
    assert geometry.edge_recall_at_k(lambda rows: A[rows], (indptr, indices), k) == 1.0


def test_bilinear_scores_rows():
    rng = np.random.default_rng(0)
    E, W, U = rng.normal(size=(6, 3)), rng.normal(size=(3, 3)), rng.normal(size=(6, 3))
    rows = np.array([4, 1])
    np.testing.assert_allclose(geometry.bilinear_scores(E)(rows), (E @ E.T)[rows])
    np.testing.assert_allclose(geometry.bilinear_scores(E, W, U)(rows), (E @ W @ U.T)[rows])


def test_hops_within_matches_shortest_path_capped():
    from scipy.sparse import csgraph

    rng = np.random.default_rng(9)
    pairs = rng.integers(0, 40, size=(50, 2))
    adj = sp.coo_matrix((np.ones(50), tuple(pairs.T)), shape=(40, 40)).tocsr()  # directed input, isolated nodes
    sources = np.array([0, 7, 39])
    full = csgraph.shortest_path(adj, unweighted=True, directed=False, indices=sources)
    expected = np.where(full <= 3, full, -1)
    np.testing.assert_array_equal(geometry.hops_within(adj, sources, 3), expected)


def test_star_arms_are_consecutive_and_follow_the_paths():
    from geomem_jax.analysis.plots import graph_order, star_arms

    graph = graphs.path_star(5, 4, seed=3)
    arms = star_arms(graph.adjacency(), graph.root)
    assert arms[graph.root] == -1 and sorted(set(arms[arms >= 0])) == [0, 1, 2, 3, 4]
    for path in graph.all_paths():
        assert len(set(arms[path[1:]])) == 1  # one arm per root→leaf path
    order = graph_order("path_star", graph)
    assert order[0] == graph.root and sorted(order) == list(range(graph.num_nodes))
    assert np.all(np.diff(arms[order]) >= 0)  # arm blocks are contiguous
