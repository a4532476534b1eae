"""`geomem reproduce`: verdict rules on hand-made numbers, and one tiny end-to-end run (resumable, skip on rerun)."""

import dataclasses
import json
import math
import time

import numpy as np
import pytest
from scipy import stats as sps

from geomem_jax import config, reproduce as R
from geomem_jax.errors import ConfigError, UserError


def S(mean, ci=0.0, n=4):
    return {"mean": mean, "ci95": ci, "n": n}


# --------------------------------------------------------------------------- verdict rules

def test_stat_of_is_student_t_interval():
    vals = [0.2, 0.4, 0.5, 0.9]
    s = R.stat_of(vals + [None, float("nan")])
    half = sps.t.ppf(0.975, 3) * np.std(vals, ddof=1) / math.sqrt(4)
    assert s["n"] == 4 and s["mean"] == pytest.approx(0.5) and s["ci95"] == pytest.approx(half)


def test_learned_threshold_is_ten_times_chance_capped_halfway():
    assert R.learned_threshold(0.01) == pytest.approx(0.1)
    assert R.learned_threshold(0.05) == pytest.approx(0.5)
    assert R.learned_threshold(0.5) == pytest.approx(0.75)  # d = 2: 10x chance is impossible


@pytest.mark.parametrize("stat, chance, expected", [
    (S(0.84, 0.05), 0.01, R.PASS),        # quickstart-like: far above 1/100
    (S(0.011, 0.004), 0.01, R.FAIL),      # at chance
    (S(0.09, 0.005), 0.01, R.FAIL),       # above chance but below 10x chance
    (S(0.3, 0.35), 0.01, R.INCONCLUSIVE),  # high mean, CI reaches below chance
    (S(0.08, 0.05), 0.01, R.INCONCLUSIVE),  # CI straddles the 10x threshold
    (S(None, None, 0), 0.01, R.INCONCLUSIVE),
])
def test_verdict_above_chance(stat, chance, expected):
    assert R.verdict_above_chance(stat, chance) == expected


@pytest.mark.parametrize("stat, expected", [
    (S(0.5, 0.02), R.PASS),     # in-context exactly at chance 1/2
    (S(0.53, 0.01), R.PASS),    # within the 0.05 tolerance
    (S(0.62, 0.20), R.PASS),    # within its own (wide) CI
    (S(0.95, 0.02), R.FAIL),    # far above chance: learned in context
    (S(0.1, 0.02), R.INCONCLUSIVE),  # systematically the wrong arm: not chance, not knowledge
])
def test_verdict_at_chance(stat, expected):
    assert R.verdict_at_chance(stat, 0.5) == expected


def _fake_summary(finals: list[dict]) -> dict:
    return {"experiments": [{"final": f, "hparams": {}} for f in finals]}


@pytest.mark.parametrize("decisions, lookup, base_first, expected", [
    ((0.49, 0.55, 0.46, 0.5), 1.0, 0.84, R.PASS),  # Clever Hans: edge list read, n1 at chance
    ((0.49, 0.55, 0.46, 0.5), 0.3, 0.84, R.INCONCLUSIVE),  # edge list not read yet: chance means nothing
    ((0.49, 0.55, 0.46, 0.5), 1.0, 0.01, R.INCONCLUSIVE),  # no in-weights contrast
    ((0.97, 0.99, 0.95, 0.98), 1.0, 0.84, R.FAIL),  # the decision was learned in context
])
def test_in_context_claim_needs_chance_decision_edge_list_reading_and_contrast(
        tmp_path, decisions, lookup, base_first, expected):
    ctx = R.Context(tmp_path, R.SCALES["full"], seeds=4, quick=False, progress=False, stream=None)
    ic_spec, base_spec = ctx.plan["in_context"]
    ctx._summaries[ic_spec.key] = _fake_summary([
        {R.DECISION: d, R.VALID: 1.0, R.EXACT: d, "test/forced_token_2": lookup, "test/forced_token_3": lookup}
        for d in decisions])
    ctx._summaries[base_spec.key] = _fake_summary([{R.FIRST: base_first + 0.01 * i} for i in range(4)])
    (row,) = R.claim_in_context(ctx)
    assert row.verdict == expected
    assert R.in_context_lookup_values(ctx._summaries[ic_spec.key], 5) == [lookup] * 4


