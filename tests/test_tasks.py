"""Token layout, padded sweep tables and the in-context generator (geomem_jax.tasks)."""

import itertools
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from geomem_jax import graphs, tasks
from geomem_jax.errors import ConfigError
from geomem_jax.graphs import Graph
from geomem_jax.tasks import TaskSpec


def star_graph(degree, path_length):
    """Hand-built G(d, ℓ) with natural ids: root 0, arm a = nodes 1+a(ℓ-1) .. (a+1)(ℓ-1).

    The first ⌊0.75 d⌋ arms are train paths, the rest test paths.
    """
    arm = path_length - 1
    paths = np.array([[0] + list(range(1 + a * arm, 1 + (a + 1) * arm)) for a in range(degree)])
    edges = np.concatenate([paths[:, i:i + 2] for i in range(arm)])
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    n_train = int(0.75 * degree)
    return Graph("path_star", degree * arm + 1, edges.astype(np.int64), 0,
                 paths[:n_train].astype(np.int64), paths[n_train:].astype(np.int64),
                 {"degree": degree, "path_length": path_length})


# G(2, 3): root 0, arms 0-1-2 (train) and 0-3-4 (test); N = 5.
G23 = star_graph(2, 3)
BAR, PAUSE, SLASH, DOLLAR, GT, LT, PAD, EDGE, PATH = range(5, 14)


def spec(**kw):
    return TaskSpec(**{"pause_tokens": 1, **kw})


# ---------------------------------------------------------------------------- vocabulary


def test_special_ids_and_vocab():
    assert tasks.SPECIAL_TOKENS == ("|", "[PAUSE]", "/", "$", ">", "<", "[PAD]", "[EDGE]", "[PATH]")
    assert [tasks.special_id(5, s) for s in tasks.SPECIAL_TOKENS] == list(range(5, 14))
    assert tasks.vocab_size(5) == 14
    assert tasks.special_id(50001, "[PATH]") == 50009


# ---------------------------------------------------------------------------- edge examples


def _row_of(ex, inputs):
    """The example whose inputs equal ``inputs`` (unique in these tiny graphs)."""
    hits = np.flatnonzero((ex.inputs_NxT == np.array(inputs)).all(1))
    assert len(hits) >= 1, inputs
    return hits[0]


@pytest.mark.parametrize("kw, inputs, targets, weights", [
    ({}, [EDGE, 3], [3, 4], [0, 1]),
    ({"task_tokens": False}, [3], [4], [1]),
    ({"pause_in_edges": True, "pause_tokens": 2}, [EDGE, 3, PAUSE, PAUSE], [3, PAUSE, PAUSE, 4], [0, 0, 0, 1]),
    ({"pause_in_edges": True, "task_tokens": False}, [3, PAUSE], [PAUSE, 4], [0, 1]),
])
def test_edge_example_layout(kw, inputs, targets, weights):
    ex = tasks.edge_examples(G23, spec(**kw), direction="forward")
    assert ex.inputs_NxT.dtype == np.int32 and ex.targets_NxT.dtype == np.int32
    assert ex.weights_NxT.dtype == np.float32
    assert len(ex.inputs_NxT) == 4  # forward edges of G(2,3)
    r = _row_of(ex, inputs)
    np.testing.assert_array_equal(ex.targets_NxT[r], targets)
    np.testing.assert_array_equal(ex.weights_NxT[r], weights)
    # every row: the scored position predicts the edge's head node; all rows one weight
    assert (ex.weights_NxT.sum(1) == 1).all()
    pred_v = ex.targets_NxT[ex.weights_NxT > 0]
    src = ex.inputs_NxT[:, int(spec(**kw).task_tokens)]
    fwd = {tuple(e) for e in G23.forward_edges_Ex2.tolist()}
    assert {(int(u), int(v)) for u, v in zip(src, pred_v)} == fwd


def test_edge_directions_and_self_edges():
    s = spec()
    both = tasks.edge_examples(G23, s)
    back = tasks.edge_examples(G23, s, direction="backward")
    selfe = tasks.edge_examples(G23, s, direction="both", self_edges=True)
    pairs = lambda ex: {(int(a), int(b)) for a, b in zip(ex.inputs_NxT[:, 1], ex.targets_NxT[:, 1])}
    fwd = {tuple(e) for e in G23.forward_edges_Ex2.tolist()}
    assert pairs(back) == {(v, u) for u, v in fwd}
    assert pairs(both) == fwd | {(v, u) for u, v in fwd} and len(both.inputs_NxT) == 8
    assert pairs(selfe) == pairs(both) | {(i, i) for i in range(5)} and len(selfe.inputs_NxT) == 13


