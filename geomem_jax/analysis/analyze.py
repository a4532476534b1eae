"""Analyse a run directory: checkpoint → numpy embeddings → spectral/geometric scalars → report.

Reads checkpoints only through `geomem_jax.checkpoint` (complete_steps,
incomplete_steps, restore_numpy, load_meta) and never imports model code, so it
works on a run directory copied from any machine. Pass `ckpt=` (any object with
those four functions) to read another storage layout.

What is computed per experiment (node rows 0..N−1 of the token table E):
- geometry/level                 mean cos(E_u, E_v) over the training's directed edges
- spectral/alignment_k<k>        `spectral.spectral_alignment` at each `default_alignment_ks`
                                 moved to its `closing_k` (the name carries the k used)
- geometry/leaf_firsthop_gap     graphs with test paths (≤ 2000 sampled test paths)
- geometry/margin, margin_top1,  models with a bilinear W (meta.model.bilinear), and
  negative_mode_share            Node2Vec with W = I on its input table
- geometry/release_margin(_top1) the same under the PyTorch release's conventions (docs/ANALYSIS.md)
- edge/node_recall_at_5, edge/node_recall_at_degree
                                 models with a node×node score: Node2Vec V Vᵀ (V Uᵀ if
                                 untied), bilinear E W Eᵀ (E W Uᵀ if untied)
summary.json keeps the trainer's value of any metric it also wrote (geometry/level).

Across the run (`correlation.geometry_vs_reasoning`, summary.json "geometry_vs_reasoning", the
report's "Does geometry predict held-out accuracy?"), with >= 8 experiments that have the
held-out first decision (test/first_decision in-context, else test/first_token):
- Spearman rho [paired percentile bootstrap 95% CI] of each geometry scalar (alignment, leaf
  gap, level, margin, logit margin) against it, across experiments, and a scatter figure
- the lag in steps between the half-rise of each geometry curve in metrics.jsonl and that of
  held-out accuracy (positive = geometry rises first), mean [Student-t 95% CI] over experiments
Quantities needing node×node scores use all nodes up to 5000 nodes and a fixed-seed
sample of 2000 source nodes above (see `geometry`).
"""

from __future__ import annotations

import json
import pathlib
import sys
import warnings

import numpy as np

from geomem_jax import graphs, metric_names as names, rundir
from geomem_jax.analysis import correlation, geometry, plots, plots_metrics, report, spectral
from geomem_jax.errors import CheckpointError
from geomem_jax.metrics import aggregate as aggregate_finals, flatten_vectors, read_metrics
from geomem_jax.tasks import SPECIAL_TOKENS  # ids N .. N+8 (numpy only: no jax import)

HOP_SOURCES_LARGE = 500


def _default_ckpt():
    from geomem_jax import checkpoint

    return checkpoint


def _pick_step(ckpt, workdir, step) -> tuple[int, list[str]]:
    """The step to analyse and warning lines about half-written checkpoints."""
    complete = list(ckpt.complete_steps(workdir))
    incomplete = list(ckpt.incomplete_steps(workdir))
    notes = []
    if incomplete:
        notes.append(f"incomplete (half-written) checkpoint steps ignored: {incomplete}")
    if not complete:
        detail = f" (half-written steps: {incomplete})" if incomplete else ""
        raise CheckpointError(f"{workdir}: no complete checkpoint to analyse{detail}")
    if step is None:
        step = complete[-1]
    elif int(step) not in complete:
        raise CheckpointError(f"{workdir}: no complete checkpoint at step {step}; available steps: {complete}")
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return int(step), notes


def _pick_and_read(ckpt, workdir, step, attempts: int = 5) -> tuple[int, list[str], dict]:
    """_pick_step and the state at that step. On a run still training, the newest step can be
    deleted (ckpt.max_to_keep) while it is read: then the newest complete step is picked again."""
    for attempt in range(attempts):
        picked, notes = _pick_step(ckpt, workdir, step)
        try:
            return picked, notes, ckpt.restore_numpy(workdir, picked)
        except CheckpointError:
            if step is not None or picked in ckpt.complete_steps(workdir) or attempt == attempts - 1:
                raise


def _leaf(tree: dict, key_path, what: str) -> np.ndarray:
    node = tree
    for key in key_path:
        if not isinstance(node, dict) or key not in node:
            raise CheckpointError(f"checkpoint has no {what} at {'/'.join(map(str, key_path))}")
        node = node[key]
    return np.asarray(node)


