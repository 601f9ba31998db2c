"""A time limit for sympy calls that are usually instant but can run for minutes on unlucky input
(``simplify`` of trigonometric constants, ``limit``). On expiry the caller falls back to a cheaper
answer; a model can therefore not stall the compiler. Uses SIGALRM, so it applies in the main
thread on POSIX and is a no-op elsewhere; an outer alarm (a test's own time limit) is kept. An
expiry that lands in a finalizer, where it cannot propagate, is dropped rather than reported
through ``sys.unraisablehook`` (the repeated alarm then reaches the block itself)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager


REPEAT = 0.05  # seconds between repeated alarms once the limit has passed


class Expired(BaseException):
    """The time limit of :func:`deadline` ran out. A BaseException, so that the ``except
    Exception`` inside sympy cannot swallow it; the alarm also repeats until the block exits."""


@contextmanager
def deadline(seconds: float):
    usable = (hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    outer_delay, _ = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_delay <= seconds:  # an outer alarm comes first: let it decide
        yield
        return

    def expire(signum, frame):
        raise Expired

    outer_hook = sys.unraisablehook

    def hook(unraisable):
        """An Expired raised in a finalizer cannot reach the block: dropped (the alarm
        repeats). Anything else goes on, with the alarm paused while it is reported."""
        if isinstance(unraisable.exc_value, Expired):
            return
        paused = signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            outer_hook(unraisable)
        finally:
            signal.setitimer(signal.ITIMER_REAL, *paused)

    previous = signal.signal(signal.SIGALRM, expire)
    sys.unraisablehook = hook
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = outer_hook
        if outer_delay > 0:
            remaining = outer_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3))
