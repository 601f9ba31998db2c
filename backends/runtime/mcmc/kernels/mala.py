"""The Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996): one Euler-Maruyama step
of the Langevin diffusion, y = x - (eps^2 / 2) grad U(x) + eps z, z ~ N(0, I), corrected by
Metropolis-Hastings with the proposal densities q(y | x) = N(y; x - (eps^2 / 2) grad U(x),
eps^2 I). The classical target acceptance is 0.574 (Roberts & Rosenthal 1998)."""

from __future__ import annotations

from .. import KERNELS, Kernel, metropolis_hastings, squared_norm


@KERNELS.register("mala")
class MALA(Kernel):
    name = "mala"
    uses_grad = True
    accept = 0.574

    def evaluations(self, args):
        return 1, 1

    def step(self, ops, potential, state, step_size, draws, args, context=None):
        xp = ops.xp
        x, u, grad = state
        z, uniform = draws
        drift = 0.5 * step_size * step_size
        y = x - drift * grad + step_size * z
        v, h = potential.value_and_grad(y)
        # log q(x | y) - log q(y | x): the forward residual y - x + drift grad U(x) is eps z
        backward = squared_norm(xp, x - y + drift * h) / (2 * step_size * step_size)
        log_ratio = u - v - backward + 0.5 * squared_norm(xp, z)
        return metropolis_hastings(xp, state, (y, v, h), log_ratio, uniform)
