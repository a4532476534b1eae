"""`geomem` command line: thin wrappers over importable functions (usable from Colab too).

    geomem run      [--config=FILE[:PRESET]] [--config.key=value ...] [--workdir=DIR] [--resume[=auto]]
    geomem train    --config=FILE[:PRESET] [--config.key=value ...] --workdir=DIR [--resume[=auto]]
    geomem analyze  --workdir=DIR [--step=N]
    geomem export-graph      --config=FILE[:PRESET] [--config.graph.*=...] --out=DIR
    geomem export-embeddings --workdir=DIR [--step=N] --out=DIR
    geomem zoo      --workdir=DIR [--seeds=N] [--only=PRESET,...] [--self-edges]
    geomem reproduce --workdir=DIR [--only=CLAIM,...] [--seeds=N] [--quick | --scale=full|quick|paper]

User errors print one line `geomem: error: ...` and exit 2; nothing is overwritten.
"""

from __future__ import annotations

import pathlib
import sys

from geomem_jax.errors import UserError

DEFAULT_CONFIG = "configs/quickstart.py"
COMMANDS = ("run", "train", "analyze", "export-graph", "export-embeddings", "zoo", "reproduce")
FLAGS = {
    "run": {"config", "workdir", "resume", "no-progress", "no-analyze"},
    "train": {"config", "workdir", "resume", "no-progress"},
    "analyze": {"workdir", "step", "no-plots"},
    "export-graph": {"config", "out", "prefix"},
    "export-embeddings": {"workdir", "step", "out"},
    "zoo": {"workdir", "seeds", "only", "self-edges", "no-progress"},
    "reproduce": {"workdir", "seeds", "only", "quick", "scale", "no-progress"},
}
BOOLEAN_FLAGS = {"no-progress", "no-analyze", "no-plots", "self-edges", "quick"}


def parse_args(argv: list[str]) -> tuple[str, dict, list[tuple[str, str]]]:
    """-> (command, flags, config overrides as (dotted key, text))."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        raise SystemExit(0)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise UserError(f"unknown command {command!r}: expected one of {', '.join(COMMANDS)}")
    flags, overrides = {}, []
    for arg in rest:
        if arg in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        if not arg.startswith("--"):
            raise UserError(f"unexpected argument {arg!r}: flags look like --name=value")
        name, eq, value = arg[2:].partition("=")
        if name.startswith("config."):
            if not eq:
                raise UserError(f"--{name} needs a value: --{name}=VALUE")
            overrides.append((name[len("config."):], value))
            continue
        if name not in FLAGS[command]:
            raise UserError(f"geomem {command}: unknown flag --{name}; allowed: "
                            + ", ".join(f"--{f}" for f in sorted(FLAGS[command])) + ", --config.<key>=<value>")
        if name == "resume":  # --resume, --resume=auto, --resume=false
            flags[name] = _resume_mode(value if eq else "true")
        elif name in BOOLEAN_FLAGS:
            flags[name] = value.lower() not in ("false", "0", "no") if eq else True
        else:
            if not eq or not value:
                raise UserError(f"--{name} needs a value: --{name}=VALUE")
            flags[name] = value
    return command, flags, overrides


def _resume_mode(text: str):
    modes = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "auto": "auto"}
    if text.lower() not in modes:
        raise UserError(f"--resume={text!r}: expected --resume, --resume=auto or --resume=false")
    return modes[text.lower()]


def load(flags: dict, overrides, default: str | None = None):
    from geomem_jax import config as config_lib

    spec = flags.get("config", default)
    if spec is None:
        raise UserError("--config=FILE[:PRESET] is required")
    cfg = config_lib.load_config(spec)
    for dotted, text in overrides:
        config_lib.apply_override(cfg, dotted, text)
    return cfg


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
    workdir = flags.get("workdir") or (f"runs/{cfg.name}" if command == "run" else _required(flags, "workdir", command))
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
    report = pathlib.Path(workdir) / "report" / "report.md"
    print(f"analysis of {len(result['experiments'])} experiments written to {report}")


def cmd_export_graph(flags, overrides):
    from geomem_jax import graphs

    cfg = load(flags, overrides)
    out = _required(flags, "out", "export-graph")
    graph = graphs.make_graph(cfg.graph)
    spec = graph.spec
    direction = spec.get("edges", cfg.graph.edges) if graph.family == "release" else cfg.graph.edges
    self_edges = spec.get("self_edges", cfg.graph.self_edges) if graph.family == "release" else cfg.graph.self_edges
    written = graphs.write_release_dir(graph, out, prefix=flags.get("prefix"), direction=direction, self_edges=self_edges)
    for path in written:
        print(path)


def cmd_export_embeddings(flags, overrides):
    from geomem_jax.analysis import analyze

    workdir = _required(flags, "workdir", "export-embeddings")
    out = _required(flags, "out", "export-embeddings")
    analyze.export_embeddings(workdir, _step(flags), out)
    print(f"embeddings written to {out}")


TABLE_COLUMNS = (
    ("test/first_token", "first"), ("test/exact_match", "exact"), ("edge/recall_at_degree", "edges"),
    ("edge/recall_at_5", "rec@5"), ("node2vec/alignment", "align"), ("geometry/level", "level"),
)


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


def results_table(summary: dict) -> str:
    """Held-out accuracy per experiment, then mean ± 95% CI per sweep point."""
    present = {k for e in summary["experiments"] for k in e["final"]}
    cols = [(k, label) for k, label in TABLE_COLUMNS if k in present]
    lines = ["exp  seed  graph                   " + "  ".join(f"{label:>7}" for _, label in cols)]
    for e in summary["experiments"]:
        g = e["graph"]
        name = f"{g.get('family')} N={g.get('num_nodes')}"
        vals = "  ".join(_fmt(e["final"].get(key)) for key, _ in cols)
        flag = "  DIVERGED@%s" % e["diverged_at_step"] if e.get("diverged") else ""
        lines.append(f"{e['index']:>3}  {e['seed']:>4}  {name:<22}  {vals}{flag}")
    from geomem_jax.metrics import group_parts

    for group in summary["aggregate"]:
        coords, metrics = group_parts(group)
        stats = "  ".join(
            f"{label} {m['mean']:.3f}±{m['ci95']:.3f}"
            for key, label in cols
            if (m := metrics.get(key)) and m["mean"] is not None
        )
        lines.append(f"mean over {group['n']} seeds at {coords}: {stats}")
    return "\n".join(lines)


def _fmt(v):
    return f"{v:7.3f}" if isinstance(v, (int, float)) else f"{'-':>7}"


HANDLERS = {
    "run": cmd_run, "train": cmd_train, "analyze": cmd_analyze,
    "export-graph": cmd_export_graph, "export-embeddings": cmd_export_embeddings, "zoo": cmd_zoo,
    "reproduce": cmd_reproduce,
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    background = _BackgroundErrors()
    background.install()
    try:
        command, flags, overrides = parse_args(argv)
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
