"""Flags of the `geomem` command: the per-command flag sets, their help text and the parser.

The help of every subcommand (`geomem COMMAND --help`) and the command list of README.md are
generated from FLAGS and FLAG_HELP below, so a flag the parser accepts is a flag the help
shows (tests/test_cli.py checks both against each other and against README.md).
"""

from __future__ import annotations

import dataclasses
import textwrap

from geomem_jax.errors import UserError, did_you_mean
from geomem_jax.reproduce.claims import CLAIMS, OPT_IN

DEFAULT_CONFIG = "configs/quickstart.py"
COMMANDS = ("run", "train", "analyze", "export-graph", "export-embeddings", "zoo", "reproduce", "compare")
FLAGS = {
    "run": {"config", "workdir", "resume", "no-progress", "no-analyze"},
    "train": {"config", "workdir", "resume", "no-progress"},
    "analyze": {"workdir", "step", "no-plots"},
    "export-graph": {"config", "out", "prefix", "naming"},
    "export-embeddings": {"workdir", "step", "out"},
    "zoo": {"workdir", "seeds", "only", "self-edges", "no-progress"},
    "reproduce": {"workdir", "seeds", "only", "quick", "scale", "no-progress"},
    "compare": {"metric", "out", "no-plots"},
}
BOOLEAN_FLAGS = {"no-progress", "no-analyze", "no-plots", "self-edges", "quick"}
REQUIRED = {
    "train": {"config", "workdir"}, "analyze": {"workdir"}, "export-graph": {"config", "out"},
    "export-embeddings": {"workdir", "out"}, "zoo": {"workdir"}, "reproduce": {"workdir"},
}
POSITIONAL = {"compare": "RUN_DIR"}  # commands that take run directories as plain arguments
TAKES_OVERRIDES = {"run", "train", "export-graph"}  # --config.KEY=VALUE


@dataclasses.dataclass(frozen=True)
class FlagHelp:
    value: str | None  # the value's placeholder; None for a switch (--flag, --flag=false)
    meaning: str
    keys: str = ""  # the config keys it reads or sets, when there are any


