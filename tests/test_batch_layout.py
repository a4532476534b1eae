"""The by-kind batch layout (per-kind sub-batches, logits only at scored positions) against the
release's padded layout: same rows, same loss and gradients, the uniform mixture's Binomial
edge count, exact stratified counts, edge recall with and without top-k hubs, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from conftest import make_tiny_cfg
from geomem_jax import config, evals, sweep, train
from geomem_jax.errors import ConfigError

BATCH = 48


def _setup(extra, layout):
    cfg = make_tiny_cfg(("train.batch_size", str(BATCH)), ("train.batch_layout", layout), *extra)
    exps, _, data, _ = train.build(cfg)
    _, dims = train.build_data(cfg, train.build_graphs(cfg), exps)
    model = train.build_model(cfg.model, dims.vocab_size, dims.seq_len + dims.target_len)
    return cfg, dims, model, {k: jnp.asarray(v[0]) for k, v in data.items()}


def _losses_and_grads(extra, key, step: int = 0):
    """(loss, grads) of one batch drawn with `key`, in the padded and in the by-kind layout."""
    return [_loss_and_grads(extra, layout, key, step) for layout in ("padded", "by_kind")]


def _loss_and_grads(extra, layout, key, step: int):
    """(loss, grads) of one batch drawn with `key` in `layout`."""
    cfg, dims, model, data = _setup(extra, layout)
    program = train.make_sequence_program(cfg, model, dims, use_dropout=False)
    hp = {k: jnp.float32(v[0]) for k, v in sweep.hparam_arrays(sweep.experiments(cfg)).items()}
    hp["init_scale"] = jnp.float32(0.5)  # a spread of logits: a wrong position or row shows
    state = program.init(jax.random.PRNGKey(3), hp, data)
    stage1 = cfg.train.stage1_steps if cfg.train.recipe == "staged" else 0
    step = jnp.int32(step)
    if layout == "padded":
        inputs, targets, weights = train.padded_batch(key, step, cfg, stage1, data)
        loss_fn = lambda p: train._weighted_ce(model.apply({"params": p}, inputs), targets, weights,
                                               data["vocab_mask"])
    else:
        net = train.sequence_net(model, cfg.model)
        batch = train.by_kind_batch(key, step, cfg, dims, stage1, data)
        shared = int(cfg.task.task_tokens)  # [EDGE] once for all edge rows (Transformer)
        loss_fn = lambda p: train.by_kind_loss(net, p, batch, dims.prefix_len - 1, dims.target_len,
                                               data["vocab_mask"], shared=shared)
    return jax.jit(jax.value_and_grad(loss_fn))(state["params"])


# Every task option, both model families, tied and untied, every recipe: combined so that the
# suite compiles 7 programs per layout instead of one per option.
VARIANTS = {
    "full_path": (),
    "hardest_token/no_task_token": (("task.target", "hardest_token"), ("task.task_tokens", "false")),
    "pauses_in_edge_prefixes/teacherless": (("task.pause_in_edges", "true"), ("task.pause_tokens", "2"),
                                            ("task.teacherless", "true")),
    "root_in_prefix/reversed/untied": (("task.root_in_prefix", "true"), ("task.reverse_path", "true"),
                                       ("model.tied", "false")),
    "tree_star/staged_stage2": (("graph.family", "tree_star"), ("graph.degree", "3"), ("graph.branching", "2"),
                                ("train.recipe", "staged"), ("train.stage1_steps", "10")),
    "mamba/untied": (("model.family", "mamba"), ("model.tied", "false")),
    "edges_recipe/full_batch/mamba_tied": (("train.recipe", "edges"), ("train.full_batch", "true"),
                                           ("model.family", "mamba")),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_by_kind_loss_and_gradients_equal_the_padded_layout(variant):
    """The same rows (the uniform draw is shared), the same scored tokens: loss and every gradient agree."""
    step = 11 if "staged_stage2" in variant else 0  # stage 1 ends at step 10
    (loss_pad, g_pad), (loss_kind, g_kind) = _losses_and_grads(VARIANTS[variant], jax.random.PRNGKey(11), step)
    np.testing.assert_allclose(loss_kind, loss_pad, rtol=2e-6)
    flat_pad = dict(jax.tree_util.tree_leaves_with_path(g_pad))
    for path, g in jax.tree_util.tree_leaves_with_path(g_kind):
        if "['key']['bias']" in jax.tree_util.keystr(path):
            continue  # exactly 0 in theory (softmax ignores a shift shared by all keys): float noise only
        scale = float(jnp.abs(flat_pad[path]).max()) + 1e-12
        # float32 sums in another order: ~1e-4 of the leaf's largest entry; a wrong row or position is O(1)
        np.testing.assert_allclose(g, flat_pad[path], atol=1e-3 * scale, rtol=1e-3, err_msg=jax.tree_util.keystr(path))


def _draws(extra, keys):
    cfg, dims, _, data = _setup(extra, "by_kind")
    draw = jax.jit(jax.vmap(lambda k: train._draw_by_kind(k, jnp.int32(0), cfg, dims, 0, data)))
    return cfg, dims, data, [np.asarray(x) for x in draw(keys)]


def test_uniform_mixing_edge_count_is_the_binomial_of_a_uniform_draw():
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    _, dims, data, (edge_idx, edge_valid, path_idx, path_valid) = _draws((), keys)
    e, p = int(data["edge_rows"]), int(data["train_path_rows"])
    n_edge = edge_valid.sum(1)
    assert (n_edge + path_valid.sum(1) == BATCH).all()  # no row lost to the slots' capacity
    assert dims.edge_rows < BATCH + 1 and dims.path_rows < BATCH  # static slots, mean + 6σ
    binom = stats.binom(BATCH, e / (e + p))
    lo, hi = int(binom.ppf(0.005)), int(binom.ppf(0.995))
    observed = np.array([(n_edge < lo).sum(), *[(n_edge == k).sum() for k in range(lo, hi + 1)], (n_edge > hi).sum()])
    expected = np.array([binom.cdf(lo - 1), *binom.pmf(np.arange(lo, hi + 1)), binom.sf(hi)]) * len(n_edge)
    keep = expected > 0  # the upper tail is empty when hi is the whole batch
    assert stats.chisquare(observed[keep], expected[keep]).pvalue > 1e-3
    # every row of both kinds is drawn, and only real rows are
    assert set(edge_idx[edge_valid].tolist()) == set(range(e))
    assert set(path_idx[path_valid].tolist()) == set(range(p))


def test_stratified_mixing_draws_the_exact_proportional_count():
    keys = jax.random.split(jax.random.PRNGKey(1), 500)
    _, dims, data, (edge_idx, edge_valid, path_idx, path_valid) = _draws((("train.mixing", "stratified"),), keys)
    e, p = int(data["edge_rows"]), int(data["train_path_rows"])
    want = int(np.round(BATCH * e / (e + p)))
    assert (edge_valid.sum(1) == want).all() and (path_valid.sum(1) == BATCH - want).all()
    assert (dims.edge_rows, dims.path_rows) == (want, BATCH - want)  # no slack
    assert set(edge_idx[edge_valid].tolist()) == set(range(e)) and set(path_idx[path_valid].tolist()) == set(range(p))


def test_a_whole_by_kind_run_follows_the_padded_trajectory():
    """make_train end to end: the by-kind layout draws the padded layout's rows, so the runs agree."""
    finals = []
    for layout in ("padded", "by_kind"):
        cfg = make_tiny_cfg(("train.batch_layout", layout), ("train.steps", "20"), ("eval.every", "20"))
        run, (keys, hp, data) = train.make_train(cfg)
        finals.append(jax.jit(jax.vmap(run))(keys, hp, data))
    (state_pad, m_pad), (state_kind, m_kind) = finals
    for a, b in zip(jax.tree_util.tree_leaves(state_kind["params"]), jax.tree_util.tree_leaves(state_pad["params"])):
        np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-3)
    for name in ("test/first_token", "test/exact_match", "edge/recall_at_degree"):
        np.testing.assert_allclose(m_kind[name], m_pad[name], atol=1 / 16)
    np.testing.assert_allclose(m_kind["train/loss"], m_pad["train/loss"], rtol=1e-4)