def _sweep_slice(table: np.ndarray, index: int, what: str) -> np.ndarray:
    if table.ndim < 1 or table.shape[0] <= index:
        raise CheckpointError(f"{what} has shape {table.shape}: no sweep entry for experiment {index}")
    return table[index]


def _node_rows(table_SxVxD: np.ndarray, index: int, num_nodes: int, what: str) -> np.ndarray:
    """Rows 0..N−1 of experiment `index`'s table (sweep padding sliced off)."""
    table_VxD = _sweep_slice(table_SxVxD, index, what)
    if table_VxD.ndim != 2 or table_VxD.shape[0] < num_nodes:
        raise CheckpointError(
            f"{what} of experiment {index} has shape {table_VxD.shape} (sweep table {table_SxVxD.shape}) "
            f"but its graph has {num_nodes} nodes: expected (≥{num_nodes}, D)"
        )
    return np.asarray(table_VxD[:num_nodes], dtype=np.float64)


def _special_rows(table_SxVxD: np.ndarray, index: int, num_nodes: int):
    """The experiment's 9 special-token rows (ids N..N+8), or None if its table has none."""
    table_VxD = _sweep_slice(table_SxVxD, index, "token embedding")
    end = num_nodes + len(SPECIAL_TOKENS)
    return np.asarray(table_VxD[num_nodes:end], dtype=np.float64) if table_VxD.shape[0] >= end else None


def sweep_coords(experiment: dict, sweep_keys) -> dict:
    """The experiment's value of each sweep key (looked up in the entry, its hparams, its graph)."""
    if "coords" in experiment:  # written by the trainer: graph index + hparams
        coords = dict(experiment["coords"])
        return {**coords, "seed": experiment.get("seed")} if "seed" in sweep_keys else coords
    coords = {}
    sources = (experiment, experiment.get("hparams", {}), experiment.get("graph_spec", {}), experiment.get("graph", {}))
    for key in sweep_keys:
        for source in sources:
            if isinstance(source, dict) and key in source:
                coords[key] = source[key]
                break
    return coords


class _GraphCache:
    """One Graph and one eigendecomposition per distinct graph spec (seeds share graphs)."""

    def __init__(self):
        self._graphs, self._eigs = {}, {}

    def graph(self, spec: dict):
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._graphs:
            self._graphs[key] = graphs.make_graph(spec)
        return self._graphs[key], key

    def eig(self, key: str, graph):
        if key not in self._eigs:
            self._eigs[key] = spectral.eigenpairs(graph.adjacency())
        return self._eigs[key]


def experiment_scalars(E_NxD, graph, eig, *, direction="both", self_edges=False, W_DxD=None, out_NxD=None, scores=False,
                       specials_XxD=None):
    """All scalars of one experiment plus the arrays the plots need. See the module docstring."""
    eigvals_K, eigvecs_NxK = eig
    scalars = {names.LEVEL: geometry.geometric_level(E_NxD, graph.directed_edges(direction, False))}
    ks = spectral.default_alignment_ks(graph.family, graph)
    complete = eigvecs_NxK.shape[1] == graph.num_nodes
    for k, value in spectral.closed_alignments(E_NxD, eigvals_K, eigvecs_NxK, ks, complete).items():
        scalars[f"{names.SPECTRAL_ALIGNMENT_K}{k}"] = value
    arrays = {"eigvals": eigvals_K, "proj": spectral.projection_energy(E_NxD, eigvecs_NxK)}
    if graph.has_paths and graph.test_paths_QxL.shape[0] >= 2:
        dist_QxQ = geometry.leaf_firsthop_matrix(E_NxD, geometry.leaf_firsthop_paths(graph.test_paths_QxL))
        scalars[names.LEAF_FIRSTHOP_GAP] = geometry.leaf_firsthop_gap(dist_QxQ)
        arrays["leaf_firsthop"] = dist_QxQ
    adjacency = graph.adjacency()
    max_hop = 2 * (graph.path_length - 1) if graph.has_paths else 8
    sources = geometry.SAMPLE_NODES if graph.num_nodes <= geometry.FULL_MAX_NODES else HOP_SOURCES_LARGE
    arrays["cos_by_hop"] = geometry.cosine_by_hop(E_NxD, adjacency, max_hop, max_sources=sources)
    if W_DxD is not None:
        margin = geometry.geometric_margin(E_NxD, W_DxD, adjacency, self_edges=self_edges)
        scalars[names.MARGIN] = margin["margin"]
        scalars[names.MARGIN_TOP1] = margin["margin_top1"]
        scalars[names.NEGATIVE_SHARE] = margin["negative_mode_share"]
        release = geometry.geometric_margin(E_NxD, W_DxD, adjacency, self_edges=self_edges,
                                            specials_XxD=specials_XxD, self_is_miss=True)
        scalars[names.RELEASE_MARGIN] = release["margin"]
        scalars[names.RELEASE_MARGIN_TOP1] = release["margin_top1"]
    if scores:  # node columns only: named apart from the trainer's edge/recall_* over the vocabulary
        score_fn = geometry.bilinear_scores(E_NxD, W_DxD, out_NxD)
        succ = graph.successors(direction, self_edges)
        scalars[names.NODE_RECALL_AT_5] = geometry.edge_recall_at_k(score_fn, succ, 5, self_edges=self_edges)
        scalars[names.NODE_RECALL_AT_DEGREE] = geometry.edge_recall_at_k(score_fn, succ, "degree",
                                                                         self_edges=self_edges)
    return scalars, arrays


