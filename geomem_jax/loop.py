"""The host loop: run a compiled sweep in chunks, write metrics, checkpoints and the summary.

    init   = jit(vmap(program.init))
    chunk  = jit(vmap(scan(program.step, K steps)), donated state)
    eval   = jit(vmap(program.evaluate))

After each chunk: evaluation (every `eval.every` steps), metrics.jsonl, an Orbax
checkpoint (every `ckpt.every` steps, and at the end), the progress line. `resume`
continues from the last committed checkpoint and ends exactly where an
uninterrupted run ends (same keys, same steps, metrics after it are rewritten).
"""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from geomem_jax import (
    checkpoint,
    config as config_lib,
    distributed,
    metrics,
    rundir,
    sweep,
    train,
    writers as writers_lib,
)
from geomem_jax.errors import CheckpointError, UserError


def jit_chunk(program, chunk_steps: int, reduce=jnp.mean, group: int | None = None, num_experiments: int = 0):
    """jit(vmap(scan `chunk_steps` steps)), `group` experiments per vmap (None: all; sweep.over_experiments);
    the state is donated (updated in place). The step metrics come back reduced over the chunk's steps
    (`reduce`: mean, or sum for the loop)."""

    def run_chunk(state, hp, data):
        state, step_metrics = jax.lax.scan(lambda s, _: program.step(s, hp, data), state, None, length=chunk_steps)
        return state, jax.tree_util.tree_map(reduce, step_metrics)

    return jax.jit(sweep.over_experiments(run_chunk, group, num_experiments), donate_argnums=0)


def _prepare_workdir(workdir: pathlib.Path, cfg_dict: dict, resume) -> int | None:
    """Checks the workdir against the config; returns the step to resume from, or None to start.

    A run of this config killed before its first checkpoint restarts from step 0 (the run is
    deterministic, so it still ends where an uninterrupted run ends).
    """
    saved = rundir.read_json(workdir / rundir.CONFIG, missing=None)
    if saved is None:
        if resume is True:
            raise UserError(f"--resume: nothing to resume in {workdir} (no {rundir.CONFIG})")
        return None
    if not resume:
        raise UserError(
            f"--workdir={workdir} already holds a run; pass --resume to continue it or choose another workdir"
        )
    diff = _differences(saved, cfg_dict)
    if diff:
        raise UserError(f"--resume: {workdir} holds a run of a different config (differs at: {', '.join(diff)})")
    steps = checkpoint.complete_steps(workdir)
    return steps[-1] if steps else None


def _differences(saved: dict, cfg_dict: dict) -> list[str]:
    """The config keys a resumed run may not change (sorted)."""
    return sorted(k for k in rundir.config_differences(saved, cfg_dict, added_keys=True) if k not in ELASTIC_KEYS)


RESUME_MODES = (False, True, "auto")
EXTENDABLE_KEY = "train.steps"


def extend_run(workdir: pathlib.Path, cfg_dict: dict, stream=None) -> bool:
    """When `cfg_dict` differs from the run in `workdir` only by a larger train.steps, records
    the new length in config.json (and the extension in meta.json) so that resuming continues
    the run to it; returns whether it did. A shorter train.steps is refused.

    Constant schedules (and Node2Vec, whose lr is always constant) extend exactly: the result
    equals a run trained at the new length from the start. A cosine schedule decays over
    train.steps, so extending re-stretches it; a note says how the lr changes at the resume step.
    """
    saved = rundir.read_json(workdir / rundir.CONFIG, missing=None)
    if saved is None or _differences(saved, cfg_dict) != [EXTENDABLE_KEY]:
        return False
    old, new = saved["train"]["steps"], cfg_dict["train"]["steps"]
    if new < old:
        raise UserError(f"--config.train.steps={new}: {workdir} holds a run of {old} steps; a run can be extended, "
                        f"not shortened (to read an earlier point: geomem analyze --workdir={workdir} --step=N)")
    steps = checkpoint.complete_steps(workdir)
    note = schedule_change(cfg_dict, old, new, steps[-1] if steps else 0)
    if note:
        print(f"geomem: note: {note}", file=stream or sys.stderr)
    saved["train"]["steps"] = new
    meta = rundir.read_json(workdir / rundir.META, missing=None)
    if meta is not None:
        meta.setdefault("extensions", []).append({"from_steps": old, "to_steps": new, "note": note or "exact"})
        rundir.write_json_atomic(workdir / rundir.META, meta)
    rundir.write_json_atomic(workdir / rundir.CONFIG, saved)
    return True


