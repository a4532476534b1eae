"""launch/: the TPU VM script's dry-run and fake-gcloud runs, local.sh's plumbing, the Colab notebook run headless."""

import contextlib
import io
import json
import os
import pathlib
import re
import shlex
import stat
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
TPU_VM, LOCAL = LAUNCH / "tpu_vm.sh", LAUNCH / "local.sh"
NOTEBOOK, README = LAUNCH / "colab_demo.ipynb", LAUNCH / "README.md"

# The two slices of the brief: v5e-8 is one host, v4-32 is 16 chips = 4 hosts.
SINGLE = dict(name="geomem-v5e", zone="us-west4-a", type="v5litepod-8", config="configs/quickstart.py:smoke",
              workdir="runs/qs")
MULTI = dict(name="geomem-v4", zone="us-central2-b", type="v4-32", config="configs/pathstar.py:g5000_l5",
             workdir="runs/g5000")


def flags(spec: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in spec.items()]


def run_script(script, args, tmp_path, **env):
    """Runs a launch script from tmp_path with a fake `gcloud` first on PATH (logs every call)."""
    bin_dir = tmp_path / "fakebin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        _write_exe(bin_dir / "gcloud", FAKE_GCLOUD)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path),
                "FAKE_LOG": str(tmp_path / "gcloud.log"), **env}
    return subprocess.run(["bash", str(script), *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=60)


def _write_exe(path: pathlib.Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# Logs argv (one call a line, shell-quoted); `describe` finds a VM of type $FAKE_TYPE if set;
# the repo upload checks the staged copy; the train ssh fails if $FAKE_FAIL_TRAIN is set.
FAKE_GCLOUD = r"""#!/usr/bin/env bash
printf '%q ' "$@" >> "$FAKE_LOG"; echo >> "$FAKE_LOG"
case "$*" in
  *" describe "*)
    if [[ -n "${FAKE_TYPE:-}" ]]; then echo "$FAKE_TYPE"; exit 0; else echo "NOT_FOUND" >&2; exit 1; fi ;;
  *"scp --recurse --worker=all"*)
    src="${@: -2:1}"
    [[ -f "$src/pyproject.toml" && -f "$src/geomem_jax/cli.py" ]] && echo "STAGED pyproject+package" >> "$FAKE_LOG"
    junk="$(find "$src" -name __pycache__ -o -name '*.egg-info' -o -name .git)"
    [[ -z "$junk" ]] && echo "STAGED clean" >> "$FAKE_LOG" ;;
  *"geomem train"*)
    [[ -z "${FAKE_FAIL_TRAIN:-}" ]] || exit 1 ;;
esac
exit 0
"""


def gcloud_calls(tmp_path) -> list[list[str]]:
    log = tmp_path / "gcloud.log"
    if not log.exists():
        return []
    return [shlex.split(line) for line in log.read_text().splitlines() if line and not line.startswith("STAGED")]


def find(lines: list[list[str]], *words: str) -> list[list[str]]:
    """Commands (token lists) that contain every one of `words` as a token."""
    return [t for t in lines if all(w in t for w in words)]


def remote_command(tokens: list[str]) -> list[str]:
    (cmd,) = [t[len("--command="):] for t in tokens if t.startswith("--command=")]
    return shlex.split(cmd)


# --- syntax --------------------------------------------------------------------------

@pytest.mark.parametrize("script", [TPU_VM, LOCAL], ids=lambda p: p.name)
def test_scripts_are_valid_bash_with_strict_mode(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "set -euo pipefail" in script.read_text()


# --- tpu_vm.sh --dry-run -----------------------------------------------------------------

@pytest.mark.parametrize("spec,hosts", [(SINGLE, 1), (MULTI, 4)], ids=["v5e-8", "v4-32"])
def test_dry_run_prints_every_step_and_runs_nothing(spec, hosts, tmp_path):
    res = run_script(TPU_VM, ["--dry-run", *flags(spec)], tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [shlex.split(line) for line in res.stdout.splitlines()]  # every line is one shell command
    assert all(lines)
    name, zone = spec["name"], f"--zone={spec['zone']}"
    gcloud = [t for t in lines if t[:4] == ["gcloud", "compute", "tpus", "tpu-vm"]]
    assert all(zone in t for t in gcloud)

    assert find(lines, "describe", name)
    (create,) = find(lines, "create", name)
    assert f"--accelerator-type={spec['type']}" in create and any(t.startswith("--version=") for t in create)

    (upload,) = find(lines, "scp", "--recurse", "--worker=all")
    assert upload[-1] == f"{name}:" and upload[-2].endswith("/geomem_jax")

    ssh_all = find(lines, "ssh", name, "--worker=all")
    install = [remote_command(t) for t in ssh_all if "install" in remote_command(t)]
    assert len(install) == 1 and ["pip", "install", "--quiet", "-e", ".[tpu]"] == install[0][-5:]

    (train,) = [remote_command(t) for t in ssh_all if "train" in remote_command(t)]
    geomem = train.index(".venv/bin/geomem")
    assert train[geomem + 1:geomem + 4] == ["train", f"--config={spec['config']}", f"--workdir={spec['workdir']}"]
    assert ("GEOMEM_DISTRIBUTED=1" in train) == (hosts > 1)
    if hosts > 1:  # the env var prefixes the command itself
        assert train[geomem - 1] == "GEOMEM_DISTRIBUTED=1"
    assert "--config.mesh.devices=all" in train

    (fetch,) = find(lines, "scp", "--worker=0")
    assert "--recurse" in fetch and fetch[-2:] == [f"{name}:geomem_jax/{spec['workdir']}", "runs"]
    assert lines.index(fetch) > lines.index(find(lines, "ssh", "--worker=all")[-1])  # after training
    assert not find(lines, "delete")

    hosts_note = re.search(r"(\d+) hosts?", res.stderr)
    assert hosts_note and int(hosts_note.group(1)) == hosts
    # Nothing ran: no gcloud call, no staging directory.
    assert gcloud_calls(tmp_path) == []
    assert not list(tmp_path.glob("geomem_stage_*")) and not (tmp_path / "runs").exists()


def test_dry_run_project_delete_after_and_quoted_overrides(tmp_path):
    overrides = ["--config.sweep.seeds=(0, 1)", "--config.name=it's $HOME", "--config.mesh.devices=4", "--resume"]
    res = run_script(TPU_VM, ["--dry-run", *flags(MULTI), "--project=my-proj", "--delete-after", "--no-analyze",
                              "--fetch-to=out dir", *overrides], tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [shlex.split(line) for line in res.stdout.splitlines()]
    gcloud = [t for t in lines if t[0] == "gcloud"]
    assert all("--project=my-proj" in t for t in gcloud)
    assert lines[-1][:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", MULTI["name"]] and "--quiet" in lines[-1]
    assert find(lines, "scp", "--worker=0")[0][-1] == "out dir"
    assert not [t for t in lines if "--worker=0" in t and "ssh" in t]  # --no-analyze
    (train,) = [remote_command(t) for t in find(lines, "ssh", "--worker=all") if "train" in remote_command(t)]
    # Two levels of quoting (local shell, then the worker's shell) keep each override one word, literally.
    assert train[-len(overrides):] == overrides
    assert "--config.mesh.devices=all" not in train


def test_printed_commands_mean_the_same_to_bash(tmp_path):
    """shlex parses the lines; bash must read them the same way, on both shell levels."""
    odd = "--config.name=a \"b\" 'c' $HOME `x` \\ !"
    res = run_script(TPU_VM, ["--dry-run", *flags(MULTI), "--project=p", odd, "--config.sweep.seeds=(0, 1)"], tmp_path)
    assert res.returncode == 0, res.stderr
    printer = tmp_path / "printargs"
    _write_exe(printer, "#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    (train_line,) = [line for line in res.stdout.splitlines() if " ssh " in line and " train " in line]
    # Local shell: gcloud's argv.
    outer = subprocess.run(["bash", "-c", train_line.replace("gcloud ", f"{printer} ", 1)],
                           capture_output=True, text=True, check=True)
    argv = json.loads(outer.stdout)
    assert argv == shlex.split(train_line)[1:]
    # Worker's shell: geomem's argv.
    remote = argv[-1][len("--command="):]
    remote = remote.replace("cd geomem_jax && ", "").replace(".venv/bin/geomem", str(printer))
    inner = subprocess.run(["bash", "-c", remote], capture_output=True, text=True, check=True)
    assert json.loads(inner.stdout) == [
        "train", f"--config={MULTI['config']}", f"--workdir={MULTI['workdir']}", odd,
        "--config.sweep.seeds=(0, 1)", "--config.mesh.devices=all",
    ]


@pytest.mark.parametrize("acc_type,hosts", [
    ("v2-8", 1), ("v3-32", 4), ("v4-8", 1), ("v4-16", 2), ("v4-32", 4), ("v4-128", 16),
    ("v5p-8", 1), ("v5p-16", 2), ("v5litepod-1", 1), ("v5litepod-4", 1), ("v5litepod-8", 1),
    ("v5e-8", 1), ("v5litepod-16", 4), ("v5litepod-256", 64), ("v6e-8", 1), ("v6e-16", 4),
])
def test_hosts_per_accelerator_type(acc_type, hosts, tmp_path):
    spec = {**SINGLE, "type": acc_type}
    res = run_script(TPU_VM, ["--dry-run", *flags(spec)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert int(re.search(r"(\d+) hosts?", res.stderr).group(1)) == hosts
    assert ("GEOMEM_DISTRIBUTED=1" in res.stdout) == (hosts > 1)
    (create,) = find([shlex.split(x) for x in res.stdout.splitlines()], "create")
    assert f"--accelerator-type={acc_type.replace('v5e-', 'v5litepod-')}" in create


@pytest.mark.parametrize("missing", ["name", "zone", "type", "config", "workdir"])
def test_missing_required_flag_exits_2_naming_it(missing, tmp_path):
    spec = {k: v for k, v in MULTI.items() if k != missing}
    res = run_script(TPU_VM, ["--dry-run", *flags(spec)], tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert f"--{missing}" in res.stderr.splitlines()[0]


@pytest.mark.parametrize("args,needle", [
    (["--type=v4-33"], "--type=v4-33"), (["--type=v9-8"], "--type=v9-8"), (["--type=v5litepod-12"], "--type"),
    (["--bogus=1"], "--bogus"), (["--zone="], "--zone"), (["--config.train.steps"], "--config.train.steps"),
])
def test_bad_arguments_exit_2(args, needle, tmp_path):
    res = run_script(TPU_VM, ["--dry-run", *flags(MULTI), *args], tmp_path)
    assert res.returncode == 2 and needle in res.stderr and "usage:" in res.stderr


# --- tpu_vm.sh for real, against a fake gcloud ---------------------------------------------

def test_real_run_creates_uploads_trains_fetches_deletes(tmp_path):
    res = run_script(TPU_VM, [*flags(MULTI), "--delete-after"], tmp_path)
    assert res.returncode == 0, res.stderr
    calls = gcloud_calls(tmp_path)
    verbs = [c[3] if c[3] != "ssh" else "ssh:" + next(w for w in c if w.startswith("--worker=")) for c in calls]
    assert verbs == ["describe", "create", "scp", "ssh:--worker=all", "ssh:--worker=all", "ssh:--worker=0", "scp",
                     "delete"]
    log = (tmp_path / "gcloud.log").read_text()
    assert "STAGED pyproject+package" in log and "STAGED clean" in log  # the repo copy, minus caches
    assert not list(tmp_path.glob("geomem_stage_*"))  # staging removed
    assert (tmp_path / "runs").is_dir()  # fetch destination made


def test_real_run_reuses_existing_vm_of_the_same_type(tmp_path):
    res = run_script(TPU_VM, flags(SINGLE), tmp_path, FAKE_TYPE="v5litepod-8")
    assert res.returncode == 0, res.stderr
    assert [c[3] for c in gcloud_calls(tmp_path)][:2] == ["describe", "scp"]


def test_real_run_refuses_existing_vm_of_another_type(tmp_path):
    res = run_script(TPU_VM, flags(MULTI), tmp_path, FAKE_TYPE="v4-8")
    assert res.returncode == 2 and "v4-8" in res.stderr
    assert [c[3] for c in gcloud_calls(tmp_path)] == ["describe"]


def test_failed_training_keeps_the_vm_and_says_how_to_delete_it(tmp_path):
    res = run_script(TPU_VM, [*flags(MULTI), "--delete-after"], tmp_path, FAKE_FAIL_TRAIN="1")
    assert res.returncode != 0
    assert [c[3] for c in gcloud_calls(tmp_path)][-1] == "ssh"  # stopped at train: no fetch, no delete
    assert "still running" in res.stderr and f"delete {MULTI['name']}" in res.stderr


# --- local.sh -------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["configs/quickstart.py:smoke"], ["--config=x", "runs/x"],
                                  ["configs/quickstart.py", "runs/x", "--workdir=y"]])
def test_local_usage_errors_exit_2(args, tmp_path):
    res = run_script(LOCAL, args, tmp_path, GEOMEM_VENV=str(tmp_path / "novenv"))
    assert res.returncode == 2 and "usage: launch/local.sh" in res.stderr
    assert not (tmp_path / "novenv").exists()


def _stub_venv(tmp_path) -> pathlib.Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _write_exe(venv / "bin" / "python", "#!/bin/sh\nexit 0\n")
    _write_exe(venv / "bin" / "geomem", '#!/usr/bin/env bash\necho "$*" >> "$GEOMEM_LOG"\n'
                                        '[[ "$1" == train && -n "${FAIL_TRAIN:-}" ]] && exit 2\nexit 0\n')
    return venv


def test_local_trains_then_analyses_in_the_venv(tmp_path):
    venv, log = _stub_venv(tmp_path), tmp_path / "geomem.log"
    res = run_script(LOCAL, ["configs/quickstart.py:smoke", "runs/x", "--config.sweep.seeds=(0, 1)"], tmp_path,
                     GEOMEM_VENV=str(venv), GEOMEM_LOG=str(log))
    assert res.returncode == 0, res.stderr
    assert log.read_text().splitlines() == [
        "train --config=configs/quickstart.py:smoke --workdir=runs/x --config.sweep.seeds=(0, 1)",
        "analyze --workdir=runs/x",
    ]


def test_local_failed_training_skips_analysis_and_keeps_the_exit_code(tmp_path):
    venv, log = _stub_venv(tmp_path), tmp_path / "geomem.log"
    res = run_script(LOCAL, ["configs/quickstart.py:smoke", "runs/x"], tmp_path,
                     GEOMEM_VENV=str(venv), GEOMEM_LOG=str(log), FAIL_TRAIN="1")
    assert res.returncode == 2
    assert log.read_text().splitlines() == ["train --config=configs/quickstart.py:smoke --workdir=runs/x"]


def test_local_refuses_to_build_a_venv_from_an_old_python(tmp_path):
    old_python = tmp_path / "python3.9"
    _write_exe(old_python, '#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.9.0"\nexit 1\n')
    res = run_script(LOCAL, ["configs/quickstart.py:smoke", "runs/x"], tmp_path,
                     GEOMEM_VENV=str(tmp_path / "newvenv"), PYTHON=str(old_python))
    assert res.returncode == 2 and "3.11" in res.stderr and "Python 3.9.0" in res.stderr
    assert not (tmp_path / "newvenv").exists()


# --- README ----------------------------------------------------------------------------------

def test_readme_dry_run_examples_match_the_script(tmp_path):
    """Every `$ launch/tpu_vm.sh --dry-run ...` block in launch/README.md is the script's real output."""
    blocks = re.findall(r"```console\n\$ (launch/tpu_vm\.sh --dry-run[^\n]*)\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 2
    for command, shown in blocks:
        argv = shlex.split(command)
        res = subprocess.run(["bash", str(REPO / argv[0]), *argv[1:]], capture_output=True, text=True,
                             env={**os.environ, "TMPDIR": "/tmp"}, cwd=tmp_path, check=True)
        assert res.stdout.replace(str(REPO), "/path/to/geomem_jax") == shown, command
    assert "GEOMEM_DISTRIBUTED=1" not in blocks[0][1] and "GEOMEM_DISTRIBUTED=1" in blocks[1][1]


# --- the Colab notebook, headless ------------------------------------------------------------

def notebook_code_cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebook_is_plain_python():
    for source in notebook_code_cells():
        compile(source, "cell", "exec")
        assert not [line for line in source.splitlines() if line.lstrip().startswith(("!", "%"))]


def test_notebook_runs_headless_with_the_smoke_preset(tmp_path, monkeypatch):
    """Executes the code cells in one namespace (no Jupyter) as shipped: PRESET = "smoke" is the default."""
    workdir = tmp_path / "colab_run"
    cells, replaced = [], {"PRESET": 0, "WORKDIR": 0}
    for source in notebook_code_cells():
        lines = source.splitlines()
        for i, line in enumerate(lines):
            if re.match(r'PRESET = "smoke"', line):
                replaced["PRESET"] += 1
            elif re.match(r"WORKDIR = ", line):
                lines[i], replaced["WORKDIR"] = f"WORKDIR = {str(workdir)!r}", replaced["WORKDIR"] + 1
        cells.append("\n".join(lines))
    assert replaced == {"PRESET": 1, "WORKDIR": 1}

    monkeypatch.chdir(tmp_path)  # nothing lands in the repository
    out, namespace = io.StringIO(), {"__name__": "__main__"}
    with contextlib.redirect_stdout(out):
        for i, source in enumerate(cells):
            exec(compile(source, f"colab_demo.ipynb cell {i}", "exec"), namespace)
    printed = out.getvalue()

    assert "geomem_jax is already installed" in printed  # the pip cell was skipped
    summary = json.loads((workdir / "summary.json").read_text())
    assert len(summary["experiments"]) == 2  # quickstart:smoke has seeds (0, 1)
    assert printed.count("exp  seed  graph") >= 1 and "mean over 2 seeds" in printed
    assert (workdir / "report" / "report.md").is_file()
    pngs = sorted((workdir / "report").glob("*.png"))
    assert pngs and all(str(p) in printed for p in pngs)