def _read_metrics(workdir) -> list[dict]:
    return read_metrics(pathlib.Path(workdir) / rundir.METRICS)


def _experiment_curve(records: list[dict], index: int) -> list[dict]:
    curve = []
    for record in records:
        for entry in record.get("experiments", []):
            if entry.get("index") == index:
                curve.append({"step": record["step"], **entry})
    return curve


def _plots_for(index, family, graph, E_NxD, arrays, curve, out_dir) -> list[pathlib.Path]:
    prefix = out_dir / f"exp{index}"
    colours_N, colour_label = plots.node_colours(family, graph)
    label = f"experiment {index} ({family}, N={graph.num_nodes})"
    order_N = plots.graph_order(family, graph)
    paths = [
        plots.plot_embedding_pca(E_NxD, graph.forward_edges_Ex2, f"{prefix}_pca.png", colours_N, colour_label,
                                 f"PCA of node embeddings — {label}", order_N=order_N,
                                 arms_N=colours_N.astype(int) if colour_label == "arm" else None),
        plots.plot_cosine_heatmap(E_NxD, graph.adjacency(), f"{prefix}_cosine.png", order_N,
                                  f"Cosine vs adjacency — {label}"),
        plots.plot_spectrum(arrays["eigvals"], arrays["proj"], f"{prefix}_spectrum.png",
                            f"Spectrum vs projection — {label}"),
        plots.plot_cosine_by_hop(arrays["cos_by_hop"], f"{prefix}_cos_by_hop.png", f"Cosine by hop distance — {label}"),
    ]
    if "leaf_firsthop" in arrays:
        paths.append(plots.plot_leaf_firsthop(arrays["leaf_firsthop"], f"{prefix}_leaf_firsthop.png",
                                              f"Leaf × first hop — {label}"))
    trajectory = [r for r in curve if names.NODE2VEC_PROJ_V in r and names.NODE2VEC_PROJ_C in r]
    if trajectory:
        records = [{"step": r["step"], "proj_V": r[names.NODE2VEC_PROJ_V], "proj_C": r[names.NODE2VEC_PROJ_C]}
                   for r in trajectory]
        paths.append(plots_metrics.plot_node2vec_trajectories(records, f"{prefix}_node2vec_traj.png",
                                                              f"Node2Vec projections — {label}"))
    mem_key = next((k for k in names.MEMORIZATION_KEYS if any(k in r for r in curve)), None)
    if mem_key and any(names.LEVEL in r for r in curve):
        paths.append(plots_metrics.plot_memorization_vs_geometry(
            curve, f"{prefix}_mem_vs_geometry.png", mem_key, names.LEVEL,
            f"Memorization, geometry and held-out accuracy — {label}"))
    return paths


def _trainer_keys(records: list[dict], index: int) -> set:
    """Metric names of the experiment's last metrics.jsonl entry: summary.json's `final` keeps them as trained."""
    last = next((e for r in reversed(records) for e in r.get("experiments", []) if e.get("index") == index), {})
    return set(flatten_vectors(last))


