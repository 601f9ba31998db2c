"""A wall-clock limit for one compile in the property tests: a hang fails the test instead of
stalling the suite (SIGALRM, main thread on POSIX; elsewhere no limit)."""

import contextlib
import signal
import threading


class TookTooLong(BaseException):
    """Raised by SIGALRM inside a compile (a BaseException, so that the compiler's own
    ``except Exception`` cannot turn it into an InternalCompilerError)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = ""):
    """Fail, instead of hanging the suite, when the body runs longer than ``seconds``."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise TookTooLong(f"took more than {seconds} s: {what[:3000]!r}")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
