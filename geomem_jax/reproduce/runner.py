"""The generic runner of `geomem reproduce`: `Context` (skip / resume / train / analyse one RunSpec) and
`run_reproduce`, which judges each chosen claim of the registry and hands the rows to the report writer."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

from geomem_jax import rundir
from geomem_jax.errors import ConfigError, UserError
from geomem_jax.metric_names import ANALYSIS_STEP
from geomem_jax.reproduce.claims import CLAIM_BY_NAME, CLAIM_FUNCS, CLAIMS, OPT_IN, plan
from geomem_jax.reproduce.report import _hms, machine_info, write_plots, write_report
from geomem_jax.reproduce.scales import SCALES, RunSpec, Scale, _config_dict, _saved_config
from geomem_jax.reproduce.verdicts import INCONCLUSIVE, Row
from geomem_jax.rundir import config_differences


class Context:
    """What a claim needs: the workdir, sizes, the runner (skip / resume / train / analyse), timings."""

    def __init__(self, workdir, scale: Scale, seeds: int, quick: bool, progress: bool, stream):
        self.workdir = pathlib.Path(workdir)
        self.scale, self.seeds, self.quick = scale, seeds, quick
        self.progress, self.stream = progress, stream
        self.plan = plan(scale, seeds)
        self.timings_path = self.workdir / rundir.TIMINGS
        self.timings = rundir.read_json(self.timings_path, missing={})
        self._summaries: dict[str, dict] = {}
        self.plot_data: dict = {}  # claim -> what write_plots draws

    def say(self, text: str) -> None:
        if self.progress:
            self.stream.write(text + "\n")
            self.stream.flush()

    def add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = round(self.timings.get(key, 0.0) + seconds, 2)
        rundir.write_json_atomic(self.timings_path, self.timings)

    def run(self, spec: RunSpec) -> dict:
        """The run's summary: read if finished, else resumed or trained (then analysed)."""
        if spec.key in self._summaries:
            return self._summaries[spec.key]
        from geomem_jax import checkpoint, loop

        run_dir = self.workdir / spec.key
        cfg = spec.build()
        saved = _saved_config(run_dir)
        differing = config_differences(saved, _config_dict(cfg)) if saved is not None else []
        if differing:
            raise UserError(
                f"{run_dir} holds a run of a different config (differs at: {', '.join(differing)}; other --seeds, "
                f"--quick or --scale?); use another --workdir or delete that directory"
            )
        summary_path = run_dir / rundir.SUMMARY
        t0 = time.perf_counter()
        if summary_path.is_file():
            self.say(f"    {spec.key}: done earlier, skipped")
        else:
            resume = saved is not None
            if resume and not checkpoint.complete_steps(run_dir):
                self.say(f"    {spec.key}: interrupted before its first checkpoint; starting it again")
                rundir.clear(run_dir)
                resume = False
            self.say(f"    {spec.key}: {'resuming' if resume else 'training'} ({spec.seeds} seeds, "
                     f"{cfg.train.steps} steps)")
            loop.run(cfg, run_dir, resume=resume, progress=self.progress, stream=self.stream)
        summary = rundir.read_json(summary_path)
        if spec.analyze and not _analysed(summary):
            from geomem_jax.analysis import analyze

            analyze.analyze_run(run_dir, make_plots=False)
            summary = rundir.read_json(summary_path)
        spent = time.perf_counter() - t0
        if spent > 1.0:
            self.add_time(spec.key, spent)
        self._summaries[spec.key] = summary
        return summary

    def link(self, key: str) -> str:
        target = rundir.REPORT if (self.workdir / key / rundir.REPORT).is_file() else rundir.SUMMARY
        return f"[{key}]({key}/{target})"


def _analysed(summary: dict) -> bool:
    return all(ANALYSIS_STEP in e.get("final", {}) for e in summary.get("experiments", []))


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
    entry = CLAIM_BY_NAME[claim]
    if entry.finished is not None and not entry.finished(ctx):
        return False
    for spec in ctx.plan[claim]:
        run_dir = ctx.workdir / spec.key
        if not (run_dir / rundir.SUMMARY).is_file():
            return False
        if config_differences(_saved_config(run_dir), _config_dict(spec.build())):
            return False
    return True
