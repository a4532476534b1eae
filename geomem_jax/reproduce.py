"""`geomem reproduce`: the paper's headline claims (docs/REPRODUCING.md) as checkable numbers.

    run_reproduce(workdir, only=None, seeds=None, quick=False) -> workdir/REPRODUCTION.md

Every claim builds one or more configs (`load_config` + overrides), trains each into
`workdir/<claim>/<run>` with `loop.run` (a vmapped sweep over seeds), analyses it, and
turns the seed-aggregated numbers into table rows whose verdict (PASS / FAIL /
INCONCLUSIVE) is *computed* by the rule functions below; the thresholds are module
constants, stated in docs/REPRODUCING.md. A run whose summary.json exists is not
trained again; one with a config.json but no summary is resumed from its last
checkpoint, so an interrupted reproduction continues where it stopped.

Claims share runs instead of training the same config twice: the in-weights base run
(hardest-token target, `hardest_token/transformer`) is also the "both edges" arm of
`edge_directions`, the trainable arm of `frozen_embeddings`, the p = 1 arm of
`pause_tokens` and the in-weights contrast of `in_context`; the zoo's E W Eᵀ runs
(`tiny_graphs/<graph>_neural_net`) are the float32 arm of `precision`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time

from geomem_jax import config as config_lib
from geomem_jax.errors import ConfigError, UserError

CLAIMS = (
    "in_weights", "hardest_token", "in_context", "edge_directions",
    "frozen_embeddings", "tiny_graphs", "precision", "knobs", "pause_tokens", "scale_ladder",
)
OPT_IN = ("scale_ladder",)  # beyond the paper and long (≈ 40 min on 2 cores): run only when named in --only
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)

# --------------------------------------------------------------------------- thresholds
# (stated, with their reasons, in docs/REPRODUCING.md)
ABOVE_CHANCE_FACTOR = 10.0  # "learned": mean >= 10x chance (capped halfway to 1) and CI above chance
AT_CHANCE_TOL = 0.05  # "at chance": |mean - chance| <= max(ci95, this)
DIFF_TOL = 0.02  # smallest accuracy difference between two arms that counts
RECALL_MIN = 0.95  # "memorized every edge"
LOOKUP_MIN = 0.9  # in-context "reads the edge list": teacher-forced accuracy after the first decision
PAUSE_TARGET = 0.5  # held-out first-decision accuracy whose first crossing is "converged"
PAPER_MARGIN_FRACTION = 0.5  # "in the paper's range": the release's own bf16 C(15) seeds reach down to half its +7.87

FIRST = "test/first_token"
DECISION = "test/first_decision"  # in-context: argmax over the source's d children
VALID = "test/first_step_valid"
EXACT = "test/exact_match"
MARGIN = "geometry/margin"
NEGATIVE_SHARE = "geometry/negative_mode_share"
LOGIT_MARGIN = "geometry/logit_margin"  # Transformer / Mamba: margin of the bilinear fit of their edge logits
RECALL_KEYS = ("edge/recall_at_degree", "edge/recall_at_5")
PAPER_NN_MARGINS = {"star": 4.08, "grid": 2.51, "cycle": 7.87, "irregular": 8.13}  # E W Eᵀ, the paper's figures


# --------------------------------------------------------------------------- sizes

@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of every claim. `base` is the in-weights hardest-token run the claims share."""

    name: str
    seeds: int
    base: tuple  # (config spec, ((dotted, text), ...))
    full_path: tuple  # extra overrides on `base`: the claim-1 Transformer
    mamba: tuple  # extra overrides on `full_path`: the claim-1 Mamba
    in_context: tuple  # (config spec, overrides)
    zoo_graphs: tuple
    zoo_models: tuple
    knobs: tuple  # (config spec, overrides)
    pauses: tuple
    pause_every: int  # eval.every of the pause runs (the resolution of "steps to target")
    long_paths: tuple  # ((d, l), ...): pause tokens where the paper used them, one padded program per p
    long_pauses: tuple
    long_overrides: tuple  # extra overrides on `base` for the long-path pause runs (steps, eval.every)
    ladders: tuple  # ((name, config spec), ...): configs/scaling.py ladders of the scale_ladder claim
    ladder_seeds: int  # seeds per ladder run unless --seeds is given