# ---------------------------------------------------------------------------- path examples

PATH_CASES = [
    # (spec kwargs, inputs, targets, weights) for the train path 0-1-2 (leaf 2), p = 1
    ({}, [PATH, 2, PAUSE, 0, 1], [2, PAUSE, 0, 1, 2], [0, 0, 1, 1, 1]),
    ({"task_tokens": False}, [2, PAUSE, 0, 1], [PAUSE, 0, 1, 2], [0, 1, 1, 1]),
    ({"pause_tokens": 0}, [PATH, 2, 0, 1], [2, 0, 1, 2], [0, 1, 1, 1]),
    ({"pause_tokens": 3}, [PATH, 2, PAUSE, PAUSE, PAUSE, 0, 1], [2, PAUSE, PAUSE, PAUSE, 0, 1, 2],
     [0, 0, 0, 0, 1, 1, 1]),
    ({"root_in_prefix": True}, [PATH, 2, PAUSE, 0, 1], [2, PAUSE, 0, 1, 2], [0, 0, 0, 1, 1]),
    ({"reverse_path": True}, [PATH, 2, PAUSE, 2, 1], [2, PAUSE, 2, 1, 0], [0, 0, 1, 1, 1]),
    ({"reverse_path": True, "root_in_prefix": True}, [PATH, 2, PAUSE, 0, 2], [2, PAUSE, 0, 2, 1],
     [0, 0, 0, 1, 1]),
    ({"teacherless": True}, [PATH, 2, PAUSE, DOLLAR, DOLLAR], [2, PAUSE, 0, 1, 2], [0, 0, 1, 1, 1]),
    ({"teacherless": True, "root_in_prefix": True}, [PATH, 2, PAUSE, 0, DOLLAR], [2, PAUSE, 0, 1, 2],
     [0, 0, 0, 1, 1]),
    ({"target": "hardest_token"}, [PATH, 2, PAUSE], [2, PAUSE, 1], [0, 0, 1]),
    ({"target": "hardest_token", "root_in_prefix": True}, [PATH, 2, PAUSE, 0], [2, PAUSE, 0, 1],
     [0, 0, 0, 1]),
    ({"target": "hardest_token", "task_tokens": False, "pause_tokens": 2}, [2, PAUSE, PAUSE],
     [PAUSE, PAUSE, 1], [0, 0, 1]),
]


@pytest.mark.parametrize("kw, inputs, targets, weights", PATH_CASES)
def test_path_example_layout(kw, inputs, targets, weights):
    s = spec(**kw)
    ex = tasks.path_examples(G23.train_paths_PxL, 5, s)
    np.testing.assert_array_equal(ex.inputs_NxT, [inputs])
    np.testing.assert_array_equal(ex.targets_NxT, [targets])
    np.testing.assert_array_equal(ex.weights_NxT, [weights])
    # prefix_length = index of the first scored position + 1; target_length = #scored
    assert np.flatnonzero(ex.weights_NxT[0])[0] == tasks.prefix_length(s) - 1
    assert ex.weights_NxT.sum() == tasks.target_length(s, 3)


def _check_shift(ex, pad):
    """inputs[t+1] == targets[t] on scored positions but the last; [PAD] after each example."""
    w = ex.weights_NxT > 0
    last_NxT = w & ~np.concatenate([w[:, 1:], np.zeros_like(w[:, :1])], axis=1)
    inner = (w & ~last_NxT)[:, :-1]
    np.testing.assert_array_equal(ex.inputs_NxT[:, 1:][inner], ex.targets_NxT[:, :-1][inner])
    after = np.cumsum(last_NxT, axis=1) - last_NxT > 0  # positions after the last scored one
    assert (ex.targets_NxT[after] == pad).all() and (ex.inputs_NxT[after] == pad).all()
    assert (last_NxT.sum(1) == 1).all()


