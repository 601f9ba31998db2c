"""Checks on an assembled model that look across declarations: is it trainable as written, do
shapes agree, is anything declared but unused. Returns diagnostics; changes nothing.

Boundary conditions and singular points of the interpolant are derived symbolically and checked
by the derivation passes, not here.
"""

from __future__ import annotations


import sympy

from ..errors import Diagnostic
from . import ir
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
    if model.target.constructor.name == "energy":
        error("A target given only by its energy has no samples to regress on, so this "
              "objective cannot be trained; energy-based training objectives are not in "
              "language version 0.", model.target.span,
              "Give samples with data(\"file.npy\") or a stdlib distribution.")

    # energies index the flattened sample
    for energy in model.energies:
        for atom in energy.expr.atoms(sympy.Indexed):
            index = int(atom.indices[0])
            if index >= model.dim:
                error(f"x[{index}] is out of range in energy '{energy.name}': x has {model.dim} "
                      f"components (0 to {model.dim - 1}).", energy.span)

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



