"""Hamiltonian Monte Carlo (Duane, Kennedy, Pendleton & Roweth 1987; Neal 2011) with a fixed
number of leapfrog steps: a momentum p ~ N(0, I), ``leapfrog`` steps of size eps of the
Hamiltonian H(x, p) = U(x) + |p|^2 / 2, and a Metropolis-Hastings test on exp(-H) (the leapfrog
map is volume-preserving and reversible, so the log ratio is H(x, p) - H(y, p')). The target
acceptance defaults to 0.8, the upper end of the 0.65-0.8 usually recommended (Beskos et al.
2013 show 0.651 optimal as the dimension grows; a higher target buys stability where the scale
varies); ``accept`` sets another.

``jitter`` J > 0 draws each chain's step size afresh at every step, eps exp(-J u) with u uniform
in [0, 1) (Neal 2011, section 5.4.2.2): the draw does not depend on the state, so the kernel still
leaves exp(-U) invariant, and the smaller steps reach regions where the adapted eps is too large
for the local scale (the neck of Neal's funnel) and break the resonances of a fixed trajectory
length."""

from __future__ import annotations

from .. import KERNELS, Kernel, metropolis_hastings, squared_norm


@KERNELS.register("hmc")
class HMC(Kernel):
    name = "hmc"
    uses_grad = True
    accept = 0.8

    def evaluations(self, args):
        """Each leapfrog step evaluates U and grad U once at its new position (the gradient at
        the start is the state's)."""
        steps = int(args["leapfrog"])
        return steps, steps

    def draws(self, rng, n, shape, args):
        """The momentum, the uniform of the Metropolis-Hastings test and, with ``jitter``, the
        uniform of each chain's step size."""
        if not args.get("jitter"):
            return super().draws(rng, n, shape, args)
        momentum, uniform, jitter = rng.split(3)
        return momentum.normal((n,) + tuple(shape)), uniform.uniform((n,)), jitter.uniform((n,))

    def step(self, ops, potential, state, step_size, draws, args, context=None):
        xp = ops.xp
        x, u, grad = state
        p0, uniform = draws[:2]
        if args.get("jitter"):
            scale = xp.exp(-float(args["jitter"]) * draws[2])
            step_size = step_size * xp.reshape(scale, (-1,) + (1,) * (len(x.shape) - 1))

        # a half kick first, then per leapfrog step: drift, evaluate, a full kick; half of the
        # last kick is taken back after the loop
        def leapfrog(carry, _):
            q, p, _, g = carry
            q = q + step_size * p
            v, g = potential.value_and_grad(q)
            return (q, p - step_size * g, v, g), None

        p = p0 - 0.5 * step_size * grad
        (y, p, v, h), _ = ops.scan(leapfrog, (x, p, u, grad), xp.zeros(int(args["leapfrog"])))
        p = p + 0.5 * step_size * h
        log_ratio = (u + 0.5 * squared_norm(xp, p0)) - (v + 0.5 * squared_norm(xp, p))
        return metropolis_hastings(xp, state, (y, v, h), log_ratio, uniform)