def test_shift_relation_and_padding_on_every_option_combination():
    """The shift relation holds for every option combination, padded or not."""
    graph = star_graph(4, 5)
    bools = list(itertools.product([False, True], repeat=4))
    for target, (tt, rp, rip, pie) in itertools.product(tasks.TARGETS, bools):
        if target == "hardest_token" and rp:
            continue
        s = spec(target=target, task_tokens=tt, reverse_path=rp, root_in_prefix=rip,
                 pause_in_edges=pie, pause_tokens=2)
        tab = tasks.build_task_tables(graph, s)
        for ex in (tab.train, tab.edges, tab.test_paths):
            _check_shift(ex, tasks.special_id(17, "[PAD]"))
        assert (tab.test_paths.weights_NxT.sum(1) == tasks.target_length(s, 5)).all()


def test_teacherless_only_changes_inputs_after_prefix():
    graph = star_graph(4, 5)
    plain = tasks.build_task_tables(graph, spec(pause_tokens=2))
    tl = tasks.build_task_tables(graph, spec(pause_tokens=2, teacherless=True))
    p = tasks.prefix_length(spec(pause_tokens=2))
    for a, b in ((plain.test_paths, tl.test_paths), (plain.train_paths, tl.train_paths)):
        np.testing.assert_array_equal(a.targets_NxT, b.targets_NxT)
        np.testing.assert_array_equal(a.weights_NxT, b.weights_NxT)
        np.testing.assert_array_equal(a.inputs_NxT[:, :p], b.inputs_NxT[:, :p])
        assert (b.inputs_NxT[:, p:] == tasks.special_id(17, "$")).all()  # T ends at the last input
    np.testing.assert_array_equal(plain.edges.inputs_NxT, tl.edges.inputs_NxT)  # edges untouched


# ---------------------------------------------------------------------------- task tables


def test_build_task_tables_counts_and_contents():
    graph = star_graph(4, 5)  # 17 nodes, 3 train arms, 1 test arm
    s = spec(pause_tokens=2)
    tab = tasks.build_task_tables(graph, s)
    assert (tab.num_nodes, tab.vocab_size) == (17, 26)
    assert (tab.num_edge_examples, tab.num_train_paths, tab.num_test_paths) == (32, 3, 1)
    t = tasks.prefix_length(s) + 5 - 1  # 4 + 5 - 1
    for ex in (tab.train, tab.edges, tab.train_paths, tab.test_paths):
        assert ex.inputs_NxT.shape[1] == t
    assert len(tab.train.inputs_NxT) == 35
    for a, e, p in zip(tab.train, tab.edges, tab.train_paths):  # mixed: edges first, then paths
        np.testing.assert_array_equal(a, np.concatenate([e, p]))
    # every edge of a held-out path is an edge example, both directions
    pairs = {(int(u), int(v)) for u, v in zip(tab.edges.inputs_NxT[:, 1],
                                            tab.edges.targets_NxT[:, 1])}
    for path in graph.test_paths_QxL:
        for u, v in zip(path[:-1], path[1:]):
            assert (u, v) in pairs and (v, u) in pairs
    # decoding prompts agree with the teacher-forced test examples
    p = tab.prefix_length
    np.testing.assert_array_equal(tab.test_prefix_QxP, tab.test_paths.inputs_NxT[:, :p])
    np.testing.assert_array_equal(tab.test_targets_QxL, graph.test_paths_QxL)
    np.testing.assert_array_equal(tab.train_targets_PxL, graph.train_paths_PxL)
    np.testing.assert_array_equal(
        tab.test_targets_QxL, tab.test_paths.targets_NxT[tab.test_paths.weights_NxT > 0].reshape(1, 5))
    # successors: CSR agrees with the edge examples; edge queries per node
    succ = {(u, int(v)) for u in range(17)
            for v in tab.succ_indices_K[tab.succ_indptr_N1[u]:tab.succ_indptr_N1[u + 1]]}
    assert succ == pairs
    np.testing.assert_array_equal(tab.edge_prefix_NxPe, np.stack([np.full(17, 24), np.arange(17)], 1))


def test_build_task_tables_hardest_token_and_graph_without_paths():
    tab = tasks.build_task_tables(star_graph(4, 5), spec(target="hardest_token"))
    np.testing.assert_array_equal(tab.test_targets_QxL, star_graph(4, 5).test_paths_QxL[:, 1:2])
    assert tab.target_length == 1 and tab.train.inputs_NxT.shape[1] == 3
    cyc = tasks.build_task_tables(graphs.cycle(6), spec(), direction="both", self_edges=True)
    assert (cyc.num_edge_examples, cyc.num_train_paths, cyc.num_test_paths) == (18, 0, 0)
    assert cyc.train_paths.inputs_NxT.shape == (0, 2) and cyc.test_prefix_QxP.shape == (0, 3)
    np.testing.assert_array_equal(np.diff(cyc.succ_indptr_N1), np.full(6, 3))