@pytest.mark.parametrize("frozen, expected", [
    (S(0.012, 0.01), R.PASS), (S(0.9, 0.02), R.FAIL), (S(0.08, 0.01), R.INCONCLUSIVE),
])
def test_verdict_not_learned(frozen, expected):
    assert R.verdict_not_learned(frozen, 0.01) == expected


def test_verdict_greater_uses_tolerance_and_combined_ci():
    assert R.verdict_greater(S(0.8, 0.03), S(0.3, 0.04)) == R.PASS
    assert R.verdict_greater(S(0.3, 0.03), S(0.8, 0.04)) == R.FAIL
    assert R.verdict_greater(S(0.81, 0.0), S(0.80, 0.0)) == R.INCONCLUSIVE  # below DIFF_TOL
    # difference 0.1 but ci = hypot(0.08, 0.08) = 0.113 > 0.1
    assert R.verdict_greater(S(0.6, 0.08), S(0.5, 0.08)) == R.INCONCLUSIVE


def test_verdict_sign_and_not_below():
    assert R.verdict_sign(S(4.0, 0.5), True) == R.PASS
    assert R.verdict_sign(S(-0.2, 0.1), True) == R.FAIL
    assert R.verdict_sign(S(0.1, 0.3), True) == R.INCONCLUSIVE
    assert R.verdict_sign(S(-0.75, 0.2), False) == R.PASS
    assert R.verdict_sign(S(2.0, 0.5), False) == R.FAIL
    assert R.verdict_sign(S(-0.1, 0.3), False) == R.INCONCLUSIVE
    assert R.verdict_not_below(S(0.9, 0.02), S(0.95, 0.02)) == R.FAIL
    assert R.verdict_not_below(S(0.94, 0.02), S(0.95, 0.02)) == R.PASS


def test_combine():
    assert R.combine([R.PASS, R.PASS]) == R.PASS
    assert R.combine([R.PASS, R.INCONCLUSIVE]) == R.INCONCLUSIVE
    assert R.combine([R.INCONCLUSIVE, R.FAIL]) == R.FAIL
    assert R.combine([]) == R.INCONCLUSIVE


def test_steps_to_target_and_censoring():
    curve = [(100, 0.1), (200, None), (300, 0.49), (400, 0.5), (500, 0.9)]
    assert R.steps_to_target(curve, 0.5) == 400
    assert R.steps_to_target(curve[:3], 0.5) is None
    s = R.steps_stat([400, None, 200], total_steps=1000)
    assert s["censored"] == 1 and s["mean"] == pytest.approx((400 + 1000 + 200) / 3)


def _steps(mean, ci=0.0, censored=0, n=4):
    return {"mean": mean, "ci95": ci, "n": n, "censored": censored}


@pytest.mark.parametrize("by_pause, expected", [
    ({0: _steps(1500, 100), 1: _steps(800, 100), 2: _steps(700, 100)}, R.PASS),
    ({0: _steps(700, 50), 1: _steps(1500, 100), 2: _steps(1600, 100)}, R.FAIL),
    ({0: _steps(800, 50), 1: _steps(760, 50)}, R.INCONCLUSIVE),  # within resolution/CI
    ({0: _steps(1500, 0), 1: _steps(800, 0), 2: _steps(2500, 0)}, R.INCONCLUSIVE),  # mixed
    ({0: _steps(3000, 0, 4), 1: _steps(3000, 0, 4)}, R.INCONCLUSIVE),  # nobody reached it
    ({1: _steps(800, 0)}, R.INCONCLUSIVE),  # no p = 0 baseline
])
def test_verdict_pauses(by_pause, expected):
    assert R.verdict_pauses(by_pause, resolution=100) == expected


def test_parse_only_and_argument_errors(tmp_path):
    assert R.parse_only(None) == [c for c in R.CLAIMS if c not in ("pause_tokens_long", "scale_ladder")]  # opt-in
    assert R.parse_only("scale_ladder") == ["scale_ladder"]
    assert R.parse_only("knobs,in_weights") == ["in_weights", "knobs"]  # claim order, not argument order
    with pytest.raises(ConfigError, match="--only"):
        R.parse_only("in_weights,nope")
    with pytest.raises(ConfigError, match="--seeds"):
        R.run_reproduce(tmp_path, only=["knobs"], seeds=1, quick=True)
    with pytest.raises(ConfigError, match="--scale"):
        R.run_reproduce(tmp_path, only=["knobs"], scale="huge")
    assert not list(tmp_path.iterdir())  # nothing written before the arguments are checked


