"""The memory estimate of one experiment, checked before anything compiles (`check_memory`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from geomem_jax import sweep
from geomem_jax.batches import batch_rows

# Floats kept per token and per (layer x width) for the backward pass: Transformer blocks keep
# their LayerNorm, attention and 4x MLP activations; Mamba adds its B x T x E x N scan states.
ACTIVATION_FLOATS = {"transformer": 24, "mamba": 24}
LOGIT_COPIES = 3  # logits, their log-softmax and its gradient live at once


def step_footprint(cfg, data) -> dict:
    """Tokens through the model, unembedded positions, and activation bytes of one training step
    and of the largest evaluation chunk of one experiment (sequence models; data stacked, axis S)."""
    vocab, (rows, seq_len) = data["vocab_mask"].shape[1], data["train_path_inputs"].shape[1:]
    target_len = data["test_targets"].shape[2]
    has_paths = rows > 0 and target_len > 0
    if cfg.train.batch_layout == "padded":
        batch = data["train_inputs"].shape[1] if cfg.train.full_batch else cfg.train.batch_size
        tokens = logit_positions = batch * data["train_inputs"].shape[2]
    else:
        edge_slots, path_slots = batch_rows(cfg.train, np.asarray(data["edge_rows"]),
                                            np.asarray(data["train_path_rows"]), has_paths)
        # the [EDGE] task token that starts every edge query runs once per step (Transformer)
        shared = int(cfg.task.task_tokens and cfg.model.family == "transformer")
        tokens = shared + edge_slots * (data["edge_query"].shape[2] - shared) + path_slots * seq_len
        logit_positions = edge_slots + path_slots * target_len
    per_token = ACTIVATION_FLOATS[cfg.model.family] * cfg.model.width * cfg.model.layers
    if cfg.model.family == "mamba":
        per_token += 3 * cfg.model.expand * cfg.model.d_state * cfg.model.width * cfg.model.layers
    train_bytes = 4 * (tokens * per_token + LOGIT_COPIES * logit_positions * vocab)
    # Evaluation holds one chunk of logits rows (decoding, teacher forcing, edge queries) at a time.
    eval_rows = max(cfg.eval.node_chunk, min(cfg.eval.row_chunk, max(logit_positions // max(target_len, 1), 1))
                    * max(target_len, 1), cfg.eval.row_chunk)
    eval_bytes = 4 * LOGIT_COPIES * eval_rows * vocab
    return {"tokens": tokens, "logit_positions": logit_positions, "train_bytes": train_bytes,
            "eval_bytes": eval_bytes}


def memory_parts(cfg, program, data) -> tuple[int, int]:
    """Estimated peak bytes of one experiment: (held for the whole run: its data, state (params +
    optimiser) and gradients; held while its vmap group computes: the larger of a training step's
    and an evaluation chunk's activations; logits dominate at large vocabularies, and they are
    computed only at the scored positions)."""
    one = lambda x: x[0]
    data_1 = jax.tree_util.tree_map(one, data)
    hp_1 = {k: jnp.float32(1e-3) for k in sweep.HPARAMS}
    state = jax.eval_shape(program.init, jax.ShapeDtypeStruct((2,), jnp.uint32), hp_1, data_1)
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))
    if "train_path_inputs" not in data_1:  # node2vec / in-context: dense N x N (or per-batch) work arrays
        act_bytes = 4 * nbytes(data_1)
    else:
        footprint = step_footprint(cfg, data)
        act_bytes = max(footprint["train_bytes"], footprint["eval_bytes"])
    return int(nbytes(data_1) + nbytes(state) + nbytes(state["params"])), int(act_bytes)


def memory_per_experiment(cfg, program, data) -> int:
    """Estimated peak bytes of one experiment computed alone (`memory_parts` added up)."""
    return sum(memory_parts(cfg, program, data))


def device_memory_bytes() -> int:
    """Memory of one device: the accelerator's limit, or the host's RAM on CPU."""
    import os

    stats = jax.devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _experiments_that_fit(budget: float, resident: int, activations: int, group: int) -> int:
    """The largest n with n * resident + min(n, group) * activations <= budget."""
    if budget < group * (resident + activations):
        return int(budget // (resident + activations))
    return group + int((budget - group * (resident + activations)) // resident)


def check_memory(cfg, program, data, num_experiments: int, available: int | None = None) -> int:
    """Refuses a sweep whose estimated footprint does not fit 90% of a device; returns the estimate."""
    from geomem_jax import distributed
    from geomem_jax.errors import UserError

    resident, activations = memory_parts(cfg, program, data)
    per_exp = resident + activations
    devices = distributed.num_devices(cfg.mesh.devices)
    per_device = -(-num_experiments // devices)
    group = sweep.vmap_group(cfg, per_device, jax.default_backend(), devices)  # activations: one group at a time
    need = per_device * resident + group * activations
    available = available or device_memory_bytes()
    budget = 0.9 * available
    if per_exp > budget:
        raise UserError(
            f"a single experiment needs about {per_exp / 2**20:.0f} MiB but 90% of a device is "
            f"{budget / 2**30:.1f} GiB: use a smaller model (model.width / model.layers), a smaller "
            "train.batch_size or eval.row_chunk / eval.node_chunk, or a larger device")
    if need > budget:
        fit = _experiments_that_fit(budget, resident, activations, group) * devices
        raise UserError(
            f"the sweep needs about {need / 2**30:.1f} GiB per device ({per_device} experiments x "
            f"{resident / 2**20:.0f} MiB + activations of {group} at a time x {activations / 2**20:.0f} MiB) but a "
            f"device has {available / 2**30:.1f} GiB: run at most {fit} experiments (fewer sweep.seeds / sweep.* "
            "values / sweep.graphs), a smaller sweep.vmap_group or train.batch_size, or more devices (mesh.devices)"
        )
    return per_exp
