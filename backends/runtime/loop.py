"""The host side of training, the same in both backends: chunks of compiled steps between log
and checkpoint steps, the loss check after each chunk, and checkpoints.

The next chunk is dispatched before the host looks at the previous one's losses, so an
asynchronous device (a GPU; JAX's dispatch) never waits for the progress bar, the loss check or
a checkpoint write; a chunk dispatched after a bad one is discarded.

Chunks are also sized by time: where steps are slow (a large network on a CPU), a chunk is cut
to the power of two of steps that takes about ``CHUNK_SECONDS``, measured on the chunks run so
far (not a chunk of a new length, where a new length compiles), so that the progress bar moves
and Ctrl-C is answered within a few seconds. Where lengths cost nothing (torch's Python loop of
steps; JAX's one compiled loop whose trip count is an argument), the first chunk is short
(FIRST_CHUNK steps) and times the steps at once; where each new length compiles (a runner
compiled per length), one length is chosen once, a divisor of the log and checkpoint steps, so
that at most one more length compiles. The steps and their random draws do not depend on how
they are chunked.
"""

from __future__ import annotations

import math
import time

import numpy as np

CHUNK_SECONDS = 1.0  # the longest a chunk should take, once steps have been timed


class NonFiniteLoss(Exception):
    def __init__(self, step: int):
        self.step = step


FIRST_CHUNK = 8  # the first chunk's steps where chunk lengths cost nothing (no compilation)


def train(run_chunk, state, first: int, total: int, log_every: int, checkpoint_every: int,
          on_chunk, on_checkpoint, pipelined: bool = True, free_lengths: bool = False,
          agree=None):
    """Steps ``first`` .. ``total``; chunks end at every multiple of log_every and of
    checkpoint_every. ``run_chunk(state, length) -> (state, losses)``; ``on_chunk(state,
    losses)`` after each good chunk, ``on_checkpoint(state)`` at each checkpoint step and at the
    end. Raises NonFiniteLoss; the caller then holds the state of the last good chunk.
    ``pipelined=False`` finishes each chunk before the next starts: for a backend whose chunks
    update the model in place (torch), where the state a checkpoint saves is the live one.
    ``free_lengths``: a chunk of any length runs without compiling (torch), so the first chunk
    is short (FIRST_CHUNK steps) and times the steps at once. ``agree(length)``: the length
    every process of a run takes (they time their steps apart, and must run the same chunks)."""
    dispatched, latest, pending = first, state, None
    clock = _Clock(None if free_lengths else math.gcd(log_every, checkpoint_every))
    while True:
        current = None
        if dispatched < total:
            length = min(log_every - dispatched % log_every,
                         checkpoint_every - dispatched % checkpoint_every, total - dispatched,
                         clock.steps_within(CHUNK_SECONDS),
                         FIRST_CHUNK if free_lengths and dispatched == first else total)
            if agree is not None:
                length = agree(length)
            latest, losses = run_chunk(latest, length)
            current = (latest, losses, dispatched + length)
            dispatched += length
        if not pipelined and current is not None:
            _finish(current, total, checkpoint_every, on_chunk, on_checkpoint, clock)
            continue
        if pending is not None:
            _finish(pending, total, checkpoint_every, on_chunk, on_checkpoint, clock)
        if current is None:
            return latest
        pending = current


class _Clock:
    """Seconds per step, from the wall time between finished chunks; a chunk of a length not
    seen before (which compiles, in JAX) is not counted, except the first, whose time (with the
    compilation) bounds the steps' until one is."""

    def __init__(self, period: int | None = None):
        self.last = time.perf_counter()
        self.seen: set[int] = set()
        self.per_step = 0.0
        # compiled lengths (JAX): one length, a divisor of the log and checkpoint period, chosen
        # once, so that the chunks stay aligned and at most one more length compiles
        self.period, self.fixed = period, None

    def tick(self, steps: int) -> None:
        now = time.perf_counter()
        if steps in self.seen:
            self.per_step = (now - self.last) / steps
        elif not self.seen:  # the first chunk: an upper bound until a chunk is timed
            self.per_step = (now - self.last) / steps
        self.seen.add(steps)
        self.last = now

    def steps_within(self, seconds: float) -> int:
        """The steps that take at most ``seconds`` (at least 1): the largest power of two, or
        for compiled lengths the largest divisor of the period, fixed once chosen; no limit
        before steps have been timed."""
        if self.fixed is not None:
            return self.fixed
        if self.per_step <= 0 or self.per_step * 2**30 < seconds:
            return 2**30
        fit = max(1, int(seconds / self.per_step))
        if self.period is None:
            return 1 << (fit.bit_length() - 1)
        self.fixed = max(d for d in range(1, min(fit, self.period) + 1) if self.period % d == 0)
        return self.fixed


def _finish(chunk, total, checkpoint_every, on_chunk, on_checkpoint, clock=None):
    state, losses, end = chunk
    losses = np.asarray(losses)
    finite = np.isfinite(losses)
    if not finite.all():
        raise NonFiniteLoss(end - len(losses) + int(np.argmin(finite)) + 1)
    on_chunk(state, losses)
    if clock is not None:
        clock.tick(len(losses))
    if end % checkpoint_every == 0 or end == total:
        on_checkpoint(state)
