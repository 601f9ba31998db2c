"""``tfmc derive`` output: the derived IR as text, LaTeX or JSON (docs/derive.md explains it).

JSON keys are fixed and sorted; expressions are given twice, as sympy's ``str`` (parseable by
sympy, for tools) and as LaTeX.
"""

from __future__ import annotations

import json

import sympy

from ..errors import Diagnostic, render
from . import ir
from .derive import BASE_MEAN, BASE_SCALE

COEFFICIENTS = ("alpha", "beta", "gamma", "c")


def base_symbols(expr: sympy.Expr) -> tuple[sympy.Expr, tuple[str, str]]:
    """``expr`` with the normal base's mean and scale (derive.BASE_MEAN, BASE_SCALE) under the
    first pair of names that no other symbol of it has (m, s; else m0, s0; else m_base, s_base:
    a network called s must not read as the scale), and those names."""
    others = {str(v) for v in expr.free_symbols if v not in (BASE_MEAN, BASE_SCALE)}
    for m, s in (("m", "s"), ("m0", "s0"), ("m_base", "s_base")):
        if m not in others and s not in others:
            break
    if (m, s) == ("m", "s"):
        return expr, (m, s)
    return expr.xreplace({BASE_MEAN: sympy.Symbol(m, real=True),
                          BASE_SCALE: sympy.Symbol(s, positive=True)}), (m, s)


def uses_base(expr: sympy.Expr) -> bool:
    return bool({BASE_MEAN, BASE_SCALE} & expr.free_symbols)


def _coefficients(d: ir.Derivation):
    if d.form is None:
        return []
    out = []
    for name, value in zip(COEFFICIENTS, (d.form.x0, d.form.x1, d.form.z, d.form.const)):
        out.append((name, value, _simple(value.diff(ir.t))))
    return out


def _simple(expr):
    from .derive import tidy
    return tidy(expr)


def _functions(model: ir.Model, d: ir.Derivation):
    by_name = {f.name: f for f in model.functions}
    return [(name, by_name[name], rate) for name, rate in d.derivatives]


def energy_gradients(model: ir.Model):
    """(energy, its gradient's shared part, the extra terms of indexed components) of each
    energy, the gradient None where sympy cannot write it (constants, matrix products, shifts,
    a logsumexp over a vector: the backends' autodiff differentiates those)."""
    from .arrays import symbolic_gradient

    out = []
    for e in model.energies:
        if e.expr is None:
            out.append((e, None, ()))
        else:
            shared, extra = symbolic_gradient(e.expr)
            out.append((e, shared, extra))
    return out


def _energy_text(model: ir.Model) -> list[str]:
    if not model.energies:
        return []
    out = ["", "energies (in the gradients x is one component of the sample, VSum the sum over "
           "them)"]
    for e, shared, extra in energy_gradients(model):
        out.append(f"  {e.name}({e.arg}) = {e.text}")
        if shared is None:
            out.append(f"  {'':<{len(e.name)}}  gradient: by the backend's autodiff (no "
                       "elementwise form)")
            continue
        out.append(f"  grad {e.name}(x)_k = {shared}")
        for k, term in extra:
            out.append(f"  {'':<{len(e.name) + 5}}  + ({term}) at k = {k}")
    return out


def _energy_json(model: ir.Model) -> dict:
    return {e.name: {"text": e.text, "expr": _expr(e.expr) if e.expr is not None else None,
                     "gradient": None if shared is None else {
                         "shared": _expr(shared),
                         "indexed": {str(k): _expr(term) for k, term in extra}}}
            for e, shared, extra in energy_gradients(model)}


def _sampling(model: ir.Model, findings, fmt: str) -> str:
    """The report of a model without networks: its energies and their gradients."""
    if fmt == "json":
        return json.dumps({"model": model.name, "file": model.file,
                           "energies": _energy_json(model),
                           "findings": [f.to_json() for f in findings]}, indent=2, sort_keys=True)
    if fmt == "latex":
        rows = []
        for e, shared, extra in energy_gradients(model):
            if e.expr is not None:
                rows.append(rf"{_tex_name(e.name)}(x) &= {sympy.latex(e.expr)}")
            if shared is not None:
                rows.append(rf"\partial_{{x_k}} {_tex_name(e.name)} &= {sympy.latex(shared)}")
        body = " \\\\\n".join(rows)
        return f"% tfmc derive {model.file}\n\\begin{{align*}}\n{body}\n\\end{{align*}}"
    out = [f"model {model.name} ({model.file}): no networks; its samplers run on the target's "
           "energy"] + _energy_text(model) + ["", "findings"]
    out += ["  none"] if not findings else \
        ["  " + render(f, {}).replace("\n", "\n  ") for f in findings]
    return "\n".join(out)


def report(model: ir.Model, findings: list[Diagnostic], fmt: str, sources) -> str:
    d = model.derivation
    if model.sampling:
        return _sampling(model, findings, fmt)
    if fmt == "json":
        return json.dumps(_json(model, d, findings), indent=2, sort_keys=True)
    if fmt == "latex":
        return _latex(model, d, findings)
    return _text(model, d, findings, sources)


