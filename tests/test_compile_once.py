"""Compile once per shape: the chunk and eval executables are reused across chunks (issue 6).

The counter is JAX's own compile log (`jax.log_compiles`): every lowering of a jitted
function logs "Compiling jit(<name>) with global shapes ..." before the persistent
cache is consulted, so it counts compile requests even when conftest's on-disk cache
would serve the executable. `init` (compiled once by construction) is the positive
control that the counter sees compilations at all.
"""

import collections
import logging
import re

import jax

from geomem_jax import loop, metrics

COMPILING = re.compile(r"^Compiling (\S+) with global shapes")


class _CompileLog(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names = []

    def emit(self, record):
        match = COMPILING.match(record.getMessage())
        if match:
            self.names.append(match.group(1))


def _count(names, fn_name):
    return sum(1 for n in names if re.search(rf"\b{fn_name}\b", n))


def _compiles_of_run(cfg, workdir) -> collections.Counter:
    handler = _CompileLog()
    logger = logging.getLogger("jax._src.interpreters.pxla")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            loop.run(cfg, workdir, progress=False)
    finally:
        logger.removeHandler(handler)
    return collections.Counter({name: _count(handler.names, name) for name in ("init", "run_chunk", "evaluate")})


def _assert_once(cfg, workdir):
    counts = _compiles_of_run(cfg, workdir)
    steps = [r["step"] for r in metrics.read_metrics(workdir / "metrics.jsonl")]
    assert steps == [10, 20, 30, 40]  # 4 chunks of 10 steps, 4 evaluations
    assert counts == {"init": 1, "run_chunk": 1, "evaluate": 1}


def test_chunk_and_eval_compile_once_on_one_device(tiny_cfg_factory, workdir):
    cfg = tiny_cfg_factory()  # 40 steps, eval.every = 10
    assert (cfg.train.steps, cfg.eval.every, cfg.mesh.devices) == (40, 10, "1")
    _assert_once(cfg, workdir)


def test_chunk_and_eval_compile_once_on_a_4_device_mesh(tiny_cfg_factory, workdir):
    assert jax.device_count() >= 4  # conftest: jax_num_cpu_devices=4
    _assert_once(tiny_cfg_factory(("mesh.devices", "4")), workdir)
