"""One vmapped sweep of 64 tiny-graph experiments vs the same 64 launched one after another via the CLI.

    python bench/bench_sweep_vs_cli.py            # writes bench/results/sweep_vs_cli.{json,md}
    python bench/bench_sweep_vs_cli.py --sequential 4 --seeds 64

Config: configs/tiny_graphs.py:cycle_transformer (C(15), 1-layer width-32 Transformer,
full batch, 700 steps, 5 evaluations and checkpoints). Both sides are whole
`python -m geomem_jax train` processes timed from launch to exit (interpreter start,
imports, compilation, training, evaluation, checkpoints, summary), so the comparison is
what a user waits for. The sweep runs seeds 0..63 in one process, measured for real.
Launching 64 processes would take most of an hour on this machine, so only the first
`--sequential` single-seed launches (seeds 0..N-1) are measured and the time of 64 is
extrapolated linearly (64 x the mean launch time): every launch runs the same program
(the seed is a traced input), so launch times do not depend on the seed. The
single-seed runs' final metrics are checked against the same seeds inside the sweep.
No persistent JAX compilation cache is used (the default), on either side.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import write  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/tiny_graphs.py:cycle_transformer"
TARGET_RATIO = 20.0


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["GEOMEM_COMPILE_CACHE"] = "off"  # every process compiles: that cost is what is measured
    return env


def train_command(workdir: pathlib.Path, seeds, extra=()) -> list[str]:
    seeds_text = "(" + ",".join(str(s) for s in seeds) + ",)"
    return [sys.executable, "-m", "geomem_jax", "train", f"--config={CONFIG}", f"--config.sweep.seeds={seeds_text}",
            f"--workdir={workdir}", "--no-progress", *extra]


def timed_launch(workdir: pathlib.Path, seeds, extra=()) -> float:
    """Wall seconds of one `geomem train` process, launch to exit."""
    t0 = time.perf_counter()
    proc = subprocess.run(train_command(workdir, seeds, extra), cwd=REPO, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"geomem train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def final_metrics(workdir: pathlib.Path) -> dict[int, dict]:
    """seed -> final scalar metrics, from summary.json."""
    summary = json.loads((workdir / "summary.json").read_text())
    return {e["seed"]: e["final"] for e in summary["experiments"]}


def abs_differences(a: dict, b: dict) -> dict[str, float]:
    """|a - b| per numeric metric present in both."""
    return {k: abs(a[k] - b[k]) for k in a if isinstance(a[k], (int, float)) and isinstance(b.get(k), (int, float))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64, help="experiments in the sweep")
    parser.add_argument("--sequential", type=int, default=4, help="single-seed CLI launches actually measured")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps (quick checks only)")
    args = parser.parse_args(argv)
    extra = () if args.steps is None else (f"--config.train.steps={args.steps}",)
    load_at_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="geomem_bench_sweep_") as tmp:
        tmp = pathlib.Path(tmp)
        singles = []

        def single(seed):
            singles.append(timed_launch(tmp / f"seed{seed}", (seed,), extra))
            print(f"single-seed launch {seed}: {singles[-1]:.2f} s", flush=True)

        # Half the single launches before the sweep and half after, so a drifting load hits both sides.
        half = args.sequential // 2
        for seed in range(half):
            single(seed)
        sweep_s = timed_launch(tmp / "sweep", range(args.seeds), extra)
        print(f"{args.seeds}-experiment sweep, one process: {sweep_s:.2f} s", flush=True)
        for seed in range(half, args.sequential):
            single(seed)
        sweep_final = final_metrics(tmp / "sweep")
        per_seed = [abs_differences(final_metrics(tmp / f"seed{seed}")[seed], sweep_final[seed])
                    for seed in range(args.sequential)]
        diff_by_metric = {k: max(d[k] for d in per_seed) for k in sorted(per_seed[0])}

    per_launch = statistics.mean(singles)
    extrapolated = per_launch * args.seeds
    ratio = extrapolated / sweep_s
    result = {
        "config": CONFIG, "experiments": args.seeds,
        "sweep_one_process_s": sweep_s,
        "sequential_measured_launches": args.sequential, "sequential_launch_s": singles,
        "sequential_mean_launch_s": per_launch,
        "sequential_extrapolated_s": extrapolated,
        "extrapolation": f"linear: {args.seeds} x mean of {args.sequential} measured single-seed launches",
        "ratio_sequential_over_sweep": ratio, "target_ratio": TARGET_RATIO, "meets_target": ratio >= TARGET_RATIO,
        "max_abs_final_metric_diff_single_vs_sweep": max(diff_by_metric.values(), default=0.0),
        "max_abs_final_metric_diff_by_metric": diff_by_metric,
        "loadavg_1m_at_start": load_at_start, "loadavg_1m_at_end": os.getloadavg()[0],
    }
    md = [
        f"{args.seeds} experiments of `{CONFIG}` (seeds 0..{args.seeds - 1}): one `geomem train` process "
        f"running the whole sweep vs one `python -m geomem_jax train` launch per seed. Wall time from launch to "
        f"exit (imports, compile, {args.steps or 700} steps, evaluations + checkpoints, summary); "
        "no persistent compile cache.\n",
        "| | wall time |", "|---|---|",
        f"| {args.seeds}-experiment sweep, one process (measured) | {sweep_s:.1f} s |",
        f"| one single-seed CLI launch (mean of {args.sequential} measured: "
        + ", ".join(f"{s:.1f}" for s in singles) + f" s) | {per_launch:.1f} s |",
        f"| {args.seeds} CLI launches one after another (**extrapolated** linearly: {args.seeds} × mean) "
        f"| {extrapolated:.0f} s |",
        "",
        f"**Sweep speed-up: {ratio:.1f}×** "
        f"(target ≥ {TARGET_RATIO:.0f}×: {'met' if ratio >= TARGET_RATIO else 'NOT met'}).",
        "",
        f"Same numbers either way: the final metrics of seeds 0..{args.sequential - 1} run alone differ from the "
        "same seeds inside the sweep by at most: " + ", ".join(f"{k} {v:.1e}" for k, v in diff_by_metric.items())
        + " (float rounding of batched vs unbatched kernels, grown over the training steps).",
        "",
        f"Load average (1 min): {load_at_start:.2f} at the start, {result['loadavg_1m_at_end']:.2f} at the end "
        "(2 shared cores: both sides are slowed alike only if the load is steady).",
    ]
    if args.steps is None:  # a --steps check is not the benchmark: print only
        argv = sys.argv[1:] if argv is None else argv
        write("sweep_vs_cli", result, "\n".join(md), " ".join(["python bench/bench_sweep_vs_cli.py", *argv]))
    print("\n".join(md))


if __name__ == "__main__":
    main()
