"""Checks on an assembled model that look across declarations: is it trainable as written, do
shapes agree, is anything declared but unused. Returns diagnostics; changes nothing.

Boundary conditions and singular points of the interpolant are derived symbolically and checked
by the derivation passes, not here.
"""

from __future__ import annotations

from ..errors import Diagnostic
from . import ir, kinds
from .derive import affine_form, gaussian_base

LATENT_TARGETS = ("noise", "score")


def check_model(model: ir.Model, statements: dict, declarations: dict) -> list[Diagnostic]:
    out: list[Diagnostic] = []

    def error(message, span, suggestion=None):
        out.append(Diagnostic("Semantic", message, span, suggestion))

    def warn(message, span, suggestion=None):
        out.append(Diagnostic("Semantic", message, span, suggestion, severity="warning",
                              pedantic=True))

    # densities
    for density in (model.base, model.target):
        ctor = density.constructor
        if ctor.name == "normal":
            for arg in ("mean", "scale"):
                values = ctor.arg(arg)
                if len(values) not in (1, model.dim):
                    error(f"normal's {arg} has {len(values)} entries, but the model has dimension "
                          f"{model.dim}.", ctor.span,
                          f"Give one number, or a list of {model.dim}.")
            if any(s <= 0 for s in ctor.arg("scale")):
                error("normal's scale must be positive.", ctor.span)
        if ctor.name == "energy" and density.role == "base":
            error("The base must be a density we can sample: energy() gives no samples.",
                  ctor.span, "Use base x0 ~ normal(0, 1).")
    if model.target.constructor.name == "energy" and not model.sampling:
        error("A target given only by its energy has no samples to regress on, so this "
              "objective cannot be trained; training networks on an energy is not in this "
              "version of the language.", model.target.span,
              "Give samples with data(\"file.npy\") or a stdlib distribution, or remove the "
              "networks and the objective and sample the energy with MCMC or SMC "
              "(sampler s = mala()).")

    out.extend(check_samplers(model))
    if model.sampling:
        return out

    # coupling
    coupling = model.coupling
    if coupling.name == "paired" and not (model.base.constructor.name == "data"
                                          and model.target.constructor.name == "data"):
        error("coupling paired reads x0 and x1 together, so base and target must both be "
              "data(...).", coupling.span or model.span,
              "Use independent, minibatch_ot or sinkhorn for other densities.")

    # interpolant
    expr = model.interpolant.expr
    extra = expr.free_symbols - {ir.t, ir.x0, ir.x1, ir.z}
    if extra:  # pragma: no cover - names are resolved before this
        error(f"The interpolant depends on {extra}.", model.interpolant.span)
    if ir.x1 not in expr.free_symbols:
        error("The interpolant does not depend on x1, so it never reaches the target.",
              model.interpolant.span, "For example: interpolant x_t = (1 - t) * x0 + t * x1")

    # networks and objective
    trained = {term.network for term in model.objective.terms}
    gaussian = gaussian_base(model) is not None and affine_form(model.interpolant.expr) is not None
    for term in model.objective.terms:
        if model.interpolant.uses_latent or (term.target == "score" and gaussian):
            continue
        if term.target in LATENT_TARGETS:
            error(f"The target '{term.target}' is defined through the latent z, but the "
                  "interpolant has no z term" + (" and the base is not an isotropic normal "
                                                 "with an affine interpolant."
                                                 if term.target == "score" else "."), term.span,
                  "Add latent noise, e.g. + sqrt(0.1 * t * (1 - t)) * z, or train velocity"
                  + (" (with a normal base, 'base' predicts the noise x0)."
                     if term.target == "noise" else "."))
    for net in model.networks:
        if net.constructor.name == "convnet" and len(model.shape) != 3:
            error(f"convnet works on image-shaped data [channels, height, width]; this model's "
                  f"shape is {list(model.shape)}.", net.constructor.span,
                  "Use mlp or resmlp, or declare dim [C, H, W].")
        if net.name not in trained:
            warn(f"The network '{net.name}' is not trained by the objective.", net.span,
                 f"Add {net.name} ~ velocity (or another target) to the objective, or remove it.")
    weight_extra = model.objective.weight.free_symbols - {ir.t}
    if weight_extra:  # pragma: no cover - names are resolved before this
        error("The weight depends on something other than t.", model.objective.span)

    # noise schedules are for samplers
    used = {value.name for s in model.samplers for _, value in s.constructor.args
            if isinstance(value, ir.Reference)}
    for f in model.functions:
        if f.is_noise and f.name not in used:
            warn(f"The noise schedule '{f.name}' is not used by any sampler.", f.span,
                 f"Use it as sampler sde = euler_maruyama(eps = {f.name}).")
    return out





def check_samplers(model: ir.Model) -> list[Diagnostic]:
    """Each sampler fits the model: ODE and SDE samplers need trained networks, MCMC and SMC
    samplers a model without them (they sample the target's energy); a cycle and an SMC
    sampler use MCMC kernels; acceptance targets and ESS fractions lie in (0, 1)."""
    out: list[Diagnostic] = []
    by_name = {s.name: s for s in model.samplers}
    for sampler in model.samplers:
        signature = kinds.sampler(sampler.constructor.name)
        span = sampler.constructor.span or sampler.span
        if signature is None:
            if model.sampling:  # (models with networks report it when they are derived)
                out.append(Diagnostic(
                    "Semantic", f"The sampler kind '{sampler.constructor.name}' has no signature "
                    "in this compiler (compiler/kinds.py), so its needs are unknown.", span))
            continue
        family = signature.family
        if model.sampling and family in ("ode", "sde"):
            out.append(Diagnostic(
                "Semantic", f"The sampler '{sampler.name}' ({sampler.constructor.name}) "
                "integrates the model's learned velocity, but this model has no networks.",
                span, "Sample the target's energy with MCMC or SMC: sampler s = mala() or "
                "smc(kernel = ...)."))
        if not model.sampling and family in ("mcmc", "smc"):
            out.append(Diagnostic(
                "Semantic", f"The sampler '{sampler.name}' ({sampler.constructor.name}) samples "
                "the target's energy; a model that trains networks samples with ODE or SDE "
                "samplers.", span, "Put MCMC and SMC samplers in a model without networks."))
        for param, value in sampler.constructor.args:
            if isinstance(value, ir.Reference) and value.kind == "sampler":
                used = by_name.get(value.name)
                used_kind = kinds.sampler(used.constructor.name) if used is not None else None
                if used_kind is not None and used_kind.family != "mcmc":
                    out.append(Diagnostic(
                        "Semantic", f"'{value.name}' is not an MCMC kernel; {param} takes "
                        "one: rwm, mala, hmc or a cycle of them.", span))
            if param in ("accept", "ess") and not 0 < value < 1:
                out.append(Diagnostic("Semantic", f"The argument '{param}' of "
                                      f"{sampler.constructor.name} is a fraction in (0, 1); "
                                      f"it is {value:g}.", span))
    return out
