"""Laws of the training time t, written once and registered under their prelude names: a law
gives ``draw(ops, args) -> (rng, n) -> t`` of shape (n,) and its ``support(args)``, the interval
the samplers cover by default."""

from __future__ import annotations

from typing import Callable

import attrs

from .kinds import Registry


@attrs.frozen
class TimeLaw:
    draw: Callable
    support: Callable = lambda args: (0.0, 1.0)


TIME_LAWS: Registry[TimeLaw] = Registry("time law")


def _uniform(ops, args):
    low, high = float(args["low"]), float(args["high"])
    if (low, high) == (0.0, 1.0):
        return lambda rng, n: rng.uniform((n,))
    return lambda rng, n: low + (high - low) * rng.uniform((n,))


def _logit_normal(ops, args):
    """sigmoid(mean + std N(0, 1))."""
    mean, std, xp = float(args["mean"]), float(args["std"]), ops.xp
    return lambda rng, n: 1 / (1 + xp.exp(-(mean + std * rng.normal((n,)))))


TIME_LAWS.register("uniform")(TimeLaw(_uniform, lambda a: (float(a["low"]), float(a["high"]))))
TIME_LAWS.register("logit_normal")(TimeLaw(_logit_normal))


def make(ops, entry):
    """(rng, n) -> t for the time law ``entry`` (a spec Call)."""
    return TIME_LAWS[entry.name].draw(ops, entry.args)


def support(entry) -> tuple[float, float]:
    """The interval of the time law ``entry``: where samplers start and end by default."""
    return TIME_LAWS[entry.name].support(entry.args)
