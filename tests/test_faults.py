"""Fault injection (issue 7): nothing lost, nothing silent.

kill -9 at scheduled points of training, checkpointing and resuming (each trial resumed
to the end and compared bit for bit with one uninterrupted run), SIGTERM / SIGINT,
two processes on one workdir, determinism, truncated and deleted checkpoint files,
an unwritable workdir, a full disk on metric and checkpoint writes, malformed release files, and a
table of bad configs / CLI inputs.

Cost: every `geomem train` subprocess pays Python + JAX start-up and tracing (~4 s on
an idle core; the compiled programs come from the session's persistent cache, which
the children share). The subprocess scenarios therefore run once per session, three at
a time (`scenarios` fixture), and the tests below assert on their records. The reference
run is a fresh `python -m geomem_jax`; the ~30 others are forks of a process that has
imported JAX and geomem_jax once (fault_helpers' fork server: separate processes, real
signals, ~2.5 s of imports fewer each).

"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import io
import json
import os
import pathlib
import random
import shutil
import signal
import threading
import time

import pytest

import fault_helpers as fh
from geomem_jax import checkpoint, cli, graphs, metrics

TOTAL, EVERY = fh.TOTAL_STEPS, fh.CKPT_EVERY
RUN_ARGS = list(fh.FAULT_ARGS)


_CLI_LOCK = threading.Lock()  # redirect_stdout/stderr swap process-wide streams


def _cli(*argv) -> tuple[int, str, str]:
    """In-process `geomem ...` -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with _CLI_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _error_line(err: str) -> str:
    """The one `geomem: error: ...` line (absl warnings from libraries may surround it)."""
    lines = [line for line in err.splitlines() if line.startswith("geomem: ")]
    assert len(lines) == 1, err
    return lines[0]


def _probe(workdir) -> dict:
    """What a crash left behind."""
    records = fh.metrics_records(workdir)
    return {
        "complete": checkpoint.complete_steps(workdir),
        "incomplete": checkpoint.incomplete_steps(workdir),
        "metric_steps": [r["step"] for r in records],
        "metrics": records,
        "torn_metrics_line": fh.torn_tail(workdir),
        "files": sorted(p.name for p in pathlib.Path(workdir).iterdir()) if pathlib.Path(workdir).exists() else [],
    }


# ----------------------------------------------------------------------------- the reference run


