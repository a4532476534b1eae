"""Spectral analysis vs direct numpy/scipy computations and closed forms."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp

from geomem_jax import graphs
from geomem_jax.analysis import spectral


def _adjacency(num_nodes, edges):
    rows, cols = np.array(edges).T
    adj = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_nodes, num_nodes))
    return sp.csr_matrix(((adj + adj.T) > 0).astype(float))


def _random_graph(num_nodes, num_edges, seed):
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, num_nodes, size=(num_edges, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return _adjacency(num_nodes, pairs)


def test_walk_matrix_matches_dense_formula_and_leaves_isolated_rows_zero():
    adj = _adjacency(5, [(0, 1), (1, 2), (2, 0), (2, 3)])  # node 4 isolated
    A = adj.toarray()
    deg = A.sum(1)
    expected = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            if A[i, j]:
                expected[i, j] = 1 / deg[i] + 1 / deg[j]
    M = spectral.walk_matrix(adj).toarray()
    np.testing.assert_allclose(M, expected)
    assert np.all(M[4] == 0) and np.all(np.isfinite(M))


def test_dense_eigenpairs_sorted_and_satisfy_eigen_equation():
    adj = graphs.grid(3, 4).adjacency()
    vals, vecs = spectral.eigenpairs(adj)
    M = spectral.walk_matrix(adj).toarray()
    assert vals.shape == (12,) and vecs.shape == (12, 12)
    assert np.all(np.diff(vals) <= 1e-12)
    np.testing.assert_allclose(M @ vecs, vecs * vals, atol=1e-10)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(12), atol=1e-10)
    np.testing.assert_allclose(vals, np.sort(np.linalg.eigvalsh(M))[::-1], atol=1e-10)
    top_vals, top_vecs = spectral.eigenpairs(adj, k=3)
    np.testing.assert_allclose(top_vals, vals[:3])
    assert top_vecs.shape == (12, 3)


def test_sparse_path_agrees_with_dense_up_to_sign(monkeypatch):
    adj = _random_graph(400, 900, seed=3)
    dense_vals, dense_vecs = np.linalg.eigh(spectral.walk_matrix(adj).toarray())
    dense_vals, dense_vecs = dense_vals[::-1], dense_vecs[:, ::-1]
    monkeypatch.setattr(spectral, "DENSE_MAX_NODES", 100)  # force the eigsh branch
    vals, vecs = spectral.eigenpairs(adj, k=6)
    assert vals.shape == (6,) and vecs.shape == (400, 6)
    np.testing.assert_allclose(vals, dense_vals[:6], atol=1e-8)
    gaps = np.abs(np.diff(dense_vals[:7]))
    simple = [i for i in range(6) if gaps[i] > 1e-4 and (i == 0 or gaps[i - 1] > 1e-4)]
    assert len(simple) >= 3
    for i in simple:  # a simple eigenvalue's eigenvector is unique up to sign
        assert abs(vecs[:, i] @ dense_vecs[:, i]) == pytest.approx(1.0, abs=1e-6)


def test_projection_energy_is_norm_of_each_projection():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(9, 4))
    Q, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    p = spectral.projection_energy(E, Q)
    expected = [np.sqrt(sum((E[:, d] @ Q[:, i]) ** 2 for d in range(4))) for i in range(9)]
    np.testing.assert_allclose(p, expected)
    # energy is preserved by a full orthonormal basis
    assert np.sum(p**2) == pytest.approx(np.sum(E**2))


def test_normalised_spectrum_drops_trivial_and_scales_by_max():
    vals, proj = spectral.normalised_spectrum([2.0, 1.5, 0.75, -1.5], [9.0, 4.0, 2.0, 1.0])
    np.testing.assert_allclose(vals, [1.0, 0.5, -1.0])
    np.testing.assert_allclose(proj, [1.0, 0.5, 0.25])
    vals, proj = spectral.normalised_spectrum([2.0, 1.0], [1.0, 2.0], drop_trivial=False)
    np.testing.assert_allclose(vals, [1.0, 0.5])
    np.testing.assert_allclose(proj, [0.5, 1.0])


def test_alignment_is_one_in_smooth_span_and_k_over_n_minus_1_for_random():
    graph = graphs.cycle(60)
    vals, vecs = spectral.eigenpairs(graph.adjacency())
    rng = np.random.default_rng(1)
    k = 4
    smooth = vecs[:, 1 : k + 1] @ rng.normal(size=(k, 16)) + 3.0 * np.outer(vecs[:, 0], rng.normal(size=16))
    assert spectral.spectral_alignment(smooth, vecs, k) == pytest.approx(1.0, abs=1e-10)
    assert spectral.spectral_alignment(smooth, vecs, 2) < 0.9
    random_E = rng.normal(size=(60, 3000))
    assert spectral.spectral_alignment(random_E, vecs, 5) == pytest.approx(5 / 59, rel=0.1)
    # top-K eigenvectors only (large-graph case) gives the same number as the full basis
    assert spectral.spectral_alignment(random_E, vecs[:, :6], 5) == pytest.approx(
        spectral.spectral_alignment(random_E, vecs, 5), rel=1e-10)
    full = spectral.projection_energy(random_E, vecs) ** 2
    assert spectral.spectral_alignment(random_E, vecs, 5) == pytest.approx(full[1:6].sum() / full[1:].sum(), rel=1e-10)


def test_default_alignment_ks_per_family():
    assert spectral.default_alignment_ks("path_star", graphs.path_star(4, 5, seed=0)) == (2, 3, 5, 10)
    assert spectral.default_alignment_ks("cycle", graphs.cycle(15)) == (2, 4, 5, 10)
    assert spectral.default_alignment_ks("grid", graphs.grid(4, 4)) == (2, 4, 5, 10)
    assert spectral.default_alignment_ks("irregular", graphs.irregular()) == (1, 2, 3, 5, 10)
    assert spectral.default_alignment_ks("cycle", graphs.cycle(5)) == (2, 4)  # capped at N−1


def _node2vec_objective(V, A):
    """J(V) = Σ_i (1/|nbr i|) Σ_{j∈nbr i} log softmax_j(V v_i), softmax over all nodes."""
    logits = V @ V.T
    log_p = logits - logsumexp(logits, axis=1, keepdims=True)
    return sum(log_p[i, j] / A[i].sum() for i in range(len(A)) for j in np.flatnonzero(A[i]))


def test_node2vec_c_matrix_formula_and_is_the_gradient():
    adj = _adjacency(5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (1, 3)])
    A = adj.toarray()
    rng = np.random.default_rng(2)
    V = rng.normal(size=(5, 3))
    C = spectral.node2vec_c_matrix(V, adj)
    logits = V @ V.T
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    W = A / A.sum(1, keepdims=True)
    np.testing.assert_allclose(C, (W - P) + (W - P).T, atol=1e-12)
    # ΔV = η C V is gradient ascent on J: compare with central finite differences
    grad = np.zeros_like(V)
    h = 1e-6
    for idx in np.ndindex(*V.shape):
        bump = np.zeros_like(V)
        bump[idx] = h
        grad[idx] = (_node2vec_objective(V + bump, A) - _node2vec_objective(V - bump, A)) / (2 * h)
    np.testing.assert_allclose(C @ V, grad, atol=1e-6)
    point = spectral.node2vec_trajectory_point(V, adj, np.linalg.eigh(C)[1])
    assert point["proj_V"].shape == (5,) and point["proj_C"].shape == (5,)


def test_negative_mode_share_is_the_negative_spectrum_of_E_Wprime_Et():
    from geomem_jax.analysis import geometry

    rng = np.random.default_rng(0)
    E_NxD, W_DxD = rng.normal(size=(9, 6)), rng.normal(size=(6, 6))
    mu = np.linalg.eigvalsh((lambda L: (L + L.T) / 2)(E_NxD @ geometry.spectral_bilinear(E_NxD, W_DxD) @ E_NxD.T))
    want = np.abs(mu[mu < -1e-9]).sum() / np.abs(mu).sum()
    assert geometry.negative_mode_share(E_NxD, W_DxD) == pytest.approx(want, rel=1e-8)
    # A positive semi-definite W (Node2Vec's W = I) has no negative modes; -I has only negative ones.
    assert geometry.negative_mode_share(E_NxD, np.eye(6)) == 0.0
    assert geometry.negative_mode_share(E_NxD, -np.eye(6)) == 1.0


def _eigenspace_end(values_desc, k, tol=1e-9):
    """Last index of the eigenspace holding index k, in a descending closed-form spectrum."""
    return max(i for i, v in enumerate(values_desc) if abs(v - values_desc[k]) < tol)


def _star_spectrum(d, length):
    """M of path-star G(d, ℓ) in closed form: arm contrasts (root 0, arms summing to 0) repeat the
    eigenvalues of one arm's block (d−1)-fold; arm-symmetric vectors follow the (ℓ)×(ℓ) quotient."""
    arm_deg = [2] * (length - 2) + [1]
    arm = np.zeros((length - 1, length - 1))
    for i in range(length - 2):
        arm[i, i + 1] = arm[i + 1, i] = 1 / arm_deg[i] + 1 / arm_deg[i + 1]
    quotient = np.zeros((length, length))  # index 0 = root, 1.. = arm positions
    quotient[0, 1] = d * (1 / d + 1 / arm_deg[0])
    quotient[1:, 1:] = arm
    quotient[1, 0] = 1 / arm_deg[0] + 1 / d
    values = list(np.linalg.eigvalsh(arm)) * (d - 1) + list(np.linalg.eigvals(quotient).real)
    return np.sort(values)[::-1]


