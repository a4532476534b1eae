"""Orbax checkpoints of the stacked sweep state. The only module that imports orbax.

Layout: <workdir>/checkpoints/<step>/{state,extra}. Orbax writes each step into a
temporary directory and renames it when complete, so a crash leaves either a whole
step or a tmp directory that readers ignore (and report).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import re

import numpy as np

from geomem_jax.errors import CheckpointError
from geomem_jax.rundir import CHECKPOINTS as CKPT_DIR, META, read_json

_TMP_RE = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")


def _ckpt_root(workdir) -> pathlib.Path:
    return pathlib.Path(workdir).absolute() / CKPT_DIR


def complete_steps(workdir) -> list[int]:
    """Steps whose checkpoint was committed (Orbax renamed its tmp dir), ascending."""
    root = _ckpt_root(workdir)
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        if child.is_dir() and child.name.isdigit() and _is_whole(child):
            steps.append(int(child.name))
    return sorted(steps)


def _is_whole(step_dir: pathlib.Path) -> bool:
    """Committed and not half-deleted: Orbax's step metadata and the state's own manifest exist."""
    state = step_dir / "state"
    return (step_dir / "_CHECKPOINT_METADATA").is_file() and (state / "_METADATA").is_file()


def incomplete_steps(workdir) -> list[int]:
    """Steps whose checkpoint was being written when the process died."""
    root = _ckpt_root(workdir)
    if not root.is_dir():
        return []
    steps = set()
    for child in root.iterdir():
        match = _TMP_RE.match(child.name)
        if match:
            steps.add(int(match.group(1)))
        elif child.is_dir() and child.name.isdigit() and not _is_whole(child):
            steps.add(int(child.name))
    return sorted(steps)


def discard_steps_after(workdir, step: int) -> list[int]:
    """Removes the step directories newer than `step` (damaged ones a resume fell back past;
    their steps are recomputed identically). Returns the removed steps."""
    import shutil

    root, removed = _ckpt_root(workdir), []
    for child in root.iterdir() if root.is_dir() else ():
        if child.is_dir() and child.name.isdigit() and int(child.name) > step:
            shutil.rmtree(child)
            removed.append(int(child.name))
    return sorted(removed)


class Checkpointer:
    """Saves the stacked train state every chunk; a context manager that waits on exit."""

    def __init__(self, workdir, max_to_keep: int | None = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._root = _ckpt_root(workdir)
        self._manager = ocp.CheckpointManager(
            self._root, options=options, item_names=("state", "extra")
        )
        self._writing: int | None = None  # the step whose background write may still fail
        _quiet_background_save_failures()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save(self, step: int, state, extra: dict) -> None:
        """Starts writing `step` in the background (after the previous write has finished)."""
        ocp = self._ocp
        with self._storage_errors():
            self._manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), extra=ocp.args.JsonSave(extra)
                ),
                force=True,
            )
        self._writing = int(step)

    def reload(self) -> None:
        """Re-reads the step directories (after `discard_steps_after`)."""
        self._manager.reload()

    def wait(self) -> None:
        with self._storage_errors():
            self._manager.wait_until_finished()

    @contextlib.contextmanager
    def _storage_errors(self):
        """A failed checkpoint write (disk full, permissions) surfaces as one OSError naming the
        step directory, however deep in Orbax's threads it happened; earlier steps stay whole."""
        try:
            yield
        except Exception as err:
            code = _os_error_code(err)
            if code is None:
                raise
            where = self._root / str(self._writing) if self._writing is not None else self._root
            raise OSError(code, os.strerror(code), f"checkpoint {where}") from None

    def restore(self, step: int, abstract_state):
        """Restores the state with the structure, shapes and dtypes of `abstract_state`."""
        ocp = self._ocp
        try:
            restored = self._manager.restore(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), extra=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:  # truncated / deleted files, a different structure
            raise CheckpointError(f"{self._root / str(step)}: checkpoint cannot be read ({_brief(err)})") from None
        return restored["state"], restored["extra"]

    def close(self) -> None:
        self.wait()
        self._manager.close()


_TENSORSTORE_ERRNO = re.compile(r"os_error_code=\\?'(\d+)\\?'")


