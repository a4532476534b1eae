"""Geometric measures of node embeddings (docs/ANALYSIS.md). numpy / scipy only.

Everything here streams over rows in chunks so that a 50,001 × 384 table never
produces an N × N dense matrix. Quantities that need node × node scores (margin,
recall, cosine by hop) run on all nodes when N ≤ `FULL_MAX_NODES` and otherwise on
a fixed-seed sample of `SAMPLE_NODES` source nodes (scored against ALL N nodes);
the sample is drawn with `numpy.random.default_rng(seed)` without replacement.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

FULL_MAX_NODES = 5000
SAMPLE_NODES = 2000
ROW_CHUNK = 256
_EPS = 1e-12


def unit_rows(E_NxD: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float64 for small and float32 kept."""
    E_NxD = np.asarray(E_NxD)
    if E_NxD.dtype not in (np.float32, np.float64):
        E_NxD = E_NxD.astype(np.float64)
    norms_N1 = np.linalg.norm(E_NxD, axis=1, keepdims=True)
    return E_NxD / np.maximum(norms_N1, _EPS)


def sample_nodes(num_nodes: int, max_nodes: int = SAMPLE_NODES, seed: int = 0) -> np.ndarray:
    """All node ids if num_nodes ≤ max_nodes, else a sorted fixed-seed sample of max_nodes ids."""
    if num_nodes <= max_nodes:
        return np.arange(num_nodes)
    return np.sort(np.random.default_rng(seed).choice(num_nodes, size=max_nodes, replace=False))


def geometric_level(E_NxD: np.ndarray, directed_edges_Ex2: np.ndarray, chunk: int = 65536) -> float:
    """Mean cosine similarity cos(E_u, E_v) over the directed edges (u, v)."""
    edges_Ex2 = np.asarray(directed_edges_Ex2, dtype=np.int64).reshape(-1, 2)
    if len(edges_Ex2) == 0:
        return float("nan")
    unit_NxD = unit_rows(E_NxD)
    total = 0.0
    for start in range(0, len(edges_Ex2), chunk):
        block_Cx2 = edges_Ex2[start : start + chunk]
        total += float(np.einsum("cd,cd->", unit_NxD[block_Cx2[:, 0]], unit_NxD[block_Cx2[:, 1]], dtype=np.float64))
    return total / len(edges_Ex2)


def _neighbour_mask(adjacency, rows: np.ndarray) -> np.ndarray:
    """Dense boolean (len(rows) × N) mask of the undirected neighbours of `rows`."""
    adj = sp.csr_matrix(adjacency)
    return adj[rows].toarray() != 0


def _spectral_parts(E_NxD: np.ndarray, W_DxD: np.ndarray):
    """(s_R, vt_RxD, λ_R): economy SVD E = U S Vᵀ and λ_k = (Vᵀ W V)_kk."""
    _, s_R, vt_RxD = np.linalg.svd(np.asarray(E_NxD, dtype=np.float64), full_matrices=False)
    lam_R = np.einsum("rd,de,re->r", vt_RxD, np.asarray(W_DxD, dtype=np.float64), vt_RxD)
    return s_R, vt_RxD, lam_R


def spectral_bilinear(E_NxD: np.ndarray, W_DxD: np.ndarray) -> np.ndarray:
    """W' = V diag(λ) Vᵀ with E = U S Vᵀ (economy SVD) and λ_k = (Vᵀ W V)_kk.

    W' keeps only the part of W that is diagonal in E's right singular basis; the
    economy SVD gives rank ≤ min(N, D), so E may be wider than tall.
    """
    _, vt_RxD, lam_R = _spectral_parts(E_NxD, W_DxD)
    return (vt_RxD.T * lam_R) @ vt_RxD


def _negative_share(s_R, lam_R) -> float:
    mu_R = s_R**2 * lam_R
    total = np.abs(mu_R).sum()
    return float(np.abs(mu_R[mu_R < 0]).sum() / total) if total > 0 else float("nan")


def negative_mode_share(E_NxD: np.ndarray, W_DxD: np.ndarray) -> float:
    """Share of the spectral logits E W′ Eᵀ carried by negative eigendirections (the paper's self-edge "zig-zag").

    E W′ Eᵀ = U diag(μ) Uᵀ with μ_k = s_k² λ_k (E = U S Vᵀ, λ from `spectral_bilinear`), so its
    eigenvalues are μ; returns Σ_{μ_k<0} |μ_k| / Σ_k |μ_k|. Without self-edges a node must score
    itself below its neighbours, which on a cycle needs the alternating ("zig-zag") modes with
    negative weight; with self-edges that need disappears. Also in `geometric_margin`'s result.
    """
    s_R, _, lam_R = _spectral_parts(E_NxD, W_DxD)
    return _negative_share(s_R, lam_R)