def _grid_spectrum(rows, cols):
    """M = D⁻¹A + (D⁻¹A)ᵀ of the 4-neighbour grid built from coordinates, dense numpy."""
    ids = np.arange(rows * cols).reshape(rows, cols)
    A = np.zeros((rows * cols, rows * cols))
    for a, b in [*zip(ids[:, :-1].ravel(), ids[:, 1:].ravel()), *zip(ids[:-1].ravel(), ids[1:].ravel())]:
        A[a, b] = A[b, a] = 1
    deg = A.sum(1)
    return np.sort(np.linalg.eigvalsh(A / deg[:, None] + A / deg[None, :]))[::-1]


@pytest.mark.parametrize("graph,closed_form", [
    (graphs.cycle(15), np.sort(2 * np.cos(2 * np.pi * np.arange(15) / 15))[::-1]),  # M = A: pairs j, n−j
    (graphs.grid(4, 4), _grid_spectrum(4, 4)),
    (graphs.path_star(4, 5, seed=0), _star_spectrum(4, 5)),
])
def test_closing_k_ends_each_eigenspace_of_the_closed_form_spectrum(graph, closed_form):
    vals, _ = spectral.eigenpairs(graph.adjacency())
    np.testing.assert_allclose(vals, closed_form, atol=1e-9)
    for k in range(1, graph.num_nodes):
        assert spectral.closing_k(vals, k, complete=True) == _eigenspace_end(closed_form, k)
    for k in range(1, 6):  # a truncated spectrum (sparse top-K) never guesses past its last value
        end = _eigenspace_end(closed_form, k)
        assert spectral.closing_k(vals[:6], k, complete=False) == (end if end < 5 else None)


