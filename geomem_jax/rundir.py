"""The run directory: the names of its files, the lock of the one process that uses it, how a saved
config differs from the current one, and JSON files that are never seen half-written.

Standard library only (no jax, no orbax): the analysis stage reads run directories through this module too.
What each file holds: README.md, "Run directory".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil

from geomem_jax.errors import UserError

CONFIG = "config.json"  # the full config
META = "meta.json"  # one entry per experiment (seed, graph, hparams, coords); the checkpoint's layout
METRICS = "metrics.jsonl"  # one line per evaluation
SUMMARY = "summary.json"  # final, best and seed aggregates; written when a run ends
CHECKPOINTS = "checkpoints"  # <step>/ Orbax checkpoints (checkpoint.py)
REPORT_DIR = "report"  # plots and the analysis report
REPORT_FILE = "report.md"
REPORT = f"{REPORT_DIR}/{REPORT_FILE}"  # relative to the run directory
LOCK = ".lock"  # flock of the one geomem process using the directory
TENSORBOARD_DIR = "tb"  # tb/exp<index>/ with logging.tensorboard
WANDB_DIR = "wandb"  # W&B's own folder of its (offline) runs with logging.wandb
WANDB_IDS = "wandb_runs.json"  # run ids per experiment, so a resumed run logs into the same W&B runs
TIMINGS = "timings.json"  # in the workdir of `geomem reproduce`, next to its run directories


@contextlib.contextmanager
def lock(workdir):
    """One process per run directory: a second one refuses instead of corrupting the first."""
    workdir = pathlib.Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        handle = open(workdir / LOCK, "w")
    except OSError as err:
        raise UserError(f"--workdir={workdir}: cannot create or write the run directory "
                        f"({err.strerror or err})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"--workdir={workdir}: another geomem process is using this run directory") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def clear(workdir) -> None:
    """Deletes everything in the run directory but its lock, holding the lock (a run that another
    process is training refuses)."""
    with lock(workdir):
        for child in pathlib.Path(workdir).iterdir():
            if child.name != LOCK:
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def config_differences(saved: dict, current: dict, added_keys: bool = False, prefix: str = "") -> list[str]:
    """Dotted keys whose saved value differs from the current config's, in the saved order.

    Keys only in `current` count only with `added_keys`: a section added to the base config after
    the run was trained leaves a finished run valid, while resuming it needs the same config
    (there an absent key equals a None value, both ways).
    """
    keys = [*saved, *(k for k in current if k not in saved)] if added_keys else list(saved)
    out = []
    for key in keys:
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += config_differences(old, new, added_keys, f"{prefix}{key}.")
        elif old != new or (key not in current and not added_keys):
            out.append(prefix + key)
    return out


def read_json(path, missing=...):
    """The JSON value in `path`; `missing` when there is no such file (if not given: FileNotFoundError)."""
    path = pathlib.Path(path)
    if missing is not ... and not path.is_file():
        return missing
    return json.loads(path.read_text())


def write_json_atomic(path, obj) -> None:
    """Write JSON through a temporary file in the same directory and rename it into place."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj):
    import numpy as np  # only numpy values need it: the module stays standard library for the CLI

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