@pytest.mark.parametrize("scale", list(R.SCALES))
def test_every_scale_builds_valid_configs(scale):
    """Every run of every scale (incl. the paper's accelerator sizes) loads and passes check_config."""
    sizes = R.SCALES[scale]
    runs = {s.key: s for specs in R.plan(sizes, sizes.seeds).values() for s in specs}
    for spec in runs.values():
        cfg = spec.build()
        config.check_config(cfg)
        seeds = range(sizes.ladder_seeds if spec.key.startswith("scale_ladder/") else sizes.seeds)
        if spec.key.startswith(("precision/", "tiny_graphs/")):  # 15-node graphs: more seeds
            seeds = range(sizes.seeds * sizes.more_seeds)
        if spec.key.startswith("knobs/"):
            seeds = range(sizes.seeds * sizes.knob_more_seeds)
        assert tuple(cfg.sweep.seeds) == tuple(seeds)
        assert cfg.ckpt.every == 0 or cfg.ckpt.every % cfg.eval.every == 0
    base = runs["hardest_token/transformer"].build()
    assert base.task.target == "hardest_token" and base.graph.edges == "both"
    assert runs["edge_directions/forward"].build().graph.edges == "forward"
    assert runs["frozen_embeddings/frozen"].build().model.freeze_embeddings is True
    assert runs["in_weights/mamba"].build().model.family == "mamba"
    assert runs["in_context/transformer"].build().task.mode == "in_context"
    transformer = runs["in_weights/transformer"].build()
    assert transformer.task.target == "full_path" and transformer.model.family == "transformer"
    pause_specs = R.plan(sizes, sizes.seeds)["pause_tokens"]
    assert len(pause_specs) == len(sizes.pauses)
    for p, spec in zip(sizes.pauses, pause_specs):  # the shared base run only stands in for its own p
        cfg = spec.build()
        assert cfg.task.pause_tokens == p and cfg.eval.every == sizes.pause_every
    long_specs = R.plan(sizes, sizes.seeds)["pause_tokens_long"]
    assert len(long_specs) == len(sizes.long_pauses)
    for p, spec in zip(sizes.long_pauses, long_specs):  # one padded program per p over every long path
        cfg = spec.build()
        assert cfg.task.pause_tokens == p
        assert [(g["degree"], g["path_length"]) for g in cfg.sweep.graphs] == list(sizes.long_paths)
    for spec in R.plan(sizes, sizes.seeds)["scale_ladder"]:
        assert spec.build().sweep.seeds == tuple(range(sizes.ladder_seeds))
    assert R.plan(sizes, 3)["scale_ladder"][0].build().sweep.seeds == (0, 1, 2)  # --seeds reaches the ladders
    if scale == "paper":
        assert base.graph.degree == 5000 and base.model.layers == 12
    if scale == "full":  # the in-weights runs are the pathstar.py presets, seeds apart
        for key, preset in (("in_weights/transformer", "cpu"), ("in_weights/mamba", "mamba_cpu")):
            built, own = runs[key].build().to_dict(), config.load_config(f"configs/pathstar.py:{preset}").to_dict()
            assert {**built, "name": "", "sweep": {}} == {**own, "name": "", "sweep": {}}


