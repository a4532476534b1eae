"""Fuzzed input (issue 16): random override values for every config key, random unknown keys,
random byte mutations of valid release-format files.

Each input either builds a runnable sweep or is refused with a UserError (the CLI's one
`geomem: error:` line, exit 2) that names the field. Anything else (a traceback, another
exit code) is a bug. Most cases run in-process through the path `geomem train` takes before
it compiles anything (`prepare`); a handful are real `geomem` subprocesses.
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fault_helpers as fh
from geomem_jax import cli, config as config_lib, graphs, sweep, train
from geomem_jax.errors import UserError

# One base config per model family, so every family's own keys (d_state, walk_p, ...) are read.
BASES = (
    "configs/pathstar.py:smoke", "configs/tiny_graphs.py:cycle_mamba", "configs/node2vec.py:smoke",
    "configs/in_context.py:smoke", "configs/tiny_graphs.py:cycle_neural_net",
)


def _all_keys() -> tuple[str, ...]:
    """Every dotted key of the base config (sections expanded)."""
    out = []
    for name, value in config_lib.base_config().items():
        out.extend(f"{name}.{key}" for key in value.keys()) if hasattr(value, "keys") else out.append(name)
    return tuple(sorted(out))


ALL_KEYS = _all_keys()
# Mid-sized whole numbers (10^5 .. 10^9 nodes, steps, ...) are valid settings that take long to
# build or run, not input errors: whole numbers are drawn from the small and the huge ends only.
SMALL_INT, HUGE_INT = (-3, 40), (2**31 - 1, 10**400)  # 10**400 overflows even float64


def prepare(base: str, overrides) -> None:
    """What `geomem train` does before compiling: load and override the config, check it, build
    graphs, data and program, estimate memory, make the sweep inputs and the config record."""
    cfg = cli.load({"config": base}, overrides)
    exps, program, data, meta = train.build(cfg)
    train.check_memory(cfg, program, data, len(exps))
    sweep.seed_keys(exps), sweep.hparam_arrays(exps)
    json.dumps(config_lib.to_dict(cfg), allow_nan=True), json.dumps(meta)


def outcome(base: str, overrides, field: str) -> str:
    """'ok', or 'refused' when a UserError names `field`; raises on anything else."""
    try:
        prepare(base, overrides)
    except UserError as err:
        message = str(err)
        assert "\n" not in message, message
        if message.startswith(MEMORY_REFUSAL):  # too big for a device: names the keys that shrink it
            return "too big"  # (train.check_memory's message)
        assert field in message, f"{field!r} not named in: {message}"
        return "refused"
    return "ok"


MEMORY_REFUSAL = "the sweep needs about"


# ----------------------------------------------------------------------------- value strategies


def _ints():
    return st.one_of(st.integers(*SMALL_INT), st.integers(*HUGE_INT), st.integers(-(10**400), -(2**31)))


_FLOATS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 0.5, 1.0, 2.0]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_WORDS = st.sampled_from([
    "", " ", "true", "false", "none", "None", "maybe", "all", "1e999", "-1e999", "nan", "inf", "0x10", "1_000",
    "1+1", "10**9", "__import__('os').getcwd()", "[1]*10**9", "b'x'", "1j", "...", "{1, 2}", "{}",
    "{'degree': 5}", "{'a': {'b': (1,)}}", "((),)", "((1, 2), (3,))", "(1, 'a')", "()", "[]", "[[]]",
    "(" * 200 + ")" * 200, "(" * 5000, "9" * 5000, "'\u00e9\u4e2d\U0001f600'", "\u00e9\u4e2d\U0001f600",
    "../../etc", "a=b", "--x", "\\", "'", '"', "1" + "0" * 400, "-1" + "0" * 400, "(1" + "0" * 400 + ",)", "x" * 300,
])


VALUE_TEXT = st.one_of(
    _WORDS,
    _ints().map(str),
    _FLOATS.map(repr),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.tuples(st.one_of(_ints(), _FLOATS, st.text(max_size=3))).map(repr),
    st.lists(st.one_of(_ints(), st.tuples(), st.tuples(st.integers(0, 3))), max_size=4).map(lambda v: repr(tuple(v))),
    st.dictionaries(st.sampled_from([*sweep.GRAPH_KEYS, "colour", ""]), st.one_of(_ints(), _FLOATS, _WORDS),
                    max_size=3).map(lambda d: repr((d,))),
)

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(base=st.sampled_from(BASES), key=st.sampled_from(ALL_KEYS), text=VALUE_TEXT)
def test_any_value_of_any_key_builds_or_is_refused_naming_the_key(base, key, text):
    if key == "graph.release_dir" and text.strip() and _is_dir(text):  # an existing folder, e.g. "..":
        outcome(base, [(key, text)], text)  # the release reader names the folder or its file
    else:
        outcome(base, [(key, text)], key)


def _is_dir(text: str) -> bool:
    try:
        return pathlib.Path(text).is_dir()
    except (OSError, ValueError):
        return False


_IDENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00="), min_size=0, max_size=8)


@settings(FUZZ, max_examples=60)
@given(base=st.sampled_from(BASES),
       parts=st.lists(st.one_of(_IDENT, st.sampled_from(ALL_KEYS)), min_size=1, max_size=3), text=VALUE_TEXT)
def test_unknown_keys_are_refused_naming_the_key(base, parts, text):
    dotted = ".".join(parts)
    if dotted in ALL_KEYS:
        return
    try:
        prepare(base, [(dotted, text)])
    except UserError as err:
        assert "\n" not in str(err) and f"config.{_first_unknown(dotted)}" in str(err), str(err)
    else:
        pytest.fail(f"unknown key config.{dotted} was accepted")


def _first_unknown(dotted: str) -> str:
    """The prefix of `dotted` up to its first part that is not a section or key of the config."""
    node, parts = config_lib.base_config(), dotted.split(".")
    for i, part in enumerate(parts):
        if not hasattr(node, "keys") or part not in node:
            return ".".join(parts[: i + 1])
        node = node[part]
    return dotted


# ----------------------------------------------------------------------------- release-format files


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("release_good")
    graphs.write_release_dir(graphs.path_star(3, 3, seed=0), root)
    return {p.name: p.read_bytes() for p in root.iterdir()}


_MUTATION = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate_line"]),
    st.integers(0, 10**6), st.integers(0, 255),
)


def _mutate(data: bytes, how) -> bytes:
    kind, where, byte = how
    i = where % (len(data) + 1)
    if kind == "flip" and data:
        i = where % len(data)
        return data[:i] + bytes([byte]) + data[i + 1:]
    if kind == "insert":
        return data[:i] + bytes([byte]) + data[i:]
    if kind == "delete":
        return data[:i] + data[i + 1:]
    if kind == "truncate":
        return data[:i]
    lines = data.split(b"\n")
    j = where % len(lines)
    return b"\n".join(lines[: j + 1] + lines[j:])


@settings(FUZZ, max_examples=100)
@given(which=st.integers(0, 2), mutations=st.lists(_MUTATION, min_size=1, max_size=4))
def test_mutated_release_files_train_or_are_refused_naming_the_file(release_files, which, mutations):
    names = sorted(release_files)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for name, data in release_files.items():
            if name == names[which]:
                for how in mutations:
                    data = _mutate(data, how)
            (root / name).write_bytes(data)
        outcome("configs/pathstar.py:smoke", [("graph.release_dir", str(root))], str(root))


def test_the_fuzz_sees_every_key_and_enough_cases():
    assert len(ALL_KEYS) >= 70 and {"graph.degree", "sweep.graphs", "mesh.devices", "name"} <= set(ALL_KEYS)


# ----------------------------------------------------------------------------- real `geomem` processes

SMOKE_ARGS = ("train", "--config=configs/tiny_graphs.py:cycle_neural_net", "--config.train.steps=4",
              "--config.eval.every=2", "--config.sweep.seeds=(0,)", "--no-progress")
CLI_CASES = [  # (override, field named, or None: trains)
    ("--config.opt.lr=nan", "opt.lr"),
    ("--config.sweep.seeds=((),(1,))", "sweep.seeds"),
    ("--config.sweep.graphs=" + "(" * 5000, "sweep.graphs"),
    ("--config.model.\u00e9\u4e2d=1", "config.model.\u00e9\u4e2d"),
    ("--config.name=\u00e9\u4e2d\U0001f600 {'a': 1}", None),
]


def _geomem(workdir, override) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "geomem_jax", *SMOKE_ARGS, f"--workdir={workdir}", override]
    return subprocess.run(argv, cwd=fh.REPO_ROOT, env=fh.subprocess_env(), capture_output=True, text=True, timeout=300)


def test_geomem_processes_exit_0_or_2_with_one_error_line(tmp_path):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda i: _geomem(tmp_path / f"run{i}", CLI_CASES[i][0]), range(len(CLI_CASES))))
    for (override, field), result in zip(CLI_CASES, done):
        assert "Traceback" not in result.stderr, (override, result.stderr[-2000:])
        if field is None:
            assert result.returncode == 0, (override, result.stderr[-2000:])
            continue
        errors = [line for line in result.stderr.splitlines() if line.startswith("geomem: ")]
        assert result.returncode == 2 and len(errors) == 1, (override, result.returncode, result.stderr[-2000:])
        assert errors[0].startswith("geomem: error: ") and field in errors[0], (override, errors[0])
