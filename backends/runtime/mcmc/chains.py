"""Many Markov chains at once: a cycle of kernels applied in turn each iteration, a warm-up that
adapts each kernel's step size by dual averaging, then the sampling iterations, kept every
``thin``-th.

Each phase is one compiled program (``program``: the backend's program wrapper, jit in JAX) over
``ops.scan`` (``lax.scan`` in JAX, a Python loop in torch), with one key per iteration; the kept
states stay on the device and come to numpy once, at the end.

The chains may be split over devices (``layout``, runtime/parallel.py): every iteration's random
numbers are drawn for all chains and each device keeps its chains' rows, so a chain's draws do
not depend on the number of devices; the mean acceptance that adapts the step sizes is averaged
over the devices, and the kept states are gathered in order at the end.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from ....errors import Diagnostic, TfmRuntimeError
from ..parallel import Layout
from . import adaptation, cycle_evaluations, init_state, tracks_gradients


@attrs.frozen
class ChainResult:
    """``samples`` (draws // thin, chains, *shape) and their energies ``energies``
    (draws // thin, chains); ``state``, the chains' last points (chains, *shape); per kernel,
    the step size it sampled with and its mean acceptance probability over the sampling
    iterations; the energy and gradient evaluations of the whole run, all chains together."""

    samples: np.ndarray
    energies: np.ndarray
    state: np.ndarray
    step_sizes: list[float]
    acceptance: list[float]
    energy_evals: int
    grad_evals: int
    warmup: int
    draws: int
    thin: int


def iterate(ops, kernels, potential, state, step_sizes, key, context=None, layout=None):
    """One iteration of the cycle ``kernels`` [(Kernel, args)]: each kernel steps every chain in
    turn, with step size ``step_sizes[i]``, from its share of the iteration's random stream
    ``key`` (and the run's ``context``), drawn for the chains of every device (``layout``).
    Returns (state, the mean acceptance probability of each kernel (kernels,) over this
    device's chains)."""
    xp = ops.xp
    layout = layout or Layout()
    x = state[0]
    n, shape = layout.whole(x.shape[0]), tuple(x.shape[1:])
    streams = ops.random(key).split(len(kernels))
    accept = []
    for i, ((kernel, args), rng) in enumerate(zip(kernels, streams)):
        draws = layout.own(kernel.draws(rng, n, shape, args), n)
        state, prob = kernel.step(ops, potential, state, step_sizes[i], draws, args,
                                  context)
        accept.append(xp.mean(prob))
    return state, xp.stack(accept)


def signature(kernels) -> tuple:
    """A hashable description of a cycle (a compiled program's cache key)."""
    return tuple((kernel.name, tuple(sorted((k, repr(v)) for k, v in args.items())))
                 for kernel, args in kernels)


def check_start(ops, state, what: str = "chain") -> None:
    """Raises a runtime error naming the first chain whose energy (or gradient, where the chains
    keep it) is not finite at its initial state."""
    u = ops.numpy(state[1])
    bad = np.flatnonzero(~np.isfinite(u))
    if bad.size:
        i = int(bad[0])
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"The energy is not finite at the initial state of {what} {i} "
            f"(U = {u[i]}); {bad.size} of {u.size} initial states have a non-finite energy.",
            suggestion="Start where the energy is finite: check that the base (the initial law "
            "of the chains) lies in the energy's domain, and the energy for logarithms of "
            "non-positive numbers, divisions by zero and overflow."))
    grad = ops.numpy(state[2]).reshape(u.size, -1)
    bad = np.flatnonzero(~np.all(np.isfinite(grad), axis=1))
    if bad.size:
        i = int(bad[0])
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"The gradient of the energy is not finite at the initial state of "
            f"{what} {i} (U = {u[i]}); {bad.size} of {u.size} initial states have a "
            "non-finite gradient.",
            suggestion="Gradient-based kernels (mala, hmc) need grad U at every state: check "
            "the energy for non-differentiable points (sqrt or abs at 0, log near 0)."))


