"""`--resume` with a larger train.steps continues a finished run: exactly for a constant
schedule; a cosine schedule says how its lr changes; a shorter run is refused."""

import json

import numpy as np
import pytest

from geomem_jax import loop
from geomem_jax.errors import UserError

CONSTANT = (("opt.schedule", "constant"), ("train.steps", "20"), ("eval.every", "10"), ("ckpt.every", "10"))


def _records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_extending_a_constant_schedule_equals_the_longer_run(tmp_path, tiny_cfg_factory):
    short, longer = tmp_path / "short", tmp_path / "long"
    loop.run(tiny_cfg_factory(*CONSTANT), short, progress=False)
    extended = loop.run(tiny_cfg_factory(*CONSTANT, ("train.steps", "40")), short, resume=True, progress=False)
    fresh = loop.run(tiny_cfg_factory(*CONSTANT, ("train.steps", "40")), longer, progress=False)
    strip = lambda records: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]
    assert [r["step"] for r in _records(short)] == [10, 20, 30, 40]
    assert strip(_records(short)) == strip(_records(longer))  # every evaluation, train/loss included
    assert [e["final"] for e in extended["experiments"]] == [e["final"] for e in fresh["experiments"]]
    assert json.loads((short / "config.json").read_text())["train"]["steps"] == 40
    assert json.loads((short / "meta.json").read_text())["extensions"] == [
        {"from_steps": 20, "to_steps": 40, "note": "exact"}]


def test_cosine_extension_says_how_the_lr_changes(tmp_path, tiny_cfg_factory, capsys):
    over = (("opt.schedule", "cosine"), ("train.steps", "20"), ("eval.every", "10"), ("opt.warmup_steps", "0"))
    loop.run(tiny_cfg_factory(*over), tmp_path / "w", progress=False)
    capsys.readouterr()
    loop.run(tiny_cfg_factory(*over, ("train.steps", "40")), tmp_path / "w", resume=True, progress=False)
    note = capsys.readouterr().err
    assert "geomem: note: opt.schedule=cosine" in note
    assert "from 0.100x to 0.550x its peak" in note and "differs from a run trained for 40 steps" in note


def test_a_shorter_or_otherwise_different_run_is_refused(tmp_path, tiny_cfg_factory):
    loop.run(tiny_cfg_factory(*CONSTANT), tmp_path / "w", progress=False)
    with pytest.raises(UserError, match="extended, not shortened"):
        loop.run(tiny_cfg_factory(*CONSTANT, ("train.steps", "10")), tmp_path / "w", resume=True, progress=False)
    with pytest.raises(UserError, match="differs at: opt.lr, train.steps"):
        loop.run(tiny_cfg_factory(*CONSTANT, ("train.steps", "40"), ("opt.lr", "1e-2")), tmp_path / "w",
                 resume=True, progress=False)


def test_train_loss_is_the_mean_since_the_previous_evaluation_whatever_ckpt_every(tmp_path, tiny_cfg_factory):
    """ckpt.every=5 makes 5-step chunks; eval every 10: train/loss averages the 10 steps, not the last 5."""
    a = loop.run(tiny_cfg_factory(*CONSTANT, ("ckpt.every", "5")), tmp_path / "a", progress=False)
    b = loop.run(tiny_cfg_factory(*CONSTANT, ("ckpt.every", "10")), tmp_path / "b", progress=False)
    la = [e["final"]["train/loss"] for e in a["experiments"]]
    lb = [e["final"]["train/loss"] for e in b["experiments"]]
    np.testing.assert_allclose(la, lb, rtol=1e-6)
