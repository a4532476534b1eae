"""Figures of one experiment's embeddings (matplotlib, Agg backend, headless); the figures of
metrics over training and across runs are in plots_metrics.py (still reachable as `plots.NAME`).

Every function titles the figure, labels axes and colour bars, saves one PNG and
returns its path. Graphs with more than `MAX_DRAWN_NODES` nodes are drawn on a
fixed-seed node sample (the caption says so).
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Line3DCollection  # noqa: E402
from scipy.sparse import csgraph  # noqa: E402

from geomem_jax.analysis.geometry import sample_nodes, unit_rows  # noqa: E402
from geomem_jax.analysis.spectral import normalised_spectrum  # noqa: E402

MAX_DRAWN_NODES = 500
MAX_DRAWN_MODES = 60
MAX_DRAWN_EDGES = 2000
MAX_DRAWN_ARMS = 8  # a star's PCA shows this many whole arms: all of them would be a hairball


def _save(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)  # figures use layout="constrained": bbox_inches="tight" would draw each twice
    plt.close(fig)
    return path


def _drawn_nodes(num_nodes, order_N, seed) -> np.ndarray:
    """Nodes to draw, in drawing order: a prefix of `order_N`, or a fixed-seed sample."""
    if order_N is not None:
        return np.asarray(order_N)[:MAX_DRAWN_NODES]
    return sample_nodes(num_nodes, MAX_DRAWN_NODES, seed)


def star_arms(adjacency, root: int) -> np.ndarray:
    """Arm (root subtree) id per node of a star graph; the root gets −1.

    Arms are the connected components left after deleting the root, numbered in the
    order of their smallest node id.
    """
    adj = sp.csr_matrix(adjacency).tolil()
    adj[root, :] = 0
    adj[:, root] = 0
    _, labels_N = csgraph.connected_components(adj.tocsr(), directed=False)
    labels_N = labels_N.astype(np.int64)
    root_label = labels_N[root]  # the root is left as a component of its own
    labels_N[labels_N > root_label] -= 1
    labels_N[root] = -1
    return labels_N


def node_colours(family: str, graph) -> tuple[np.ndarray, str]:
    """Per-node colour values and their meaning: arm for star graphs, position otherwise."""
    name = str(family).lower()
    if "star" in name or "tree" in name:
        return star_arms(graph.adjacency(), int(graph.root)).astype(float), "arm"
    if "grid" in name:
        spec = getattr(graph, "spec", {}) or {}
        cols = int(spec.get("cols", spec.get("c", 0)) or 0)
        if cols > 0:
            ids = np.arange(graph.num_nodes)
            return (ids // cols + ids % cols).astype(float), "row + column"
    return np.arange(graph.num_nodes, dtype=float), "node id (position)"


def _arm_sample(arms_N, order_N) -> np.ndarray:
    """The root and the first `MAX_DRAWN_ARMS` arms of a star graph, each arm in `order_N` (hop) order."""
    order_N = np.arange(len(arms_N)) if order_N is None else np.asarray(order_N)
    shown = [a for a in dict.fromkeys(arms_N[order_N]) if a >= 0][:MAX_DRAWN_ARMS]
    return order_N[np.isin(arms_N[order_N], [-1, *shown])]


def plot_embedding_pca(E_NxD, edges_Ex2, path, colours_N=None, colour_label="node id", title="Node embeddings (PCA)",
                       seed=0, order_N=None, arms_N=None):
    """3-D PCA of node embeddings with the graph's edges drawn as segments; the PCA is fit on the
    drawn nodes.

    Star graphs (`arms_N`: arm id per node, −1 the root): the root and a handful of whole arms,
    one colour per arm, so that each arm's path from the root is visible. Other graphs: every
    node coloured by `colours_N`, or for large graphs the first 500 nodes of `order_N`, else a
    fixed-seed random sample of 500.
    """
    E_NxD = np.asarray(E_NxD, dtype=np.float64)
    num_nodes = E_NxD.shape[0]
    drawn_M = _arm_sample(np.asarray(arms_N), order_N) if arms_N is not None else _drawn_nodes(num_nodes, order_N, seed)
    centred_NxD = E_NxD - E_NxD[drawn_M].mean(axis=0)
    _, sing_R, vt_RxD = np.linalg.svd(centred_NxD[drawn_M], full_matrices=False)
    num_comp = min(3, vt_RxD.shape[0])
    coords_Nx3 = np.zeros((num_nodes, 3))
    coords_Nx3[:, :num_comp] = centred_NxD @ vt_RxD[:num_comp].T
    explained = sing_R**2 / max(float(np.sum(sing_R**2)), 1e-300)

    fig = plt.figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    is_drawn = np.zeros(num_nodes, bool)
    is_drawn[drawn_M] = True
    edges_Ex2 = np.asarray(edges_Ex2, dtype=np.int64).reshape(-1, 2)
    edges_Ex2 = edges_Ex2[is_drawn[edges_Ex2[:, 0]] & is_drawn[edges_Ex2[:, 1]]][:MAX_DRAWN_EDGES]
    ax.add_collection3d(Line3DCollection(coords_Nx3[edges_Ex2], colors="0.6", linewidths=0.6, zorder=1))
    if arms_N is not None:
        arms_N = np.asarray(arms_N)
        for i, arm in enumerate(a for a in dict.fromkeys(arms_N[drawn_M]) if a >= 0):
            members = drawn_M[arms_N[drawn_M] == arm]
            ax.scatter(*coords_Nx3[members].T, color=plt.cm.tab10(i % 10), s=22, label=f"arm {arm}", zorder=2)
        roots = drawn_M[arms_N[drawn_M] < 0]
        ax.scatter(*coords_Nx3[roots].T, color="k", marker="*", s=120, label="root", zorder=3)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        shown = len(set(arms_N[drawn_M].tolist()) - {-1})
        sampled = f" — root and {shown} of {len(set(arms_N.tolist()) - {-1})} arms"
    else:
        colours_N = np.arange(num_nodes, dtype=float) if colours_N is None else np.asarray(colours_N, dtype=float)
        points = ax.scatter(*coords_Nx3[drawn_M].T, c=colours_N[drawn_M], cmap="viridis", s=18, zorder=2)
        fig.colorbar(points, ax=ax, shrink=0.6, pad=0.1, label=colour_label)
        sampled = f" — {len(drawn_M)} of {num_nodes} nodes" if len(drawn_M) < num_nodes else ""
    for axis_set, i in ((ax.set_xlabel, 0), (ax.set_ylabel, 1), (ax.set_zlabel, 2)):
        share = explained[i] if i < len(explained) else 0.0
        axis_set(f"PC{i + 1} ({100 * share:.0f}%)")
    ax.auto_scale_xyz(*coords_Nx3[drawn_M].T)  # a collection alone does not rescale 3-D axes
    ax.set_title(title + sampled, fontsize=10)
    return _save(fig, path)


def plot_cosine_heatmap(E_NxD, adjacency, path, order_N=None, title="Cosine similarity vs adjacency", seed=0):
    """Node×node cosine-similarity heatmap beside the adjacency matrix, both in `order_N`.

    Large graphs: the first 500 nodes of `order_N` (contiguous blocks such as whole arms),
    or a fixed-seed random sample in id order when no order is given.
    """
    num_nodes = np.asarray(E_NxD).shape[0]
    drawn_M = _drawn_nodes(num_nodes, order_N, seed)
    unit_MxD = unit_rows(np.asarray(E_NxD, dtype=np.float64)[drawn_M])
    cos_MxM = unit_MxD @ unit_MxD.T
    adj_MxM = sp.csr_matrix(adjacency)[drawn_M][:, drawn_M].toarray()

    fig, (ax_c, ax_a) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    image = ax_c.imshow(cos_MxM, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax_c, label="cosine similarity")
    ax_c.set_title("embedding cosine similarity")
    image_a = ax_a.imshow(adj_MxM, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image_a, ax=ax_a, label="edge (1) / no edge (0)")
    ax_a.set_title("adjacency")
    for ax in (ax_c, ax_a):
        ax.set_xlabel("node (graph order)")
        ax.set_ylabel("node (graph order)")
    sampled = f" — {len(drawn_M)} of {num_nodes} nodes" if len(drawn_M) < num_nodes else ""
    fig.suptitle(title + sampled)
    return _save(fig, path)


def plot_spectrum(eigvals_K, proj_K, path, title="Spectrum vs embedding projection"):
    """Bars of normalised eigenvalue and normalised projection ‖Eᵀe_i‖ per mode (trivial dropped)."""
    vals, projs = normalised_spectrum(eigvals_K, proj_K, drop_trivial=True)
    vals, projs = vals[:MAX_DRAWN_MODES], projs[:MAX_DRAWN_MODES]
    index = np.arange(1, len(vals) + 1)
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    ax.bar(index - 0.2, vals, width=0.4, label="eigenvalue of M (÷ max)")
    ax.bar(index + 0.2, projs, width=0.4, label="projection ‖Eᵀe_i‖ (÷ max)")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xlabel("eigen-index i (descending eigenvalue, trivial mode dropped)")
    ax.set_ylabel("normalised value")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_leaf_firsthop(dist_QxQ, path, title="Leaf × first-hop cosine distance (test paths)", seed=0):
    """Heatmap of leaf(i) vs first-hop(j) cosine distances; a low diagonal = geometry."""
    dist_QxQ = np.asarray(dist_QxQ, dtype=float)
    drawn = sample_nodes(dist_QxQ.shape[0], MAX_DRAWN_NODES, seed)
    fig, ax = plt.subplots(figsize=(5.5, 4.8), layout="constrained")
    image = ax.imshow(dist_QxQ[np.ix_(drawn, drawn)], cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine distance 1 − cos")
    ax.set_xlabel("test path j (first hop n1)")
    ax.set_ylabel("test path i (leaf)")
    sampled = f" — {len(drawn)} of {dist_QxQ.shape[0]} paths" if len(drawn) < dist_QxQ.shape[0] else ""
    ax.set_title(title + sampled)
    return _save(fig, path)


def plot_cosine_by_hop(cos_H, path, title="Cosine similarity by hop distance"):
    """Mean cosine similarity against shortest-path hop distance 1..H."""
    hops = np.arange(1, len(cos_H) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    ax.plot(hops, cos_H, marker="o")
    ax.set_xlabel("hop distance")
    ax.set_ylabel("mean cosine similarity")
    ax.set_title(title)
    return _save(fig, path)


def graph_order(family: str, graph) -> np.ndarray:
    """Node order for heatmaps: star graphs root first, then arm by arm from the root outwards;
    other families keep node-id order (ids already follow the cycle / grid rows)."""
    name = str(family).lower()
    if ("star" in name or "tree" in name) and graph.root is not None:
        adj = graph.adjacency()
        arms_N = star_arms(adj, int(graph.root))
        hops_N = csgraph.shortest_path(adj, unweighted=True, directed=False, indices=int(graph.root))
        return np.lexsort((np.arange(graph.num_nodes), hops_N, arms_N))
    return np.arange(graph.num_nodes)


def __getattr__(name: str):
    """`plots.NAME` still reaches the figures of metrics, moved to plots_metrics.py (imported on
    first use: plots_metrics imports `_save` from here)."""
    from geomem_jax.analysis import plots_metrics

    try:
        return getattr(plots_metrics, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
