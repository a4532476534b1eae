"""`geomem` command line: thin wrappers over importable functions (usable from Colab too).

Flags, their help and the parser are in cli_flags.py. User errors print one line
`geomem: error: ...` and exit 2; nothing is overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys

from geomem_jax import rundir
from geomem_jax.cli_flags import (  # noqa: F401 (BOOLEAN_FLAGS ... command_list: re-exported, cli.NAME)
    BOOLEAN_FLAGS,
    COMMANDS,
    DEFAULT_CONFIG,
    FLAG_HELP,
    FLAGS,
    TAKES_OVERRIDES,
    command_list,
    parse_args,
)
from geomem_jax.errors import UserError
from geomem_jax.metric_names import TABLE_COLUMNS


def load(flags: dict, overrides, default: str | None = None):
    from geomem_jax import config as config_lib

    spec = flags.get("config", default)
    if spec is None:
        raise UserError("--config=FILE[:PRESET] is required")
    cfg = config_lib.load_config(spec)
    for dotted, text in overrides:
        config_lib.apply_override(cfg, dotted, text)
    return cfg


def override_hash(spec: str, cfg) -> str:
    """6 hex digits naming what `cfg` changes relative to the plain `spec` ('' when nothing):
    overrides that leave a value as it was, or are written differently, give the same hash."""
    from geomem_jax import config as config_lib

    plain = json.loads(json.dumps(config_lib.to_dict(config_lib.load_config(spec))))
    mine = json.loads(json.dumps(config_lib.to_dict(cfg)))
    changed = {key: value for key, value in _flat(mine).items() if key != "name" and _flat(plain).get(key) != value}
    if not changed:
        return ""
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:6]


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def default_workdir(spec: str, cfg) -> str:
    """runs/NAME[-PRESET][-HASH]: one directory per config name, preset and set of overrides."""
    preset = spec.partition(":")[2]
    digest = override_hash(spec, cfg)
    return "runs/" + "-".join(part for part in (cfg.name, preset, digest) if part)


def _required(flags: dict, name: str, command: str) -> str:
    if name not in flags:
        raise UserError(f"geomem {command}: --{name}=... is required")
    return flags[name]


def _int_flag(flags, name: str, default=None):
    if name not in flags:
        return default
    try:
        return int(flags[name])
    except ValueError:
        raise UserError(f"--{name}={flags[name]!r}: expected a whole number") from None


def _step(flags):
    return _int_flag(flags, "step")


def cmd_train(flags, overrides, command="train"):
    from geomem_jax import distributed, loop

    distributed.maybe_initialize()

    cfg = load(flags, overrides, DEFAULT_CONFIG if command == "run" else None)
    if "workdir" in flags:
        workdir = flags["workdir"]
    elif command == "run":
        workdir = default_workdir(flags.get("config", DEFAULT_CONFIG), cfg)
        print(f"geomem: run directory {workdir} (from the config's name, preset and overrides; "
              f"--workdir=DIR to choose)", file=sys.stderr)
    else:
        workdir = _required(flags, "workdir", command)
    # `geomem run` twice continues (or just re-reports) the same run instead of refusing.
    resume = flags.get("resume", "auto" if command == "run" else False)
    summary = loop.run(cfg, workdir, resume=resume, progress=not flags.get("no-progress"))
    print(results_table(summary))
    print(f"run directory: {workdir}")
    return workdir


def cmd_run(flags, overrides):
    workdir = cmd_train(flags, overrides, command="run")
    if not flags.get("no-analyze"):
        cmd_analyze({"workdir": workdir}, [])


def cmd_analyze(flags, overrides):
    from geomem_jax.analysis import analyze

    workdir = _required(flags, "workdir", "analyze")
    result = analyze.analyze_run(workdir, step=_step(flags), make_plots=not flags.get("no-plots"))
    report = pathlib.Path(workdir) / rundir.REPORT
    print(f"analysis of {len(result['experiments'])} experiments written to {report}")


def cmd_export_graph(flags, overrides):
    from geomem_jax import graphs, release_format

    cfg = load(flags, overrides)
    out = _required(flags, "out", "export-graph")
    naming = flags.get("naming", "geomem")
    if naming not in release_format.NAMINGS:
        raise UserError(f"--naming={naming!r} is not allowed: expected one of {', '.join(release_format.NAMINGS)}")
    if naming == "release" and "prefix" in flags:
        raise UserError("--prefix and --naming=release both name the files: give one of them")
    graph = graphs.make_graph(cfg.graph)
    # A graph read from files is written back as read; a generated one as the config asks.
    from_files = graphs.is_from_release(graph)
    direction = graph.spec["edges"] if from_files else cfg.graph.edges
    self_edges = graph.spec["self_edges"] if from_files else cfg.graph.self_edges
    written = graphs.write_release_dir(graph, out, prefix=flags.get("prefix"), direction=direction,
                                       self_edges=self_edges, naming=naming)
    for path in written:
        print(path)


def cmd_export_embeddings(flags, overrides):
    from geomem_jax.analysis import analyze

    workdir = _required(flags, "workdir", "export-embeddings")
    out = _required(flags, "out", "export-embeddings")
    analyze.export_embeddings(workdir, _step(flags), out)
    print(f"embeddings written to {out}")


def cmd_zoo(flags, overrides):
    from geomem_jax import zoo

    workdir = _required(flags, "workdir", "zoo")
    only = [p for p in flags.get("only", "").split(",") if p] or None
    path = zoo.run_zoo(workdir, seeds=_int_flag(flags, "seeds", 8), presets=only,
                       self_edges=flags.get("self-edges", False), progress=not flags.get("no-progress"),
                       stream=sys.stderr)
    print(path.read_text())
    print(f"zoo report: {path}")


def cmd_reproduce(flags, overrides):
    from geomem_jax import reproduce

    if overrides:
        raise UserError("geomem reproduce: --config.* overrides are not accepted (each claim builds its own configs)")
    workdir = _required(flags, "workdir", "reproduce")
    path = reproduce.run_reproduce(
        workdir, only=flags.get("only") or None, seeds=_int_flag(flags, "seeds"), quick=flags.get("quick", False),
        progress=not flags.get("no-progress"), stream=sys.stderr, scale=flags.get("scale"),
    )
    print(reproduce.table_text(path))
    print(f"reproduction report: {path}")


def cmd_compare(flags, overrides):
    from geomem_jax.analysis import compare

    run_dirs = flags.get("args", [])
    if len(run_dirs) < 2:
        raise UserError("geomem compare: expected two or more RUN_DIR arguments (run directories with a summary.json)")
    out = pathlib.Path(flags.get("out", "runs/compare"))
    result = compare.compare_runs(run_dirs, out, metric=flags.get("metric"), make_plots=not flags.get("no-plots"))
    print(result["table"])
    print(f"comparison written to {result['report']}")


COORD_LABELS = {"graph": "graph#", "lr": "lr", "weight_decay": "wd", "init_scale": "init", "dropout": "dropout"}


def results_table(summary: dict) -> str:
    """Held-out accuracy per experiment (with its swept coordinates), then every sweep point's
    mean and interval over seeds, best first by the primary held-out metric."""
    from geomem_jax import metrics

    exps = summary["experiments"]
    present = {k for e in exps for k in e["final"]}
    primary = metrics.primary_metric(present)
    cols = [(k, label) for k, label in TABLE_COLUMNS if k in present]
    cols.sort(key=lambda col: col[0] != primary)  # the primary metric first
    swept = metrics.swept_keys([e.get("coords", {}) for e in exps])
    coord_head = "".join(f"{COORD_LABELS.get(k, k):>9}" for k in swept)
    lines = ["exp  seed  graph                 " + coord_head + "  " + "  ".join(f"{label:>7}" for _, label in cols)]
    for e in exps:
        g = e["graph"]
        name = f"{g.get('family')} N={g.get('num_nodes')}"
        coords = "".join(f"{_coord(e['coords'].get(k)):>9}" for k in swept)
        vals = "  ".join(_fmt(e["final"].get(key)) for key, _ in cols)
        flag = f"  DIVERGED@{e['diverged_at_step']}" if e.get("diverged") else ""
        lines.append(f"{e['index']:>3}  {e['seed']:>4}  {name:<20}{coords}  {vals}{flag}")
    lines += ["", *aggregate_table(summary["aggregate"], swept, cols, primary)]
    return "\n".join(lines)


def aggregate_table(aggregate: list[dict], swept: list[str], cols, primary) -> list[str]:
    """The sweep points, best first by `primary`, the best one marked."""
    from geomem_jax import metrics

    if not aggregate:
        return []
    ranked = metrics.rank_points(aggregate, primary)
    cells = [[f"{_coord(metrics.group_parts(g)[0].get(k))}" for k in swept] + [str(g["n"])]
             + [metrics.format_interval(metrics.group_parts(g)[1].get(key)) for key, _ in cols] for g in ranked]
    head = [COORD_LABELS.get(k, k) for k in swept] + ["seeds"] + [label for _, label in cols]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(head)]
    counts = {g["n"] for g in ranked}
    title = f"mean over {counts.pop()} seeds" if len(counts) == 1 else "mean over seeds"
    title += " [95% CI] per sweep point" + (f", best first by {primary}" if primary else "")
    lines = [title, "  ".join(f"{h:>{w}}" for h, w in zip(head, widths))]
    for i, row in enumerate(cells):
        best = "  <- best" if i == 0 and primary and len(cells) > 1 else ""
        lines.append("  ".join(f"{c:>{w}}" for c, w in zip(row, widths)) + best)
    if any(s.get("interval") == "min-max" for g in ranked for s in metrics.group_parts(g)[1].values()):
        lines.append(metrics.MIN_MAX_NOTE)
    return lines


def _coord(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fmt(v):
    return f"{v:7.3f}" if isinstance(v, (int, float)) else f"{'-':>7}"


HANDLERS = {
    "run": cmd_run, "train": cmd_train, "analyze": cmd_analyze,
    "export-graph": cmd_export_graph, "export-embeddings": cmd_export_embeddings, "zoo": cmd_zoo,
    "reproduce": cmd_reproduce, "compare": cmd_compare,
}


class _BackgroundErrors:
    """Background threads of storage libraries can fail around an error we already handle (e.g.
    TensorStore reads of a damaged checkpoint, then asyncio's "Event loop is closed" at shutdown).
    They are held back while the command runs: after a reported error they are its echoes and are
    dropped; after a success each distinct one is shown as one line, never as a traceback."""

    def __init__(self):
        self.seen: set[str] = set()
        self.held: list[str] = []
        self.outcome: str | None = None  # None while running, then "ok" or "failed"

    def install(self) -> None:
        import threading

        sys.unraisablehook = lambda u: self.report(u.exc_type, u.exc_value)
        threading.excepthook = lambda a: self.report(a.exc_type, a.exc_value)

    def report(self, exc_type, exc_value) -> None:
        first = str(exc_value).splitlines()[0][:160] if str(exc_value) else ""
        line = f"geomem: note: a background task failed ({getattr(exc_type, '__name__', exc_type)}: {first})"
        if self.outcome == "failed" or line in self.seen:
            return
        self.seen.add(line)
        if self.outcome == "ok":
            print(line, file=sys.stderr)
        else:
            self.held.append(line)

    def finish(self, failed: bool) -> None:
        self.outcome = "failed" if failed else "ok"
        if not failed:
            for line in self.held:
                print(line, file=sys.stderr)
        self.held = []


COMPILING_COMMANDS = ("run", "train", "zoo", "reproduce")
COMPILE_CACHE_ENV = "GEOMEM_COMPILE_CACHE"  # a folder, or "off"
DEFAULT_COMPILE_CACHE = pathlib.Path("~/.cache/geomem_jax/xla")


def use_compile_cache() -> str | None:
    """Keeps compiled programs on disk (JAX's persistent cache): a rerun, a `--resume` after a
    preemption or the next sweep of the same shapes skips compilation. An earlier setting (the
    JAX_COMPILATION_CACHE_DIR variable, or jax.config in a notebook) is left alone. Returns the folder."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = os.environ.get(COMPILE_CACHE_ENV, str(DEFAULT_COMPILE_CACHE))
    if folder.lower() in ("", "off", "0", "false"):
        return None
    jax.config.update("jax_compilation_cache_dir", str(pathlib.Path(folder).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)  # only programs worth keeping
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    background = _BackgroundErrors()
    background.install()
    try:
        command, flags, overrides = parse_args(argv)
        if command in COMPILING_COMMANDS:
            use_compile_cache()
        HANDLERS[command](flags, overrides)
    except UserError as err:
        background.finish(failed=True)
        interrupted = type(err).__name__ == "Interrupted"
        print(f"geomem: {'stopped' if interrupted else 'error'}: {err}", file=sys.stderr)
        return 130 if interrupted else 2
    except KeyboardInterrupt:
        background.finish(failed=True)
        print("geomem: interrupted; resume with the same command and --resume", file=sys.stderr)
        return 130
    background.finish(failed=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
