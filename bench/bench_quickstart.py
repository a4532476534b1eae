"""The quick start as a user waits for it: `geomem run` as a whole process, first run and rerun.

    python bench/bench_quickstart.py             # writes bench/results/quickstart.{json,md}
    python bench/bench_quickstart.py --runs 1

Each first run starts with an empty compile cache (a fresh machine); each rerun reads the cache
the first run filled (what `geomem run` does by default: ~/.cache/geomem_jax/xla). Both train
configs/quickstart.py into a fresh workdir and analyse it, from launch to exit. The held-out level
(mean first decision over the 4 seeds, target >= 0.8) is read back from summary.json.
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
TARGET_S = 60.0


def timed_run(workdir: pathlib.Path, cache: pathlib.Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(GEOMEM_COMPILE_CACHE=str(cache),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "geomem_jax", "run", f"--workdir={workdir}", "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"geomem run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def mean_first_decision(workdir: pathlib.Path) -> float:
    summary = json.loads((workdir / "summary.json").read_text())
    return statistics.mean(e["final"]["test/first_token"] for e in summary["experiments"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="first-run / rerun pairs (medians are reported)")
    args = parser.parse_args(argv)
    load_at_start = os.getloadavg()[0]
    first, again, levels = [], [], []
    with tempfile.TemporaryDirectory(prefix="geomem_bench_quickstart_") as tmp:
        tmp = pathlib.Path(tmp)
        for i in range(args.runs):
            cache = tmp / f"cache{i}"  # empty: the first run compiles everything
            first.append(timed_run(tmp / f"first{i}", cache))
            again.append(timed_run(tmp / f"again{i}", cache))
            levels.append(mean_first_decision(tmp / f"first{i}"))
            print(f"pair {i}: first run {first[-1]:.1f} s, rerun {again[-1]:.1f} s, "
                  f"mean first decision {levels[-1]:.3f}", flush=True)
    first_s, again_s = statistics.median(first), statistics.median(again)
    result = {
        "first_run_s": first, "rerun_s": again, "median_first_run_s": first_s, "median_rerun_s": again_s,
        "mean_first_decision": levels, "target_s": TARGET_S, "meets_target": first_s <= TARGET_S,
        "loadavg_1m_at_start": load_at_start, "loadavg_1m_at_end": os.getloadavg()[0],
    }
    md = [
        "`geomem run` (configs/quickstart.py: 4 seeds, 2400 steps, then the analysis), whole process, "
        f"median of {args.runs}:\n",
        "| | wall time |", "|---|---|",
        f"| first run (empty compile cache) | {first_s:.1f} s ({', '.join(f'{s:.1f}' for s in first)}) |",
        f"| rerun (compile cache filled) | {again_s:.1f} s ({', '.join(f'{s:.1f}' for s in again)}) |",
        "",
        f"Target ≤ {TARGET_S:.0f} s for the first run: {'met' if first_s <= TARGET_S else 'NOT met'}. "
        "Mean held-out first decision over the 4 seeds: " + ", ".join(f"{v:.3f}" for v in levels)
        + " (target ≥ 0.8).",
        "",
        f"Load average (1 min): {load_at_start:.2f} at the start, {result['loadavg_1m_at_end']:.2f} at the end.",
    ]
    write("quickstart", result, "\n".join(md), " ".join(["python bench/bench_quickstart.py",
                                                           *(sys.argv[1:] if argv is None else argv)]))
    print("\n".join(md))


if __name__ == "__main__":
    main()
