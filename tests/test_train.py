"""Training job: lr schedule, golden first loss, greedy decoding + every metric recomputed in numpy,
vmap / padded-graph equivalence, crash + resume, summary aggregates, divergence, staged recipe, config checks.

Compiles few programs: most tests share one tiny 2-seed run (`run_a`); runs with the same
static config hit the per-session persistent compile cache (tests/conftest.py).
"""

import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from geomem_jax import checkpoint, evals, graphs, loop, metrics, sweep, tasks, train
from geomem_jax.errors import ConfigError
from geomem_jax.models.transformer import Transformer

STEPS = 40
CONTINUOUS = ("geometry/level", "train/loss", "test/forced_loss", "geometry/logit_margin", "geometry/leaf_firsthop_gap",
              "geometry/spectral_alignment")
RECALL = "edge/recall_at_degree"


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, tiny_cfg_factory):
    """Uninterrupted tiny run: path_star(5, 4), seeds (0, 1), 40 steps, eval + ckpt every 10."""
    cfg = tiny_cfg_factory()
    workdir = tmp_path_factory.mktemp("run_a") / "run"
    summary = loop.run(cfg, workdir, progress=False)
    return cfg, workdir, summary


def _final_params(workdir, step=STEPS):
    return checkpoint.restore_numpy(workdir, step)["params"]


def _take(tree, i):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[i], tree)


def _assert_params_close(actual, desired, atol=1e-5):
    """allclose on every leaf but the attention key bias: its gradient is exactly 0 in theory
    (softmax ignores a shift shared by all keys), so Adam turns float noise of ~1e-10 into
    lr-sized random steps; that leaf only has to stay tiny."""
    flat_a = dict(jax.tree_util.tree_leaves_with_path(actual))
    flat_d = dict(jax.tree_util.tree_leaves_with_path(desired))
    assert flat_a.keys() == flat_d.keys()
    for path, a in flat_a.items():
        name = jax.tree_util.keystr(path)
        if "['key']['bias']" in name:
            assert np.abs(a).max() < 1e-3 and np.abs(flat_d[path]).max() < 1e-3, name
        else:
            np.testing.assert_allclose(a, flat_d[path], atol=atol, rtol=1e-4, err_msg=name)


# ----------------------------------------------------------------------------- lr schedule


