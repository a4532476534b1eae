"""TensorBoard / W&B writers: exact scalars and steps per experiment, through fake packages.

Neither tensorboardX nor wandb is a dependency: fake modules injected into sys.modules
record every call, and a `None` entry in sys.modules makes the import fail as if the
package were not installed.
"""

import json
import sys
import types

import ml_collections
import numpy as np
import pytest

from geomem_jax import metrics, writers
from geomem_jax.errors import ConfigError, UserError

NAN = float("nan")


# ----------------------------------------------------------------------------- fakes


def _fake_tensorboard_module(name):
    calls = {"writers": []}

    class SummaryWriter:
        def __init__(self, logdir, **kwargs):
            self.logdir, self.kwargs = logdir, kwargs
            self.scalars, self.flushes, self.closed = [], 0, False
            calls["writers"].append(self)

        def add_scalar(self, tag, scalar_value, global_step=None):
            self.scalars.append((tag, scalar_value, global_step))

        def flush(self):
            self.flushes += 1

        def close(self):
            self.closed = True

    mod = types.ModuleType(name)
    mod.SummaryWriter, mod.calls = SummaryWriter, calls
    return mod


@pytest.fixture
def fake_tbx(monkeypatch):
    mod = _fake_tensorboard_module("tensorboardX")
    monkeypatch.setitem(sys.modules, "tensorboardX", mod)
    return mod.calls


@pytest.fixture
def fake_wandb(monkeypatch):
    mod = types.ModuleType("wandb")
    mod.runs = []

    class Run:
        def __init__(self, kwargs):
            self.kwargs, self.logs, self.finished = kwargs, [], False

        def log(self, data, step=None):
            self.logs.append((dict(data), step))

        def finish(self):
            self.finished = True

    def init(**kwargs):
        run = Run(kwargs)
        mod.runs.append(run)
        return run

    mod.init = init
    monkeypatch.setitem(sys.modules, "wandb", mod)
    return mod


@pytest.fixture
def no_packages(monkeypatch):
    """As if neither tensorboardX, torch nor wandb were installed."""
    for name in ("tensorboardX", "torch", "torch.utils", "torch.utils.tensorboard", "wandb"):
        monkeypatch.setitem(sys.modules, name, None)


# ----------------------------------------------------------------------------- a 3-experiment run


def _meta():
    exps = []
    for index, (seed, lr) in enumerate([(0, 1e-3), (1, 1e-3), (0, 1e-2)]):
        hparams = {"lr": lr, "weight_decay": 0.0, "init_scale": 0.02, "dropout": 0.0}
        exps.append({"index": index, "seed": seed, "graph_index": 0, "hparams": hparams,
                     "coords": {"graph": 0, **hparams}})
    return {"experiments": exps}


def _records():
    """Two metric records made the way the loop makes them (vmapped arrays -> experiment_records -> JSON)."""
    exps = [types.SimpleNamespace(index=i) for i in range(3)]
    by_step = {
        10: {"train/loss": np.array([2.0, 1.5, 3.0], np.float32),
             "test/token": np.array([[0.5, 0.25], [1.0, 0.0], [0.0, 0.0]], np.float32),
             "edge/recall_at_degree": np.array([0.5, NAN, 1.0], np.float32),
             "diverged_at": np.array([-1, -1, -1], np.int32)},
        20: {"train/loss": np.array([1.0, 0.75, np.inf], np.float32),
             "test/token": np.array([[1.0, 0.5], [1.0, 0.125], [0.0, 0.0]], np.float32),
             "edge/recall_at_degree": np.array([0.75, 1.0, 0.0], np.float32),
             "diverged_at": np.array([-1, -1, 14], np.int32)},
    }
    records = [{"step": s, "elapsed_s": 0.1 * s, "experiments": metrics.experiment_records(m, exps)}
               for s, m in by_step.items()]
    return json.loads(json.dumps(records))  # exactly what a metrics.jsonl line holds


# Written by hand from the arrays above: vectors split per element, NaN / inf dropped.
EXPECTED = {
    0: {10: {"train/loss": 2.0, "test/token/0": 0.5, "test/token/1": 0.25, "edge/recall_at_degree": 0.5,
             "diverged_at": -1.0},
        20: {"train/loss": 1.0, "test/token/0": 1.0, "test/token/1": 0.5, "edge/recall_at_degree": 0.75,
             "diverged_at": -1.0}},
    1: {10: {"train/loss": 1.5, "test/token/0": 1.0, "test/token/1": 0.0, "diverged_at": -1.0},
        20: {"train/loss": 0.75, "test/token/0": 1.0, "test/token/1": 0.125, "edge/recall_at_degree": 1.0,
             "diverged_at": -1.0}},
    2: {10: {"train/loss": 3.0, "test/token/0": 0.0, "test/token/1": 0.0, "edge/recall_at_degree": 1.0,
             "diverged_at": -1.0},
        20: {"test/token/0": 0.0, "test/token/1": 0.0, "edge/recall_at_degree": 0.0, "diverged_at": 14.0}},
}


def _expected_scalars(index):
    return sorted((tag, value, step) for step, tags in EXPECTED[index].items() for tag, value in tags.items())


def _write_all(ws, records):
    for record in records:
        for w in ws:
            w.write(record)
    for w in ws:
        w.close()


# ----------------------------------------------------------------------------- tests


