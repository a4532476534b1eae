"""The pause-token claims: steps to PAUSE_TARGET per pause count, on the base graph (`pause_tokens`) and on
the long paths of `scale.long_paths` (`pause_tokens_long`, opt-in). `runs_<name>(scale, seeds)` and
`claim_<name>(ctx)`; the registry is in claims/__init__.py."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from geomem_jax.reproduce.scales import RunSpec, Scale, base_run
from geomem_jax.reproduce.verdicts import FIRST, PAUSE_TARGET, Row, steps_stat, steps_to_target, verdict_pauses

if TYPE_CHECKING:
    from geomem_jax.reproduce.runner import Context


def runs_pause_tokens(scale: Scale, seeds: int) -> list[RunSpec]:
    """One run per p on the base graph (the shared base run where it has that p)."""
    base = base_run(scale, seeds)
    base_cfg = base.build()
    reuse = lambda p: p == base_cfg.task.pause_tokens and base_cfg.eval.every == scale.pause_every
    return [base if reuse(p) else base_run(scale, seeds, key=f"pause_tokens/p{p}", overrides=(
        ("task.pause_tokens", str(p)), ("eval.every", str(scale.pause_every))))
        for p in scale.pauses]


def runs_pause_tokens_long(scale: Scale, seeds: int) -> list[RunSpec]:
    """One padded run per p over every long path of the scale."""
    long_graphs = str(tuple({"degree": d, "path_length": length} for d, length in scale.long_paths))
    return [base_run(scale, seeds, key=f"pause_tokens/long_p{p}", overrides=(
        ("task.pause_tokens", str(p)), *scale.long_overrides, ("sweep.graphs", long_graphs)))
        for p in scale.long_pauses]


def read_curves(run_dir, metric: str = FIRST) -> dict[int, list[tuple[int, float]]]:
    """Per experiment index: [(step, value)] from metrics.jsonl."""
    from geomem_jax import metrics, rundir

    curves: dict[int, list] = {}
    for record in metrics.read_metrics(pathlib.Path(run_dir) / rundir.METRICS):
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


def _pause_row(claim: str, size: str, steps_by_pause: dict, total: int, resolution: int, chance: float,
               runs: list) -> Row:
    def cell(p, s):
        censored = f", {s['censored']} never reached" if s["censored"] else ""
        return f"p={p}: {s['mean']:.0f} ± {s['ci95']:.0f} steps{censored}"

    return Row(
        claim, f"pause tokens speed convergence, {size}",
        f"{size}: steps until held-out first decision ≥ {PAUSE_TARGET} (evaluated every {resolution} steps), "
        "per pause count.",
        "; ".join(cell(p, s) for p, s in steps_by_pause.items()), f"{chance:.3g} (1/d)",
        "pause tokens speed up convergence (shown on long paths)",
        f"t_p = mean steps to {PAUSE_TARGET} (never reached = {total}, a lower bound). PASS if some p ≥ 1 is faster "
        f"than p = 0 by > max({resolution} steps, CI) and none slower; FAIL if some p ≥ 1 is slower and none faster",
        verdict_pauses(steps_by_pause, resolution), runs,
    )


def claim_pause_tokens(ctx: Context) -> list[Row]:
    """One row at the base graph."""
    specs = dict(zip(ctx.scale.pauses, ctx.plan["pause_tokens"]))
    base_cfg = next(iter(specs.values())).build()
    steps, curves, total = pause_steps(specs, ctx.run, ctx.workdir)
    chance = 1.0 / base_cfg.graph.degree
    size = f"G({base_cfg.graph.degree}, {base_cfg.graph.path_length})"
    ctx.plot_data["pause_tokens"] = [(size, curves, chance)]
    runs = [f"- run {ctx.link(s.key)}: p = {p}" for p, s in specs.items()]
    return [_pause_row("pause_tokens", size, steps, total, ctx.scale.pause_every, chance, runs)]


def claim_pause_tokens_long(ctx: Context) -> list[Row]:
    """One row per long path of `scale.long_paths` (each p one padded run over all of them)."""
    specs = dict(zip(ctx.scale.long_pauses, ctx.plan["pause_tokens_long"]))
    resolution = int(next(iter(specs.values())).build().eval.every)
    runs = [f"- run {ctx.link(s.key)}: p = {p}, graphs " + ", ".join(f"G{size}" for size in ctx.scale.long_paths)
            for p, s in specs.items()]
    rows, ctx.plot_data["pause_tokens_long"] = [], []
    for graph, (d, length) in enumerate(ctx.scale.long_paths):
        steps, curves, total = pause_steps(specs, ctx.run, ctx.workdir, graph_of=graph)
        ctx.plot_data["pause_tokens_long"].append((f"G({d}, {length})", curves, 1.0 / d))
        rows.append(_pause_row("pause_tokens_long", f"G({d}, {length})", steps, total, resolution, 1.0 / d, runs))
    return rows


def plot_pause_tokens(workdir: pathlib.Path, sizes, name: str = "pause_tokens") -> list[str]:
    """One panel per graph: held-out first decision vs step per pause count, mean over seeds, min–max band
    (sizes: [(graph label, {p: {experiment: curve}}, chance)])."""
    import matplotlib.pyplot as plt
    import numpy as np

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
    fig.tight_layout(), fig.savefig(workdir / f"{name}.png", dpi=110), plt.close(fig)
    return [f"{name}.png"]


def plot_pause_tokens_long(workdir: pathlib.Path, sizes) -> list[str]:
    return plot_pause_tokens(workdir, sizes, "pause_tokens_long")
