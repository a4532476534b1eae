"""Chaos trial (issue 16): a smoke sweep trained under a seeded schedule of 20 random SIGKILL and
SIGTERM deliveries (inside a chunk, during a checkpoint's write, while summary.json is written),
each followed by `--resume`, ends bit-identical to an uninterrupted run.

Marked `chaos` (`-m "not chaos"` skips it): about 25 process start-ups, ~40 s on 2 cores. The
reference is a fresh `python -m geomem_jax`; the killed and resumed processes are forks of
fault_helpers' fork server (separate processes, real signals, without ~2.5 s of imports each).
The 100-delivery version is bench/bench_chaos.py.
"""

from __future__ import annotations

import collections
import concurrent.futures

import pytest

import fault_helpers as fh

SEED, DELIVERIES = 16, 20

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("chaos")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # the reference meanwhile
        reference = pool.submit(lambda: fh.Child(root / "reference", *fh.CHAOS_ARGS).wait())
        record = fh.chaos_trial(root / "run", SEED, DELIVERIES, fork=True)
        assert reference.result() == 0
    return record, root / "reference"


def test_every_process_exits_as_a_signal_or_a_finished_run_says(trial):
    record, _ = trial
    for process in record["processes"]:
        assert process["rc"] in fh.CHAOS_EXIT_CODES and not process["traceback"], process
    assert record["processes"][-1]["rc"] == 0


def test_signals_land_at_every_kind_of_moment(trial):
    record, _ = trial
    delivered = record["deliveries"]
    assert len(delivered) >= DELIVERIES
    kinds = collections.Counter((d["moment"], d["signal"]) for d in delivered)
    assert {moment for moment, _ in kinds} == set(fh.CHAOS_MOMENTS), kinds
    assert {signal for _, signal in kinds} == {9, 15}, kinds


def test_the_run_ends_bit_identical_to_an_uninterrupted_one(trial):
    record, reference = trial
    got, want = fh.final_result(record["workdir"], fh.CHAOS_STEPS), fh.final_result(reference, fh.CHAOS_STEPS)
    assert fh.result_differences(got, want) == []
