"""The sweep axis on a device mesh (4 fake CPU devices from conftest; 8 in a subprocess)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from geomem_jax import checkpoint, config as config_lib, distributed, loop
from geomem_jax.errors import ConfigError, UserError

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
MESH_ARGS = (
    ("model.width", "16"), ("train.steps", "40"), ("train.full_batch", "false"), ("train.batch_size", "8"),
    ("eval.every", "20"), ("ckpt.every", "20"),
)


def _cfg(seeds: int, devices: str):
    cfg = config_lib.load_config("configs/tiny_graphs.py:cycle_neural_net")
    for dotted, text in (*MESH_ARGS, ("sweep.seeds", str(tuple(range(seeds)))), ("mesh.devices", devices)):
        config_lib.apply_override(cfg, dotted, text)
    return cfg


def _assert_same_run(a_dir, b_dir):
    a, b = (json.loads((d / "summary.json").read_text()) for d in (a_dir, b_dir))
    assert len(a["experiments"]) == len(b["experiments"])
    for ea, eb in zip(a["experiments"], b["experiments"]):
        assert ea["seed"] == eb["seed"] and set(ea["final"]) == set(eb["final"])
        for name, value in ea["final"].items():
            assert eb["final"][name] == pytest.approx(value, abs=1e-5), (ea["index"], name)
    pa, pb = (checkpoint.restore_numpy(d)["params"] for d in (a_dir, b_dir))
    n = len(a["experiments"])
    for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
        np.testing.assert_allclose(x[:n], y[:n], atol=1e-5)


def test_sixteen_experiments_on_four_devices_equal_one_device(tmp_path):
    assert jax.device_count() == 4
    loop.run(_cfg(16, "1"), tmp_path / "one", progress=False)
    loop.run(_cfg(16, "4"), tmp_path / "four", progress=False)
    _assert_same_run(tmp_path / "one", tmp_path / "four")


def test_twelve_experiments_on_eight_devices_are_padded_and_correct(tmp_path):
    """8 fake devices need a fresh process; the padded sweep (16 rows) drops its 4 extra rows."""
    loop.run(_cfg(12, "1"), tmp_path / "one", progress=False)
    script = (
        "import jax; jax.config.update('jax_num_cpu_devices', 8)\n"
        "from geomem_jax import config as c, loop\n"
        f"cfg = c.load_config('configs/tiny_graphs.py:cycle_neural_net')\n"
        f"for k, v in {list(MESH_ARGS)!r} + [('sweep.seeds', {str(tuple(range(12)))!r}), ('mesh.devices', 'all')]:\n"
        "    c.apply_override(cfg, k, v)\n"
        f"loop.run(cfg, {str(tmp_path / 'eight')!r}, progress=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_run(tmp_path / "one", tmp_path / "eight")
    saved = checkpoint.restore_numpy(tmp_path / "eight")["params"]
    assert jax.tree_util.tree_leaves(saved)[0].shape[0] == 16  # padded rows are in the state only


def test_padding_helpers():
    assert distributed.padded_size(12, None) == 12
    tree = {"a": np.arange(3), "b": np.ones((3, 2))}
    padded = distributed.pad_sweep(tree, 8)
    assert padded["a"].tolist() == [0, 1, 2, 2, 2, 2, 2, 2] and padded["b"].shape == (8, 2)


@pytest.mark.parametrize("spec", ["0", "5", "-1", "abc", "2.5"])
def test_bad_device_counts_name_the_field(spec):
    with pytest.raises(ConfigError, match="mesh.devices"):
        distributed.num_devices(spec)


def test_multi_host_flag_without_coordinator_is_refused():
    with pytest.raises(UserError, match="JAX_COORDINATOR_ADDRESS"):
        distributed.maybe_initialize({"GEOMEM_DISTRIBUTED": "1", "JAX_NUM_PROCESSES": "2"})
    assert distributed.maybe_initialize({}) is False