def test_scalars_split_vectors_and_drop_nulls():
    entry = {"index": 3, "a": 0.5, "v": [1.0, None, 2.0], "n": None, "i": -1, "s": "text"}
    assert writers.scalars(entry) == {"a": 0.5, "v/0": 1.0, "v/2": 2.0, "i": -1.0}


def test_both_off_by_default_and_nothing_imported(tmp_path, no_packages):
    assert writers.make_writers(None, tmp_path, _meta()) == []
    assert writers.make_writers(dict(writers.DEFAULTS), tmp_path, _meta()) == []
    assert writers.make_writers(ml_collections.ConfigDict(writers.DEFAULTS), tmp_path, _meta()) == []
    assert not (tmp_path / "tb").exists() and not (tmp_path / "wandb").exists()


def test_tensorboard_one_run_per_experiment_exact_scalars(tmp_path, fake_tbx):
    ws = writers.make_writers({"tensorboard": True}, tmp_path, _meta())
    assert len(ws) == 1
    _write_all(ws, _records())
    runs = fake_tbx["writers"]
    assert [r.logdir for r in runs] == [str(tmp_path / "tb" / f"exp{i}") for i in range(3)]
    for i, run in enumerate(runs):
        assert sorted(run.scalars) == _expected_scalars(i)
        assert run.kwargs == {}  # fresh run: no purge
        assert run.flushes == 2 and run.closed


def test_tensorboard_resume_purges_events_after_the_checkpoint(tmp_path, fake_tbx):
    writers.make_writers({"tensorboard": True}, tmp_path, _meta(), resume_step=20)
    assert [r.kwargs for r in fake_tbx["writers"]] == [{"purge_step": 21}] * 3


def test_tensorboard_falls_back_to_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    torch_tb = _fake_tensorboard_module("torch.utils.tensorboard")
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setitem(sys.modules, "torch.utils", types.ModuleType("torch.utils"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", torch_tb)
    _write_all(writers.make_writers({"tensorboard": True}, tmp_path, _meta()), _records()[:1])
    first = torch_tb.calls["writers"][0]
    assert sorted(first.scalars) == [s for s in _expected_scalars(0) if s[2] == 10]


def test_tensorboard_missing_is_a_clear_error(tmp_path, no_packages):
    with pytest.raises(UserError, match=r"logging\.tensorboard.*geomem_jax\[tensorboard\]"):
        writers.make_writers({"tensorboard": True}, tmp_path, _meta())


def test_wandb_offline_runs_with_config_and_exact_logs(tmp_path, fake_wandb):
    ws = writers.make_writers({"wandb": True}, tmp_path, _meta())
    _write_all(ws, _records())
    meta = _meta()
    assert len(fake_wandb.runs) == 3
    for i, run in enumerate(fake_wandb.runs):
        kw = run.kwargs
        assert kw["project"] == "geomem_jax" and kw["name"] == f"exp{i}" and kw["mode"] == "offline"
        assert kw["dir"] == str(tmp_path) and kw["reinit"] == "create_new" and "resume" not in kw
        exp = meta["experiments"][i]
        assert kw["config"] == {**exp["hparams"], "graph": 0, "seed": exp["seed"], "index": i}
        assert run.logs == [(EXPECTED[i][10], 10), (EXPECTED[i][20], 20)]
        assert run.finished
    assert len({r.kwargs["id"] for r in fake_wandb.runs}) == 3


def test_wandb_online_project_and_resume_reuses_run_ids(tmp_path, fake_wandb):
    cfg = {"wandb": True, "wandb_mode": "online", "wandb_project": "mine"}
    writers.make_writers(cfg, tmp_path, _meta())
    writers.make_writers(cfg, tmp_path, _meta(), resume_step=10)
    first, again = fake_wandb.runs[:3], fake_wandb.runs[3:]
    assert all(r.kwargs["mode"] == "online" and r.kwargs["project"] == "mine" for r in fake_wandb.runs)
    assert [r.kwargs["id"] for r in again] == [r.kwargs["id"] for r in first]
    assert all(r.kwargs["resume"] == "allow" for r in again)


def test_wandb_missing_fails_before_any_run_is_opened(tmp_path, fake_tbx, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(UserError, match=r"logging\.wandb.*geomem_jax\[wandb\]"):
        writers.make_writers({"tensorboard": True, "wandb": True}, tmp_path, _meta())
    assert fake_tbx["writers"] == []


@pytest.mark.parametrize("cfg, field", [
    ({"wandb_mode": "cloud"}, "logging.wandb_mode"),
    ({"tensorboard": "yes"}, "logging.tensorboard"),
    ({"wandb_project": ""}, "logging.wandb_project"),
])
def test_bad_logging_settings_name_the_field(tmp_path, cfg, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        writers.make_writers(cfg, tmp_path, _meta())


def test_replay_writes_an_existing_metrics_stream(tmp_path, fake_tbx, fake_wandb):
    (tmp_path / "meta.json").write_text(json.dumps(_meta()))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert writers.replay(tmp_path, {"tensorboard": True, "wandb": True}) == 2
    assert [sorted(r.scalars) for r in fake_tbx["writers"]] == [_expected_scalars(i) for i in range(3)]
    assert [len(r.logs) for r in fake_wandb.runs] == [2, 2, 2]
    with pytest.raises(UserError, match="meta.json"):
        writers.replay(tmp_path / "nowhere", {"tensorboard": True})
