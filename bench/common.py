"""Shared bench helpers: machine description, result files, a measured f32 matmul peak."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import jax
    import numpy as np

    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
        "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
        "loadavg_1m": os.getloadavg()[0],
    }


def write(name: str, result: dict, markdown: str, command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "machine": machine(), **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    header = (f"# {name}\n\nCommand: `{command}`\n\nMachine: {m['platform']}, {m['cpu_count']} CPUs, "
              f"jax {m['jax']}, load average {m['loadavg_1m']:.1f} at the start\n\n")
    (RESULTS / f"{name}.md").write_text(header + markdown + "\n")


def timeit(fn, repeats: int = 3) -> float:
    """Median wall time of fn() (fn must block until its result is ready)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def time_chunk(program, state, hp, data, steps: int, group: int, experiments: int) -> tuple[float, float]:
    """(median seconds per step over 3 chunks of `steps`, seconds of the first call: compile + one chunk)
    of the training chunk that `geomem train` runs, its experiments vmapped in groups of `group`."""
    import jax

    from geomem_jax import loop

    chunk = loop.jit_chunk(program, steps, group=group, num_experiments=experiments)
    t0 = time.perf_counter()
    holder = [chunk(state, hp, data)[0]]
    jax.block_until_ready(holder[0])
    compile_s = time.perf_counter() - t0

    def run():
        holder[0] = chunk(holder[0], hp, data)[0]
        jax.block_until_ready(holder[0])

    return timeit(run, 3) / steps, compile_s


def matmul_peak_flops(n: int = 1024, repeats: int = 5) -> float:
    """Achieved f32 FLOP/s of an n x n matmul on this machine, measured now."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    dt = timeit(lambda: f(a).block_until_ready(), repeats)
    return 2 * n**3 / dt


# The model every step bench measures: the release's CPU Transformer (2 x 128, 4 heads) with uniform
# mixing, on configs/pathstar.py:cpu's task (G(100, 5), full path). Pinned here, so the benches stay
# comparable across versions of that preset (it was this model until 2026-12-02; now 1 x 64).
BENCH_MODEL = (("model.layers", "2"), ("model.width", "128"), ("model.heads", "4"), ("train.mixing", "uniform"),
               ("opt.lr", "1e-2"), ("opt.weight_decay", "1.0"))


def pathstar_cpu_setup(batch: int, seeds: int = 1, width: int | None = None, overrides=()):
    """The configs/pathstar.py:cpu program with the BENCH_MODEL and `seeds` vmapped experiments,
    initialised on device; `overrides` are (dotted key, text) pairs applied last.

    Returns (cfg, dims, program, state, hp, data)."""
    import jax
    import jax.numpy as jnp

    from geomem_jax import config, sweep, train

    cfg = config.load_config("configs/pathstar.py:cpu")
    for dotted, text in BENCH_MODEL:
        config.apply_override(cfg, dotted, text)
    if width is not None:
        config.apply_override(cfg, "model.width", str(width))
    config.apply_override(cfg, "train.batch_size", str(batch))
    config.apply_override(cfg, "sweep.seeds", str(tuple(range(seeds))))
    for dotted, text in overrides:
        config.apply_override(cfg, dotted, text)
    exps, program, data, _ = train.build(cfg)
    _, dims = train.build_data(cfg, train.build_graphs(cfg), exps)
    hp = {k: jnp.asarray(v) for k, v in sweep.hparam_arrays(exps).items()}
    data = {k: jnp.asarray(v) for k, v in data.items()}
    state = jax.jit(jax.vmap(program.init))(jnp.asarray(sweep.seed_keys(exps)), hp, data)
    return cfg, dims, program, state, hp, data
