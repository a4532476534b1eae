"""Optional TensorBoard and Weights & Biases writers, fed from the metrics.jsonl records.

Both are off by default (`logging.tensorboard`, `logging.wandb`) and need an extra:
`pip install 'geomem_jax[tensorboard]'` (tensorboardX + tensorboard) or `'geomem_jax[wandb]'`
(the `dev` extra has both).
Each sweep point (experiment) is its own run, named `exp<index>`:

    TensorBoard: event files under <workdir>/tb/exp<index>/, hparams = hparams + coords + seed
                 (the HParams dashboard); a resumed run adds an event file that purges
                 the events after its checkpoint step.
    W&B:         one run per experiment in project `logging.wandb_project`, offline
                 (files under <workdir>/wandb/, `wandb sync` uploads them) unless
                 `logging.wandb_mode=online`; config = hparams + coords + seed. A resumed
                 run reopens the same run ids, logs the metrics.jsonl records up to its
                 checkpoint that the (buffered, so lossy on a kill) .wandb files lack, and
                 never a step those files already hold: each step is logged once.

A record is exactly one line of metrics.jsonl:
`{"step", "elapsed_s", "experiments": [{"index", metric: value or list}]}`. Vector
metrics become one scalar per element (`test/token/0`, `test/token/1`, ...);
values that metrics.jsonl holds as null (non-finite) are skipped.
"""

from __future__ import annotations

import glob
import json
import math
import pathlib
import re
import time
import uuid
from typing import Protocol

from geomem_jax import rundir
from geomem_jax.errors import ConfigError, UserError

WANDB_MODES = ("offline", "online")
DEFAULTS = {"tensorboard": False, "wandb": False, "wandb_project": "geomem_jax", "wandb_mode": "offline"}
EXIT_WAIT_S = 30.0  # how long close() waits for W&B to write each run's last records


class Writer(Protocol):
    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...


