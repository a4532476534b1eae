"""Batch layouts: the release's padded rows vs per-kind sub-batches (logits at scored positions only).

    python bench/bench_layout.py           # writes bench/results/layout.{json,md}

The release's CPU Transformer on configs/pathstar.py:cpu's task (`common.BENCH_MODEL`: G(100, 5),
2 x 128, full path), batch 1024, one
experiment, and the same at width 256: seconds per training step of
`train.batch_layout=padded`, `by_kind` with uniform mixing (the default: static slots up
to mean + 6σ of the Binomial edge count, the slack is paid every step) and `by_kind` with
stratified mixing (no slack). The layouts are timed in alternation, best of REPEATS
rounds each, so a load spike on the shared machine hits one round, not one layout.
"""

from __future__ import annotations

import sys
import time

import jax

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import pathstar_cpu_setup, write  # noqa: E402

from geomem_jax import loop  # noqa: E402

STEPS = 10
REPEATS = 5
LAYOUTS = {"padded": ("padded", "uniform"), "by_kind uniform": ("by_kind", "uniform"),
           "by_kind stratified": ("by_kind", "stratified")}


def prepared(width: int, layout: str, mixing: str):
    cfg, dims, program, state, hp, data = pathstar_cpu_setup(
        1024, 1, width, (("train.batch_layout", layout), ("train.mixing", mixing)))
    chunk = loop.jit_chunk(program, STEPS)
    t0 = time.perf_counter()
    holder = [jax.block_until_ready(chunk(state, hp, data)[0])]
    compile_s = time.perf_counter() - t0

    def run() -> float:
        t = time.perf_counter()
        holder[0] = jax.block_until_ready(chunk(holder[0], hp, data)[0])
        return (time.perf_counter() - t) / STEPS

    slots = {"edge_slots": dims.edge_rows, "path_slots": dims.path_rows} if layout == "by_kind" else {}
    return run, {"compile_s": compile_s, "seq_len": dims.seq_len, "edge_len": dims.edge_len, **slots}


def main():
    rows = []
    for width in (128, 256):
        runs = {name: prepared(width, *spec) for name, spec in LAYOUTS.items()}
        best = {name: float("inf") for name in runs}
        for _ in range(REPEATS):
            for name, (run, _) in runs.items():
                best[name] = min(best[name], run())
        for name, (_, info) in runs.items():
            rows.append({"width": width, "layout": name, "s_per_step": best[name],
                         "speedup_vs_padded": best["padded"] / best[name], **info})
    md = ["Seconds per training step (best of 5 alternating rounds of 10 steps), batch 1024, one experiment.\n",
          "| width | layout | ms/step | × vs padded | slots (edge + path) | compile + first chunk (s) |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        slots = f"{r['edge_slots']} × {r['edge_len']} + {r['path_slots']} × {r['seq_len']}" if "edge_slots" in r \
            else f"1024 × {r['seq_len']}"
        md.append(f"| {r['width']} | {r['layout']} | {r['s_per_step'] * 1e3:.1f} | {r['speedup_vs_padded']:.2f} | "
                  f"{slots} | {r['compile_s']:.1f} |")
    write("layout", {"rows": rows}, "\n".join(md), "python bench/bench_layout.py")
    print("\n".join(md))


if __name__ == "__main__":
    main()