def geometric_margin(
    E_NxD: np.ndarray,
    W_DxD: np.ndarray,
    adjacency,
    self_edges: bool = False,
    max_nodes: int = SAMPLE_NODES,
    seed: int = 0,
    specials_XxD: np.ndarray | None = None,
    self_is_miss: bool = False,
) -> dict:
    """Geometric margin of an E W Eᵀ memory.

    Logits L = E W' Eᵀ with W' from `spectral_bilinear`. For each node u with at least
    one neighbour and one non-neighbour:
        margin_u = max_{v ∈ nbr(u)} L_uv − max_{v ∉ nbr(u), v ≠ u} L_uv
    and `margin` is the mean over those nodes. `margin_top1` (skewed top-1) is the
    fraction of those nodes whose argmax over candidates v ≠ u is a true neighbour.
    Self is excluded from both maxima; with `self_edges=True` the model was trained on
    u → u, so u counts as one of its own neighbours (a candidate, not a non-neighbour).
    `adjacency` is the undirected 0/1 matrix (its diagonal is ignored).
    The PyTorch release's conventions, off by default:
    - `specials_XxD`: extra token rows (the 9 specials) join E in the SVD and are
      non-neighbour candidates of every node (they are never scored as u);
    - `self_is_miss`: u is never its own neighbour (even with self-edges), and top-1 is the
      argmax over all columns, u included, so a node scoring itself highest is a miss.
    Ties count as hits. Sampling: when N > max_nodes, u runs over a fixed-seed sample of
    max_nodes nodes (each scored against all N nodes); `num_nodes_scored` reports how many
    were used. `negative_mode_share` (see `negative_mode_share`) comes from the same SVD.
    """
    E_NxD = np.asarray(E_NxD, dtype=np.float64)
    num_nodes = E_NxD.shape[0]
    table_VxD = E_NxD if specials_XxD is None else np.vstack([E_NxD, np.asarray(specials_XxD, np.float64)])
    s_R, vt_RxD, lam_R = _spectral_parts(table_VxD, W_DxD)
    right_DxV = ((vt_RxD.T * lam_R) @ vt_RxD) @ table_VxD.T
    rows_R = sample_nodes(num_nodes, max_nodes, seed)
    margins, hits = [], []
    for start in range(0, len(rows_R), ROW_CHUNK):
        rows_C = rows_R[start : start + ROW_CHUNK]
        logits_CxV = E_NxD[rows_C] @ right_DxV
        nbr_CxV = np.pad(_neighbour_mask(adjacency, rows_C), ((0, 0), (0, len(table_VxD) - num_nodes)))
        self_CxV = np.zeros_like(nbr_CxV)
        self_CxV[np.arange(len(rows_C)), rows_C] = True
        nbr_CxV &= ~self_CxV
        if self_edges and not self_is_miss:
            nbr_CxV |= self_CxV
        non_CxV = ~nbr_CxV & ~self_CxV
        best_nbr_C = np.where(nbr_CxV, logits_CxV, -np.inf).max(axis=1)
        best_non_C = np.where(non_CxV, logits_CxV, -np.inf).max(axis=1)
        hit_C = best_nbr_C >= best_non_C
        if self_is_miss:
            hit_C &= best_nbr_C >= logits_CxV[np.arange(len(rows_C)), rows_C]
        valid_C = np.isfinite(best_nbr_C) & np.isfinite(best_non_C)
        margins.append((best_nbr_C - best_non_C)[valid_C])
        hits.append(hit_C[valid_C])
    margins_U = np.concatenate(margins)
    hits_U = np.concatenate(hits)
    share = _negative_share(s_R, lam_R)
    if margins_U.size == 0:
        return {"margin": float("nan"), "margin_top1": float("nan"), "num_nodes_scored": 0,
                "negative_mode_share": share}
    return {
        "margin": float(margins_U.mean()),
        "margin_top1": float(hits_U.mean()),
        "num_nodes_scored": int(margins_U.size),
        "negative_mode_share": share,
    }


def cosine_distance_rows(A_PxD: np.ndarray, B_QxD: np.ndarray) -> np.ndarray:
    """1 − cos(a_i, b_j) for every row pair (P × Q)."""
    return 1.0 - unit_rows(np.asarray(A_PxD, dtype=np.float64)) @ unit_rows(np.asarray(B_QxD, dtype=np.float64)).T