@pytest.fixture(scope="session")
def fault_root(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def reference(fault_root):
    """One uninterrupted subprocess run; every resumed run must end exactly here."""
    child = fh.Child(fault_root / "reference")  # a fresh interpreter: `python -m geomem_jax`
    fh.fork_server()  # starts (imports) meanwhile
    assert child.wait() == 0, child.stderr
    return {"workdir": child.workdir, "result": fh.final_result(child.workdir)}


@pytest.fixture
def run_copy(reference, tmp_path):
    """A private copy of the reference run directory."""
    dst = tmp_path / "run"
    shutil.copytree(reference["workdir"], dst)
    return dst


# ----------------------------------------------------------------------------- kill -9 trials

# (name, how the first process dies, how the first resume dies). A hook kills the process
# itself at an exact point (its N-th occurrence); ("ext", condition, delay) is an outside
# SIGKILL when `condition` first holds (polled every 2 ms), after `delay` seconds.
# The schedule is drawn once from a fixed seed. Ranges keep every kill inside the run
# (10 steps plus a checkpoint take >= ~0.08 s on an idle core).
_rng = random.Random(2024)
N_TORN, N_AFTER_METRICS, N_TMP, N_BEFORE_COMMIT, N_AFTER_COMMIT = (
    _rng.randint(2, 6), *(_rng.randint(1, 6) for _ in range(4)))
N_DELETE = _rng.randint(1, 4)  # old steps are deleted at the saves of steps 30..60
K_TMP, K_AFTER, DELAY = _rng.randint(2, 5), _rng.randint(1, 2), round(_rng.uniform(0.0, 0.1), 3)
KILL_TRIALS = [
    ("before_first_checkpoint", ("ext", "config.json", 0.0), None),
    ("torn_metrics_line", ("hook", "torn_metrics", N_TORN), None),
    ("after_metrics_before_checkpoint", ("hook", "after_metrics", N_AFTER_METRICS), None),
    ("tmp_dir_just_created", ("hook", "tmp_created", N_TMP), None),
    ("written_but_not_renamed", ("hook", "before_commit", N_BEFORE_COMMIT), None),
    ("right_after_rename", ("hook", "after_commit", N_AFTER_COMMIT), None),
    ("half_deleted_old_checkpoint", ("hook", "mid_delete", N_DELETE), None),
    ("writing_summary", ("hook", "in_summary", 1), None),
    ("outside_kill_at_a_checkpoint_tmp_dir", ("ext", f"tmp:{K_TMP * EVERY}", 0.0), None),
    ("outside_kill_after_a_commit_then_kills_in_two_resumes",
     ("ext", f"committed:{K_AFTER * EVERY}", DELAY), ("hook", "in_truncate", 1)),
]


def _condition(spec: str):
    kind, _, arg = spec.partition(":")
    if kind == "config.json":
        return fh.file_exists("config.json")
    if kind == "tmp":
        step = int(arg)
        return lambda w: fh.tmp_dir_of(step)(w) or fh.latest_step_at_least(step)(w)
    if kind == "committed":
        return fh.latest_step_at_least(int(arg))
    raise ValueError(spec)


def _start_and_kill(workdir, how, *extra) -> tuple[fh.Child, dict]:
    """Starts `geomem train` and lets it die as `how` says; returns the child and what happened."""
    kind, what, arg = how
    if kind == "hook":
        child = fh.Child(workdir, *extra, hook=(what, arg), fork=True)
        rc = child.wait()
        return child, {"rc": rc, "how": f"hook {what} #{arg}"}
    child = fh.Child(workdir, *extra, fork=True)
    reached = fh.watch(child, lambda: _condition(what)(workdir))
    if arg:
        time.sleep(arg)
    seen_tmp = fh.tmp_dir_of(int(what.split(":")[1]))(workdir) if what.startswith("tmp:") else None
    rc = child.kill()
    return child, {"rc": rc, "how": f"SIGKILL at {what} +{arg}s", "condition_reached": reached,
                   "tmp_dir_present_at_kill": seen_tmp}


def _kill_trial(root: pathlib.Path, name: str, first, resume_kill) -> dict:
    workdir = root / name
    record = {"trial": name, "workdir": str(workdir), "events": []}
    child, event = _start_and_kill(workdir, first)
    record["events"].append({**event, "stderr": child.stderr[-400:], "left": _probe(workdir)})
    kills = [resume_kill, ("ext", f"tmp:{TOTAL}", 0.0)] if resume_kill else []
    if not checkpoint.complete_steps(workdir):  # nothing committed: resume restarts from step 0
        rc, _, err = _cli("train", *RUN_ARGS, f"--workdir={workdir}", "--resume")
        record["events"].append({"rc": rc, "how": "resume (in-process)", "stderr": err, "left": _probe(workdir)})
    for attempt in range(6):
        if record["events"][-1]["rc"] in (0, 2):
            break
        how = kills[attempt] if attempt < len(kills) else None
        if how is None:
            child = fh.Child(workdir, "--resume", fork=True)
            event = {"rc": child.wait(), "how": "resume"}
        else:
            child, event = _start_and_kill(workdir, how, "--resume")
            event["how"] = "resume, " + event["how"]
        event.update(stderr=child.stderr[-600:], left=_probe(workdir))
        record["events"].append(event)
        if event["rc"] != -signal.SIGKILL:
            break  # finished (0) or unexpected (the test reports it)
    last = record["events"][-1]
    if last["rc"] == 2 and "no complete checkpoint" in last["stderr"]:
        workdir = root / f"{name}_fresh"  # documented: nothing to resume -> start over elsewhere
        child = fh.Child(workdir, fork=True)
        record["events"].append({"rc": child.wait(), "how": "fresh start in a new workdir",
                                 "stderr": child.stderr[-400:], "left": _probe(workdir)})
    record["final_workdir"] = str(workdir)
    return record


# ----------------------------------------------------------------------------- other subprocess scenarios


def _signals(root: pathlib.Path) -> dict:
    """SIGTERM, then SIGINT in the resumed process, then a resume to the end.

    ckpt.every=30, so a checkpoint at step 10 or 20 exists only because of the signal.
    The slow_metrics hook sleeps after each metrics line so the signal lands mid-run.
    """
    workdir, extra = root / "signals", ("--config.ckpt.every=30",)
    events = []
    child = fh.Child(workdir, *extra, hook=("slow_metrics", 5), fork=True)
    fh.watch(child, lambda: fh.metrics_lines_at_least(1)(workdir))
    child.signal(signal.SIGTERM)
    events.append({"signal": "SIGTERM", "rc": child.wait(), "stderr": child.stderr, "left": _probe(workdir)})
    lines_now = len(fh.metrics_records(workdir))
    child = fh.Child(workdir, *extra, "--resume", hook=("slow_metrics", 5), fork=True)
    fh.watch(child, lambda: fh.metrics_lines_at_least(lines_now + 1)(workdir))
    child.signal(signal.SIGINT)
    events.append({"signal": "SIGINT", "rc": child.wait(), "stderr": child.stderr, "left": _probe(workdir)})
    child = fh.Child(workdir, *extra, "--resume", fork=True)
    events.append({"signal": None, "rc": child.wait(), "stderr": child.stderr, "left": _probe(workdir)})
    return {"workdir": str(workdir), "events": events}


def _two_processes(root: pathlib.Path) -> dict:
    """`train --resume` and plain `train` on a workdir another process is training in.

    The second process is this one (in-process CLI): flock locks belong to open files, so it
    contends exactly like a second `geomem` would, without another JAX start-up.
    """
    workdir = root / "busy"
    first = fh.Child(workdir, hook=("slow_metrics", 6), fork=True)
    fh.watch(first, lambda: fh.metrics_lines_at_least(1)(workdir))
    second = [_cli("train", *RUN_ARGS, f"--workdir={workdir}", *extra) for extra in (("--resume",), ())]
    first_still_running = first.running()
    return {"workdir": str(workdir), "first_rc": first.wait(), "first_stderr": first.stderr,
            "first_still_running": first_still_running, "second_rc": [rc for rc, _, _ in second],
            "second_stderr": [err for _, _, err in second]}


def _damaged_resume(root: pathlib.Path, reference_dir: pathlib.Path, damage: str) -> dict:
    workdir = root / f"damaged_{damage}"
    shutil.copytree(reference_dir, workdir)
    detail = _damage(workdir, damage)
    child = fh.Child(workdir, "--resume", fork=True)
    return {"workdir": str(workdir), "damage": detail, "rc": child.wait(), "stderr": child.stderr,
            "left": _probe(workdir)}


def _damage(workdir: pathlib.Path, damage: str) -> str:
    """Damages the newest checkpoint (step 60) of a finished run; returns what was done."""
    step_dir = workdir / "checkpoints" / str(TOTAL)
    if damage == "delete_step":
        shutil.rmtree(step_dir)
        return f"deleted {step_dir.name}/"
    if damage == "delete_state":
        shutil.rmtree(step_dir / "state")
        return f"deleted {step_dir.name}/state/"
    if damage == "truncate_data":  # the largest array file of the OCDBT store
        target = max((p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in str(p)),
                     key=lambda p: p.stat().st_size)
    elif damage == "truncate_metadata":
        target = step_dir / "state" / "_METADATA"
    else:
        raise ValueError(damage)
    size = target.stat().st_size
    with open(target, "r+b") as f:
        f.truncate(size // 2)
    return f"truncated {target.relative_to(workdir)} from {size} to {size // 2} bytes"


DAMAGES = ("delete_step", "delete_state", "truncate_data", "truncate_metadata")
# Three at a time on two cores: the signal and lock scenarios spend seconds asleep on purpose.
WORKERS = 3


@pytest.fixture(scope="session")
def scenarios(reference, fault_root):
    """Runs every subprocess scenario, WORKERS at a time; name -> record (or the exception it raised)."""
    jobs = {f"kill:{name}": (_kill_trial, fault_root, name, first, resume) for name, first, resume in KILL_TRIALS}
    jobs["signals"] = (_signals, fault_root)
    jobs["two_processes"] = (_two_processes, fault_root)
    jobs.update({f"damaged:{d}": (_damaged_resume, fault_root, reference["workdir"], d) for d in DAMAGES})
    longest_first = [f"kill:{KILL_TRIALS[-1][0]}", "signals", f"kill:{KILL_TRIALS[0][0]}", "two_processes"]
    jobs = {name: jobs[name] for name in longest_first + [n for n in jobs if n not in longest_first]}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(fn, *args) for name, (fn, *args) in jobs.items()}
        records = {}
        for name, future in futures.items():
            try:
                records[name] = future.result()
            except Exception as err:  # re-raised by the test that reads this record
                records[name] = err
    wall = time.monotonic() - t0
    (fault_root / "scenarios.json").write_text(json.dumps(
        {"wall_s": round(wall, 1), **{k: v for k, v in records.items() if isinstance(v, dict)}},
        indent=1, default=str))
    return records


def _record(scenarios, name) -> dict:
    record = scenarios[name]
    if isinstance(record, Exception):
        raise record
    return record


# ----------------------------------------------------------------------------- kill -9: assertions


@pytest.mark.parametrize("name", [t[0] for t in KILL_TRIALS])
def test_kill_9_then_resume_ends_bit_identical(scenarios, reference, name):
    record = _record(scenarios, f"kill:{name}")
    first, *rest = record["events"]
    assert first["rc"] == -signal.SIGKILL, first
    for event in record["events"]:
        left = event["left"]
        # Only whole checkpoints count, and none is ahead of the metric stream (whose whole
        # lines are always a prefix of the uninterrupted run's).
        if left["complete"]:
            assert left["complete"][-1] <= (left["metric_steps"] or [0])[-1], event
        assert left["metrics"] == reference["result"]["metrics"][: len(left["metrics"])], event["how"]
        assert "Traceback" not in event["stderr"], event["stderr"]
    assert rest[-1]["rc"] == 0, record
    diffs = fh.result_differences(fh.final_result(record["final_workdir"]), reference["result"])
    assert diffs == [], f"{name}: resumed run differs from the uninterrupted one at {diffs}"


def test_kill_before_the_first_checkpoint_resumes_from_step_zero(scenarios):
    """Killed before anything was committed: --resume starts the same run over (deterministic)."""
    killed, resumed = _record(scenarios, "kill:before_first_checkpoint")["events"]
    assert killed["left"]["complete"] == [] and "config.json" in killed["left"]["files"]
    assert resumed["how"] == "resume (in-process)" and resumed["rc"] == 0, resumed["stderr"]


def test_kills_land_where_they_were_aimed(scenarios):
    """The hooks and timers really hit the checkpoint machinery (not just start-up)."""
    left = {name: _record(scenarios, f"kill:{name}")["events"][0]["left"] for name, *_ in KILL_TRIALS}
    torn = left["torn_metrics_line"]
    assert torn["torn_metrics_line"] and torn["metric_steps"] == [EVERY * i for i in range(1, N_TORN)]
    after = left["after_metrics_before_checkpoint"]
    assert after["metric_steps"][-1] == EVERY * N_AFTER_METRICS
    assert EVERY * N_AFTER_METRICS not in after["complete"]
    assert EVERY * N_TMP in left["tmp_dir_just_created"]["incomplete"]
    assert EVERY * N_BEFORE_COMMIT in left["written_but_not_renamed"]["incomplete"]
    assert left["right_after_rename"]["complete"][-1] == EVERY * N_AFTER_COMMIT
    assert left["half_deleted_old_checkpoint"]["complete"][-1] == EVERY * (N_DELETE + 2)
    assert left["writing_summary"]["complete"][-1] == TOTAL and "summary.json" not in left["writing_summary"]["files"]
    ext = _record(scenarios, "kill:outside_kill_at_a_checkpoint_tmp_dir")["events"][0]
    # Usually the kill lands while the tmp dir exists (then K_TMP * EVERY is not complete); a
    # loaded machine may see the rename first, which still kills before the run ends.
    assert ext["condition_reached"] and ext["left"]["complete"][-1] <= K_TMP * EVERY


def test_half_deleted_old_checkpoint_is_not_listed_as_complete(scenarios):
    """Orbax deletes old steps in place; a kill mid-delete leaves a step dir with state/ but
    missing files. complete_steps only looks for state/, so it lists that step."""
    left = _record(scenarios, "kill:half_deleted_old_checkpoint")["events"][0]["left"]
    half = EVERY * N_DELETE
    assert half not in left["complete"]


# ----------------------------------------------------------------------------- signals, locks, determinism


def test_sigterm_and_sigint_checkpoint_exit_130_and_resume_identically(scenarios, reference):
    record = _record(scenarios, "signals")
    term, intr, final = record["events"]
    for event, signum in ((term, 15), (intr, 2)):
        assert event["rc"] == 130, event
        line = _error_line(event["stderr"])
        assert line.startswith("geomem: stopped: ") and f"signal {signum}" in line
        assert "--resume" in line and record["workdir"] in line
        assert "Traceback" not in event["stderr"]
        step = event["left"]["complete"][-1]
        assert f"at step {step}/{TOTAL}" in line
    # ckpt.every=30: checkpoints at 10/20/40/50 exist only because a signal asked for them.
    assert term["left"]["complete"][-1] in (10, 20)
    assert intr["left"]["complete"][-1] > term["left"]["complete"][-1]
    assert final["rc"] == 0, final["stderr"]
    diffs = fh.result_differences(fh.final_result(record["workdir"]), reference["result"])
    assert diffs == []


def test_second_process_on_a_busy_workdir_refuses_and_the_first_is_unaffected(scenarios, reference):
    record = _record(scenarios, "two_processes")
    assert record["first_still_running"], "the first process ended before the contenders ran"
    for rc, err in zip(record["second_rc"], record["second_stderr"]):
        assert rc == 2 and "Traceback" not in err
        line = _error_line(err)
        assert "another geomem process" in line and record["workdir"] in line
    assert record["first_rc"] == 0, record["first_stderr"]
    assert fh.result_differences(fh.final_result(record["workdir"]), reference["result"]) == []


def test_same_config_twice_gives_identical_summary_and_state(scenarios, reference):
    """Determinism: the busy-workdir run is a second, independent run of the reference config."""
    record = _record(scenarios, "two_processes")
    result = fh.final_result(record["workdir"])
    assert result["summary"] == reference["result"]["summary"]  # every final, best and aggregate
    assert fh.tree_differences(result["state"], reference["result"]["state"]) == []


# ----------------------------------------------------------------------------- damaged checkpoints


def test_deleted_newest_step_resumes_from_the_previous_one(scenarios, reference):
    record = _record(scenarios, "damaged:delete_step")
    assert record["rc"] == 0, record["stderr"]
    assert record["left"]["complete"] == [TOTAL - EVERY, TOTAL]
    assert fh.result_differences(fh.final_result(record["workdir"]), reference["result"]) == []


def test_analyze_uses_the_latest_complete_step_when_the_newest_is_deleted(run_copy, reference):
    shutil.rmtree(run_copy / "checkpoints" / str(TOTAL))
    rc, out, err = _cli("analyze", f"--workdir={run_copy}", "--no-plots")
    assert rc == 0, err
    assert f"analysed step: {TOTAL - EVERY}" in (run_copy / "report" / "report.md").read_text()


# A failed Orbax read in-process leaves an asyncio callback that fires after its loop closed.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["truncate_data", "truncate_metadata"])
def test_analyze_of_a_truncated_checkpoint_names_it_and_exits_2(run_copy, damage):
    _damage(run_copy, damage)
    before = fh.snapshot_files(run_copy)
    rc, out, err = _cli("analyze", f"--workdir={run_copy}", "--no-plots")
    assert rc == 2 and "Traceback" not in err
    line = _error_line(err)
    assert f"checkpoints/{TOTAL}" in line and "cannot be read" in line
    assert fh.snapshot_files(run_copy) == before


@pytest.mark.parametrize("damage", [
    "truncate_data", "truncate_metadata", "delete_state",
])
def test_resume_from_a_damaged_newest_checkpoint_errors_clearly_or_falls_back(scenarios, reference, damage):
    """Either exit 2 naming the checkpoint, or fall back to step 50 and end identical."""
    record = _record(scenarios, f"damaged:{damage}")
    assert "Traceback" not in record["stderr"], record["stderr"][-1500:]
    if record["rc"] == 0:
        assert fh.result_differences(fh.final_result(record["workdir"]), reference["result"]) == []
    else:
        assert record["rc"] == 2
        assert f"checkpoints/{TOTAL}" in _error_line(record["stderr"])


# ----------------------------------------------------------------------------- disk full, unwritable workdir


@pytest.fixture(scope="module")
def disk_full(reference, tmp_path_factory):
    """In-process run whose 3rd metrics write fails with ENOSPC; then a resume without the fault."""
    workdir = tmp_path_factory.mktemp("diskfull") / "run"
    original, calls = metrics.MetricsWriter.write, []

    def write(self, record):
        calls.append(record["step"])
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        return original(self, record)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics.MetricsWriter, "write", write)
        try:
            rc, _, err = _cli("train", *RUN_ARGS, f"--workdir={workdir}")
            escaped = None
        except OSError as exc:
            rc, err, escaped = None, "", exc
    left = _probe(workdir)
    resumed = _cli("train", *RUN_ARGS, f"--workdir={workdir}", "--resume")
    return {"workdir": workdir, "rc": rc, "err": err, "escaped": escaped, "left": left, "resumed": resumed}


