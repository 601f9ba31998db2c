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
        if ctor.name == "box":
            low, high = ctor.arg("low"), ctor.arg("high")
            for arg, values in (("low", low), ("high", high)):
                if len(values) not in (1, model.dim):
                    error(f"box's {arg} has {len(values)} entries, but the model has dimension "
                          f"{model.dim}.", ctor.span, f"Give one number, or a list of {model.dim}.")
            if len(low) in (1, model.dim) and len(high) in (1, model.dim) and any(
                    lo >= hi for lo, hi in zip(low * model.dim if len(low) == 1 else low,
                                               high * model.dim if len(high) == 1 else high)):
                error("box needs low < high in every coordinate.", ctor.span)
        if ctor.name == "energy" and density.role == "base":
            error("The base must be a density we can sample: energy() gives no samples.",
                  ctor.span, "Use base x0 ~ normal(0, 1).")
    if model.target.constructor.name == "energy" and not model.sampling and not model.flow:
        error("A target given only by its energy has no samples to regress on, so this "
              "objective cannot be trained; training networks on an energy is not in this "
              "version of the language.", model.target.span,
              "Give samples with data(\"file.npy\") or a stdlib distribution, or remove the "
              "networks and the objective and sample the energy with MCMC or SMC "
              "(sampler s = mala()).")

    out.extend(check_labels(model))
    out.extend(check_samplers(model))
    if model.flow:
        out.extend(check_flows(model))
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
        if net.constructor.name in ("convnet", "unet") and len(model.shape) != 3:
            error(f"{net.constructor.name} works on image-shaped data [channels, height, width]; "
                  f"this model's shape is {list(model.shape)}.", net.constructor.span,
                  "Use mlp or resmlp, or declare dim [C, H, W].")
        elif net.constructor.name == "unet":
            _check_unet(net, tuple(model.shape), error)
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
    out.extend(check_flow_map(model))
    return out


def labelled(model: ir.Model) -> bool:
    """Whether the target's data carry class labels or condition vectors that condition the
    networks."""
    ctor = model.target.constructor
    return ctor.name == "data" and bool(ctor.arg("labels") or ctor.arg("condition"))


def check_labels(model: ir.Model) -> list[Diagnostic]:
    """Class labels condition the field networks of a model trained by regression along its
    interpolant (docs/conditional.md); ``label ~ dropped(p)`` needs them."""
    out = []
    objective = model.objective
    law = objective.labels if objective is not None else None
    if law is not None and not labelled(model):
        out.append(Diagnostic(
            "Semantic", "label ~ dropped(...) drops the target's class labels (or condition "
            "vectors), and the target has none.", law.span or objective.span,
            'Read labels with the target: data("file.npz", key = "x", labels = "y"), or remove '
            "label ~ ...."))
    if labelled(model) and (model.flow or model.sampling or (
            objective is not None and objective.flow_map is not None)):
        what = "normalizing flows" if model.flow else "a flow map" if not model.sampling \
            else "a model without networks"
        out.append(Diagnostic(
            "Semantic", f"Class labels condition networks trained along the interpolant; "
            f"{what} cannot take them in this version of the language.",
            model.target.span, "Remove labels = ... from the target's data(...)."))
    if model.target.condition_size and model.coupling.name in ("minibatch_ot", "sinkhorn"):
        out.append(Diagnostic(
            "Semantic", f"coupling {model.coupling.name} pairs within classes, and condition "
            "vectors have none: pairing by x alone would ignore the conditions.",
            model.coupling.span or model.target.span, "Use coupling independent with "
            "condition = ..., or class labels (labels = ...) with an OT coupling."))
    return out