LEAF_FIRSTHOP_MAX_PATHS = 2000  # a larger test set is sampled (fixed seed): a Q x Q matrix per experiment


def leaf_firsthop_paths(test_paths_QxL: np.ndarray) -> np.ndarray:
    """The test paths the leaf × first-hop gap is measured on, by the trainer and the analysis alike."""
    paths_QxL = np.asarray(test_paths_QxL)
    return paths_QxL[sample_nodes(len(paths_QxL), LEAF_FIRSTHOP_MAX_PATHS, seed=0)]


def leaf_firsthop_matrix(E_NxD: np.ndarray, test_paths_QxL: np.ndarray) -> np.ndarray:
    """Q×Q cosine distance between the leaf of path i (last column) and the first hop of path j.

    Paths are rows root, n1, …, leaf; the first hop is column 1. A clear low diagonal
    means each leaf sits next to its own arm's first node (geometry).
    """
    paths_QxL = np.asarray(test_paths_QxL, dtype=np.int64)
    E_NxD = np.asarray(E_NxD)
    return cosine_distance_rows(E_NxD[paths_QxL[:, -1]], E_NxD[paths_QxL[:, 1]])


def leaf_firsthop_gap(dist_QxQ: np.ndarray) -> float:
    """Mean off-diagonal minus mean diagonal distance (positive = geometry). nan if Q < 2."""
    dist_QxQ = np.asarray(dist_QxQ, dtype=np.float64)
    num = dist_QxQ.shape[0]
    if num < 2:
        return float("nan")
    diag_mean = float(np.trace(dist_QxQ)) / num
    off_mean = (float(dist_QxQ.sum()) - float(np.trace(dist_QxQ))) / (num * num - num)
    return off_mean - diag_mean


def path_distance_matrix(E_NxD: np.ndarray, paths_PxL: np.ndarray) -> np.ndarray:
    """P×P mean cosine distance between the node sets of two paths, root excluded.

    entry (a, b) = mean over x ∈ path a[1:], y ∈ path b[1:] of 1 − cos(E_x, E_y)
                 = 1 − mean_unit(a) · mean_unit(b), computed from per-path mean unit vectors.
    The diagonal includes the pairs x = y (distance 0).
    """
    paths_PxL = np.asarray(paths_PxL, dtype=np.int64)
    unit_NxD = unit_rows(np.asarray(E_NxD, dtype=np.float64))
    mean_unit_PxD = unit_NxD[paths_PxL[:, 1:]].mean(axis=1)
    return 1.0 - mean_unit_PxD @ mean_unit_PxD.T


def hops_within(adjacency, sources_C: np.ndarray, max_hop: int) -> np.ndarray:
    """C×N shortest-path hop counts from each source, capped: pairs farther than max_hop get −1.

    A breadth-first search run for all sources at once as sparse-times-dense frontier
    products, so its cost is max_hop · nnz(A) · C and distances beyond max_hop are never
    explored (csgraph.shortest_path would search the whole graph from every source).
    """
    adj = sp.csr_matrix(adjacency, dtype=np.float32)
    adj = sp.csr_matrix(((adj + adj.T) != 0).astype(np.float32))  # undirected
    num_nodes = adj.shape[0]
    sources_C = np.asarray(sources_C, dtype=np.int64)
    hops_NxC = np.full((num_nodes, len(sources_C)), -1, dtype=np.int16)
    frontier_NxC = np.zeros((num_nodes, len(sources_C)), dtype=np.float32)
    frontier_NxC[sources_C, np.arange(len(sources_C))] = 1.0
    hops_NxC[sources_C, np.arange(len(sources_C))] = 0
    for hop in range(1, max_hop + 1):
        reached_NxC = (adj @ frontier_NxC) > 0
        new_NxC = reached_NxC & (hops_NxC < 0)
        if not new_NxC.any():
            break
        hops_NxC[new_NxC] = hop
        frontier_NxC = new_NxC.astype(np.float32)
    return hops_NxC.T