def test_disk_full_on_metrics_keeps_earlier_results_and_resume_finishes_identically(disk_full, reference):
    left = disk_full["left"]
    assert left["metrics"] == reference["result"]["metrics"][:2] and not left["torn_metrics_line"]
    assert left["complete"] == [10, 20] and left["incomplete"] == []
    rc, out, err = disk_full["resumed"]
    assert rc == 0, err
    assert fh.result_differences(fh.final_result(disk_full["workdir"]), reference["result"]) == []


def test_disk_full_is_reported_in_one_line(disk_full):
    assert disk_full["escaped"] is None, f"escaped: {disk_full['escaped']!r}"
    assert disk_full["rc"] == 2
    line = _error_line(disk_full["err"])
    assert "metrics.jsonl" in line and "No space left on device" in line


# What a full disk raises inside a checkpoint write: Orbax's own files (OSError) and TensorStore's
# array files (ValueError naming the errno), as seen on a real 300 KiB tmpfs.
CKPT_DISK_FULL = {
    "orbax_file": lambda path: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)),
    "tensorstore": lambda path: ValueError(f'RESOURCE_EXHAUSTED: Error writing local file "{path}": Failed to write '
                                           "310 bytes to file 7: No space left on device [os_error_code='28']"),
}
FULL_AT_STEP = 30