def test_closed_alignments_move_k_and_do_not_depend_on_the_eigenspace_basis():
    graph = graphs.cycle(15)
    vals, vecs = spectral.eigenpairs(graph.adjacency())
    assert spectral.closing_k(vals, 5, complete=True) == 6  # λ = 2cos(72°) = 0.618 is a pair
    assert spectral.closing_k(vals, 1, complete=True) == 2 and spectral.closing_k(vals, 4, complete=True) == 4
    rng = np.random.default_rng(0)
    E = rng.normal(size=(15, 7))
    turn = np.linalg.qr(rng.normal(size=(2, 2)))[0]
    rotated = vecs.copy()
    rotated[:, 5:7] = vecs[:, 5:7] @ turn  # another orthonormal basis of the same eigenspace
    got = spectral.closed_alignments(E, vals, vecs, (2, 4, 5, 10), complete=True)
    assert sorted(got) == [2, 4, 6, 10]
    assert got == pytest.approx(spectral.closed_alignments(E, vals, rotated, (2, 4, 5, 10), complete=True))
    assert spectral.spectral_alignment(E, vecs, 5) != pytest.approx(spectral.spectral_alignment(E, rotated, 5))
    assert got[6] == pytest.approx(spectral.spectral_alignment(E, vecs, 6))