def cosine_by_hop(
    E_NxD: np.ndarray,
    adjacency,
    max_hop: int,
    max_sources: int = SAMPLE_NODES,
    seed: int = 0,
    chunk: int = 128,
) -> np.ndarray:
    """Mean cosine similarity of node pairs (u, v) at shortest-path distance h = 1..max_hop.

    Returns an array of length max_hop (entry h−1 for hop h; nan where no pair exists).
    Pairs are ordered (u, v), u a source. Sources: every node if N ≤ max_sources, else a
    fixed-seed sample of max_sources nodes, each paired with all N nodes (bounded BFS
    distances from `hops_within`, chunked over sources).
    """
    unit_NxD = unit_rows(E_NxD)
    sources_S = sample_nodes(unit_NxD.shape[0], max_sources, seed)
    sums_H = np.zeros(max_hop + 1)
    counts_H = np.zeros(max_hop + 1)
    for start in range(0, len(sources_S), chunk):
        rows_C = sources_S[start : start + chunk]
        hops_CxN = hops_within(adjacency, rows_C, max_hop)
        cos_CxN = unit_NxD[rows_C] @ unit_NxD.T
        within = hops_CxN >= 1
        hop_idx = hops_CxN[within].astype(np.int64)
        sums_H += np.bincount(hop_idx, weights=cos_CxN[within], minlength=max_hop + 1)
        counts_H += np.bincount(hop_idx, minlength=max_hop + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums_H / counts_H)[1:]


ScoreFn = Callable[[np.ndarray], np.ndarray]


def bilinear_scores(E_NxD: np.ndarray, W_DxD: np.ndarray | None = None, out_NxD: np.ndarray | None = None) -> ScoreFn:
    """Score rows for a node × node bilinear memory: rows ↦ E[rows] W Outᵀ (W = I, Out = E by default)."""
    E_NxD = np.asarray(E_NxD, dtype=np.float64)
    out_NxD = E_NxD if out_NxD is None else np.asarray(out_NxD, dtype=np.float64)
    right_DxN = out_NxD.T if W_DxD is None else np.asarray(W_DxD, dtype=np.float64) @ out_NxD.T

    def score(rows: np.ndarray) -> np.ndarray:
        return E_NxD[rows] @ right_DxN

    return score


def _top_k_ids(scores_N: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest scores, ties at the k-th value broken by smaller id (O(N))."""
    kth = np.partition(scores_N, len(scores_N) - k)[len(scores_N) - k]
    above = np.flatnonzero(scores_N > kth)
    tied = np.flatnonzero(scores_N == kth)[: k - len(above)]
    return np.concatenate([above, tied])


def edge_recall_at_k(
    scores,
    successors: tuple[np.ndarray, np.ndarray],
    k: int | str,
    self_edges: bool = False,
    max_nodes: int = SAMPLE_NODES,
    seed: int = 0,
) -> float:
    """Top-k edge recall of a node × node score.

    For a node u with successor set S_u (|S_u| ≥ 1) and T_u = the k highest-scoring
    candidates v (v ≠ u unless `self_edges`):
        recall_u = |T_u ∩ S_u| / min(k, |S_u|)
    averaged over nodes with ≥ 1 successor. With k = "degree" (k = |S_u| per node) this
    is the paper's recall@degree (the fraction of true successors in the top-|S_u|);
    dividing by min(k, |S_u|) makes a perfect memory score 1 for every k.
    `scores` is an N×N array or a callable rows ↦ (len(rows) × N) score block;
    `successors` = (indptr, indices) CSR lists. Ties are broken by node id.
    Sampling: for N > max_nodes a fixed-seed sample of max_nodes nodes is scored.
    """
    indptr, indices = (np.asarray(a, dtype=np.int64) for a in successors)
    num_nodes = len(indptr) - 1
    if callable(scores):
        score_fn = scores
    else:
        scores_NxN = np.asarray(scores)
        score_fn = lambda rows: scores_NxN[rows]
    rows_R = sample_nodes(num_nodes, max_nodes, seed)
    outdeg_R = indptr[rows_R + 1] - indptr[rows_R]
    rows_R = rows_R[outdeg_R > 0]
    recalls = []
    for start in range(0, len(rows_R), ROW_CHUNK):
        rows_C = rows_R[start : start + ROW_CHUNK]
        block_CxN = np.array(score_fn(rows_C), dtype=np.float64, copy=True)
        if not self_edges:
            block_CxN[np.arange(len(rows_C)), rows_C] = -np.inf
        for row, scores_N in zip(rows_C, block_CxN):
            succ = indices[indptr[row] : indptr[row + 1]]
            k_u = min(len(succ) if k == "degree" else int(k), num_nodes)
            top = _top_k_ids(scores_N, k_u)
            recalls.append(np.isin(top, succ).sum() / min(k_u, len(succ)))
    return float(np.mean(recalls)) if recalls else float("nan")