@pytest.fixture(scope="module", params=sorted(CKPT_DISK_FULL))
def disk_full_checkpoint(request, reference, tmp_path_factory):
    """In-process run whose checkpoint write of step 30 fails with a full disk; then a resume."""
    from orbax.checkpoint._src.path import async_path

    workdir = tmp_path_factory.mktemp(f"diskfull_ckpt_{request.param}") / "run"
    original = async_path.write_text

    async def write_text(path, text):
        if f"{FULL_AT_STEP}.orbax-checkpoint-tmp" in str(path):
            raise CKPT_DISK_FULL[request.param](path)
        return await original(path, text)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(async_path, "write_text", write_text)
        rc, out, err = _cli("train", *RUN_ARGS, f"--workdir={workdir}")
    left = _probe(workdir)
    resumed = _cli("train", *RUN_ARGS, f"--workdir={workdir}", "--resume")
    return {"workdir": workdir, "rc": rc, "err": err, "left": left, "resumed": resumed}


def test_disk_full_in_a_checkpoint_write_is_one_line_naming_the_step(disk_full_checkpoint):
    assert disk_full_checkpoint["rc"] == 2 and "Traceback" not in disk_full_checkpoint["err"]
    line = _error_line(disk_full_checkpoint["err"])
    assert f"checkpoints/{FULL_AT_STEP}" in line and "No space left on device" in line and "--resume" in line


