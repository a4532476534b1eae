"""Every `geomem` command README.md and docs/QUICKSTART.md document, pasted in their order into one
working directory, succeeds (exit 0). Commands run as written, so their default run directories
and the collisions between them are the real ones; only their size is shrunk: every config gets
SHRINK (a few steps of a tiny model on a small graph), the zoo and the reproduction run their quick
variants, and the per-experiment figures of `analyze` are skipped (tests/test_analyze.py draws them)."""

import dataclasses
import pathlib
import re
import shlex

import pytest

from geomem_jax import cli, config as config_lib, reproduce
from geomem_jax.analysis import analyze
from geomem_jax.config import REPO_ROOT

DOCS = ("README.md", "docs/QUICKSTART.md")
SHRINK = (("graph.degree", "4"), ("graph.path_length", "3"), ("model.layers", "1"), ("model.width", "16"), ("model.heads", "2"), ("train.steps", "4"),
          ("train.batch_size", "8"), ("opt.warmup_steps", "1"), ("eval.every", "4"), ("ckpt.every", "0"),
          ("train.stage1_steps", "0"))
# Long commands -> their smoke / quick variant (same flags plus these).
VARIANTS = {
    "geomem zoo --workdir=runs/zoo --seeds=8": "geomem zoo --workdir=runs/zoo --seeds=2 --only=star_neural_net",
    "geomem reproduce --workdir=runs/repro": "geomem reproduce --workdir=runs/repro --quick --only=hardest_token",
    "geomem COMMAND --help": "geomem train --help",
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


def test_every_documented_command_runs_in_order_in_one_directory(tmp_path, monkeypatch, capsys):
    real_load = config_lib.load_config

    def small(spec):
        cfg = real_load(str(REPO_ROOT / spec) if not pathlib.Path(spec).is_absolute() else spec)
        for dotted, text in SHRINK:
            config_lib.apply_override(cfg, dotted, text)
        return cfg

    monkeypatch.setattr(config_lib, "load_config", small)
    monkeypatch.setattr(analyze, "_plots_for", lambda *args: [])
    monkeypatch.setitem(reproduce.SCALES, "quick", TINY_QUICK)
    monkeypatch.chdir(tmp_path)
    for doc in DOCS:
        for command in documented_commands(REPO_ROOT / doc):
            command = VARIANTS.get(command, command)
            try:
                rc = cli.main(shlex.split(command)[1:])
            except SystemExit as done:  # --help, --version
                rc = done.code
            err = capsys.readouterr().err
            assert rc == 0, f"{doc}: `{command}` failed (exit {rc}): {err.strip().splitlines()[-1:]}"
    # ~215 s of CPU (about 20 compiled programs); not a wall-time assertion: the machine is shared.