def test_build_task_tables_is_fast_on_paper_graph():
    graph = graphs.path_star(10_000, 6, seed=0)  # G(10^4, 6): 50,001 nodes
    start = time.perf_counter()
    tab = tasks.build_task_tables(graph, spec(pause_tokens=5))
    elapsed = time.perf_counter() - start
    assert tab.num_edge_examples == 100_000 and tab.train.inputs_NxT.shape == (107_500, 7 + 6 - 1)
    assert elapsed < 1.0, elapsed
    # held-out path edges (random ids here) are all edge examples, both directions
    code = lambda u, v: u.astype(np.int64) * graph.num_nodes + v
    edge_codes = code(tab.edges.inputs_NxT[:, 1], tab.edges.targets_NxT[:, 1])
    q = graph.test_paths_QxL
    assert np.isin(code(q[:, :-1], q[:, 1:]), edge_codes).all()
    assert np.isin(code(q[:, 1:], q[:, :-1]), edge_codes).all()
    np.testing.assert_array_equal(tab.test_targets_QxL, q)


# ---------------------------------------------------------------------------- sweep padding


def test_pad_to():
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(tasks.pad_to(x, (3, 4), -1),
                                  [[0, 1, 2, -1], [3, 4, 5, -1], [-1, -1, -1, -1]])
    with pytest.raises(ValueError):
        tasks.pad_to(x, (1, 4), 0)


