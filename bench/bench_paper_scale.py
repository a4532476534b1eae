"""The paper's sizes on one device: FLOPs, memory (estimated vs measured), step and evaluation time.

    python bench/bench_paper_scale.py                  # all presets, writes bench/results/paper_scale.{json,md}
    python bench/bench_paper_scale.py --presets=g5000_l5 --eval=none

Per preset of configs/pathstar.py (g5000_l5, g10000_l6, g10000_l10: GPT-mid, batch 1024; and
smoke and cpu, their own batches, to check the estimate at small sizes too), one experiment,
each in its own process so that its peak RSS is its own:
- XLA's cost_analysis (FLOPs) and memory_analysis (arguments + temporaries) of the compiled
  training step and of the compiled evaluation;
- the estimate `train.memory_per_experiment` that `geomem train` checks before compiling;
- wall time of STEPS training steps and of one full evaluation on this CPU (for the presets
  named by --eval; the others report "not run");
- how many experiments fit one device of 16, 32, 80 and 141 GB (90% of it, like check_memory),
  from the larger of the estimated and the measured footprint.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import write  # noqa: E402

PRESETS = ("smoke", "cpu", "g5000_l5", "g10000_l6", "g10000_l10")  # smoke, cpu: the estimate checked small too
DEVICE_GB = (16, 32, 80, 141)
STEPS = 4
COMMAND = "python bench/bench_paper_scale.py"


def _xla_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes)


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))


def measure(preset: str, run_eval: bool, overrides=()) -> dict:
    """One preset in this process (called through the subprocess entry point)."""
    import jax
    import jax.numpy as jnp

    from geomem_jax import config, loop, sweep, train

    cfg = config.load_config(f"configs/pathstar.py:{preset}")
    for dotted, text in (("sweep.seeds", "(0,)"), *overrides):
        config.apply_override(cfg, dotted, text)
    t0 = time.perf_counter()
    exps, program, data, _ = train.build(cfg)
    build_s = time.perf_counter() - t0
    estimate = train.memory_per_experiment(cfg, program, data)
    hp = {k: jnp.asarray(v) for k, v in sweep.hparam_arrays(exps).items()}
    data = {k: jnp.asarray(v) for k, v in data.items()}
    keys = jnp.asarray(sweep.seed_keys(exps))
    state = jax.jit(jax.vmap(program.init))(keys, hp, data)
    chunk = loop.jit_chunk(program, 1)
    t0 = time.perf_counter()
    step_c = chunk.lower(state, hp, data).compile()
    evaluate = jax.jit(jax.vmap(program.evaluate))
    eval_c = evaluate.lower(state, hp, data).compile()
    compile_s = time.perf_counter() - t0
    step_flops, eval_flops = _flops(step_c), _flops(eval_c)
    state = jax.block_until_ready(step_c(state, hp, data)[0])  # warm
    t0 = time.perf_counter()
    for _ in range(STEPS):
        state = jax.block_until_ready(step_c(state, hp, data)[0])
    step_s = (time.perf_counter() - t0) / STEPS
    eval_s, eval_measured = 0.0, False  # not run: see --eval
    if run_eval:
        t0 = time.perf_counter()
        metrics = jax.block_until_ready(eval_c(state, hp, data))
        eval_s, eval_measured = time.perf_counter() - t0, True
        assert all(bool(jnp.all(jnp.isfinite(v))) for k, v in metrics.items() if k != "test/token")
    _, dims = train.build_data(cfg, train.build_graphs(cfg), exps)
    return {
        "preset": preset, "nodes": dims.num_nodes, "vocab": dims.vocab_size, "width": cfg.model.width,
        "layers": cfg.model.layers, "batch": cfg.train.batch_size, "layout": cfg.train.batch_layout,
        "edge_slots": dims.edge_rows, "path_slots": dims.path_rows, "path_len": dims.seq_len,
        "build_s": build_s, "compile_s": compile_s, "step_s": step_s, "eval_s": eval_s,
        "eval_measured": eval_measured, "step_tflop": step_flops / 1e12, "eval_tflop": eval_flops / 1e12,
        "estimate_bytes": estimate, "xla_step_bytes": _xla_bytes(step_c), "xla_eval_bytes": _xla_bytes(eval_c),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def fits(row: dict) -> dict:
    need = max(row["estimate_bytes"], row["xla_step_bytes"], row["xla_eval_bytes"])
    return {f"{gb}GB": int(0.9 * gb * 1e9 // need) for gb in DEVICE_GB}


def table(rows) -> str:
    gib = lambda b: f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"
    md = ["| preset | nodes | layout | step TFLOP | eval TFLOP | estimate | XLA step | XLA eval | peak RSS | "
          "est./measured | step s (CPU) | eval s (CPU) | fit 16 / 32 / 80 / 141 GB |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        measured = max(r["xla_step_bytes"], r["xla_eval_bytes"])
        f = fits(r)
        eval_s = f"{r['eval_s']:.3g}" if r["eval_measured"] else "not run"
        md.append(f"| {r['preset']} | {r['nodes']:,} | {r['layout']} | {r['step_tflop']:.3g} | {r['eval_tflop']:.3g} | "
                  f"{gib(r['estimate_bytes'])} | {gib(r['xla_step_bytes'])} | {gib(r['xla_eval_bytes'])} | "
                  f"{gib(r['peak_rss_bytes'])} | {r['estimate_bytes'] / measured:.2f} | {r['step_s']:.3g} | {eval_s} | "
                  f"{' / '.join(str(v) for v in f.values())} |")
    return "\n".join(md)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--eval", default="smoke,cpu,g5000_l5,g10000_l6",
                        help="presets whose evaluation runs (the others estimate it from FLOPs); 'none' for none")
    parser.add_argument("--layout", default="by_kind", choices=("by_kind", "padded"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one preset, print JSON
    args = parser.parse_args(argv)
    overrides = (("train.batch_layout", args.layout),)
    if args.one:
        print(json.dumps(measure(args.one, args.one in args.eval.split(","), overrides)))
        return
    rows = []
    for preset in args.presets.split(","):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, f"--one={preset}", f"--eval={args.eval}",
                              f"--layout={args.layout}"], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process_wall_s"] = time.perf_counter() - t0
        rows.append({**row, "fit": fits(row)})
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    md = table(rows)
    note = ("\n\nOne experiment (paper presets at batch 1024), this CPU. eval TFLOP is XLA's count, which takes a "
            "loop's body once (decoding steps and row chunks), so it undercounts evaluation. "
            "estimate is `train.memory_per_experiment` (checked before "
            "compiling); XLA columns are arguments + temporaries + outputs − aliased of the compiled program; "
            "fits use 90% of the device and the larger of estimate and XLA.")
    name = "paper_scale" if args.layout == "by_kind" else "paper_scale_padded"
    write(name, {"rows": rows}, md + note, COMMAND + ("" if args.layout == "by_kind" else " --layout=padded"))
    print(md)


if __name__ == "__main__":
    main()
