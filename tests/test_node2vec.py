"""Node2Vec: closed-form gradient, GD step, padding/vmap equivalence, spectral convergence, p/q walks, SGNS."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomem_jax import loop
from geomem_jax.errors import ConfigError
from geomem_jax.models import node2vec as n2v
from geomem_jax.program import initial_state

pytestmark = pytest.mark.usefixtures("optimized_compiles")  # numbers of optimised programs, as users run


def _hp(lr=0.01, wd=0.0, init_scale=1.0):
    return {k: jnp.float32(v) for k, v in
            dict(lr=lr, weight_decay=wd, init_scale=init_scale, dropout=0.0).items()}


def _random_connected(n, extra, seed):
    """A random spanning tree plus `extra` random chords: connected and irregular."""
    rng = np.random.default_rng(seed)
    edges = {(int(rng.integers(0, i)), i) for i in range(1, n)}
    while len(edges) < n - 1 + extra:
        u, v = sorted(rng.choice(n, 2, replace=False).tolist())
        edges.add((u, v))
    return n, np.array(sorted(edges))


def _cycle(n):
    return n, np.array([(i, (i + 1) % n) for i in range(n)])


def _np_walk(graph, self_edges=False):
    n, edges = graph
    a = np.zeros((n, n))
    a[edges[:, 0], edges[:, 1]] = a[edges[:, 1], edges[:, 0]] = 1.0
    if self_edges:
        a += np.eye(n)
    return a, a / a.sum(1, keepdims=True)


def _np_C(V, W, U=None):
    logits = V @ (V if U is None else U).T
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    return (W - P) + (W - P).T, P


def _dev(data):
    return {k: jnp.asarray(v) for k, v in data.items()}


GRAPH7 = _random_connected(7, 4, seed=3)


# ------------------------------------------------------------------------------ data


def test_data_matches_numpy_reference_and_is_padded():
    a, W = _np_walk(GRAPH7)
    d = n2v.node2vec_data(GRAPH7, n_pad=10)
    assert d["walk_NxN"].shape == (10, 10) and d["eigvecs_NxK"].shape == (10, 10)
    np.testing.assert_allclose(d["walk_NxN"][:7, :7], W, atol=1e-7)
    assert not d["walk_NxN"][7:].any() and not d["walk_NxN"][:, 7:].any()
    np.testing.assert_array_equal(d["adj_NxN"][:7, :7], a)
    np.testing.assert_array_equal(d["node_mask_N"], np.arange(10) < 7)
    np.testing.assert_array_equal(d["eig_mask_K"], np.arange(10) < 7)
    np.testing.assert_array_equal(d["deg_N"][:7], a.sum(1))
    # neighbour table = adjacency rows, padded with -1
    for i in range(7):
        row = d["nbrs_NxDmax"][i]
        assert set(row[row >= 0].tolist()) == set(np.flatnonzero(a[i]).tolist())
    assert (d["nbrs_NxDmax"][7:] == -1).all()
    # eigenpairs of M = W + W^T, descending, orthonormal
    M = W + W.T
    ref = np.sort(np.linalg.eigvalsh(M))[::-1]
    np.testing.assert_allclose(d["eigvals_K"][:7], ref, atol=1e-5)
    E = d["eigvecs_NxK"][:7, :7].astype(np.float64)
    np.testing.assert_allclose(E.T @ E, np.eye(7), atol=1e-5)
    np.testing.assert_allclose(M @ E, E * d["eigvals_K"][:7], atol=1e-5)
    assert not d["eigvecs_NxK"][:, 7:].any()
    # num_eig truncates columns; d_max widens the neighbour table
    d3 = n2v.node2vec_data(GRAPH7, n_pad=10, num_eig=3, d_max=6)
    assert d3["eigvecs_NxK"].shape == (10, 3) and d3["nbrs_NxDmax"].shape == (10, 6)


def test_data_self_edges_and_errors():
    a, W = _np_walk(_cycle(5), self_edges=True)
    d = n2v.node2vec_data(_cycle(5), n_pad=5, self_edges=True)
    np.testing.assert_allclose(d["walk_NxN"], W, atol=1e-7)
    np.testing.assert_allclose(np.diag(d["walk_NxN"]), 1 / 3, atol=1e-7)
    assert (d["deg_N"] == 3).all()
    with pytest.raises(ConfigError, match="n_pad"):
        n2v.node2vec_data(_cycle(5), n_pad=4)
    with pytest.raises(ConfigError, match="d_max"):
        n2v.node2vec_data(_cycle(5), n_pad=5, d_max=1)
    # dense full-softmax limit: init refuses N_pad > 5000 before allocating anything
    prog = n2v.make_node2vec_program(dim=2)
    with pytest.raises(ConfigError, match="graph"):
        prog.init(jax.random.PRNGKey(0), _hp(), {"node_mask_N": np.ones(5001, bool)})
    for kw, field in [(dict(objective="cbow"), "objective"), (dict(optimizer="lbfgs"), "optimizer"),
                      (dict(window=0), "window"), (dict(p=0.0), "p/q"), (dict(neg_dist="zipf"), "neg_dist")]:
        with pytest.raises(ConfigError, match=field):
            n2v.make_node2vec_program(**kw)


def test_accepts_dense_adjacency_and_graph_objects():
    a, _ = _np_walk(GRAPH7)

    class G:  # duck-typed geomem_jax.graphs.Graph
        num_nodes = 7
        forward_edges_Ex2 = GRAPH7[1]

    for g in (a, G()):
        np.testing.assert_array_equal(n2v.node2vec_data(g, 7)["adj_NxN"], a)


# ------------------------------------------------------------------------- gradients


def test_grad_of_objective_is_CV_and_untied_grads():
    _, W = _np_walk(GRAPH7)
    d = _dev(n2v.node2vec_data(GRAPH7, n_pad=7))
    rng = np.random.default_rng(0)
    V = rng.normal(size=(7, 5)) * 0.7
    U = rng.normal(size=(7, 5)) * 0.7
    C, P = _np_C(V, W)
    g = jax.grad(n2v.objective)(jnp.float32(V), d["walk_NxN"], d["node_mask_N"])
    np.testing.assert_allclose(g, C @ V, atol=1e-4)
    np.testing.assert_allclose(n2v.node2vec_gradient(jnp.float32(V), d["walk_NxN"], d["node_mask_N"]),
                               C @ V, atol=1e-4)
    # J itself against numpy
    J = np.sum(W * np.log(P))
    np.testing.assert_allclose(n2v.objective(jnp.float32(V), d["walk_NxN"], d["node_mask_N"]), J, rtol=1e-5)
    # untied: dJ/dV = (W - P) U, dJ/dU = (W - P)^T V with P = softmax(V U^T)
    _, Pu = _np_C(V, W, U)
    gV, gU = jax.grad(n2v.objective, argnums=(0, 3))(jnp.float32(V), d["walk_NxN"], d["node_mask_N"],
                                                     jnp.float32(U))
    np.testing.assert_allclose(gV, (W - Pu) @ U, atol=1e-4)
    np.testing.assert_allclose(gU, (W - Pu).T @ V, atol=1e-4)


def test_one_gd_step_is_V_plus_lr_CV_with_weight_decay():
    _, W = _np_walk(GRAPH7)
    d = _dev(n2v.node2vec_data(GRAPH7, n_pad=7))
    prog = n2v.make_node2vec_program(dim=6)
    hp = _hp(lr=0.05, wd=0.3, init_scale=0.5)
    s0, (s1, m) = jax.jit(lambda k: (lambda s: (s, prog.step(s, hp, d)))(prog.init(k, hp, d)))(jax.random.PRNGKey(1))
    V = np.asarray(s0["params"]["V"], np.float64)
    C, P = _np_C(V, W)
    np.testing.assert_allclose(s1["params"]["V"], V + 0.05 * C @ V - 0.05 * 0.3 * V, atol=1e-5)
    np.testing.assert_allclose(m["train/loss"], -np.sum(W * np.log(P)) / 7, rtol=1e-5)
    assert int(s1["step"]) == 1 and not np.array_equal(s1["key"], s0["key"])
    # init: N(0, init_scale^2) rows
    assert abs(float(jnp.std(s0["params"]["V"])) - 0.5) < 0.15


# ---------------------------------------------------------------- padding and vmapping


def _sweep(tree, size=1):
    """One experiment's inputs repeated ``size`` times on a leading sweep axis S (what the trainer vmaps over)."""
    return jax.tree_util.tree_map(lambda x: jnp.stack([jnp.asarray(x)] * size), tree)


