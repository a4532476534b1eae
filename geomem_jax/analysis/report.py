"""Seed aggregation and the markdown report of the analysis stage."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from geomem_jax.jsonio import mean_ci, write_json_atomic  # noqa: F401  (write_json_atomic re-exported)


summarise = mean_ci  # one definition of the seed statistics for the whole package


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
        metrics = {name: summarise([scalars.get(name) for scalars in group["rows"]]) for name in names}
        out.append({"coords": group["coords"], "n": len(group["rows"]), "metrics": metrics})
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


def write_report(
    report_dir,
    title: str,
    experiments: list[dict],
    aggregate: list[dict],
    plots: dict[int, list[pathlib.Path]],
    notes: list[str] = (),
) -> pathlib.Path:
    """Write `report_dir/report.md`: notes, per-experiment scalar table, seed aggregates, plots.

    experiments: [{"index", "coords", "scalars"}]; aggregate: output of
    `aggregate_over_seeds`; plots: experiment index → PNG paths (linked relative to
    report_dir, so the report folder can be moved as a whole).
    """
    report_dir = pathlib.Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")

    names = sorted({name for exp in experiments for name in exp["scalars"]})
    coord_names = sorted({c for exp in experiments for c in exp["coords"]})
    lines += ["## Scalars per experiment", ""]
    lines += _table(
        ["index"] + coord_names + names,
        [[exp["index"]] + [exp["coords"].get(c) for c in coord_names] + [exp["scalars"].get(n) for n in names] for exp in experiments],
    )
    lines += ["", "## Mean ± 95% CI over seeds (Student t)", ""]
    agg_coord_names = sorted({c for group in aggregate for c in group["coords"]})
    lines += _table(
        agg_coord_names + ["n"] + names,
        [
            [group["coords"].get(c) for c in agg_coord_names]
            + [group["n"]]
            + [
                f"{_fmt(group['metrics'][n]['mean'])} ± {_fmt(group['metrics'][n]['ci95'])}" if n in group["metrics"] else "–"
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
    out = report_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
