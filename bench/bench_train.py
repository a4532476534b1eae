"""Training throughput and model FLOP utilisation: 1 experiment alone vs 16 in one program, all 16 in
one vmap vs in vmapped pairs one after another (`sweep.vmap_group`, whose CPU default is the pair).

    python bench/bench_train.py            # writes bench/results/train.{json,md}

The release's CPU Transformer (`common.BENCH_MODEL`: 2 layers x 128, 4 heads, G(100, 5), full path)
and a width-256 variant, batch 1024, in the default per-kind batch layout. MFU = achieved model FLOP/s over an f32
matmul peak measured in the same run (so machine load hits both alike).
"""

from __future__ import annotations

import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import matmul_peak_flops, pathstar_cpu_setup, time_chunk, write  # noqa: E402

from geomem_jax import sweep  # noqa: E402

STEPS = 2


def model_flops_per_step(cfg, dims, data) -> float:
    """Analytic train FLOPs (3x forward) of one step of one experiment in its batch layout: the
    tokens through the blocks and the unembedding at the positions that carry loss."""
    from geomem_jax import train

    d, layers, t, v = cfg.model.width, cfg.model.layers, dims.seq_len, dims.vocab_size
    footprint = train.step_footprint(cfg, data)
    per_token = layers * (2 * 12 * d * d + 2 * 2 * t * d)
    return 3.0 * (per_token * footprint["tokens"] + 2 * v * d * footprint["logit_positions"])


def measure(width: int, seeds: int, group: int) -> dict:
    cfg, dims, program, state, hp, data = pathstar_cpu_setup(1024, seeds, width)
    dt, compile_s = time_chunk(program, state, hp, data, STEPS, group, seeds)
    flops = model_flops_per_step(cfg, dims, data) * seeds
    return {"width": width, "experiments": seeds, "vmap_group": group, "s_per_step": dt, "compile_s": compile_s,
            "examples_per_s": cfg.train.batch_size * seeds / dt, "model_flops_per_s": flops / dt}


def main():
    peak = matmul_peak_flops()
    rows = []
    for width in (128, 256):
        one = measure(width, 1, 1)
        runs = [one, measure(width, 16, 16), measure(width, 16, sweep.CPU_VMAP_GROUP)]
        for r in runs:
            r["mfu"] = r["model_flops_per_s"] / peak
            r["vs_one_alone"] = r["examples_per_s"] / one["examples_per_s"]
        rows += runs
    md = [f"f32 matmul peak measured in this run: {peak / 1e9:.1f} GFLOP/s\n",
          "| width | experiments | vmap group | s/step | examples/s | model GFLOP/s | MFU "
          "| per-experiment throughput vs one alone |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['width']} | {r['experiments']} | {r['vmap_group']} | {r['s_per_step']:.4f} | "
                  f"{r['examples_per_s']:.0f} | {r['model_flops_per_s'] / 1e9:.1f} | {r['mfu']:.0%} | "
                  f"{r['vs_one_alone']:.2f}x |")
    write("train", {"matmul_peak_flops": peak, "rows": rows}, "\n".join(md), "python bench/bench_train.py")
    print("\n".join(md))


if __name__ == "__main__":
    main()
