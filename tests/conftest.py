"""Shared test setup: fake CPU devices, a persistent compile cache, tiny configs, workdirs."""

import atexit
import os
import shutil
import tempfile

# XLA compiles with most optimisations off: the same programs are traced, lowered, compiled and
# run, in about a third of the compile time, which is most of the suite's cost. Set before jax is
# imported, so every subprocess (CLI runs, kill tests) inherits it. The model modules, which check
# numbers against numpy, compile optimised (`optimized_compiles`), as users' runs do.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402

# Before any computation: 4 fake CPU devices (sharding tests), float32 everywhere.
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", False)
# Several tests run the same tiny program (identical HLO) through separate loop.run /
# CLI calls; a per-session persistent cache compiles each program once.
_CACHE_DIR = tempfile.mkdtemp(prefix="geomem_test_jit_")
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import pytest  # noqa: E402

from geomem_jax import config as config_lib  # noqa: E402

SMOKE = "configs/pathstar.py:smoke"
# The tiny in-weights run most training tests share (as CLI-style overrides).
TINY_OVERRIDES = (
    ("graph.degree", "5"), ("graph.path_length", "4"),
    ("model.layers", "1"), ("model.width", "32"), ("model.heads", "2"),
    ("train.steps", "40"), ("train.batch_size", "16"),
    ("opt.lr", "3e-3"), ("opt.warmup_steps", "5"),
    ("eval.every", "10"), ("ckpt.every", "10"), ("sweep.seeds", "(0,1)"),
)


def make_tiny_cfg(*extra):
    """A fresh pathstar smoke config with TINY_OVERRIDES, then `extra` (dotted key, text) pairs."""
    cfg = config_lib.load_config(SMOKE)
    for dotted, text in (*TINY_OVERRIDES, *extra):
        config_lib.apply_override(cfg, dotted, text)
    return cfg


@pytest.fixture(scope="session")
def tiny_cfg_factory():
    return make_tiny_cfg


@pytest.fixture(scope="session")
def tiny_overrides():
    return TINY_OVERRIDES


@pytest.fixture
def tiny_cfg():
    return make_tiny_cfg()


@pytest.fixture(scope="module")
def optimized_compiles():
    """XLA with its optimisations for a whole module (`pytestmark = pytest.mark.usefixtures(...)`):
    module scope, so that the module's shared fixtures compile optimised too. A compile option
    with its own persistent-cache entries; not part of jax's in-memory jit key, so a function
    compiled before in this process keeps its executable."""
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture
def workdir(tmp_path):
    """A fresh, not yet existing run directory."""
    return tmp_path / "run"


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: the random-kill trial (tests/test_chaos.py, ~1.5 min)")