def test_lr_at_closed_forms():
    peak, total, warm = 2e-3, 100, 10
    lr = lambda s, sched="cosine", w=warm: float(train.lr_at(s, peak, total, w, sched, 0.1))
    for s in range(warm):  # linear warm-up reaching the peak at the end of warm-up
        assert lr(s) == pytest.approx(peak * (s + 1) / warm, rel=1e-6)
    assert lr(warm) == pytest.approx(peak, rel=1e-6)
    for s in (10, 30, 55, 80, 99):
        progress = (s - warm) / (total - warm)
        expected = peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        assert lr(s) == pytest.approx(expected, rel=1e-5)
    assert lr(total) == pytest.approx(peak / 10, rel=1e-5)  # cosine ends at lr/10
    assert lr(total + 50) == pytest.approx(peak / 10, rel=1e-5)
    assert lr(0, w=0) == pytest.approx(peak, rel=1e-6)  # no warm-up: start at the peak
    for s in (0, 4, 9):
        assert lr(s, "constant") == pytest.approx(peak * (s + 1) / warm, rel=1e-6)
    for s in (10, 50, 99, 150):
        assert lr(s, "constant") == pytest.approx(peak, rel=1e-6)
    values = [lr(s) for s in range(warm, total + 1)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay


# ----------------------------------------------------------------------------- vmap / golden loss


def test_sweep_member_equals_solo_run_and_first_loss_is_uniform(run_a, tiny_cfg_factory):
    """Seed 1 alone (1-step chunks) == experiment 1 of the 2-seed run; first loss = log(#valid vocab)."""
    _, workdir_a, _ = run_a
    cfg = tiny_cfg_factory(("sweep.seeds", "(1,)"))
    exps, program, data, _ = train.build(cfg)
    hp = {k: jnp.asarray(v) for k, v in sweep.hparam_arrays(exps).items()}
    data = {k: jnp.asarray(v) for k, v in data.items()}
    state = jax.jit(jax.vmap(program.init))(jnp.asarray(sweep.seed_keys(exps)), hp, data)
    step_once = loop.jit_chunk(program, 1)
    losses = []
    for _ in range(STEPS):
        state, step_metrics = step_once(state, hp, data)
        losses.append(float(step_metrics["train/loss"][0]))

    num_valid = 5 * 3 + 1 + len(tasks.SPECIAL_TOKENS)  # path_star(5, 4): 16 nodes + 9 specials
    assert int(np.asarray(data["vocab_mask"]).sum()) == num_valid
    assert abs(losses[0] - math.log(num_valid)) < 0.05
    assert losses[-1] < losses[0] - 0.3  # it does learn

    solo = _take(state["params"], 0)
    swept = _final_params(workdir_a)
    _assert_params_close(solo, _take(swept, 1))
    # ... and not trivially: the other seed is a different trajectory.
    assert not np.allclose(_take(swept, 0)["embed"], solo["embed"], atol=1e-3)


# ----------------------------------------------------------------------------- greedy + metrics


def _numpy_metrics(model, params, graph):
    """Every evaluation metric of one experiment, recomputed step by step outside the program."""
    n = graph.num_nodes
    v_valid = n + len(tasks.SPECIAL_TOKENS)
    apply = jax.jit(lambda toks: model.apply({"params": params}, toks))

    def next_logits(seq_BxT):
        return np.asarray(apply(np.asarray(seq_BxT, np.int32)))[:, -1, :v_valid].astype(np.float64)

    paths_QxL = graph.test_paths_QxL
    q, ell = paths_QxL.shape
    prefix_QxP = np.stack([np.full(q, tasks.special_id(n, "[PATH]")), paths_QxL[:, -1],
                           np.full(q, tasks.special_id(n, "[PAUSE]"))], axis=1)
    seq = prefix_QxP
    for _ in range(ell):  # greedy decoding on the growing sequence
        seq = np.concatenate([seq, next_logits(seq).argmax(axis=1)[:, None]], axis=1)
    gen_QxL = seq[:, prefix_QxP.shape[1]:]

    parent_N = np.full(n, -1)
    parent_N[graph.forward_edges_Ex2[:, 1]] = graph.forward_edges_Ex2[:, 0]
    child_ok = [(g < n and parent_N[g] == prev) for row in gen_QxL for prev, g in zip(row[:-1], row[1:])]

    full_seq = np.concatenate([prefix_QxP, paths_QxL], axis=1)  # teacher forcing
    logits_QxTxV = np.asarray(apply(full_seq[:, :-1].astype(np.int32)))[..., :v_valid].astype(np.float64)
    scored = logits_QxTxV[:, prefix_QxP.shape[1] - 1:]
    logp = scored - np.log(np.exp(scored - scored.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - scored.max(-1, keepdims=True)
    nll_QxL = -np.take_along_axis(logp, paths_QxL[..., None], axis=-1)[..., 0]
    hit_QxL = scored.argmax(-1) == paths_QxL

    edge_logits_NxV = next_logits(np.stack([np.full(n, tasks.special_id(n, "[EDGE]")), np.arange(n)], 1))
    succ = {u: set() for u in range(n)}
    for u, w in graph.directed_edges("both"):
        succ[int(u)].add(int(w))
    recalls = []
    for u in range(n):
        k = len(succ[u])
        if k:
            top_k = np.argsort(-edge_logits_NxV[u], kind="stable")[:k]
            recalls.append(len(succ[u] & set(top_k.tolist())) / k)

    table_VxD = np.asarray(params["embed"], np.float64)
    edges_Ex2 = graph.directed_edges("both")
    u_ExD, v_ExD = table_VxD[edges_Ex2[:, 0]], table_VxD[edges_Ex2[:, 1]]
    cos_E = (u_ExD * v_ExD).sum(1) / (np.linalg.norm(u_ExD, axis=1) * np.linalg.norm(v_ExD, axis=1))

    # leaf of path i vs first hop of path j: mean off-diagonal minus mean diagonal cosine distance
    unit = lambda x_QxD: x_QxD / np.linalg.norm(x_QxD, axis=1, keepdims=True)
    dist_QxQ = 1.0 - unit(table_VxD[paths_QxL[:, -1]]) @ unit(table_VxD[paths_QxL[:, 1]]).T
    gap = (dist_QxQ.sum() - np.trace(dist_QxQ)) / (q * q - q) - np.trace(dist_QxQ) / q

    # margin of the least-squares bilinear fit of the edge logits (numpy SVD route, float64)
    from geomem_jax.analysis import geometry

    E_NxD, L_NxN = table_VxD[:n], edge_logits_NxV[:, :n]
    fit = geometry.geometric_margin(E_NxD, np.linalg.pinv(E_NxD) @ L_NxN @ np.linalg.pinv(E_NxD.T), graph.adjacency())

    # spectral alignment at the analysis's first reported k, moved to the end of its eigenspace
    from geomem_jax.analysis import spectral

    eigvals_N, eigvecs_NxN = spectral.eigenpairs(graph.adjacency())
    k = spectral.closing_k(eigvals_N, min(spectral.default_alignment_ks(graph.family, graph)), complete=True)

    out = {
        "geometry/logit_margin": fit["margin"],
        "geometry/logit_margin_top1": fit["margin_top1"],
        "geometry/level": cos_E.mean(),
        "geometry/leaf_firsthop_gap": gap,
        "geometry/spectral_alignment": spectral.spectral_alignment(E_NxD, eigvecs_NxN, k),
        "geometry/spectral_alignment_k": k,
        "test/exact_match": np.mean(np.all(gen_QxL == paths_QxL, axis=1)),
        "test/first_token": np.mean(gen_QxL[:, 1] == paths_QxL[:, 1]),  # n1 follows the root
        "test/child": np.mean(child_ok),
        "test/forced_loss": nll_QxL.mean(),
        "test/forced_accuracy": hit_QxL.mean(),
        "test/forced_exact_match": np.mean(hit_QxL.all(axis=1)),
        "edge/recall_at_degree": np.mean(recalls),
    }
    out.update({f"test/token_{i}": np.mean(gen_QxL[:, i] == paths_QxL[:, i]) for i in range(ell)})
    return out, gen_QxL


def test_greedy_decoding_and_metrics_match_numpy(run_a):
    cfg, workdir, summary = run_a
    graph = graphs.make_graph(cfg.graph)
    params_S = _final_params(workdir)
    vocab, width = params_S["embed"].shape[1:]
    model = Transformer(vocab_size=vocab, max_len=params_S["positions"].shape[1], width=width, layers=1, heads=2)
    assert vocab == graph.num_nodes + len(tasks.SPECIAL_TOKENS)
    for exp in summary["experiments"]:
        assert exp["step"] == STEPS
        expected, gen_QxL = _numpy_metrics(model, _take(params_S, exp["index"]), graph)
        final = exp["final"]
        assert set(expected) | {"train/loss"} == set(final)
        for name, value in expected.items():
            tol = {"test/forced_loss": 1e-4, "geometry/level": 1e-4, "geometry/logit_margin": 1e-4,
                   "geometry/leaf_firsthop_gap": 1e-5, "geometry/spectral_alignment": 1e-5,
                   "geometry/logit_margin_top1": 1 / graph.num_nodes + 1e-9}.get(name, 1e-6)  # top1: a near tie
            assert final[name] == pytest.approx(value, abs=tol), (exp["index"], name, gen_QxL)
    # A trained model puts the edges well above chance (k_u / (N + 9)).
    assert max(e["final"]["edge/recall_at_degree"] for e in summary["experiments"]) > 0.15


def test_leaf_firsthop_gap_equals_the_analysis_on_padded_rows_and_is_nan_below_two_paths():
    from geomem_jax.analysis import geometry

    rng = np.random.default_rng(0)
    table_VxD = rng.standard_normal((30, 8)).astype(np.float32)
    paths_QxL = np.stack([np.zeros(5, int), rng.permutation(29)[:5] + 1, rng.permutation(29)[:5] + 1], axis=1)
    padded = {"leaf_hop": np.concatenate([paths_QxL[:, [-1, 1]], np.full((3, 2), 7)]).astype(np.int32),
              "leaf_hop_mask": np.arange(8) < 5}  # 3 padding rows that point at a real node
    expected = geometry.leaf_firsthop_gap(geometry.leaf_firsthop_matrix(table_VxD, paths_QxL))
    assert float(jax.jit(evals.leaf_firsthop_gap)(table_VxD, padded)) == pytest.approx(expected, abs=1e-6)
    one = {**padded, "leaf_hop_mask": np.arange(8) < 1}
    assert math.isnan(float(evals.leaf_firsthop_gap(table_VxD, one)))


def test_logged_alignment_is_the_analysis_alignment_of_the_last_checkpoint_and_both_stay(run_a, tmp_path):
    """The last evaluation's geometry/spectral_alignment == `geomem analyze`'s spectral/alignment_k<k> of
    the final checkpoint at the logged k; summary.json then keeps both, each under its own name."""
    from geomem_jax.analysis import analyze

    workdir = tmp_path / "run"
    shutil.copytree(run_a[1], workdir)  # analyze merges into summary.json: run_a's stays as trained
    analysis = analyze.analyze_run(workdir, make_plots=False)
    last = metrics.read_metrics(workdir / "metrics.jsonl")[-1]
    assert last["step"] == analysis["step"] == STEPS
    finals = {e["index"]: e["final"] for e in json.loads((workdir / "summary.json").read_text())["experiments"]}
    for row in analysis["experiments"]:
        logged = last["experiments"][row["index"]]
        assert logged["geometry/spectral_alignment_k"] == 4  # path_star(5, 4): the d − 1 arm modes
        analysed = row["scalars"]["spectral/alignment_k4"]
        assert logged["geometry/spectral_alignment"] == pytest.approx(analysed, abs=1e-5)
        final = finals[row["index"]]
        assert final["geometry/spectral_alignment"] == logged["geometry/spectral_alignment"]
        assert final["spectral/alignment_k4"] == analysed


def test_a_sweep_with_a_graph_over_the_node_cap_logs_no_alignment(tiny_cfg_factory, monkeypatch):
    """The alignment exists for every experiment or none: traced (not compiled) evaluations."""
    cfg = tiny_cfg_factory(("sweep.seeds", "(0,)"),
                           ("sweep.graphs", '({"degree": 5}, {"degree": 7, "path_length": 5})'))

    def logged(cap):
        monkeypatch.setattr(evals, "LOGIT_MARGIN_MAX_NODES", cap)
        exps, program, data, _ = train.build(cfg)
        key, hp, data_0 = sweep.seed_keys(exps)[0], _take(sweep.hparam_arrays(exps), 0), _take(data, 0)
        out = jax.eval_shape(lambda: program.evaluate(program.init(key, hp, data_0), hp, data_0))
        return {name for name in out if "spectral" in name}

    assert logged(29) == {"geometry/spectral_alignment", "geometry/spectral_alignment_k"}  # 16 and 29 nodes
    assert logged(28) == set()


# ----------------------------------------------------------------------------- summary


def test_summary_structure_and_seed_aggregate(run_a):
    cfg, workdir, summary = run_a
    on_disk = json.loads((workdir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert set(on_disk) == {"experiments", "aggregate"}
    records = metrics.read_metrics(workdir / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert checkpoint.complete_steps(workdir) == [30, 40]  # ckpt.max_to_keep=2
    exps = on_disk["experiments"]
    assert [e["seed"] for e in exps] == [0, 1] and [e["index"] for e in exps] == [0, 1]
    for e in exps:
        assert {"index", "seed", "graph", "hparams", "coords", "step", "diverged", "diverged_at_step",
                "final", "best"} <= set(e)
        assert e["diverged"] is False and e["diverged_at_step"] is None
        last = metrics.flatten_vectors(records[-1]["experiments"][e["index"]])
        last.pop("index"), last.pop("diverged_at")
        assert e["final"] == last
        for name, best in e["best"].items():
            series = [metrics.flatten_vectors(r["experiments"][e["index"]])[name] for r in records]
            assert best == (min(series) if "loss" in name else max(series))
        assert e["hparams"] == {"lr": 3e-3, "weight_decay": 0.01, "init_scale": 0.02, "dropout": 0.0}
        assert e["graph"]["num_nodes"] == 16
    (group,) = on_disk["aggregate"]
    assert group["n"] == 2 and group["seeds"] == [0, 1]
    coords, group_metrics = metrics.group_parts(group)  # flat: coordinates and metrics side by side
    assert coords == exps[0]["coords"] and group["lr"] == 3e-3
    assert set(group_metrics) == set(exps[0]["final"])
    for name, agg in group_metrics.items():
        vals = np.array([e["final"][name] for e in exps], np.float64)
        std = vals.std(ddof=1)
        assert agg["mean"] == pytest.approx(vals.mean(), abs=1e-12)
        assert agg["std"] == pytest.approx(std, abs=1e-12)
        assert agg["ci95"] == pytest.approx(stats.t.ppf(0.975, 1) * std / math.sqrt(2), abs=1e-9)
        assert agg["n"] == 2


# ----------------------------------------------------------------------------- crash + resume


class _Killed(Exception):
    pass


def test_crash_then_resume_ends_where_the_uninterrupted_run_ends(run_a, tmp_path, monkeypatch):
    cfg, workdir_a, summary_a = run_a
    workdir = tmp_path / "run"
    save = checkpoint.Checkpointer.save

    def dying_save(self, step, state, extra):  # dies after writing the step-30 metrics, before its ckpt
        if step == 30:
            raise _Killed
        save(self, step, state, extra)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", dying_save)
    with pytest.raises(_Killed):
        loop.run(cfg, workdir, progress=False)
    monkeypatch.undo()
    assert checkpoint.complete_steps(workdir) == [10, 20]
    assert [r["step"] for r in metrics.read_metrics(workdir / "metrics.jsonl")] == [10, 20, 30]
    assert not (workdir / "summary.json").exists()

    summary = loop.run(cfg, workdir, resume=True, progress=False)
    records = metrics.read_metrics(workdir / "metrics.jsonl")
    records_a = metrics.read_metrics(workdir_a / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30, 40]  # the orphan step-30 line was rewritten
    assert [r["experiments"] for r in records] == [r["experiments"] for r in records_a]
    assert [e["final"] for e in summary["experiments"]] == [e["final"] for e in summary_a["experiments"]]
    state, state_a = checkpoint.restore_numpy(workdir, STEPS), checkpoint.restore_numpy(workdir_a, STEPS)
    # Bitwise equal on CPU: same compiled program, same keys, exact checkpoint round trip.
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, state_a)


# ----------------------------------------------------------------------------- padded graphs


def test_graph_padded_into_a_larger_sweep_follows_the_same_trajectory(run_a, tiny_cfg_factory, tmp_path):
    """path_star(5, 4) next to path_star(7, 5) (larger vocabulary AND longer sequences) == alone."""
    _, workdir_a, summary_a = run_a
    cfg = tiny_cfg_factory(("sweep.seeds", "(1,)"),
                           ("sweep.graphs", '({"degree": 5}, {"degree": 7, "path_length": 5})'))
    summary = loop.run(cfg, tmp_path / "run", progress=False)
    padded, alone = summary["experiments"][0], summary_a["experiments"][1]
    assert padded["seed"] == alone["seed"] == 1 and padded["graph"] == alone["graph"]
    assert summary["experiments"][1]["graph"]["num_nodes"] == 29

    params_p, params_a = _take(_final_params(tmp_path / "run"), 0), _take(_final_params(workdir_a), 1)
    v_real, t_real = params_a["embed"].shape[0], params_a["positions"].shape[0]
    assert params_p["embed"].shape[0] == 29 + 9 and params_p["positions"].shape[0] > t_real
    real_rows = {**params_p, "embed": params_p["embed"][:v_real], "positions": params_p["positions"][:t_real]}
    _assert_params_close(real_rows, params_a)
    for name, value in alone["final"].items():
        tol = 1e-4 if name in CONTINUOUS else 0.0
        assert padded["final"][name] == pytest.approx(value, abs=tol), name


# ----------------------------------------------------------------------------- divergence


def test_diverged_experiment_is_marked_and_isolated(tiny_cfg_factory, tmp_path):
    cfg = tiny_cfg_factory(("sweep.seeds", "(0,)"), ("sweep.lr", "(3e-3, 1e6)"))
    summary = loop.run(cfg, tmp_path / "run", progress=False)
    ok, bad = summary["experiments"]
    assert ok["hparams"]["lr"] == 3e-3 and bad["hparams"]["lr"] == 1e6
    assert bad["diverged"] is True and 0 <= bad["diverged_at_step"] < STEPS
    assert ok["diverged"] is False and ok["diverged_at_step"] is None
    assert all(isinstance(v, float) and math.isfinite(v) for v in ok["final"].values())
    # The diverged experiment's params stay those of its last finite step.
    state = checkpoint.restore_numpy(tmp_path / "run")
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(state["params"]))


# ----------------------------------------------------------------------------- recipes / targets


def test_staged_recipe_with_hardest_token_target_runs(tiny_cfg_factory, tmp_path):
    cfg = tiny_cfg_factory(("sweep.seeds", "(0,)"), ("train.recipe", "staged"), ("train.stage1_steps", "6"),
                           ("train.steps", "12"), ("eval.every", "12"), ("task.target", "hardest_token"))
    summary = loop.run(cfg, tmp_path / "run", progress=False)
    (exp,) = summary["experiments"]
    final = exp["final"]
    assert exp["step"] == 12 and not exp["diverged"]
    assert "test/token_0" in final and "test/token_1" not in final  # one scored token: n1
    # With one target token, exact match, first decision and token 0 are the same number.
    assert final["test/exact_match"] == final["test/first_token"] == final["test/token_0"]
    assert all(math.isfinite(v) for v in final.values())


@pytest.mark.parametrize("overrides, field", [
    ((("train.batch_size", "0"),), "train.batch_size"),
    ((("train.batch_size", "-3"),), "train.batch_size"),
    ((("train.steps", "0"),), "train.steps"),
    ((("model.heads", "3"),), "model.heads"),
    ((("task.pause_tokens", "-1"),), "task.pause_tokens"),
    ((("sweep.seeds", "()"),), "sweep.seeds"),
    ((("graph.family", "cycle"), ("graph.num_nodes", "8"), ("task.target", "hardest_token")), "task.target"),
    ((("task.target", "hardest_token"), ("task.reverse_path", "true")), "task.reverse_path"),
    ((("train.recipe", "staged"), ("train.stage1_steps", "0")), "train.stage1_steps"),
    ((("opt.schedule", "linear"),), "opt.schedule"),
    ((("sweep.vmap_group", "-1"),), "sweep.vmap_group"),
    ((("sweep.vmap_group", "2"), ("mesh.devices", "2")), "sweep.vmap_group"),  # conftest: 4 fake CPU devices
])
def test_bad_configs_are_rejected_before_any_compute(tiny_cfg_factory, overrides, field):
    cfg = tiny_cfg_factory(*overrides)
    with pytest.raises(ConfigError) as err:
        train.build(cfg)
    assert err.value.field.startswith(field)


def test_make_train_is_the_same_run_as_the_host_loop(run_a):
    """make_train(cfg) -> pure train(key, hp, data): one jit(vmap) call ends where `geomem train` ends."""
    cfg, workdir, summary = run_a
    train_fn, (keys_S, hp_S, data_S) = train.make_train(cfg)
    state_S, metrics_S = jax.jit(jax.vmap(train_fn))(keys_S, hp_S, data_S)
    _assert_params_close(jax.device_get(state_S["params"]), _final_params(workdir))
    for exp in summary["experiments"]:
        i = exp["index"]
        assert float(metrics_S["test/first_token"][i]) == pytest.approx(exp["final"]["test/first_token"], abs=1e-6)
        recall = exp["final"]["edge/recall_at_degree"]
        assert float(metrics_S["edge/recall_at_degree"][i]) == pytest.approx(recall, abs=1e-6)
        assert float(metrics_S["train/loss"][i]) == pytest.approx(exp["final"]["train/loss"], rel=1e-4)


def test_memory_estimate_refuses_a_sweep_that_cannot_fit(tiny_cfg_factory):
    from geomem_jax.errors import UserError

    cfg = tiny_cfg_factory()
    exps, program, data, _ = train.build(cfg)
    per_exp = train.check_memory(cfg, program, data, len(exps))  # fits this machine
    bigger = tiny_cfg_factory(("train.batch_size", "64"))
    _, program_b, data_b, _ = train.build(bigger)
    assert train.memory_per_experiment(bigger, program_b, data_b) > per_exp  # activations grow with the batch
    with pytest.raises(UserError, match=r"run at most 1 experiments"):
        train.check_memory(cfg, program, data, len(exps), available=int(per_exp * 1.5))
    with pytest.raises(UserError, match=r"a single experiment needs about \d+ MiB"):  # never "at most 0"
        train.check_memory(cfg, program, data, len(exps), available=int(per_exp * 0.5))


def test_activations_are_counted_once_per_vmap_group(tiny_cfg_factory):
    """sweep.vmap_group: a sweep holds every experiment's state but only one group's activations."""
    from geomem_jax import memory
    from geomem_jax.errors import UserError

    cfg_all = tiny_cfg_factory(("sweep.seeds", "(0,1,2,3)"), ("sweep.vmap_group", "4"))
    exps, program, data, _ = train.build(cfg_all)
    resident, activations = memory.memory_parts(cfg_all, program, data)
    assert resident > 0 and activations > 0
    one_at_a_time = 4 * resident + activations
    with pytest.raises(UserError, match=r"activations of 4 at a time"):
        train.check_memory(cfg_all, program, data, 4, available=int(one_at_a_time / 0.9) + 1)
    cfg_one = tiny_cfg_factory(("sweep.seeds", "(0,1,2,3)"), ("sweep.vmap_group", "1"))
    assert train.check_memory(cfg_one, program, data, 4, available=int(one_at_a_time / 0.9) + 1) > 0


@pytest.mark.parametrize("group", [1, 2, 3, 5])
def test_experiments_that_fit_is_the_largest_sweep_under_the_budget(group):
    from geomem_jax.memory import _experiments_that_fit

    for budget in range(0, 400, 7):
        fits = [n for n in range(1000) if n * 5 + min(n, group) * 11 <= budget]
        assert _experiments_that_fit(budget, 5, 11, group) == max(fits)


def test_vmap_groups_in_sequence_train_the_same_experiments(tiny_cfg_factory, tmp_path):
    """sweep.vmap_group=2 over 3 experiments (a pair, then the remainder, one after another in the
    same program) ends where one vmap over all 3 ends, and logs the same metrics."""
    summaries, params = {}, {}
    for group in (2, 3):
        cfg = tiny_cfg_factory(("sweep.seeds", "(0,1,2)"), ("sweep.vmap_group", str(group)),
                               ("train.steps", "20"), ("ckpt.every", "20"))
        summaries[group] = loop.run(cfg, tmp_path / f"g{group}", progress=False)
        params[group] = _final_params(tmp_path / f"g{group}", 20)
    _assert_params_close(params[2], params[3])
    resumed = loop.run(tiny_cfg_factory(("sweep.seeds", "(0,1,2)"), ("sweep.vmap_group", "1"), ("train.steps", "20"),
                                        ("ckpt.every", "20")), tmp_path / "g2", resume=True, progress=False)
    assert resumed["experiments"] == summaries[2]["experiments"]  # the group is elastic on resume
    for a, b in zip(summaries[2]["experiments"], summaries[3]["experiments"]):
        assert a["final"].keys() == b["final"].keys()
        for key in ("test/first_token", RECALL, "train/loss", "geometry/level"):
            assert a["final"][key] == pytest.approx(b["final"][key], rel=1e-4, abs=1e-5), key


# ----------------------------------------------------------------------------- in-context evaluation


def _first_decision_reference(first_QxV, batch, degree, ell):
    """Plain-loop reference: parse each example, pick the best-scoring child of its source."""
    chosen, valid = [], []
    for q in range(first_QxV.shape[0]):
        row = tasks.Examples(*(np.asarray(x)[q] for x in batch))
        edges, source, _, path = tasks.decode_in_context(row, num_values=first_QxV.shape[1] - 9)
        children = [v for u, v in edges if u == source]
        assert len(children) == degree
        best = max(children, key=lambda v: (first_QxV[q, v], -children.index(v)))
        chosen.append(best == path[1])
        valid.append(int(np.argmax(first_QxV[q])) in children)
    return np.mean(chosen), np.mean(valid)


@pytest.mark.parametrize("teacherless", [False, True])
def test_in_context_first_decision_matches_a_loop_over_decoded_examples(teacherless):
    degree, ell, num_values = 3, 4, 20
    batch = tasks.in_context_batch(jax.random.key(3), 64, degree, ell, num_values, teacherless)
    first_QxV = np.asarray(jax.random.normal(jax.random.key(4), (64, num_values + 9)))
    p = tasks.in_context_prefix_length(degree, ell)
    targets_QxL = batch.targets_NxT[:, p - 1:]
    got = train._in_context_first_decision(jnp.asarray(first_QxV), batch.inputs_NxT, targets_QxL, degree, ell)
    want_decision, want_valid = _first_decision_reference(first_QxV, batch, degree, ell)
    assert float(got["test/first_decision"]) == pytest.approx(want_decision)
    assert float(got["test/first_step_valid"]) == pytest.approx(want_valid)
    # Logits that put the true n1 on top score 1 on both; logits that favour a wrong child score 0.
    onehot_QxV = np.zeros_like(first_QxV)
    onehot_QxV[np.arange(64), np.asarray(targets_QxL[:, 1])] = 5.0
    right = train._in_context_first_decision(jnp.asarray(onehot_QxV), batch.inputs_NxT, targets_QxL, degree, ell)
    assert float(right["test/first_decision"]) == 1.0 and float(right["test/first_step_valid"]) == 1.0


def test_in_context_run_reports_decision_validity_and_chance_at_init(tiny_cfg_factory, tmp_path):
    cfg = tiny_cfg_factory(("task.mode", "in_context"), ("graph.degree", "2"), ("graph.path_length", "4"),
                           ("sweep.seeds", "(0,)"), ("train.steps", "4"), ("eval.every", "4"), ("ckpt.every", "0"))
    summary = loop.run(cfg, tmp_path / "run", progress=False)
    final = summary["experiments"][0]["final"]
    assert {"test/first_decision", "test/first_step_valid", "test/first_token", "test/exact_match"} <= final.keys()
    # An untrained model picks an arm at random: 512 fixed evaluation rows, chance 1/2 ± 4.5 SE.
    assert abs(final["test/first_decision"] - 0.5) < 4.5 * math.sqrt(0.25 / train.IN_CONTEXT_EVAL_ROWS)


def test_position_std_sets_the_scale_of_the_learned_positions(tiny_cfg_factory):
    stds = {}
    for std in ("1.0", "0.02"):
        cfg = tiny_cfg_factory(("model.position_std", std))
        model = train.build_model(cfg.model, vocab_size=32, max_len=64)
        params = model.init({"params": jax.random.key(0)}, jnp.zeros((1, 8), jnp.int32))["params"]
        stds[std] = float(np.std(np.asarray(params["positions"])))
    assert stds["1.0"] == pytest.approx(1.0, rel=0.1) and stds["0.02"] == pytest.approx(0.02, rel=0.1)


# ----------------------------------------------------------------------------- margin from edge logits


def _margin_data(graph, n_pad, self_edges=False):
    pairs = np.asarray(graph.directed_edges("both", self_edges=self_edges))
    k_pad = len(pairs) + 3  # padded pairs point at (0, 0) with mask False
    src, dst = np.zeros(k_pad, np.int32), np.zeros(k_pad, np.int32)
    src[:len(pairs)], dst[:len(pairs)] = pairs[:, 0], pairs[:, 1]
    return {"node_mask": jnp.arange(n_pad) < graph.num_nodes, "recall_src": jnp.asarray(src),
            "recall_dst": jnp.asarray(dst), "recall_mask": jnp.arange(k_pad) < len(pairs)}


@pytest.mark.parametrize("family_spec, dim, self_edges", [
    ({"family": "path_star", "degree": 3, "path_length": 4}, 16, False),  # N = 10 < D: exact bilinear fit
    ({"family": "cycle", "num_nodes": 12}, 5, False),  # N > D: L is projected onto E's column space
    ({"family": "cycle", "num_nodes": 8}, 16, True),
])
def test_logit_margin_equals_numpy_margin_of_the_least_squares_bilinear_fit(family_spec, dim, self_edges):
    from geomem_jax.analysis import geometry

    graph = graphs.make_graph({**family_spec, "seed": 0})
    n, n_pad = graph.num_nodes, graph.num_nodes + 4
    rng = np.random.default_rng(1)
    E_NxD, L_NxN = rng.normal(size=(n, dim)), rng.normal(size=(n, n))
    W_DxD = np.linalg.pinv(E_NxD) @ L_NxN @ np.linalg.pinv(E_NxD.T)
    want = geometry.geometric_margin(E_NxD, W_DxD, graph.adjacency(), self_edges=self_edges)
    # padded rows / columns hold garbage (a sweep member on a smaller graph): they must not count
    E_pad = np.concatenate([E_NxD, rng.normal(size=(4, dim))]).astype(np.float32)
    L_pad = np.pad(L_NxN, ((0, 4), (0, 4)), constant_values=-np.inf).astype(np.float32)
    margin, top1 = evals.logit_margin(jnp.asarray(E_pad), jnp.asarray(L_pad), _margin_data(graph, n_pad, self_edges))
    assert float(margin) == pytest.approx(want["margin"], rel=1e-4, abs=1e-4)
    assert float(top1) == pytest.approx(want["margin_top1"])


def test_logit_margin_of_an_E_W_Et_run_equals_the_analysis_margin(tmp_path):
    from geomem_jax import config as config_lib
    from geomem_jax.analysis import analyze

    cfg = config_lib.load_config("configs/tiny_graphs.py:star_neural_net")
    for dotted, text in (("train.steps", "30"), ("eval.every", "30"), ("ckpt.every", "30"), ("sweep.seeds", "(0,1)")):
        config_lib.apply_override(cfg, dotted, text)
    loop.run(cfg, tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    during = [e["final"]["geometry/logit_margin"] for e in summary["experiments"]]
    analysis = analyze.analyze_run(tmp_path / "run", make_plots=False)
    analysed = [row["scalars"]["geometry/margin"] for row in analysis["experiments"]]
    np.testing.assert_allclose(during, analysed, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("extra", [
    (("train.batch_layout", "by_kind"),),
    (("train.batch_layout", "padded"), ("model.tied", "false")),
    (("task.mode", "in_context"), ("graph.degree", "2"), ("train.batch_size", "8")),
], ids=["by_kind", "padded_untied", "in_context"])
def test_a_frozen_table_stays_bit_identical_under_weight_decay(tiny_cfg_factory, extra):
    """`model.freeze_embeddings`: the optimizer gives the token table no update at all (weight decay
    included) in every sequence program, while every other leaf trains."""
    cfg = tiny_cfg_factory(("model.freeze_embeddings", "true"), ("opt.weight_decay", "10.0"),
                           ("sweep.seeds", "(0,)"), *extra)
    exps, program, data, _ = train.build(cfg)
    key, hp, data_0 = sweep.seed_keys(exps)[0], _take(sweep.hparam_arrays(exps), 0), _take(data, 0)
    run = jax.jit(lambda s: jax.lax.fori_loop(0, 3, lambda _, s: program.step(s, hp, data_0)[0], s))
    before = program.init(key, hp, data_0)
    after = jax.device_get(run(before))
    np.testing.assert_array_equal(after["params"]["embed"], np.asarray(before["params"]["embed"]))
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(after["params"]),
                                                         jax.tree_util.tree_leaves(jax.device_get(before["params"])))]
    assert sum(changed) == len(changed) - 1  # everything but the table moved