def test_disk_full_in_a_checkpoint_write_keeps_earlier_ones_and_resume_ends_identical(disk_full_checkpoint, reference):
    left = disk_full_checkpoint["left"]
    assert left["complete"] == [FULL_AT_STEP - 2 * EVERY, FULL_AT_STEP - EVERY]  # whole, readable
    assert left["metrics"] == reference["result"]["metrics"][: len(left["metrics"])]
    rc, out, err = disk_full_checkpoint["resumed"]
    assert rc == 0, err
    assert fh.result_differences(fh.final_result(disk_full_checkpoint["workdir"]), reference["result"]) == []


def _unwritable_cases():
    cases = ["parent_is_a_file", "workdir_is_a_file"]
    if os.geteuid() != 0:  # root ignores directory permissions
        cases.append("read_only_parent")
    return cases


@pytest.mark.parametrize("case", _unwritable_cases())
def test_unwritable_workdir_exits_2_naming_it(tmp_path, case):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    if case == "parent_is_a_file":
        workdir = blocker / "run"
    elif case == "workdir_is_a_file":
        workdir = blocker
    else:
        parent = tmp_path / "read_only"
        parent.mkdir(mode=0o500)
        workdir = parent / "run"
    try:
        rc, out, err = _cli("train", *RUN_ARGS, f"--workdir={workdir}")
    finally:
        if case == "read_only_parent":
            (tmp_path / "read_only").chmod(0o700)
    assert blocker.read_text() == "not a directory\n"
    assert rc == 2 and "Traceback" not in err
    assert str(workdir) in _error_line(err)


