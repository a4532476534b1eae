"""Spectral analysis of node embeddings against the graph's random-walk operator (docs/ANALYSIS.md).

numpy / scipy only. Conventions:
- A is the undirected 0/1 adjacency (scipy sparse), D = diag(degrees).
- M = D⁻¹A + (D⁻¹A)ᵀ; its eigenvectors are those of −L with
  L = (I − D⁻¹A) + (I − D⁻¹A)ᵀ. Eigenpairs are sorted by eigenvalue, DESCENDING:
  index 0 is the (near-)constant "trivial" mode, then the smooth Fiedler-like modes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

DENSE_MAX_NODES = 2000  # eigh on a dense N×N matrix up to here, sparse top-k above
SPARSE_DEFAULT_K = 32
FIXED_ALIGNMENT_KS = (2, 5, 10)
EIGENSPACE_TOL = 1e-6  # λ_k − λ_(k+1) ≤ this · max|λ| counts as one eigenspace (float64 eigh: ~1e-15)


def walk_matrix(adjacency) -> sp.csr_matrix:
    """M = D⁻¹A + (D⁻¹A)ᵀ as a sparse symmetric matrix.

    Rows of isolated nodes (degree 0) stay zero instead of dividing by zero.
    """
    adj = sp.csr_matrix(adjacency, dtype=np.float64)
    degrees_N = np.asarray(adj.sum(axis=1)).ravel()
    inv_degrees_N = np.divide(1.0, degrees_N, out=np.zeros_like(degrees_N), where=degrees_N > 0)
    walk = sp.diags(inv_degrees_N) @ adj
    return sp.csr_matrix(walk + walk.T)


def eigenpairs(adjacency, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of M (see `walk_matrix`), sorted by eigenvalue descending.

    N ≤ 2000: dense `numpy.linalg.eigh`, all N pairs (or the top k if given).
    N > 2000: `scipy.sparse.linalg.eigsh` top-k by algebraic value (k defaults to 32);
    the start vector is fixed so repeated calls agree. Returns (eigvals_K, eigvecs_NxK)
    with orthonormal columns. Eigenvectors of repeated eigenvalues are an arbitrary
    basis of their eigenspace (e.g. the d−1 arm modes of a path-star graph).
    """
    walk = walk_matrix(adjacency)
    num_nodes = walk.shape[0]
    if num_nodes <= DENSE_MAX_NODES:
        eigvals_N, eigvecs_NxN = np.linalg.eigh(walk.toarray())
        order = np.argsort(eigvals_N)[::-1]
        if k is not None:
            order = order[: int(k)]
        return eigvals_N[order], eigvecs_NxN[:, order]
    k = SPARSE_DEFAULT_K if k is None else int(k)
    k = min(k, num_nodes - 2)  # ARPACK needs k < N
    start_N = np.random.default_rng(0).standard_normal(num_nodes)
    eigvals_K, eigvecs_NxK = spla.eigsh(walk, k=k, which="LA", v0=start_N, tol=1e-8)
    order = np.argsort(eigvals_K)[::-1]
    return eigvals_K[order], eigvecs_NxK[:, order]


def projection_energy(E_NxD: np.ndarray, eigvecs_NxK: np.ndarray) -> np.ndarray:
    """p_i = ‖Eᵀ e_i‖₂ for every eigenvector column e_i (no centering of E)."""
    E_NxD = np.asarray(E_NxD, dtype=np.float64)
    proj_DxK = E_NxD.T @ eigvecs_NxK
    return np.linalg.norm(proj_DxK, axis=0)