FLAG_HELP = {  # (command, flag) first, then (None, flag) for flags that mean the same everywhere
    (None, "config"): FlagHelp("FILE[:PRESET]", "config file (a Python module with get_config) and its preset",
                               "every key the config defines"),
    ("run", "config"): FlagHelp("FILE[:PRESET]", f"config file and preset (default {DEFAULT_CONFIG})",
                                "every key the config defines"),
    ("export-graph", "config"): FlagHelp("FILE[:PRESET]", "config whose graph is written", "graph.*"),
    ("run", "workdir"): FlagHelp("DIR", "run directory (default runs/NAME[-PRESET][-HASH]: the config's name, "
                                 "its preset and a short hash of the overrides, so other settings never collide)",
                                 "name"),
    (None, "workdir"): FlagHelp("DIR", "run directory"),
    ("zoo", "workdir"): FlagHelp("DIR", "directory of the zoo: one run directory per preset, and zoo.md"),
    ("reproduce", "workdir"): FlagHelp("DIR", "directory of the reproduction: its runs and REPRODUCTION.md"),
    ("run", "resume"): FlagHelp("[=auto|true|false]", "continue the run in the workdir (default auto: continue "
                                "it if it holds this config, else start); a larger train.steps extends a "
                                "finished run", "train.steps, opt.schedule"),
    ("train", "resume"): FlagHelp("[=auto|true|false]", "continue the run in the workdir (default false: the "
                                  "workdir must be new); a larger train.steps extends a finished run",
                                  "train.steps, opt.schedule"),
    (None, "no-progress"): FlagHelp(None, "no progress line on stderr"),
    ("run", "no-analyze"): FlagHelp(None, "train only; `geomem analyze --workdir=DIR` later"),
    (None, "step"): FlagHelp("N", "checkpoint step to read (default: the latest complete one)"),
    (None, "no-plots"): FlagHelp(None, "numbers and tables only, no figures"),
    ("export-graph", "out"): FlagHelp("DIR", "directory for the release-format text files"),
    ("export-embeddings", "out"): FlagHelp("DIR", "new (or empty) directory for emb_<index>.npy and index.json"),
    ("compare", "out"): FlagHelp("DIR", "where compare.md and compare.png go (default runs/compare)"),
    ("export-graph", "prefix"): FlagHelp("NAME", "file-name prefix (default from the graph: e.g. path_star_d4_l4_s3)"),
    ("export-graph", "naming"): FlagHelp("geomem|release", "file names: geomem's (default, e.g. "
                                         "path_star_d4_l4_s3_*) or the release builder's "
                                         "(star_deg_4_..._selfedge_0_*), which its trainer finds"),
    ("zoo", "seeds"): FlagHelp("N", "seeds per preset (default 8)", "sweep.seeds of every preset"),
    ("reproduce", "seeds"): FlagHelp("N", "seeds per run, >= 2 (default: the scale's)", "sweep.seeds of every run"),
    ("zoo", "only"): FlagHelp("PRESET,...", "only these presets of configs/tiny_graphs.py "
                              "(<graph>_<model>[_self_edges])"),
    ("reproduce", "only"): FlagHelp("CLAIM,...", "only these claims: "
                                    f"{', '.join(c for c in CLAIMS if c not in OPT_IN)} (default: all of these); "
                                    f"{' and '.join(OPT_IN)} run only when named (≈ 1 h each on 2 cores)"),
    ("zoo", "self-edges"): FlagHelp(None, "the _self_edges variant of every preset (graph.self_edges=true)",
                                    "graph.self_edges"),
    ("reproduce", "quick"): FlagHelp(None, "CI-sized runs (minutes): tests the pipeline, every verdict INCONCLUSIVE"),
    ("reproduce", "scale"): FlagHelp("full|quick|paper", "sizes of every claim (default full; paper: accelerators)"),
    ("compare", "metric"): FlagHelp("NAME", "metric to rank and plot (default: the first held-out metric present, "
                                    "test/first_token first)"),
}
COMMAND_HELP = {
    "run": "Train a config's sweep (default: the quick start), analyse it and print held-out accuracy.",
    "train": "Train a config's sweep into a new run directory and print held-out accuracy.",
    "analyze": "Spectral and geometric numbers, plots and report/report.md of a run directory.",
    "export-graph": "Write a config's graph and split in the PyTorch release's text format.",
    "export-embeddings": "Write each experiment's node embedding table (row i = node i) as .npy.",
    "zoo": "Train and analyse the tiny-graph model zoo; write zoo.md.",
    "reproduce": "Train the paper's headline claims and judge each; write REPRODUCTION.md.",
    "compare": "Put the sweep points of several run directories in one table and one figure.",
}
HELP_WIDTH = 100
FLAG_ORDER = ("config", "workdir", "step", "out", "prefix", "naming", "seeds", "only", "self-edges", "quick", "scale",
              "metric", "resume", "no-progress", "no-analyze", "no-plots")


def flag_help(command: str, name: str) -> FlagHelp | None:
    return FLAG_HELP.get((command, name)) or FLAG_HELP.get((None, name))


def _ordered_flags(command: str) -> list[str]:
    known = [f for f in FLAG_ORDER if f in FLAGS[command]]
    return known + sorted(FLAGS[command] - set(known))


def _flag_text(command: str, name: str) -> str:
    help_ = flag_help(command, name)
    value = help_.value if help_ else "VALUE"
    if value is None:
        return f"--{name}"
    return f"--{name}{value}" if value.startswith("[") else f"--{name}={value}"


def synopsis(command: str) -> str:
    """One usage line, e.g. `geomem analyze --workdir=DIR [--step=N] [--no-plots]`."""
    parts = [f"geomem {command}"]
    for name in _ordered_flags(command):
        text = _flag_text(command, name)
        parts.append(text if name in REQUIRED.get(command, ()) else f"[{text}]")
        if name == "config" and command in TAKES_OVERRIDES:
            parts.append("[--config.KEY=VALUE ...]")
    if command in POSITIONAL:
        parts.append(f"{POSITIONAL[command]} [{POSITIONAL[command]} ...]")
    return " ".join(parts)


