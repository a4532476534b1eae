"""Chaos trial, long version: >= 100 seeded SIGKILL / SIGTERM deliveries (inside a chunk, during
a checkpoint's write, while summary.json is written), each followed by `--resume`; the run must
end bit-identical (params and the whole state, summary.json, metrics.jsonl) to an uninterrupted one.

The suite's 20-delivery version is tests/test_chaos.py; both use tests/fault_helpers.chaos_trial.
Writes bench/results/chaos.json and chaos.md.

Run: python bench/bench_chaos.py [--deliveries=100] [--seed=2510]
"""

from __future__ import annotations

import collections
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import write  # noqa: E402

import fault_helpers as fh  # noqa: E402

STEPS = 400  # 200 chunks of 2 steps, a checkpoint after each: 100 deliveries never finish it early
ARGS = (f"--config.train.steps={STEPS}", "--config.eval.every=2", "--config.ckpt.every=2")


def main(argv: list[str]) -> int:
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    wanted, seed = int(opts.get("deliveries", 100)), int(opts.get("seed", 2510))
    with tempfile.TemporaryDirectory(prefix="geomem_chaos_") as tmp:
        root = pathlib.Path(tmp)
        t0 = time.monotonic()
        reference = fh.Child(root / "reference", *ARGS)
        assert reference.wait(timeout=1800) == 0, reference.stderr
        reference_s = time.monotonic() - t0
        record = fh.chaos_trial(root / "run", seed, wanted, extra=ARGS)
        diffs = fh.result_differences(fh.final_result(root / "run", STEPS), fh.final_result(root / "reference", STEPS))
    delivered = record["deliveries"]
    processes = record["processes"]
    kinds = collections.Counter(f"{d['moment']}/{'SIGKILL' if d['signal'] == 9 else 'SIGTERM'}" for d in delivered)
    exits = collections.Counter(str(p["rc"]) for p in processes)
    bad = [p for p in processes if p["rc"] not in fh.CHAOS_EXIT_CODES or p["traceback"]]
    result = {
        "seed": seed, "deliveries": len(delivered), "by_moment_and_signal": dict(sorted(kinds.items())),
        "processes": len(processes), "exit_codes": dict(sorted(exits.items())), "unexpected_exits": bad,
        "bit_identical": diffs == [], "differences": diffs, "trial_wall_s": record["wall_s"],
        "uninterrupted_wall_s": round(reference_s, 1), "train_steps": STEPS,
    }
    lines = [
        f"{len(delivered)} signal deliveries over {len(processes)} processes (seed {seed}), "
        f"wall time {record['wall_s']:.0f} s (uninterrupted run: {reference_s:.0f} s).",
        "", "| moment / signal | deliveries |", "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(kinds.items())),
        "", f"Exit codes: {dict(sorted(exits.items()))}; unexpected: {len(bad)}.",
        f"Final params, summary.json and metrics.jsonl bit-identical to the uninterrupted run: {diffs == []}"
        + (f" (differences: {diffs})" if diffs else ""),
    ]
    write("chaos", result, "\n".join(lines), "python bench/bench_chaos.py")
    print("\n".join(lines))
    return 0 if diffs == [] and not bad and len(delivered) >= wanted else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
