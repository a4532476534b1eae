"""Fault injection for tests/test_faults.py: the tiny run, subprocess launching, watching, comparing.

Run as a script, it is `geomem` with one fault hook installed first:

    python tests/fault_helpers.py HOOK N train --config=... --workdir=...

or (`python tests/fault_helpers.py --fork-server`) a fork server: a Python that has imported
JAX and geomem_jax once (no JAX backend, no thread yet) and forks one process per request,
which then runs exactly what the two command lines above run. `Child(..., fork=True)` starts
its process there: the same separate process, killed by the same signals, minus the ~2.5 s of
imports that a fresh interpreter spends before `geomem` starts (most of a tiny run's cost).

HOOK is one of HOOKS below; N picks the occurrence (the N-th metrics write, the
N-th committed checkpoint, ...). Kill hooks send SIGKILL to their own process at
an exact point that an outside timer can hit only by luck (between Orbax writing
a step and renaming it, half-way through a metrics line, in the middle of
deleting an old checkpoint, ...). The numbers are never touched: a run that
survives a hook computes exactly what an untouched run computes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent

TOTAL_STEPS = 60
CKPT_EVERY = 10
# Sampled batches (the PRNG key must survive a restart), Adam state, 2 seeds, 6 checkpoints of
# which Orbax keeps 2 (old steps get deleted). The cheapest program of the repo to trace.
FAULT_ARGS = (
    "--config=configs/tiny_graphs.py:cycle_neural_net",
    "--config.model.width=16", f"--config.train.steps={TOTAL_STEPS}",
    "--config.train.full_batch=false", "--config.train.batch_size=8",
    "--config.eval.every=10", f"--config.ckpt.every={CKPT_EVERY}", "--config.sweep.seeds=(0,1)",
    "--no-progress",
)


# ----------------------------------------------------------------------------- launching


def subprocess_env() -> dict:
    """The test process's JAX setup for children: same fake device count, same compile cache.

    With the same device count the compiled programs (and hence the numbers) are the same
    in and out of process, and the shared persistent cache compiles each program once.
    """
    import jax

    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(jax.config.jax_num_cpu_devices))
    cache = jax.config.jax_compilation_cache_dir
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


class Child:
    """A `geomem train` subprocess (optionally with a fault hook); output goes to files."""

    def __init__(self, workdir, *extra, hook: tuple[str, int] | None = None, log_dir=None, env=None,
                 fork: bool = False):
        """fork: start it from the fork server (see the module docstring) instead of a fresh
        interpreter; a child whose JAX / XLA environment differs from the server's never is."""
        self.workdir = pathlib.Path(workdir)
        log_dir = pathlib.Path(log_dir or self.workdir.parent)
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.workdir.name}.{time.monotonic_ns()}"
        self.out_path, self.err_path = log_dir / f"{stem}.out", log_dir / f"{stem}.err"
        prefix = [str(HERE / "fault_helpers.py"), hook[0], str(hook[1])] if hook else ["-m", "geomem_jax"]
        argv = [sys.executable, *prefix, "train", *FAULT_ARGS, f"--workdir={self.workdir}", *extra]
        full_env = {**subprocess_env(), **(env or {})}
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            server = fork_server() if fork else None
            if server is not None and server.can_run(full_env):
                self.proc = server.spawn(argv[1:], cwd=REPO_ROOT, env=full_env, out=self.out_path, err=self.err_path)
            else:
                self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=err)
        self.started = time.monotonic()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # never leave a hung child behind
            self.proc.wait()
            raise

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.proc.pid, signum)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.wait()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()