def _merge_summary(workdir, step, rows, records, extra: dict | None = None) -> dict:
    """Merge the analysis scalars (and the top-level `extra` keys) into summary.json (one atomic
    write, other keys kept); returns it.

    A scalar the trainer also wrote (geometry/level) is not replaced, so `final` stays the last
    line of metrics.jsonl for every training metric."""
    path = pathlib.Path(workdir) / rundir.SUMMARY
    if not path.is_file():  # still training (or stopped): its writer creates summary.json at the end
        return {}
    summary = rundir.read_json(path)
    by_index = {e.get("index"): e for e in summary.setdefault("experiments", [])}
    for row in rows:
        entry = by_index.get(row["index"])
        if entry is None:
            entry = {"index": row["index"], **row["coords"]}
            summary["experiments"].append(entry)
        trained = _trainer_keys(records, row["index"])
        entry.setdefault("final", {}).update({k: v for k, v in row["scalars"].items() if k not in trained})
        entry["final"][names.ANALYSIS_STEP] = step
    if all("coords" in e and "seed" in e for e in summary["experiments"]):
        summary["aggregate"] = aggregate_finals(summary["experiments"])  # now with the new scalars
    summary.update(extra or {})
    rundir.write_json_atomic(path, summary)
    return summary


def analyze_run(workdir, step: int | None = None, out_dir=None, make_plots: bool = True, ckpt=None) -> dict:
    """Analyse the checkpoint at `step` (default: latest complete) of the run in `workdir`.

    Writes the scalars into summary.json (each experiment's "final", plus the seed
    aggregates), plots and `report.md` into `out_dir` (default `<workdir>/report/`).
    Seed aggregation groups experiments by every sweep coordinate except seed and
    reports mean, std (ddof=1; 0 for n=1) and ci95 = Student-t 95% half-width
    t.ppf(0.975, n−1)·std/√n. Raises CheckpointError when there is no complete
    checkpoint, the step does not exist (message lists available steps) or the
    embedding table does not match the graph (message has both shapes).
    Also asks whether geometry predicts the held-out first decision
    (`correlation.geometry_vs_reasoning`, stored in summary.json under "geometry_vs_reasoning").
    Returns {"step", "experiments": [{"index", "coords", "scalars"}], "aggregate",
    "report", "arrays": {index: {"eigvals", "proj", "cos_by_hop", ["leaf_firsthop"]}},
    "geometry_vs_reasoning"}.
    """
    ckpt = ckpt or _default_ckpt()
    workdir = pathlib.Path(workdir)
    step, notes, tree = _pick_and_read(ckpt, workdir, step)
    meta = ckpt.load_meta(workdir)
    model = meta.get("model", {})
    family = str(model.get("family", ""))
    embed_SxVxD = _leaf(tree, model.get("embedding", ["params", "embed", "embedding"]), "token embedding")
    out_path = model.get("output_embedding")
    out_SxVxD = _leaf(tree, out_path, "output embedding") if out_path else None
    bilinear_path = model.get("bilinear")
    W_SxDxD = _leaf(tree, bilinear_path, "bilinear W") if bilinear_path else None
    is_node2vec = "node2vec" in family.lower()
    sweep_keys = meta.get("sweep_keys", ["seed"])
    out_dir = pathlib.Path(out_dir) if out_dir is not None else workdir / rundir.REPORT_DIR
    records = _read_metrics(workdir)

    cache = _GraphCache()
    rows, all_arrays, plot_paths = [], {}, {}
    for exp in meta["experiments"]:
        index = int(exp["index"])
        graph, key = cache.graph(exp["graph_spec"])
        E_NxD = _node_rows(embed_SxVxD, index, graph.num_nodes, "token embedding")
        out_NxD = _node_rows(out_SxVxD, index, graph.num_nodes, "output embedding") if out_SxVxD is not None else None
        W_DxD = None
        if W_SxDxD is not None:
            W_DxD = np.asarray(_sweep_slice(W_SxDxD, index, "bilinear W"), dtype=np.float64)
            if W_DxD.shape != (E_NxD.shape[1], E_NxD.shape[1]):
                raise CheckpointError(f"bilinear W of experiment {index} has shape {W_DxD.shape}; "
                                      f"embedding width is {E_NxD.shape[1]}")
        elif is_node2vec:
            W_DxD = np.eye(E_NxD.shape[1])
        scalars, arrays = experiment_scalars(
            E_NxD, graph, cache.eig(key, graph),
            direction=exp.get("edges", "both"), self_edges=bool(exp.get("self_edges", False)),
            W_DxD=W_DxD, out_NxD=out_NxD, scores=W_SxDxD is not None or is_node2vec,
            specials_XxD=_special_rows(embed_SxVxD, index, graph.num_nodes) if W_SxDxD is not None else None,
        )
        rows.append({"index": index, "coords": sweep_coords(exp, sweep_keys), "scalars": scalars})
        all_arrays[index] = arrays
        if make_plots:
            curve = _experiment_curve(records, index)
            plot_paths[index] = _plots_for(index, graph.family, graph, E_NxD, arrays, curve, out_dir)

    aggregate = report.aggregate_over_seeds(rows)
    predicts = correlation.geometry_vs_reasoning(rows, records, correlation.decision_target(rows, records), step=step)
    summary = _merge_summary(workdir, step, rows, records, {"geometry_vs_reasoning": predicts})
    notes = [f"run directory: {workdir}", f"analysed step: {step}", f"model family: {family or 'unknown'}"] + notes
    title = f"Analysis of {workdir.name} at step {step}"
    report_path = report.write_report(out_dir, title, rows, aggregate, plot_paths, notes,
                                      summary=summary, make_plots=make_plots, geometry_vs_reasoning=predicts,
                                      records=records)
    return {"step": step, "experiments": rows, "aggregate": aggregate, "report": report_path, "arrays": all_arrays,
            "geometry_vs_reasoning": predicts}


