"""Benchmark the graph layer on the paper's G(10^4, 6) (50,001 nodes).

Times (median of 5 runs): graph generation, release-format write and read, and,
when geomem_jax.tasks imports, building its token tables. Writes
bench/results/graphs.json and bench/results/graphs.md.

Run: python bench/bench_graphs.py
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

from geomem_jax import graphs

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DEGREE, PATH_LENGTH, REPEATS = 10_000, 6, 5


def median_seconds(fn, repeats: int = REPEATS) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` calls (plus the raw times)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__}


def main() -> dict:
    rows = {}
    graph = graphs.path_star(DEGREE, PATH_LENGTH, seed=0)
    rows["generate_path_star"] = median_seconds(lambda: graphs.path_star(DEGREE, PATH_LENGTH, seed=0))
    rows["generate_tree_star_d100_l6_k3"] = median_seconds(lambda: graphs.tree_star(100, 6, 3, seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "release"
        rows["write_release_dir"] = median_seconds(lambda: graphs.write_release_dir(graph, out))
        rows["read_release_dir"] = median_seconds(lambda: graphs.read_release_dir(out))
    try:
        from geomem_jax import tasks
        spec = tasks.TaskSpec()
        rows["build_task_tables"] = median_seconds(lambda: tasks.build_task_tables(graph, spec))
        tasks_note = "geomem_jax.tasks.build_task_tables(graph, TaskSpec()) (defaults: p=1, full path, both directions)"
    except Exception as exc:  # optional: the tasks layer may not exist or may fail to import
        tasks_note = f"skipped: {type(exc).__name__}: {exc}"

    result = {
        "graph": graphs.graph_summary(graph),
        "repeats": REPEATS,
        "median_seconds": {k: round(v[0], 6) for k, v in rows.items()},
        "all_seconds": {k: [round(t, 6) for t in v[1]] for k, v in rows.items()},
        "tasks": tasks_note,
        "machine": machine(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "graphs.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Graph layer benchmark: G({DEGREE}, {PATH_LENGTH}), {graph.num_nodes} nodes",
             "", f"Median of {REPEATS} runs (`python bench/bench_graphs.py`).", "",
             "| step | median (s) |", "|---|---|"]
    lines += [f"| {k} | {v[0]:.4f} |" for k, v in rows.items()]
    m = result["machine"]
    lines += ["", f"Tasks: {tasks_note}", "",
              f"Machine: {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs, "
              f"Python {m['python']}, numpy {m['numpy']}."]
    (RESULTS_DIR / "graphs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
