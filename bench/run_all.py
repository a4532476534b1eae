"""Run every bench/bench_*.py in turn, then regenerate BENCHMARKS.md from bench/results/*.json.

    python bench/run_all.py                          # every bench, when the machine is quiet
    python bench/run_all.py --only sweep_vs_cli torch_step
    python bench/run_all.py --skip train --max-load 3 --wait 600
    python bench/run_all.py --summarize-only         # just rewrite BENCHMARKS.md

Benchmarks on a shared machine are only worth their numbers when it is quiet: before
each bench the 1-minute load average must be below --max-load (polled for up to
--wait seconds, else the bench is skipped and says so). The load average before each
bench is written into the results that bench produced (key "run_all") and into
bench/results/_run_all.json. torch is not a dependency: --torch-site DIR puts a
separately installed torch on PYTHONPATH for bench_torch_step.py only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
STATUS = RESULTS / "_run_all.json"  # files starting with "_" are bookkeeping, not results
OUT = REPO / "BENCHMARKS.md"


def bench_scripts() -> dict[str, pathlib.Path]:
    """name -> script, for every bench/bench_<name>.py."""
    return {p.stem[len("bench_"):]: p for p in sorted(BENCH.glob("bench_*.py"))}


def wait_for_quiet(max_load: float, wait_s: float, poll_s: float = 15.0) -> float | None:
    """The 1-minute load average once it is below max_load, or None after wait_s seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        load = os.getloadavg()[0]
        if load < max_load:
            return load
        if time.monotonic() >= deadline:
            return None
        print(f"  load average {load:.2f} >= {max_load}: waiting", flush=True)
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.1)))


def measured_at(path: pathlib.Path) -> str:
    """When a result was written: its commit date if it is committed unchanged (a fresh clone's
    mtimes are the checkout's), else the file's mtime."""
    rel = str(path.relative_to(REPO))
    git = lambda *args: subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    committed = git("log", "-1", "--format=%cI", "--", rel) if not git("status", "--porcelain", "--", rel) else ""
    when = (datetime.datetime.fromisoformat(committed) if committed
            else datetime.datetime.fromtimestamp(path.stat().st_mtime))
    return when.strftime("%Y-%m-%d %H:%M")


def _mtimes() -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in RESULTS.glob("*.json")} if RESULTS.is_dir() else {}