def export_embeddings(workdir, step: int | None, out_dir, ckpt=None) -> pathlib.Path:
    """Write each experiment's node embedding rows (node-id order, float32) as emb_<index>.npy.

    Also writes index.json: {"rows": "row i of emb_<index>.npy is node i of the graph", "experiments":
    [{"index", "file", "coords", "graph_spec", "num_nodes", "step", "graph": {"forward_edges",
    "train_paths", "test_paths", "root"}}]}: the graph in node ids, so the export stands alone.
    Refuses (CheckpointError) when out_dir exists and is not empty. Returns out_dir.
    """
    ckpt = ckpt or _default_ckpt()
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CheckpointError(f"{out_dir}: export directory exists and is not empty; choose a new one")
    step, _, tree = _pick_and_read(ckpt, workdir, step)
    meta = ckpt.load_meta(workdir)
    model = meta.get("model", {})
    embed_SxVxD = _leaf(tree, model.get("embedding", ["params", "embed", "embedding"]), "token embedding")
    sweep_keys = meta.get("sweep_keys", ["seed"])
    cache = _GraphCache()
    entries, tables = [], []
    for exp in meta["experiments"]:
        index = int(exp["index"])
        graph, _ = cache.graph(exp["graph_spec"])
        tables.append((index, _node_rows(embed_SxVxD, index, graph.num_nodes, "token embedding")))
        entries.append({"index": index, "file": f"emb_{index}.npy", "coords": sweep_coords(exp, sweep_keys),
                        "graph_spec": exp["graph_spec"], "num_nodes": int(graph.num_nodes), "step": step,
                        "graph": _graph_in_node_ids(graph)})
    out_dir.mkdir(parents=True, exist_ok=True)  # only after every check passed
    for index, E_NxD in tables:
        np.save(out_dir / f"emb_{index}.npy", E_NxD.astype(np.float32))
    rundir.write_json_atomic(out_dir / "index.json", {
        "rows": "row i of emb_<index>.npy (float32, num_nodes x width) is the embedding of node i; "
                "graph.forward_edges / train_paths / test_paths use the same node ids",
        "experiments": entries,
    })
    return out_dir


def _graph_in_node_ids(graph) -> dict:
    """The graph an embedding table belongs to, as JSON lists of node ids."""
    as_list = lambda a: np.asarray(a).astype(int).tolist() if a is not None else []
    return {"root": None if graph.root is None else int(graph.root),
            "forward_edges": as_list(graph.forward_edges_Ex2),
            "train_paths": as_list(getattr(graph, "train_paths_PxL", None)),
            "test_paths": as_list(getattr(graph, "test_paths_QxL", None))}


if __name__ == "__main__":  # python -m geomem_jax.analysis.analyze <workdir> [step]
    result = analyze_run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(result["report"])