def schedule_change(cfg_dict: dict, old_steps: int, new_steps: int, at_step: int) -> str:
    """'' when the learning rate of every step is the same for both lengths, else what changes."""
    opt, train_cfg = cfg_dict["opt"], cfg_dict["train"]
    if opt["schedule"] == "constant" or cfg_dict["model"]["family"] == "node2vec":
        return ""
    stage1 = train_cfg["stage1_steps"] if train_cfg["recipe"] == "staged" else 0
    if at_step < stage1:
        stage1 = 0  # still in the edge stage: its schedule does not depend on train.steps, stage 2's does
    factor = lambda total: float(train.lr_at(at_step - stage1, 1.0, total - stage1, opt["warmup_steps"],
                                              opt["schedule"], opt["final_lr_fraction"]))
    return (f"opt.schedule={opt['schedule']} decays over train.steps, so extending {old_steps} -> {new_steps} steps "
            f"re-stretches it: the lr at step {at_step} goes from {factor(old_steps):.3f}x to {factor(new_steps):.3f}x "
            f"its peak and decays to {opt['final_lr_fraction']:g}x at step {new_steps}; the result differs from a "
            f"run trained for {new_steps} steps from the start (opt.schedule=constant extends exactly)")
# A run may resume on another device count (the sweep is re-padded) or vmap group (the same state shapes).
ELASTIC_KEYS = ("mesh.devices", "sweep.vmap_group")


def run(cfg, workdir, resume=False, progress: bool = True, stream=None) -> dict:
    """Trains the whole sweep of `cfg` into `workdir`; returns the summary.

    resume: False (the workdir must not hold a run), True (continue the run there) or
    "auto" (continue if the workdir holds a run of this config, else start).
    """
    if resume not in RESUME_MODES:
        raise UserError(f"--resume={resume!r}: expected true, false or auto")
    workdir = pathlib.Path(workdir)
    cfg_dict = json.loads(json.dumps(config_lib.to_dict(cfg)))
    exps, program, data, meta = train.build(cfg)  # validates before touching the workdir
    train.check_memory(cfg, program, data, len(exps))
    with _stop_requests() as stop, rundir.lock(workdir):
        try:
            if resume and distributed.is_writer():
                extend_run(workdir, cfg_dict, stream)  # a larger train.steps: continue a finished run
            start = _prepare_workdir(workdir, cfg_dict, resume)
            if start is None and distributed.is_writer():
                rundir.write_json_atomic(workdir / rundir.CONFIG, cfg_dict)
                rundir.write_json_atomic(workdir / rundir.META, meta)
                (workdir / rundir.METRICS).write_text("")
            return _train(cfg, workdir, exps, program, data, meta, start, progress, stream, stop)
        except OSError as err:  # disk full, permissions: complete checkpoints stay usable
            raise UserError(
                f"cannot write {err.filename or workdir}: {err.strerror or err}; complete checkpoints "
                f"{checkpoint.complete_steps(workdir)} are kept: fix it and rerun with --resume"
            ) from None


class Interrupted(UserError):
    """SIGTERM / SIGINT arrived: the state was checkpointed and the run can be resumed."""


@contextlib.contextmanager
def _stop_requests():
    """SIGTERM and SIGINT set a flag instead of killing; the loop checkpoints and stops."""
    requested = []
    handler = lambda signum, frame: requested.append(signum)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train(cfg, workdir, exps, program, data, meta, start, progress, stream, stop):
    total, every = cfg.train.steps, cfg.eval.every
    ckpt_every = cfg.ckpt.every or every
    mesh = distributed.sweep_mesh(cfg.mesh.devices)
    size = distributed.padded_size(len(exps), mesh)
    inputs = distributed.pad_sweep((sweep.seed_keys(exps), sweep.hparam_arrays(exps), data), size)
    keys, hp, data = distributed.place(inputs, mesh)
    # The state comes out split over the mesh like the inputs, so chunk 1 and chunk 2 see the
    # same shardings and the chunk is compiled once.
    init = jax.jit(jax.vmap(program.init), out_shardings=distributed.sweep_sharding(mesh))
    group = sweep.vmap_group(cfg, size, jax.default_backend(), 1 if mesh is None else mesh.size)
    evaluate = jax.jit(sweep.over_experiments(program.evaluate, group, size))
    chunk_fns = {}  # chunk length -> compiled chunk (one length in the common case)
    writer = metrics.MetricsWriter(workdir / rundir.METRICS) if distributed.is_writer() else None
    # TensorBoard / W&B (off by default) get the same records as metrics.jsonl.
    extra_writers = writers_lib.make_writers(cfg.logging, workdir, meta, start) if writer else []

    try:
        with checkpoint.Checkpointer(workdir, max_to_keep=cfg.ckpt.max_to_keep) as ckpt:
            state, step = _initial_state(ckpt, workdir, start, init, keys, hp, data, stream, mesh, len(exps))
            if writer:
                writer.truncate_after(step)
            bar = metrics.Progress(total, step, stream) if progress and writer else None
            headline = metrics.HeadlineFigure([e.coords() for e in exps])
            since_eval = StepMetricSums.restore(_saved_extra(workdir, step), size)
            t0 = time.perf_counter()
            chunk_len = _chunk_length(every, ckpt_every)
            while step < total:
                n = min(chunk_len - step % chunk_len, total - step)
                compiles = n not in chunk_fns
                if compiles:
                    chunk_fns[n] = jit_chunk(program, n, jnp.sum, group, size)
                t_chunk = time.perf_counter()
                state, step_sums = chunk_fns[n](state, hp, data)
                since_eval.add(distributed.to_host(step_sums), n)  # waits for the chunk
                if bar and not compiles:  # the rate counts compiled steps only, never compilation
                    bar.count(n, time.perf_counter() - t_chunk)
                step += n
                if step % every == 0 or step == total:
                    evaluated = {**distributed.to_host(evaluate(state, hp, data)), **since_eval.means()}
                    since_eval.reset()
                    record = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 3),
                              "experiments": metrics.experiment_records(evaluated, exps)}
                    if writer:
                        writer.write(record)
                    for w in extra_writers:
                        w.write(record)
                    if bar:
                        bar.update(step, headline.update(record))
                if step % ckpt_every == 0 or step == total or stop:
                    ckpt.save(step, state, {"step": step, "since_eval": since_eval.to_json(len(exps))})
                if stop and step < total:
                    ckpt.wait()
                    raise Interrupted(
                        f"stopped by signal {stop[0]} at step {step}/{total}; checkpoint saved. "
                        f"Resume with the same command and --resume (workdir {workdir})"
                    )
            ckpt.wait()
    finally:  # stopped or failed runs close their TensorBoard / W&B runs too
        for w in extra_writers:
            w.close()
    summary = metrics.build_summary(meta, metrics.read_metrics(workdir / rundir.METRICS))
    if writer:
        metrics.write_summary(workdir, summary)
    return summary


