"""Markov chain Monte Carlo on many chains at once, for a target known up to a constant,
rho(x) ∝ exp(-U(x)), written once against ``ops`` for both backends.

A **potential** is the energy U of a batch of points, with its gradient where a kernel asks for
it. A **kernel** is one Metropolis-Hastings transition that leaves exp(-U) invariant: from the
chains' states and every random number one step uses (its ``draws``), the step is a
deterministic array program, so both backends give the same chains from the same draws. Kernels
are registered by prelude name in ``KERNELS``, one module each in ``mcmc/kernels/`` (rwm, mala,
hmc); a cycle of kernels (the language's ``cycle(a, b)``) is a list of (kernel, args) applied in
turn each iteration (``chains.py``).

A chain's state is the tuple ``(x, U, grad)``: the points (n, *shape), their energies (n,) and
gradients (n, *shape). When some kernel of the cycle uses gradients the chains keep grad U at
every state (``Potential.gradients``), so kernels that do not use it still evaluate it at their
proposals; otherwise ``grad`` is zeros and stays so.

Evaluation counts (``Kernel.evaluations``) are per chain and per step: one call of ``value``
is one energy evaluation, one call of ``value_and_grad`` is one energy and one gradient
evaluation.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import attrs

from ..kinds import Registry

State = tuple  # (x (n, *shape), U (n,), grad U (n, *shape))


@attrs.frozen
class Potential:
    """The energy U of a batch: ``value(x)`` (n,) and ``value_and_grad(x)`` ((n,), (n, *shape)).
    ``gradients``: the chains keep grad U at every state (some kernel of their cycle uses it)."""

    value: Callable
    value_and_grad: Callable
    gradients: bool = False

    def evaluate(self, x, grad):
        """U at proposals x, with its gradient when the chains keep it (otherwise ``grad``, the
        placeholder of the current states, comes back unchanged)."""
        if self.gradients:
            return self.value_and_grad(x)
        return self.value(x), grad


@attrs.frozen
class ValueAndGrad:
    """x -> (U(x), grad U(x)) by the backend's autodiff; equal for the same ops and energy, so a
    potential built twice from one energy is the same compiled program's key."""

    ops: Any
    energy: Callable

    def __call__(self, x):
        return self.ops.value_and_grad(self.energy, x)


def potential(ops, energy: Callable, gradients: bool = False) -> Potential:
    """The potential of an energy function on batches, its gradient by the backend's autodiff."""
    return Potential(energy, ValueAndGrad(ops, energy), gradients)


class Kernel(ABC):
    """The kind of an MCMC kernel: a Metropolis-Hastings transition on many chains at once.
    ``args`` are the kernel's bound prelude arguments (``step``, the initial step size, and its
    own: ``leapfrog``, ``accept``); the step size a step uses is the adapted one it is given."""

    #: the prelude name it is registered under
    name: str = ""
    #: it needs grad U at the current state and at its proposals
    uses_grad: bool = False
    #: the acceptance rate step-size adaptation aims at, unless ``args["accept"]`` says otherwise
    accept: float = 0.5
    #: it has a step size (adapted in the warm-up); a kernel without one ignores it
    has_step: bool = True

    def initial_step(self, args: dict) -> float:
        return float(args["step"]) if self.has_step else 1.0

    def target_accept(self, args: dict) -> float:
        value = args.get("accept")
        return self.accept if value is None else float(value)

    @abstractmethod
    def evaluations(self, args: dict) -> tuple[int, int]:
        """(energy, gradient) evaluations of one step of one chain."""

    def draws(self, rng, n: int, shape: tuple[int, ...], args: dict) -> tuple:
        """Every random number one step of n chains uses, drawn from the Random ``rng``: by
        default a standard normal per coordinate (the proposal's noise, or a momentum) and a
        uniform per chain (the Metropolis-Hastings test)."""
        noise, uniform = rng.split(2)
        return noise.normal((n,) + tuple(shape)), uniform.uniform((n,))

    @abstractmethod
    def step(self, ops, potential: Potential, state: State, step_size, draws: tuple,
             args: dict, context=None) -> tuple[State, Any]:
        """One transition of every chain, deterministic given ``draws``: (state, the
        acceptance probability of each chain's proposal (n,)). ``context``: arrays the run
        passes to every step as a program argument (a flow kernel's weights), or None."""


KERNELS: Registry[Kernel] = Registry("MCMC kernel", package=__name__ + ".kernels")


def tracks_gradients(kernels) -> bool:
    """Whether chains running the cycle ``kernels`` [(Kernel, args)] keep grad U."""
    return any(kernel.uses_grad for kernel, _ in kernels)


def cycle_evaluations(kernels, gradients: bool) -> tuple[int, int]:
    """(energy, gradient) evaluations of one iteration of the cycle, per chain: a kernel that
    does not use gradients evaluates them at its proposals all the same when the chains keep
    them."""
    energy = grad = 0
    for kernel, args in kernels:
        e, g = kernel.evaluations(args)
        energy += e
        grad += e if gradients and not kernel.uses_grad else g
    return energy, grad


def init_state(ops, kernels, potential: Potential, x) -> State:
    """The chains' state at points x: U, and grad U when a kernel of the cycle uses it (zeros
    otherwise)."""
    if tracks_gradients(kernels):
        u, grad = potential.value_and_grad(x)
        return x, u, grad
    return x, potential.value(x), ops.xp.zeros_like(x)


def per_chain(xp, values, like):
    """A per-chain array (n,) shaped to broadcast against ``like`` (n, *shape)."""
    return xp.reshape(values, tuple(values.shape) + (1,) * (like.ndim - 1))


def squared_norm(xp, v):
    """|v_i|^2 of each point of a batch (n, *shape)."""
    return xp.sum(v * v, axis=tuple(range(1, v.ndim)))


def all_finite(xp, v):
    """Whether every coordinate of each point of a batch (n, *shape) is finite: (n,)."""
    return xp.all(xp.isfinite(v), axis=tuple(range(1, v.ndim)))


def metropolis_hastings(xp, state: State, proposal: State, log_ratio, uniform):
    """Accepts each chain's proposal when log(1 - u) < log_ratio, the log Metropolis-Hastings
    ratio (log target ratio plus log proposal-density ratio); u ~ U[0, 1) from the step's draws. A
    proposal whose point, energy, gradient or ratio is not finite is rejected: its ratio counts
    as -inf, so a NaN never enters a chain. Returns (state, acceptance probability
    min(1, exp(log_ratio)) per chain)."""
    x, u, grad = state
    y, v, h = proposal
    finite = xp.isfinite(v) & xp.isfinite(log_ratio) & all_finite(xp, y) & all_finite(xp, h)
    log_ratio = xp.where(finite, log_ratio, -math.inf)
    # 1 - u is uniform on (0, 1]: its log is finite. (log u of a draw of exactly 0, which float32
    # uniforms on [0, 1) give about once in 2^23 draws, is -inf and would accept any proposal.)
    accepted = xp.log1p(-uniform) < log_ratio
    wide = per_chain(xp, accepted, x)
    new = (xp.where(wide, y, x), xp.where(accepted, v, u), xp.where(wide, h, grad))
    return new, xp.exp(xp.minimum(log_ratio, 0.0))
