"""TensorBoard / W&B writers: what the real packages wrote, read back with their own readers.

The `dev` extra installs tensorboardX, tensorboard and wandb. TensorBoard event files are
read with tensorboard's EventAccumulator, W&B offline runs (WANDB_MODE=offline, no network)
with wandb's .wandb transaction-log reader (`writers.read_wandb_run`). A fake module stands in
only for torch's SummaryWriter (the fallback), and a `None` entry in sys.modules makes an
import fail as if the package were not installed.
"""

import json
import sys
import types

import ml_collections
import numpy as np
import pytest

import fault_helpers as fh
from geomem_jax import metrics, rundir, writers
from geomem_jax.errors import ConfigError, UserError

NAN = float("nan")


# ----------------------------------------------------------------------------- fakes


def _fake_tensorboard_module(name):
    calls = {"writers": []}

    class SummaryWriter:
        def __init__(self, logdir, **kwargs):
            self.logdir, self.kwargs = logdir, kwargs
            self.scalars, self.summaries, self.flushes, self.closed = [], [], 0, False
            calls["writers"].append(self)

        def add_scalar(self, tag, scalar_value, global_step=None):
            self.scalars.append((tag, scalar_value, global_step))

        def _get_file_writer(self):
            return types.SimpleNamespace(add_summary=self.summaries.append)

        def flush(self):
            self.flushes += 1

        def close(self):
            self.closed = True

    mod = types.ModuleType(name)
    mod.SummaryWriter, mod.calls = SummaryWriter, calls
    mod.summary = types.ModuleType(f"{name}.summary")
    mod.summary.hparams = lambda hparam_dict, metric_dict: [("hparams", dict(hparam_dict))]
    return mod


@pytest.fixture
def wandb_offline(monkeypatch, tmp_path):
    """W&B offline and quiet, its settings and caches under tmp_path (no network, no home dir)."""
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_DISABLE_GIT": "true", "WANDB_CONFIG_DIR": tmp_path / "wandb_config",
                       "WANDB_CACHE_DIR": tmp_path / "wandb_cache", "WANDB_DATA_DIR": tmp_path / "wandb_data"}.items():
        monkeypatch.setenv(key, str(value))


def tensorboard_scalars(logdir) -> dict:
    """{tag: [(step, value), ...]} of one run directory, through tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tensorboard_hparams(logdir) -> dict:
    """The hparams of one run directory's HParams session, through tensorboard's reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    start_info = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(start_info)
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in data.session_start_info.hparams.items()}


def by_step(scalars_by_tag: dict) -> dict:
    """{tag: [(step, value)]} -> {step: {tag: value}}."""
    out = {}
    for tag, points in scalars_by_tag.items():
        for step, value in points:
            out.setdefault(step, {})[tag] = value
    return out


def assert_same_by_step(got: dict, want: dict) -> None:
    """{step: {tag: value}} equal: the same steps and tags, values to float32 precision."""
    assert sorted(got) == sorted(want)
    for step in want:
        assert got[step] == pytest.approx(want[step], rel=1e-6), step


def wandb_by_step(history: list[dict]) -> dict:
    """W&B history rows -> {step: {tag: value}}, without W&B's own _timestamp/_runtime."""
    return {row["_step"]: {k: v for k, v in row.items() if not k.startswith("_")} for row in history}


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


def test_tensorboard_event_files_hold_scalars_and_hparams_per_experiment(tmp_path):
    _write_all(writers.make_writers({"tensorboard": True}, tmp_path, _meta()), _records())
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["exp0", "exp1", "exp2"]
    for exp in _meta()["experiments"]:
        logdir = tmp_path / "tb" / f"exp{exp['index']}"
        assert_same_by_step(by_step(tensorboard_scalars(logdir)), EXPECTED[exp["index"]])
        want = {k: float(v) if isinstance(v, (int, float)) else v for k, v in writers.experiment_config(exp).items()}
        assert tensorboard_hparams(logdir) == pytest.approx(want)


def test_tensorboard_resume_purges_events_after_the_checkpoint(tmp_path):
    first, again = _records(), _records()
    _write_all(writers.make_writers({"tensorboard": True}, tmp_path, _meta()), first)
    for entry in again[1]["experiments"]:  # step 20 recomputed after resuming from step 10
        entry["train/loss"] = 0.25
    _write_all(writers.make_writers({"tensorboard": True}, tmp_path, _meta(), resume_step=10), again[1:])
    assert len(list((tmp_path / "tb" / "exp0").iterdir())) == 2  # appended: a second event file
    got = by_step(tensorboard_scalars(tmp_path / "tb" / "exp0"))
    assert sorted(got) == [10, 20] and got[20]["train/loss"] == 0.25 and got[10] == pytest.approx(EXPECTED[0][10])


