"""The sweep axis on a device mesh, and multi-host start-up. Single device stays the default.

`mesh.devices` = "1" (default), "all", or a number N: the leading sweep axis S of
every input is padded to a multiple of the device count (by repeating the last
experiment) and sharded over a 1-D mesh named "sweep"; outputs of padded
experiments are dropped. Multi-host (TPU pod slices): set GEOMEM_DISTRIBUTED=1 on
every worker; `jax.distributed.initialize()` finds the coordinator on Cloud TPU,
elsewhere it needs JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
Each process materialises only the shards its devices hold; only process 0
writes metrics, the summary and the report; Orbax writes checkpoints collectively.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from geomem_jax.errors import ConfigError, UserError

COORDINATOR_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_TPU_VARS = ("TPU_WORKER_HOSTNAMES", "TPU_ACCELERATOR_TYPE", "CLOUD_TPU_TASK_ID")


def maybe_initialize(environ=os.environ) -> bool:
    """Starts JAX's distributed runtime when GEOMEM_DISTRIBUTED=1; returns whether it did."""
    if environ.get("GEOMEM_DISTRIBUTED", "0") in ("", "0", "false"):
        return False
    on_tpu = any(v in environ for v in _TPU_VARS)
    missing = [v for v in COORDINATOR_VARS if v not in environ]
    if not on_tpu and missing:
        raise UserError(
            "GEOMEM_DISTRIBUTED=1 outside a Cloud TPU VM needs the coordinator variables "
            + ", ".join(COORDINATOR_VARS) + f" (missing: {', '.join(missing)})"
        )
    if on_tpu:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(
            coordinator_address=environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(environ["JAX_NUM_PROCESSES"]),
            process_id=int(environ["JAX_PROCESS_ID"]),
        )
    return True


def num_devices(spec) -> int:
    """How many devices `mesh.devices` asks for ("all", or a positive whole number)."""
    available = jax.device_count()
    text = str(spec).strip().lower()
    if text == "all":
        return available
    try:
        n = int(text)
    except ValueError:
        raise ConfigError("mesh.devices", spec, f"'all' or a whole number in 1..{available}") from None
    if not 1 <= n <= available:
        raise ConfigError("mesh.devices", spec, f"'all' or a whole number in 1..{available} (devices present)")
    return n


def sweep_mesh(spec) -> Mesh | None:
    n = num_devices(spec)
    if n == 1:
        return None
    return Mesh(np.array(jax.devices()[:n]), ("sweep",))


def padded_size(num_experiments: int, mesh: Mesh | None) -> int:
    n = 1 if mesh is None else mesh.size
    return -(-num_experiments // n) * n


def pad_sweep(tree, size: int):
    """Pads the leading axis of every leaf to `size` by repeating the last experiment."""

    def pad(x):
        x = np.asarray(x)
        if x.shape[0] == size:
            return x
        return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)])

    return jax.tree_util.tree_map(pad, tree)


def sweep_sharding(mesh: Mesh | None):
    """Leading axis split over the mesh (None: single device, let jit decide)."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec("sweep"))


def restore_target(shapes, saved_size: int, mesh: Mesh | None):
    """Abstract state for restoring onto `mesh` a checkpoint whose sweep axis has `saved_size` rows
    (padded for the mesh that wrote it, maybe another device count): split over the new mesh when the
    rows divide evenly over it, else replicated on it (`resize_sweep` then re-pads and splits)."""
    if mesh is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    elif saved_size % mesh.size == 0:
        sharding = sweep_sharding(mesh)
    else:
        sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((saved_size, *x.shape[1:]), x.dtype, sharding=sharding), shapes
    )


def resize_sweep(state, num_experiments: int, size: int, mesh: Mesh | None):
    """A restored state padded for `mesh`: its first `num_experiments` rows, then copies of the last
    experiment up to `size` rows (what a run started on this mesh holds), split over the mesh.
    Unchanged when it already has `size` rows (a resume on the device count that wrote it)."""
    leaves = jax.tree_util.tree_leaves(state)
    if not leaves or leaves[0].shape[0] == size:
        return state

    def resize(x):
        real = x[:num_experiments]
        return jax.numpy.concatenate([real, jax.numpy.repeat(real[-1:], size - num_experiments, axis=0)])

    return jax.jit(lambda tree: jax.tree_util.tree_map(resize, tree), out_shardings=sweep_sharding(mesh))(state)


def place(tree, mesh: Mesh | None):
    """Device arrays; with a mesh, the leading axis is split over it (each process builds its shards)."""
    if mesh is None:
        return jax.tree_util.tree_map(jax.numpy.asarray, tree)
    sharding = sweep_sharding(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree):
    """numpy copy of a (possibly multi-host sharded) tree."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def is_writer() -> bool:
    return jax.process_index() == 0