def _recall_reference(model, params, data):
    """Numpy: full logits of every node's edge query; a successor counts if fewer than k_u logits beat it."""
    logits = np.asarray(model.apply({"params": params}, data["edge_prefix"])[:, -1])
    logits = np.where(np.asarray(data["vocab_mask"]), logits, -1e9)
    src, dst, mask = (np.asarray(data[k]) for k in ("recall_src", "recall_dst", "recall_mask"))
    degree = np.asarray(data["out_degree"])
    hits = np.zeros(len(degree))
    for u, v in zip(src[mask], dst[mask]):
        hits[u] += (logits[u] > logits[u, v]).sum() < degree[u]
    has = (degree > 0) & np.asarray(data["node_mask"])
    return float(np.mean(hits[has] / degree[has]))


@pytest.mark.parametrize("degree", [5, 20])  # 20 > TOPK_CAP: the root's row is sorted apart
def test_edge_recall_equals_the_full_logits_rank_count_after_training(degree):
    cfg = make_tiny_cfg(("graph.degree", str(degree)), ("graph.path_length", "3"), ("train.recipe", "edges"),
                        ("train.batch_size", "64"), ("opt.lr", "1e-2"))
    exps, program, data, _ = train.build(cfg)
    _, dims = train.build_data(cfg, train.build_graphs(cfg), exps)
    model = train.build_model(cfg.model, dims.vocab_size, dims.seq_len + dims.target_len)
    d1 = {k: jnp.asarray(v[0]) for k, v in data.items()}
    assert (d1["hub_nodes"].shape[0] > 0) == (degree > evals.TOPK_CAP)
    hp = {k: jnp.float32(v[0]) for k, v in sweep.hparam_arrays(exps).items()}
    state = program.init(jax.random.PRNGKey(0), hp, d1)
    step = jax.jit(lambda s: program.step(s, hp, d1)[0])
    for _ in range(60):  # partly trained: some successors in the top k, some not
        state = step(state)
    net = train.sequence_net(model, cfg.model)
    recall, _ = evals.edge_recall(net, state["params"], d1, chunk=7, shared=1)
    want = _recall_reference(model, state["params"], d1)
    assert 0.05 < want < 0.95
    assert float(recall) == pytest.approx(want, abs=1e-6)  # float32 mean; one node moves it by >= 1/N


@pytest.mark.parametrize("overrides, field", [
    ((("train.batch_layout", "rows"),), "train.batch_layout"),
    ((("train.mixing", "random"),), "train.mixing"),
    ((("train.batch_size", "1"),), "train.batch_size"),
    ((("graph.family", "cycle"), ("graph.num_nodes", "6")), "train.recipe"),  # mixed without paths
])
def test_bad_layout_input_names_the_field(overrides, field):
    cfg = make_tiny_cfg(*overrides)
    with pytest.raises(ConfigError) as err:
        config.check_config(cfg)
        train.build(cfg)
    assert err.value.field == field
    assert "one of" in str(err.value) or "integer" in str(err.value) or "edges" in str(err.value)