def test_stack_tables_masks_and_unpadded_slices():
    s = spec(pause_tokens=1)
    small, big = star_graph(2, 3), star_graph(4, 5)  # N = 5 and 17, ℓ = 3 and 5
    t_small, t_big = tasks.build_task_tables(small, s), tasks.build_task_tables(big, s)
    st = tasks.stack_tables([t_small, t_big])
    v, t = 26, t_big.train.inputs_NxT.shape[1]
    assert st.train_inputs_SxRxT.shape == (2, 35, t)
    assert st.vocab_mask_SxV.shape == (2, v)
    np.testing.assert_array_equal(st.vocab_mask_SxV[0], np.arange(v) < 14)
    assert st.vocab_mask_SxV[1].all()
    np.testing.assert_array_equal(st.num_nodes_S, [5, 17])
    np.testing.assert_array_equal(st.pad_id_S, [11, 23])
    np.testing.assert_array_equal(st.path_length_S, [3, 5])
    np.testing.assert_array_equal(st.train_rows_S, [8 + 1, 32 + 3])
    np.testing.assert_array_equal(st.edge_rows_S, [8, 32])
    np.testing.assert_array_equal(st.test_path_rows_S, [1, 1])
    for i, tab in enumerate((t_small, t_big)):
        for name, ex in (("train", tab.train), ("edge", tab.edges), ("train_path", tab.train_paths),
                         ("test_path", tab.test_paths)):
            rows = len(ex.inputs_NxT)
            rows_letter = {"train": "R", "edge": "E", "train_path": "P", "test_path": "Q"}[name]
            stacked = [getattr(st, f"{name}_{f}_Sx{rows_letter}xT") for f in ("inputs", "targets", "weights")]
            for got, want in zip(stacked, ex):
                w = want.shape[1]
                np.testing.assert_array_equal(got[i, :rows, :w], want)
            # beyond the experiment's own rows and length: [PAD] / weight 0
            assert (stacked[2][i, rows:] == 0).all() and (stacked[2][i, :, ex.weights_NxT.shape[1]:] == 0).all()
            assert (stacked[0][i, rows:] == st.pad_id_S[i]).all()
        # scored targets are real tokens of the experiment's own vocabulary
        scored = st.train_targets_SxRxT[i][st.train_weights_SxRxT[i] > 0]
        assert st.vocab_mask_SxV[i][scored].all() and (scored < tab.num_nodes).all()
        assert st.vocab_mask_SxV[i][st.train_inputs_SxRxT[i]].all()
    # test prompts: small experiment's targets are ℓ=3 long, padded and masked to L = 5
    assert st.test_targets_SxQxL.shape == (2, 1, 5) and st.test_prefix_SxQxP.shape == (2, 1, 3)
    np.testing.assert_array_equal(st.test_target_mask_SxQxL[0, 0], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(st.test_targets_SxQxL[0, 0, :3], small.test_paths_QxL[0])
    assert st.test_row_mask_SxQ.all()
    assert st.train_row_mask_SxP.tolist() == [[True, False, False], [True, True, True]]
    assert not st.train_target_mask_SxPxL[0, 1:].any()
    # edge recall data: directed pairs, degrees, node masks
    assert st.recall_mask_SxK.sum(1).tolist() == [8, 32]
    np.testing.assert_array_equal(st.out_degree_SxN[0], [2, 2, 1, 2, 1] + [0] * 12)
    np.testing.assert_array_equal(st.node_mask_SxN[0], np.arange(17) < 5)
    k = st.recall_mask_SxK[0]
    got = {(int(a), int(b)) for a, b in zip(st.recall_src_SxK[0][k], st.recall_dst_SxK[0][k])}
    assert got == {(int(a), int(b)) for a, b in small.directed_edges()}
    np.testing.assert_array_equal(st.edge_prefix_SxNxPe[0, :5], t_small.edge_prefix_NxPe)


def test_stack_tables_mixed_families_and_spec_mismatch():
    st = tasks.stack_tables([tasks.build_task_tables(graphs.cycle(4), spec()),
                             tasks.build_task_tables(star_graph(2, 3), spec())])
    assert st.train_inputs_SxRxT.shape[2] == 5  # path examples are longer than edge examples
    # the cycle's edge rows (2 positions) are padded with its own [PAD] (id 4 + 6) to T = 5
    assert (st.train_inputs_SxRxT[0, :, 2:] == 10).all() and (st.train_targets_SxRxT[0, :, 2:] == 10).all()
    assert (st.train_weights_SxRxT[0, :, 2:] == 0).all() and (st.train_weights_SxRxT[0, :8, 1] == 1).all()
    # padding after the fact == building at the longer length directly
    direct = tasks.edge_examples(graphs.cycle(4), spec(), length=5)
    for got, want in zip((st.edge_inputs_SxExT, st.edge_targets_SxExT, st.edge_weights_SxExT), direct):
        np.testing.assert_array_equal(got[0], want)
    assert st.test_row_mask_SxQ.tolist() == [[False], [True]]
    assert st.test_path_rows_S.tolist() == [0, 1]
    with pytest.raises(ValueError, match="task spec"):
        tasks.stack_tables([tasks.build_task_tables(G23, spec(pause_tokens=1)),
                            tasks.build_task_tables(G23, spec(pause_tokens=2))])


# ---------------------------------------------------------------------------- errors and config


def test_spec_validation_errors():
    with pytest.raises(ConfigError) as err:
        TaskSpec(pause_tokens=-1)
    assert err.value.field == "task.pause_tokens"
    with pytest.raises(ConfigError) as err:
        TaskSpec(target="whole_path")
    assert err.value.field == "task.target" and "full_path, hardest_token" in str(err.value)
    with pytest.raises(ConfigError) as err:
        TaskSpec(target="hardest_token", reverse_path=True)
    assert err.value.field == "task.reverse_path"
    with pytest.raises(ConfigError) as err:
        tasks.build_task_tables(graphs.cycle(5), TaskSpec(target="hardest_token"))
    assert err.value.field == "task.target"
    with pytest.raises(ConfigError) as err:
        tasks.path_examples(np.array([[3], [4]]), 5, TaskSpec())
    assert err.value.field == "graph.path_length"


def test_task_spec_from_config():
    cfg = ml_collections.ConfigDict({"pause_tokens": 5, "target": "hardest_token",
                                     "root_in_prefix": True, "recipe": "mixed"})
    s = tasks.task_spec_from_config(cfg)
    assert s == TaskSpec(pause_tokens=5, target="hardest_token", root_in_prefix=True)
    assert tasks.task_spec_from_config({}) == TaskSpec()
    with pytest.raises(ConfigError) as err:
        tasks.task_spec_from_config({"teacherless": "yes"})
    assert err.value.field == "task.teacherless"
    with pytest.raises(ConfigError):
        tasks.task_spec_from_config({"pause_tokens": 1.5})


# ---------------------------------------------------------------------------- in-context


def _check_in_context_example(ex, degree, path_length, num_values, teacherless):
    edges, source, goal, path = tasks.decode_in_context(ex, num_values)
    n = degree * (path_length - 1) + 1
    assert len(edges) == n - 1
    nodes = np.unique(edges)
    assert len(nodes) == n and nodes.max() < num_values  # distinct labels, node tokens only
    children = {}
    for u, v in edges.tolist():
        children.setdefault(u, []).append(v)
    assert sorted(len(c) for c in children.values()) == [1] * (n - 1 - degree) + [degree]
    assert len(children[source]) == degree and source not in edges[:, 1]  # root: d out-edges
    # walk every arm from the root: ℓ-1 nodes, ending in a leaf
    leaves = []
    for first in children[source]:
        arm = [first]
        while arm[-1] in children:
            arm.append(children[arm[-1]][0])
        assert len(arm) == path_length - 1
        leaves.append(arm)
    goal_arm = [a for a in leaves if a[-1] == goal]
    assert len(goal_arm) == 1
    np.testing.assert_array_equal(path, [source] + goal_arm[0])
    p = tasks.in_context_prefix_length(degree, path_length)
    w = np.asarray(ex.weights_NxT)
    assert np.flatnonzero(w).tolist() == list(range(p - 1, p - 1 + path_length))
    inputs = np.asarray(ex.inputs_NxT)
    if teacherless:
        assert (inputs[p:] == num_values + 3).all()
        np.testing.assert_array_equal(inputs[:p], np.concatenate([inputs[:1], ex.targets_NxT[:p - 1]]))
    else:
        np.testing.assert_array_equal(inputs[1:], np.asarray(ex.targets_NxT)[:-1])  # no padding here
    return goal, list(edges[:, 0])


@pytest.mark.parametrize("teacherless, num_values", [(False, 20), (True, 10)])
def test_in_context_batch_decodes_to_path_stars(teacherless, num_values):
    degree, ell, b = 3, 4, 16
    batch = tasks.in_context_batch(jax.random.key(0), b, degree, ell, num_values, teacherless)
    t = tasks.in_context_prefix_length(degree, ell) + ell - 1
    assert batch.inputs_NxT.shape == (b, t) and batch.inputs_NxT.dtype == jnp.int32
    batch = tasks.Examples(*(np.asarray(x) for x in batch))
    goals, orders, labels = set(), set(), set()
    for i in range(b):
        row = tasks.Examples(*(x[i] for x in batch))
        goal, order = _check_in_context_example(row, degree, ell, num_values, teacherless)
        goals.add(goal)
        orders.add(tuple(order))
        labels.add(tuple(sorted(set(tasks.decode_in_context(row, num_values)[0].ravel().tolist()))))
    assert len(goals) > 1 and len(orders) > 1  # fresh graphs, shuffled edge lists
    if num_values == 10:  # exactly as many values as nodes: every label used once
        assert labels == {tuple(range(10))}
    else:
        assert len(labels) > 1


def test_in_context_batch_under_jit_of_vmap():
    """A sweep of seeds: jit(vmap over keys) equals calling each key alone."""
    keys = jax.random.split(jax.random.key(1), 2)
    swept = jax.jit(jax.vmap(lambda k: tasks.in_context_batch(k, 16, 3, 4, 20)))(keys)
    assert swept.inputs_NxT.shape == (2, 16, tasks.in_context_prefix_length(3, 4) + 3)
    for s_i in range(2):
        alone = tasks.in_context_batch(keys[s_i], 16, 3, 4, 20)
        for a, c in zip(swept, alone):
            np.testing.assert_array_equal(np.asarray(a)[s_i], np.asarray(c))
    row = tasks.Examples(*(np.asarray(x)[0, 0] for x in swept))
    _check_in_context_example(row, 3, 4, 20, False)


def test_in_context_errors():
    with pytest.raises(ConfigError) as err:
        tasks.in_context_batch(jax.random.key(0), 2, 3, 4, 9)  # G(3,4) has 10 nodes
    assert err.value.field == "task.num_values" and ">= 10" in str(err.value)
    with pytest.raises(ConfigError) as err:
        tasks.in_context_batch(jax.random.key(0), 2, 3, 1, 50)
    assert err.value.field == "graph.path_length"
    with pytest.raises(ConfigError) as err:
        tasks.in_context_batch(jax.random.key(0), 2, 0, 4, 50)
    assert err.value.field == "graph.degree"