# ----------------------------------------------------------------------------- malformed release files


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    """path_star(3, 3): pretrain 12 lines, train_2 and test_1 path files."""
    out = tmp_path_factory.mktemp("release") / "good"
    graphs.write_release_dir(graphs.path_star(3, 3, seed=0), out)
    return out


def _edit_line(pattern: str, line_no: int, text: str | None):
    def edit(root: pathlib.Path) -> pathlib.Path:
        path = next(root.glob(pattern))
        lines = path.read_text().split("\n")
        lines[line_no - 1] = text
        path.write_text("\n".join(lines))
        return path

    return edit


@pytest.mark.parametrize("edit, line_no, needle", [
    (_edit_line("*_pretrain.txt", 3, "1-2"), 3, "expected 'u=v'"),
    (_edit_line("*_pretrain.txt", 2, "-1=2"), 2, "expected 'u=v'"),
    (_edit_line("*_pretrain.txt", 2, "0=1"), 2, "duplicate edge"),
    (_edit_line("*_train_*.txt", 1, "5=0,1,4"), 1, "differs from the last node"),
    (_edit_line("*_train_*.txt", 2, "garbage"), 2, "expected 'leaf=root,...,leaf'"),
    (_edit_line("*_test_*.txt", 1, "3=3"), 1, "at least a root and a leaf"),
    (_edit_line("*_test_*.txt", 1, "6=2,6"), 1, "earlier paths have 3"),
    (_edit_line("*_test_*.txt", 1, "3=2,6,3"), 1, "not a walk"),
    (_edit_line("*_test_*.txt", 1, "9=2,4,9"), 1, "9"),
])
def test_malformed_release_file_names_file_and_line(release_dir, tmp_path, edit, line_no, needle):
    bad = tmp_path / "release"
    shutil.copytree(release_dir, bad)
    path = edit(bad)
    workdir = tmp_path / "run"
    rc, out, err = _cli("train", *RUN_ARGS, f"--workdir={workdir}", f"--config.graph.release_dir={bad}")
    assert rc == 2 and "Traceback" not in err and out == ""
    line = _error_line(err)
    assert f"{path}:{line_no}:" in line and needle in line
    assert not workdir.exists()


