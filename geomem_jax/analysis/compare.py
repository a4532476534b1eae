"""`geomem compare RUN_DIR ...`: the sweep points of several run directories in one table and one figure.

Reads each run's summary.json only (numpy/matplotlib), so it works on run directories copied
from any machine. Every row is one sweep point of one run: its swept coordinates, seeds and
mean [95% CI] of the compared metric, best first.
"""

from __future__ import annotations

import pathlib

from geomem_jax import metrics, rundir
from geomem_jax.errors import UserError
from geomem_jax.metric_names import PRIMARY_METRICS as TABLE_METRICS  # its columns: the ranking metrics


def load_summary(run_dir) -> dict:
    summary = rundir.read_json(pathlib.Path(run_dir) / rundir.SUMMARY, missing=None)
    if summary is None:
        raise UserError(f"{run_dir}: no {rundir.SUMMARY} (not a finished geomem run directory)")
    return summary


def comparison_rows(run_dirs) -> list[dict]:
    """{"run", "point" (its swept coordinates as text), "n", "stats"} per sweep point of every run."""
    names = _run_names(run_dirs)
    rows = []
    for run_dir, name in zip(run_dirs, names):
        parts = [(metrics.group_parts(g), g["n"]) for g in load_summary(run_dir).get("aggregate", [])]
        swept = metrics.swept_keys([coords for (coords, _), _ in parts])
        for (coords, stats), n in parts:
            point = " ".join(f"{k}={_num(coords.get(k))}" for k in swept)
            rows.append({"run": name, "point": point, "n": n, "stats": stats})
    return rows


def _run_names(run_dirs) -> list[str]:
    """Each directory's own name, or its full path where two names coincide."""
    names = [pathlib.Path(d).name for d in run_dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, run_dirs)]


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def compare_runs(run_dirs, out_dir, metric: str | None = None, make_plots: bool = True) -> dict:
    """Writes out_dir/compare.md (and compare.png); returns {"table", "report", "figure", "metric"}."""
    rows = comparison_rows(run_dirs)
    present = {k for r in rows for k in r["stats"]}
    metric = metric or metrics.primary_metric(present)
    if metric not in present:
        raise UserError(f"--metric={metric}: not in these runs; available: {', '.join(sorted(present)) or 'none'}")
    ranked = metrics.rank_points(rows, metric, stats_of=lambda r: r["stats"])
    ranked = [r for r in ranked if (r["stats"].get(metric) or {}).get("mean") is not None]
    others = [m for m in TABLE_METRICS if m in present and m != metric]
    head = ["", "run", "sweep point", "seeds", f"`{metric}`", *[f"`{m}`" for m in others]]
    lines = [f"# Runs compared by `{metric}` (mean [95% CI] over seeds, best first)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(ranked):
        cells = ["**best**" if i == 0 else "", r["run"], r["point"] or "(one point)", str(r["n"]),
                 *[metrics.format_interval(r["stats"].get(m)) for m in (metric, *others)]]
        lines.append("| " + " | ".join(cells) + " |")
    if any(s.get("interval") == "min-max" for r in ranked for s in r["stats"].values()):
        lines += ["", metrics.MIN_MAX_NOTE]
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = None
    if make_plots:
        from geomem_jax.analysis import plots_metrics

        labels = [f"{r['run']}  {r['point']}  ({r['n']} seeds)".replace("    ", "  ") for r in ranked]
        figure = plots_metrics.plot_point_comparison(labels, [r["stats"][metric] for r in ranked], metric,
                                                     out_dir / "compare.png", bounds=metrics.metric_range(metric))
        lines += ["", f"![compare]({figure.name})"]
    report = out_dir / "compare.md"
    report.write_text("\n".join(lines) + "\n")
    return {"table": "\n".join(lines[2:2 + 2 + len(ranked)]), "report": report, "figure": figure, "metric": metric}
