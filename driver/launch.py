"""``tfmc run FILE --backend torch --devices N`` on one machine: starts the N worker processes
of a data-parallel run itself, as ``torchrun --nproc-per-node N`` would (each one runs the same
``tfmc run`` with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set), and watches
them. Worker 0 prints what a one-process run prints; the others stay silent unless they fail.
When a worker stops with an error, the others are stopped too, and the message says which
worker stopped, its last words, and what the run folder keeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRACE = 5.0  # seconds the other workers get to stop by themselves after one fails, and then
# after SIGTERM, before they are killed
TAIL = 15  # lines of a failed worker's error output shown
INTERRUPTED = 130  # the exit status of an interrupted run (128 + SIGINT)


def launch(argv: list[str], devices: int, describe_kept) -> int:
    """Runs ``tfmc`` with ``argv`` in ``devices`` worker processes; returns the exit status
    (the first failed worker's, else 0). ``describe_kept()`` says what the run folder keeps,
    for the message after a failure."""
    from ..backends.runtime.parallel import free_port  # (not torch: this process trains nothing)

    env = os.environ | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                        "WORLD_SIZE": str(devices), "LOCAL_WORLD_SIZE": str(devices)}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(devices)]
    workers = []
    for rank in range(devices):
        quiet = rank > 0
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tfm.driver.cli", *argv],
            env=env | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=logs[rank] if quiet else None))
    try:
        failed = _wait(workers)
    except KeyboardInterrupt:  # from a terminal, Ctrl-C reaches the workers too: let them end
        deadline = time.monotonic() + 2.0
        while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        _reap(workers, signal.SIGINT)  # (a SIGINT sent to this process alone)
        return INTERRUPTED  # worker 0 has said what the run folder keeps
    if failed is None:
        return 0
    deadline = time.monotonic() + GRACE  # the others' next collective fails: let them say so
    while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    # the worker to name: one that a signal killed (its peers then fail in their collectives)
    killed = [(r, w.returncode) for r, w in enumerate(workers)
              if w.returncode is not None and w.returncode < 0]
    rank, code = killed[0] if killed else failed
    _reap(workers)
    if rank > 0:
        logs[rank].seek(0)
        lines = logs[rank].read().strip().splitlines()[-TAIL:]
        if lines:
            print("\n".join(f"  [worker {rank}] {line}" for line in lines), file=sys.stderr)
    print(f"Worker {rank} of {devices} stopped ({_reason(code)}); the other workers were stopped."
          f" {describe_kept()}", file=sys.stderr)
    return code if code > 0 else 1


def _wait(workers) -> tuple[int, int] | None:
    """Waits for every worker; at the first one that fails, (its rank, exit status)."""
    while True:
        running = False
        for rank, w in enumerate(workers):
            code = w.poll()
            if code is None:
                running = True
            elif code != 0:
                return rank, code
        if not running:
            return None
        time.sleep(0.1)


def _reap(workers, sig=signal.SIGTERM) -> None:
    """Stops the workers still running: ``sig``, then SIGKILL after GRACE seconds."""
    for w in workers:
        _stop(w, sig)
    deadline = time.monotonic() + GRACE
    for w in workers:
        try:
            w.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _stop(worker, sig) -> None:
    if worker.poll() is None:
        try:
            worker.send_signal(sig)
        except ProcessLookupError:  # pragma: no cover - ended meanwhile
            pass


def _reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:  # pragma: no cover
            return f"killed by signal {-code}"
    return f"exit status {code}"


def kept(out: Path, trains: bool = True) -> str:
    """What a stopped run leaves in its folder (``trains``: the model trains networks; one
    that only runs samplers has no checkpoint to resume)."""
    from ..backends.runtime import checkpoint

    if not trains:
        return "The model trains nothing, so there is nothing to resume: run it again."

    try:
        step = checkpoint.step_of(out / checkpoint.NAME)
    except Exception:  # noqa: BLE001 - none yet, or unreadable
        return (f"No checkpoint was written in '{out}' yet: nothing can be resumed; run it "
                "again.")
    return (f"The checkpoint of step {step} is kept in '{out}'; continue with --resume (on "
            "any number of devices).")
