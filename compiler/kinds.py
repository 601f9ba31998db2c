"""The compiler's side of the kinds the prelude declares: what each sampler kind needs of the
model, beyond the parameter types its ``primitive`` line gives (those are bound and checked by
``signatures.py``).

A sampler kind belongs to a family:

- ``ode``: it integrates the probability-flow ODE dX/dt = b(t, X), so it needs the velocity; it
  transports the base to the target deterministically;
- ``sde``: it integrates dX = (b +- eps s) dt + sqrt(2 eps) dW, so it needs the velocity and the
  score, and takes the parameters ``eps`` (a noise schedule) and ``direction`` (forward or
  backward); the compiler derives its drift and emits eps(t);
- ``mcmc``: a Markov chain Monte Carlo kernel (or a cycle of kernels) run on many chains on the
  target's energy, in a model without networks;
- ``smc``: sequential Monte Carlo or annealed importance sampling from the base to the target
  along the geometric path, with MCMC moves by a kernel of the model; it estimates log Z.

The runtime implements each kind once (``backends/runtime/samplers/<kind>.py``; MCMC kernels in
``backends/runtime/mcmc/kernels/<kind>.py``); adding a kind is its prelude line, its entry here,
and that module (docs/architecture.md).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class SamplerSignature:
    family: str  # "ode", "sde", "mcmc" or "smc"

    @property
    def needs(self) -> tuple[str, ...]:
        """The fields the sampler evaluates (MCMC and SMC evaluate the energy, no field)."""
        return {"ode": ("velocity",), "sde": ("velocity", "score")}.get(self.family, ())


ODE = SamplerSignature("ode")
SDE = SamplerSignature("sde")
MCMC = SamplerSignature("mcmc")
SMC = SamplerSignature("smc")

SAMPLERS: dict[str, SamplerSignature] = {
    "euler": ODE, "midpoint": ODE, "heun": ODE, "rk4": ODE, "dopri5": ODE,
    "euler_maruyama": SDE,
    "rwm": MCMC, "mala": MCMC, "hmc": MCMC, "cycle": MCMC,
    "smc": SMC, "ais": SMC,
}


def sampler(name: str) -> SamplerSignature | None:
    """The signature of the sampler kind ``name`` (its prelude name), or None if unknown."""
    return SAMPLERS.get(name)