def watch(child: Child, condition, timeout: float = 240, poll_s: float = 0.002) -> bool:
    """Polls `condition()` until it holds (True) or the child exits first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if not child.running():
            return condition()
        time.sleep(poll_s)
    child.kill()
    raise TimeoutError(f"condition not reached within {timeout} s in {child.workdir}")


# ----------------------------------------------------------------------------- the fork server

# What a `geomem train` child imports before its first step (jax, flax, optax, orbax, tensorstore
# and numpy come with these); importing them creates no thread and no JAX backend.
FORK_PRELOAD = (
    "geomem_jax.cli", "geomem_jax.loop", "geomem_jax.train", "geomem_jax.checkpoint", "geomem_jax.metrics",
    "geomem_jax.program", "geomem_jax.sweep", "geomem_jax.evals", "geomem_jax.distributed",
    "geomem_jax.writers", "geomem_jax.models.transformer",
    "orbax.checkpoint._src.path.atomicity", "orbax.checkpoint._src.path.deleter",
)
# Read by JAX / XLA when they are imported or start: a child must see the server's values.
_IMPORT_TIME_ENV = ("JAX_", "XLA_", "TF_", "OPENBLAS_", "OMP_", "MKL_", "PYTHON")


class Forked:
    """A process the fork server started, with the part of Popen's interface Child uses."""

    def __init__(self, pid: int):
        self.pid, self.returncode, self._done = pid, None, threading.Event()

    def _exited(self, rc: int) -> None:
        self.returncode = rc
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked pid {self.pid}", timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class ForkServer:
    """The test process's end of `fault_helpers.py --fork-server` (JSON lines both ways)."""

    def __init__(self, env: dict, log_path):
        self.env = env
        self._log = open(log_path, "w")
        self._server = subprocess.Popen([sys.executable, str(HERE / "fault_helpers.py"), "--fork-server"],
                                        cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._log)
        self._lock, self._next_id = threading.Lock(), 0
        self._starting: dict[int, list] = {}  # request id -> [Event, Forked]
        self._running: dict[int, Forked] = {}  # pid -> Forked
        self._early: dict[int, int] = {}  # pid -> exit code that came before the start reply was read
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="fork-server-reader", daemon=True)
        self._reader.start()
        if not self._ready.wait(120):
            raise RuntimeError(f"fork server did not start: {pathlib.Path(log_path).read_text()[-2000:]}")

    def can_run(self, env: dict) -> bool:
        """Whether a child with this environment may come from this server."""
        def fixed(e):
            return {k: v for k, v in e.items() if k.startswith(_IMPORT_TIME_ENV)}
        return self._server.poll() is None and fixed(env) == fixed(self.env)

    def spawn(self, argv: list[str], cwd, env: dict, out, err) -> Forked:
        """Runs `python *argv` as a fork of the server; argv[0] is `-m geomem_jax` or this file."""
        with self._lock:
            self._next_id += 1
            request_id, started = self._next_id, [threading.Event(), None]
            self._starting[request_id] = started
            line = json.dumps({"id": request_id, "argv": argv, "cwd": str(cwd), "env": env,
                               "out": str(out), "err": str(err)}) + "\n"
            self._server.stdin.write(line.encode())
            self._server.stdin.flush()
        if not started[0].wait(60):
            raise RuntimeError("the fork server did not start a child within 60 s")
        return started[1]

    def _read(self) -> None:
        for line in self._server.stdout:
            message = json.loads(line)
            with self._lock:
                if "ready" in message:
                    self._ready.set()
                elif "id" in message:
                    child = Forked(message["pid"])
                    started = self._starting.pop(message["id"])
                    if message["pid"] in self._early:
                        child._exited(self._early.pop(message["pid"]))
                    else:
                        self._running[child.pid] = child
                    started[1] = child
                    started[0].set()
                else:
                    child = self._running.pop(message["pid"], None)
                    if child is None:
                        self._early[message["pid"]] = message["rc"]
                    else:
                        child._exited(message["rc"])
        with self._lock:  # the server died: nothing it started will report any more
            for child in self._running.values():
                child._exited(-signal.SIGKILL)
            self._running.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.stdin.close()  # the server kills what still runs and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._server.wait(30)
        self._log.close()


_FORK_SERVER: ForkServer | None = None
_FORK_SERVER_LOCK = threading.Lock()