def _expr(e) -> dict:
    return {"str": str(e), "latex": sympy.latex(e)}


def _json(model, d, findings) -> dict:
    return {
        "model": model.name,
        "file": model.file,
        "interpolant": {"expr": _expr(d.interpolant), "affine": d.affine,
                        "latent": model.interpolant.uses_latent,
                        "coefficients": {n: {"value": _expr(v), "rate": _expr(r)}
                                         for n, v, r in _coefficients(d)}},
        "velocity_target": _expr(d.velocity_target),
        "derivatives": {name: {"params": list(f.params), "body": _expr(f.body),
                               "rate": _expr(rate)} for name, f, rate in _functions(model, d)},
        "objective": {"time_law": d.time_law.to_json(), "weight": _expr(d.weight),
                      "terms": [{"network": n, "target": t, "regression_target": _expr(y),
                                 "loss": _expr(loss), "weight": _expr(_weight(d, n)),
                                 "variance_factor": _expr(_variance(d, n))}
                                for (n, t, y), (_, loss) in zip(d.targets, d.losses)]},
        "fields": {f.name: ({"expr": _expr(f.expr), "generic": _expr(base_symbols(f.generic)[0])
                             if f.generic is not None else None}
                            if f.expr is not None else {"reason": f.reason})
                   for f in d.fields},
        "flow_map": _flow_map_json(d),
        "drifts": [{"sampler": s, "direction": direction, "drift": _expr(e)}
                   for s, direction, e in d.drifts],
        "given_data": {name: _expr(e) for name, e in d.given_data} or None,
        "cse": _cse(d),
        "energies": _energy_json(model),
        "findings": [f.to_json() for f in findings],
    }


def _weight(d: ir.Derivation, network: str):
    """The weight of a network's term: its own (the score's default) or the objective's."""
    return dict(d.weights).get(network, d.weight)


def _variance(d: ir.Derivation, network: str):
    return dict(d.variances).get(network)


def _cse(d: ir.Derivation) -> dict:
    """The fields and drifts after common-subexpression elimination, as a backend prints them:
    shared pieces first (``w0 = ...``), then each expression in terms of them."""
    named = [(f"field:{f.name}", f.expr) for f in d.fields if f.expr is not None]
    named += [(f"drift:{s}", e) for s, _, e in d.drifts]
    named += [(f"target:{n}", y) for n, _, y in d.targets]
    symbols = sympy.numbered_symbols("w")
    replacements, reduced = sympy.cse([e for _, e in named], symbols=symbols)
    return {"replacements": [[str(s), str(e)] for s, e in replacements],
            "exprs": {name: str(e) for (name, _), e in zip(named, reduced)}}


def _text(model, d, findings, sources) -> str:
    out = [f"model {model.name} ({model.file})", ""]
    kind = "affine" if d.affine else "not affine"
    out.append(f"interpolant ({kind}{', with latent z' if model.interpolant.uses_latent else ''})")
    out.append(f"  x_t = {d.interpolant}")
    for name, value, rate in _coefficients(d):
        out.append(f"  {name + '(t)':<9} = {value}")
        out.append(f"  {name + chr(39) + '(t)':<9} = {rate}")
    out.append(f"  velocity target d/dt x_t = {d.velocity_target}")
    functions = _functions(model, d)
    if functions:
        out += ["", "derivatives"]
        for name, f, rate in functions:
            out.append(f"  {name}'({f.params[0]}) = {rate}")
    out += ["", f"objective (t ~ {_call(d.time_law)}, weight w(t) = {d.weight})"]
    for (network, target, y), (_, loss) in zip(d.targets, d.losses):
        pad = " " * (len(network) + len(target) + 5)
        out.append(f"  {network} ~ {target}: Y = {y}")
        if dict(d.weights).get(network) is not None:
            out.append(f"{pad}w(t) = {_weight(d, network)}   (the score's standard weighting, "
                       "as no weight is written)")
        out.append(f"{pad}loss = {loss}")
        variance = _variance(d, network)
        if variance is not None:
            out.append(f"{pad}V(t) = {variance}   (variance of the weighted target)")
    out += _flow_map_text(d)
    out += ["", "fields (x is the state; network names stand for their outputs)"]
    for f in d.fields:
        if f.expr is None:
            out.append(f"  {f.name:<9} not determined: {f.reason}")
        else:
            out.append(f"  {f.name:<9} = {f.expr}")
            if f.generic is not None and f.generic != f.expr:
                generic, (m, s) = base_symbols(f.generic)
                base = (f"; {m}, {s}: the normal base's mean and scale"
                        if uses_base(f.generic) else "")
                out.append(f"  {'':<9}   {generic}   (in alpha, beta, gamma, c{base})")
    if d.drifts:
        out += ["", "SDE drifts (b + eps s forward, b - eps s backward)"]
        for sampler, direction, drift in d.drifts:
            out.append(f"  {sampler} ({direction}) = {drift}")
    if d.given_data:
        out += ["", "given the data prediction d = E[x1 | x_t = x] (the noise is Gaussian; what "
                "inpainting guides)"]
        for name, e in d.given_data:
            out.append(f"  {name:<9} = {e}")
    out += _labels_text(model)
    out += _energy_text(model)
    out += ["", "findings"]
    if not findings:
        out.append("  none")
    for f in findings:
        out.append("  " + render(f, {}).replace("\n", "\n  "))
    return "\n".join(out)


