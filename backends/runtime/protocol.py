"""What an emitted module defines: the contract between code generation and the runtime.

Both emitters (``backends/jax/emit.py``, ``backends/torch/emit.py``, through
``codegen/emitter.py``) write modules that satisfy ``EmittedModule``; the torch module also
defines ``Networks``, the ``nn.Module`` of its networks (``TorchEmittedModule``). The runtime reads
a module only through these names. ``check(module)`` verifies a loaded module against the
protocol (tests run it on every emitted module).

Array arguments: ``t`` a time (a number or a 0-d array; inside ``losses`` and ``interpolant`` an
array of shape (B, 1, ...) that broadcasts against the points), ``x0``, ``x1``, ``z``, ``x``
batches of points (B, *shape), ``out`` the networks' outputs at (t, x) keyed by
``Network.key`` (``runtime/spec.py``). Results broadcast to the points' shape.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from .spec import Spec


@runtime_checkable
class EmittedModule(Protocol):
    SOURCE: str  # the .tfm file's name
    SPEC: Spec
    FIELDS: Mapping[str, Callable]  # name -> (t, x, out) -> the field alone
    EPS: Mapping[str, Callable]  # SDE sampler name -> t -> eps(t) (a number when constant)
    ENERGIES: Mapping[str, Callable]  # name -> (xp, x, c) -> U(x), one number per sample
    # (t, x, d) -> {velocity, score} given the data prediction d, or None where the noise of
    # x_t is not Gaussian (inpainting, runtime/inpainting.py)
    given_data: Callable | None

    def interpolant(self, t, x0, x1, z) -> Any:
        """x_t."""

    def losses(self, t, x0, x1, z, out) -> Mapping[str, Any]:
        """Each trained network's per-element loss integrand w(t) |N - Y|^2."""

    def fields(self, t, x, out) -> Mapping[str, Any]:
        """Every field the trained networks determine."""

    def drifts(self, t, x, out) -> Mapping[str, Any]:
        """Each SDE sampler's drift."""


@runtime_checkable
class SamplingModule(Protocol):
    """The module of a model without networks (``SPEC.sampling``): its settings and energies."""

    SOURCE: str
    SPEC: Spec
    ENERGIES: Mapping[str, Callable]  # name -> (xp, x, c) -> U(x), one number per sample


@runtime_checkable
class FlowModule(Protocol):
    """The module of a model of normalizing flows (``SPEC.flows``): its settings and energies;
    the flows' passes are the runtime's (torch's module also has ``Networks``)."""

    SOURCE: str
    SPEC: Spec
    ENERGIES: Mapping[str, Callable]


@runtime_checkable
class TorchEmittedModule(EmittedModule, Protocol):
    Networks: type  # torch.nn.Module with ``nets`` and forward(t, x) -> out


SIGNATURES = {"interpolant": ["t", "x0", "x1", "z"], "losses": ["t", "x0", "x1", "z", "out"],
              "fields": ["t", "x", "out"], "drifts": ["t", "x", "out"]}


def check(module, protocol=EmittedModule) -> list[str]:
    """What ``module`` lacks of ``protocol`` (empty when it satisfies it): missing names, wrong
    parameter lists, a SPEC that is not a Spec, FIELDS not matching SPEC.fields, EPS not
    matching the SDE samplers."""
    problems = []
    spec = getattr(module, "SPEC", None)
    if isinstance(spec, Spec) and spec.sampling:
        protocol = SamplingModule
        if not isinstance(module, protocol):
            return ["missing " + ", ".join(n for n in ("SOURCE", "SPEC", "ENERGIES")
                                           if not hasattr(module, n))]
        return _check_energies(module)
    if isinstance(spec, Spec) and spec.flows:
        needed = ("SOURCE", "SPEC", "ENERGIES") + (
            ("Networks",) if protocol is TorchEmittedModule else ())
        missing = [n for n in needed if not hasattr(module, n)]
        return ["missing " + ", ".join(missing)] if missing else _check_energies(module)
    if not isinstance(module, protocol):
        missing = [n for n in ("SOURCE", "SPEC", "FIELDS", "EPS", "ENERGIES", "given_data",
                               *SIGNATURES, "Networks")
                   if not hasattr(module, n) and (n != "Networks" or protocol is TorchEmittedModule)]
        return [f"missing {', '.join(missing)}"]
    for name, params in SIGNATURES.items():
        got = list(inspect.signature(getattr(module, name)).parameters)
        if got != params:
            problems.append(f"{name}{tuple(got)} should take {tuple(params)}")
    if not isinstance(module.SPEC, Spec):
        problems.append("SPEC is not a runtime Spec")
        return problems
    if sorted(module.FIELDS) != sorted(module.SPEC.fields):
        problems.append(f"FIELDS {sorted(module.FIELDS)} != SPEC.fields {sorted(module.SPEC.fields)}")
    for name, fn in module.FIELDS.items():
        if list(inspect.signature(fn).parameters) != ["t", "x", "out"]:
            problems.append(f"FIELDS[{name!r}] should take (t, x, out)")
    given = module.given_data
    if given is not None and list(inspect.signature(given).parameters) != ["t", "x", "d"]:
        problems.append("given_data should take (t, x, d)")
    sdes = sorted(s.name for s in module.SPEC.samplers if s.kind == "sde")
    if sorted(module.EPS) != sdes:
        problems.append(f"EPS {sorted(module.EPS)} != the SDE samplers {sdes}")
    return problems + _check_energies(module)


def _check_energies(module) -> list[str]:
    problems = []
    if sorted(module.ENERGIES) != sorted(module.SPEC.energies):
        problems.append(f"ENERGIES {sorted(module.ENERGIES)} != SPEC.energies "
                        f"{sorted(module.SPEC.energies)}")
    for name, fn in module.ENERGIES.items():
        if list(inspect.signature(fn).parameters) != ["xp", "x", "c"]:
            problems.append(f"ENERGIES[{name!r}] should take (xp, x, c)")
    return problems
