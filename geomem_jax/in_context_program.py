"""The in-context program (Bachmann & Nagarajan 2024): every batch is a set of fresh, randomly
labelled path-stars; evaluation on one fixed fresh set (`evaluate_in_context`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomem_jax import evals, metric_names as names, tasks
from geomem_jax.batches import Dims
from geomem_jax.program import Program
from geomem_jax.sequence_model import apply_step, frozen_table_key, init_state, lr_at, sequence_net, table_paths

IN_CONTEXT_EVAL_ROWS = 512


def in_context_dims(cfg) -> tuple[Dims, int]:
    """Static dims of the in-context task (Bachmann & Nagarajan 2024) and its node-value count."""
    d, ell = cfg.graph.degree, cfg.graph.path_length
    num_nodes = d * (ell - 1) + 1
    num_values = cfg.task.num_values or 2 * num_nodes
    tasks._check_in_context(d, ell, num_values)
    prefix = tasks.in_context_prefix_length(d, ell)
    dims = Dims(vocab_size=tasks.vocab_size(num_values), seq_len=prefix + ell - 1, prefix_len=prefix,
                target_len=ell, num_nodes=num_values, has_paths=True)
    return dims, num_values


def _in_context_first_decision(first_QxV, inputs_QxT, targets_QxL, degree: int, path_length: int) -> dict:
    """The first decision as a choice between the source's ``degree`` children (chance exactly 1/d
    whether or not the model has learned to read the edge list), and whether the unrestricted
    argmax is one of those children at all (it has learned the in-context lookup of a valid step).

    ``first_QxV``: logits at the position that predicts n1, after the true source.
    """
    children_QxE, from_source_QxE = tasks.in_context_source_children(inputs_QxT, targets_QxL[:, 0],
                                                                     degree, path_length)
    child_logits_QxE = jnp.where(from_source_QxE, jnp.take_along_axis(first_QxV, children_QxE, axis=1), -jnp.inf)
    chosen_Q = jnp.take_along_axis(children_QxE, jnp.argmax(child_logits_QxE, axis=1)[:, None], axis=1)[:, 0]
    free_Q = jnp.argmax(first_QxV, axis=-1)
    return {
        names.FIRST_DECISION: jnp.mean(chosen_Q == targets_QxL[:, 1]),
        names.FIRST_STEP_VALID: jnp.mean(jnp.any(from_source_QxE & (children_QxE == free_Q[:, None]), axis=1)),
    }


def make_in_context_program(cfg, model, dims: Dims, num_values: int, use_dropout: bool) -> Program:
    """Every batch is a set of fresh, randomly labelled path-stars; evaluation on a fixed fresh set.
    Logits only at the path positions (the prefix's edge list carries no loss)."""
    d, ell, teacherless = cfg.graph.degree, cfg.graph.path_length, cfg.task.teacherless
    batch, steps = cfg.train.batch_size, cfg.train.steps
    vocab_mask = jnp.ones((dims.vocab_size,), bool)
    emb_paths = table_paths(cfg.model)
    frozen_key = frozen_table_key(cfg.model)
    net = sequence_net(model, cfg.model)
    hidden, logits = net.hidden, net.logits
    first = dims.prefix_len - 1  # predicts the source; every later position is scored too

    def draw(key, rows):
        return tasks.in_context_batch(key, rows, d, ell, num_values, teacherless)

    def init(key, hp, data):
        k_param, k_run = jax.random.split(key)
        return init_state(model, k_param, k_run, dims.seq_len, emb_paths, hp["init_scale"], cfg.opt, frozen_key)

    def step_fn(state, hp, data):
        key, k_batch, k_drop = jax.random.split(state["key"], 3)
        ex = draw(k_batch, batch)

        def loss_fn(params):
            h_BxLxD = hidden(params, ex.inputs_NxT, hp, k_drop if use_dropout else None)[:, first:]
            nll_BxL = evals.nll(logits(params, h_BxLxD, vocab_mask), ex.targets_NxT[:, first:])
            weights_BxL = ex.weights_NxT[:, first:]
            return jnp.sum(nll_BxL * weights_BxL) / jnp.maximum(jnp.sum(weights_BxL), 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        lr = lr_at(state["step"], hp["lr"], steps, cfg.opt.warmup_steps, cfg.opt.schedule, cfg.opt.final_lr_fraction)
        new = apply_step(cfg.opt, state, loss, grads, state["opt_state"], lr, hp["weight_decay"], frozen_key, key)
        return new, {names.TRAIN_LOSS: loss}

    def evaluate(state, hp, data):
        metrics = evaluate_in_context(net, cfg, dims, num_values, state["params"])
        return {**metrics, "diverged_at": state["diverged_at"]}

    return Program(init=init, step=step_fn, evaluate=evaluate)


def evaluate_in_context(net: evals.Net, cfg, dims: Dims, num_values: int, params) -> dict:
    """Greedy decoding and teacher forcing at `params` on one fixed set of IN_CONTEXT_EVAL_ROWS fresh graphs."""
    d, ell, teacherless = cfg.graph.degree, cfg.graph.path_length, cfg.task.teacherless
    vocab_mask = jnp.ones((dims.vocab_size,), bool)
    # the same fresh graphs at every eval
    ex = tasks.in_context_batch(jax.random.PRNGKey(2**31 - 1), IN_CONTEXT_EVAL_ROWS, d, ell, num_values, teacherless)
    p = dims.prefix_len
    targets_QxL = ex.targets_NxT[:, p - 1:]
    filler = tasks.special_id(num_values, "$" if teacherless else "[PAD]")  # teacherless inputs after the prefix
    gen = evals.greedy_decode(net, params, ex.inputs_NxT[:, :p], ell, filler, vocab_mask, teacherless)
    forced_QxLxV = net.logits(params, net.hidden(params, ex.inputs_NxT)[:, p - 1:], vocab_mask)
    return {
        names.EXACT_MATCH: jnp.mean(jnp.all(gen == targets_QxL, axis=1)),
        names.FIRST_TOKEN: jnp.mean(gen[:, 1] == targets_QxL[:, 1]),
        names.TOKEN: jnp.mean(gen == targets_QxL, axis=0),
        # Teacher-forced: the Clever-Hans signature is high accuracy after n1, chance at n1.
        names.FORCED_TOKEN: jnp.mean(jnp.argmax(forced_QxLxV, axis=-1) == targets_QxL, axis=0),
        **_in_context_first_decision(forced_QxLxV[:, 1], ex.inputs_NxT, targets_QxL, d, ell),
    }
