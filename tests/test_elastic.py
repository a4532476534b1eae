"""Elastic resume (issue 16): a run checkpointed on N devices resumes on M devices.

A preempted TPU slice often comes back with another chip count. The checkpoint holds the
sweep axis padded for N devices; the resume restores it onto the new mesh (Orbax reads with
the new mesh's target sharding) and re-pads it for M. The run then ends where an
uninterrupted run ends: discrete metrics identical, floats within tolerance.

8 fake CPU devices need a fresh process (conftest fixes 4 for this one), so the pairs run in
child processes; this process compares the run directories they leave. Two children share the
two cores: one runs the reference and the pairs on 1 and 4 devices, the other those on 2 and 8
(each compiles the programs of its own device counts).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fault_helpers as fh
from geomem_jax import checkpoint, distributed

PAIRS = ((4, 1), (1, 4), (8, 2), (2, 8))
CHILDREN = (((4, 1), (1, 4)), ((8, 2), (2, 8)))  # the reference runs in the first
SEEDS = 5  # padded to 8 rows on 4 and 8 devices, 6 on 2: never an even split
PADDED_ROWS = {1: 5, 2: 6, 4: 8, 8: 8}
STOP_AT_METRICS_LINE = 2  # SIGTERM after the 2nd evaluation (step 20 of 40): checkpoint, exit
ARGS = (
    ("model.width", "16"), ("train.steps", "40"), ("train.full_batch", "false"), ("train.batch_size", "8"),
    ("eval.every", "10"), ("ckpt.every", "10"), ("sweep.seeds", str(tuple(range(SEEDS)))),
)
FLOAT_TOLERANCE = 1e-5

# A child: (in the first one) a reference run on one device, then per pair a run on N devices
# stopped by SIGTERM (what a preemption sends) and its resume on M devices.
CHILD = """
import json, os, signal, sys
import jax
jax.config.update("jax_num_cpu_devices", 8)
from geomem_jax import checkpoint, config as config_lib, loop, metrics

root, pairs, args, stop_line = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
with_reference = sys.argv[5] == "reference"

def cfg_on(devices):
    cfg = config_lib.load_config("configs/tiny_graphs.py:cycle_neural_net")
    for dotted, text in [*args, ("mesh.devices", str(devices))]:
        config_lib.apply_override(cfg, dotted, text)
    return cfg

original_write, written = metrics.MetricsWriter.write, []
def write_then_preempt(self, record):
    original_write(self, record)
    written.append(record["step"])
    if len(written) == stop_line:
        os.kill(os.getpid(), signal.SIGTERM)

if with_reference:
    loop.run(cfg_on(1), f"{root}/reference", progress=False)
