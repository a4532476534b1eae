"""Does geometry predict reasoning? Rank correlations across experiments and lags over training.

Definitions (docs/ANALYSIS.md, "Does geometry predict held-out accuracy?"):
- `spearman`: Pearson correlation of average ranks (ties share the mean of their ranks), as
  scipy.stats.spearmanr; nan below 3 points or for a constant input.
- `bootstrap_ci`: paired percentile bootstrap of `spearman` (experiments resampled with their
  (x, y) pairs), 2000 resamples, seed 0; resamples with a constant side are dropped.
- `half_rise_step`: the first step at which a curve reaches halfway from its first evaluated
  value to its maximum, linearly interpolated between evaluation steps.
- `lag_steps`: half_rise_step(accuracy) − half_rise_step(geometry); positive = geometry first.

numpy only (scipy.stats costs ~1 s to import, more than everything here together).
"""

from __future__ import annotations

import math

import numpy as np

from geomem_jax import metric_names as names
from geomem_jax.metrics import mean_ci, swept_keys

DECISION_KEYS = (names.FIRST_DECISION, names.FIRST_TOKEN)  # in-context, then in-weights (scored at n1)
GEOMETRY_PREFIXES = (names.SPECTRAL_ALIGNMENT_K,)
GEOMETRY_KEYS = (names.SPECTRAL_ALIGNMENT, names.LEAF_FIRSTHOP_GAP, names.LEVEL, names.MARGIN, names.LOGIT_MARGIN)
# The trainer's alignment ends at the analysis's spectral/alignment_k<k> (its logged k): across experiments
# that number is ranked once, under the analysis's name; the trainer's curve is for the lag.
CURVE_ONLY_WHEN_ANALYSED = (names.SPECTRAL_ALIGNMENT,)
MIN_EXPERIMENTS = 8
N_BOOT, BOOT_SEED, LEVEL = 2000, 0, 0.95


# ----------------------------------------------------------------------------- statistics