_QS = "configs/quickstart.py"
SCALES = {
    # The CPU reproduction: quickstart G(100, 5) (1 layer, width 64, 3000 steps), < 2 h on 2 cores.
    "full": Scale(
        name="full", seeds=8,
        base=(_QS, (("train.steps", "3000"), ("eval.every", "100"), ("ckpt.every", "1000"))),  # quickstart: 2400
        full_path=(("task.target", "full_path"),),
        mamba=(("model.family", "mamba"), ("train.steps", "1500"), ("eval.every", "500"), ("ckpt.every", "500")),
        # configs/in_context.py:cpu: G(2, 5), 2 layers × 64, positions N(0, 0.02²), 2000 steps.
        in_context=("configs/in_context.py:cpu", ()),
        zoo_graphs=("star", "grid", "cycle", "irregular"),
        zoo_models=("transformer", "neural_net", "associative", "node2vec"),
        knobs=("configs/knobs.py:paper", (("ckpt.every", "10000"),)),
        pauses=(0, 1, 2, 4), pause_every=100,
        long_paths=((100, 8), (100, 10)), long_pauses=(0, 1, 2, 4, 8),
        long_overrides=(("train.steps", "4000"), ("eval.every", "200"), ("ckpt.every", "1000")),
        ladders=(("degree", "configs/scaling.py:degree"), ("length", "configs/scaling.py:length")), ladder_seeds=4,
    ),
    # CI: a few minutes; verdicts are computed but sizes are too small to decide.
    "quick": Scale(
        name="quick", seeds=2,
        # G(40, 4): the smallest star whose 10 held-out leaves still give a readable accuracy;
        # the quickstart model reaches ~0.6-0.9 first decision there in 1000 steps (seconds of compute).
        base=(_QS, (
            ("graph.degree", "40"), ("graph.path_length", "4"),
            ("train.steps", "1000"), ("train.batch_size", "64"), ("opt.warmup_steps", "20"),
            ("eval.every", "100"), ("ckpt.every", "1000"),
        )),
        full_path=(("task.target", "full_path"),),
        mamba=(("model.family", "mamba"), ("model.width", "32"), ("train.steps", "200"), ("eval.every", "100"),
               ("ckpt.every", "200")),
        in_context=("configs/in_context.py:cpu", (
            ("model.width", "32"), ("train.steps", "200"), ("train.batch_size", "32"), ("opt.warmup_steps", "20"),
            ("eval.every", "100"), ("ckpt.every", "200"),
        )),
        zoo_graphs=("star", "grid"), zoo_models=("neural_net", "associative"),
        knobs=("configs/knobs.py:paper", (("model.width", "32"), ("train.steps", "200"), ("eval.every", "100"),
                                          ("ckpt.every", "200"))),
        pauses=(0, 1, 2, 4), pause_every=100,
        long_paths=((20, 6),), long_pauses=(0, 2),
        long_overrides=(("train.steps", "300"), ("eval.every", "100"), ("ckpt.every", "300")),
        ladders=(("smoke", "configs/scaling.py:smoke"),), ladder_seeds=2,
    ),
    # The paper's sizes (accelerators; not run on the CPU): G(5000, 5) GPT-mid, release zoo, knobs.
    "paper": Scale(
        name="paper", seeds=8,
        base=("configs/pathstar.py:g5000_l5", (("task.target", "hardest_token"),)),
        full_path=(("task.target", "full_path"),),
        mamba=(("model.family", "mamba"),),
        in_context=("configs/in_context.py:g2_l5", ()),
        zoo_graphs=("star", "grid", "cycle", "irregular"),
        zoo_models=("transformer", "neural_net", "associative", "node2vec"),
        knobs=("configs/knobs.py:paper", ()),
        pauses=(0, 1, 5, 10), pause_every=1000,
        long_paths=((1000, 8), (1000, 10)), long_pauses=(0, 1, 2, 4, 8), long_overrides=(("eval.every", "1000"),),
        ladders=(("paper_degree", "configs/scaling.py:paper_degree"),
                 ("paper_length", "configs/scaling.py:paper_length")),
        ladder_seeds=4,
    ),
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run: `workdir/<key>` trained from `config` + `overrides` over `seeds` seeds."""

    key: str
    config: str
    overrides: tuple
    seeds: int
    analyze: bool = True

    def build(self):
        cfg = config_lib.load_config(self.config)
        for dotted, text in self._overrides():
            config_lib.apply_override(cfg, dotted, text)
        return cfg

    def _overrides(self) -> tuple:
        return (*self.overrides, ("sweep.seeds", str(tuple(range(self.seeds)))))

    def command(self, workdir) -> str:
        """The equivalent `geomem train` command line."""
        merged = dict(self._overrides())  # a later override of the same key wins, as in build()
        flags = " ".join(f"--config.{k}={_shell(v)}" for k, v in merged.items())
        return f"geomem train --config={self.config} {flags} --workdir={pathlib.Path(workdir) / self.key}"


def _shell(text: str) -> str:
    return f'"{text}"' if any(c in text for c in " (),") else text


def base_run(scale: Scale, seeds: int, **extra) -> RunSpec:
    """The shared in-weights hardest-token run, or a variant of it (extra overrides, own key)."""
    key = extra.pop("key", "hardest_token/transformer")
    more = tuple(extra.pop("overrides", ()))
    spec, overrides = scale.base
    return RunSpec(key, spec, (*overrides, *more), seeds)


def plan(scale: Scale, seeds: int) -> dict[str, list[RunSpec]]:
    """Every claim's runs (shared runs appear under each claim that reads them)."""
    base = base_run(scale, seeds)
    full = base_run(scale, seeds, key="in_weights/transformer", overrides=scale.full_path)
    mamba = base_run(scale, seeds, key="in_weights/mamba", overrides=(*scale.full_path, *scale.mamba))
    ic_spec, ic_over = scale.in_context
    in_context = RunSpec("in_context/transformer", ic_spec, ic_over, seeds, analyze=False)
    edges = {d: base_run(scale, seeds, key=f"edge_directions/{d}", overrides=(("graph.edges", d),))
             for d in ("forward", "backward")}
    frozen = base_run(scale, seeds, key="frozen_embeddings/frozen", overrides=(("model.freeze_embeddings", "true"),))
    tiny_nn = lambda g, key, over: RunSpec(key, f"configs/tiny_graphs.py:{g}_neural_net", over, seeds)
    precision = ([tiny_nn(g, f"tiny_graphs/{g}_neural_net", ()) for g in scale.zoo_graphs]  # the zoo's own runs
                 + [tiny_nn(g, f"precision/{g}_neural_net_bfloat16", (("model.dtype", "bfloat16"),))
                    for g in scale.zoo_graphs])
    knobs_spec, knobs_over = scale.knobs
    knobs = RunSpec("knobs/paper", knobs_spec, knobs_over, seeds)
    knobs_self = RunSpec("knobs/self_edges", knobs_spec.rsplit(":", 1)[0] + ":paper_self_edges", knobs_over, seeds)
    base_cfg = base.build()
    reuse = lambda p: p == base_cfg.task.pause_tokens and base_cfg.eval.every == scale.pause_every
    pauses = [base if reuse(p) else base_run(scale, seeds, key=f"pause_tokens/p{p}", overrides=(
        ("task.pause_tokens", str(p)), ("eval.every", str(scale.pause_every))))
        for p in scale.pauses]
    long_graphs = str(tuple({"degree": d, "path_length": length} for d, length in scale.long_paths))
    long_pauses = [base_run(scale, seeds, key=f"pause_tokens/long_p{p}", overrides=(
        ("task.pause_tokens", str(p)), *scale.long_overrides, ("sweep.graphs", long_graphs)))
        for p in scale.long_pauses]
    ladder_seeds = scale.ladder_seeds if seeds == scale.seeds else seeds  # --seeds also sets the ladders'
    ladders = [RunSpec(f"scale_ladder/{name}", spec, (), ladder_seeds) for name, spec in scale.ladders]
    return {
        "in_weights": [full, mamba],
        "hardest_token": [base],
        "in_context": [in_context, base],
        "edge_directions": [edges["forward"], edges["backward"], base],
        "frozen_embeddings": [frozen, base],
        "tiny_graphs": [],  # trained by zoo.run_zoo (its own resumable loop)
        "precision": precision,  # float32 (one per zoo graph), then bfloat16
        "knobs": [knobs, knobs_self],
        "pause_tokens": [*pauses, *long_pauses],  # G(base) first, then the long paths (one run per p)
        "scale_ladder": ladders,
    }


# --------------------------------------------------------------------------- statistics

def stat_of(values) -> dict:
    """mean, ci95 (Student t over seeds), n of finite values (see metrics.mean_ci)."""
    from geomem_jax import metrics

    out = metrics.mean_ci(values)
    return {"mean": out["mean"], "ci95": out["ci95"], "n": out["n"]}


def final_values(summary: dict, metric: str, where=None) -> list:
    """Each experiment's final value of `metric` (None when absent), optionally filtered by hparams."""
    return [e["final"].get(metric) for e in summary["experiments"] if where is None or where(e["hparams"])]


def summary_stat(summary: dict, metric: str, where=None) -> dict:
    return stat_of(final_values(summary, metric, where))


def fmt_stat(s: dict, digits: int = 3, signed: bool = False) -> str:
    if s is None or s.get("mean") is None or s.get("n", 0) == 0:
        return "—"
    sign = "+" if signed else ""
    return f"{s['mean']:{sign}.{digits}f} ± {s['ci95']:.{digits}f} (n={s['n']})"


def _ok(s) -> bool:
    return s is not None and s.get("n", 0) > 0 and s.get("mean") is not None


# --------------------------------------------------------------------------- verdict rules

def learned_threshold(chance: float) -> float:
    """10x chance, capped halfway between chance and 1 (so it stays reachable for small d)."""
    return min(ABOVE_CHANCE_FACTOR * chance, chance + (1.0 - chance) / 2)


def verdict_above_chance(s: dict, chance: float) -> str:
    """PASS: mean >= learned_threshold and mean − ci95 > chance; FAIL: mean + ci95 < threshold."""
    if not _ok(s):
        return INCONCLUSIVE
    threshold = learned_threshold(chance)
    if s["mean"] >= threshold and s["mean"] - s["ci95"] > chance:
        return PASS
    if s["mean"] + s["ci95"] < threshold:
        return FAIL
    return INCONCLUSIVE


def verdict_at_chance(s: dict, chance: float) -> str:
    """PASS: |mean − chance| <= band = max(ci95, AT_CHANCE_TOL); FAIL: mean > chance + band.

    Below the band is INCONCLUSIVE: a choice systematically against the right arm is not chance,
    but neither is it the knowledge the claim is about.
    """
    if not _ok(s):
        return INCONCLUSIVE
    band = max(s["ci95"], AT_CHANCE_TOL)
    if abs(s["mean"] - chance) <= band:
        return PASS
    return FAIL if s["mean"] > chance + band else INCONCLUSIVE


def verdict_not_learned(s: dict, chance: float) -> str:
    """PASS: mean <= chance + max(ci95, AT_CHANCE_TOL); FAIL: it passes verdict_above_chance."""
    if not _ok(s):
        return INCONCLUSIVE
    if s["mean"] <= chance + max(s["ci95"], AT_CHANCE_TOL):
        return PASS
    return FAIL if verdict_above_chance(s, chance) == PASS else INCONCLUSIVE


def verdict_greater(a: dict, b: dict, tol: float = DIFF_TOL) -> str:
    """a > b: PASS if a − b > max(tol, ci), FAIL if b − a > max(tol, ci), ci = sqrt(ci_a² + ci_b²)."""
    if not (_ok(a) and _ok(b)):
        return INCONCLUSIVE
    diff, ci = a["mean"] - b["mean"], math.hypot(a["ci95"], b["ci95"])
    if diff > max(tol, ci):
        return PASS
    if -diff > max(tol, ci):
        return FAIL
    return INCONCLUSIVE


def verdict_sign(s: dict, positive: bool) -> str:
    """positive (> 0): PASS if mean − ci95 > 0, FAIL if mean + ci95 <= 0.
    not positive (<= 0): PASS if mean + ci95 <= 0, FAIL if mean − ci95 > 0. INCONCLUSIVE in between."""
    if not _ok(s):
        return INCONCLUSIVE
    lo, hi = s["mean"] - s["ci95"], s["mean"] + s["ci95"]
    if positive:
        return PASS if lo > 0 else FAIL if hi <= 0 else INCONCLUSIVE
    return PASS if hi <= 0 else FAIL if lo > 0 else INCONCLUSIVE


def verdict_at_least(s: dict, target: float) -> str:
    """verdict_sign of s − target: PASS if mean − CI > target, FAIL if mean + CI <= target."""
    return verdict_sign(dict(s, mean=s["mean"] - target), True) if _ok(s) else INCONCLUSIVE


def verdict_not_below(a: dict, b: dict) -> str:
    """a is not below b: PASS if a − b >= −ci (ci = sqrt(ci_a² + ci_b²)), else FAIL."""
    if not (_ok(a) and _ok(b)):
        return INCONCLUSIVE
    return PASS if a["mean"] - b["mean"] >= -math.hypot(a["ci95"], b["ci95"]) else FAIL


def combine(verdicts) -> str:
    """All PASS -> PASS; any FAIL -> FAIL; otherwise INCONCLUSIVE (also for no verdicts)."""
    verdicts = list(verdicts)
    if verdicts and all(v == PASS for v in verdicts):
        return PASS
    return FAIL if FAIL in verdicts else INCONCLUSIVE


def steps_to_target(curve, target: float = PAUSE_TARGET):
    """First evaluated step with accuracy >= target in a [(step, acc)] curve; None if never."""
    for step, acc in curve:
        if acc is not None and acc >= target:
            return step
    return None


def steps_stat(per_seed_steps, total_steps: int) -> dict:
    """Seeds that never reach the target count as `total_steps` (censored; a lower bound)."""
    values = [total_steps if s is None else s for s in per_seed_steps]
    out = stat_of(values)
    out["censored"] = sum(s is None for s in per_seed_steps)
    return out


def verdict_pauses(steps_by_pause: dict, resolution: int) -> str:
    """More pauses are not slower: t_p = mean steps to target per pause count p.

    faster(p) := t_0 − t_p > max(resolution, ci), slower(p) := t_p − t_0 > max(resolution, ci),
    ci = sqrt(ci_0² + ci_p²). PASS: some p ≥ 1 faster and none slower; FAIL: some slower and
    none faster; INCONCLUSIVE otherwise, or when no run reached the target at all.
    """
    if 0 not in steps_by_pause or len(steps_by_pause) < 2:
        return INCONCLUSIVE
    if all(s["censored"] == s["n"] for s in steps_by_pause.values()):
        return INCONCLUSIVE
    t0 = steps_by_pause[0]
    faster = slower = False
    for p, s in steps_by_pause.items():
        if p == 0:
            continue
        ci = math.hypot(t0["ci95"], s["ci95"])
        faster |= t0["mean"] - s["mean"] > max(resolution, ci)
        slower |= s["mean"] - t0["mean"] > max(resolution, ci)
    if faster and not slower:
        return PASS
    if slower and not faster:
        return FAIL
    return INCONCLUSIVE


# --------------------------------------------------------------------------- rows

@dataclasses.dataclass
class Row:
    claim: str
    label: str
    description: str
    measured: str
    chance: str
    paper: str
    rule: str
    verdict: str
    details: list = dataclasses.field(default_factory=list)  # extra markdown lines for the claim section


# --------------------------------------------------------------------------- running

class Context:
    """What a claim needs: the workdir, sizes, the runner (skip / resume / train / analyse), timings."""

    def __init__(self, workdir, scale: Scale, seeds: int, quick: bool, progress: bool, stream):
        self.workdir = pathlib.Path(workdir)
        self.scale, self.seeds, self.quick = scale, seeds, quick
        self.progress, self.stream = progress, stream
        self.plan = plan(scale, seeds)
        self.timings_path = self.workdir / "timings.json"
        self.timings = json.loads(self.timings_path.read_text()) if self.timings_path.is_file() else {}
        self._summaries: dict[str, dict] = {}
        self.plot_data: dict = {}  # claim -> what write_plots draws

    def say(self, text: str) -> None:
        if self.progress:
            self.stream.write(text + "\n")
            self.stream.flush()

    def add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = round(self.timings.get(key, 0.0) + seconds, 2)
        from geomem_jax.checkpoint import write_json_atomic

        write_json_atomic(self.timings_path, self.timings)

    def run(self, spec: RunSpec) -> dict:
        """The run's summary: read if finished, else resumed or trained (then analysed)."""
        if spec.key in self._summaries:
            return self._summaries[spec.key]
        from geomem_jax import checkpoint, loop

        run_dir = self.workdir / spec.key
        cfg = spec.build()
        saved_path = run_dir / "config.json"
        differing = config_differences(_saved_config(run_dir), _config_dict(cfg)) if saved_path.is_file() else []
        if differing:
            raise UserError(
                f"{run_dir} holds a run of a different config (differs at: {', '.join(differing)}; other --seeds, "
                f"--quick or --scale?); use another --workdir or delete that directory"
            )
        summary_path = run_dir / "summary.json"
        t0 = time.perf_counter()
        if summary_path.is_file():
            self.say(f"    {spec.key}: done earlier, skipped")
        else:
            resume = saved_path.is_file()
            if resume and not checkpoint.complete_steps(run_dir):
                self.say(f"    {spec.key}: interrupted before its first checkpoint; starting it again")
                with loop.workdir_lock(run_dir):  # refuses if another process is training it
                    for child in run_dir.iterdir():
                        if child.name != ".lock":
                            shutil.rmtree(child) if child.is_dir() else child.unlink()
                resume = False
            self.say(f"    {spec.key}: {'resuming' if resume else 'training'} ({spec.seeds} seeds, "
                     f"{cfg.train.steps} steps)")
            loop.run(cfg, run_dir, resume=resume, progress=self.progress, stream=self.stream)
        summary = json.loads(summary_path.read_text())
        if spec.analyze and not _analysed(summary):
            from geomem_jax.analysis import analyze

            analyze.analyze_run(run_dir, make_plots=False)
            summary = json.loads(summary_path.read_text())
        spent = time.perf_counter() - t0
        if spent > 1.0:
            self.add_time(spec.key, spent)
        self._summaries[spec.key] = summary
        return summary

    def link(self, key: str) -> str:
        report = self.workdir / key / "report" / "report.md"
        target = f"{key}/report/report.md" if report.is_file() else f"{key}/summary.json"
        return f"[{key}]({target})"


def _analysed(summary: dict) -> bool:
    return all("analysis/step" in e.get("final", {}) for e in summary.get("experiments", []))


def _degree_of(ctx: Context, spec: RunSpec) -> int:
    """d of the run's path-star (chance of the first decision is 1/d)."""
    return int(spec.build().graph.degree)


def _rule_above(chance: float) -> str:
    return (f"PASS if mean ≥ {learned_threshold(chance):.3g} (10× chance, capped halfway to 1) "
            f"and mean − CI > chance; FAIL if mean + CI < {learned_threshold(chance):.3g}")


# --------------------------------------------------------------------------- claims

def claim_in_weights(ctx: Context) -> list[Row]:
    rows = []
    for spec, name in zip(ctx.plan["in_weights"], ("Transformer", "Mamba")):
        summary = ctx.run(spec)
        chance = 1.0 / _degree_of(ctx, spec)
        first, exact = summary_stat(summary, FIRST), summary_stat(summary, EXACT)
        verdict = verdict_above_chance(first, chance)  # exact match is reported beside it
        rows.append(Row(
            "in_weights", f"in-weights path-star, {name}",
            f"{name}: full root→leaf path on held-out leaves (in-weights, mixed edges + 75% of paths).",
            f"first decision {fmt_stat(first)}; exact match {fmt_stat(exact)}",
            f"{chance:.3g} (1/d); exact ≈ 0",
            "held-out exact match up to 100% for Transformer and Mamba",
            _rule_above(chance) + ", on the first decision (exact match is reported, not judged)",
            verdict, [f"- run {ctx.link(spec.key)}: first decision {fmt_stat(first)}, exact match {fmt_stat(exact)}"],
        ))
    return rows


def claim_hardest_token(ctx: Context) -> list[Row]:
    spec = ctx.plan["hardest_token"][0]
    summary = ctx.run(spec)
    chance = 1.0 / _degree_of(ctx, spec)
    first = summary_stat(summary, FIRST)
    return [Row(
        "hardest_token", "hardest token alone, in-weights",
        "Target = n1 only (the node after the root), Transformer.",
        f"first decision {fmt_stat(first)}", f"{chance:.3g} (1/d)",
        "the hardest token alone is learnable in-weights", _rule_above(chance),
        verdict_above_chance(first, chance), [f"- run {ctx.link(spec.key)}"],
    )]


def in_context_lookup_values(summary: dict, path_length: int) -> list:
    """Per experiment: mean teacher-forced accuracy on n2 … n_{ℓ-2}, the nodes read off the edge list
    by the "Clever Hans" lookup (n1 is the decision; the goal can be copied from the query)."""
    keys = [f"test/forced_token_{k}" for k in range(2, max(3, path_length - 1))]
    values = []
    for e in summary["experiments"]:
        got = [e["final"].get(k) for k in keys]
        values.append(None if None in got else sum(got) / len(got))
    return values


def claim_in_context(ctx: Context) -> list[Row]:
    ic_spec, base_spec = ctx.plan["in_context"]
    ic, base = ctx.run(ic_spec), ctx.run(base_spec)
    ic_cfg = ic_spec.build()
    chance = 1.0 / ic_cfg.graph.degree
    base_chance = 1.0 / _degree_of(ctx, base_spec)
    decision, exact = summary_stat(ic, DECISION), summary_stat(ic, EXACT)
    lookup = stat_of(in_context_lookup_values(ic, ic_cfg.graph.path_length))
    base_first = summary_stat(base, FIRST)
    at_chance, contrast = verdict_at_chance(decision, chance), verdict_above_chance(base_first, base_chance)
    reads_edges = _ok(lookup) and lookup["mean"] >= LOOKUP_MIN
    verdict = (FAIL if at_chance == FAIL else
               PASS if (at_chance, contrast, reads_edges) == (PASS, PASS, True) else INCONCLUSIVE)
    return [Row(
        "in_context", "in-context path-star at chance",
        f"Fresh random G({ic_cfg.graph.degree}, {ic_cfg.graph.path_length}) per example, edge list in context.",
        f"first decision {fmt_stat(decision)}; later nodes (teacher-forced) {fmt_stat(lookup)} "
        f"(in-weights contrast: {fmt_stat(base_first)})",
        f"{chance:.3g} (1/d)", "in-context first decision stays at chance 1/d",
        f"PASS if |first decision − 1/d| ≤ max(CI, {AT_CHANCE_TOL}), the model reads the edge list (teacher-forced "
        f"accuracy on n2 … n_(ℓ−2) ≥ {LOOKUP_MIN}) and the in-weights run passes the 'learned' rule; "
        "FAIL if the first decision is above that band; INCONCLUSIVE otherwise",
        verdict,
        [f"- run {ctx.link(ic_spec.key)}: first decision (the better-scored of the source's d children) "
         f"{fmt_stat(decision)}, unrestricted first step is a child of the source "
         f"{fmt_stat(summary_stat(ic, VALID))}, later nodes teacher-forced {fmt_stat(lookup)}, "
         f"exact match {fmt_stat(exact)}",
         f"- in-weights contrast {ctx.link(base_spec.key)}: {fmt_stat(base_first)} (chance {base_chance:.3g})"],
    )]


def claim_edge_directions(ctx: Context) -> list[Row]:
    specs = dict(zip(("forward", "backward", "both"), ctx.plan["edge_directions"]))
    stats = {d: summary_stat(ctx.run(s), FIRST) for d, s in specs.items()}
    chance = 1.0 / _degree_of(ctx, specs["both"])
    ctx.plot_data["edge_directions"] = (stats, chance)
    return [Row(
        "edge_directions", "reverse edges needed (both vs forward)",
        "Same in-weights run with edge-memorization data forward-only, backward-only or both.",
        "; ".join(f"{d} {fmt_stat(s)}" for d, s in stats.items()), f"{chance:.3g} (1/d)",
        "reverse edges are needed on large graphs; forward-only edges struggle",
        f"PASS if both − forward > max({DIFF_TOL}, CI of the difference); FAIL if forward − both exceeds it; "
        "INCONCLUSIVE in between (no measurable difference at this size)",
        verdict_greater(stats["both"], stats["forward"]),
        [f"- run {ctx.link(s.key)}: {d}, first decision {fmt_stat(stats[d])}" for d, s in specs.items()],
    )]


def claim_frozen_embeddings(ctx: Context) -> list[Row]:
    frozen_spec, base_spec = ctx.plan["frozen_embeddings"]
    frozen, trainable = summary_stat(ctx.run(frozen_spec), FIRST), summary_stat(ctx.run(base_spec), FIRST)
    chance = 1.0 / _degree_of(ctx, base_spec)
    not_learned, learned = verdict_not_learned(frozen, chance), verdict_above_chance(trainable, chance)
    verdict = PASS if (not_learned, learned) == (PASS, PASS) else FAIL if not_learned == FAIL else INCONCLUSIVE
    return [Row(
        "frozen_embeddings", "frozen embeddings fail",
        "Same in-weights run with the token embeddings frozen at init (associative control).",
        f"frozen {fmt_stat(frozen)}; trainable {fmt_stat(trainable)}", f"{chance:.3g} (1/d)",
        "frozen token embeddings fail the in-weights task",
        f"PASS if frozen mean ≤ chance + max(CI, {AT_CHANCE_TOL}) and the trainable run passes the 'learned' rule; "
        "FAIL if the frozen run itself passes the 'learned' rule",
        verdict,
        [f"- run {ctx.link(frozen_spec.key)}: frozen, first decision {fmt_stat(frozen)}",
         f"- run {ctx.link(base_spec.key)}: trainable, first decision {fmt_stat(trainable)}"],
    )]


# k of the spectral alignment per tiny graph: the family's natural number of smooth modes
# (star: d − 1 = 3 arm contrasts; grid / cycle: the degenerate Fiedler pair; irregular: 3).
ZOO_ALIGNMENT_K = {"star": 3, "grid": 2, "cycle": 2, "irregular": 3}


def claim_tiny_graphs(ctx: Context) -> list[Row]:
    from geomem_jax import zoo

    graphs_, models = ctx.scale.zoo_graphs, ctx.scale.zoo_models
    presets = [f"{g}_{m}" for g in graphs_ for m in models]
    zoo_dir = ctx.workdir / "tiny_graphs"
    missing = [p for p in presets if not (zoo_dir / p / "summary.json").is_file()]
    for p in presets:  # the zoo skips finished presets without checking their config
        _check_same_seeds(zoo_dir / p, ctx.seeds)
    t0 = time.perf_counter()
    zoo.run_zoo(zoo_dir, seeds=ctx.seeds, presets=presets, progress=ctx.progress,
                stream=ctx.stream if ctx.progress else None)
    if missing:
        ctx.add_time("tiny_graphs", time.perf_counter() - t0)
    summaries = {p: json.loads((zoo_dir / p / "summary.json").read_text()) for p in presets}

    def stat(graph, model, metric_keys):
        summary = summaries[f"{graph}_{model}"]
        for key in metric_keys:
            s = summary_stat(summary, key)
            if _ok(s):
                return s
        return None

    link = "[zoo.md](tiny_graphs/zoo.md)"
    rows = []
    recalls = {p: stat(*p.split("_", 1), RECALL_KEYS) for p in presets}
    recall_verdicts = [
        INCONCLUSIVE if not _ok(s) else PASS if s["mean"] >= RECALL_MIN else FAIL for s in recalls.values()]
    worst = min((s["mean"] for s in recalls.values() if _ok(s)), default=None)
    rows.append(Row(
        "tiny_graphs", "tiny graphs: every model memorizes",
        f"Zoo of {len(graphs_)} graphs × {len(models)} models (edges only, full batch).",
        f"lowest mean recall {worst:.3f} over {len(presets)} presets" if worst is not None else "—", "≈ 0",
        "100% edge recall for every model on every graph",
        f"PASS if every preset's mean top-k recall ≥ {RECALL_MIN}",
        combine(recall_verdicts), [f"- report {link}; recall per preset: " + ", ".join(
            f"{p} {fmt_stat(s)}" for p, s in recalls.items())],
    ))
    paper_nn = " / ".join(f"{PAPER_NN_MARGINS[g]:+.2f}" for g in PAPER_NN_MARGINS)
    for model, positive, paper in (("neural_net", True, f"E W Eᵀ margin > 0 ({paper_nn})"),
                                   ("transformer", True, "every trainable model has a visible geometry"),
                                   ("associative", False, "associative margin ≤ 0 (−0.24 / −0.15 / −1.15 / −0.10)")):
        if model not in models:
            continue
        margins = {g: stat(g, model, (MARGIN, LOGIT_MARGIN)) for g in graphs_}
        rule = ("PASS if on every graph mean − CI > 0; FAIL if on some graph mean + CI ≤ 0" if positive else
                "PASS if on every graph mean + CI ≤ 0; FAIL if on some graph mean − CI > 0")
        verdicts = [verdict_sign(s, positive) for s in margins.values()]
        rows.append(Row(
            "tiny_graphs", f"tiny graphs: {model} geometric margin {'> 0' if positive else '≤ 0'}",
            f"Geometric margin of the {model} model per graph.",
            "; ".join(f"{g} {fmt_stat(s, 2, signed=True)}" for g, s in margins.items()), "0 (no geometry)",
            paper, rule, combine(verdicts),
        ))
    if "node2vec" in models:
        per_graph, verdicts = [], []
        for g in graphs_:
            key = f"spectral/alignment_k{ZOO_ALIGNMENT_K[g]}"
            n2v = stat(g, "node2vec", (key,))
            others = {m: stat(g, m, (key,)) for m in models if m != "node2vec"}
            others = {m: s for m, s in others.items() if _ok(s)}
            best = max(others, key=lambda m: others[m]["mean"]) if others else None
            verdicts.append(verdict_not_below(n2v, others[best]) if best else INCONCLUSIVE)
            per_graph.append(f"{g} (k={ZOO_ALIGNMENT_K[g]}) node2vec {fmt_stat(n2v)} vs best other "
                             f"{best} {fmt_stat(others.get(best))}")
        rows.append(Row(
            "tiny_graphs", "tiny graphs: Node2Vec aligns best with the smooth eigenvectors",
            "Spectral alignment (share of embedding energy on the k smoothest non-trivial modes).",
            "; ".join(per_graph), "k/(N−1) (isotropic)",
            "Node2Vec's geometry is the cleanest and aligns with the Fiedler-like eigenvectors",
            "PASS if on every graph Node2Vec's mean ≥ the best other model's mean − CI of the difference",
            combine(verdicts),
        ))
    else:
        rows.append(Row(
            "tiny_graphs", "tiny graphs: Node2Vec aligns best with the smooth eigenvectors",
            "Node2Vec not in this scale.", "not run (quick mode)", "—",
            "Node2Vec's geometry is the cleanest", "—", INCONCLUSIVE))
    return rows


def claim_precision(ctx: Context) -> list[Row]:
    """The tiny-graph E W Eᵀ margins in float32 (ours) and bfloat16 (the release's CUDA autocast), each
    judged against the paper's printed margins: at least PAPER_MARGIN_FRACTION of each graph's."""
    specs, graphs_ = ctx.plan["precision"], ctx.scale.zoo_graphs
    targets = {g: PAPER_MARGIN_FRACTION * PAPER_NN_MARGINS[g] for g in graphs_}
    rows = []
    bf16_how = ("`model.dtype=bfloat16`: the E W Eᵀ product and the logits in bfloat16, parameters and AdamW "
                "in float32, as under the release's autocast")
    for dtype, arm, how in (("float32", specs[: len(graphs_)], "our default: every matmul in float32"),
                            ("bfloat16", specs[len(graphs_):], bf16_how)):
        stats = {g: summary_stat(ctx.run(spec), MARGIN) for g, spec in zip(graphs_, arm)}
        verdicts = {g: verdict_at_least(stats[g], targets[g]) for g in graphs_}
        rows.append(Row(
            "precision", f"precision: E W Eᵀ margin in {dtype}",
            f"The tiny-graph E W Eᵀ runs (release settings) in {dtype} ({how}).",
            "; ".join(f"{g} {fmt_stat(stats[g], 2, signed=True)}" for g in graphs_), "0 (no geometry)",
            "E W Eᵀ margins " + " / ".join(f"{g} {PAPER_NN_MARGINS[g]:+.2f}" for g in graphs_)
            + " (release checkpoints, trained in bfloat16)",
            f"per graph: PASS if mean − CI > {PAPER_MARGIN_FRACTION} × the paper's margin ("
            + ", ".join(f"{g} {t:+.2f}" for g, t in targets.items()) + "), FAIL if mean + CI ≤ it; all graphs combined",
            combine(verdicts.values()),
            [f"- run {ctx.link(spec.key)}: {g} {fmt_stat(stats[g], 2, True)} → {verdicts[g]}"
             for g, spec in zip(graphs_, arm)],
        ))
    return rows


def _check_same_seeds(run_dir: pathlib.Path, seeds: int) -> None:
    saved = _saved_seeds(run_dir)
    if saved is not None:
        if saved != tuple(range(seeds)):
            raise UserError(f"{run_dir} was trained with seeds {saved}, not {tuple(range(seeds))}; "
                            "use another --workdir or delete that directory")


def _close(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)


KNOB_POINTS = (  # (label, init_scale, lr, weight_decay, dropout, expected sign, paper margin)
    ("default init, lr 1e-2", 0.02, 1e-2, 0.0, 0.0, None, "+7.87"),
    ("default init, lr 1e-4", 0.02, 1e-4, 0.0, 0.0, None, "+3.42"),
    ("N(0,1) init, lr 1e-4", 1.0, 1e-4, 0.0, 0.0, False, "−0.75"),
    ("N(0,1), lr 0.1", 1.0, 1e-1, 0.0, 0.0, True, "+11.99"),
    ("N(0,1), lr 1e-4, wd 10", 1.0, 1e-4, 10.0, 0.0, True, "+2.97"),
    ("N(0,1), lr 1e-3, dropout 0.4", 1.0, 1e-3, 0.0, 0.4, True, "+9.03"),
)


def _knob_point(init, lr, wd, drop):
    return lambda h: all(_close(h[k], v) for k, v in zip(("init_scale", "lr", "weight_decay", "dropout"),
                                                        (init, lr, wd, drop)))


def claim_knobs(ctx: Context) -> list[Row]:
    spec, self_spec = ctx.plan["knobs"]
    summary = ctx.run(spec)
    stats = {label: summary_stat(summary, MARGIN, _knob_point(*point)) for label, *point, _, _ in KNOB_POINTS}
    cfg = spec.build()
    desc = f"C({cfg.graph.num_nodes}), E W Eᵀ width {cfg.model.width}, {cfg.train.steps} full-batch steps."
    neg = [p for p in KNOB_POINTS if p[5] is False]
    pos = [p for p in KNOB_POINTS if p[5] is True]
    details = [f"- run {ctx.link(spec.key)}"] + [
        f"- {label}: margin {fmt_stat(stats[label], 2, True)} (paper {paper})" for label, *_, paper in KNOB_POINTS]
    return [
        Row("knobs", "knobs: N(0,1) init + small lr is associative", desc,
            "; ".join(f"{p[0]} {fmt_stat(stats[p[0]], 2, True)}" for p in neg), "0 (no geometry)",
            "N(0,1) init with lr 1e-4 → negative margin (−0.75)",
            "PASS if mean + CI ≤ 0; FAIL if mean − CI > 0",
            combine(verdict_sign(stats[p[0]], False) for p in neg), details),
        Row("knobs", "knobs: large lr / weight decay / dropout restore geometry", desc,
            "; ".join(f"{p[0]} {fmt_stat(stats[p[0]], 2, True)}" for p in pos), "0 (no geometry)",
            "lr 0.1 → +11.99, wd 10 → +2.97, dropout 0.4 → +9.03",
            "PASS if every point has mean − CI > 0; FAIL if one has mean + CI ≤ 0",
            combine(verdict_sign(stats[p[0]], True) for p in pos)),
        _self_edges_row(ctx, summary, self_spec, desc),
    ]


def _self_edges_row(ctx: Context, summary: dict, self_spec: RunSpec, desc: str) -> Row:
    """Self-edges remove the negative ("zig-zag") eigendirections: geometry/negative_mode_share of the
    default-init lr 1e-2 point without self-edges vs the same point trained with u → u."""
    with_self = ctx.run(self_spec)
    base = _knob_point(*KNOB_POINTS[0][1:5])
    share = {"without": summary_stat(summary, NEGATIVE_SHARE, base), "with": summary_stat(with_self, NEGATIVE_SHARE)}
    margin = {"without": summary_stat(summary, MARGIN, base), "with": summary_stat(with_self, MARGIN)}
    return Row(
        "knobs", "knobs: self-edges remove the negative (zig-zag) modes", desc + " Default init, lr 1e-2.",
        f"negative share without self-edges {fmt_stat(share['without'])}; with {fmt_stat(share['with'])}",
        "—", "self-edges remove the zig-zag negative eigendirections (margin +6.88 with self-edges)",
        f"PASS if share(without) − share(with) > max({DIFF_TOL}, CI of the difference); FAIL if it is below "
        "−max(…); share = Σ|μ<0| / Σ|μ| over the eigenvalues μ of E W′ Eᵀ",
        verdict_greater(share["without"], share["with"]),
        [f"- run {ctx.link(self_spec.key)}: with self-edges, margin {fmt_stat(margin['with'], 2, True)} "
         f"(without: {fmt_stat(margin['without'], 2, True)})"],
    )


def read_curves(run_dir, metric: str = FIRST) -> dict[int, list[tuple[int, float]]]:
    """Per experiment index: [(step, value)] from metrics.jsonl."""
    from geomem_jax import metrics

    curves: dict[int, list] = {}
    for record in metrics.read_metrics(pathlib.Path(run_dir) / "metrics.jsonl"):
        for entry in record["experiments"]:
            curves.setdefault(entry["index"], []).append((record["step"], entry.get(metric)))
    return curves


def pause_steps(specs_by_pause: dict, read_summary, workdir, graph_of=None) -> tuple[dict, dict, int]:
    """Steps to PAUSE_TARGET per pause count, for one graph of each run.

    specs_by_pause: {p: RunSpec}; read_summary(spec) -> summary.json (trains if needed);
    graph_of: graph index to keep (None: every experiment). Returns ({p: steps_stat},
    {p: {experiment: curve}}, total steps)."""
    steps, curves_by_pause, total = {}, {}, None
    for p, spec in specs_by_pause.items():
        summary = read_summary(spec)
        keep = {e["index"] for e in summary["experiments"]
                if graph_of is None or e.get("coords", {}).get("graph", 0) == graph_of}
        curves = {i: c for i, c in read_curves(pathlib.Path(workdir) / spec.key).items() if i in keep}
        total = spec.build().train.steps
        steps[p] = steps_stat([steps_to_target(c) for c in curves.values()], total)
        curves_by_pause[p] = curves
    return steps, curves_by_pause, total


def _pause_row(size: str, steps_by_pause: dict, total: int, resolution: int, chance: float, runs: list) -> Row:
    def cell(p, s):
        censored = f", {s['censored']} never reached" if s["censored"] else ""
        return f"p={p}: {s['mean']:.0f} ± {s['ci95']:.0f} steps{censored}"

    return Row(
        "pause_tokens", f"pause tokens speed convergence, {size}",
        f"{size}: steps until held-out first decision ≥ {PAUSE_TARGET} (evaluated every {resolution} steps), "
        "per pause count.",
        "; ".join(cell(p, s) for p, s in steps_by_pause.items()), f"{chance:.3g} (1/d)",
        "pause tokens speed up convergence (shown on long paths)",
        f"t_p = mean steps to {PAUSE_TARGET} (never reached = {total}, a lower bound). PASS if some p ≥ 1 is faster "
        f"than p = 0 by > max({resolution} steps, CI) and none slower; FAIL if some p ≥ 1 is slower and none faster",
        verdict_pauses(steps_by_pause, resolution), runs,
    )


def claim_pause_tokens(ctx: Context) -> list[Row]:
    """One row at the base graph, then one per long path of `scale.long_paths` (each p one padded run)."""
    specs = ctx.plan["pause_tokens"]
    base_specs = dict(zip(ctx.scale.pauses, specs))
    long_specs = dict(zip(ctx.scale.long_pauses, specs[len(base_specs):]))
    base_cfg = specs[0].build()
    steps, curves, total = pause_steps(base_specs, ctx.run, ctx.workdir)
    chance = 1.0 / base_cfg.graph.degree
    ctx.plot_data["pause_tokens"] = [(f"G({base_cfg.graph.degree}, {base_cfg.graph.path_length})", curves, chance)]
    runs = [f"- run {ctx.link(s.key)}: p = {p}" for p, s in base_specs.items()]
    rows = [_pause_row(ctx.plot_data["pause_tokens"][0][0], steps, total, ctx.scale.pause_every, chance, runs)]
    resolution = int(long_specs[next(iter(long_specs))].build().eval.every) if long_specs else 0
    long_runs = [f"- run {ctx.link(s.key)}: p = {p}, graphs " + ", ".join(f"G{size}" for size in ctx.scale.long_paths)
                 for p, s in long_specs.items()]
    for graph, (d, length) in enumerate(ctx.scale.long_paths):
        steps, curves, total = pause_steps(long_specs, ctx.run, ctx.workdir, graph_of=graph)
        ctx.plot_data["pause_tokens"].append((f"G({d}, {length})", curves, 1.0 / d))
        rows.append(_pause_row(f"G({d}, {length})", steps, total, resolution, 1.0 / d, long_runs))
    return rows


def verdict_ladder(rungs_: list[dict]) -> str:
    """Does in-weights path-finding work on the ladder's smallest graph, and is its limit settled?

    threshold(r) = max(0.5, 10 × chance) (`analysis.ladder.threshold`); hi = the upper end of a
    rung's first-decision interval. FAIL: hi < threshold at the smallest rung (it does not work
    even there). PASS: the smallest rung works and the limit is settled (the largest working rung
    is the last rung, or the rung after it has hi < threshold). INCONCLUSIVE otherwise."""
    from geomem_jax.analysis import ladder

    def hi(r):
        return (r.get(ladder.FIRST_DECISION) or {}).get("hi")

    if not rungs_ or hi(rungs_[0]) is None:
        return INCONCLUSIVE
    if hi(rungs_[0]) < ladder.threshold(rungs_[0]):
        return FAIL
    if not rungs_[0]["works"]:
        return INCONCLUSIVE
    last = max(i for i, r in enumerate(rungs_) if r["works"])
    if last == len(rungs_) - 1:
        return PASS
    after = rungs_[last + 1]
    return PASS if hi(after) is not None and hi(after) < ladder.threshold(after) else INCONCLUSIVE


def claim_scale_ladder(ctx: Context) -> list[Row]:
    from geomem_jax import metrics
    from geomem_jax.analysis import ladder

    def interval(rung, name=ladder.FIRST_DECISION):
        return metrics.format_interval(rung[name])

    rows, ctx.plot_data["scale_ladder"] = [], []
    for spec in ctx.plan["scale_ladder"]:
        summary = ctx.run(spec)
        axis = ladder.ladder_axis(summary)
        if axis is None:
            raise UserError(f"{ctx.workdir / spec.key}: {spec.config} is not a ladder "
                            "(path-stars differing in one size)")
        rungs_ = ladder.rungs(summary)
        best = ladder.largest_working(rungs_, axis)
        ctx.plot_data["scale_ladder"].append((spec.key.split("/")[-1], rungs_, axis, best))
        symbol = {"degree": "d", "path_length": "ℓ"}[axis]
        cfg = spec.build()
        fixed = (f"ℓ = {cfg.graph.path_length}" if axis == "degree" else f"d = {cfg.graph.degree}")
        measured = "; ".join(f"{symbol}={r[axis]}: {interval(r)}" for r in rungs_)
        best_text = f"largest working {symbol} = {best[axis]} ({interval(best)})" if best else "no rung works"
        rows.append(Row(
            "scale_ladder", f"scale ladder over {axis} ({fixed})",
            f"Held-out first decision per {axis} at {fixed}, one model and budget at every rung "
            f"({cfg.model.family} {cfg.model.layers} × {cfg.model.width}, {cfg.train.steps} steps; {spec.config}).",
            f"{best_text}; {measured}", "1/d per rung",
            "in-weights path-finding works on large path-stars (G(5000, 5), G(10⁴, 6) with GPT-mid); "
            "no curve between sizes",
            f"a rung works if mean ≥ max({ladder.WORKS_MEAN}, {ladder.WORKS_OVER_CHANCE:g}× chance). FAIL if the "
            "smallest rung's CI ends below that; PASS if the smallest rung works and the limit is settled (the "
            "largest working rung is the last, or the next rung's CI ends below its threshold); else INCONCLUSIVE",
            verdict_ladder(rungs_),
            [f"- run {ctx.link(spec.key)}: {symbol} = {r[axis]}: first decision {interval(r)}, exact match "
             f"{interval(r, ladder.EXACT_MATCH)}, {'works' if r['works'] else 'does not work'}" for r in rungs_],
        ))
    return rows


CLAIM_FUNCS = {
    "in_weights": claim_in_weights, "hardest_token": claim_hardest_token, "in_context": claim_in_context,
    "edge_directions": claim_edge_directions, "frozen_embeddings": claim_frozen_embeddings,
    "tiny_graphs": claim_tiny_graphs, "precision": claim_precision, "knobs": claim_knobs,
    "pause_tokens": claim_pause_tokens, "scale_ladder": claim_scale_ladder,
}
CLAIM_TITLES = {
    "in_weights": "In-weights path-star (Transformer, Mamba)",
    "hardest_token": "Hardest token alone, in-weights",
    "in_context": "In-context path-star stays at chance",
    "edge_directions": "Forward vs backward vs both edge directions",
    "frozen_embeddings": "Frozen embeddings (associative control) fail",
    "tiny_graphs": "Tiny graphs: memorization, geometry, Node2Vec's spectral alignment",
    "precision": "Precision behind the paper's E W Eᵀ margins: float32 and bfloat16",
    "knobs": "Knobs that flip associative ↔ geometric memory",
    "pause_tokens": "Pause tokens and convergence speed",
    "scale_ladder": "Beyond the paper: how far in-weights path-finding scales",
}


# --------------------------------------------------------------------------- entry point

def parse_only(only) -> list[str]:
    """None -> every claim but the OPT_IN ones; 'a,b' or ['a', 'b'] -> those, in CLAIMS order (unknown
    names are errors)."""
    if only is None:
        return [c for c in CLAIMS if c not in OPT_IN]
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    for name in names:
        if name not in CLAIMS:
            raise ConfigError("--only", name, f"claims among {', '.join(CLAIMS)}")
    if not names:
        raise ConfigError("--only", only, f"one or more of {', '.join(CLAIMS)}")
    return [c for c in CLAIMS if c in names]


def run_reproduce(workdir, only=None, seeds=None, quick: bool = False, progress: bool = True, stream=None,
                  scale: str | None = None) -> pathlib.Path:
    """Runs the chosen claims (default: all) and writes workdir/REPRODUCTION.md; returns its path.

    quick: the CI-sized version (minutes; every verdict INCONCLUSIVE, not judged). seeds: seeds per run
    (default: the scale's). scale: "full" (default), "quick" (same as quick=True) or "paper"
    (the paper's sizes, for accelerators). Finished runs are read, unfinished ones resumed.
    """
    scale_name = scale or ("quick" if quick else "full")
    if scale_name not in SCALES:
        raise ConfigError("--scale", scale_name, f"one of {', '.join(SCALES)}")
    if quick and scale_name != "quick":
        raise ConfigError("--scale", scale_name, "nothing with --quick (quick is its own scale)")
    quick = scale_name == "quick"
    sizes = SCALES[scale_name]
    claims = parse_only(only)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2):
        raise ConfigError("--seeds", seeds, "a whole number >= 2 (a confidence interval needs two seeds)")
    seeds = seeds or sizes.seeds
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stream = stream or sys.stderr
    ctx = Context(workdir, sizes, seeds, quick, progress, stream)
    machine = machine_info()
    rows, t_start = [], time.perf_counter()
    for i, claim in enumerate(claims):
        t0 = time.perf_counter()
        ctx.say(f"[reproduce {i + 1}/{len(claims)}] {claim}: starting (elapsed {_hms(t0 - t_start)})")
        claim_rows = judged(CLAIM_FUNCS[claim](ctx), ctx.quick)
        rows.extend(claim_rows)
        ctx.say(f"[reproduce {i + 1}/{len(claims)}] {claim}: "
                f"{', '.join(r.verdict for r in claim_rows)} in {_hms(time.perf_counter() - t0)}")
    # Claims not asked for but already finished in this workdir stay in the report (read, not trained).
    finished = [c for c in CLAIMS if c not in claims and claim_finished(ctx, c)]
    if finished:
        ctx.say(f"[reproduce] also reporting claims finished earlier: {', '.join(finished)}")
        for claim in finished:
            rows.extend(judged(CLAIM_FUNCS[claim](ctx), ctx.quick))
    claims = [c for c in CLAIMS if c in claims or c in finished]
    rows.sort(key=lambda r: CLAIMS.index(r.claim))  # stable: a claim's rows keep their order
    plots = write_plots(workdir, ctx.plot_data)
    path = write_report(workdir, rows, claims, ctx, plots, machine, time.perf_counter() - t_start)
    ctx.say(f"[reproduce] wrote {path}")
    return path


