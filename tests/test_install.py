"""A non-editable install works on its own: the configs travel with the package (issue 12).

Builds a wheel of the project, installs it with `pip install --target` into a temporary
folder and runs `geomem run` on the smoke preset from another directory, with only that
folder on PYTHONPATH. The editable install of the test venv (a meta-path finder appended
after the path finders) must not shadow it: the child asserts where geomem_jax came from.
No network: --no-deps, --no-build-isolation, --no-index (setuptools comes from the venv).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import fault_helpers as fh

REPO_ROOT = fh.REPO_ROOT
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q")
SMOKE_ARGS = (
    "--config=configs/pathstar.py:smoke", "--config.graph.degree=5", "--config.model.width=16",
    "--config.train.steps=10", "--config.train.batch_size=16", "--config.eval.every=10",
    "--config.sweep.seeds=(0,)", "--no-progress",
)
# Run in the child from another directory: the installed copy is imported, every preset of
# every bundled config loads, a user's own configs/ copy in the working directory wins.
CHILD_CHECKS = r"""
import importlib.util, json, pathlib, sys
import geomem_jax
from geomem_jax import config as config_lib
from geomem_jax.errors import UserError

site = pathlib.Path(sys.argv[1]).resolve()
assert pathlib.Path(geomem_jax.__file__).resolve().parent == site / "geomem_jax", geomem_jax.__file__
assert not pathlib.Path("configs").exists()
loaded = []
for path in sorted((site / "geomem_jax" / "configs").glob("*.py")):
    spec = importlib.util.spec_from_file_location("probe_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for preset in (None, *getattr(module, "PRESETS", ())):
        arg = f"configs/{path.name}" + (f":{preset}" if preset else "")
        loaded.append((arg, config_lib.load_config(arg).name))
try:
    config_lib.load_config("configs/no_such_file.py")
    raise AssertionError("a missing config loaded")
except UserError as err:
    assert str(err) == "--config=configs/no_such_file.py: no such config file", err
mine = pathlib.Path("configs")
mine.mkdir()
(mine / "pathstar.py").write_text(
    (site / "geomem_jax" / "configs" / "pathstar.py").read_text().replace('f"pathstar_{', 'f"mine_{'))
assert config_lib.load_config("configs/pathstar.py:smoke").name == "mine_smoke"
print(json.dumps({"file": geomem_jax.__file__, "loaded": loaded}))
"""


def _package_dirs() -> set[str]:
    return {p.parent.relative_to(REPO_ROOT).as_posix().replace("/", ".")
            for p in (REPO_ROOT / "geomem_jax").rglob("__init__.py")}


def test_wheel_installs_and_runs_from_another_directory(tmp_path):
    # Build from a copy of the sources, so that the checkout gets no build/ folder.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("geomem_jax", "configs"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    dist, site, cwd = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = dist.glob("geomem_jax-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (REPO_ROOT / "configs").glob("*.py"))
    assert {f"geomem_jax/configs/{name}" for name in configs} <= names
    assert not any(n.startswith("configs/") for n in names), "configs/ must install inside geomem_jax/"
    missing = {pkg for pkg in _package_dirs() if f"{pkg.replace('.', '/')}/__init__.py" not in names}
    assert not missing, f"sub-packages missing from pyproject.toml [tool.setuptools] packages: {missing}"

    subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    env = dict(fh.subprocess_env(), PYTHONPATH=str(site))
    env.pop("PYTHONSAFEPATH", None)

    checks = subprocess.run([sys.executable, "-c", CHILD_CHECKS, str(site)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert checks.returncode == 0, checks.stderr[-3000:]
    report = json.loads(checks.stdout.splitlines()[-1])
    assert pathlib.Path(report["file"]).resolve().is_relative_to(site.resolve())
    assert not pathlib.Path(report["file"]).resolve().is_relative_to(REPO_ROOT)
    specs = [arg for arg, _ in report["loaded"]]
    assert "configs/quickstart.py" in specs and "configs/pathstar.py:smoke" in specs
    assert len({arg.split(":")[0] for arg in specs}) == len(configs)
    shutil.rmtree(cwd / "configs")

    # The console script the wheel installed (bin/geomem), run from another directory.
    script = site / "bin" / "geomem"
    assert script.is_file()
    workdir = cwd / "runs" / "smoke"
    done = subprocess.run([sys.executable, str(script), "run", *SMOKE_ARGS, f"--workdir={workdir}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert len(summary["experiments"]) == 1