def check_flow_map(model: ir.Model) -> list[Diagnostic]:
    """A flow map's teacher is trained on a regression target in the same run, and a fewstep
    sampler has a flow map to step."""
    out = []
    term = model.objective.flow_map
    if term is not None:
        teacher = dict(term.objective.args).get("teacher")
        anchor = dict(term.objective.args).get("anchor", 0.0)
        if anchor > 1:
            out.append(Diagnostic(
                "Semantic", f"anchor is the fraction of each batch anchored to the teacher's "
                f"ODE; it is at most 1, and is {anchor:g}.", term.span,
                "Use e.g. anchor = 0.25, or 0 for none."))
        if isinstance(teacher, ir.Reference):
            trained = {t.network for t in model.objective.regressions}
            if teacher.name not in trained:
                out.append(Diagnostic(
                    "Semantic", f"The teacher '{teacher.name}' of the flow map '{term.network}' "
                    "is not trained on a regression target, so it knows no velocity.",
                    term.span, f"Add {teacher.name} ~ velocity to the objective, or learn the "
                    f"map without a teacher: {term.network} ~ self_distillation."))
    for sampler in model.samplers:
        if _family(sampler) == "map" and term is None:
            out.append(Diagnostic(
                "Semantic", f"The sampler '{sampler.name}' ({sampler.constructor.name}) steps a "
                "flow map, but the objective trains none.", sampler.span,
                "Train a network as a flow map, e.g. X ~ lagrangian(teacher = b) or "
                "X ~ self_distillation, with network X = mlp() declared."))
    return out





