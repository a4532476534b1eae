"""The scale ladder: held-out accuracy per graph size of a path-star sweep, and the largest size
that still works (configs/scaling.py; docs/ANALYSIS.md, "Scale ladder").

A run is a ladder when it sweeps ≥ 2 path-star graphs that differ in one size (`degree` or
`path_length`) and nothing else. A rung works when its mean held-out first decision is
≥ WORKS_MEAN and ≥ WORKS_OVER_CHANCE × chance, chance = 1/d (the root's d arms).
"""

from __future__ import annotations

import os

from geomem_jax import metric_names as names, metrics

SIZE_AXES = ("degree", "path_length")
FIRST_DECISION, EXACT_MATCH = names.FIRST_TOKEN, names.EXACT_MATCH
WORKS_MEAN, WORKS_OVER_CHANCE = 0.5, 10.0


def ladder_axis(summary: dict) -> str | None:
    """'degree' or 'path_length' when summary.json's graphs are path-stars differing in that size
    only; else None."""
    specs = list(_graph_specs(summary).values())
    if len(specs) < 2 or any(s.get("family") != "path_star" for s in specs):
        return None
    varying = {k for k in {k for s in specs for k in s} if len({str(s.get(k)) for s in specs}) > 1}
    return next((axis for axis in SIZE_AXES if varying == {axis}), None)


def _graph_specs(summary: dict) -> dict[int, dict]:
    """graph index → its graph spec (family, degree, path_length, ...), from the experiments."""
    return {e["coords"]["graph"]: e["graph"]["spec"] for e in summary.get("experiments", [])
            if "graph" in e.get("coords", {}) and "spec" in e.get("graph", {})}


def rungs(summary: dict) -> list[dict]:
    """One entry per (graph, hyperparameter point) of summary.json's aggregate, in size order:
    {"degree", "path_length", "chance", "n", FIRST_DECISION: stats, EXACT_MATCH: stats, "works"}."""
    specs = _graph_specs(summary)
    out = []
    for group in summary.get("aggregate", []):
        spec = specs.get(group.get("graph"))
        if spec is None:
            continue
        rung = {"degree": spec["degree"], "path_length": spec["path_length"], "chance": 1.0 / spec["degree"],
                "n": group["n"], FIRST_DECISION: group.get(FIRST_DECISION), EXACT_MATCH: group.get(EXACT_MATCH)}
        rung["works"] = works(rung)
        out.append(rung)
    return sorted(out, key=lambda r: (r["degree"], r["path_length"]))


def threshold(rung: dict) -> float:
    """The first decision a rung needs to work: max(WORKS_MEAN, WORKS_OVER_CHANCE × chance)."""
    return max(WORKS_MEAN, WORKS_OVER_CHANCE * rung["chance"])


def works(rung: dict) -> bool:
    """Mean first decision ≥ `threshold` (≥ WORKS_MEAN and ≥ WORKS_OVER_CHANCE × chance)."""
    mean = (rung.get(FIRST_DECISION) or {}).get("mean")
    return mean is not None and mean >= threshold(rung)


def largest_working(rungs_: list[dict], axis: str) -> dict | None:
    """The working rung with the largest `axis` value, or None when none works."""
    return max((r for r in rungs_ if r["works"]), key=lambda r: r[axis], default=None)


def ladder_section(summary: dict, plot_path=None, report_dir=None) -> list[str]:
    """Markdown: accuracy per rung with chance and a works column, and the largest working rung."""
    axis = ladder_axis(summary)
    if axis is None:
        return []
    table = rungs(summary)
    best = largest_working(table, axis)
    lines = [f"## Scale ladder over `{axis}`", "",
             f"A rung works when its mean held-out first decision is ≥ {WORKS_MEAN} and ≥ {WORKS_OVER_CHANCE:g}× "
             "chance (1/d). Mean [95% CI] over seeds.", ""]
    rows = [[r["degree"], r["path_length"], r["n"], f"{r['chance']:.4f}",
             metrics.format_interval(r[FIRST_DECISION]), metrics.format_interval(r[EXACT_MATCH]),
             "yes" if r["works"] else "no"] for r in table]
    lines += ["| d | ℓ | seeds | chance | first decision | exact match | works |", "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if best is None:
        lines += ["", "**No rung works.**"]
    else:
        lines += ["", f"**Largest working {axis}: {best[axis]}** (first decision "
                      f"{metrics.format_interval(best[FIRST_DECISION])}, chance {best['chance']:.4f})."]
    lines.append("")
    if plot_path is not None:
        rel = os.path.relpath(plot_path, report_dir) if report_dir is not None else str(plot_path)
        lines += [f"![scale ladder]({rel})", ""]
    return lines
