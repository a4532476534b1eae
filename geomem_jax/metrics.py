"""Metric stream (metrics.jsonl), progress display, and the seed-aggregated summary."""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time

import numpy as np

from geomem_jax.jsonio import mean_ci, write_json_atomic

LOWER_IS_BETTER = ("loss",)


def to_python(value):
    """jax/numpy scalars and vectors -> JSON-able floats/lists (non-finite -> None)."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        v = arr.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    return [to_python(x) for x in arr]


def experiment_records(metrics_S: dict, exps) -> list[dict]:
    """Per-experiment dicts from vmapped metrics (vector metrics stay lists in metrics.jsonl)."""
    return [{"index": e.index, **{name: to_python(np.asarray(v)[e.index]) for name, v in metrics_S.items()}}
            for e in exps]


def flatten_vectors(record: dict) -> dict:
    """`test/token: [a, b]` -> `test/token_0: a, test/token_1: b` (the summary's scalar names)."""
    out = {}
    for name, value in record.items():
        if isinstance(value, list):
            out.update({f"{name}_{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out


class MetricsWriter:
    """Appends one JSON line per evaluation; flushed and fsynced so a crash keeps what was written."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines written after the checkpoint we resume from."""
        kept = [r for r in read_metrics(self.path) if r["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_metrics(path) -> list[dict]:
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash: everything before it is whole
    return out


def aggregate(experiments: list[dict]) -> list[dict]:
    """Seed aggregates of every numeric `final` metric, one flat entry per sweep point:
    {<sweep coordinates except seed>, "n", "seeds", <metric>: {mean, std, ci95, n}}."""
    groups: dict[str, list[dict]] = {}
    for e in experiments:
        groups.setdefault(json.dumps(e["coords"], sort_keys=True), []).append(e)
    out = []
    for key, members in groups.items():
        names = sorted({k for m in members for k, v in m["final"].items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
        entry = {**json.loads(key), "n": len(members), "seeds": [m["seed"] for m in members]}
        entry.update({name: mean_ci([m["final"].get(name) for m in members]) for name in names})
        out.append(entry)
    return out


def group_parts(group: dict) -> tuple[dict, dict]:
    """(sweep coordinates, metric statistics) of one flat aggregate entry."""
    stats = {k: v for k, v in group.items() if isinstance(v, dict) and "mean" in v}
    coords = {k: v for k, v in group.items() if k not in stats and k not in ("n", "seeds")}
    return coords, stats


def _best(values: list, name: str):
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return None
    return min(finite) if any(t in name for t in LOWER_IS_BETTER) else max(finite)


def build_summary(meta: dict, records: list[dict]) -> dict:
    """summary.json from meta.json and the metric stream: final, best and seed aggregates."""
    experiments = []
    for exp in meta["experiments"]:
        i = exp["index"]
        series = [(r["step"], flatten_vectors(r["experiments"][i])) for r in records]
        final = dict(series[-1][1]) if series else {}
        final.pop("index", None)
        diverged = final.pop("diverged_at", -1)
        names = sorted(k for k in final)
        best = {n: _best([s[1].get(n) for s in series], n) for n in names}
        entry = {
            "index": i, "seed": exp["seed"], "graph": exp["graph"], "hparams": exp["hparams"],
            "coords": exp["coords"], "step": series[-1][0] if series else 0,
            "diverged": diverged is not None and diverged >= 0,
            "diverged_at_step": diverged if diverged is not None and diverged >= 0 else None,
            "final": final, "best": best,
        }
        experiments.append(entry)
    return {"experiments": experiments, "aggregate": aggregate(experiments)}


def write_summary(workdir, summary: dict) -> None:
    write_json_atomic(pathlib.Path(workdir) / "summary.json", summary)


class Progress:
    """One-line progress: step, steps/s, ETA and the best held-out accuracy so far across the sweep."""

    def __init__(self, total_steps: int, start_step: int = 0, stream=None, label: str = "train"):
        self.total, self.start = total_steps, start_step
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label = label

    def update(self, step: int, best: dict) -> None:
        elapsed = time.perf_counter() - self.t0
        done = step - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        extras = "  ".join(f"{k}={v:.3f}" for k, v in best.items() if v is not None)
        line = (f"[{self.label}] [{bar}] {step}/{self.total}  {rate:.1f} steps/s  "
                f"ETA {_fmt_time(eta)}  {extras}")
        if self.tty:
            self.stream.write("\r" + line.ljust(110))
            if step >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
