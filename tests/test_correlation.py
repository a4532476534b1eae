"""Geometry vs held-out accuracy (analysis/correlation.py): statistics against scipy, the lag
estimate on synthetic curves, the run-level result and its report section. No training."""

import json
import math
import re

import numpy as np
import pytest
import scipy.stats

from geomem_jax.analysis import correlation, report
from geomem_jax.analysis.correlation import bootstrap_ci, half_rise_step, lag_steps, spearman

RNG = np.random.default_rng(7)
HAND_MADE = [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([1, 2, 2, 3, 3, 3], [0.1, 0.4, 0.2, 0.9, 0.9, 0.5]),  # ties on both sides
    ([0, 0, 1, 1], [1, 0, 1, 0]),  # ties only: rho 0
    ([3.0, 1.0, 2.0], [-1.0, 5.0, 2.0]),  # the smallest defined case: rho −1
    ([0.5, 0.5, 0.25, 1.0, 0.75, 0.0, 0.25], [0.0, 0.125, 0.125, 0.875, 0.5, 0.0, 0.25]),  # accuracy-like
    (list(RNG.normal(size=40)), list(RNG.integers(0, 5, size=40))),  # many ties in y
]


@pytest.mark.parametrize("x, y", HAND_MADE)
def test_spearman_matches_scipy(x, y):
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_undefined_and_average_ranks():
    assert math.isnan(spearman([1, 2], [2, 1]))  # fewer than 3 points
    assert math.isnan(spearman([4, 4, 4, 4], [1, 2, 3, 4]))  # constant input
    x_BxN = RNG.integers(0, 4, size=(30, 9))
    np.testing.assert_array_equal(correlation.average_ranks(x_BxN), scipy.stats.rankdata(x_BxN, axis=-1))


def _scipy_spearman_rows(a, b, axis=-1):
    """scipy's own average ranks, Pearson per resample (vectorised for scipy.stats.bootstrap)."""
    ra, rb = scipy.stats.rankdata(a, axis=axis), scipy.stats.rankdata(b, axis=axis)
    ra, rb = ra - ra.mean(axis, keepdims=True), rb - rb.mean(axis, keepdims=True)
    return np.sum(ra * rb, axis) / np.sqrt(np.sum(ra**2, axis) * np.sum(rb**2, axis))


def test_bootstrap_ci_matches_scipy_within_monte_carlo_error():
    x = RNG.normal(size=14)
    y = 0.6 * x + RNG.normal(size=14)  # continuous: a constant resample has probability ~1e-15
    n_boot = 20000
    assert _scipy_spearman_rows(x, y) == pytest.approx(spearman(x, y))  # the reference is spearmanr
    ref = scipy.stats.bootstrap((x, y), _scipy_spearman_rows, paired=True, vectorized=True, method="percentile",
                                n_resamples=n_boot, rng=np.random.default_rng(123))
    lo, hi = bootstrap_ci(x, y, n_boot=n_boot)
    assert lo < spearman(x, y) < hi
    # Monte-Carlo error of a sample quantile: its rank among B draws has sd √(B p (1−p)) (binomial),
    # so both estimates lie within ±4 sd of the true quantile in rank; the values spanned by those
    # ranks in scipy's bootstrap distribution bound the difference (about ±0.02 here).
    dist = np.sort(ref.bootstrap_distribution)
    for p, ours, theirs in ((0.025, lo, ref.confidence_interval.low), (0.975, hi, ref.confidence_interval.high)):
        sd = math.sqrt(n_boot * p * (1 - p))
        band = dist[int(p * n_boot + 4 * sd)] - dist[int(p * n_boot - 4 * sd)]
        assert abs(ours - theirs) <= band, (p, ours, theirs, band)
        assert band < 0.1  # the tolerance is a real constraint, not the whole [-1, 1]


def test_bootstrap_ci_deterministic_and_degenerate():
    x, y = RNG.normal(size=10), RNG.normal(size=10)
    assert bootstrap_ci(x, y, seed=3) == bootstrap_ci(x, y, seed=3)
    assert bootstrap_ci(x, y, seed=3) != bootstrap_ci(x, y, seed=4)
    assert all(math.isnan(v) for v in bootstrap_ci([1, 1, 1, 1], [1, 2, 3, 4]))
    lo, hi = bootstrap_ci([0, 0, 0, 1], [0, 1, 2, 3], n_boot=500)  # most resamples constant: dropped
    assert -1 <= lo <= hi <= 1


