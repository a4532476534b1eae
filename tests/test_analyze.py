"""analyze_run / export_embeddings end to end on fake run directories (numpy checkpoints)."""

import json
import re
import types

import numpy as np
import pytest

from geomem_jax import graphs
from geomem_jax.analysis import analyze, geometry, spectral
from geomem_jax.errors import CheckpointError
from geomem_jax.metrics import flatten_vectors, read_metrics

NUM_SPECIALS = 9
DIM = 8
STAR_SPEC = {"family": "path_star", "degree": 4, "path_length": 4, "seed": 0, "train_fraction": 0.5}
CYCLE_SPEC = {"family": "cycle", "num_nodes": 6}


def fake_ckpt(trees: dict, incomplete=()):
    """The four checkpoint functions analyze uses, backed by in-memory numpy trees."""
    return types.SimpleNamespace(
        complete_steps=lambda workdir: sorted(trees),
        incomplete_steps=lambda workdir: list(incomplete),
        restore_numpy=lambda workdir, step: trees[step],
        load_meta=lambda workdir: json.loads((workdir / "meta.json").read_text()),
    )


def _planted(graph, seed):
    from geomem_jax.analysis.plots import star_arms

    arms = star_arms(graph.adjacency(), graph.root)
    rng = np.random.default_rng(seed)
    E = 0.05 * rng.normal(size=(graph.num_nodes, DIM))
    E[arms >= 0] += rng.normal(size=(arms.max() + 1, DIM))[arms[arms >= 0]]
    return E