def fork_server() -> ForkServer | None:
    """The process-wide fork server (started on first use; None where os.fork is missing)."""
    global _FORK_SERVER
    if not hasattr(os, "fork") or not hasattr(os, "pidfd_open"):
        return None
    with _FORK_SERVER_LOCK:
        if _FORK_SERVER is None:
            import atexit
            import tempfile

            log = pathlib.Path(tempfile.mkdtemp(prefix="geomem_fork_server_")) / "server.log"
            _FORK_SERVER = ForkServer(subprocess_env(), log)
            atexit.register(_FORK_SERVER.close)
        return _FORK_SERVER


def _serve_forks() -> dict:
    """The server's loop: one fork per request line on stdin; replies on stdout. Returns only in
    a forked child, with its request."""
    import importlib
    import select

    for name in FORK_PRELOAD:
        importlib.import_module(name)
    from jax._src import xla_bridge

    assert not xla_bridge._backends, "a preloaded module started a JAX backend"  # fork would copy it
    assert threading.active_count() == 1, threading.enumerate()

    def reply(message):
        os.write(1, (json.dumps(message) + "\n").encode())

    reply({"ready": True})
    children, pending = {}, b""  # pidfd -> pid
    while True:
        ready, _, _ = select.select([0, *children], [], [])
        for fd in ready:
            if fd != 0:
                pid = children.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                reply({"pid": pid, "rc": os.waitstatus_to_exitcode(status)})
                continue
            data = os.read(0, 1 << 16)
            if not data:  # the test process closed its end: end what is left, then exit
                for pid in children.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                os._exit(0)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                sys.stdout.flush(), sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    for other in children:
                        os.close(other)
                    return request
                children[os.pidfd_open(pid)] = pid
                reply({"id": request["id"], "pid": pid})


def _run_forked(request: dict) -> int:
    """In a forked child: become `python *argv` (stdin empty, stdout/stderr to the files, cwd,
    environment and argv as requested), then run it as that command line would."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for target, path in ((1, request["out"]), (2, request["err"])):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    if argv[:2] == ["-m", "geomem_jax"]:
        sys.argv = ["geomem_jax", *argv[2:]]
        from geomem_jax import cli

        return cli.main(argv[2:])
    sys.argv = argv
    return main(argv[1:])


# ----------------------------------------------------------------------------- run-directory probes


def ckpt_entries(workdir) -> list[str]:
    try:
        return os.listdir(pathlib.Path(workdir) / "checkpoints")
    except FileNotFoundError:
        return []


def tmp_dir_of(step: int):
    """Condition: Orbax's temporary directory of checkpoint `step` exists (the save is under way)."""
    prefix = f"{step}.orbax-checkpoint-tmp"
    return lambda workdir: any(name.startswith(prefix) for name in ckpt_entries(workdir))


def latest_step_at_least(step: int):
    """Condition: a committed checkpoint at `step` or later exists."""
    return lambda workdir: any(name.isdigit() and int(name) >= step for name in ckpt_entries(workdir))


def metrics_lines_at_least(n: int):
    def condition(workdir):
        path = pathlib.Path(workdir) / "metrics.jsonl"
        return path.is_file() and path.read_bytes().count(b"\n") >= n

    return condition


def file_exists(name: str):
    return lambda workdir: (pathlib.Path(workdir) / name).exists()


