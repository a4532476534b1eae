"""JSON files that are never seen half-written, and seed statistics (numpy/scipy only)."""

from __future__ import annotations

import json
import math
import os
import pathlib

import numpy as np


def write_json_atomic(path, obj) -> None:
    """Write JSON through a temporary file in the same directory and rename it into place."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def mean_ci(values) -> dict:
    """mean, std (ddof=1; 0 when n = 1), ci95 and n over the finite values.

    ci95 is the half-width of the two-sided 95% Student-t interval of the mean,
    t.ppf(0.975, n-1)·std/√n (0 when n = 1). No finite value: every field None, n 0.
    """
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    std = float(vals.std(ddof=1)) if n > 1 else 0.0
    ci95 = 0.0
    if n > 1:
        from scipy.special import stdtrit  # the t quantile; scipy.stats costs ~1 s to import

        ci95 = float(stdtrit(n - 1, 0.975) * std / math.sqrt(n))
    return {"mean": float(vals.mean()), "std": std, "ci95": ci95, "n": n}