def make_run(tmp_path, model=None, experiments=None, tables=None):
    """A run dir with 3 experiments: star seeds 0/1 (lr 0.1) and a smaller cycle (lr 0.2)."""
    experiments = experiments or [
        {"index": 0, "seed": 0, "graph_spec": STAR_SPEC, "hparams": {"lr": 0.1}},
        {"index": 1, "seed": 1, "graph_spec": STAR_SPEC, "hparams": {"lr": 0.1}},
        {"index": 2, "seed": 0, "graph_spec": CYCLE_SPEC, "hparams": {"lr": 0.2}},
    ]
    for exp in experiments:
        exp.setdefault("edges", "both")
        exp.setdefault("self_edges", False)
        exp["graph"] = graphs.graph_summary(graphs.make_graph(exp["graph_spec"]))
    model = model or {"family": "node2vec", "embedding": ["params", "V"], "output_embedding": None, "bilinear": None}
    meta = {"experiments": experiments, "model": model, "sweep_keys": ["seed", "lr"]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    records = [
        {"step": s, "experiments": [
            {"index": e["index"], "train/loss": 0.5, "edge/recall_at_5": s / 20, "geometry/level": s / 40,
             "edge/recall_at_degree": s / 30, "node2vec/proj_V": [1.0, s / 10, 0.5],
             "node2vec/proj_C": [0.1, 1 / (1 + s), 0.2]} for e in experiments]}
        for s in (0, 10, 20)
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    last = {e["index"]: {k: v for k, v in flatten_vectors(e).items() if k != "index"}
            for e in records[-1]["experiments"]}
    summary = {  # as the trainer writes it: final = the last metrics.jsonl line
        "experiments": [{"index": e["index"], "seed": e["seed"], "coords": {"lr": e["hparams"]["lr"]},
                         "final": last[e["index"]], "best": {"x": 1}} for e in experiments],
        "aggregate": [{"lr": 0.1, "n": 2, "seeds": [0, 1], "train/loss": {"mean": 0.5}}],
        "other": "kept",
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    if tables is None:
        n_pad = max(e["graph"]["num_nodes"] for e in experiments)
        rng = np.random.default_rng(0)
        tables = rng.normal(size=(len(experiments), n_pad + NUM_SPECIALS, DIM))
        star = graphs.make_graph(STAR_SPEC)
        tables[0, : star.num_nodes] = _planted(star, seed=0)
    return {"params": {"V": tables}}


def test_analyze_run_end_to_end(tmp_path):
    tree = make_run(tmp_path)
    ckpt = fake_ckpt({10: {"params": {"V": tree["params"]["V"] * 0}}, 20: tree}, incomplete=[30])
    with pytest.warns(UserWarning, match=r"\[30\]"):
        result = analyze.analyze_run(tmp_path, ckpt=ckpt)
    assert result["step"] == 20  # latest complete, the half-written 30 ignored

    star = graphs.make_graph(STAR_SPEC)
    E0 = tree["params"]["V"][0, : star.num_nodes]
    scalars = {row["index"]: row["scalars"] for row in result["experiments"]}
    assert scalars[0]["geometry/level"] == pytest.approx(geometry.geometric_level(E0, star.directed_edges("both")))
    vals, vecs = spectral.eigenpairs(star.adjacency())
    assert scalars[0]["spectral/alignment_k3"] == pytest.approx(spectral.spectral_alignment(E0, vecs, 3))
    assert scalars[0]["geometry/leaf_firsthop_gap"] > 0.5  # planted arms
    margin = geometry.geometric_margin(E0, np.eye(DIM), star.adjacency())["margin"]
    assert scalars[0]["geometry/margin"] == pytest.approx(margin)
    assert scalars[0]["edge/node_recall_at_5"] == pytest.approx(
        geometry.edge_recall_at_k(E0 @ E0.T, star.successors("both"), 5))
    assert "geometry/leaf_firsthop_gap" not in scalars[2]  # the cycle has no paths
    E2 = tree["params"]["V"][2, :6]  # padding rows sliced off
    cycle_edges = graphs.cycle(6).directed_edges("both")
    assert scalars[2]["geometry/level"] == pytest.approx(geometry.geometric_level(E2, cycle_edges))

    # seed aggregation: {lr 0.1} has the two star seeds
    group = next(g for g in result["aggregate"] if g["coords"] == {"lr": 0.1})
    level = [scalars[0]["geometry/level"], scalars[1]["geometry/level"]]
    stats = group["metrics"]["geometry/level"]
    assert group["n"] == 2 and stats["mean"] == pytest.approx(np.mean(level))
    assert stats["std"] == pytest.approx(np.std(level, ddof=1))
    assert stats["ci95"] == pytest.approx(12.7062047 * np.std(level, ddof=1) / np.sqrt(2), rel=1e-6)
    single = next(g for g in result["aggregate"] if g["coords"] == {"lr": 0.2})
    assert single["metrics"]["geometry/level"]["std"] == 0.0 and single["metrics"]["geometry/level"]["ci95"] == 0.0

    # summary.json: analysis scalars merged, the trainer's geometry/level kept, other keys kept, no temp file
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["other"] == "kept"
    final0 = summary["experiments"][0]["final"]
    assert final0["train/loss"] == 0.5 and final0["geometry/level"] == 0.5  # the trainer's 20 / 40
    assert final0["spectral/alignment_k3"] == pytest.approx(scalars[0]["spectral/alignment_k3"])
    assert final0["analysis/step"] == 20 and summary["experiments"][0]["best"] == {"x": 1}
    group = next(g for g in summary["aggregate"] if g["lr"] == 0.1)  # recomputed from the finals
    assert group["train/loss"]["mean"] == 0.5 and group["n"] == 2
    assert group["spectral/alignment_k3"]["mean"] == pytest.approx(
        np.mean([scalars[0]["spectral/alignment_k3"], scalars[1]["spectral/alignment_k3"]]))
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]

    # plots exist and report.md links every one of them
    report_dir = tmp_path / "report"
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert {"exp0_pca.png", "exp0_cosine.png", "exp0_spectrum.png", "exp0_leaf_firsthop.png",
            "exp0_node2vec_traj.png", "exp0_mem_vs_geometry.png", "exp2_pca.png"} <= set(pngs)
    assert all((report_dir / p).stat().st_size > 1000 for p in pngs)
    text = (report_dir / "report.md").read_text()
    assert sorted(re.findall(r"\]\(([^)]+\.png)\)", text)) == pngs
    assert "geometry/level" in text and "step 20" in text and "[30]" in text


def test_bilinear_model_margin_and_explicit_step(tmp_path):
    experiments = [{"index": 0, "seed": 3, "graph_spec": CYCLE_SPEC, "hparams": {"lr": 0.1}}]
    rng = np.random.default_rng(4)
    tables = rng.normal(size=(1, 6 + NUM_SPECIALS, DIM))
    model = {"family": "mlp_only", "embedding": ["params", "E"], "output_embedding": None, "bilinear": ["params", "W"]}
    make_run(tmp_path, model=model, experiments=experiments, tables=tables)
    W = rng.normal(size=(1, DIM, DIM))
    ckpt = fake_ckpt({5: {"params": {"E": tables, "W": W}}, 9: {"params": {"E": tables * 0, "W": W}}})
    result = analyze.analyze_run(tmp_path, step=5, make_plots=False, ckpt=ckpt)
    E = tables[0, :6]
    expected = geometry.geometric_margin(E, W[0], graphs.cycle(6).adjacency())
    got = result["experiments"][0]["scalars"]
    assert result["step"] == 5
    assert got["geometry/margin"] == pytest.approx(expected["margin"])
    assert got["geometry/margin_top1"] == pytest.approx(expected["margin_top1"])
    assert got["edge/node_recall_at_degree"] == pytest.approx(
        geometry.edge_recall_at_k(E @ W[0] @ E.T, graphs.cycle(6).successors("both"), "degree"))
    release = geometry.geometric_margin(E, W[0], graphs.cycle(6).adjacency(), specials_XxD=tables[0, 6:],
                                        self_is_miss=True)  # the 9 special rows of the table
    assert (got["geometry/release_margin"], got["geometry/release_margin_top1"]) == pytest.approx(
        (release["margin"], release["margin_top1"]))
    assert (tmp_path / "report" / "report.md").is_file()
    # summary.json: final is still the last metrics.jsonl line for every training key (issue 12)
    last = flatten_vectors(read_metrics(tmp_path / "metrics.jsonl")[-1]["experiments"][0])
    final = json.loads((tmp_path / "summary.json").read_text())["experiments"][0]["final"]
    assert {k: final[k] for k in last if k != "index"} == {k: v for k, v in last.items() if k != "index"}
    assert final["edge/recall_at_degree"] == 20 / 30 and final["geometry/level"] == 0.5
    assert final["geometry/release_margin"] == pytest.approx(release["margin"])


def test_error_paths(tmp_path):
    tree = make_run(tmp_path)
    with pytest.raises(CheckpointError, match="no complete checkpoint.*\\[7\\]"):
        analyze.analyze_run(tmp_path, ckpt=fake_ckpt({}, incomplete=[7]))
    with pytest.raises(CheckpointError, match=r"step 15.*available steps: \[10, 20\]"):
        analyze.analyze_run(tmp_path, step=15, ckpt=fake_ckpt({10: tree, 20: tree}))
    short = {"params": {"V": tree["params"]["V"][:, :5]}}  # fewer rows than the 13-node star
    with pytest.raises(CheckpointError, match=r"\(5, 8\).*13 nodes"):
        analyze.analyze_run(tmp_path, make_plots=False, ckpt=fake_ckpt({1: short}))
    with pytest.raises(CheckpointError, match="no token embedding"):
        analyze.analyze_run(tmp_path, make_plots=False, ckpt=fake_ckpt({1: {"params": {}}}))
    summary_before = (tmp_path / "summary.json").read_text()
    assert json.loads(summary_before)["other"] == "kept"  # failures left it untouched
    assert "analysis/step" not in summary_before


def test_export_embeddings(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    tree = make_run(run)
    ckpt = fake_ckpt({4: tree})
    out = analyze.export_embeddings(run, None, tmp_path / "emb", ckpt=ckpt)
    written = json.loads((out / "index.json").read_text())
    assert "row i" in written["rows"] and "node i" in written["rows"]
    index = written["experiments"]
    assert [e["index"] for e in index] == [0, 1, 2] and index[2]["num_nodes"] == 6 and index[0]["step"] == 4
    assert index[1]["coords"] == {"seed": 1, "lr": 0.1} and index[0]["graph_spec"] == STAR_SPEC
    star = graphs.make_graph(STAR_SPEC)  # the graph travels with the embeddings, in the same node ids
    assert index[0]["graph"]["root"] == star.root
    np.testing.assert_array_equal(index[0]["graph"]["forward_edges"], star.forward_edges_Ex2)
    np.testing.assert_array_equal(index[0]["graph"]["test_paths"], star.test_paths_QxL)
    emb2 = np.load(out / "emb_2.npy")
    assert emb2.dtype == np.float32
    np.testing.assert_allclose(emb2, tree["params"]["V"][2, :6].astype(np.float32))
    with pytest.raises(CheckpointError, match="not empty"):
        analyze.export_embeddings(run, 4, out, ckpt=ckpt)


def test_reads_a_real_orbax_checkpoint(tmp_path):
    """Integration with `geomem_jax.checkpoint` (the default reader)."""
    pytest.importorskip("orbax.checkpoint")
    from geomem_jax import checkpoint

    tree = make_run(tmp_path)
    state = {"params": {"V": tree["params"]["V"].astype(np.float32)}, "step": np.zeros(3, np.int32)}
    with checkpoint.Checkpointer(tmp_path) as ckptr:
        ckptr.save(7, state, {"note": "test"})
    result = analyze.analyze_run(tmp_path, make_plots=False)
    star = graphs.make_graph(STAR_SPEC)
    E0 = tree["params"]["V"][0, : star.num_nodes].astype(np.float32)
    assert result["step"] == 7
    assert result["experiments"][0]["scalars"]["geometry/level"] == pytest.approx(
        geometry.geometric_level(E0, star.directed_edges("both")), rel=1e-5)
    with pytest.raises(CheckpointError, match=r"available steps: \[7\]"):
        analyze.analyze_run(tmp_path, step=3, make_plots=False)


def test_sweep_curves_are_seed_statistics_per_point_and_step(tmp_path):
    from scipy import stats as sps

    from geomem_jax.analysis import plots, report

    summary = {"experiments": [
        {"index": i, "seed": i % 3, "coords": {"graph": i // 3, "lr": 0.01},
         "graph": {"spec": {"family": "path_star", "degree": (100, 200)[i // 3], "path_length": 5}}}
        for i in range(6)]}
    acc = np.array([[0.1, 0.2, 0.3, 0.0, 0.1, 0.05], [0.6, 0.8, 0.7, 0.2, 0.3, 0.1]])  # step × experiment
    records = [{"step": step, "experiments": [
        {"index": i, "test/first_token": acc[t, i], "test/exact_match": acc[t, i], "geometry/level": 0.1 * i}
        for i in range(6)]} for t, step in enumerate((100, 200))]
    records[0]["experiments"][5].pop("geometry/level")  # a metric missing at one evaluation
    assert report.point_labels(summary) == {0: "d=100", 1: "d=100", 2: "d=100", 3: "d=200", 4: "d=200", 5: "d=200"}
    curves = report.sweep_curves(summary, records)
    assert list(curves) == ["d=100", "d=200"]
    (step, s), = [c for c in curves["d=200"]["test/first_token"] if c[0] == 200]
    vals = acc[1, 3:]
    half = sps.t.ppf(0.975, 2) * vals.std(ddof=1) / np.sqrt(3)
    assert s["mean"] == pytest.approx(vals.mean()) and s["ci95"] == pytest.approx(half)
    assert s["lo"] == pytest.approx(max(vals.mean() - half, 0.0))  # accuracies are clipped to [0, 1]
    assert [st["n"] for _, st in curves["d=200"]["geometry/level"]] == [2, 3]
    path = plots.plot_sweep_curves(curves, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots._same_curves(curves, list(curves), "test/first_token", "test/exact_match")  # drawn once
    assert not plots._same_curves(curves, list(curves), "test/first_token", "geometry/level")


def test_the_analysis_stage_imports_no_jax():
    """The analysis runs where only numpy/scipy are wanted (a laptop reading a TPU run's checkpoints)."""
    import subprocess
    import sys

    code = ("import sys; import geomem_jax.analysis.analyze as a; assert a.SPECIAL_TOKENS[-1] == '[PATH]'; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'jax'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