def test_tensorboard_falls_back_to_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    torch_tb = _fake_tensorboard_module("torch.utils.tensorboard")
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setitem(sys.modules, "torch.utils", types.ModuleType("torch.utils"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", torch_tb)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard.summary", torch_tb.summary)
    _write_all(writers.make_writers({"tensorboard": True}, tmp_path, _meta()), _records()[:1])
    first = torch_tb.calls["writers"][0]
    assert sorted(first.scalars) == [s for s in _expected_scalars(0) if s[2] == 10]
    assert first.summaries == [("hparams", writers.experiment_config(_meta()["experiments"][0]))]


def test_tensorboard_missing_is_a_clear_error(tmp_path, no_packages):
    with pytest.raises(UserError, match=r"logging\.tensorboard.*geomem_jax\[tensorboard\]"):
        writers.make_writers({"tensorboard": True}, tmp_path, _meta())


def _wandb_ids(workdir) -> dict:
    return {int(k): v for k, v in json.loads((workdir / rundir.WANDB_IDS).read_text()).items()}


def test_wandb_offline_runs_hold_config_and_exact_logs(tmp_path, wandb_offline):
    _write_all(writers.make_writers({"wandb": True}, tmp_path, _meta()), _records())
    ids = _wandb_ids(tmp_path)
    assert sorted(ids) == [0, 1, 2] and len(set(ids.values())) == 3
    for exp in _meta()["experiments"]:
        run = writers.read_wandb_run(tmp_path, ids[exp["index"]])
        assert run["config"] == writers.experiment_config(exp)
        assert wandb_by_step(run["history"]) == EXPECTED[exp["index"]]
        assert [row["_step"] for row in run["history"]] == [10, 20]


def test_wandb_resume_reuses_run_ids_and_skips_logged_steps(tmp_path, wandb_offline):
    _write_all(writers.make_writers({"wandb": True}, tmp_path, _meta()), _records()[:1])
    ids = _wandb_ids(tmp_path)
    # Resumed from a checkpoint before step 10: step 10 comes again, then step 20.
    _write_all(writers.make_writers({"wandb": True}, tmp_path, _meta(), resume_step=0), _records())
    assert _wandb_ids(tmp_path) == ids
    for i, run_id in ids.items():
        assert len(list((tmp_path / "wandb").glob(f"*run-*/run-{run_id}.wandb"))) == 2  # the same run, appended
        history = writers.read_wandb_run(tmp_path, run_id)["history"]
        assert [row["_step"] for row in history] == [10, 20] and wandb_by_step(history) == EXPECTED[i]


def test_wandb_missing_fails_before_any_run_is_opened(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(UserError, match=r"logging\.wandb.*geomem_jax\[wandb\]"):
        writers.make_writers({"tensorboard": True, "wandb": True}, tmp_path, _meta())
    assert not (tmp_path / "tb").exists()


@pytest.mark.parametrize("cfg, field", [
    ({"wandb_mode": "cloud"}, "logging.wandb_mode"),
    ({"tensorboard": "yes"}, "logging.tensorboard"),
    ({"wandb_project": ""}, "logging.wandb_project"),
])
def test_bad_logging_settings_name_the_field(tmp_path, cfg, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        writers.make_writers(cfg, tmp_path, _meta())


def test_replay_writes_an_existing_metrics_stream(tmp_path, wandb_offline):
    (tmp_path / "meta.json").write_text(json.dumps(_meta()))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert writers.replay(tmp_path, {"tensorboard": True, "wandb": True}) == 2
    for i, run_id in _wandb_ids(tmp_path).items():
        assert_same_by_step(by_step(tensorboard_scalars(tmp_path / "tb" / f"exp{i}")), EXPECTED[i])
        assert wandb_by_step(writers.read_wandb_run(tmp_path, run_id)["history"]) == EXPECTED[i]
    with pytest.raises(UserError, match="meta.json"):
        writers.replay(tmp_path / "nowhere", {"tensorboard": True})


def test_run_killed_and_resumed_appends_to_the_same_logs_once_per_step(tmp_path, wandb_offline, monkeypatch):
    """SIGKILL when step 30's checkpoint starts (TensorBoard already holds step 30, the last
    checkpoint is step 20; W&B's buffered .wandb files may have lost any of it), then --resume
    to the end: every step 10..60 once per experiment, with the numbers of metrics.jsonl, in
    the same TensorBoard directories and W&B runs."""
    # Each child starts its own W&B service, as a run and its resume from a shell do (an earlier
    # test's service in this process would otherwise be inherited, and keep the killed run open).
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    workdir = tmp_path / "run"
    logging_on = ("--config.logging.tensorboard=true", "--config.logging.wandb=true")
    killed = fh.Child(workdir, *logging_on, hook=("tmp_created", 3))
    assert killed.wait() != 0 and fh.ckpt_entries(workdir)
    resumed = fh.Child(workdir, "--resume", *logging_on)
    assert resumed.wait() == 0, resumed.stderr
    want = {r["step"]: {e["index"]: writers.scalars(e) for e in r["experiments"]} for r in fh.metrics_records(workdir)}
    steps = list(range(fh.CKPT_EVERY, fh.TOTAL_STEPS + 1, fh.CKPT_EVERY))
    assert sorted(want) == steps
    ids = _wandb_ids(workdir)
    for i in (0, 1):
        tb = tensorboard_scalars(workdir / "tb" / f"exp{i}")
        assert len(list((workdir / "tb" / f"exp{i}").iterdir())) == 2
        assert all([step for step, _ in points] == steps for points in tb.values())
        assert_same_by_step(by_step(tb), {s: want[s][i] for s in steps})
        assert len(list((workdir / "wandb").glob(f"*run-*/run-{ids[i]}.wandb"))) == 2
        history = writers.read_wandb_run(workdir, ids[i])["history"]
        assert [row["_step"] for row in history] == steps
        assert_same_by_step(wandb_by_step(history), {s: want[s][i] for s in steps})