def command_list() -> str:
    """Every subcommand's usage line: README.md's command list is this text."""
    return "\n".join(synopsis(c) for c in COMMANDS)


def command_help(command: str) -> str:
    lines = [f"usage: {synopsis(command)}", "", COMMAND_HELP[command], "", "flags:"]
    rows = [(_flag_text(command, name), flag_help(command, name)) for name in _ordered_flags(command)]
    if command in TAKES_OVERRIDES:
        rows.insert(1, ("--config.KEY=VALUE", FlagHelp("", "set one config key (repeatable), e.g. "
                                                       "--config.train.steps=500 --config.sweep.seeds=\"(0,1)\"")))
    width = max(len(text) for text, _ in rows) + 2
    for text, help_ in rows:
        meaning = help_.meaning if help_ else "(undocumented)"
        if help_ and help_.keys:
            meaning += f" [config keys: {help_.keys}]"
        wrapped = textwrap.wrap(meaning, HELP_WIDTH - width - 2) or [""]
        lines.append(f"  {text:<{width}}{wrapped[0]}")
        lines += [f"  {'':<{width}}{more}" for more in wrapped[1:]]
    if command in POSITIONAL:
        lines.append(f"  {POSITIONAL[command]:<{width}}a run directory (holds summary.json); two or more")
    lines.append(f"  {'-h, --help':<{width}}this text")
    return "\n".join(lines)


def main_help() -> str:
    from geomem_jax import __version__

    width = max(len(c) for c in COMMANDS) + 2
    lines = [f"geomem {__version__}: geometric vs associative memory of graphs in sequence models", "",
             "usage: geomem COMMAND [flags]   (geomem COMMAND --help: its flags; geomem --version)", "", "commands:"]
    lines += [f"  {c:<{width}}{COMMAND_HELP[c]}" for c in COMMANDS]
    lines += ["", "User errors print one line `geomem: error: ...` and exit 2; nothing is overwritten."]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> tuple[str, dict, list[tuple[str, str]]]:
    """-> (command, flags, config overrides as (dotted key, text)); positionals in flags["args"]."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(main_help())
        raise SystemExit(0)
    if argv[0] in ("-V", "--version", "version"):
        from geomem_jax import __version__

        print(f"geomem {__version__}")
        raise SystemExit(0)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise UserError(f"unknown command {command!r}{did_you_mean(command, COMMANDS)}: expected one of "
                        f"{', '.join(COMMANDS)}")
    flags, overrides, positional = {}, [], []
    for arg in rest:
        if arg in ("-h", "--help"):
            print(command_help(command))
            raise SystemExit(0)
        if not arg.startswith("--"):
            if command in POSITIONAL:
                positional.append(arg)
                continue
            raise UserError(f"unexpected argument {arg!r}: flags look like --name=value")
        name, eq, value = arg[2:].partition("=")
        if name.startswith("config.") and command in TAKES_OVERRIDES | {"reproduce"}:
            if not eq:
                raise UserError(f"--{name} needs a value: --{name}=VALUE")
            overrides.append((name[len("config."):], value))
            continue
        if name not in FLAGS[command]:
            allowed = ", ".join(f"--{f}" for f in sorted(FLAGS[command]))
            extra = ", --config.<key>=<value>" if command in TAKES_OVERRIDES else ""
            raise UserError(f"geomem {command}: unknown flag --{name}"
                            f"{did_you_mean(name, FLAGS[command], '--')}; allowed: "
                            f"{allowed}{extra} (geomem {command} --help)")
        if name == "resume":  # --resume, --resume=auto, --resume=false
            flags[name] = _resume_mode(value if eq else "true")
        elif name in BOOLEAN_FLAGS:
            flags[name] = value.lower() not in ("false", "0", "no") if eq else True
        else:
            if not eq or not value:
                raise UserError(f"--{name} needs a value: --{name}=VALUE")
            flags[name] = value
    if command in POSITIONAL:
        flags["args"] = positional
    return command, flags, overrides


def _resume_mode(text: str):
    modes = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "auto": "auto"}
    if text.lower() not in modes:
        raise UserError(f"--resume={text!r}: expected --resume, --resume=auto or --resume=false")
    return modes[text.lower()]