def test_write_plots_draws_pause_edge_and_ladder_figures(tmp_path):
    curves = {p: {0: [(50, 0.1), (100, 0.6)], 1: [(50, 0.2), (100, 0.7)]} for p in (0, 1, 2)}
    edges = {"forward": S(0.2, 0.1), "backward": S(0.5, 0.1), "both": S(0.8, 0.05)}
    rungs = [_rung(100, 0.9, 0.8, 1.0), _rung(200, 0.3, 0.1, 0.45)]
    out = R.write_plots(tmp_path, {"pause_tokens": [("G(100, 5)", curves, 0.01)],
                                   "pause_tokens_long": [("G(100, 8)", curves, 0.01), ("G(100, 10)", curves, 0.01)],
                                   "edge_directions": (edges, 0.05),
                                   "scale_ladder": [("degree", rungs, "degree", rungs[0])]})
    assert out == {"pause_tokens": ["pause_tokens.png"], "pause_tokens_long": ["pause_tokens_long.png"],
                   "edge_directions": ["edge_directions.png"],
                   "scale_ladder": ["scale_ladder_degree.png"]}
    for names in out.values():
        assert (tmp_path / names[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _rung(d, mean, lo, hi, length=5, n=4):
    from geomem_jax.analysis import ladder

    rung = {"degree": d, "path_length": length, "chance": 1.0 / d, "n": n,
            ladder.FIRST_DECISION: {"mean": mean, "lo": lo, "hi": hi, "n": n, "interval": "t95"},
            ladder.EXACT_MATCH: {"mean": mean, "lo": lo, "hi": hi, "n": n, "interval": "t95"}}
    rung["works"] = ladder.works(rung)
    return rung


@pytest.mark.parametrize("rungs, expected", [
    ([_rung(100, 0.9, 0.8, 1.0), _rung(200, 0.72, 0.45, 0.99), _rung(500, 0.31, 0.01, 0.45)], R.PASS),  # settled
    ([_rung(100, 0.9, 0.8, 1.0), _rung(200, 0.72, 0.45, 0.99), _rung(500, 0.31, 0.01, 0.60)], R.INCONCLUSIVE),
    ([_rung(100, 0.9, 0.8, 1.0), _rung(200, 0.8, 0.7, 0.9)], R.PASS),  # the largest rung still works
    ([_rung(100, 0.2, 0.1, 0.3), _rung(200, 0.1, 0.0, 0.2)], R.FAIL),  # not even the smallest
    ([_rung(100, 0.4, 0.1, 0.7), _rung(200, 0.1, 0.0, 0.2)], R.INCONCLUSIVE),  # smallest undecided
    ([_rung(20, 0.55, 0.5, 0.9), _rung(40, 0.1, 0.0, 0.2)], R.PASS),  # threshold 0.5 = 10 × 1/20
    ([_rung(2, 0.6, 0.5, 0.7)], R.FAIL),  # 0.6 ≥ 0.5 but the threshold is 10 × 1/2: out of reach at d = 2
])
def test_verdict_ladder(rungs, expected):
    assert R.verdict_ladder(rungs) == expected


def _ladder_summary(firsts_by_degree: dict) -> dict:
    """A summary.json of a degree ladder: experiments with graph specs, flat seed aggregates."""
    from geomem_jax import metrics

    experiments = []
    for g, (d, firsts) in enumerate(firsts_by_degree.items()):
        spec = {"family": "path_star", "degree": d, "path_length": 5}
        experiments += [{"index": len(experiments) + i, "seed": i, "coords": {"graph": g}, "hparams": {},
                         "graph": {"spec": spec}, "final": {"test/first_token": v, "test/exact_match": v}}
                        for i, v in enumerate(firsts)]
    return {"experiments": experiments, "aggregate": metrics.aggregate(experiments)}


def test_scale_ladder_claim_names_the_largest_working_rung(tmp_path):
    ctx = R.Context(tmp_path, R.SCALES["full"], seeds=8, quick=False, progress=False, stream=None)
    degree, length = ctx.plan["scale_ladder"]
    ctx._summaries[degree.key] = _ladder_summary({100: [0.9, 0.8, 1.0, 0.9], 200: [0.7, 0.8, 0.75, 0.7],
                                                  500: [0.1, 0.0, 0.05, 0.1]})
    ctx._summaries[length.key] = {"experiments": [], "aggregate": []}  # not a ladder
    with pytest.raises(UserError, match="not a ladder"):
        R.claim_scale_ladder(ctx)
    ctx._summaries[length.key] = ctx._summaries[degree.key]
    row = R.claim_scale_ladder(ctx)[0]
    assert row.measured.startswith("largest working d = 200 (0.738") and row.verdict == R.PASS
    assert "d=500: 0.062" in row.measured and len(row.details) == 3
    assert [name for name, *_ in ctx.plot_data["scale_ladder"]] == ["degree", "length"]


# --------------------------------------------------------------------------- end to end

TINY = dataclasses.replace(
    R.SCALES["quick"],
    name="quick",
    base=("configs/quickstart.py", (
        ("graph.degree", "4"), ("graph.path_length", "3"), ("model.width", "16"), ("model.heads", "1"),
        ("train.steps", "20"), ("train.batch_size", "16"), ("opt.warmup_steps", "2"),
        ("eval.every", "10"), ("ckpt.every", "20"),
    )),
    in_context=("configs/in_context.py:smoke", (
        ("graph.path_length", "3"), ("model.width", "16"), ("model.heads", "1"),
        ("train.steps", "10"), ("train.batch_size", "8"), ("opt.warmup_steps", "2"),
        ("eval.every", "10"), ("ckpt.every", "10"),
    )),
)


@pytest.fixture(scope="module")
def tiny_reproduction(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(R.SCALES, "quick", TINY)
    workdir = tmp_path_factory.mktemp("repro")
    t0 = time.perf_counter()
    path = R.run_reproduce(workdir, only=["hardest_token", "in_context"], quick=True, progress=False)
    first_seconds = time.perf_counter() - t0
    yield workdir, path, first_seconds
    mp.undo()


def _table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_end_to_end_writes_table_with_computed_verdicts(tiny_reproduction):
    workdir, path, _ = tiny_reproduction
    assert path == workdir / "REPRODUCTION.md" and path.is_file()
    text = path.read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == ["hardest token alone, in-weights", "in-context path-star at chance"]
    summary = json.loads((workdir / "hardest_token/transformer/summary.json").read_text())
    firsts = [e["final"]["test/first_token"] for e in summary["experiments"]]
    expected = R.verdict_above_chance(R.stat_of(firsts), 1 / 4)
    for r in rows:  # quick mode judges nothing
        assert r[-1] == "INCONCLUSIVE *(quick mode: not judged)*"
    # what the rule gives on the run's numbers is kept in the claim's section, marked as no verdict
    assert f"the rule on these CI-sized numbers gives {expected} (quick mode: not a verdict)" in text
    assert f"{np.mean(firsts):.3f}" in rows[0][1] and "(n=2)" in rows[0][1]
    assert rows[0][2].startswith("0.25") and rows[1][2].startswith("0.5")
    assert "Quick mode: sizes too small to decide" in text
    assert "hardest_token/transformer/report/report.md" in text  # link to the analysed run
    assert "CPUs" in text and "Wall time" in text and "geomem reproduce" in text
    assert (workdir / "in_context/transformer/summary.json").is_file()


def test_rerun_skips_finished_runs(tiny_reproduction):
    workdir, path, _ = tiny_reproduction
    mtime = (workdir / "hardest_token/transformer/summary.json").stat().st_mtime_ns
    before = _table_rows(path.read_text())
    t0 = time.perf_counter()
    R.run_reproduce(workdir, only=["hardest_token", "in_context"], quick=True, progress=False)
    assert time.perf_counter() - t0 < 10
    assert (workdir / "hardest_token/transformer/summary.json").stat().st_mtime_ns == mtime
    assert _table_rows(path.read_text()) == before


def test_run_without_summary_is_resumed_and_other_seeds_refused(tiny_reproduction):
    workdir, path, _ = tiny_reproduction
    run_dir = workdir / "hardest_token/transformer"
    finals = json.loads((run_dir / "summary.json").read_text())["experiments"]
    (run_dir / "summary.json").unlink()  # as if killed after the last checkpoint
    R.run_reproduce(workdir, only=["hardest_token"], quick=True, progress=False)
    again = json.loads((run_dir / "summary.json").read_text())["experiments"]
    assert [e["final"]["test/first_token"] for e in again] == [e["final"]["test/first_token"] for e in finals]
    assert all("analysis/step" in e["final"] for e in again)  # analysed again after the resume
    # --only=hardest_token still reports the in-context claim, finished earlier in this workdir
    assert [r[0] for r in _table_rows(path.read_text())] == [
        "hardest token alone, in-weights", "in-context path-star at chance"]
    with pytest.raises(UserError, match="different config"):
        R.run_reproduce(workdir, only=["hardest_token"], quick=True, seeds=3, progress=False)


def test_config_differences_ignores_sections_added_later():
    saved = {"model": {"width": 64, "layers": 1}, "train": {"steps": 300}}
    assert R.config_differences(saved, {**saved, "logging": {"wandb": False}}) == []  # new section: still valid
    changed = {"model": {"width": 32, "layers": 1}, "train": {"steps": 300}}
    assert R.config_differences(saved, changed) == ["model.width"]
    assert R.config_differences(saved, {"model": {"width": 64}, "train": {"steps": 300}}) == ["model.layers"]


def test_knobs_claims_read_each_point_and_the_self_edge_share(tmp_path):
    ctx = R.Context(tmp_path, R.SCALES["full"], seeds=2, quick=False, progress=False, stream=None)
    spec, self_spec = ctx.plan["knobs"]
    margins = {"N(0,1) init, lr 1e-4": -0.5, "default init, lr 1e-2": 9.0}  # the rest +3
    ctx._summaries[spec.key] = {"experiments": [
        {"hparams": dict(zip(("init_scale", "lr", "weight_decay", "dropout"), point)),
         "final": {R.MARGIN: margins.get(label, 3.0) + 0.01 * seed, R.NEGATIVE_SHARE: 0.6 + 0.01 * seed}}
        for label, *point, _, _ in R.KNOB_POINTS for seed in range(2)]}
    ctx._summaries[self_spec.key] = {"experiments": [
        {"hparams": {}, "final": {R.MARGIN: 11.0, R.NEGATIVE_SHARE: 0.1 + 0.01 * seed}} for seed in range(2)]}
    negative, positive, self_edges = R.claim_knobs(ctx)
    assert "-0.49" in negative.measured and negative.verdict == R.PASS
    assert positive.verdict == R.PASS and "+3.00" in positive.measured
    assert self_edges.verdict == R.PASS and "0.605" in self_edges.measured and "0.105" in self_edges.measured
    ctx._summaries[self_spec.key]["experiments"][0]["final"][R.NEGATIVE_SHARE] = 0.9  # self-edges no better
    ctx._summaries[self_spec.key]["experiments"][1]["final"][R.NEGATIVE_SHARE] = 0.9
    assert R.claim_knobs(ctx)[2].verdict == R.FAIL


def test_verdict_at_least():
    assert R.verdict_at_least(S(6.2, 2.0), 3.935) == R.PASS  # bf16 C(15)-like: 4.2 > half of +7.87
    assert R.verdict_at_least(S(2.1, 3.7), 3.935) == R.INCONCLUSIVE  # float32 C(15)-like, 4 seeds
    assert R.verdict_at_least(S(2.1, 1.5), 3.935) == R.FAIL
    assert R.verdict_at_least(S(5.0, 1.065), 3.935) == R.INCONCLUSIVE  # lower end exactly at the target
    assert R.verdict_at_least({"mean": None, "ci95": None, "n": 0}, 1.0) == R.INCONCLUSIVE


def _fill_margins(ctx, specs, float32: dict, bfloat16: dict, others=(9.0, 9.1, 9.2, 9.3)) -> None:
    for spec in specs:  # keys tiny_graphs/<g>_neural_net and precision/<g>_neural_net_bfloat16
        graph = spec.key.split("/")[1].split("_")[0]
        values = (bfloat16 if "bfloat16" in spec.key else float32).get(graph, others)
        ctx._summaries[spec.key] = {"experiments": [{"hparams": {}, "final": {R.MARGIN: v}} for v in values]}


def test_precision_claim_judges_each_dtype_against_the_paper(tmp_path):
    ctx = R.Context(tmp_path, R.SCALES["full"], seeds=4, quick=False, progress=False, stream=None)
    specs = ctx.plan["precision"]
    assert [s.key for s in specs[:4]] == [f"tiny_graphs/{g}_neural_net" for g in ("star", "grid", "cycle", "irregular")]
    assert all(s.build().model.dtype == "bfloat16" and s.build().model.mlp_only for s in specs[4:])
    assert specs[2].build().model.dtype == "float32" and specs[2].build().train.steps == 10_000
    float32 = {"star": [5.3, 0.4, -1.5, -1.5], "cycle": [2.17, -0.18, 1.15, 5.27]}  # the seeds
    _fill_margins(ctx, specs, float32, {"cycle": [7.12, 6.40, 4.26, 6.92]})
    f32, bf16 = R.claim_precision(ctx)
    assert "cycle +2.10" in f32.measured and "cycle +6.18" in bf16.measured
    assert f32.verdict == R.INCONCLUSIVE  # cycle and star intervals cross their targets (+3.94, +2.04)
    assert bf16.verdict == R.PASS  # 6.18 − 2.09 = 4.08 > 3.94, the rest far above
    assert "cycle +3.94" in bf16.rule and "→ PASS" in bf16.details[2]
    _fill_margins(ctx, specs, float32, {"cycle": [3.0, 3.1, 3.2, 3.3]})
    assert R.claim_precision(ctx)[1].verdict == R.FAIL
