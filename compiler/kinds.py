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
  along the geometric path, with MCMC moves by a kernel of the model; it estimates log Z;
- ``map``: K steps of the model's flow map X_{s,t} (``fewstep``): K network calls, no ODE;
- ``flow``: a sampler that draws from a normalizing flow of the model (``flow = T``): importance
  sampling, SMC started from the flow, the adaptive flow-assisted MCMC loop. (``flow_mh``, the
  independence kernel, is an ``mcmc`` kernel that names its flow.) In a model with an
  interpolant, the flow is a fixed-step ODE sampler of the model (``flow = ode``): the
  probability-flow ODE of the learned velocity, with its exact log-density.

The ``mcmc``, ``smc`` and ``flow`` families sample the target's energy (``ENERGY_FAMILIES``): in a
model without networks, in a model of normalizing flows, and in a model with an interpolant whose
target has an energy (after training, with the learned velocity's ODE as their flow).

Networks are of two sorts: fields of (t, x) trained by regression along an interpolant, and
normalizing flows (``FLOWS``), trained by one of the flow objectives (``FLOW_OBJECTIVES``) in a
model without an interpolant.

The runtime implements each kind once (``backends/runtime/samplers/<kind>.py``; MCMC kernels in
``backends/runtime/mcmc/kernels/<kind>.py``); adding a kind is its prelude line, its entry here,
and that module (docs/architecture.md).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class SamplerSignature:
    family: str  # "ode", "sde", "mcmc", "smc", "flow" or "map"
    adaptive: bool = False  # an ODE solver that chooses its steps (for the whole batch)

    @property
    def needs(self) -> tuple[str, ...]:
        """The fields the sampler evaluates (MCMC and SMC evaluate the energy, no field)."""
        return {"ode": ("velocity",), "sde": ("velocity", "score")}.get(self.family, ())


ENERGY_FAMILIES = ("mcmc", "smc", "flow")

ODE = SamplerSignature("ode")
ADAPTIVE_ODE = SamplerSignature("ode", adaptive=True)
SDE = SamplerSignature("sde")
MCMC = SamplerSignature("mcmc")
SMC = SamplerSignature("smc")
FLOW = SamplerSignature("flow")
MAP = SamplerSignature("map")

SAMPLERS: dict[str, SamplerSignature] = {
    "euler": ODE, "midpoint": ODE, "heun": ODE, "rk4": ODE, "dopri5": ADAPTIVE_ODE,
    "euler_maruyama": SDE,
    "rwm": MCMC, "mala": MCMC, "hmc": MCMC, "cycle": MCMC,
    "smc": SMC, "ais": SMC,
    "flow_mh": MCMC, "importance": FLOW, "flow_smc": FLOW, "flow_ais": FLOW,
    "flow_mcmc": FLOW,
    "fewstep": MAP,
}

# network kinds that are normalizing flows, and what each flow objective needs of the target
FLOWS = ("realnvp", "spline", "cnf")
FLOW_OBJECTIVES = {"likelihood": "samples", "reverse_kl": "energy", "forward_kl": "energy",
                   "flow_matching": "samples"}
VELOCITY_FLOWS = ("cnf",)  # flows with a velocity, which flow_matching trains

# the objectives of a flow map X_{s,t} (a field network of two times, docs/fewstep.md): distilled
# from the model's velocity (lagrangian, eulerian: the teacher named), or self-distilled
# (self_distillation: its own velocity regressed on the velocity target, and the map on it)
MAP_OBJECTIVES = ("lagrangian", "eulerian", "self_distillation")


def sampler(name: str) -> SamplerSignature | None:
    """The signature of the sampler kind ``name`` (its prelude name), or None if unknown."""
    return SAMPLERS.get(name)