def run_bench(name: str, script: pathlib.Path, args) -> dict:
    """Runs one bench in a subprocess; tags the result files it wrote with the load average before it."""
    load = wait_for_quiet(args.max_load, args.wait)
    if load is None:
        status = f"skipped: load average stayed >= {args.max_load} for {args.wait:.0f} s"
        print(f"== {name}: {status}", flush=True)
        return {"bench": name, "status": status, "loadavg_1m_before": os.getloadavg()[0],
                "date": datetime.datetime.now().isoformat(timespec="seconds")}
    env = dict(os.environ)
    if name == "torch_step" and args.torch_site:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.torch_site, env.get("PYTHONPATH", "")]))
    before, t0 = _mtimes(), time.perf_counter()
    print(f"== {name}: python {script.relative_to(REPO)} (load {load:.2f})", flush=True)
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=args.timeout)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        tail = (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        status, tail = f"timed out after {args.timeout:.0f} s", ""
    wall = time.perf_counter() - t0
    written = sorted(n for n, m in _mtimes().items() if before.get(n) != m)
    info = {"loadavg_1m_before": load, "wall_s": round(wall, 1),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    for fname in written:
        path = RESULTS / fname
        data = json.loads(path.read_text())
        data["run_all"] = info
        path.write_text(json.dumps(data, indent=1) + "\n")
    if status != "ok":
        print(tail, file=sys.stderr)
    print(f"   {status} in {wall:.0f} s; wrote {', '.join(written) or 'nothing'}", flush=True)
    return {"bench": name, "status": status, "results": written, **info}


# ----------------------------------------------------------------------------- BENCHMARKS.md


def _num(x, fmt=".3g"):
    return format(x, fmt) if isinstance(x, (int, float)) else "n/a"


def _headline_graphs(r):
    s = r["median_seconds"]
    return (f"G(10⁴, 6) ({r['graph']['num_nodes']} nodes): generate {_num(s['generate_path_star'])} s, "
            f"write release {_num(s['write_release_dir'])} s, read {_num(s['read_release_dir'])} s")


def _headline_analysis(r):
    return (f"analysis of a 50,001 × {r['embedding_shape'][1]} embedding: {_num(r['seconds']['total'])} s, "
            f"peak {_num(r['peak_rss_mb'], '.0f')} MB RSS")


def _headline_node2vec(r):
    return (f"{r['setup']['experiments']} Node2Vec experiments × {r['setup']['steps']} steps in one jit(vmap): "
            f"{_num(r['seconds_total_incl_compile'])} s incl. {_num(r['seconds_compile'])} s compile")


def _headline_train(r):
    parts = []
    for row in r["rows"]:
        if row["experiments"] > 1:
            how = "one vmap" if row["vmap_group"] >= row["experiments"] else f"vmapped groups of {row['vmap_group']}"
            parts.append(f"width {row['width']}: {row['experiments']} in {how} = "
                         f"**{_num(row.get('vs_one_alone'))}×** the examples/s of 1 alone, MFU {row['mfu']:.0%}")
    return "; ".join(parts)


def _headline_sweep_vs_cli(r):
    return (f"{r['experiments']} tiny-graph experiments: one sweep {_num(r['sweep_one_process_s'])} s vs "
            f"{_num(r['sequential_extrapolated_s'], '.0f')} s of CLI launches (extrapolated from "
            f"{r['sequential_measured_launches']}) = **{_num(r['ratio_sequential_over_sweep'])}×**")


def _headline_torch_step(r):
    if not r.get("torch_installed"):
        return "torch not installed: no ratio"
    return (f"train step at batch {r['batch']}: geomem {r['geomem_s_per_step'] * 1e3:.1f} ms, PyTorch eager "
            f"{r['torch_s_per_step'] * 1e3:.1f} ms → PyTorch/geomem = **{_num(r['torch_over_geomem'])}**")


def _headline_layout(r):
    rows = {(row["width"], row["layout"]): row for row in r["rows"]}
    return "; ".join(f"width {w}: by_kind {rows[(w, 'by_kind uniform')]['s_per_step'] * 1e3:.0f} ms vs padded "
                     f"{rows[(w, 'padded')]['s_per_step'] * 1e3:.0f} ms = "
                     f"**{rows[(w, 'by_kind uniform')]['speedup_vs_padded']:.2f}×**"
                     for w in sorted({w for w, _ in rows}))


def _headline_paper_scale(r):
    return "; ".join(f"{row['preset']}: est. {row['estimate_bytes'] / 2**30:.1f} GiB/experiment, "
                     f"{row['fit']['141GB']} fit 141 GB, {row['fit']['16GB']} fit 16 GB" for row in r["rows"]
                     if row["preset"].startswith("g"))  # the paper's sizes; smoke and cpu check the estimate


def _headline_chaos(r):
    return (f"{r['deliveries']} random SIGKILL/SIGTERM over {r['processes']} processes: "
            f"bit-identical = {r.get('bit_identical')}")


def _headline_quickstart(r):
    return (f"`geomem run`: first run {r['median_first_run_s']:.0f} s (target ≤ {r['target_s']:.0f} s), rerun "
            f"{r['median_rerun_s']:.0f} s (compile cache); mean first decision "
            + ", ".join(f"{v:.2f}" for v in r["mean_first_decision"]))


def _headline_mamba(r):
    rows = {row["d_state"]: row for row in r["rows"] if row["family"] == "mamba"}
    return (f"Mamba 2 × 64 step: d_state 16 {rows[16]['s_per_step'] * 1e3:.0f} ms, d_state 4 (`pathstar.py:mamba_cpu`) "
            f"{rows[4]['s_per_step'] * 1e3:.0f} ms = **{_num(rows[4]['vs_d_state_16'])}×**")


HEADLINES = {"quickstart": _headline_quickstart, "layout": _headline_layout, "paper_scale": _headline_paper_scale,
             "chaos": _headline_chaos, "graphs": _headline_graphs, "analysis": _headline_analysis,
             "node2vec": _headline_node2vec, "train": _headline_train, "sweep_vs_cli": _headline_sweep_vs_cli,
             "torch_step": _headline_torch_step, "mamba": _headline_mamba}


def headline(name: str, result: dict) -> str:
    try:
        return HEADLINES[name](result)
    except Exception:  # an unknown or changed result format: point at its own section
        return "see below"


def load_average_of(result: dict):
    m = result.get("machine", {})
    for value in (result.get("run_all", {}).get("loadavg_1m_before"), result.get("loadavg_1m_at_start"),
                  m.get("loadavg_1m"), m.get("load_avg_1m_at_start")):
        if isinstance(value, (int, float)):
            return value
    return None


def machine_line(m: dict) -> str:
    keys = ("platform", "processor", "cpu_count", "python", "jax", "numpy", "scipy")
    parts = [f"{k} {m[k]}" for k in keys if k in m]
    return ", ".join(parts) or "not recorded"


def _body(md_text: str) -> str:
    """A result's own Markdown without its title, headings demoted under this file's sections."""
    lines = md_text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    # The section header already gives the command and the machine.
    lines = [ln for ln in lines if not ln.startswith(("Command: ", "Machine: "))]
    return "\n".join(("###" + ln[1:]) if ln.startswith("#") else ln for ln in lines).strip()


def summarize() -> str:
    """BENCHMARKS.md: a headline table of every result, then each result's command, machine and numbers."""
    scripts = bench_scripts()
    results = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.name.startswith("_"):
            continue
        try:
            results[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    now = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    lines = [
        "# Benchmarks", "",
        "Latest numbers of every `bench/results/*.json`, regenerated by `python bench/run_all.py` "
        "(`--summarize-only` rewrites this file without running anything). Each bench is one script "
        "answering one question; its full result is in `bench/results/<name>.{json,md}`.", "",
        f"Machine this summary was written on: {machine_line(now)}. The machine is shared (2 cores): "
        "the load average at the start of each bench is given; numbers taken at a high load are slower "
        "than the machine can do.", "",
        "| bench | headline | load avg (1 min) | date |", "|---|---|---|---|",
    ]
    for name, r in results.items():
        date = measured_at(RESULTS / f"{name}.json")
        load = load_average_of(r)
        lines.append(f"| [{name}](#{name}) | {headline(name, r)} | {_num(load, '.2f')} | {date} |")
    if STATUS.is_file():
        status = json.loads(STATUS.read_text())
        lines += ["", f"Last `run_all` of each bench (latest invocation {status['date']}, max load "
                  f"{status['max_load']}):", "",
                  "| bench | status | load before | wall (s) |", "|---|---|---|---|"]
        lines += [f"| {s['bench']} | {s['status']} | {_num(s.get('loadavg_1m_before'), '.2f')} | "
                  f"{_num(s.get('wall_s'), '.0f')} |" for s in status["benches"]]
    for name, r in results.items():
        script = scripts.get(name)
        command = r.get("command") or (f"python bench/{script.name}" if script else "(unknown)")
        lines += ["", f"## {name}", "", f"Command: `{command}`", "",
                  f"Machine: {machine_line(r.get('machine', {}))}; load average (1 min) at the start: "
                  f"{_num(load_average_of(r), '.2f')}", ""]
        md_path = RESULTS / f"{name}.md"
        if md_path.is_file():
            lines.append(_body(md_path.read_text()))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="bench names (bench_<name>.py) to run")
    parser.add_argument("--skip", nargs="*", default=(), help="bench names not to run")
    parser.add_argument("--max-load", type=float, default=3.0, help="run a bench only below this 1-min load average")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for quiet before skipping")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a bench is stopped")
    parser.add_argument("--torch-site", default=None, help="directory holding torch, for bench_torch_step.py only")
    parser.add_argument("--summarize-only", action="store_true")
    args = parser.parse_args(argv)

    if not args.summarize_only:
        scripts = bench_scripts()
        unknown = sorted((set(args.only or ()) | set(args.skip)) - set(scripts))
        if unknown:
            raise SystemExit(f"run_all: no bench named {', '.join(unknown)}; have {', '.join(scripts)}")
        names = [n for n in scripts if (args.only is None or n in args.only) and n not in args.skip]
        statuses = [run_bench(n, scripts[n], args) for n in names]
        RESULTS.mkdir(parents=True, exist_ok=True)
        # Keep the last status of benches not run this time (a partial run updates only its own rows).
        previous = json.loads(STATUS.read_text())["benches"] if STATUS.is_file() else []
        merged = {s["bench"]: s for s in previous} | {s["bench"]: s for s in statuses}
        STATUS.write_text(json.dumps({"date": datetime.datetime.now().isoformat(timespec="seconds"),
                                      "max_load": args.max_load, "benches": [merged[n] for n in sorted(merged)]},
                                     indent=1) + "\n")
    OUT.write_text(summarize())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