def _sigmoid(steps, centre, width=250.0):
    return 1.0 / (1.0 + np.exp(-(steps - centre) / width))


def test_half_rise_and_lag_recover_a_known_shift():
    steps_T = np.arange(0, 4001, 500.0)  # evaluation every 500 steps
    # piecewise-linear curves are recovered exactly: the interpolation is exact between evaluations
    ramp = lambda start: np.clip((steps_T - start) / 2000.0, 0, 1)
    assert half_rise_step(steps_T, ramp(1000)) == pytest.approx(2000.0)
    assert lag_steps(steps_T, ramp(1000), ramp(1300)) == pytest.approx(300.0)
    # sigmoids: a shift of 300 steps (under one evaluation interval) within 15% of it; sign both ways
    geometry_T, accuracy_T = 0.2 + 0.5 * _sigmoid(steps_T, 1200), 0.01 + 0.9 * _sigmoid(steps_T, 1500)
    assert lag_steps(steps_T, geometry_T, accuracy_T) == pytest.approx(300, abs=45)
    assert lag_steps(steps_T, accuracy_T, geometry_T) == pytest.approx(-300, abs=45)
    fine_T = np.arange(0, 4001, 50.0)  # finer evaluations: finer lag
    assert lag_steps(fine_T, _sigmoid(fine_T, 1200), _sigmoid(fine_T, 1500)) == pytest.approx(300, abs=5)
    assert lag_steps(steps_T, _sigmoid(steps_T, 2000), _sigmoid(steps_T, 2000)) == pytest.approx(0, abs=1e-9)


def test_half_rise_undefined():
    assert math.isnan(half_rise_step([0, 1, 2], [0.5, 0.4, 0.5]))  # never above its first value
    assert math.isnan(half_rise_step([0], [0.0]))
    assert half_rise_step([0, 100, 200, 300], [0.0, np.nan, 1.0, 1.0]) == pytest.approx(100.0)  # nan dropped


STEPS = (0, 500, 1000, 1500, 2000)


def _run(n, target="test/first_token", with_margin=True):
    """n experiments: accuracy rises 500 steps after geometry/level (half-rises 1000 vs 1500),
    final accuracy ∝ alignment; leaf gap only in half of them; margin only in metrics.jsonl."""
    rows, records = [], []
    for i in range(n):
        scalars = {"spectral/alignment_k3": 0.1 * i, "geometry/level": 0.5 + 0.01 * ((i * 7) % n),
                   "edge/node_recall_at_5": 1.0}
        if i % 2:
            scalars["geometry/leaf_firsthop_gap"] = float(i)
        rows.append({"index": i, "coords": {"seed": i}, "scalars": scalars})
    for s in STEPS:
        exps = []
        for i in range(n):
            up_geo, up_acc = min(max((s - 500) / 1000, 0), 1), min(max((s - 1000) / 1000, 0), 1)
            entry = {"index": i, "geometry/level": 0.1 + 0.4 * up_geo, target: (0.05 + 0.05 * i) * up_acc,
                     "geometry/logit_margin_top1": 0.5}
            if with_margin:
                entry["geometry/logit_margin"] = -1.0 + (1.0 + i) * up_geo
            exps.append(entry)
        records.append({"step": s, "experiments": exps})
    return rows, records