def _initial_state(ckpt, workdir, start, init, keys, hp, data, stream, mesh, num_experiments):
    """A fresh state, or the newest readable checkpoint at or before `start` (older ones are tried
    when the newest is damaged; every step lost that way is recomputed identically). A checkpoint
    written on another device count is restored onto this mesh and re-padded for it."""
    if start is None:
        return init(keys, hp, data), 0
    shapes = jax.eval_shape(init, keys, hp, data)
    size = jax.tree_util.tree_leaves(shapes)[0].shape[0]
    for step in reversed([s for s in checkpoint.complete_steps(workdir) if s <= start]):
        try:
            target = distributed.restore_target(shapes, checkpoint.saved_sweep_size(workdir, step), mesh)
            state, extra = ckpt.restore(step, target)
        except CheckpointError as err:
            print(f"geomem: warning: {err}; trying an older checkpoint", file=stream or sys.stderr)
            continue
        _discard_after(ckpt, workdir, step)
        return distributed.resize_sweep(state, num_experiments, size, mesh), int(extra["step"])
    print("geomem: warning: no readable checkpoint; starting from step 0", file=stream or sys.stderr)
    _discard_after(ckpt, workdir, -1)
    return init(keys, hp, data), 0


def _discard_after(ckpt, workdir, step: int) -> None:
    """Drops the unreadable checkpoints newer than `step`: their steps are recomputed identically."""
    if distributed.is_writer() and checkpoint.discard_steps_after(workdir, step):
        ckpt.reload()


MAX_CHUNK = 100  # steps between host round-trips: a SIGTERM is answered within one chunk


def _chunk_length(every: int, ckpt_every: int) -> int:
    """The largest divisor of gcd(eval.every, ckpt.every) not above MAX_CHUNK (one compile)."""
    g = math.gcd(every, ckpt_every)
    return max(d for d in range(1, min(g, MAX_CHUNK) + 1) if g % d == 0)


def _saved_extra(workdir, step: int) -> dict:
    """The JSON saved with the checkpoint the run resumes from ({} for a fresh start)."""
    if step == 0:
        return {}
    try:
        return checkpoint.read_extra(workdir, step)
    except CheckpointError:
        return {}


class StepMetricSums:
    """Per-experiment sums of the step metrics (train/loss) over the steps since the last
    evaluation. `train/loss` at an evaluation is their mean over exactly those steps, whatever
    the chunk and checkpoint intervals; the sums travel in each checkpoint so that a resumed run
    writes the same numbers as an uninterrupted one."""

    def __init__(self, size: int, steps: int = 0, sums: dict | None = None):
        self.size, self.steps = size, steps
        self.sums = sums or {}

    @classmethod
    def restore(cls, extra: dict, size: int) -> StepMetricSums:
        saved = extra.get("since_eval") or {}
        sums = {name: _padded(values, size) for name, values in saved.get("sums", {}).items()}
        return cls(size, int(saved.get("steps", 0)), sums)

    def add(self, chunk_sums: dict, steps: int) -> None:
        for name, values in chunk_sums.items():
            values = np.asarray(values, np.float64)
            self.sums[name] = self.sums.get(name, np.zeros_like(values)) + values
        self.steps += steps

    def means(self) -> dict:
        return {name: values / max(self.steps, 1) for name, values in self.sums.items()}

    def reset(self) -> None:
        self.steps, self.sums = 0, {}

    def to_json(self, num_experiments: int) -> dict:
        """Only the real experiments (the padding is rebuilt on restore); non-finite -> None."""
        return {"steps": self.steps,
                "sums": {name: [float(v) if np.isfinite(v) else None for v in values[:num_experiments]]
                         for name, values in self.sums.items()}}


def _padded(values: list, size: int) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else v for v in values], np.float64)
    return np.concatenate([arr, np.repeat(arr[-1:], size - len(arr))]) if len(arr) < size else arr[:size]