def _labels_text(model: ir.Model) -> list[str]:
    """A model conditioned on its target's labels: the networks' extra input, the training
    drop and the guided field of a sampler (docs/conditional.md)."""
    target = model.target.constructor
    if target.name != "data" or not target.arg("labels"):
        return []
    law = model.objective.labels if model.objective is not None else None
    p = law.arg("p") if law is not None else 0.0
    out = ["", f"labels ({target.arg('classes')} classes from '{target.arg('path')}'"
           f"[{target.arg('labels')}]): every network also takes the label c"]
    if p:
        out.append(f"  training: each label replaced by none with probability {p:g} "
                   "(classifier-free guidance)")
        out.append("  guided, scale w: N_w(t, x | c) = (1 + w) N(t, x | c) - w N(t, x | none) "
                   "for every network N,")
        out.append("  so every field and drift above is (1 + w) F(t, x | c) - w F(t, x | none) "
                   "(each is affine in the networks)")
    else:
        out.append("  training: no label dropped, so there is no field without a label and no "
                   "guidance (label ~ dropped(0.1) trains one)")
    return out


def _flow_map_text(d) -> list[str]:
    m = d.flow_map
    if m is None:
        return []
    by = f"teacher {m.teacher}" if m.teacher else "its own velocity v(t, t, x) as teacher"
    if m.teacher_run:
        by += f", its weights read from the run '{m.teacher_run}' and fixed"
    return ["", f"flow map {m.network} ({m.form}, {by}; s <= t both from the time law; one "
            "coordinate stands for the vector)",
            f"  X_{{s,t}}(x) = {m.map}", f"  x_s = {m.start}", f"  loss = {m.loss}"] + (
        [f"  anchor = {m.anchor_loss}  (on a fraction {m.anchor:g} of each batch; Phi the "
         f"teacher's flow, {m.anchor_steps} Heun steps)"] if m.anchor_loss is not None else [])


def _flow_map_json(d) -> dict | None:
    m = d.flow_map
    if m is None:
        return None
    return {"network": m.network, "form": m.form, "teacher": m.teacher,
            "teacher_run": m.teacher_run, "map": _expr(m.map),
            "start": _expr(m.start), "loss": _expr(m.loss), "anchor": m.anchor,
            "anchor_steps": m.anchor_steps,
            "anchor_loss": _expr(m.anchor_loss) if m.anchor_loss is not None else None}


def _latex(model, d, findings) -> str:
    L = sympy.latex
    rows = [rf"x_t &= {L(d.interpolant)}"]
    for name, value, rate in _coefficients(d):
        rows.append(rf"\{name}(t) &= {L(value)}, & \dot\{name}(t) &= {L(rate)}"
                    if name != "c" else rf"c(t) &= {L(value)}, & \dot c(t) &= {L(rate)}")
    rows.append(rf"\partial_t x_t &= {L(d.velocity_target)}")
    for name, f, rate in _functions(model, d):
        rows.append(rf"\mathrm{{{_tex_name(name)}}}'({f.params[0]}) &= {L(rate)}")
    for (network, target, y), (_, loss) in zip(d.targets, d.losses):
        rows.append(rf"Y_{{\mathrm{{{_tex_name(network)}}}}} &= {L(y)}"
                    rf"\quad(\text{{{target}}})")
        rows.append(rf"\ell_{{\mathrm{{{_tex_name(network)}}}}} &= {L(loss)}")
    if d.flow_map is not None:
        rows.append(rf"X_{{s,t}}(x) &= {L(d.flow_map.map)}")
        rows.append(rf"\ell_{{\mathrm{{{_tex_name(d.flow_map.network)}}}}} &= {L(d.flow_map.loss)}")
        if d.flow_map.anchor_loss is not None:
            name = _tex_name(d.flow_map.network)
            rows.append(rf"\ell^{{\mathrm{{anchor}}}}_{{\mathrm{{{name}}}}} &= {L(d.flow_map.anchor_loss)}")
    for f in d.fields:
        if f.expr is not None:
            rows.append(rf"\text{{{f.name}}} &= {L(f.expr)}")
    for sampler, direction, drift in d.drifts:
        rows.append(rf"\text{{drift}}_{{\mathrm{{{_tex_name(sampler)}}}}} &= {L(drift)}"
                    rf"\quad(\text{{{direction}}})")
    body = " \\\\\n".join(rows)
    notes = "\n".join(f"% {f.severity}: {f.message}" for f in findings)
    return f"% tfmc derive {model.file}\n{notes}\n\\begin{{align*}}\n{body}\n\\end{{align*}}"


def _tex_name(name: str) -> str:
    return name.replace("_", r"\_")


def _call(ctor: ir.Constructor) -> str:
    return f"{ctor.name}({', '.join(f'{v:g}' if isinstance(v, float) else str(v) for _, v in ctor.args)})"