def run_chains(ops, program, kernels, potential, x0, key, warmup: int, draws: int, thin: int,
               step_sizes, target_accepts, adapt: bool = True, context=None,
               layout=None) -> ChainResult:
    """Runs the chains of the cycle ``kernels`` [(Kernel, args)] on ``potential`` from
    the points ``x0`` (chains, *shape; this device's rows of them where ``layout`` splits the
    chains over devices): ``warmup`` iterations (adapting each kernel's step size
    from ``step_sizes`` towards ``target_accepts`` by dual averaging when ``adapt``), then
    ``draws`` iterations of which every ``thin``-th is kept (``draws`` is taken down to a
    multiple of ``thin``). ``program(key, fn)`` makes ``fn`` ready to run many times (the
    backend's: jit in JAX); ``key`` is the backend's key (``ops.key(seed)``). ``context``
    (arrays, or None) reaches every kernel step as an argument of the compiled programs, so a
    flow kernel runs with new weights without compiling again."""
    xp = ops.xp
    layout = layout or Layout()
    gradients = tracks_gradients(kernels)
    potential = attrs.evolve(potential, gradients=gradients)
    chains, k = layout.whole(int(x0.shape[0])), len(kernels)
    kept = draws // thin
    sig = (potential, signature(kernels))

    state = init_state(ops, kernels, potential, x0)
    u = layout.assemble(state[1])  # every process checks all chains, and raises alike
    check_start(ops, (None, u, layout.assemble(state[2]) if gradients else xp.zeros_like(u)))
    targets = ops.asarray(np.asarray(target_accepts, dtype=np.float64))
    warm_rng, draw_rng = ops.random(key).split(2)

    eps = ops.asarray(np.asarray(step_sizes, dtype=np.float64))
    adapting = adapt and warmup > 0
    if warmup > 0:
        def warm(state, dual, targets, keys, context):
            def body(carry, key):
                state, dual = carry
                state, accept = iterate(ops, kernels, potential, state,
                                        adaptation.step_sizes(xp, dual), key, context, layout)
                if adapting:
                    dual = adaptation.update(xp, dual, layout.average(accept), targets)
                return (state, dual), None
            return ops.scan(body, (state, dual), keys)[0]

        state, dual = program(("mcmc", "warmup", adapting) + sig, warm)(
            state, adaptation.start(ops, step_sizes), targets, warm_rng.keys(warmup), context)
        if adapting:  # a kernel without a step size (flow_mh) keeps the one it was given
            fixed = ops.asarray(np.asarray([not kern.has_step for kern, _ in kernels],
                                           np.float32)) > 0
            eps = xp.where(fixed, eps, adaptation.adapted(xp, dual))

    energy_evals, grad_evals = cycle_evaluations(kernels, gradients)
    iterations = warmup + kept * thin
    totals = (chains * (1 + iterations * energy_evals),
              chains * (int(gradients) + iterations * grad_evals))
    if kept == 0:
        shape = tuple(x0.shape[1:])
        return ChainResult(np.zeros((0, chains) + shape, np.float32),
                           np.zeros((0, chains), np.float32),
                           ops.numpy(layout.gather(state[0], chains)),
                           [float(e) for e in ops.numpy(eps)], [math.nan] * k,
                           *totals, warmup, draws, thin)

    def sample(state, eps, keys, context):
        def outer(carry, key):
            def inner(carry, key):
                state, total = carry
                state, accept = iterate(ops, kernels, potential, state, eps, key, context,
                                        layout)
                return (state, total + accept), None
            carry = ops.scan(inner, carry, ops.random(key).keys(thin))[0]
            return carry, (carry[0][0], carry[0][1])
        return ops.scan(outer, (state, xp.zeros_like(eps)), keys, trajectory=True)

    (state, total), (xs, us) = program(("mcmc", "sample", thin) + sig, sample)(
        state, eps, draw_rng.keys(kept), context)
    return ChainResult(ops.numpy(layout.gather(xs, chains, axis=1)),
                       ops.numpy(layout.gather(us, chains, axis=1)),
                       ops.numpy(layout.gather(state[0], chains)),
                       [float(e) for e in ops.numpy(eps)],
                       [float(a) for a in ops.numpy(layout.average(total)) / (kept * thin)],
                       *totals, warmup, draws, thin)
