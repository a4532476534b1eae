"""Readers during writes (issue 16): `geomem analyze` and `geomem export-embeddings` looping over a
run that is still training read the newest complete checkpoint, never a half-written or
half-deleted one (Orbax keeps 2, so steps vanish under the reader), and the writer ends exactly
where a run without readers ends.
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib

import numpy as np
import pytest

import fault_helpers as fh
from geomem_jax import cli

KEEP_ALL = "--config.ckpt.max_to_keep=10"  # the reference keeps every step to compare with


def _cli(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in argv])
    return rc, err.getvalue()


def _exported(out_dir: pathlib.Path) -> tuple[int, dict[str, np.ndarray]]:
    index = json.loads((out_dir / "index.json").read_text())
    entries = index["experiments"] if isinstance(index, dict) else index
    return entries[0]["step"], {e["file"]: np.load(out_dir / e["file"]) for e in entries}


@pytest.fixture(scope="module")
def reads_during_training(tmp_path_factory):
    root = tmp_path_factory.mktemp("readers")
    # The reference (a fresh `python -m geomem_jax`) trains meanwhile; the writer is a fork of
    # fault_helpers' fork server. Neither reads the other's directory.
    reference = fh.Child(root / "reference", KEEP_ALL)
    writer = fh.Child(root / "run", hook=("slow_metrics", 3), fork=True)  # 0.3 s per evaluation: time to read
    reads = []
    while writer.running():
        out = root / f"export{len(reads)}"
        rc, err = _cli("export-embeddings", f"--workdir={writer.workdir}", f"--out={out}")
        reads.append({"command": "export", "rc": rc, "err": err, "out": out})
        rc, err = _cli("analyze", f"--workdir={writer.workdir}", "--no-plots")
        reads.append({"command": "analyze", "rc": rc, "err": err})
    assert reference.wait() == 0, reference.stderr
    return {"reference": reference.workdir, "writer_rc": writer.wait(), "writer_err": writer.stderr,
            "workdir": writer.workdir, "reads": reads, "root": root}


def test_every_read_succeeds_or_finds_no_checkpoint_yet(reads_during_training):
    for read in reads_during_training["reads"]:
        assert "Traceback" not in read["err"], read["err"]
        if read["rc"] != 0:
            assert read["rc"] == 2 and "no complete checkpoint" in read["err"], read["err"]


def test_exports_are_whole_checkpoints_of_the_run(reads_during_training):
    """Each export equals the uninterrupted run's checkpoint at the step it names, bit for bit."""
    root, exports = reads_during_training["root"], [r for r in reads_during_training["reads"]
                                                    if r["command"] == "export" and r["rc"] == 0]
    steps = []
    for read in exports:
        step, tables = _exported(read["out"])
        want_dir = root / f"want{step}"
        if not want_dir.exists():
            assert _cli("export-embeddings", f"--workdir={reads_during_training['reference']}",
                        f"--step={step}", f"--out={want_dir}")[0] == 0
        _, want = _exported(want_dir)
        assert tables.keys() == want.keys()
        for name, table in tables.items():
            assert table.tobytes() == want[name].tobytes(), (step, name)
        steps.append(step)
    assert steps == sorted(steps) and len(set(s for s in steps if s < fh.TOTAL_STEPS)) >= 2, steps


def test_the_writer_ends_as_if_nobody_had_read(reads_during_training):
    assert reads_during_training["writer_rc"] == 0, reads_during_training["writer_err"]
    # A reader that ran after the end merged its scalars into summary.json; one last analysis of
    # both runs puts the same step's scalars into both.
    for workdir in (reads_during_training["workdir"], reads_during_training["reference"]):
        assert _cli("analyze", f"--workdir={workdir}", "--no-plots")[0] == 0
    got = fh.final_result(reads_during_training["workdir"])
    want = fh.final_result(reads_during_training["reference"])
    assert fh.result_differences(got, want) == []


class _ShrinkingCheckpoints:
    """A fake checkpoint module: while the reader reads the newest step (20), the writer commits 30
    and 40 and its retention (max_to_keep=2) deletes 10 and 20 under the reader."""

    def __init__(self):
        self.steps, self.reads = [10, 20], []

    def complete_steps(self, workdir):
        return list(self.steps)

    def incomplete_steps(self, workdir):
        return []

    def restore_numpy(self, workdir, step):
        self.reads.append(step)
        if step == 20 and len(self.reads) == 1:
            self.steps = [30, 40]
            from geomem_jax.errors import CheckpointError

            raise CheckpointError(f"{workdir}/checkpoints/{step}: checkpoint cannot be read (deleted)")
        return {"step": step}


def test_a_step_deleted_while_being_read_is_replaced_by_the_newest_complete_one():
    from geomem_jax.analysis import analyze

    ckpt = _ShrinkingCheckpoints()
    step, _, tree = analyze._pick_and_read(ckpt, "run", None)
    assert (step, tree, ckpt.reads) == (40, {"step": 40}, [20, 40])


def test_an_asked_for_step_that_cannot_be_read_is_an_error_not_another_step():
    from geomem_jax.analysis import analyze
    from geomem_jax.errors import CheckpointError

    ckpt = _ShrinkingCheckpoints()
    with pytest.raises(CheckpointError, match="checkpoints/20"):
        analyze._pick_and_read(ckpt, "run", 20)
