"""`geomem` CLI: user errors exit 2 with one line and touch nothing; export-graph round trip; train table."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from geomem_jax import cli, graphs
from geomem_jax.config import REPO_ROOT

SMOKE = "--config=configs/pathstar.py:smoke"


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, needle", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["train", SMOKE, "--workdir=W", "--colour=red"], "unknown flag --colour"),
    (["train", SMOKE, "--workdir=W", "--config.model.nope=1"], "config.model.nope"),
    (["train", SMOKE, "--workdir=W", "--config.modle.width=8"], "config.modle"),
    (["train", "--config=configs/pathstar.py:huge", "--workdir=W"], "preset"),
    (["train", "--config=configs/no_such_file.py", "--workdir=W"], "no such config file"),
    (["train", SMOKE, "--workdir=W", "--config.train.steps=abc"], "config.train.steps"),
    (["train", SMOKE, "--workdir=W", "--config.model.attention=3"], "config.model.attention"),
    (["train", SMOKE], "--workdir"),
    (["train", SMOKE, "--workdir=W", "--config.train.batch_size=0"], "train.batch_size"),
    (["train", SMOKE, "stray", "--workdir=W"], "unexpected argument"),
])
def test_user_errors_exit_2_with_one_line(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)  # a relative --workdir=W would land here
    argv = [a.replace("configs/", f"{REPO_ROOT}/configs/") for a in argv]
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    assert err.startswith("geomem: error: ") and err.count("\n") == 1
    assert needle in err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "W").exists()


def _fake_run(workdir, steps):
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps({"name": "someone_else", "train": {"steps": steps}}))
    (workdir / "summary.json").write_text('{"experiments": [], "aggregate": []}\n')
    (workdir / "metrics.jsonl").write_text('{"step": 10, "experiments": []}\n')
    return {p.name: p.read_bytes() for p in workdir.iterdir()}


@pytest.mark.parametrize("resume", [False, True])
def test_workdir_of_another_run_is_left_untouched(capsys, tmp_path, resume):
    workdir = tmp_path / "other"
    before = _fake_run(workdir, steps=7)
    argv = ["train", SMOKE, f"--workdir={workdir}", "--no-progress"] + (["--resume"] if resume else [])
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and "Traceback" not in err
    assert ("different config" in err) if resume else ("already holds a run" in err and "--resume" in err)
    after = {p.name: p.read_bytes() for p in workdir.iterdir() if p.name != ".lock"}
    assert after == before


def test_resume_with_nothing_to_resume(capsys, tmp_path):
    rc, _, err = _run(capsys, "train", SMOKE, f"--workdir={tmp_path / 'empty'}", "--resume")
    assert rc == 2 and "nothing to resume" in err
    assert not (tmp_path / "empty" / "config.json").exists()


def test_export_graph_round_trips_through_the_release_reader(capsys, tmp_path):
    out_dir = tmp_path / "release"
    rc, out, err = _run(capsys, "export-graph", SMOKE, "--config.graph.degree=4", "--config.graph.seed=3",
                        f"--out={out_dir}")
    assert rc == 0, err
    printed = sorted(out.split())
    assert printed == sorted(str(p) for p in out_dir.iterdir())
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "path_star_d4_l4_s3_pretrain.txt", "path_star_d4_l4_s3_test_1.txt", "path_star_d4_l4_s3_train_3.txt"]
    back = graphs.read_release_dir(out_dir)
    want = graphs.path_star(4, 4, seed=3, train_fraction=0.75)
    assert back.num_nodes == want.num_nodes == 13 and back.root == want.root
    np.testing.assert_array_equal(back.forward_edges_Ex2, want.forward_edges_Ex2)
    np.testing.assert_array_equal(back.train_paths_PxL, want.train_paths_PxL)
    np.testing.assert_array_equal(back.test_paths_QxL, want.test_paths_QxL)
    assert back.spec["edges"] == "both" and back.spec["self_edges"] is False
    # Both directions of every edge are written (edges="both").
    edges_text = (out_dir / "path_star_d4_l4_s3_pretrain.txt").read_text()
    assert edges_text.count("\n") == 2 * want.num_edges


def test_train_prints_one_row_per_seed(capsys, tmp_path, tiny_overrides):
    workdir = tmp_path / "run"
    overrides = [f"--config.{k}={v}" for k, v in tiny_overrides]
    rc, out, err = _run(capsys, "train", SMOKE, *overrides, f"--workdir={workdir}", "--no-progress")
    assert rc == 0, err
    summary = json.loads((workdir / "summary.json").read_text())
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["exp", "seed", "graph"]
    rows = [line.split() for line in lines[1:] if line[:3].strip().isdigit()]
    assert len(rows) == len(summary["experiments"]) == 2
    header = lines[0].split()
    columns = {"first": "test/first_token", "exact": "test/exact_match", "edges": "edge/recall_at_degree",
               "level": "geometry/level"}
    assert set(columns) <= set(header)
    for row, exp in zip(rows, summary["experiments"]):
        assert int(row[0]) == exp["index"] and int(row[1]) == exp["seed"]
        values = dict(zip(header[-len(columns):], (float(x) for x in row[-len(columns):])))
        for label, key in columns.items():
            assert values[label] == pytest.approx(exp["final"][key], abs=5e-4), label
    assert sum(line.startswith("mean over 2 seeds") for line in lines) == 1
    assert f"run directory: {workdir}" in out


def _subprocess(*args):
    return subprocess.run([sys.executable, "-m", "geomem_jax", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_help_and_version_in_a_subprocess():
    proc = _subprocess("--help")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert all(f"  {command} " in proc.stdout for command in cli.COMMANDS)
    proc = _subprocess("train", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: geomem train --config=FILE[:PRESET]")
    from geomem_jax import __version__

    proc = _subprocess("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"geomem {__version__}"


def _help_of(capsys, command) -> str:
    with pytest.raises(SystemExit) as done:
        cli.parse_args([command, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_help_lists_exactly_the_flags_the_parser_accepts(capsys, command):
    text = _help_of(capsys, command)
    flag_lines = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    shown = {re.match(r"--([a-z-]+)", f).group(1) for f in flag_lines if not f.startswith("--config.")}
    assert shown == cli.FLAGS[command]  # no flag missing, none invented
    assert "(undocumented)" not in text  # every flag has a line of meaning
    assert ("--config.KEY=VALUE" in text) == (command in cli.TAKES_OVERRIDES)
    for name in cli.FLAGS[command]:  # and the parser accepts each flag the help shows
        value = [] if name in cli.BOOLEAN_FLAGS or name == "resume" else ["=x"]
        try:
            cli.parse_args([command, f"--{name}" + "".join(value)])
        except cli.UserError as err:
            assert "unknown flag" not in str(err), name
    others = {c: _help_of(capsys, c) for c in cli.COMMANDS if c != command}
    assert text not in others.values()  # one help per subcommand


def test_readme_command_list_is_the_parsers():
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Commands\n\n```\n(.*?)```", readme, flags=re.S).group(1)
    assert block.strip() == cli.command_list()


@pytest.mark.parametrize("argv, hint", [
    (["trian"], "(did you mean train?)"),
    (["zoo", "--workdir=W", "--sedes=3"], "(did you mean --seeds?)"),
    (["train", SMOKE, "--workdir=W", "--config.model.widht=8"], "(did you mean config.model.width?)"),
    (["train", "--config=configs/pathstar.py:smok", "--workdir=W"], "(did you mean smoke?)"),
    (["train", "--config=configs", "--workdir=W"], "is a folder, not a config file"),
])
def test_mistakes_get_a_suggestion(capsys, tmp_path, monkeypatch, argv, hint):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("configs", f"{REPO_ROOT}/configs", 1) if a.startswith("--config=") else a for a in argv]
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and err.startswith("geomem: error: ") and err.count("\n") == 1
    assert hint in err


def test_default_workdirs_differ_by_preset_and_overrides_only():
    from geomem_jax import config as config_lib

    spec = f"{REPO_ROOT}/configs/quickstart.py"

    def workdir(spec, *overrides):
        cfg = config_lib.load_config(spec)
        for dotted, text in overrides:
            config_lib.apply_override(cfg, dotted, text)
        return cli.default_workdir(spec, cfg)

    assert workdir(spec) == "runs/quickstart"
    assert workdir(spec + ":smoke") == "runs/quickstart-smoke"
    eight = workdir(spec, ("sweep.seeds", "(0,1,2,3,4,5,6,7)"))
    assert re.fullmatch(r"runs/quickstart-[0-9a-f]{6}", eight)
    assert workdir(spec, ("sweep.seeds", "0, 1, 2, 3, 4, 5, 6, 7")) == eight  # same config, same directory
    assert workdir(spec, ("opt.lr", "0.01")) == "runs/quickstart"  # the default value: nothing changed
    assert workdir(spec, ("opt.lr", "0.03")) not in (eight, "runs/quickstart")


def _summary_of_a_sweep():
    exps = []
    for i, (lr, seed, first) in enumerate([(0.01, 0, 0.5), (0.01, 1, 0.7), (0.03, 0, 0.9), (0.03, 1, 0.8)]):
        coords = {"graph": 0, "lr": lr, "weight_decay": 1.0}
        exps.append({"index": i, "seed": seed, "graph": {"family": "path_star", "num_nodes": 21}, "coords": coords,
                     "final": {"test/first_token": first, "edge/recall_at_degree": 1.0}})
    from geomem_jax import metrics

    return {"experiments": exps, "aggregate": metrics.aggregate(exps)}


def test_results_table_shows_swept_coordinates_and_ranks_points():
    lines = cli.results_table(_summary_of_a_sweep()).splitlines()
    assert lines[0].split()[:4] == ["exp", "seed", "graph", "lr"] and "wd" not in lines[0]  # only swept ones
    assert lines[0].split()[4] == "first"  # the primary held-out metric first
    assert lines[1].split()[4] == "0.01" and lines[3].split()[4] == "0.03"
    title = lines.index("mean over 2 seeds [95% CI] per sweep point, best first by test/first_token")
    best, other = lines[title + 2], lines[title + 3]
    assert best.split()[:3] == ["0.03", "2", "0.850"] and best.endswith("<- best")
    assert "0.850 [0.800, 0.900]*" in best and "0.600 [0.500, 0.700]*" in other and "best" not in other
    assert lines[-1].startswith("* fewer than 3 seeds: [min, max]")


def test_user_error_in_a_subprocess_has_no_traceback(tmp_path):
    proc = _subprocess("train", SMOKE, f"--workdir={tmp_path / 'w'}", "--config.model.heads=3")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("geomem: error: ")
    assert "model.heads" in proc.stderr and not (tmp_path / "w").exists()


def test_background_errors_are_dropped_after_a_reported_error_and_shown_once_after_success(capsys):
    from geomem_jax.cli import _BackgroundErrors

    failed = _BackgroundErrors()
    failed.report(RuntimeError, RuntimeError("Requested byte range"))
    failed.finish(failed=True)
    failed.report(RuntimeError, RuntimeError("Event loop is closed"))  # shutdown echo
    assert capsys.readouterr().err == ""

    ok = _BackgroundErrors()
    ok.report(OSError, OSError("disk hiccup\nmore detail"))
    ok.report(OSError, OSError("disk hiccup"))
    assert capsys.readouterr().err == ""  # held while the command runs
    ok.finish(failed=False)
    ok.report(OSError, OSError("disk hiccup"))
    ok.report(ValueError, ValueError("late"))
    assert capsys.readouterr().err.splitlines() == [
        "geomem: note: a background task failed (OSError: disk hiccup)",
        "geomem: note: a background task failed (ValueError: late)",
    ]


def test_reproduce_help_names_every_claim():
    from geomem_jax import reproduce

    text = cli.FLAG_HELP[("reproduce", "only")].meaning
    assert [c for c in reproduce.CLAIMS if c not in text] == []


def test_the_cli_keeps_compiled_programs_in_its_cache_folder(tmp_path, tiny_overrides):
    """`geomem train` keeps its compiled programs in ~/.cache/geomem_jax/xla; a rerun of the same
    shapes (here through GEOMEM_COMPILE_CACHE naming that folder) reads them and adds nothing;
    GEOMEM_COMPILE_CACHE=off keeps none."""
    overrides = [f"--config.{k}={v}" for k, v in tiny_overrides if k not in ("train.steps", "sweep.seeds")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "GEOMEM_"))}
    args = ["train", "--config=configs/pathstar.py:smoke", *overrides, "--config.train.steps=10",
            "--config.sweep.seeds=(0,)", "--no-progress"]

    def train(name, home, **extra_env):
        proc = subprocess.run([sys.executable, "-m", "geomem_jax", *args, f"--workdir={tmp_path / name}"],
                              env={**env, "HOME": str(home), **extra_env}, capture_output=True, text=True,
                              cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stderr

    home = tmp_path / "home"
    train("first", home)
    cache = home / ".cache" / "geomem_jax" / "xla"
    kept = sorted(p.name for p in cache.iterdir())
    assert kept  # at least the training chunk (compiles for > 1 s)
    train("again", tmp_path / "elsewhere", GEOMEM_COMPILE_CACHE=str(cache))
    assert sorted(p.name for p in cache.iterdir()) == kept
    probe = ("import jax; from geomem_jax import cli; "
             "print(cli.use_compile_cache(), jax.config.jax_compilation_cache_dir)")
    proc = subprocess.run([sys.executable, "-c", probe], env={**env, "GEOMEM_COMPILE_CACHE": "off"},
                          capture_output=True, text=True)
    assert proc.stdout.split() == ["None", "None"], proc.stderr
