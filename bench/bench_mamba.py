"""Mamba training step on configs/pathstar.py:mamba_cpu's task: how the SSM state width (d_state) sets
the step time, against the Transformer of configs/pathstar.py:cpu on the same task.

    python bench/bench_mamba.py            # writes bench/results/mamba.{json,md}

One vmapped pair of experiments (the CPU default group), batch 256, 2 layers × 64. At this 7-token
sequence length the selective scan's B × T × E × N tensors dominate the step, so d_state 4 (the
preset's) costs about 40% of the usual 16 (docs/FULL_PATH.md, Mamba).
"""

from __future__ import annotations

import sys

import jax

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import time_chunk, write  # noqa: E402

from geomem_jax import config, sweep, train  # noqa: E402

STEPS = 10
SEEDS = 2


def measure(preset: str, overrides=()) -> dict:
    import jax.numpy as jnp

    cfg = config.load_config(f"configs/pathstar.py:{preset}")
    config.apply_override(cfg, "sweep.seeds", str(tuple(range(SEEDS))))
    for dotted, text in overrides:
        config.apply_override(cfg, dotted, text)
    exps, program, data, _ = train.build(cfg)
    hp = {k: jnp.asarray(v) for k, v in sweep.hparam_arrays(exps).items()}
    data = {k: jnp.asarray(v) for k, v in data.items()}
    state = jax.jit(jax.vmap(program.init))(jnp.asarray(sweep.seed_keys(exps)), hp, data)
    s_per_step, compile_s = time_chunk(program, state, hp, data, STEPS, sweep.CPU_VMAP_GROUP, SEEDS)
    return {"preset": preset, "overrides": dict(overrides), "family": cfg.model.family, "layers": cfg.model.layers,
            "d_state": cfg.model.d_state if cfg.model.family == "mamba" else None,
            "s_per_step": s_per_step, "compile_s": compile_s}


def main():
    rows = [measure("mamba_cpu", (("model.d_state", str(n)),)) for n in (16, 8, 4)]
    rows.append(measure("cpu"))
    base = rows[0]["s_per_step"]
    md = [f"{SEEDS} experiments in one vmapped pair, batch 256, G(100, 5) full path, median of 3 × {STEPS} steps.\n",
          "| model | d_state | ms/step | speed vs Mamba at d_state 16 |", "|---|---|---|---|"]
    for r in rows:
        r["vs_d_state_16"] = base / r["s_per_step"]
        model = f"{r['family']} {r['layers']} layer(s)" + (" (`pathstar.py:cpu`)" if r["preset"] == "cpu" else "")
        md.append(f"| {model} | {r['d_state'] or '—'} | {r['s_per_step'] * 1e3:.1f} | {r['vs_d_state_16']:.2f}× |")
    write("mamba", {"experiments": SEEDS, "rows": rows}, "\n".join(md), "python bench/bench_mamba.py")
    print("\n".join(md))


if __name__ == "__main__":
    main()