QUICK_MARK = " *(quick mode: not judged)*"


def judged(rows: list[Row], quick: bool) -> list[Row]:
    """Quick mode decides nothing: every verdict is INCONCLUSIVE, and what the rule would give on
    these CI-sized numbers is kept in the claim's section only, marked as not a verdict."""
    if not quick:
        return rows
    return [dataclasses.replace(r, verdict=INCONCLUSIVE, details=[
        *r.details, f"- the rule on these CI-sized numbers gives {r.verdict} (quick mode: not a verdict)"])
        for r in rows]


def claim_finished(ctx: Context, claim: str) -> bool:
    """Every run of the claim has its summary in the workdir (so reporting it trains nothing)."""
    if claim == "tiny_graphs":
        dirs = [ctx.workdir / "tiny_graphs" / f"{g}_{m}" for g in ctx.scale.zoo_graphs for m in ctx.scale.zoo_models]
        return all((d / "summary.json").is_file() and _saved_seeds(d) == tuple(range(ctx.seeds)) for d in dirs)
    for spec in ctx.plan[claim]:
        run_dir = ctx.workdir / spec.key
        if not (run_dir / "summary.json").is_file():
            return False
        if config_differences(_saved_config(run_dir), _config_dict(spec.build())):
            return False
    return True


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose saved value differs from the current config's.

    Keys only in `current` are not differences: a section added to the base config after
    the run was trained (with its default) does not make a finished run stale.
    """
    out = []
    for key, value in saved.items():
        if key not in current:
            out.append(prefix + key)
        elif isinstance(value, dict) and isinstance(current[key], dict):
            out += config_differences(value, current[key], f"{prefix}{key}.")
        elif value != current[key]:
            out.append(prefix + key)
    return out


def _config_dict(cfg) -> dict:
    return json.loads(json.dumps(config_lib.to_dict(cfg)))


def _saved_config(run_dir: pathlib.Path):
    path = run_dir / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _saved_seeds(run_dir: pathlib.Path):
    saved = _saved_config(run_dir)
    return tuple(saved["sweep"]["seeds"]) if saved else None


def machine_info() -> dict:
    import jax

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "backend": jax.default_backend(), "load_at_start": load}


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s" if h else f"{rem // 60}m{rem % 60:02d}s"


# --------------------------------------------------------------------------- plots and report

def write_plots(workdir: pathlib.Path, plot_data: dict) -> dict[str, str]:
    """PNG files next to REPRODUCTION.md (matplotlib Agg); returns {claim: [file names]}."""
    if not plot_data:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = {}
    if "pause_tokens" in plot_data:
        sizes = plot_data["pause_tokens"]  # [(graph label, {p: {experiment: curve}}, chance)]
        fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 4), squeeze=False, sharey=True)
        for ax, (size, curves_by_pause, chance) in zip(axes[0], sizes):
            for p, curves in curves_by_pause.items():
                steps = sorted({s for c in curves.values() for s, _ in c})
                vals = np.array([[dict(c).get(s, np.nan) for s in steps] for c in curves.values()], float)
                ax.plot(steps, np.nanmean(vals, axis=0), marker=".", label=f"{p} pause token{'s' if p != 1 else ''}")
                if vals.shape[0] > 1:
                    ax.fill_between(steps, np.nanmin(vals, axis=0), np.nanmax(vals, axis=0), alpha=0.15)
            ax.axhline(PAUSE_TARGET, color="k", ls="--", lw=0.8, label=f"target {PAUSE_TARGET}")
            ax.axhline(chance, color="grey", ls=":", lw=0.8, label="chance 1/d")
            ax.set_xlabel("step"), ax.set_title(size), ax.grid(True, alpha=0.3), ax.legend(fontsize=7)
        axes[0, 0].set_ylabel("held-out first decision (mean over seeds)")
        fig.suptitle("Pause tokens: mean over seeds (band: min–max)")
        fig.tight_layout(), fig.savefig(workdir / "pause_tokens.png", dpi=110), plt.close(fig)
        out["pause_tokens"] = ["pause_tokens.png"]
    if "scale_ladder" in plot_data:
        from geomem_jax.analysis import ladder, plots

        out["scale_ladder"] = [plots.plot_ladder(rungs_, axis, workdir / f"scale_ladder_{name}.png", best,
                                                 ladder.WORKS_MEAN, ladder.WORKS_OVER_CHANCE).name
                               for name, rungs_, axis, best in plot_data["scale_ladder"]]
    if "edge_directions" in plot_data:
        stats, chance = plot_data["edge_directions"]
        names = list(stats)
        means = [stats[n]["mean"] or 0.0 for n in names]
        cis = [stats[n]["ci95"] or 0.0 for n in names]
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.bar(names, means, yerr=cis, capsize=6, color=["#c44", "#48c", "#4a4"][: len(names)])
        ax.axhline(chance, color="grey", ls=":", lw=0.8, label="chance 1/d")
        ax.set_ylim(0, 1.05), ax.set_ylabel("held-out first decision (mean ± 95% CI)")
        ax.set_title("Edge directions in the training data"), ax.legend(fontsize=8)
        fig.tight_layout(), fig.savefig(workdir / "edge_directions.png", dpi=110), plt.close(fig)
        out["edge_directions"] = ["edge_directions.png"]
    return out


def _cmd(ctx: Context, claim: str | None = None) -> str:
    parts = ["geomem reproduce", f"--workdir={ctx.workdir}"]
    if claim:
        parts.append(f"--only={claim}")
    if ctx.quick:
        parts.append("--quick")
    elif ctx.scale.name != "full":
        parts.append(f"--scale={ctx.scale.name}")
    if ctx.seeds != ctx.scale.seeds:
        parts.append(f"--seeds={ctx.seeds}")
    return " ".join(parts)


def write_report(workdir, rows, claims, ctx: Context, plots, machine, seconds) -> pathlib.Path:
    quick_mark = QUICK_MARK if ctx.quick else ""
    load = machine["load_at_start"]
    lines = [
        "# Reproduction of the paper's headline claims",
        "",
        f"Scale: **{ctx.scale.name}**, {ctx.seeds} seeds per run. Command: `{_cmd(ctx)}`",
        "",
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, jax {machine['jax']} "
        f"({machine['backend']})" + (f", load average {load:.1f} at start" if load is not None else "") + ".",
        f"Wall time of this invocation: {_hms(seconds)}; training + analysis time of every run so far "
        f"(all invocations, from `timings.json`): {_hms(sum(ctx.timings.values()))}.",
        "",
    ]
    if ctx.quick:
        lines += ["> **Quick mode: sizes too small to decide.** Every verdict is INCONCLUSIVE (not judged): the",
                  "> CI-sized runs (tiny graphs, few steps, 2 seeds) test the pipeline, not the paper. What the rule",
                  "> gives on these numbers is listed in each claim's section, not as a verdict.", ""]
    lines += [
        "Every number: mean ± 95% CI (Student t over seeds) of the final evaluation, n = seeds. Verdicts are",
        "computed from these numbers by the rules in each section (thresholds: docs/REPRODUCING.md).",
        "",
        "| claim | our number (mean ± 95% CI, n) | chance | paper | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.label} | {r.measured} | {r.chance} | {r.paper} | {r.verdict}{quick_mark} |")
    lines.append("")
    for i, claim in enumerate(claims, 1):
        claim_rows = [r for r in rows if r.claim == claim]
        lines += [f"## {i}. {CLAIM_TITLES[claim]}", ""]
        for r in claim_rows:
            lines += [f"**{r.label}** — {r.verdict}{quick_mark}. {r.description}", "",
                      f"- measured: {r.measured}", f"- paper: {r.paper}", f"- rule: {r.rule}"]
            lines += r.details
            lines.append("")
        for name in plots.get(claim, []):
            lines += [f"![{claim}]({name})", ""]
        keys = sorted({s.key for s in ctx.plan[claim]})
        spent = sum(v for k, v in ctx.timings.items() if k in keys or (claim == "tiny_graphs" and k == claim))
        lines += [f"Training + analysis time of its runs: {_hms(spent)}.", "", "Commands:", "", "```",
                  _cmd(ctx, claim)]
        if claim == "tiny_graphs":
            presets = ",".join(f"{g}_{m}" for g in ctx.scale.zoo_graphs for m in ctx.scale.zoo_models)
            lines.append(f"geomem zoo --workdir={ctx.workdir / 'tiny_graphs'} --seeds={ctx.seeds} --only={presets}")
        for spec in ctx.plan[claim]:
            lines.append(spec.command(ctx.workdir))
        lines += ["```", ""]
    path = pathlib.Path(workdir) / "REPRODUCTION.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def table_text(path) -> str:
    """The claims table of a REPRODUCTION.md (what `geomem reproduce` prints at the end)."""
    lines = pathlib.Path(path).read_text().splitlines()
    return "\n".join(line for line in lines if line.startswith("|"))