def scalars(entry: dict) -> dict[str, float]:
    """One experiment's entry of a record -> {tag: float}; lists -> `name/i`, nulls and the index dropped."""
    out = {}
    for name, value in entry.items():
        if name == "index":
            continue
        if isinstance(value, list):
            out.update({f"{name}/{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return {tag: float(v) for tag, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}


class TensorBoardWriter:
    """One SummaryWriter per experiment, at <workdir>/tb/exp<index>/, its hparams written first."""

    def __init__(self, summary_writer_cls, hparams_fn, workdir, experiments: list[dict],
                 purge_step: int | None = None):
        root = pathlib.Path(workdir) / rundir.TENSORBOARD_DIR
        # The writers name event files by the second; a restart within it would reopen (and
        # truncate) the same file. The suffix keeps every file and sorts in creation order.
        kwargs = {"filename_suffix": f".{time.time_ns()}"}
        if purge_step is not None:
            kwargs["purge_step"] = purge_step
        self.runs = {}
        for e in experiments:
            run = summary_writer_cls(str(root / f"exp{e['index']}"), **kwargs)
            file_writer = run._get_file_writer()
            for summary in hparams_fn(experiment_config(e), {}):
                file_writer.add_summary(summary)
            self.runs[e["index"]] = run

    def write(self, record: dict) -> None:
        step = int(record["step"])
        for entry in record["experiments"]:
            run = self.runs.get(entry["index"])
            if run is None:
                continue
            for tag, value in scalars(entry).items():
                run.add_scalar(tag, value, step)
            run.flush()

    def close(self) -> None:
        for run in self.runs.values():
            run.close()


class WandbWriter:
    """One W&B run per experiment (reinit="create_new": several runs open in one process).

    resume="allow" reopens a run id the workdir already has (a resumed or restarted run);
    steps up to the last one in its local .wandb files are not logged again. W&B buffers its
    .wandb files, so a killed process can lose its last (or all) logged steps: `backfill`
    (the metrics.jsonl records up to the checkpoint a run resumes from) logs those again.
    """

    def __init__(self, wandb, workdir, experiments: list[dict], project: str, mode: str,
                 backfill: list[dict] = ()):
        workdir = pathlib.Path(workdir)
        ids = _wandb_ids(workdir, experiments)
        self.runs, self.last_step = {}, {}
        for e in experiments:
            i = e["index"]
            history = read_wandb_run(workdir, ids[str(i)])["history"]
            self.last_step[i] = max((row["_step"] for row in history), default=None)
            self.runs[i] = wandb.init(
                project=project, name=f"exp{i}", group=workdir.name, id=ids[str(i)], mode=mode, dir=str(workdir),
                config=experiment_config(e), reinit="create_new", resume="allow",
            )
        for record in sorted(backfill, key=lambda r: r["step"]):
            self.write(record)

    def write(self, record: dict) -> None:
        step = int(record["step"])
        for entry in record["experiments"]:
            run, last = self.runs.get(entry["index"]), self.last_step.get(entry["index"])
            if run is not None and (last is None or step > last):
                run.log(scalars(entry), step=step)

    def close(self) -> None:
        """Finish every run, then wait (up to EXIT_WAIT_S) until its .wandb file holds the exit
        record: `finish` returns before the W&B service has written the last history row, and a
        reader (or a resume in this process) must see every logged step."""
        files = [run.settings.sync_file for run in self.runs.values()]
        for run in self.runs.values():
            run.finish()
        deadline = time.monotonic() + EXIT_WAIT_S
        while not all(_has_exit_record(f) for f in files) and time.monotonic() < deadline:
            time.sleep(0.05)


def experiment_config(exp: dict) -> dict:
    """W&B config of one experiment (a meta.json entry): its hparams, sweep coordinates and seed."""
    return {**exp.get("hparams", {}), **exp.get("coords", {}), "seed": exp["seed"], "index": exp["index"]}


def read_wandb_run(workdir, run_id: str) -> dict:
    """What the local .wandb files of one run id hold: {"config": {...}, "history": [row, ...]}.

    Every run directory of that id under <workdir>/wandb/ (a resumed run adds one) is read
    in creation order with wandb's own transaction-log reader; a row is one `run.log` call
    as {key: value, "_step": step}. No files (or no reader): empty config and history.
    """
    found = glob.glob(str(pathlib.Path(workdir) / rundir.WANDB_DIR / "*run-*" / f"run-{run_id}.wandb"))
    files = sorted(found, key=_run_dir_order)  # (the latest-run link does not match *run-*)
    config, history = {}, []
    if not files:
        return {"config": config, "history": history}
    try:
        records = [r for file in files for r in _records(file)]
    except ImportError:  # a wandb without the Python reader: nothing to skip
        return {"config": config, "history": history}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
    config.pop("_wandb", None)
    return {"config": config, "history": history}


def _records(wandb_file: str):
    """The records of one .wandb transaction log, in order (wandb's own reader)."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(wandb_file)
    while (data := store.scan_data()) is not None:
        yield wandb_internal_pb2.Record.FromString(data)


def _has_exit_record(wandb_file: str) -> bool:
    """Whether a run's transaction log is complete (its last record, `exit`, is written)."""
    try:
        return any(r.WhichOneof("record_type") == "exit" for r in _records(wandb_file))
    except ImportError:  # a wandb without the Python reader: nothing to wait for
        return True
    except (OSError, AssertionError):  # not created yet, or a block still being written
        return False


def _run_dir_order(wandb_file: str) -> tuple:
    """W&B run directories in creation order: [offline-]run-<YYYYMMDD_HHMMSS>-<id>[-<k>], k = 1, 2, ...
    for a second directory of the same id within one second."""
    name = pathlib.Path(wandb_file).parent.name
    stamp = re.search(r"\d{8}_\d{6}", name)
    return (stamp.group(0) if stamp else "", len(name), name)


def _wandb_ids(workdir: pathlib.Path, experiments: list[dict]) -> dict[str, str]:
    """Run ids per experiment index, created once per run directory and reused on resume."""
    path = workdir / rundir.WANDB_IDS
    ids = rundir.read_json(path, missing={})
    token = uuid.uuid4().hex[:8]
    missing = {str(e["index"]): f"{token}-exp{e['index']}" for e in experiments if str(e["index"]) not in ids}
    if missing:
        ids.update(missing)
        workdir.mkdir(parents=True, exist_ok=True)
        rundir.write_json_atomic(path, ids)
    return ids


def settings(cfg_logging) -> dict:
    """The `logging` section with defaults filled in and checked (None / missing keys -> defaults)."""
    got = dict(DEFAULTS)
    if cfg_logging is not None:
        got.update({k: cfg_logging[k] for k in DEFAULTS if k in cfg_logging})
    for key in ("tensorboard", "wandb"):
        if not isinstance(got[key], bool):
            raise ConfigError(f"logging.{key}", got[key], "true or false")
    if got["wandb_mode"] not in WANDB_MODES:
        raise ConfigError("logging.wandb_mode", got["wandb_mode"], f"one of {', '.join(WANDB_MODES)}")
    if not isinstance(got["wandb_project"], str) or not got["wandb_project"]:
        raise ConfigError("logging.wandb_project", got["wandb_project"], "a non-empty project name")
    return got


def summary_writer_class():
    """(SummaryWriter, hparams summary function) of tensorboardX, else of torch.utils.tensorboard,
    else a UserError."""
    try:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams

        return SummaryWriter, hparams
    except ImportError:
        pass
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        return SummaryWriter, hparams
    except ImportError:
        raise UserError(
            "logging.tensorboard=true needs tensorboardX (or torch with tensorboard): "
            "pip install 'geomem_jax[tensorboard]', or set --config.logging.tensorboard=false"
        ) from None


def import_wandb():
    try:
        import wandb
    except ImportError:
        raise UserError(
            "logging.wandb=true needs the wandb package: pip install 'geomem_jax[wandb]', "
            "or set --config.logging.wandb=false"
        ) from None
    return wandb


def make_writers(cfg_logging, workdir, meta: dict, resume_step: int | None = None) -> list[Writer]:
    """The writers `cfg.logging` asks for (none by default), one run per experiment of `meta`.

    `resume_step`: the checkpoint step a resumed run continues from; TensorBoard drops
    events written after it (as metrics.jsonl does). W&B always reopens the workdir's run
    ids, skips the steps they already hold and, on resume, first logs the metrics.jsonl
    records up to `resume_step` that its files lost.
    """
    opts = settings(cfg_logging)
    experiments = meta["experiments"]
    writers: list[Writer] = []
    # Both packages are checked before any run is opened: a missing one fails cleanly.
    tensorboard = summary_writer_class() if opts["tensorboard"] else None
    wandb = import_wandb() if opts["wandb"] else None
    if tensorboard is not None:
        purge = None if resume_step is None else resume_step + 1
        writers.append(TensorBoardWriter(*tensorboard, workdir, experiments, purge_step=purge))
    if wandb is not None:
        try:
            writers.append(WandbWriter(wandb, workdir, experiments, opts["wandb_project"], opts["wandb_mode"],
                                       backfill=_records_up_to(workdir, resume_step)))
        except BaseException:
            for w in writers:
                w.close()
            raise
    return writers


def _records_up_to(workdir, step: int | None) -> list[dict]:
    """The metrics.jsonl records at or before `step` (none for a fresh run)."""
    from geomem_jax import metrics

    if step is None:
        return []
    return [r for r in metrics.read_metrics(pathlib.Path(workdir) / rundir.METRICS) if r["step"] <= step]


def replay(workdir, cfg_logging) -> int:
    """Writes an existing run's metrics.jsonl to the configured writers; returns the number of records."""
    from geomem_jax import metrics

    workdir = pathlib.Path(workdir)
    meta = rundir.read_json(workdir / rundir.META, missing=None)
    if meta is None:
        raise UserError(f"--workdir={workdir}: no {rundir.META} (not a geomem run directory)")
    records = metrics.read_metrics(workdir / rundir.METRICS)
    writers = make_writers(cfg_logging, workdir, meta)
    try:
        for record in records:
            for w in writers:
                w.write(record)
    finally:
        for w in writers:
            w.close()
    return len(records)
