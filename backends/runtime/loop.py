"""The host side of training, the same in both backends: chunks of compiled steps between log
and checkpoint steps, the loss check after each chunk, and checkpoints.

The next chunk is dispatched before the host looks at the previous one's losses, so an
asynchronous device (a GPU; JAX's dispatch) never waits for the progress bar, the loss check or
a checkpoint write; a chunk dispatched after a bad one is discarded.
"""

from __future__ import annotations

import numpy as np


class NonFiniteLoss(Exception):
    def __init__(self, step: int):
        self.step = step


def train(run_chunk, state, first: int, total: int, log_every: int, checkpoint_every: int,
          on_chunk, on_checkpoint, pipelined: bool = True):
    """Steps ``first`` .. ``total``; chunks end at every multiple of log_every and of
    checkpoint_every. ``run_chunk(state, length) -> (state, losses)``; ``on_chunk(state,
    losses)`` after each good chunk, ``on_checkpoint(state)`` at each checkpoint step and at the
    end. Raises NonFiniteLoss; the caller then holds the state of the last good chunk.
    ``pipelined=False`` finishes each chunk before the next starts: for a backend whose chunks
    update the model in place (torch), where the state a checkpoint saves is the live one."""
    dispatched, latest, pending = first, state, None
    while True:
        current = None
        if dispatched < total:
            length = min(log_every - dispatched % log_every,
                         checkpoint_every - dispatched % checkpoint_every, total - dispatched)
            latest, losses = run_chunk(latest, length)
            current = (latest, losses, dispatched + length)
            dispatched += length
        if not pipelined and current is not None:
            _finish(current, total, checkpoint_every, on_chunk, on_checkpoint)
            continue
        if pending is not None:
            _finish(pending, total, checkpoint_every, on_chunk, on_checkpoint)
        if current is None:
            return latest
        pending = current


def _finish(chunk, total, checkpoint_every, on_chunk, on_checkpoint):
    state, losses, end = chunk
    losses = np.asarray(losses)
    finite = np.isfinite(losses)
    if not finite.all():
        raise NonFiniteLoss(end - len(losses) + int(np.argmin(finite)) + 1)
    on_chunk(state, losses)
    if end % checkpoint_every == 0 or end == total:
        on_checkpoint(state)
