"""Metric stream (metrics.jsonl), progress display, and the seed-aggregated summary."""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys

import numpy as np

from geomem_jax import rundir

# The first of PRIMARY_METRICS present is a run's primary metric (tables are sorted by it, the best
# sweep point is the one with its highest mean); intervals are clipped to a metric's range.
from geomem_jax.metric_names import PRIMARY_METRICS, metric_range

LOWER_IS_BETTER = ("loss",)
MIN_SEEDS_FOR_T = 3  # below this a Student-t interval is too wide to mean anything: show min–max


def mean_ci(values, bounds: tuple[float, float] | None = None) -> dict:
    """Seed statistics of the finite values: {mean, std, ci95, n, lo, hi, interval}.

    std has ddof=1 (0 when n = 1); ci95 is the half-width of the two-sided 95% Student-t
    interval of the mean, t.ppf(0.975, n-1)·std/√n (0 when n = 1), unclipped. [lo, hi] is what
    to show: mean ∓ ci95 clipped to `bounds` (interval "t95") when n >= MIN_SEEDS_FOR_T, else
    the seeds' min and max (interval "min-max"). No finite value: every field None, n 0.
    """
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0, "lo": None, "hi": None, "interval": None}
    mean = float(vals.mean())
    std = float(vals.std(ddof=1)) if n > 1 else 0.0
    ci95 = 0.0
    if n > 1:
        from scipy.special import stdtrit  # the t quantile; scipy.stats costs ~1 s to import

        ci95 = float(stdtrit(n - 1, 0.975) * std / math.sqrt(n))
    if n >= MIN_SEEDS_FOR_T:
        lo, hi, interval = mean - ci95, mean + ci95, "t95"
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    else:
        lo, hi, interval = float(vals.min()), float(vals.max()), "min-max"
    return {"mean": mean, "std": std, "ci95": ci95, "n": n, "lo": lo, "hi": hi, "interval": interval}


def metric_stats(name: str, values) -> dict:
    """`mean_ci` of one named metric, clipped to the metric's range."""
    return mean_ci(values, metric_range(name))


MIN_MAX_MARK = "*"
MIN_MAX_NOTE = f"{MIN_MAX_MARK} fewer than {MIN_SEEDS_FOR_T} seeds: [min, max] of the seeds, not a confidence interval"


def format_interval(stat: dict | None, digits: int = 3) -> str:
    """'0.840 [0.790, 0.890]' (95% t-interval, clipped), '0.640 [0.600, 0.680]*' (n < 3: min–max)."""
    if not stat or stat.get("mean") is None:
        return "-"
    lo, hi = stat.get("lo"), stat.get("hi")
    if lo is None or hi is None:  # statistics written before intervals were stored
        return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"
    mark = MIN_MAX_MARK if stat.get("interval") == "min-max" else ""
    return f"{stat['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]{mark}"


def primary_metric(names) -> str | None:
    """The held-out metric a sweep is ranked by: the first of PRIMARY_METRICS among `names`."""
    names = set(names)
    return next((m for m in PRIMARY_METRICS if m in names), None)


def swept_keys(coords_list: list[dict]) -> list[str]:
    """Coordinates whose value differs between entries (in first-seen key order)."""
    keys = list(dict.fromkeys(k for c in coords_list for k in c))
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in coords_list}) > 1]


def rank_points(aggregate: list[dict], metric: str | None, stats_of=None) -> list[dict]:
    """Aggregate entries best first by the mean of `metric` (higher is better unless a loss),
    ties broken by the later PRIMARY_METRICS; points without `metric` last. stats_of(entry) ->
    {name: stats} (default: the flat summary.json entry's statistics)."""
    if metric is None:
        return list(aggregate)
    stats_of = stats_of or (lambda group: group_parts(group)[1])
    order = [metric] + [m for m in PRIMARY_METRICS if m != metric]

    def key(group):
        stats = stats_of(group)
        out = []
        for name in order:
            mean = (stats.get(name) or {}).get("mean")
            sign = 1.0 if any(t in name for t in LOWER_IS_BETTER) else -1.0
            out.append((mean is None, sign * mean if mean is not None else 0.0))
        return out

    return sorted(aggregate, key=key)


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
        entry.update({name: metric_stats(name, [m["final"].get(name) for m in members]) for name in names})
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
    rundir.write_json_atomic(pathlib.Path(workdir) / rundir.SUMMARY, summary)


class HeadlineFigure:
    """The held-out figure of the progress line: the mean over seeds of the primary metric at its
    best sweep point now, and the highest such mean so far (which never decreases)."""

    def __init__(self, coords_by_index: list[dict]):
        self.groups = [json.dumps(c, sort_keys=True) for c in coords_by_index]
        self.points = len(set(self.groups))
        self.seeds = len(self.groups) // max(self.points, 1)
        self.best: float | None = None

    def point_means(self, experiments: list[dict], name: str) -> dict:
        values: dict[str, list] = {}
        for e in experiments:
            v = e.get(name)
            if isinstance(v, (int, float)) and math.isfinite(v):
                values.setdefault(self.groups[e["index"]], []).append(v)
        return {g: float(np.mean(v)) for g, v in values.items()}

    def update(self, record: dict) -> str:
        """The text for the progress line after one evaluation record."""
        names = {k for e in record["experiments"] for k in e}
        name = primary_metric(names)
        if name is None:
            return ""
        now = max(self.point_means(record["experiments"], name).values(), default=None)
        if now is None:
            return ""
        self.best = now if self.best is None else max(self.best, now)
        short = name.split("/")[-1]
        where = (f"mean of {self.seeds} seeds" if self.points == 1
                 else f"best of {self.points} points, mean of {self.seeds} seeds")
        return f"{short} {now:.3f} ({where}; best so far {self.best:.3f})"


class Progress:
    """One-line progress: step, steps/s of the compiled program (compilation excluded), ETA,
    and the held-out figure of `HeadlineFigure`."""

    def __init__(self, total_steps: int, start_step: int = 0, stream=None, label: str = "train"):
        self.total, self.start = total_steps, start_step
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label = label
        self.timed_steps, self.timed_seconds = 0, 0.0

    def count(self, steps: int, seconds: float) -> None:
        """Steps that ran without compiling, and their wall time."""
        self.timed_steps += steps
        self.timed_seconds += seconds

    @property
    def rate(self) -> float | None:
        return self.timed_steps / self.timed_seconds if self.timed_seconds > 0 else None

    def update(self, step: int, figure: str = "") -> None:
        rate = self.rate
        eta = (self.total - step) / rate if rate else float("nan")
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        speed = f"{rate:.1f} steps/s" if rate else "-- steps/s"
        line = f"[{self.label}] [{bar}] {step}/{self.total}  {speed}  ETA {_fmt_time(eta)}  {figure}".rstrip()
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
    if seconds < 3600:
        return f"{seconds // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
