"""Seed aggregation and the markdown report of the analysis stage."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from geomem_jax import metrics, rundir
from geomem_jax.analysis import ladder
from geomem_jax.metric_names import CURVE_METRICS, HEADLINE_METRICS, PLOTTED_METRICS

summarise = metrics.metric_stats  # the one definition of the seed statistics: metrics.mean_ci


def aggregate_over_seeds(rows: list[dict], coord_key: str = "coords", scalar_key: str = "scalars") -> list[dict]:
    """Group rows by their sweep coordinates (seed removed) and summarise every scalar.

    rows: [{"coords": {...incl. seed...}, "scalars": {name: float}}]. Returns
    [{"coords": {... without seed}, "n": rows in group, "metrics": {name: summarise(...)}}]
    in first-appearance order of the groups.
    """
    groups: dict[str, dict] = {}
    for row in rows:
        coords = {k: v for k, v in row[coord_key].items() if k != "seed"}
        key = json.dumps(coords, sort_keys=True, default=str)
        group = groups.setdefault(key, {"coords": coords, "rows": []})
        group["rows"].append(row[scalar_key])
    out = []
    for group in groups.values():
        names = sorted({name for scalars in group["rows"] for name in scalars})
        stats = {name: summarise(name, [scalars.get(name) for scalars in group["rows"]]) for name in names}
        out.append({"coords": group["coords"], "n": len(group["rows"]), "metrics": stats})
    return out


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return lines


def headline_points(summary: dict) -> list[dict]:
    """Each sweep point of summary.json as {"coords" (swept only), "n", "stats"}, best first by
    the primary held-out metric."""
    aggregate = summary.get("aggregate") or []
    names = {k for g in aggregate for k in metrics.group_parts(g)[1]}
    ranked = metrics.rank_points(aggregate, metrics.primary_metric(names))
    parts = [metrics.group_parts(g) for g in ranked]
    swept = metrics.swept_keys([coords for coords, _ in parts])
    return [{"coords": {k: coords.get(k) for k in swept}, "n": g["n"], "stats": stats}
            for (coords, stats), g in zip(parts, ranked)]


def headline_section(summary: dict) -> list[str]:
    """Markdown: held-out accuracy per sweep point, primary metric first, best point marked."""
    points = headline_points(summary)
    if not points:
        return []
    present = {k for p in points for k in p["stats"]}
    primary = metrics.primary_metric(present)
    names = [primary] + [m for m in HEADLINE_METRICS if m in present and m != primary] if primary else \
        [m for m in HEADLINE_METRICS if m in present]
    coord_names = list(points[0]["coords"])
    lines = [f"## Held-out accuracy: mean [95% CI] over seeds, best first by `{primary}`", ""]
    rows = []
    for i, p in enumerate(points):
        mark = "**best**" if i == 0 and len(points) > 1 else ""
        rows.append([mark] + [p["coords"].get(c) for c in coord_names] + [p["n"]]
                    + [metrics.format_interval(p["stats"].get(n)) for n in names])
    lines += _table(["", *coord_names, "seeds", *[f"`{n}`" for n in names]], rows)
    if any(s.get("interval") == "min-max" for p in points for s in p["stats"].values()):
        lines += ["", metrics.MIN_MAX_NOTE]
    lines += ["", "Intervals of accuracies and shares are clipped to [0, 1].", ""]
    return lines


CURVES_PLOT = "sweep_curves.png"
GEOMETRY_PLOT = "geometry_vs_reasoning.png"
LADDER_PLOT = "scale_ladder.png"


def _rho_text(entry: dict) -> str:
    """'+0.61 [-0.15, +0.99]'; nan where rho is undefined."""
    if entry.get("rho") is None:
        return "nan"
    lo, hi = entry.get("ci95") or (None, None)
    interval = "[–]" if lo is None or hi is None else f"[{lo:+.2f}, {hi:+.2f}]"
    return f"{entry['rho']:+.2f} {interval}"


def geometry_reasoning_section(result: dict | None, plot_path=None, report_dir=None) -> list[str]:
    """Markdown of `correlation.geometry_vs_reasoning`: rho per geometry scalar across experiments,
    the half-rise lag per geometry curve over training, the scatter figure; one line when skipped."""
    from geomem_jax.analysis.correlation import lag_reading

    if not result:
        return []
    lines = ["## Does geometry predict held-out accuracy?", ""]
    target = result.get("target")
    if result.get("skipped"):
        return lines + [f"Not computed: {result['skipped']}.", ""]
    lines += [f"Across experiments: Spearman rank correlation (average ranks) of each geometry scalar with "
              f"the held-out `{target}`, 95% paired percentile bootstrap interval (2000 resamples).", ""]
    if result.get("note"):
        lines += [f"Every ρ is undefined here: {result['note']}.", ""]
    if result.get("across"):
        rows = [[f"`{e['scalar']}`", e["n"], _rho_text(e)] for e in result["across"]]
        lines += _table(["scalar", "n", "Spearman ρ [95% CI]"], rows)
    else:
        lines += [f"No geometry scalar is present in >= {result.get('min_experiments')} of these experiments."]
    lines += ["", "Over training: lag = step where the held-out accuracy reaches half its rise − the same step "
              "for the geometry curve (half-rise: halfway from the first evaluated value to the maximum, "
              "interpolated between evaluations); positive = geometry rises first. Mean [95% Student-t CI] "
              "over experiments.", ""]
    if result.get("over_time"):
        rows = [[f"`{e['scalar']}`", e["n"],
                 metrics.format_interval({"mean": e["lag_mean"], "lo": e["lag_ci95"][0], "hi": e["lag_ci95"][1],
                                          "interval": e.get("interval")}, digits=0),
                 lag_reading(e) if e.get("interval") != "min-max" else "too few experiments"]
                for e in result["over_time"]]
        lines += _table(["scalar", "n", "lag in steps, mean [95% CI]", "reading"], rows)
        if any(e.get("interval") == "min-max" for e in result["over_time"]):
            lines += ["", metrics.MIN_MAX_NOTE]
    else:
        lines += ["No lag: no experiment has both a rising held-out accuracy curve and a rising geometry curve "
                  "in metrics.jsonl."]
    lines.append("")
    if plot_path is not None:
        rel = os.path.relpath(plot_path, report_dir) if report_dir is not None else str(plot_path)
        lines += [f"![{pathlib.Path(plot_path).stem}]({rel})", ""]
    return lines


def point_labels(summary: dict) -> dict[int, str]:
    """Experiment index → its sweep point as text ('d=200, lr=0.01'): the swept coordinates, a
    swept graph named by the graph-spec keys that differ between graphs."""
    experiments = summary.get("experiments", [])
    swept = metrics.swept_keys([e.get("coords", {}) for e in experiments])
    specs = [e.get("graph", {}).get("spec", {}) for e in experiments]
    graph_keys = metrics.swept_keys(specs) if "graph" in swept else []
    short = {"degree": "d", "path_length": "ℓ"}
    out = {}
    for e, spec in zip(experiments, specs):
        parts = [f"{short.get(k, k)}={spec.get(k)}" for k in graph_keys]
        parts += [f"{k}={_num_text(e['coords'].get(k))}" for k in swept if k != "graph"]
        out[e["index"]] = ", ".join(parts) or "all experiments"
    return out


def _num_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_curves(summary: dict, records: list[dict], names=CURVE_METRICS) -> dict[str, dict]:
    """Seed statistics over training, per sweep point: {label: {metric: [(step, mean_ci stats)]}},
    from metrics.jsonl `records` (only the metrics in `names` that were logged)."""
    labels = point_labels(summary)
    values: dict[str, dict[str, dict[int, list]]] = {}
    for record in records:
        for entry in record.get("experiments", []):
            label = labels.get(entry.get("index"))
            if label is None:
                continue
            for name in names:
                if entry.get(name) is not None:
                    values.setdefault(label, {}).setdefault(name, {}).setdefault(record["step"], []).append(entry[name])
    return {label: {name: [(step, metrics.metric_stats(name, vals)) for step, vals in sorted(by_step.items())]
                    for name, by_step in per_metric.items()}
            for label, per_metric in values.items()}


def sweep_plots(summary: dict, report_dir) -> list[pathlib.Path]:
    """One figure per swept hyperparameter: every plotted held-out metric against it."""
    from geomem_jax.analysis import plots_metrics

    points = [(p["coords"], p["stats"]) for p in headline_points(summary)]
    hparams = [k for k in (points[0][0] if points else {}) if k != "graph"]
    present = [m for m in PLOTTED_METRICS if any(m in stats for _, stats in points)]
    return [plots_metrics.plot_metric_vs_hparam(points, h, present, pathlib.Path(report_dir) / f"sweep_{h}.png",
                                                bounds_of=metrics.metric_range) for h in hparams if present]


def write_report(
    report_dir,
    title: str,
    experiments: list[dict],
    aggregate: list[dict],
    plots: dict[int, list[pathlib.Path]],
    notes: list[str] = (),
    summary: dict | None = None,
    make_plots: bool = True,
    geometry_vs_reasoning: dict | None = None,
    records: list[dict] = (),
) -> pathlib.Path:
    """(Long on purpose: the report's sections in reading order, one block each.)
    Write `report_dir/report.md`: held-out accuracy per sweep point (from `summary`, best
    first) and its plots against each swept hyperparameter, the scale ladder when the run is one
    (`ladder`: accuracy per graph size, the largest that works, `scale_ladder.png`), whether geometry predicts it
    (`geometry_vs_reasoning`: output of `correlation.geometry_vs_reasoning`, its scatter
    figure when `make_plots`), then notes, the per-experiment
    scalar table, seed aggregates and the per-experiment plots.

    experiments: [{"index", "coords", "scalars"}]; aggregate: output of
    `aggregate_over_seeds`; plots: experiment index → PNG paths (linked relative to
    report_dir, so the report folder can be moved as a whole).
    """
    report_dir = pathlib.Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if summary:
        lines += headline_section(summary)
        curves = sweep_curves(summary, records) if make_plots and records else {}
        if curves:
            from geomem_jax.analysis import plots_metrics as plots_lib

            path = plots_lib.plot_sweep_curves(curves, report_dir / CURVES_PLOT)
            lines += ["Over training, per sweep point: mean and 95% band over seeds of held-out accuracy, edge "
                      "recall and the geometry the trainer logs, on one step axis.", "",
                      f"![sweep curves]({os.path.relpath(path, report_dir)})", ""]
        for path in sweep_plots(summary, report_dir) if make_plots else []:
            lines += [f"![{path.stem}]({os.path.relpath(path, report_dir)})", ""]
    if summary and (axis := ladder.ladder_axis(summary)):
        figure = None
        if make_plots:
            from geomem_jax.analysis import plots_metrics as plots_lib

            table = ladder.rungs(summary)
            figure = plots_lib.plot_ladder(table, axis, report_dir / LADDER_PLOT, ladder.largest_working(table, axis),
                                           ladder.WORKS_MEAN, ladder.WORKS_OVER_CHANCE)
        lines += ladder.ladder_section(summary, figure, report_dir)
    scatter = None
    if make_plots and geometry_vs_reasoning and geometry_vs_reasoning.get("points"):
        from geomem_jax.analysis import plots_metrics as plots_lib

        scatter = plots_lib.plot_geometry_vs_reasoning(geometry_vs_reasoning, report_dir / GEOMETRY_PLOT)
    lines += geometry_reasoning_section(geometry_vs_reasoning, scatter, report_dir)
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")

    names = sorted({name for exp in experiments for name in exp["scalars"]})
    coord_names = ["seed"] + metrics.swept_keys([{k: v for k, v in exp["coords"].items() if k != "seed"}
                                                 for exp in experiments])
    lines += ["## Scalars per experiment", ""]
    lines += _table(
        ["index"] + coord_names + names,
        [[exp["index"]] + [exp["coords"].get(c) for c in coord_names] + [exp["scalars"].get(n) for n in names]
         for exp in experiments],
    )
    lines += ["", "## Analysis scalars: mean [95% CI] over seeds (Student t; * min–max when n < 3)", ""]
    agg_coord_names = metrics.swept_keys([group["coords"] for group in aggregate])
    lines += _table(
        agg_coord_names + ["n"] + names,
        [
            [group["coords"].get(c) for c in agg_coord_names]
            + [group["n"]]
            + [
                metrics.format_interval(group["metrics"][n], digits=4) if n in group["metrics"] else "–"
                for n in names
            ]
            for group in aggregate
        ],
    )
    lines += ["", "## Plots", ""]
    for index, paths in plots.items():
        lines += [f"### Experiment {index}", ""]
        for path in paths:
            rel = os.path.relpath(path, report_dir)
            lines += [f"![{pathlib.Path(path).stem}]({rel})", ""]
    out = report_dir / rundir.REPORT_FILE
    out.write_text("\n".join(lines) + "\n")
    return out
