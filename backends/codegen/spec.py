"""Lowering the IR to what the runtime takes: the typed spec (``runtime/spec.py``), written
into the emitted module as a literal, and the maths (interpolant, losses, fields, drifts, eps)
as sympy expressions in the symbols t, x0, x1, z, x and ``out_<network>``, so that both
backends print the same expressions.
"""

from __future__ import annotations

import sympy

from ...compiler import ir, kinds
from ...compiler.derive import noise_schedule, output_symbol
from ..runtime.spec import Spec
from .codegen import identifier


def output_keys(model: ir.Model) -> dict[str, str]:
    """Each network's key in the emitted functions' ``out`` mapping: its name, or grad_NAME for
    a potential network (whose gradient is the field), in declaration order."""
    terms = model.objective.terms if model.objective is not None else ()
    targets = {term.network: term.target for term in terms}
    return {n.name: output_symbol(n.name, targets.get(n.name, "velocity")).name
            for n in model.networks}


def spec(model: ir.Model) -> Spec:
    d = model.derivation
    terms = model.objective.terms if model.objective is not None else ()
    targets = {term.network: term.target for term in terms}
    keys = output_keys(model)
    networks = []
    flow_map = model.objective.flow_map if model.objective is not None else None
    target = model.target.constructor
    classes = int(target.arg("classes")) if target.name == "data" and target.arg("labels") \
        else 0
    conditions = model.target.condition_size
    for n in model.networks:
        target = targets.get(n.name)
        is_map = flow_map is not None and flow_map.network == n.name
        networks.append({"name": identifier(n.name), "kind": n.constructor.name,
                         # a flow map takes two times (runtime/networks.py, ``times``); a
                         # conditioned network, the labels' classes (``classes``)
                         "args": dict(n.constructor.to_json()["args"]) | ({"times": 2}
                                                                          if is_map else {})
                         | ({"classes": classes} if classes else {})
                         | ({"conditions": conditions} if conditions else {}),
                         "target": target,
                         "output": "flow" if n.constructor.name in kinds.FLOWS else
                         "map" if is_map else
                         "scalar" if target == "potential" else "vector",
                         "key": keys[n.name]})
    samplers = []
    for s in model.samplers:
        entry = {"name": s.name, "method": s.constructor.name,
                 "args": {k: v for k, v in s.constructor.to_json()["args"].items() if k != "eps"},
                 "kind": kinds.sampler(s.constructor.name).family}
        samplers.append(entry)
    samplers.sort(key=lambda e: _position(model, e["name"]))
    fields = [] if model.sampling else [f.name for f in d.fields if f.expr is not None]
    return Spec.from_json({
        "model": model.name,
        "shape": list(model.shape),
        "dim": model.dim,
        "latent": False if model.sampling else model.interpolant.uses_latent,
        "base": model.base.constructor.to_json(),
        "target": model.target.constructor.to_json(),
        "coupling": model.coupling.to_json(),
        "time_law": (UNIFORM if model.sampling else d.time_law).to_json(),
        "networks": networks,
        "fields": fields,
        "samplers": samplers,
        "train": {k: (v.to_json() if isinstance(v, ir.Constructor) else v)
                  for k, v in model.train.settings},
        "objective": _objective(model),
        "objective_args": _objective_args(model),
        "label_drop": model.objective.labels.arg("p")
        if model.objective is not None and model.objective.labels is not None else 0.0,
        "energies": [e.name for e in model.energies],
        "constants": {c.name: c.to_json() for c in model.constants},
    })


def _objective(model: ir.Model) -> str:
    """The kind of the training objective: ``regression`` along the interpolant, a flow
    objective (one for all the model's flows), or ``none`` (a model without networks)."""
    if model.flow:
        return model.objective.terms[0].target
    if model.sampling:
        return "none"
    return "flow_map" if model.objective.flow_map is not None else "regression"


def _objective_args(model: ir.Model) -> dict:
    if model.flow:
        return dict(model.objective.terms[0].objective.to_json()["args"])
    term = None if model.sampling else model.objective.flow_map
    if term is None:
        return {}
    args = dict(term.objective.args)
    teacher = args.get("teacher")
    out = {"network": identifier(term.network), "form": term.objective.name,
           "teacher": identifier(teacher.name) if isinstance(teacher, ir.Reference) else None,
           "teacher_run": args.get("run") or None}
    if "anchor" in args:  # (self_distillation has none)
        out.update(anchor=float(args["anchor"]), anchor_steps=int(args["anchor_steps"]))
    return out


# the time law of a model without networks (which trains nothing): the default, for the record
UNIFORM = ir.Constructor("timelaw", "uniform", (("low", 0.0), ("high", 1.0)))


def _position(model: ir.Model, sampler: str):
    """Where a sampler is declared: samplers keep the order of the file."""
    span = next(s for s in model.samplers if s.name == sampler).span
    return (span.line, span.column) if span is not None else (0, 0)


def _rename(expr: sympy.Expr, model: ir.Model) -> sympy.Expr:
    mapping = {}
    for s in expr.free_symbols:
        if s.name in (ir.t.name, ir.x0.name, ir.x1.name, ir.z.name, ir.x.name):
            continue
        mapping[s] = sympy.Symbol("out_" + identifier(s.name), real=True)
    return expr.xreplace(mapping)


def maths(model: ir.Model) -> dict[str, dict[str, sympy.Expr]]:
    """Groups of expressions, one emitted function per group:
    ``interpolant`` (x_t), ``losses`` (per network), ``fields``, ``drifts`` and ``eps`` (per SDE
    sampler), ``given_data`` (the velocity and the score in x and the data prediction d)."""
    d = model.derivation
    out = {"interpolant": {"x_t": d.interpolant},
           "losses": {network: _rename(loss, model) for network, loss in d.losses},
           "fields": {f.name: _rename(f.expr, model) for f in d.fields if f.expr is not None},
           "drifts": {}, "eps": {}, "given_data": dict(d.given_data)}
    for name, _direction, drift in d.drifts:
        out["drifts"][name] = _rename(drift, model)
        sampler = next(s for s in model.samplers if s.name == name)
        out["eps"][name] = noise_schedule(model, sampler.constructor.arg("eps"))
    return out
