"""JSON files that are never seen half-written (seed statistics: `geomem_jax.metrics.mean_ci`)."""

from __future__ import annotations

import json
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
