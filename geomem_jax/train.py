"""In-weights training of sequence models: one pure program per experiment, vmapped over the sweep.

`make_train(cfg)` returns the Program (init / step / evaluate) of one experiment and
the stacked per-experiment inputs; `geomem_jax.loop.run` drives it in chunks.
Static structure (shapes, depth, vocabulary, steps, recipe) is closed over; the
seed key, lr, weight decay, init scale and dropout rate are traced, so a whole
sweep is one compiled program.

The parts live in their own modules, re-exported here: `sequence_model` (flax module, tables,
optimiser, train state), `batches` (token tables, dims, batch layouts), `sequence_program` and
`in_context_program` (loss, step, evaluation), `memory` (the footprint check).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from geomem_jax import config, graphs, sweep
from geomem_jax.batches import (
    Dims,
    _draw_by_kind,
    build_data,
    build_graphs,
    by_kind_batch,
    padded_batch,
    program_data,
)
from geomem_jax.errors import ConfigError
from geomem_jax.in_context_program import (
    IN_CONTEXT_EVAL_ROWS,
    _in_context_first_decision,
    evaluate_in_context,
    in_context_dims,
    make_in_context_program,
)
from geomem_jax.memory import check_memory, memory_per_experiment, step_footprint
from geomem_jax.sequence_model import build_model, lr_at, sequence_net, table_paths
from geomem_jax.sequence_program import _weighted_ce, by_kind_loss, evaluate_sequence, make_sequence_program

__all__ = [
    "IN_CONTEXT_EVAL_ROWS", "Dims", "_draw_by_kind", "_in_context_first_decision", "_weighted_ce", "build",
    "build_data", "build_graphs", "build_model", "by_kind_batch", "by_kind_loss", "check_memory",
    "evaluate_in_context", "evaluate_sequence", "in_context_dims", "lr_at", "make_in_context_program",
    "make_sequence_program", "make_train", "memory_per_experiment", "padded_batch", "program_data",
    "sequence_net", "step_footprint", "table_paths",
]

# ----------------------------------------------------------------------------- whole runs


def build(cfg):
    """Everything static about a run: experiments, graphs, program, stacked data, meta."""
    config.check_config(cfg)
    exps = sweep.experiments(cfg)
    graph_list = build_graphs(cfg)
    if cfg.model.family == "node2vec":
        from geomem_jax.models import node2vec

        program, data, paths = node2vec.program_for_config(cfg, graph_list, exps)
    elif cfg.task.mode == "in_context":
        dims, num_values = in_context_dims(cfg)
        model = build_model(cfg.model, dims.vocab_size, dims.seq_len)
        use_dropout = any(e.hparams["dropout"] > 0 for e in exps)
        program = make_in_context_program(cfg, model, dims, num_values, use_dropout)
        data, paths = {"dummy": np.zeros((len(exps),), np.float32)}, table_paths(cfg.model)
    else:
        stacked, dims = build_data(cfg, graph_list, exps)  # task errors first: they are the more specific
        if cfg.train.recipe in ("staged", "mixed") and not dims.has_paths:
            raise ConfigError("train.recipe", cfg.train.recipe, "edges (this graph has no training paths)")
        model = build_model(cfg.model, dims.vocab_size, dims.seq_len + dims.target_len)
        use_dropout = any(e.hparams["dropout"] > 0 for e in exps)
        program = make_sequence_program(cfg, model, dims, use_dropout)
        data, paths = program_data(stacked), table_paths(cfg.model)
    meta = {
        "experiments": [
            {
                "index": e.index, "seed": e.seed, "graph_index": e.graph_index,
                "graph": graphs.graph_summary(graph_list[e.graph_index]),
                "graph_spec": dict(graph_list[e.graph_index].spec),
                "hparams": e.hparams, "coords": e.coords(),
                "edges": cfg.graph.edges, "self_edges": bool(cfg.graph.self_edges),
            }
            for e in exps
        ],
        "model": {"family": cfg.model.family, **paths},
        "sweep_keys": ["graph", *sweep.HPARAMS, "seed"],
    }
    return exps, program, data, meta


def make_train(cfg):
    """A pure `train(key, hp, data) -> (state, metrics)` of the whole run, and its stacked inputs.

        train, (keys_S, hp_S, data_S) = make_train(cfg)
        state_S, metrics_S = jax.jit(jax.vmap(train))(keys_S, hp_S, data_S)

    The same computation as `geomem train` (which runs it in chunks to write metrics and
    checkpoints on the way); metrics are the final evaluation plus the mean training loss
    over the steps since the previous evaluation (the host loop evaluates every `eval.every`
    steps and at the end).
    """
    exps, program, data, _ = build(cfg)
    steps = cfg.train.steps
    tail = steps - cfg.eval.every * ((steps - 1) // cfg.eval.every)

    def train(key, hp, data):
        state = program.init(key, hp, data)
        state, step_metrics = jax.lax.scan(lambda s, _: program.step(s, hp, data), state, None, length=steps)
        last = jax.tree_util.tree_map(lambda m: jnp.mean(m[-tail:]), step_metrics)
        return state, {**program.evaluate(state, hp, data), **last}

    return train, (sweep.seed_keys(exps), sweep.hparam_arrays(exps), data)