def normalised_spectrum(eigvals_K, proj_K, drop_trivial: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The release's normalisation: drop the trivial top mode, divide each series by its max.

    Each series is divided by its maximum over the kept modes (for eigenvalues: the
    largest remaining eigenvalue, so the smoothest non-trivial mode maps to 1 and
    negative eigenvalues stay negative). A non-positive maximum falls back to max |·|;
    an all-zero series is returned unscaled.
    """
    eigvals_K = np.asarray(eigvals_K, dtype=np.float64)
    proj_K = np.asarray(proj_K, dtype=np.float64)
    if drop_trivial:
        eigvals_K, proj_K = eigvals_K[1:], proj_K[1:]

    def _scale(values):
        if not values.size:
            return values
        top = np.max(values) if np.max(values) > 0 else np.max(np.abs(values))
        return values / top if top > 0 else values

    return _scale(eigvals_K), _scale(proj_K)


def spectral_alignment(E_NxD: np.ndarray, eigvecs_NxK: np.ndarray, k: int) -> float:
    """Fraction of the non-trivial embedding energy carried by the k smoothest non-trivial modes.

    With p_i = ‖Eᵀ e_i‖₂ and the eigenvectors sorted by eigenvalue descending
    (e_0 = trivial, near-constant mode):

        alignment_k = Σ_{i=1..k} p_i²  /  (‖E‖_F² − p_0²)

    The denominator is the energy of E orthogonal to the trivial mode. For a full
    orthonormal eigenbasis (dense case) it equals Σ_{i≥1} p_i², the energy over all
    non-trivial modes; when only the top-K eigenvectors are available (sparse case)
    it is computed directly from ‖E‖_F², so both cases share one definition.
    Range [0, 1]; 1 = the embedding lives in span(e_0, …, e_k); an isotropic random
    embedding gives ≈ k/(N−1). k is capped at K−1. Returns nan when E has no
    energy outside the trivial mode.
    """
    E_NxD = np.asarray(E_NxD, dtype=np.float64)
    num_modes = eigvecs_NxK.shape[1]
    k = int(min(k, num_modes - 1))
    if k < 1:
        raise ValueError(f"spectral_alignment needs k >= 1 and at least 2 eigenvectors, got k={k}")
    proj_K = projection_energy(E_NxD, eigvecs_NxK[:, : k + 1])
    energy_nontrivial = float(np.sum(E_NxD * E_NxD)) - float(proj_K[0] ** 2)
    if energy_nontrivial <= 1e-12 * max(float(np.sum(E_NxD * E_NxD)), 1e-300):
        return float("nan")
    return float(np.sum(proj_K[1 : k + 1] ** 2) / energy_nontrivial)


def closing_k(eigvals_K, k: int, complete: bool, tol: float = EIGENSPACE_TOL) -> int | None:
    """The smallest k' ≥ k whose modes 1..k' end at a spectral gap: λ_k' − λ_(k'+1) > tol · max|λ|.

    A k that splits a repeated eigenvalue (the cos/sin pairs of a cycle, the (d−1)-fold arm modes
    of a star) makes `spectral_alignment` depend on the arbitrary basis of that eigenspace; its
    closing k' does not. `complete`: eigvals_K is the whole spectrum (then k' = K−1 always closes);
    for a truncated one (sparse top-K) None when no gap is seen among the K values.
    """
    eigvals_K = np.asarray(eigvals_K, dtype=np.float64)
    if k < 1 or k > len(eigvals_K) - 1:
        return None
    gap_tol = tol * max(float(np.max(np.abs(eigvals_K))), 1e-300)
    gaps_G = eigvals_K[k:-1] - eigvals_K[k + 1 :]
    closed = np.flatnonzero(gaps_G > gap_tol)
    if closed.size:
        return k + int(closed[0])
    return len(eigvals_K) - 1 if complete else None


def closed_alignments(E_NxD, eigvals_K, eigvecs_NxK, ks, complete: bool) -> dict[int, float]:
    """{k': spectral_alignment at k'} for each requested k moved to its `closing_k` k' (deduplicated)."""
    used = sorted({c for c in (closing_k(eigvals_K, int(k), complete) for k in ks) if c is not None})
    return {k: spectral_alignment(E_NxD, eigvecs_NxK, k) for k in used}


def _family_key(family: str) -> str:
    name = str(family).lower().replace("-", "_").replace(" ", "_")
    for key in ("tree", "star", "cycle", "grid", "irregular"):
        if key in name:
            return "star" if key == "star" else key
    if name in ("path", "pathstar"):
        return "star"
    return name


def root_degree(graph) -> int:
    """Degree of the root of a star graph (number of arms / subtrees)."""
    degrees_N = np.asarray(graph.degrees()).ravel()
    return int(degrees_N[int(graph.root)])


def default_alignment_ks(family: str, graph) -> tuple[int, ...]:
    """The k values at which `spectral_alignment` is reported for a graph family.

    - path-star / tree-star: d−1 (the root degree minus one: the arm-distinguishing
      modes come as a (d−1)-fold eigenspace just below the trivial mode), plus 2 and 5;
    - cycle: 2 (the cos/sin pair of the first harmonic) and 4 (first two harmonics);
    - grid: 2 (the two first-row/column modes) and 4;
    - irregular: 1, 2, 3 (its second component contributes one smooth mode);
    - always also (2, 5, 10).
    Every k is capped at N−1 (the number of non-trivial modes), deduplicated, sorted.
    These are requests: the analysis reports each at its `closing_k` (e.g. 5 → 6 on C(15)).
    """
    fam = _family_key(family)
    if fam in ("star", "tree"):
        family_ks = (root_degree(graph) - 1, 2, 5)
    elif fam == "cycle":
        family_ks = (2, 4)
    elif fam == "grid":
        family_ks = (2, 4)
    elif fam == "irregular":
        family_ks = (1, 2, 3)
    else:
        family_ks = ()
    cap = int(graph.num_nodes) - 1
    return tuple(sorted({min(int(k), cap) for k in family_ks + FIXED_ALIGNMENT_KS if k >= 1}))


def _row_softmax(logits_NxN: np.ndarray) -> np.ndarray:
    shifted = logits_NxN - logits_NxN.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def node2vec_c_matrix(V_NxD: np.ndarray, adjacency) -> np.ndarray:
    """C = (D⁻¹A − P) + (D⁻¹A − P)ᵀ with P = row_softmax(V Vᵀ) (dense; small graphs).

    Node2Vec's full-softmax gradient ascent is ΔV = η C V; the softmax runs
    over all N nodes including the node itself.
    """
    V_NxD = np.asarray(V_NxD, dtype=np.float64)
    adj = sp.csr_matrix(adjacency, dtype=np.float64)
    degrees_N = np.asarray(adj.sum(axis=1)).ravel()
    inv_degrees_N = np.divide(1.0, degrees_N, out=np.zeros_like(degrees_N), where=degrees_N > 0)
    walk_NxN = (sp.diags(inv_degrees_N) @ adj).toarray()
    diff_NxN = walk_NxN - _row_softmax(V_NxD @ V_NxD.T)
    return diff_NxN + diff_NxN.T


def node2vec_trajectory_point(V_NxD: np.ndarray, adjacency, eigvecs_NxK: np.ndarray) -> dict:
    """‖Vᵀ e_i‖ and ‖C e_i‖ for each eigenvector (one point of the paper's trajectories)."""
    c_NxN = node2vec_c_matrix(V_NxD, adjacency)
    return {
        "proj_V": projection_energy(V_NxD, eigvecs_NxK),
        "proj_C": np.linalg.norm(c_NxN @ eigvecs_NxK, axis=0),
    }