def metrics_records(workdir) -> list[dict]:
    """metrics.jsonl without the wall-clock field (everything else must be reproducible)."""
    from geomem_jax import metrics

    records = metrics.read_metrics(pathlib.Path(workdir) / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


def torn_tail(workdir) -> bool:
    """The metrics file ends in a partial line (a crash in the middle of a write)."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    data = path.read_bytes() if path.is_file() else b""
    return bool(data) and not data.endswith(b"\n")


def snapshot_files(root) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes), except the lock file."""
    root = pathlib.Path(root)
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# ----------------------------------------------------------------------------- comparing


def leaves_with_paths(tree, prefix=""):
    if isinstance(tree, dict):
        for key in sorted(tree):
            yield from leaves_with_paths(tree[key], f"{prefix}/{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from leaves_with_paths(value, f"{prefix}/{i}")
    else:
        yield prefix, np.asarray(tree)


def tree_differences(a, b) -> list[str]:
    """Paths where two restored states differ (structure, dtype, shape or any bit); [] when identical."""
    left, right = dict(leaves_with_paths(a)), dict(leaves_with_paths(b))
    if left.keys() != right.keys():
        return [f"structure: {sorted(left.keys() ^ right.keys())}"]
    out = []
    for path, x in left.items():
        y = right[path]
        if x.dtype != y.dtype or x.shape != y.shape:
            out.append(f"{path}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
        elif x.dtype == object:
            if x.tolist() != y.tolist():
                out.append(path)
        elif x.tobytes() != y.tobytes():  # bitwise, so NaN payloads and -0.0 count too
            out.append(path)
    return out


def final_result(workdir, step: int = TOTAL_STEPS) -> dict:
    """What an uninterrupted and a resumed run must share: summary, metric stream, final state."""
    from geomem_jax import checkpoint

    workdir = pathlib.Path(workdir)
    return {
        "summary": json.loads((workdir / "summary.json").read_text()),
        "metrics": metrics_records(workdir),
        "state": checkpoint.restore_numpy(workdir, step),
    }


def result_differences(got: dict, want: dict) -> list[str]:
    diffs = []
    if got["summary"] != want["summary"]:
        diffs.append("summary.json")
    if got["metrics"] != want["metrics"]:
        diffs.append("metrics.jsonl")
    diffs += [f"state{p}" for p in tree_differences(got["state"], want["state"])]
    return diffs


# ----------------------------------------------------------------------------- chaos trial

# A run of 40 chunks (2 steps each, a checkpoint after every chunk, Orbax keeps 2): long enough
# that 20 deliveries do not finish it early, and every process restart costs only start-up.
CHAOS_STEPS = 80
CHAOS_ARGS = (f"--config.train.steps={CHAOS_STEPS}", "--config.eval.every=2", "--config.ckpt.every=2")
CHAOS_SUMMARY_DELIVERIES = 3  # the last deliveries land while summary.json is written
# finished, stopped by SIGTERM, killed, or SIGTERM at exit (after the run restored the default handler)
CHAOS_EXIT_CODES = (0, 130, -signal.SIGKILL, -signal.SIGTERM)


def chaos_event(rng, moment: str, log) -> tuple[int, dict]:
    """One seeded delivery: (occurrence in the next process, event for hook_chaos)."""
    delay = rng.uniform(0.0, 0.002) if moment == "summary" else rng.uniform(0.0, 0.03)
    signum = rng.choice((signal.SIGKILL, signal.SIGTERM))
    n = 1 if moment == "summary" else rng.randint(1, 3)
    return n, {"moment": moment, "signal": int(signum), "delay": round(delay, 4), "log": str(log)}


def deliveries(log) -> list[dict]:
    path = pathlib.Path(log)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def chaos_trial(workdir, seed: int, wanted: int, extra=CHAOS_ARGS, max_processes: int | None = None,
                fork: bool = False) -> dict:
    """Trains under a seeded schedule of SIGKILL / SIGTERM deliveries, each followed by --resume,
    until `wanted` signals were delivered, then resumes to the end. Returns what happened.
    fork: the processes come from the fork server (Child)."""
    workdir = pathlib.Path(workdir)
    log = workdir.parent / f"{workdir.name}.chaos.jsonl"
    rng, processes = random.Random(seed), []
    max_processes = max_processes or 3 * wanted
    t0 = time.monotonic()
    while len(deliveries(log)) < wanted and len(processes) < max_processes:
        finished = (workdir / "summary.json").is_file()
        late = len(deliveries(log)) >= wanted - CHAOS_SUMMARY_DELIVERIES
        moment = "summary" if finished or late else rng.choice(CHAOS_MOMENTS[:2])
        n, event = chaos_event(rng, moment, log)
        resume = ("--resume",) if processes else ()
        child = Child(workdir, *extra, *resume, hook=("chaos", n), env={CHAOS_ENV: json.dumps(event)}, fork=fork)
        rc = child.wait()
        processes.append({"rc": rc, "moment": moment, "n": n, "signal": event["signal"],
                          "delivered": len(deliveries(log)), "traceback": "Traceback" in child.stderr,
                          "stderr": child.stderr[-300:] if rc not in CHAOS_EXIT_CODES else ""})
    child = Child(workdir, *extra, "--resume", fork=fork)  # the run to the end
    processes.append({"rc": child.wait(), "moment": None, "traceback": "Traceback" in child.stderr,
                      "stderr": child.stderr[-300:]})
    return {"workdir": str(workdir), "seed": seed, "deliveries": deliveries(log), "processes": processes,
            "wall_s": round(time.monotonic() - t0, 1)}


# ----------------------------------------------------------------------------- hooks (script mode)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # SIGKILL is asynchronous for other threads; never run on


class _Counter:
    def __init__(self, target: int):
        self.target, self.seen = target, 0

    def hit(self) -> bool:
        self.seen += 1
        return self.seen == self.target


def hook_torn_metrics(n: int) -> None:
    """SIGKILL half-way through the n-th metrics line (the half line reaches the disk)."""
    from geomem_jax import metrics

    original, counter = metrics.MetricsWriter.write, _Counter(n)

    def write(self, record):
        if not counter.hit():
            return original(self, record)
        line = json.dumps(record) + "\n"
        with open(self.path, "a") as f:
            f.write(line[: len(line) // 2])
            f.flush()
            os.fsync(f.fileno())
        _die()

    metrics.MetricsWriter.write = write


def hook_after_metrics(n: int) -> None:
    """SIGKILL right after the n-th metrics line is on disk, before that step's checkpoint."""
    from geomem_jax import metrics

    original, counter = metrics.MetricsWriter.write, _Counter(n)

    def write(self, record):
        original(self, record)
        if counter.hit():
            _die()

    metrics.MetricsWriter.write = write


def _step_finalize_patch(n: int, before_rename: bool) -> None:
    from orbax.checkpoint._src.path import atomicity

    original, counter = atomicity.AtomicRenameTemporaryPath.finalize, _Counter(n)

    async def finalize(self, *args, **kwargs):
        is_step = self.get_final().name.isdigit()  # items (state/, extra/) are finalised inside the step
        if is_step and before_rename and counter.hit():
            _die()
        result = await original(self, *args, **kwargs)
        if is_step and not before_rename and counter.hit():
            _die()
        return result

    atomicity.AtomicRenameTemporaryPath.finalize = finalize


def hook_before_commit(n: int) -> None:
    """SIGKILL when the n-th checkpoint is fully written into its tmp dir but not yet renamed."""
    _step_finalize_patch(n, before_rename=True)


def hook_after_commit(n: int) -> None:
    """SIGKILL right after the n-th checkpoint's rename (committed; nothing else done yet)."""
    _step_finalize_patch(n, before_rename=False)


def hook_tmp_created(n: int) -> None:
    """SIGKILL right after the n-th checkpoint's tmp dir is created (before any array is written)."""
    from orbax.checkpoint._src.path import atomicity

    original, counter = atomicity.AtomicRenameTemporaryPath.create, _Counter(n)

    async def create(self, *args, **kwargs):
        path = await original(self, *args, **kwargs)
        if self.get_final().name.isdigit() and counter.hit():
            _die()
        return path

    atomicity.AtomicRenameTemporaryPath.create = create


def hook_mid_delete(n: int) -> None:
    """SIGKILL half-way through deleting the n-th old checkpoint (max_to_keep), like a killed rmtree."""
    from orbax.checkpoint._src.path import deleter

    original, counter = deleter.PathDeleter.delete, _Counter(n)

    def delete(self, path, *args, **kwargs):
        if not counter.hit():
            return original(self, path, *args, **kwargs)
        files = sorted(p for p in pathlib.Path(str(path)).rglob("*") if p.is_file())
        for p in files[: len(files) // 2]:
            p.unlink()
        _die()

    deleter.PathDeleter.delete = delete


def hook_in_summary(n: int) -> None:
    """SIGKILL while summary.json is being written (all checkpoints and metrics are done)."""
    from geomem_jax import metrics

    def write_summary(workdir, summary):
        partial = pathlib.Path(workdir) / ".summary.json.partial"
        partial.write_text(json.dumps(summary)[:100])  # what a half-done write leaves
        _die()

    metrics.write_summary = write_summary


def hook_in_truncate(n: int) -> None:
    """SIGKILL in a resume after the truncated metrics copy is written, before it replaces the file."""
    from geomem_jax import metrics

    def truncate_after(self, step):
        kept = [r for r in metrics.read_metrics(self.path) if r["step"] <= step]
        self.path.with_suffix(".tmp").write_text("".join(json.dumps(r) + "\n" for r in kept))
        _die()

    metrics.MetricsWriter.truncate_after = truncate_after


def hook_slow_metrics(n: int) -> None:
    """Sleep n/10 s after every metrics line: a long-running process without changing its numbers."""
    from geomem_jax import metrics

    original = metrics.MetricsWriter.write

    def write(self, record):
        original(self, record)
        time.sleep(n / 10)

    metrics.MetricsWriter.write = write


CHAOS_ENV = "GEOMEM_CHAOS_EVENT"  # the event a `chaos` child delivers (JSON), see chaos_trial
CHAOS_MOMENTS = ("chunk", "checkpoint", "summary")


def hook_chaos(n: int) -> None:
    """Sends one signal to itself `delay` s after the n-th occurrence of a moment (the n-th chunk
    dispatched, checkpoint save begun or summary write begun), from a timer thread, so it lands
    wherever the process is then: inside the chunk, in the checkpoint's background write, in the
    evaluation or metrics write after it, half-way through the summary. Each delivery is logged
    (fsynced) first, so the parent counts deliveries, not guesses."""
    import threading

    from geomem_jax import checkpoint, loop, metrics

    event = json.loads(os.environ[CHAOS_ENV])
    counter = _Counter(n)

    def deliver():
        with open(event["log"], "a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), event["signal"])

    def arm():
        if counter.hit():
            timer = threading.Timer(event["delay"], deliver)
            timer.daemon = True  # a process that ends first ends undelivered
            timer.start()

    def armed(fn):
        def call(*args, **kwargs):
            arm()
            return fn(*args, **kwargs)
        return call

    if event["moment"] == "chunk":
        original_jit_chunk = loop.jit_chunk
        loop.jit_chunk = lambda *a, **k: armed(original_jit_chunk(*a, **k))
    elif event["moment"] == "checkpoint":
        checkpoint.Checkpointer.save = armed(checkpoint.Checkpointer.save)
    else:
        metrics.write_summary = armed(metrics.write_summary)


HOOKS = {
    "chaos": hook_chaos,
    "torn_metrics": hook_torn_metrics, "after_metrics": hook_after_metrics,
    "before_commit": hook_before_commit, "after_commit": hook_after_commit,
    "tmp_created": hook_tmp_created, "mid_delete": hook_mid_delete, "in_summary": hook_in_summary,
    "in_truncate": hook_in_truncate, "slow_metrics": hook_slow_metrics,
}


def main(argv: list[str]) -> int:
    name, n, *cli_args = argv
    HOOKS[name](int(n))
    from geomem_jax import cli

    return cli.main(cli_args)


if __name__ == "__main__":
    if sys.argv[1:] == ["--fork-server"]:
        sys.exit(_run_forked(_serve_forks()))
    sys.exit(main(sys.argv[1:]))