def _os_error_code(err: BaseException | None) -> int | None:
    """The errno of a storage failure: an OSError (Orbax's own writes) or TensorStore's
    ValueError('RESOURCE_EXHAUSTED: ... [os_error_code='28']'), also when re-raised by another."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno is not None:
            return err.errno
        match = _TENSORSTORE_ERRNO.search(str(err))
        if match:
            return int(match.group(1))
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


class _DropOrbaxTracebacks(logging.Filter):
    """Orbax logs each failed background write with a traceback, once per thread; the failure
    itself reaches the caller (Checkpointer.wait) and is reported there in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_orbax = "orbax" in record.pathname or "orbax" in str(record.msg)  # asyncio names the task's coroutine
        return not (record.exc_info and from_orbax and record.levelno >= logging.ERROR)


def _quiet_background_save_failures() -> None:
    for name in ("absl", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropOrbaxTracebacks) for f in logger.filters):
            logger.addFilter(_DropOrbaxTracebacks())


def _brief(err: Exception) -> str:
    """First line of a storage error (TensorStore errors embed whole specs and tracebacks)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:200]}"


def _latest_or(workdir, step: int | None) -> int:
    steps = complete_steps(workdir)
    if not steps:
        half = incomplete_steps(workdir)
        detail = f" (half-written: {half})" if half else ""
        raise CheckpointError(f"{workdir}: no complete checkpoint under {CKPT_DIR}/{detail}")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise CheckpointError(f"{workdir}: no checkpoint at step {step}; available steps: {steps}")
    return step


def restore_numpy(workdir, step: int | None = None) -> dict:
    """The saved state as nested dicts of numpy arrays (leading sweep axis S).

    Needs no model code: the structure comes from the checkpoint's own metadata.
    """
    import orbax.checkpoint as ocp

    step = _latest_or(workdir, step)
    path = _ckpt_root(workdir) / str(step) / "state"
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax warns about the composite's item metadata
    try:
        with ocp.PyTreeCheckpointer() as ckptr:
            restore_args = _numpy_restore_args(ocp, _tree_metadata(ckptr, path))
            state = ckptr.restore(path, args=ocp.args.PyTreeRestore(restore_args=restore_args))
    except CheckpointError:
        raise
    except Exception as err:  # corrupted or truncated files
        raise CheckpointError(f"{path}: checkpoint cannot be read ({_brief(err)})") from None
    return _to_numpy(state)


def _tree_metadata(ckptr, path):
    """The saved tree's structure with one ArrayMetadata (shape, dtype) per leaf."""
    meta = ckptr.metadata(path)
    return meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta.tree


def saved_sweep_size(workdir, step: int) -> int:
    """Rows of the sweep axis saved at `step`: the experiments, padded for the mesh that wrote them."""
    import jax
    import orbax.checkpoint as ocp

    path = _ckpt_root(workdir) / str(step) / "state"
    try:
        with ocp.PyTreeCheckpointer() as ckptr:
            leaves = jax.tree_util.tree_leaves(_tree_metadata(ckptr, path))
        return int(leaves[0].shape[0])
    except Exception as err:  # missing or damaged metadata
        raise CheckpointError(f"{path}: checkpoint cannot be read ({_brief(err)})") from None


def _numpy_restore_args(ocp, tree):
    if isinstance(tree, dict):
        return {k: _numpy_restore_args(ocp, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_numpy_restore_args(ocp, v) for v in tree)
    return ocp.RestoreArgs(restore_type=np.ndarray)


def _to_numpy(tree):
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_numpy(v) for v in tree)
    return np.asarray(tree)


def read_extra(workdir, step: int) -> dict:
    """The JSON saved next to the state at `step` (Orbax's JsonSave names it `metadata`; the item
    directory may also hold Orbax's own files such as commit_success.txt)."""
    path = _ckpt_root(workdir) / str(step) / "extra"
    named = path / "metadata"
    others = sorted(p for p in path.glob("*") if p != named) if path.is_dir() else []
    for candidate in (named, *others):
        try:
            value = json.loads(candidate.read_text())
        except (OSError, ValueError):  # absent, Orbax's plain-text marker, or damaged
            continue
        if isinstance(value, dict):
            return value
    raise CheckpointError(f"{path}: missing checkpoint metadata")


def load_meta(workdir) -> dict:
    path = pathlib.Path(workdir) / META
    if not path.is_file():
        raise CheckpointError(f"{workdir}: not a geomem run directory (no {META})")
    return read_json(path)