@functools.cache
def _chunk(prog, steps):
    # the host loop's compiled chunk; identity reduce keeps every step's train/loss (the loop sums them)
    return loop.jit_chunk(prog, steps, reduce=lambda m: m)


def _train(prog, keys_S, hp_S, data_S, steps):
    """Train a sweep as `geomem train` does (geomem_jax.loop): jit(vmap(init)), ``steps`` steps in one
    loop.jit_chunk, jit(vmap(evaluate)). Returns (state_S, losses_SxSteps, eval metrics_S)."""
    s = jax.jit(jax.vmap(prog.init))(keys_S, hp_S, data_S)
    s, step_metrics = _chunk(prog, steps)(s, hp_S, data_S)
    return s, step_metrics["train/loss"], jax.jit(jax.vmap(prog.evaluate))(s, hp_S, data_S)


def _run(prog, key, hp, data, steps):
    """One experiment trained as a sweep of one; results without the sweep axis."""
    out = _train(prog, key[None], _sweep(hp), _sweep(data), steps)
    return jax.tree_util.tree_map(lambda x: x[0], out)


@pytest.mark.parametrize("tied", [True, False])
def test_padded_run_equals_unpadded(tied):
    prog = n2v.make_node2vec_program(dim=8, tied=tied)
    hp = _hp(lr=0.1)
    run = lambda k, d: _run(prog, k, hp, d, 5)
    key = jax.random.PRNGKey(4)
    s7, l7, e7 = run(key, _dev(n2v.node2vec_data(GRAPH7, n_pad=7)))
    s11, l11, e11 = run(key, _dev(n2v.node2vec_data(GRAPH7, n_pad=11)))
    for name in s7["params"]:
        np.testing.assert_allclose(s11["params"][name][:7], s7["params"][name], atol=1e-5)
        assert not np.asarray(s11["params"][name][7:]).any()  # padded rows stay zero
    np.testing.assert_allclose(l11, l7, rtol=1e-5)
    for k in ("train/loss", "edge/recall_at_5", "geometry/level", "node2vec/alignment"):
        np.testing.assert_allclose(e11[k], e7[k], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e11["node2vec/proj_V"][:7], e7["node2vec/proj_V"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e11["node2vec/proj_C"][:7], e7["node2vec/proj_C"], rtol=1e-4, atol=1e-5)
    assert not np.asarray(e11["node2vec/proj_V"][7:]).any()


def test_vmap_over_seeds_equals_separate_runs():
    prog = n2v.make_node2vec_program(dim=8)
    d = _dev(n2v.node2vec_data(GRAPH7, n_pad=9))
    hp = _hp(lr=0.05)
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    sv, lv, ev = _train(prog, keys, _sweep(hp, 3), _sweep(d, 3), 4)
    for i in range(3):
        si, li, ei = _run(prog, keys[i], hp, d, 4)
        np.testing.assert_allclose(sv["params"]["V"][i], si["params"]["V"], atol=1e-5)
        np.testing.assert_allclose(lv[i], li, rtol=1e-5)
        np.testing.assert_allclose(ev["node2vec/proj_V"][i], ei["node2vec/proj_V"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(sv["params"]["V"][0], sv["params"]["V"][1])


# ------------------------------------------------------------------------ evaluation


def test_evaluate_metrics_against_numpy():
    a, W = _np_walk(GRAPH7)
    d = n2v.node2vec_data(GRAPH7, n_pad=8)
    prog = n2v.make_node2vec_program(dim=4)
    rng = np.random.default_rng(5)
    V = np.zeros((8, 4), np.float32)
    V[:7] = rng.normal(size=(7, 4))
    state = initial_state({"V": jnp.asarray(V)}, {}, jax.random.PRNGKey(0))  # the shared train state
    ev = jax.jit(prog.evaluate)(state, _hp(), _dev(d))
    V7 = V[:7].astype(np.float64)
    C, P = _np_C(V7, W)
    E = d["eigvecs_NxK"][:7, :7].astype(np.float64)
    pv = np.linalg.norm(V7.T @ E, axis=0)
    np.testing.assert_allclose(ev["node2vec/proj_V"][:7], pv, rtol=1e-4)
    np.testing.assert_allclose(ev["node2vec/proj_C"][:7], np.linalg.norm(C @ E, axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ev["node2vec/alignment"], (pv[1:3] ** 2).sum() / (pv[1:] ** 2).sum(), rtol=1e-4)
    # recall@5 over other nodes
    S = V7 @ V7.T
    recalls = []
    for i in range(7):
        order = [j for j in np.argsort(-S[i], kind="stable") if j != i][:5]
        nb = set(np.flatnonzero(a[i]).tolist())
        recalls.append(len(nb & set(order)) / min(5, len(nb)))
    np.testing.assert_allclose(ev["edge/recall_at_5"], np.mean(recalls), rtol=1e-5)
    u = V7 / np.linalg.norm(V7, axis=1, keepdims=True)
    np.testing.assert_allclose(ev["geometry/level"], (u @ u.T)[a > 0].mean(), rtol=1e-5)
    np.testing.assert_allclose(ev["train/loss"], -np.sum(W * np.log(P)) / 7, rtol=1e-5)


def test_recall_counts_self_only_with_self_edges():
    # C(8): self scores highest, the 2 neighbours lowest, the 5 non-neighbours in between
    n = 8
    a = np.asarray(n2v.node2vec_data(_cycle(n), n)["adj_NxN"])
    S = jnp.asarray(-5 * a + 10 * np.eye(n), jnp.float32)
    mask = jnp.ones(n, bool)
    # no self loops: self is not a candidate, top5 = the 5 non-neighbours
    assert float(n2v.recall_at_5(S, jnp.asarray(a), mask)) == pytest.approx(0.0)
    # self loops: self is a candidate and a true neighbour, 1 hit of min(5, 3)
    assert float(n2v.recall_at_5(S, jnp.asarray(a + np.eye(n)), mask)) == pytest.approx(1 / 3)


# ------------------------------------------------------------- spectral convergence


def test_cycle15_energy_concentrates_on_fiedler_pair():
    """C(15), tied, m=100, N(0,1), lr 0.01, 10,000 steps: alignment ≥ 0.99 (the paper's Node2Vec claim)."""
    d = _dev(n2v.node2vec_data(_cycle(15), n_pad=15))
    prog = n2v.make_node2vec_program(dim=100)
    hp = _hp(lr=0.01)
    s, losses, ev = _run(prog, jax.random.PRNGKey(0), hp, d, 10_000)
    assert float(ev["node2vec/alignment"]) >= 0.99
    assert float(ev["edge/recall_at_5"]) == 1.0
    assert float(losses[-1]) < float(losses[0])
    pv = np.asarray(ev["node2vec/proj_V"])
    assert pv[1] > 1.0 and pv[2] > 1.0 and pv[3:].max() < 0.05 * pv[1]
    # the retained modes have (nearly) left C's range: C e_1 ≈ 0 while high-frequency modes stay
    pc = np.asarray(ev["node2vec/proj_C"])
    assert pc[1] < 0.01 and pc[-1] > 1.0


# --------------------------------------------------------------------------- SGNS


@functools.cache
def _walk_fn(walks, length):
    # p, q traced: one compile per graph shape, not per (p, q)
    return jax.jit(lambda k, d, p, q: n2v.sample_walks(k, d["nbrs_NxDmax"], d["deg_N"], d["node_mask_N"],
                                                        walks, length, p, q))


def _walks(graph, p, q, n_pad=None, walks=8, length=12, seed=0):
    d = _dev(n2v.node2vec_data(graph, n_pad or graph[0]))
    w, v = _walk_fn(walks, length)(jax.random.PRNGKey(seed), d, jnp.float32(p), jnp.float32(q))
    return np.asarray(w), np.asarray(v), np.asarray(d["adj_NxN"])


def test_walks_follow_edges_and_start_at_every_node():
    w, v, a = _walks(GRAPH7, p=0.5, q=2.0, n_pad=9)
    assert w.shape == (9 * 8, 12)
    np.testing.assert_array_equal(w[:, 0], np.repeat(np.arange(9), 8))
    np.testing.assert_array_equal(v, np.repeat(np.arange(9) < 7, 8))
    real = w[v]
    assert (a[real[:, :-1], real[:, 1:]] > 0).all()
    assert (w[~v] == w[~v][:, :1]).all()  # padded starts stay put


def test_pq_bias_matches_transition_weights():
    # p very small: on a cycle the walk almost always returns
    w, v, _ = _walks(_cycle(12), p=0.01, q=1.0, walks=20, length=12)
    ret = (w[:, 2:] == w[:, :-2]).mean()
    assert ret > 0.95  # expected 100/101
    w, v, _ = _walks(_cycle(12), p=1.0, q=1.0, walks=20, length=12)
    assert abs((w[:, 2:] == w[:, :-2]).mean() - 0.5) < 0.05
    # triangle-rich graph: large q keeps the walk local (next is prev or a common neighbour)
    edges = np.array([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])  # K4 + pendant below
    g = (5, np.vstack([edges, [(3, 4)]]))
    w, v, a = _walks(g, p=1.0, q=100.0, walks=40, length=10)
    prev, nxt = w[:, :-2], w[:, 2:]
    local = (nxt == prev) | (a[prev, nxt] > 0)
    assert local.mean() > 0.97


def test_sgns_loss_decreases_and_learns_edges():
    d = _dev(n2v.node2vec_data(_cycle(10), n_pad=12))
    prog = n2v.make_node2vec_program(dim=16, objective="sgns", optimizer="adam", walk_length=8,
                                     walks_per_node=2, window=2, negatives=3)
    hp = _hp(lr=0.05, init_scale=0.1)

    s, losses, e1 = _run(prog, jax.random.PRNGKey(0), hp, d, 200)
    assert set(s["params"]) == {"V", "U"} and set(s) == {"params", "opt_state", "key", "step", "diverged_at"}
    assert float(losses[-20:].mean()) < 0.7 * float(losses[:5].mean())
    assert float(e1["train/loss"]) < float(losses[0])  # fresh walk batch at eval
    assert float(e1["edge/recall_at_5"]) == 1.0
    assert not np.asarray(s["params"]["V"][10:]).any()


def test_a_diverging_experiment_is_flagged_and_frozen_while_the_other_goes_on():
    """The shared train state: a loss that is not finite freezes that experiment's params at the
    last finite step and records the step; the sweep's other experiment is unaffected."""
    d = _dev(n2v.node2vec_data(_cycle(10), n_pad=10))
    prog = n2v.make_node2vec_program(dim=8, objective="full_softmax", optimizer="gd")
    hp_S = {k: jnp.stack([v, v]) for k, v in _hp().items()}
    hp_S["lr"] = jnp.array([0.01, 1e30], jnp.float32)  # the second overflows the logits after one step

    key = jax.random.PRNGKey(0)
    s, losses, ev = _train(prog, jnp.stack([key, key]), hp_S, _sweep(d, 2), 5)
    assert s["diverged_at"].tolist() == [-1, 1] and ev["diverged_at"].tolist() == [-1, 1]
    assert np.isfinite(np.asarray(losses[0])).all() and not np.isfinite(np.asarray(losses[1, 1:])).any()
    assert np.isfinite(np.asarray(s["params"]["V"])).all()  # frozen at step 1's (finite) update
    alone, _, _ = _run(prog, key, {k: v[0] for k, v in hp_S.items()}, d, 5)
    np.testing.assert_allclose(s["params"]["V"][0], alone["params"]["V"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("field, value", [("opt.schedule", "cosine"), ("opt.warmup_steps", 10),
                                          ("model.dropout", 0.1), ("model.dtype", "bfloat16"),
                                          ("sweep.dropout", (0.0, 0.2))])
def test_keys_node2vec_does_not_read_are_refused_naming_the_key(field, value):
    from geomem_jax import config as config_lib
    from geomem_jax.errors import ConfigError

    cfg = config_lib.load_config("configs/node2vec.py:smoke")
    config_lib.check_config(cfg)  # the preset itself is fine
    section, key = field.split(".")
    cfg[section][key] = value
    with pytest.raises(ConfigError, match=rf"{field}.*model\.family=node2vec"):
        config_lib.check_config(cfg)


def test_program_for_config_runs_a_stacked_sweep():
    from geomem_jax import config as config_lib, graphs, sweep

    cfg = config_lib.base_config()
    cfg.model.family, cfg.model.width = "node2vec", 8
    cfg.graph.family, cfg.graph.num_nodes = "cycle", 6
    cfg.sweep.graphs = ({"num_nodes": 6}, {"num_nodes": 9})
    cfg.sweep.seeds = (0, 1)
    cfg.opt.lr, cfg.opt.weight_decay = 0.01, 0.0
    exps = sweep.experiments(cfg)
    graph_list = [graphs.make_graph(g) for g in sweep.graph_configs(cfg)]
    prog, data, paths = n2v.program_for_config(cfg, graph_list, exps)
    assert data["walk_NxN"].shape == (4, 9, 9) and data["node_mask_N"][0].sum() == 6
    assert paths["embedding"] == ["params", "V"] and paths["output_embedding"] is None
    hp = {k: jnp.asarray(v) for k, v in sweep.hparam_arrays(exps).items()}
    keys = jnp.asarray(sweep.seed_keys(exps))

    def one(k, h, d):
        s, m = prog.step(prog.init(k, h, d), h, d)
        return m, prog.evaluate(s, h, d)

    m, ev = jax.jit(jax.vmap(one))(keys, hp, data)
    assert m["train/loss"].shape == (4,) and ev["node2vec/proj_V"].shape == (4, 9)
    assert np.isfinite(np.asarray(ev["node2vec/alignment"])).all()