report = {}
for n, m in pairs:
    workdir = f"{root}/from{n}to{m}"
    written.clear()
    metrics.MetricsWriter.write = write_then_preempt
    try:
        loop.run(cfg_on(n), workdir, progress=False)
        stopped = None
    except loop.Interrupted as err:
        stopped = str(err)
    metrics.MetricsWriter.write = original_write
    steps_at_stop = checkpoint.complete_steps(workdir)
    loop.run(cfg_on(m), workdir, resume=True, progress=False)
    report[f"{n}->{m}"] = {"stopped": stopped, "steps_at_stop": steps_at_stop,
                           "saved_rows": checkpoint.saved_sweep_size(workdir, 40)}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def elastic_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("elastic")
    assert sorted(pair for pairs in CHILDREN for pair in pairs) == sorted(PAIRS)
    env = {k: v for k, v in fh.subprocess_env().items() if k != "JAX_NUM_CPU_DEVICES"}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(root), json.dumps(pairs), json.dumps(ARGS),
                                  str(STOP_AT_METRICS_LINE), "reference" if i == 0 else "-"],
                                 cwd=fh.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i, pairs in enumerate(CHILDREN)]
    report = {}
    try:
        for child in children:
            out, err = child.communicate(timeout=600)
            assert child.returncode == 0, err[-3000:]
            report.update(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            child.kill()
            child.wait()
    return root, report


def _is_discrete(name: str) -> bool:
    """Counts and shares of right answers (must match exactly); the rest are real numbers."""
    return name == "diverged_at" or any(t in name for t in (
        "recall", "accuracy", "exact_match", "first_token", "top1", "token_", "child"))


def _metric_mismatches(got: list[dict], want: list[dict]) -> list[str]:
    """Where two metric streams (without wall-clock) differ: discrete values exactly, floats within tolerance."""
    if [r["step"] for r in got] != [r["step"] for r in want]:
        return [f"steps {[r['step'] for r in got]} vs {[r['step'] for r in want]}"]
    out = []
    for rg, rw in zip(got, want):
        for eg, ew in zip(rg["experiments"], rw["experiments"], strict=True):
            if eg.keys() != ew.keys():
                out.append(f"step {rg['step']} exp {eg.get('index')}: keys differ")
                continue
            for name, value in ew.items():
                same = eg[name] == value if _is_discrete(name) or not isinstance(value, float) \
                    else abs(eg[name] - value) <= FLOAT_TOLERANCE * max(1.0, abs(value))
                if not same:
                    out.append(f"step {rg['step']} exp {ew['index']} {name}: {eg[name]} vs {value}")
    return out


def _finals(summary) -> dict:
    """summary.json's final values in the shape of a metrics record."""
    return {"step": "final", "experiments": [{"index": e["index"], **e["final"]} for e in summary["experiments"]]}


@pytest.mark.parametrize("n, m", PAIRS, ids=[f"{n}to{m}" for n, m in PAIRS])
def test_a_run_stopped_on_n_devices_resumes_on_m_and_ends_like_an_uninterrupted_run(elastic_runs, n, m):
    root, report = elastic_runs
    record = report[f"{n}->{m}"]
    assert record["stopped"] and "at step 20/40" in record["stopped"]
    assert record["steps_at_stop"] == [10, 20]  # the resume really starts from a checkpoint of N devices
    assert record["saved_rows"] == PADDED_ROWS[m]
    got, want = root / f"from{n}to{m}", root / "reference"
    assert _metric_mismatches(fh.metrics_records(got), fh.metrics_records(want)) == []
    summary_got, summary_want = (json.loads((d / "summary.json").read_text()) for d in (got, want))
    assert [e["seed"] for e in summary_got["experiments"]] == list(range(SEEDS))
    assert _metric_mismatches([_finals(summary_got)], [_finals(summary_want)]) == []
    state_got, state_want = checkpoint.restore_numpy(got, 40), checkpoint.restore_numpy(want, 40)
    got_leaves = dict(fh.leaves_with_paths(state_got))
    for path, want_leaf in fh.leaves_with_paths(state_want):
        got_leaf = got_leaves[path]
        if want_leaf.dtype == object:  # empty optimiser states
            assert got_leaf.tolist() == want_leaf.tolist(), path
        elif want_leaf.dtype.kind == "f":
            np.testing.assert_allclose(got_leaf[:SEEDS], want_leaf[:SEEDS], atol=FLOAT_TOLERANCE, err_msg=path)
        else:
            np.testing.assert_array_equal(got_leaf[:SEEDS], want_leaf[:SEEDS], err_msg=path)


def test_resize_pads_with_the_last_experiment_and_keeps_an_unchanged_size_as_is():
    import jax

    state = {"w": np.arange(8.0).reshape(4, 2), "k": np.arange(4, dtype=np.uint32)}
    mesh = distributed.sweep_mesh("2")
    target = distributed.restore_target(jax.eval_shape(lambda: state), 4, mesh)
    assert all(t.shape[0] == 4 for t in jax.tree_util.tree_leaves(target))
    resized = distributed.resize_sweep(jax.tree_util.tree_map(jax.numpy.asarray, state), 3, 6, mesh)
    assert np.asarray(resized["k"]).tolist() == [0, 1, 2, 2, 2, 2]
    assert np.asarray(resized["w"])[3:].tolist() == [[4.0, 5.0]] * 3
    assert resized["w"].sharding.is_equivalent_to(distributed.sweep_sharding(mesh), 2)
    same = {"w": jax.numpy.ones((4, 2))}
    assert distributed.resize_sweep(same, 3, 4, mesh) is same