@pytest.mark.parametrize("damage, needle", [
    ("empty", "file is empty"), ("no_pretrain", "no *_pretrain.txt"), ("missing_dir", "does not exist"),
])
def test_unusable_release_dir_names_the_file_or_dir(release_dir, tmp_path, damage, needle):
    bad = tmp_path / "release"
    shutil.copytree(release_dir, bad)
    pretrain = next(bad.glob("*_pretrain.txt"))
    if damage == "empty":
        pretrain.write_text("")
    elif damage == "no_pretrain":
        pretrain.unlink()
    else:
        shutil.rmtree(bad)
    rc, out, err = _cli("train", *RUN_ARGS, f"--workdir={tmp_path / 'run'}", f"--config.graph.release_dir={bad}")
    assert rc == 2 and "Traceback" not in err
    line = _error_line(err)
    assert needle in line and str(pretrain if damage == "empty" else bad) in line
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- bad configs and CLI input

PATHSTAR = "--config=configs/pathstar.py:smoke"


def _train(*overrides):
    return ("train", *RUN_ARGS, "--workdir={new}", *overrides)


BAD_INPUTS = [
    # config values: ranges and types
    (_train("--config.train.batch_size=0"), "train.batch_size"),
    (_train("--config.train.batch_size=2.5"), "config.train.batch_size"),
    (_train("--config.train.steps=abc"), "config.train.steps"),
    (_train("--config.train.steps=0"), "train.steps"),
    (_train("--config.train.recipe=foo"), "train.recipe"),
    (_train("--config.train.recipe=staged", "--config.train.stage1_steps=0"), "train.stage1_steps"),
    (_train("--config.model.heads=3"), "model.heads"),
    (_train("--config.model.width=0"), "model.width"),
    (_train("--config.model.layers=-1"), "model.layers"),
    (_train("--config.model.family=rnn"), "model.family"),
    (_train("--config.model.dtype=float16"), "model.dtype"),
    (_train("--config.model.init=weird"), "model.init"),
    (_train("--config.model.attention=3"), "config.model.attention"),
    (_train("--config.model.dropout=1.0"), "dropout"),
    (_train("--config.opt.lr=-1"), "opt.lr"),
    (_train("--config.opt.lr=nan"), "opt.lr"),
    (_train("--config.opt.schedule=linear"), "opt.schedule"),
    (_train("--config.opt.final_lr_fraction=0"), "opt.final_lr_fraction"),
    (_train("--config.opt.warmup_steps=-5"), "opt.warmup_steps"),
    (_train("--config.opt.weight_decay=-1"), "weight_decay"),
    (_train("--config.eval.every=0"), "eval.every"),
    (_train("--config.eval.node_chunk=0"), "eval.node_chunk"),
    (_train("--config.ckpt.every=-1"), "ckpt.every"),
    (_train("--config.sweep.seeds=()"), "sweep.seeds"),
    (_train("--config.sweep.seeds=(1,1)"), "sweep.seeds"),
    (_train("--config.sweep.lr=(0,)"), "sweep.lr"),
    (_train("--config.sweep.dropout=(1.5,)"), "sweep.dropout"),
    (_train("--config.sweep.graphs=({'colour':1},)"), "sweep.graphs[0]"),
    (_train("--config.graph.family=hexagon"), "graph.family"),
    (_train("--config.graph.num_nodes=0"), "graph.num_nodes"),
    (_train("--config.graph.edges=sideways"), "graph.edges"),
    (_train("--config.graph.self_edges=maybe"), "config.graph.self_edges"),
    (_train("--config.task.mode=foo"), "task.mode"),
    (_train("--config.model.position_std=0"), "model.position_std"),
    (_train("--config.model.family=mamba", "--config.model.d_state=0"), "model.d_state"),
    (_train("--config.model.family=mamba", "--config.model.expand=0"), "model.expand"),
    (_train("--config.task.mode=in_context", "--config.graph.degree=2", "--config.task.num_values=3"),
     "task.num_values"),
    (_train("--config.task.target=foo"), "task.target"),
    (_train("--config.task.pause_tokens=-1"), "task.pause_tokens"),
    (_train("--config.task.reverse_path=true", "--config.task.target=hardest_token"), "task.reverse_path"),
    (("train", PATHSTAR, "--workdir={new}", "--config.graph.degree=0"), "graph.degree"),
    (("train", PATHSTAR, "--workdir={new}", "--config.graph.path_length=1"), "graph.path_length"),
    (("train", PATHSTAR, "--workdir={new}", "--config.graph.train_fraction=1.5"), "graph.train_fraction"),
    (("run", PATHSTAR, "--workdir={new}", "--config.model.heads=5"), "model.heads"),
    (_train("--config.model.nope=1"), "config.model.nope"),
    (_train("--config.modle.width=8"), "config.modle"),
    # config files and presets
    (("train", "--config=configs/pathstar.py:huge", "--workdir={new}"), "--config preset"),
    (("train", "--config=configs/no_such_file.py", "--workdir={new}"), "no such config file"),
    # flags and commands
    (("frobnicate",), "unknown command 'frobnicate'"),
    (_train("--colour=red"), "unknown flag --colour"),
    (_train("stray"), "unexpected argument 'stray'"),
    (("train", *RUN_ARGS), "--workdir"),
    (("export-graph", PATHSTAR), "--out"),
    (("export-graph", PATHSTAR, "--config.graph.degree=0", "--out={new}"), "graph.degree"),
    (("analyze", "--workdir={run}", "--step=abc"), "--step='abc'"),
    (("analyze", "--workdir={run}", "--step=999", "--no-plots"), "available steps: [50, 60]"),
    (("analyze", "--workdir={other}", "--no-plots"), "no complete checkpoint"),
    (("export-embeddings", "--workdir={run}", "--out={other}"), "not empty"),
    (("export-embeddings", "--workdir={run}", "--step=7", "--out={new}"), "available steps"),
    # workdirs that hold something else
    (("train", *RUN_ARGS, "--workdir={run}"), "already holds a run"),
    (("train", *RUN_ARGS, "--workdir={run}", "--resume", "--config.opt.lr=0.5"), "differs at: opt.lr"),
    (("train", *RUN_ARGS, "--workdir={run}", "--resume", "--config.model.heads=3"), "model.heads"),
    (("train", *RUN_ARGS, "--workdir={other}", "--resume"), "nothing to resume"),
    # checked up front, before the workdir is touched
    (_train("--config.mesh.devices=0"), "mesh.devices"),
    (_train("--config.mesh.devices=abc"), "mesh.devices"),
    (_train("--config.train.recipe=staged", "--config.train.stage1_steps=10"), "train.recipe"),
    (_train("--config.ckpt.max_to_keep=0"), "ckpt.max_to_keep"),
    (_train("--config.opt.b1=2"), "opt.b1"),
]