def check_samplers(model: ir.Model) -> list[Diagnostic]:
    """Each sampler fits the model: ODE and SDE samplers need trained velocity fields, MCMC and
    SMC samplers a target with an energy (in a model with an interpolant they run after
    training, with its ODE samplers as their flows); a cycle and an SMC
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
        if model.flow and family in ("ode", "sde"):
            out.append(Diagnostic(
                "Semantic", f"The sampler '{sampler.name}' ({sampler.constructor.name}) "
                "integrates a learned velocity, but this model's networks are normalizing "
                "flows.", span, "Draw from a flow with importance(flow = ...), flow_mh or "
                "flow_mcmc, or sample the energy with MCMC or SMC."))
        elif model.sampling and family in ("ode", "sde"):
            out.append(Diagnostic(
                "Semantic", f"The sampler '{sampler.name}' ({sampler.constructor.name}) "
                "integrates the model's learned velocity, but this model has no networks.",
                span, "Sample the target's energy with MCMC or SMC: sampler s = mala() or "
                "smc(kernel = ...)."))
        if not model.sampling and family in kinds.ENERGY_FAMILIES:
            out.extend(_energy_sampler_after_transport(model, sampler, span))
        for param, value in sampler.constructor.args:
            if isinstance(value, ir.Reference) and param == "flow" and value.kind == "sampler":
                out.extend(_ode_as_flow(model, sampler, by_name.get(value.name), span))
            elif isinstance(value, ir.Reference) and value.kind == "sampler":
                used = by_name.get(value.name)
                used_kind = kinds.sampler(used.constructor.name) if used is not None else None
                if used_kind is not None and used_kind.family != "mcmc":
                    out.append(Diagnostic(
                        "Semantic", f"'{value.name}' is not an MCMC kernel; {param} takes "
                        "one: rwm, mala, hmc or a cycle of them.", span))
            if isinstance(value, ir.Reference) and value.kind == "network":
                net = next((n for n in model.networks if n.name == value.name), None)
                if net is not None and net.constructor.name not in kinds.FLOWS:
                    odes = [s.name for s in model.samplers if _family(s) == "ode"]
                    out.append(Diagnostic(
                        "Semantic", f"'{value.name}' is a {net.constructor.name}, not a "
                        f"normalizing flow; {param} takes one: "
                        + ", ".join(kinds.FLOWS[:-1]) + f" or {kinds.FLOWS[-1]}.", span,
                        None if model.sampling else "In a model with an interpolant, the flow "
                        "is the probability-flow ODE of an ODE sampler of the model: "
                        f"{param} = {odes[0] if odes else 'ode'}."))
            if param in ("accept", "ess") and not 0 < value < 1:
                out.append(Diagnostic("Semantic", f"The argument '{param}' of "
                                      f"{sampler.constructor.name} is a fraction in (0, 1); "
                                      f"it is {value:g}.", span))
    return out


def _family(sampler: ir.Sampler) -> str | None:
    signature = kinds.sampler(sampler.constructor.name)
    return signature.family if signature is not None else None


def _energy_sampler_after_transport(model: ir.Model, sampler: ir.Sampler, span) -> list:
    """A sampler of the target's energy in a model with an interpolant: it runs after training,
    so the target needs an energy (a data file has none), and it cannot be flow_mcmc, which
    trains a normalizing flow on its chains."""
    out = []
    what = f"The sampler '{sampler.name}' ({sampler.constructor.name})"
    target = model.target.constructor.name
    if target == "data":
        out.append(Diagnostic(
            "Semantic", f"{what} samples the target's energy, but the target is a data file, "
            "known by its samples only.", span, "Sample with the model's ODE or SDE samplers, "
            "or use a target with an energy (stdlib.targets, normal)."))
    if sampler.constructor.name == "flow_mcmc":
        out.append(Diagnostic(
            "Semantic", f"{what} trains a normalizing flow on its chains; this model's velocity "
            "is trained along its interpolant.", span, "Use a cycle of a local kernel and "
            "flow_mh(flow = ode), with ode an ODE sampler of the model."))
    return out


def _ode_as_flow(model: ir.Model, sampler: ir.Sampler, ode: ir.Sampler | None, span) -> list:
    """``flow = ode``: a fixed-step ODE sampler of a model with an interpolant and a normal base
    (the flow's latent is the base's standardised draw, and its density is the base's)."""
    if ode is None:  # pragma: no cover - references are resolved before this
        return []
    signature = kinds.sampler(ode.constructor.name)
    what = f"'{ode.name}' ({ode.constructor.name})"
    if model.sampling or signature is None or signature.family != "ode":
        return [Diagnostic(
            "Semantic", f"{what} is not an ODE sampler of a learned velocity; the flow of "
            f"'{sampler.name}' is a normalizing flow or the probability-flow ODE of an ODE "
            "sampler (euler, midpoint, heun, rk4).", span)]
    if signature.adaptive:
        return [Diagnostic(
            "Semantic", f"{what} chooses its steps for the whole batch, so as a flow a point's "
            "density would depend on the points solved with it.", span,
            f"Declare a fixed-step sampler for the flow: sampler {ode.name}_flow = "
            "rk4(steps = 16).")]
    if model.base.constructor.name != "normal":
        return [Diagnostic(
            "Semantic", f"The flow {what} starts from the base, whose density it needs; the "
            f"base is {model.base.constructor.name}(...).", span,
            "Use base x0 ~ normal(...).")]
    return []


def check_flows(model: ir.Model) -> list[Diagnostic]:
    """A model of normalizing flows: each flow has one objective that its target allows (samples
    for likelihood and flow_matching, an energy for the KL objectives, not known to lack one),
    flow_matching trains a flow with a velocity (cnf), every flow is trained, a flow trained by
    forward_kl is named by exactly one flow_mcmc sampler, whose chains it learns from, and
    Hutchinson's divergence is asked for only where it is used (likelihood)."""
    out: list[Diagnostic] = []
    trained = {term.network: term for term in model.objective.terms}
    target = model.target.constructor.name
    if len(model.networks) > 1:
        out.append(Diagnostic(
            "Semantic", "A model of normalizing flows has one flow in this version; this one "
            f"declares {len(model.networks)}.", model.networks[1].span,
            "Keep one flow per model."))
    for net in model.networks:
        if model.dim < 2 and dict(net.constructor.args).get("symmetry") == "sign":
            out.append(Diagnostic(
                "Semantic", f"The flow '{net.name}' has symmetry = sign, which takes the sign "
                "of each draw from its latent's first two coordinates; this sample has one.",
                net.span, "Remove symmetry = sign, or use a sample of two or more coordinates."))
        term = trained.get(net.name)
        if term is None:
            out.append(Diagnostic("Semantic", f"The flow '{net.name}' has no objective.",
                                  net.span, f"Add {net.name} ~ likelihood (samples of the "
                                  f"target) or {net.name} ~ reverse_kl (its energy) to the "
                                  "objective."))
            continue
        if kinds.FLOW_OBJECTIVES.get(term.target) == "samples" and target == "energy":
            out.append(Diagnostic(
                "Semantic", f"'{net.name} ~ {term.target}' fits the target's samples, but the "
                "target is known only through its energy.", term.span,
                f"Use {net.name} ~ reverse_kl, or {net.name} ~ forward_kl with a flow_mcmc "
                "sampler."))
        if dict(net.constructor.args).get("divergence") == "hutchinson" and \
                term.target != "likelihood":
            out.append(Diagnostic(
                "Semantic", f"divergence = hutchinson estimates the divergence while training "
                f"by likelihood; '{net.name} ~ {term.target}' uses the exact one.", net.span,
                "Remove divergence = hutchinson.", severity="warning"))
        if term.target == "flow_matching" and net.constructor.name not in kinds.VELOCITY_FLOWS:
            out.append(Diagnostic(
                "Semantic", f"'{net.name} ~ flow_matching' regresses a flow's velocity; "
                f"'{net.name}' is a {net.constructor.name} flow, which has none.", term.span,
                f"Declare {net.name} = cnf(...), or train it by {net.name} ~ likelihood."))
        if term.target in ("reverse_kl", "forward_kl") and target in ("data", "normal"):
            out.append(Diagnostic(
                "Semantic", f"'{net.name} ~ {term.target}' needs the target's energy; "
                f"{target}(...) gives samples.", term.span,
                f"Use {net.name} ~ likelihood, or target x1 ~ energy(U)."))
        users = [s for s in model.samplers if s.constructor.name == "flow_mcmc"
                 and any(isinstance(v, ir.Reference) and v.name == net.name
                         for _, v in s.constructor.args)]
        if term.target == "forward_kl" and len(users) != 1:
            out.append(Diagnostic(
                "Semantic", f"'{net.name} ~ forward_kl' learns from the chains of the flow_mcmc "
                f"sampler that names it; {len(users)} do.", term.span,
                f"Declare one: sampler fmc = flow_mcmc(flow = {net.name}, kernel = local)."))
        if term.target != "forward_kl" and users:
            out.append(Diagnostic(
                "Semantic", f"The flow_mcmc sampler '{users[0].name}' trains '{net.name}' on "
                f"its chains, but '{net.name}' is trained by {term.target}.", users[0].span,
                f"Write {net.name} ~ forward_kl in the objective, or use flow_mh in a cycle."))
    return out


def _check_unet(net, shape: tuple[int, ...], error) -> None:
    """A U-Net's levels must halve the image exactly, its group norms divide its channels, and
    its dropout rate lie below 1."""
    arg, span = net.constructor.arg, net.constructor.span
    multipliers, groups = arg("multipliers"), arg("groups")
    if not multipliers:
        error("unet needs at least one level: multipliers is empty.", span,
              "Give e.g. multipliers = [1, 2].")
        return
    factor = 2 ** (len(multipliers) - 1)
    if shape[1] % factor or shape[2] % factor:
        error(f"unet with {len(multipliers)} levels halves the image {len(multipliers) - 1} "
              f"times, so its height and width must divide by {factor}; the images are "
              f"{shape[1]} x {shape[2]}.", span,
              "Use fewer multipliers, or pad the images.")
    channels = sorted({arg("channels")} | {arg("channels") * m for m in multipliers})
    bad = [c for c in channels if c % groups]
    if bad:
        error(f"unet's group norms split the channels into {groups} groups, but {bad[0]} "
              f"channels do not divide by {groups}.", span,
              "Make channels a multiple of groups, or change groups.")
    sizes = {shape[1] // 2 ** level for level in range(len(multipliers))}
    unused = sorted(set(arg("attention")) - sizes)
    if unused:
        error(f"unet's attention lists the resolution {unused[0]}, which no level has (its "
              f"levels are {', '.join(str(s) for s in sorted(sizes, reverse=True))}).", span,
              "List resolutions the levels have, or attention = [] for none.")
    if arg("dropout") >= 1:
        error(f"unet's dropout is the fraction of activations dropped in training; it must be "
              f"below 1, and is {arg('dropout'):g}.", span, "Use e.g. dropout = 0.1, or 0 for "
              "none.")