def test_geometry_vs_reasoning_on_a_hand_built_run():
    rows, records = _run(10)
    target = correlation.decision_target(rows, records)
    assert target == "test/first_token"  # in-weights: no test/first_decision
    result = correlation.geometry_vs_reasoning(rows, records, target=target)
    assert result["target"] == target and result["n_experiments"] == 10 and "skipped" not in result
    across = {e["scalar"]: e for e in result["across"]}
    # leaf gap present in only 5 of 10; recall and *_top1 are not geometry scalars
    assert set(across) == {"spectral/alignment_k3", "geometry/level", "geometry/logit_margin"}
    assert across["spectral/alignment_k3"]["rho"] == pytest.approx(1.0)  # accuracy ∝ alignment
    assert across["geometry/logit_margin"]["rho"] == pytest.approx(1.0)  # from metrics.jsonl (last value)
    finals = [0.05 + 0.05 * i for i in range(10)]
    level = [0.5 + 0.01 * ((i * 7) % 10) for i in range(10)]  # the analysis scalar, not the curve's 0.5
    assert across["geometry/level"]["rho"] == pytest.approx(scipy.stats.spearmanr(level, finals).statistic)
    lo, hi = across["geometry/level"]["ci95"]
    assert lo <= across["geometry/level"]["rho"] <= hi and across["geometry/level"]["n"] == 10
    assert result["points"]["spectral/alignment_k3"][3] == [pytest.approx(0.3), pytest.approx(0.2)]
    lags = {e["scalar"]: e for e in result["over_time"]}
    assert set(lags) == {"geometry/level", "geometry/logit_margin"}  # the curves in metrics.jsonl
    assert lags["geometry/level"]["lags"] == pytest.approx([500.0] * 10)
    assert lags["geometry/level"]["lag_mean"] == pytest.approx(500.0)
    assert lags["geometry/level"]["lag_ci95"] == pytest.approx([500.0, 500.0])
    assert correlation.lag_reading(lags["geometry/level"]) == "geometry first"
    assert "labels" not in result  # only the seed varies: one colour
    json.dumps(result, allow_nan=False)  # summary.json-safe


def test_trained_alignment_has_a_lag_and_is_ranked_only_without_the_analysed_one():
    """geometry/spectral_alignment (metrics.jsonl) gets a lag; across experiments it is left to the
    analysis's spectral/alignment_k<k> (the same number at the last step) unless there is none."""
    rows, records = _run(10)
    for record in records:
        for entry in record["experiments"]:
            entry["geometry/spectral_alignment"] = entry["geometry/level"] * (1 + entry["index"])
    result = correlation.geometry_vs_reasoning(rows, records, target="test/first_token")
    lags = {e["scalar"]: e for e in result["over_time"]}
    assert lags["geometry/spectral_alignment"]["lags"] == pytest.approx([500.0] * 10)
    assert [e["scalar"] for e in result["over_time"]][0] == "geometry/spectral_alignment"
    assert "geometry/spectral_alignment" not in {e["scalar"] for e in result["across"]}
    for row in rows:
        row["scalars"].pop("spectral/alignment_k3")
    across = {e["scalar"]: e for e in correlation.geometry_vs_reasoning(rows, records, "test/first_token")["across"]}
    assert across["geometry/spectral_alignment"]["rho"] == pytest.approx(1.0)