@pytest.fixture(scope="module")
def existing_run(reference, tmp_path_factory):
    dst = tmp_path_factory.mktemp("existing") / "run"
    shutil.copytree(reference["workdir"], dst)
    return dst


def _case_id(value):
    if isinstance(value, tuple):
        return " ".join(a.split("/")[-1] for a in value if a not in RUN_ARGS)[:60]
    return None


@pytest.mark.parametrize("argv, needle", BAD_INPUTS, ids=_case_id)
def test_bad_input_exits_2_naming_the_field_before_any_compute(existing_run, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(fh.REPO_ROOT)
    other = tmp_path / "other"  # an existing directory that is not a run
    other.mkdir()
    (other / "notes.txt").write_text("keep me\n")
    new = tmp_path / "new"
    places = {"{run}": existing_run, "{new}": new, "{other}": other}
    for key, value in places.items():
        argv = [a.replace(key, str(value)) for a in argv]
    before_run, before_other = fh.snapshot_files(existing_run), fh.snapshot_files(other)
    rc, out, err = _cli(*argv)
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and out == ""
    line = _error_line(err)
    assert line.startswith("geomem: error: ") and needle in line
    assert fh.snapshot_files(existing_run) == before_run
    assert fh.snapshot_files(other) == before_other
    assert not (new / "config.json").exists() and not (new / "checkpoints").exists()
