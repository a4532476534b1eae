"""The in-weights program of one experiment (Transformer or Mamba): its loss, its init / step
closures, and its evaluation at module level (`evaluate_sequence`, callable on any params)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from geomem_jax import evals, metric_names as names, tasks
from geomem_jax.batches import Dims, by_kind_batch, padded_batch
from geomem_jax.program import Program
from geomem_jax.sequence_model import apply_step, frozen_table_key, init_state, leaf, lr_at, sequence_net, table_paths


def _weighted_ce(logits_BxTxV, targets_BxT, weights_BxT, vocab_mask_V):
    nll_BxT = evals.nll(evals.masked(logits_BxTxV, vocab_mask_V), targets_BxT)
    return jnp.sum(nll_BxT * weights_BxT) / jnp.maximum(jnp.sum(weights_BxT), 1.0)


def by_kind_loss(net: evals.Net, params, batch: dict, first: int, count: int, vocab_mask_V, hp=None, key=None,
                 shared: int = 0):
    """Mean NLL over the scored tokens of both sub-batches: the edge queries' last position and the
    path rows' positions first .. first+count-1; only those positions are unembedded. The first
    `shared` edge-query tokens (the [EDGE] task token, the same in every row) run once for all
    rows (without dropout: a shared position would share its dropout mask)."""
    k_edge, k_path = jax.random.split(key) if key is not None else (None, None)
    if key is None:
        h_ExD = evals.last_hidden(net, params, batch["edge_tokens"], shared)
    else:
        h_ExD = net.hidden(params, batch["edge_tokens"], hp, k_edge)[:, -1]
    nll_E = evals.nll(net.logits(params, h_ExD, vocab_mask_V), batch["edge_next"])
    total, scored = jnp.sum(nll_E * batch["edge_weights"]), jnp.sum(batch["edge_weights"])
    if "path_inputs" in batch:
        h_PxLxD = net.hidden(params, batch["path_inputs"], hp, k_path)[:, first:first + count]
        weights_PxL = batch["path_weights"][:, first:first + count]
        nll_PxL = evals.nll(net.logits(params, h_PxLxD, vocab_mask_V), batch["path_targets"][:, first:first + count])
        total, scored = total + jnp.sum(nll_PxL * weights_PxL), scored + jnp.sum(weights_PxL)
    return total / jnp.maximum(scored, 1.0)


def make_sequence_program(cfg, model, dims: Dims, use_dropout: bool) -> Program:
    """init / step / evaluate of one in-weights experiment (Transformer or Mamba)."""
    spec = tasks.task_spec_from_config(cfg.task)
    recipe, steps, layout = cfg.train.recipe, cfg.train.steps, cfg.train.batch_layout
    stage1 = cfg.train.stage1_steps if recipe == "staged" else 0
    emb_paths = table_paths(cfg.model)
    frozen_key = frozen_table_key(cfg.model)
    net = sequence_net(model, cfg.model)
    first, count = dims.prefix_len - 1, dims.target_len  # the scored positions of a path row
    shared = int(spec.task_tokens)  # every edge query starts with [EDGE]

    def init(key, hp, data):
        k_param, k_run = jax.random.split(key)
        return init_state(model, k_param, k_run, dims.seq_len, emb_paths, hp["init_scale"], cfg.opt, frozen_key)

    def lr_of(step, hp):
        schedule = lambda s, peak, total: lr_at(s, peak, total, cfg.opt.warmup_steps, cfg.opt.schedule,
                                                cfg.opt.final_lr_fraction)
        if recipe != "staged":
            return schedule(step, hp["lr"], steps)
        return jnp.where(step >= stage1, schedule(step - stage1, hp["lr"], steps - stage1),
                         schedule(step, cfg.train.stage1_lr, stage1))

    def loss_fn(params, k_batch, k_drop, step, hp, data):
        drop_key = k_drop if use_dropout else None
        if layout == "padded":
            inputs, targets, weights = padded_batch(k_batch, step, cfg, stage1, data)
            out = model.apply({"params": params}, inputs, deterministic=True) if drop_key is None else \
                model.apply({"params": params}, inputs, dropout_rate=hp["dropout"], deterministic=False,
                            rngs={"dropout": drop_key})
            return _weighted_ce(out, targets, weights, data["vocab_mask"])
        batch = by_kind_batch(k_batch, step, cfg, dims, stage1, data)
        return by_kind_loss(net, params, batch, first, count, data["vocab_mask"], hp, drop_key, shared)

    def step_fn(state, hp, data):
        key, k_batch, k_drop = jax.random.split(state["key"], 3)
        step = state["step"]
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], k_batch, k_drop, step, hp, data)
        opt_state = state["opt_state"]
        if recipe == "staged":  # stage 2 starts with a fresh optimiser
            opt_state = jax.tree_util.tree_map(lambda x: jnp.where(step == stage1, jnp.zeros_like(x), x), opt_state)
        new = apply_step(cfg.opt, state, loss, grads, opt_state, lr_of(step, hp), hp["weight_decay"], frozen_key, key)
        return new, {names.TRAIN_LOSS: loss}

    def evaluate(state, hp, data):
        return {"diverged_at": state["diverged_at"], **evaluate_sequence(net, cfg, dims, state["params"], data)}

    return Program(init=init, step=step_fn, evaluate=evaluate)


def _forced_chunk(cfg, dims: Dims) -> int:
    """Teacher-forced chunks unembed rows x count positions: no more logits than a training step has."""
    count = dims.target_len
    step_logits = ((dims.edge_rows + dims.path_rows * count) if cfg.train.batch_layout == "by_kind"
                   else cfg.train.batch_size * dims.seq_len)
    return max(1, min(cfg.eval.row_chunk, step_logits // max(count, 1)))


def evaluate_sequence(net: evals.Net, cfg, dims: Dims, params, data) -> dict:
    """Every evaluation metric of one experiment at `params` (any params tree of `net`'s model):
    greedy decoding and teacher forcing of the test paths, edge recall, geometry."""
    spec = tasks.task_spec_from_config(cfg.task)
    first, count, shared = dims.prefix_len - 1, dims.target_len, int(spec.task_tokens)
    metrics = {}
    if dims.has_paths:
        filler = tasks.special_id(0, "$") + data["num_nodes"] if spec.teacherless else data["pad_id"]
        gen_QxL = evals.map_rows(
            lambda pre: evals.greedy_decode(net, params, pre, count, filler, data["vocab_mask"], spec.teacherless),
            (data["test_prefix"],), cfg.eval.row_chunk)
        root_given = spec.root_in_prefix or spec.target == "hardest_token"
        metrics.update(evals.path_metrics(gen_QxL, data, data["first_index"], root_given, spec.reverse_path))
        metrics.update(evals.forced_metrics(
            net, params, data["test_path_inputs"], data["test_path_targets"], data["test_path_weights"],
            data["test_row_mask"], first, count, data["vocab_mask"], _forced_chunk(cfg, dims)))
    margin_nodes = dims.num_nodes if dims.num_nodes <= evals.LOGIT_MARGIN_MAX_NODES else 0
    metrics[names.RECALL_AT_DEGREE], logits_NxN = evals.edge_recall(net, params, data, cfg.eval.node_chunk,
                                                                    margin_nodes, shared)
    table_VxD = leaf(params, table_paths(cfg.model)["embedding"])
    metrics[names.LEVEL] = evals.geometric_level(table_VxD, data)
    if dims.has_paths:
        metrics[names.LEAF_FIRSTHOP_GAP] = evals.leaf_firsthop_gap(table_VxD, data)
    if "align_eigvecs" in data:  # graphs of <= LOGIT_MARGIN_MAX_NODES nodes (batches.alignment_basis)
        metrics[names.SPECTRAL_ALIGNMENT] = evals.spectral_alignment(
            table_VxD[:dims.num_nodes], data["align_eigvecs"], data["node_mask"], data["align_modes"])
        metrics[names.SPECTRAL_ALIGNMENT_USED_K] = data["align_k"]  # = the analysis's spectral/alignment_k<k>
    if margin_nodes:
        margin = evals.logit_margin(table_VxD[:dims.num_nodes], logits_NxN, data)
        metrics[names.LOGIT_MARGIN], metrics[names.LOGIT_MARGIN_TOP1] = margin
    return metrics
