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
import fcntl
import json
import math
import pathlib
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp

from geomem_jax import checkpoint, config as config_lib, distributed, metrics, sweep, train
from geomem_jax import writers as writers_lib
from geomem_jax.errors import CheckpointError, UserError


def jit_chunk(program, chunk_steps: int):
    """jit(vmap(scan `chunk_steps` steps)); the state is donated (updated in place)."""

    def run_chunk(state, hp, data):
        state, step_metrics = jax.lax.scan(lambda s, _: program.step(s, hp, data), state, None, length=chunk_steps)
        return state, jax.tree_util.tree_map(jnp.mean, step_metrics)

    return jax.jit(jax.vmap(run_chunk), donate_argnums=0)


@contextlib.contextmanager
def workdir_lock(workdir: pathlib.Path):
    """One process per workdir: a second one refuses instead of corrupting the first."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        handle = open(workdir / ".lock", "w")
    except OSError as err:
        raise UserError(f"--workdir={workdir}: cannot create or write the run directory ({err.strerror or err})") from None
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


def _prepare_workdir(workdir: pathlib.Path, cfg_dict: dict, resume) -> int | None:
    """Checks the workdir against the config; returns the step to resume from, or None to start.

    A run of this config killed before its first checkpoint restarts from step 0 (the run is
    deterministic, so it still ends where an uninterrupted run ends).
    """
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        if resume is True:
            raise UserError(f"--resume: nothing to resume in {workdir} (no config.json)")
        return None
    saved = json.loads(cfg_path.read_text())
    if not resume:
        raise UserError(
            f"--workdir={workdir} already holds a run; pass --resume to continue it or choose another workdir"
        )
    if saved != cfg_dict:
        diff = sorted(_diff_keys(saved, cfg_dict))
        raise UserError(f"--resume: {workdir} holds a run of a different config (differs at: {', '.join(diff)})")
    steps = checkpoint.complete_steps(workdir)
    return steps[-1] if steps else None


def _diff_keys(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
    elif a != b:
        yield prefix.rstrip(".")


RESUME_MODES = (False, True, "auto")


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
    with _stop_requests() as stop, workdir_lock(workdir):
        try:
            start = _prepare_workdir(workdir, cfg_dict, resume)
            if start is None and distributed.is_writer():
                checkpoint.write_json_atomic(workdir / "config.json", cfg_dict)
                checkpoint.write_json_atomic(workdir / "meta.json", meta)
                (workdir / "metrics.jsonl").write_text("")
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
    evaluate = jax.jit(jax.vmap(program.evaluate))
    chunk_fns = {}  # chunk length -> compiled chunk (one length in the common case)
    writer = metrics.MetricsWriter(workdir / "metrics.jsonl") if distributed.is_writer() else None
    # TensorBoard / W&B (off by default) get the same records as metrics.jsonl.
    extra_writers = writers_lib.make_writers(cfg.logging, workdir, meta, start) if writer else []

    try:
        with checkpoint.Checkpointer(workdir, max_to_keep=cfg.ckpt.max_to_keep) as ckpt:
            state, step = _initial_state(ckpt, workdir, start, init, keys, hp, data, stream)
            if writer:
                writer.truncate_after(step)
            bar = metrics.Progress(total, step, stream) if progress and writer else None
            t0 = time.perf_counter()
            chunk_len = _chunk_length(every, ckpt_every)
            while step < total:
                n = min(chunk_len - step % chunk_len, total - step)
                if n not in chunk_fns:
                    chunk_fns[n] = jit_chunk(program, n)
                state, step_metrics = chunk_fns[n](state, hp, data)
                step += n
                if step % every == 0 or step == total:
                    evaluated = distributed.to_host({**evaluate(state, hp, data), **step_metrics})
                    record = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 3),
                              "experiments": metrics.experiment_records(evaluated, exps)}
                    if writer:
                        writer.write(record)
                    for w in extra_writers:
                        w.write(record)
                    if bar:
                        bar.update(step, _best_so_far(record))
                if step % ckpt_every == 0 or step == total or stop:
                    ckpt.save(step, state, {"step": step})
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
    summary = metrics.build_summary(meta, metrics.read_metrics(workdir / "metrics.jsonl"))
    if writer:
        metrics.write_summary(workdir, summary)
    return summary


def _initial_state(ckpt, workdir, start, init, keys, hp, data, stream):
    """A fresh state, or the newest readable checkpoint at or before `start` (older ones are tried
    when the newest is damaged; every step lost that way is recomputed identically)."""
    if start is None:
        return init(keys, hp, data), 0
    target = _abstract_like(jax.eval_shape(init, keys, hp, data), keys)
    for step in reversed([s for s in checkpoint.complete_steps(workdir) if s <= start]):
        try:
            state, extra = ckpt.restore(step, target)
        except CheckpointError as err:
            print(f"geomem: warning: {err}; trying an older checkpoint", file=stream or sys.stderr)
            continue
        _discard_after(ckpt, workdir, step)
        return state, int(extra["step"])
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


def _abstract_like(shapes, like):
    """Abstract target for restoring: shapes/dtypes of a fresh state, placed like the inputs."""
    sharding = getattr(like, "sharding", None)
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def _best_so_far(record) -> dict:
    out = {}
    for name in ("test/first_token", "test/exact_match", "edge/recall_at_degree", "edge/recall_at_5"):
        vals = [e.get(name) for e in record["experiments"] if e.get(name) is not None]
        if vals:
            out[name.split("/")[-1]] = max(vals)
    return out