def average_ranks(x_BxN: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties given the mean of the ranks they span."""
    x_BxN = np.asarray(x_BxN, dtype=np.float64)
    order_BxN = np.argsort(x_BxN, axis=-1, kind="stable")
    sorted_BxN = np.take_along_axis(x_BxN, order_BxN, axis=-1)
    n = x_BxN.shape[-1]
    pos_N = np.arange(n)
    differs_BxM = sorted_BxN[..., 1:] != sorted_BxN[..., :-1]
    edge_Bx1 = np.ones(sorted_BxN.shape[:-1] + (1,), bool)
    starts_BxN = np.concatenate([edge_Bx1, differs_BxM], axis=-1)  # a run of equal values starts here
    ends_BxN = np.concatenate([differs_BxM, edge_Bx1], axis=-1)  # ... and ends here
    # each position's run: the last start at or before it, the first end at or after it
    start_BxN = np.maximum.accumulate(np.where(starts_BxN, pos_N, 0), axis=-1)
    end_BxN = np.flip(np.minimum.accumulate(np.flip(np.where(ends_BxN, pos_N, n), -1), axis=-1), -1)
    ranks_BxN = np.empty_like(sorted_BxN)
    np.put_along_axis(ranks_BxN, order_BxN, (start_BxN + end_BxN) / 2.0 + 1.0, axis=-1)
    return ranks_BxN


def _pearson_rows(a_BxN: np.ndarray, b_BxN: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r; nan where a row is constant."""
    a_BxN = a_BxN - a_BxN.mean(axis=-1, keepdims=True)
    b_BxN = b_BxN - b_BxN.mean(axis=-1, keepdims=True)
    denom_B = np.sqrt(np.sum(a_BxN**2, axis=-1) * np.sum(b_BxN**2, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r_B = np.sum(a_BxN * b_BxN, axis=-1) / denom_B
    r_B = np.where(denom_B > 0, r_B, np.nan)  # equal (half-)integer ranks centre to exactly 0
    return np.clip(r_B, -1.0, 1.0)


def spearman(x_N, y_N) -> float:
    """Spearman rank correlation with average ranks for ties (= scipy.stats.spearmanr).

    nan when fewer than 3 points or either input is constant."""
    x_N, y_N = np.asarray(x_N, np.float64), np.asarray(y_N, np.float64)
    if x_N.shape != y_N.shape or x_N.ndim != 1:
        raise ValueError(f"spearman needs two 1-d arrays of one length, got {x_N.shape} and {y_N.shape}")
    if len(x_N) < 3:
        return math.nan
    return float(_pearson_rows(average_ranks(x_N[None]), average_ranks(y_N[None]))[0])


def bootstrap_ci(x_N, y_N, n_boot: int = N_BOOT, seed: int = BOOT_SEED, level: float = LEVEL) -> tuple[float, float]:
    """Paired percentile bootstrap interval of `spearman`: (lo, hi), nan if undefined.

    Each resample draws N experiments with replacement, keeping each (x, y) pair together;
    resamples with a constant x or y (rho undefined) are dropped. The interval is the
    (1 ∓ level)/2 quantiles (linear interpolation) of the rest, as
    scipy.stats.bootstrap(paired=True, method="percentile"). Deterministic given `seed`."""
    x_N, y_N = np.asarray(x_N, np.float64), np.asarray(y_N, np.float64)
    n = len(x_N)
    if n < 3 or not math.isfinite(spearman(x_N, y_N)):
        return math.nan, math.nan
    idx_BxN = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    rho_B = _pearson_rows(average_ranks(x_N[idx_BxN]), average_ranks(y_N[idx_BxN]))
    rho_B = rho_B[np.isfinite(rho_B)]
    if len(rho_B) == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(rho_B, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def half_rise_step(steps_T, values_T) -> float:
    """The step at which the curve first reaches v_0 + (max v − v_0)/2, v_0 its first value.

    Linear interpolation between the two evaluation steps around the crossing; non-finite
    points are dropped first. nan when fewer than 2 points or the curve never rises above v_0."""
    steps_T, values_T = np.asarray(steps_T, np.float64), np.asarray(values_T, np.float64)
    keep_T = np.isfinite(steps_T) & np.isfinite(values_T)
    steps_T, values_T = steps_T[keep_T], values_T[keep_T]
    if len(values_T) < 2 or not values_T.max() > values_T[0]:
        return math.nan
    half = values_T[0] + (values_T.max() - values_T[0]) / 2.0
    i = int(np.argmax(values_T >= half))  # ≥ 1: values_T[0] < half
    v0, v1, s0, s1 = values_T[i - 1], values_T[i], steps_T[i - 1], steps_T[i]
    return float(s0 + (half - v0) / (v1 - v0) * (s1 - s0))


def lag_steps(steps_T, geometry_T, accuracy_T) -> float:
    """half_rise_step(accuracy) − half_rise_step(geometry): positive = geometry rises first."""
    return half_rise_step(steps_T, accuracy_T) - half_rise_step(steps_T, geometry_T)


# ----------------------------------------------------------------------------- run level

def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _curves(records: list[dict], step: int | None) -> dict[int, list[tuple[int, dict]]]:
    """experiment index → [(step, entry)] in metrics.jsonl order, up to `step` when given."""
    out: dict[int, list] = {}
    for record in records:
        if step is not None and record.get("step", 0) > step:
            continue
        for entry in record.get("experiments", []):
            out.setdefault(entry.get("index"), []).append((record.get("step"), entry))
    return out


def _last(curve: list[tuple[int, dict]], key: str):
    return next((e[key] for _, e in reversed(curve) if _finite(e.get(key))), None)


def decision_target(rows: list[dict], records: list[dict]) -> str:
    """The run's held-out first decision: the first of DECISION_KEYS that any experiment has."""
    present = {k for row in rows for k in row.get("scalars", {})}
    present |= {k for r in records[-1:] for e in r.get("experiments", []) for k in e}
    return next((k for k in DECISION_KEYS if k in present), DECISION_KEYS[0])


def _is_geometry(key: str) -> bool:
    return key in GEOMETRY_KEYS or key.startswith(GEOMETRY_PREFIXES)


def _key_order(key: str):
    """Alignments by k (k2 before k10), then GEOMETRY_KEYS in their order."""
    if key.startswith(GEOMETRY_PREFIXES):
        tail = key.rsplit("_k", 1)[-1]
        return (0, int(tail) if tail.isdigit() else 0, key)
    return (1, GEOMETRY_KEYS.index(key), key)


def _none_if_nan(value: float):
    return value if math.isfinite(value) else None


def geometry_vs_reasoning(rows: list[dict], records: list[dict], target: str = names.FIRST_DECISION,
                          min_experiments: int = MIN_EXPERIMENTS, step: int | None = None) -> dict:
    """Across experiments: Spearman rho [bootstrap 95% CI] of each geometry scalar against
    `target`; over training: the lag of each geometry curve's half-rise behind/ahead of the target's.

    rows: analyze's [{"index", "coords", "scalars"}]; records: metrics.jsonl lines (only those
    at or before `step` when given, so the target matches an analysed older checkpoint). A
    value is scalars[key], else the experiment's last finite metrics.jsonl value. Returns
    {"target", "n_experiments", "min_experiments", "across": [{"scalar", "n", "rho", "ci95"}],
    "over_time": [{"scalar", "n", "lag_mean", "lag_ci95", "interval", "lags"}],
    "points": {scalar: [[x, y]]}, "labels": {scalar: [sweep point of each point]} (only when more
    than the seed is swept), "note" (only when the target is the same everywhere)}, or
    {"target", "n_experiments", "min_experiments", "skipped": reason} when fewer than
    `min_experiments` experiments have the target. Non-finite numbers are None (JSON)."""
    curves = _curves(records, step)
    indices = [row["index"] for row in rows] + [i for i in curves if i not in {row["index"] for row in rows}]
    scalars = {row["index"]: row.get("scalars", {}) for row in rows}

    def value(index, key):
        v = scalars.get(index, {}).get(key)
        return v if _finite(v) else _last(curves.get(index, []), key)

    targets = {i: value(i, target) for i in indices}
    targets = {i: y for i, y in targets.items() if y is not None}
    out = {"target": target, "n_experiments": len(targets), "min_experiments": min_experiments}
    if len(targets) < min_experiments:
        return {**out, "skipped": f"needs >= {min_experiments} experiments with {target}; this run has {len(targets)}"}

    if len(set(targets.values())) == 1:  # every rho is then undefined: say why in the report
        out["note"] = f"{target} is {next(iter(targets.values())):.3g} in every experiment: nothing to rank"
    keys = sorted({k for i in targets for k in scalars.get(i, {}) if _is_geometry(k)}
                  | {k for i in targets for _, e in curves.get(i, []) for k in e if _is_geometry(k)}, key=_key_order)
    across, points, labels = [], {}, {}
    point_of = _sweep_point_labels(rows)
    analysed = any(k.startswith(GEOMETRY_PREFIXES) for i in targets for k in scalars.get(i, {}))
    for key in [k for k in keys if not (analysed and k in CURVE_ONLY_WHEN_ANALYSED)]:
        pairs = [(x, targets[i]) for i in targets if (x := value(i, key)) is not None]
        if len(pairs) < min_experiments:
            continue
        if point_of:
            labels[key] = [point_of.get(i, "") for i in targets if value(i, key) is not None]
        x_N, y_N = np.array(pairs).T
        lo, hi = bootstrap_ci(x_N, y_N)
        across.append({"scalar": key, "n": len(pairs), "rho": _none_if_nan(spearman(x_N, y_N)),
                       "ci95": [_none_if_nan(lo), _none_if_nan(hi)]})
        points[key] = [[float(x), float(y)] for x, y in pairs]

    over_time = []
    for key in [k for k in keys if any(k in e for i in targets for _, e in curves.get(i, []))]:
        lags = []
        for i in targets:  # both curves on the evaluation steps where both are finite
            both = [(s, e[key], e[target]) for s, e in curves.get(i, []) if _finite(e.get(key))
                    and _finite(e.get(target))]
            if len(both) >= 2:
                lag = lag_steps(*np.array(both, np.float64).T)
                if math.isfinite(lag):
                    lags.append(float(lag))
        if lags:
            stats = mean_ci(lags)
            over_time.append({"scalar": key, "n": stats["n"], "lag_mean": stats["mean"],
                              "lag_ci95": [stats["lo"], stats["hi"]], "interval": stats["interval"], "lags": lags})
    return {**out, "across": across, "over_time": over_time, "points": points, **({"labels": labels} if labels else {})}


def _sweep_point_labels(rows: list[dict]) -> dict:
    """experiment index → its sweep point as 'key=value, ...' (swept coordinates but the seed);
    {} when the seed is all that varies."""
    coords = {row["index"]: {k: v for k, v in row.get("coords", {}).items() if k != "seed"} for row in rows}
    keys = swept_keys(list(coords.values()))
    return {i: ", ".join(f"{k}={c.get(k)}" for k in keys) for i, c in coords.items()} if keys else {}


def lag_reading(entry: dict) -> str:
    """'geometry first' / 'accuracy first' when the lag's interval excludes 0, else 'together'."""
    lo, hi = entry.get("lag_ci95") or (None, None)
    if lo is not None and lo > 0:
        return "geometry first"
    if hi is not None and hi < 0:
        return "accuracy first"
    return "together"
