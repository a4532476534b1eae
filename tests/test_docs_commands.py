"""Every `geomem` command README.md and docs/QUICKSTART.md document, pasted in their order into one
working directory, succeeds (exit 0). Commands run as written, so their default run directories
and the collisions between them are the real ones; only their size is shrunk: every config gets
SHRINK (a few steps of a tiny model on a small graph), the zoo and the reproduction run their quick
variants, and the per-experiment figures of `analyze` are skipped (tests/test_analyze.py draws them).
Like the whole suite (tests/conftest.py), XLA compiles them with most optimisations off; only exit
codes are checked here."""

import dataclasses
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

import fault_helpers
from geomem_jax import cli, config as config_lib, reproduce
from geomem_jax.analysis import analyze
from geomem_jax.config import REPO_ROOT

DOCS = ("README.md", "docs/QUICKSTART.md")
SHRINK = (("graph.degree", "4"), ("graph.path_length", "3"), ("model.layers", "1"), ("model.width", "16"),
          ("model.heads", "2"), ("train.steps", "4"), ("train.batch_size", "8"), ("opt.warmup_steps", "1"),
          ("eval.every", "4"), ("ckpt.every", "0"), ("train.stage1_steps", "0"))
# Long commands -> their smoke / quick variant (same flags plus these).
VARIANTS = {
    "geomem zoo --workdir=runs/zoo --seeds=8": "geomem zoo --workdir=runs/zoo --seeds=2 --only=star_neural_net",
    "geomem reproduce --workdir=runs/repro": "geomem reproduce --workdir=runs/repro --quick --only=hardest_token",
    "geomem COMMAND --help": "geomem train --help",
    "geomem train --config=configs/scaling.py:degree --workdir=runs/scale_degree":
        "geomem train --config=configs/scaling.py:smoke --workdir=runs/scale_degree",
}
TINY_QUICK = dataclasses.replace(reproduce.SCALES["quick"], base=("configs/quickstart.py", (
    ("graph.degree", "4"), ("graph.path_length", "3"), ("model.width", "16"), ("model.heads", "1"),
    ("train.steps", "4"), ("train.batch_size", "8"), ("opt.warmup_steps", "1"), ("eval.every", "4"),
    ("ckpt.every", "4"))))


def documented_commands(path) -> list[str]:
    """`geomem ...` code spans and shell lines of fenced blocks, in order; the usage list under
    "## Commands" is left out (tests/test_cli.py checks it against the parser)."""
    joined = []
    for line in pathlib.Path(path).read_text().splitlines():  # shell continuations
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line)
    out, fence, heading = [], None, ""
    for line in joined:
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is None:
            heading = line if line.startswith("#") else heading
            out += re.findall(r"`(geomem [^`]+)`", line)
        elif fence in ("", "bash", "console") and heading != "## Commands" and line.strip().startswith("geomem "):
            out.append(line.split(" #")[0].strip())
    return out


def test_the_docs_document_commands():
    commands = [c for doc in DOCS for c in documented_commands(REPO_ROOT / doc)]
    assert "geomem run --config=configs/quickstart.py:smoke" in commands and len(commands) >= 15


def shrunk(real_load):
    """load_config, then SHRINK."""
    def small(spec):
        cfg = real_load(str(REPO_ROOT / spec) if not pathlib.Path(spec).is_absolute() else spec)
        for dotted, text in SHRINK:
            if not (dotted in config_lib.NODE2VEC_NEUTRAL and cfg.model.family == "node2vec"):  # keys it refuses
                config_lib.apply_override(cfg, dotted, text)
        return cfg

    return small


def _commands() -> list[tuple[str, str]]:
    return [(doc, VARIANTS.get(command, command)) for doc in DOCS for command in documented_commands(REPO_ROOT / doc)]


# A second process fills the session's compile cache with the programs of the later commands
# (from the last one back) while this one runs the earlier ones: the two cores share the
# compiling. It runs each in an empty folder of its own and stops where the test has got to;
# nothing it does is checked (the test runs every command itself, in order, in one directory).
WARM_UP = """
import json, os, pathlib, shlex, sys
sys.path.insert(0, sys.argv[1])
import test_docs_commands as docs
from geomem_jax import cli, config as config_lib, reproduce
from geomem_jax.analysis import analyze
config_lib.load_config = docs.shrunk(config_lib.load_config)
analyze._plots_for = lambda *args: []
reproduce.SCALES["quick"] = docs.TINY_QUICK
scratch, progress = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
for index, command in json.loads(sys.argv[4]):
    if int(progress.read_text() or 0) >= index:
        break
    folder = scratch / str(index)
    folder.mkdir()
    os.chdir(folder)
    print(index, command, "->", cli.main(shlex.split(command)[1:]), flush=True)
"""


@pytest.fixture
def warm_up(tmp_path_factory):
    """Starts WARM_UP over the distinct compiling commands after the first; yields the progress file
    (the index of the command the test is at); ends the warm-up with the test."""
    from geomem_jax import cli as cli_lib

    root = tmp_path_factory.mktemp("docs_warm_up")
    progress = root / "progress"
    progress.write_text("0")
    first = {}  # each distinct compiling command at its first place in the docs
    for i, (_, command) in enumerate(_commands()):
        if shlex.split(command)[1] in cli_lib.COMPILING_COMMANDS:
            first.setdefault(command, i)
    later = sorted(((i, command) for command, i in first.items() if i > min(first.values())), reverse=True)
    env = fault_helpers.subprocess_env()
    with open(root / "warm_up.log", "w") as log:
        child = subprocess.Popen([sys.executable, "-c", WARM_UP, str(fault_helpers.HERE), str(root / "scratch"),
                                  str(progress), json.dumps(later)], cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    (root / "scratch").mkdir()
    try:
        yield progress
    finally:
        child.kill()
        child.wait()


def test_every_documented_command_runs_in_order_in_one_directory(tmp_path, monkeypatch, capsys, warm_up):
    monkeypatch.setattr(config_lib, "load_config", shrunk(config_lib.load_config))
    monkeypatch.setattr(analyze, "_plots_for", lambda *args: [])
    monkeypatch.setitem(reproduce.SCALES, "quick", TINY_QUICK)
    monkeypatch.chdir(tmp_path)
    for index, (doc, command) in enumerate(_commands()):
        warm_up.write_text(str(index))
        try:
            rc = cli.main(shlex.split(command)[1:])
        except SystemExit as done:  # --help, --version
            rc = done.code
        err = capsys.readouterr().err
        assert rc == 0, f"{doc}: `{command}` failed (exit {rc}): {err.strip().splitlines()[-1:]}"
    # ~215 s of CPU with optimised compiles, ~100 s without; not a wall-time assertion: the machine is shared.