def test_points_carry_their_sweep_point_when_more_than_the_seed_is_swept():
    rows, records = _run(10)
    for row in rows:
        row["coords"] = {"seed": row["index"] // 2, "lr": 0.1 if row["index"] % 2 else 0.01, "graph": 0}
    result = correlation.geometry_vs_reasoning(rows, records, target="test/first_token")
    assert result["labels"]["spectral/alignment_k3"] == ["lr=0.01", "lr=0.1"] * 5
    assert len(result["labels"]["geometry/level"]) == len(result["points"]["geometry/level"]) == 10


def test_geometry_vs_reasoning_falls_back_skips_and_cuts_at_step():
    rows, records = _run(10)
    for row in rows:  # the analysis scalar wins over the curve when present
        row["scalars"]["geometry/logit_margin"] = -float(row["index"])
    result = correlation.geometry_vs_reasoning(rows, records, target="test/first_token")
    assert next(e for e in result["across"] if e["scalar"] == "geometry/logit_margin")["rho"] == pytest.approx(-1.0)

    few = correlation.geometry_vs_reasoning(*_run(4), target="test/first_token")
    assert few["skipped"] == "needs >= 8 experiments with test/first_token; this run has 4"
    absent = correlation.geometry_vs_reasoning(*_run(10), target="test/first_decision")
    assert absent["n_experiments"] == 0 and "skipped" in absent

    rows, records = _run(10, with_margin=False)
    early = correlation.geometry_vs_reasoning(rows, records, target="test/first_token", step=1000)
    # at step 1000 accuracy has not risen yet (all 0): rho undefined, no lag
    level = next(e for e in early["across"] if e["scalar"] == "geometry/level")
    assert level["rho"] is None and level["ci95"] == [None, None] and early["over_time"] == []
    assert early["note"] == "test/first_token is 0 in every experiment: nothing to rank"


def _section_text(result, tmp_path, make_plots=True):
    rows, _ = _run(10)
    path = report.write_report(tmp_path, "t", rows, report.aggregate_over_seeds(rows), {}, ["a note"],
                               make_plots=make_plots, geometry_vs_reasoning=result)
    return path.read_text()


def test_report_section_renders(tmp_path):
    result = correlation.geometry_vs_reasoning(*_run(10), target="test/first_token")
    text = _section_text(result, tmp_path)
    section = text[text.index("## Does geometry predict held-out accuracy?"):text.index("- a note")]
    assert "| `spectral/alignment_k3` | 10 | +1.00 [+1.00, +1.00] |" in section
    assert re.search(r"\| `geometry/level` \| 10 \| 500 \[500, 500\] \| geometry first \|", section)
    assert "](geometry_vs_reasoning.png)" in section
    png = tmp_path / "geometry_vs_reasoning.png"
    assert png.stat().st_size > 1000

    reversed_lag = {**result, "over_time": [{"scalar": "geometry/level", "n": 5, "lag_mean": -200.0,
                                             "lag_ci95": [-300.0, -100.0], "interval": "t95", "lags": []},
                                            {"scalar": "geometry/logit_margin", "n": 5, "lag_mean": 50.0,
                                             "lag_ci95": [-20.0, 120.0], "interval": "t95", "lags": []}]}
    text = _section_text(reversed_lag, tmp_path / "b", make_plots=False)
    assert "| -200 [-300, -100] | accuracy first |" in text and "| 50 [-20, 120] | together |" in text
    assert "geometry_vs_reasoning.png" not in text

    skipped = correlation.geometry_vs_reasoning(*_run(4), target="test/first_token")
    text = _section_text(skipped, tmp_path / "c")
    assert "Not computed: needs >= 8 experiments with test/first_token; this run has 4." in text
    assert not (tmp_path / "c" / "geometry_vs_reasoning.png").exists()


def test_analyze_run_stores_and_reports_it(tmp_path):
    """analyze_run on a fake 8-seed Node2Vec cycle run: the result in summary.json, the return value
    and the report (the trainer's metrics.jsonl supplies the held-out accuracy and the curves)."""
    import types

    from geomem_jax import graphs
    from geomem_jax.analysis import analyze

    spec = {"family": "cycle", "num_nodes": 6}
    exps = [{"index": i, "seed": i, "graph_spec": spec, "hparams": {}, "edges": "both", "self_edges": False,
             "graph": graphs.graph_summary(graphs.make_graph(spec))} for i in range(8)]
    meta = {"experiments": exps, "model": {"family": "node2vec", "embedding": ["params", "V"]}, "sweep_keys": ["seed"]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    records = [{"step": s, "experiments": [{"index": i, "geometry/level": 0.1 * i * min(s / 100, 1),
                                            "test/first_token": 0.1 * i * min(s / 200, 1)} for i in range(8)]}
               for s in (0, 100, 200, 300)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "summary.json").write_text(json.dumps({"experiments": [
        {"index": i, "seed": i, "coords": {}, "final": {"test/first_token": 0.1 * i}} for i in range(8)]}))
    tables = np.random.default_rng(0).normal(size=(8, 6 + 9, 4))
    ckpt = types.SimpleNamespace(complete_steps=lambda w: [300], incomplete_steps=lambda w: [],
                                 restore_numpy=lambda w, s: {"params": {"V": tables}},
                                 load_meta=lambda w: json.loads((w / "meta.json").read_text()))
    result = analyze.analyze_run(tmp_path, make_plots=False, ckpt=ckpt)["geometry_vs_reasoning"]
    assert result["target"] == "test/first_token" and result["n_experiments"] == 8
    assert json.loads((tmp_path / "summary.json").read_text())["geometry_vs_reasoning"] == result
    lag = next(e for e in result["over_time"] if e["scalar"] == "geometry/level")
    assert lag["lag_mean"] == pytest.approx(50.0)  # half-rise at 50 (geometry) and 100 (accuracy)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Does geometry predict held-out accuracy?" in text and "geometry_vs_reasoning.png" not in text