@pytest.mark.parametrize("graph", [graphs.path_star(5, 4, seed=0), graphs.cycle(15)], ids=["path_star", "cycle"])
def test_training_alignment_is_the_analysis_alignment_at_its_k_also_when_padded(graph):
    """evals.spectral_alignment (jnp, float32) on batches.alignment_basis == spectral.spectral_alignment
    at the same k, one of the analysis's reported k; sweep padding (zero eigenvector rows and columns,
    garbage table rows past the graph) changes nothing; an all-zero table is nan as in numpy."""
    import jax.numpy as jnp

    from geomem_jax import batches, evals

    k, basis_NxK = batches.alignment_basis(graph)
    vals, vecs = spectral.eigenpairs(graph.adjacency())
    ks = spectral.default_alignment_ks(graph.family, graph)
    n, rng = graph.num_nodes, np.random.default_rng(0)
    E_NxD = (rng.normal(size=(n, 8)) + 4 * vecs[:, :3] @ rng.normal(size=(3, 8))).astype(np.float32)
    assert k == {"path_star": 4, "cycle": 2}[graph.family]  # the d − 1 arm modes; the cos/sin pair
    assert k in spectral.closed_alignments(E_NxD, vals, vecs, ks, complete=True)
    want = spectral.spectral_alignment(E_NxD, vecs, k)

    def jnp_alignment(E, basis, n_pad, k_pad):
        table = np.concatenate([E, rng.normal(size=(n_pad - n, E.shape[1])) * 9]).astype(np.float32)
        basis_pad = np.pad(basis, ((0, n_pad - n), (0, k_pad - basis.shape[1]))).astype(np.float32)
        modes = (np.arange(k_pad) >= 1) & (np.arange(k_pad) <= k)
        return float(evals.spectral_alignment(jnp.asarray(table), jnp.asarray(basis_pad),
                                              jnp.arange(n_pad) < n, jnp.asarray(modes)))

    alone = jnp_alignment(E_NxD, basis_NxK, n, k + 1)
    assert alone == pytest.approx(want, abs=1e-6)
    assert jnp_alignment(E_NxD, basis_NxK, n + 7, k + 5) == pytest.approx(alone, abs=1e-6)
    assert np.isnan(jnp_alignment(np.zeros_like(E_NxD), basis_NxK, n + 7, k + 5))


def test_no_alignment_basis_over_the_node_cap_and_none_in_a_sweep_that_has_such_a_graph():
    from types import SimpleNamespace

    from geomem_jax import batches, evals

    big, small = graphs.cycle(evals.LOGIT_MARGIN_MAX_NODES + 1), graphs.cycle(15)
    assert batches.alignment_basis(big) is None
    exps = [SimpleNamespace(graph_index=i) for i in (0, 1, 1)]
    assert batches._alignment_tables([big, small], exps, big.num_nodes) == {}
    tables = batches._alignment_tables([small, graphs.path_star(5, 4, seed=0)], exps, 16)
    assert tables["align_eigvecs_SxNxK"].shape == (3, 16, 5) and tables["align_k_S"].tolist() == [2, 4, 4]
    assert tables["align_modes_SxK"].tolist()[0] == [False, True, True, False, False]
