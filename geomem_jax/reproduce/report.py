"""The generic report writer of `geomem reproduce`: REPRODUCTION.md (the table, then one section per claim
with its rows, figures, time and commands) and the figures each claim's `plot` draws."""

from __future__ import annotations

import os
import pathlib
import platform
from typing import TYPE_CHECKING

from geomem_jax.reproduce.claims import CLAIM_BY_NAME, CLAIM_TITLES, REGISTRY
from geomem_jax.reproduce.claims.geometry import knob_seeds, tiny_seeds

if TYPE_CHECKING:
    from geomem_jax.reproduce.runner import Context

QUICK_MARK = " *(quick mode: not judged)*"


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


def write_plots(workdir: pathlib.Path, plot_data: dict) -> dict[str, str]:
    """PNG files next to REPRODUCTION.md (matplotlib Agg), drawn by each claim's `plot` from what its judge
    left in ctx.plot_data; returns {claim: [file names]}."""
    if not plot_data:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    return {c.name: c.plot(workdir, plot_data[c.name]) for c in REGISTRY if c.plot and c.name in plot_data}


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
        f"Scale: **{ctx.scale.name}**, {ctx.seeds} seeds per run" + (
            f" ({tiny_seeds(ctx.scale, ctx.seeds)} for the tiny graphs and precision, "
            f"{knob_seeds(ctx.scale, ctx.seeds)} for the knobs)"
            if ctx.scale.more_seeds * ctx.scale.knob_more_seeds > 1 else "") + f". Command: `{_cmd(ctx)}`",
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
        spent = sum(v for k, v in ctx.timings.items() if k in keys or k == claim)  # claim: work outside its runs
        lines += [f"Training + analysis time of its runs: {_hms(spent)}.", "", "Commands:", "", "```",
                  _cmd(ctx, claim)]
        lines += CLAIM_BY_NAME[claim].commands(ctx) if CLAIM_BY_NAME[claim].commands else []
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
