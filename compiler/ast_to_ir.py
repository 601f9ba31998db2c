"""Syntax tree to IR for one model: name resolution, the declaration graph, argument binding and
the semantic checks that need nothing but the model itself (docs/language.md says what each
construct means). Every problem found is collected; nothing stops at the first.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import networkx as nx
import sympy

from ..dsl import syntax as S
from ..errors import Diagnostic, Span
from ..dsl.suggest import did_you_mean
from . import graph as G
from . import arrays, ir, kinds
from ..data_files import SCAN_LIMIT, DataFileError, Scan, array_shape, sample_shape, scan
from ..data_files import conditions as read_conditions, labels as read_labels
from ..dsl.format import expr_text
from .expressions import ExprError, Scope, Template, constant, convert
from .modules import Entry, LoadedModule
from .names import name_problem
from .signatures import as_call, bind, constant_scope
from .train_settings import lower_train

OBJECTIVE_TARGETS = {
    "velocity": "the velocity d/dt x_t, whose conditional mean is the drift b",
    "noise": "the latent z (the denoiser), whose conditional mean gives the score",
    "data": "the target sample x1 (data prediction)",
    "base": "the base sample x0",
    "score": "the score -z / gamma(t)",
    "potential": "a scalar potential whose gradient is the velocity",
}
SINGLETONS = ("dim", "base", "target", "coupling", "interpolant", "objective", "train")


class _Skip(Exception):
    """A dependency already failed and was reported; say nothing more about this one."""


class Lowering:
    def __init__(self, module: LoadedModule, model: S.ModelDecl, diagnostics: list[Diagnostic]):
        self.module = module
        self.model = model
        self.diags = diagnostics
        self.local: dict[str, S.FunctionDecl | S.EnergyDecl | S.ConstantDecl | S.NetworkDecl
                         | S.SamplerDecl] = {}
        self.single: dict[str, S.Statement] = {}
        self.converted: dict[str, object] = {}  # graph key -> IR (or None when it failed)
        self.entries: dict[str, Entry] = {}
        self.graph = nx.DiGraph()
        self._shape_hint: tuple[int, ...] | None = None
        self._tainted = False
        self._scans: dict[str, tuple[str, Scan]] = {}  # role -> (file, its values' scan)

    # -- diagnostics --------------------------------------------------------------------------

    def error(self, message, span, suggestion=None, notes=()):
        self.diags.append(Diagnostic("Semantic", message, span, suggestion, notes=notes))

    def warn(self, message, span, suggestion=None):
        self.diags.append(Diagnostic("Semantic", message, span, suggestion, severity="warning"))

    def report(self, err: ExprError):
        self.diags.append(err.diagnostic)

    # -- entry point --------------------------------------------------------------------------

    def run(self) -> ir.Model | None:
        """Lower the model; with no model (a library file), check every declaration."""
        n_errors = sum(d.severity == "error" for d in self.diags)
        if self.model is None:
            self._build_graph()
            for key in G.evaluation_order(self.graph):
                self.converted[key] = self._convert(key)
            return None
        self._collect()
        if "dim" in self.single:
            try:
                self._shape_hint = _shape(self.single["dim"].value)
            except ExprError:
                pass  # reported when dim itself is converted
        else:
            self._shape_hint = self._primitive_shape()
        self._build_graph()
        for key in G.evaluation_order(self.graph):
            self.converted[key] = self._convert(key)
        model = self._assemble()
        if sum(d.severity == "error" for d in self.diags) > n_errors:
            return None
        return model

    # -- 1. declarations ----------------------------------------------------------------------

    def _collect(self):
        for st in self.model.body:
            if isinstance(st, S.InterpolantDecl):
                self._single("interpolant", st)
                if st.params:
                    self.error("The model's interpolant takes no parameters.", st.name_span,
                               "Declare a named interpolant outside the model, then use it here "
                               "with arguments.")
            elif isinstance(st, (S.FunctionDecl, S.EnergyDecl, S.ConstantDecl, S.NetworkDecl,
                                 S.SamplerDecl)):
                if self._check_name(st.name, st.name_span):
                    if st.name in self.local:
                        self.error(f"'{st.name}' is declared twice in model {self.model.name}.",
                                   st.name_span, "Rename or remove one of them.",
                                   notes=(("first declared here", self.local[st.name].name_span),))
                    else:
                        self.local[st.name] = st
            elif isinstance(st, S.DimStmt):
                self._single("dim", st)
            elif isinstance(st, S.DensityStmt):
                self._single(st.role, st)
            elif isinstance(st, S.CouplingStmt):
                self._single("coupling", st)
            elif isinstance(st, S.ObjectiveBlock):
                self._single("objective", st)
            elif isinstance(st, S.TrainBlock):
                self._single("train", st)
            else:  # pragma: no cover - the grammar makes no other statements
                raise AssertionError(st)

    def _single(self, role: str, st):
        if role in self.single:
            self.error(f"The model has more than one {role} statement.", st.span,
                       "Keep one of them.", notes=(("the first one", self.single[role].span),))
        else:
            self.single[role] = st

    def _primitive_shape(self) -> tuple[int, ...] | None:
        """The shape a stdlib density of the base or target fixes (``many_well() dim 32``),
        known before anything is converted: energies need it."""
        for role in ("target", "base"):
            st = self.single.get(role)
            call = as_call(st.value) if st is not None else None
            entry = self.module.scope.get(call.func) if call is not None else None
            if entry is not None and isinstance(entry.decl, S.PrimitiveDecl) and \
                    entry.decl.dim is not None:
                try:
                    return _shape(entry.decl.dim)
                except ExprError:
                    return None
        return None

    def _check_name(self, name: str, span: Span) -> bool:
        problem = name_problem(name)
        if problem:
            self.error(problem[0], span, problem[1])
        return problem is None

    # -- 2. the declaration graph --------------------------------------------------------------

    def _build_graph(self):
        uses: dict[str, set[str]] = {}
        attrs: dict[str, dict] = {}
        todo: list[tuple[str, object, dict, set]] = []
        for name, st in self.local.items():
            kind = _local_kind(st)
            attrs[name] = {"kind": kind, "label": name, "span": st.name_span}
            todo.append((name, st, self.module.scope, _bound(st)))
        for role, st in self.single.items():
            attrs[role] = {"kind": role, "label": role, "span": st.span}
            todo.append((role, st, self.module.scope, _bound(st)))
        for entry in self.module.own.values():  # checked even when nothing uses them
            if not isinstance(entry.decl, S.PrimitiveDecl):
                self.entries[entry.key] = entry
                uses[entry.key] = set()
                attrs[entry.key] = {"kind": _entry_kind(entry), "label": entry.decl.name,
                                    "imported": True, "span": entry.decl.name_span}
                todo.append((entry.key, entry.decl, self.module.scope, _bound(entry.decl)))
        while todo:
            key, st, scope, bound = todo.pop()
            refs = uses.setdefault(key, set())
            local_ok = key in self.local or key in self.single
            for name in sorted(_referenced_names(st) - bound):
                if local_ok and name in self.local:
                    refs.add(name)
                elif name in scope:
                    entry = scope[name]
                    refs.add(entry.key)
                    if entry.key not in uses:
                        uses[entry.key] = set()
                        self.entries[entry.key] = entry
                        attrs[entry.key] = {"kind": _entry_kind(entry), "label": entry.decl.name,
                                            "imported": True, "span": entry.decl.name_span}
                        todo.append((entry.key, entry.decl, entry.module.scope, _bound(entry.decl)))
        self.graph = G.build(uses, attrs)
        for cycle in G.cycles(self.graph):
            names = [self.graph.nodes[k].get("label", k) for k in cycle]
            spans = [self.graph.nodes[k].get("span") for k in cycle]
            if len(cycle) == 1:
                message = f"'{names[0]}' refers to itself; recursion is not allowed."
            else:
                message = ("These declarations refer to each other in a cycle: "
                           + " -> ".join(names + [names[0]]) + ".")
            self.error(message, spans[0], "Break the cycle: declarations are evaluated in order "
                       "of use and none may depend on itself.",
                       notes=tuple((f"'{n}' is declared here", s)
                                   for n, s in zip(names[1:], spans[1:]) if s is not None))

    # -- 3. conversion, dependencies first ------------------------------------------------------

    def _scope_for(self, key: str, symbols: dict) -> Scope:
        entry = self.entries.get(key)
        module_scope = entry.module.scope if entry else self.module.scope
        use_local = entry is None

        def resolve(name):
            if use_local and name in self.local:
                st = self.local[name]
                if isinstance(st, S.FunctionDecl):
                    return self._converted_or_stand_in(name, st)
                return _local_kind(st)
            found = module_scope.get(name)
            if found is None:
                return None
            if isinstance(found.decl, S.PrimitiveDecl):
                return found.decl.kind
            return self._converted_or_stand_in(found.key, found.decl)

        def candidates():
            return list(module_scope) + (list(self.local) if use_local else [])

        return Scope(dict(symbols), resolve, candidates)

    def _converted_or_stand_in(self, key: str, decl):
        """The IR of a dependency. One that failed (and was reported) is replaced by an opaque
        stand-in so that this declaration is still checked; its own result is then dropped."""
        value = self.converted.get(key)
        if value is not None:
            return value
        if key not in self.converted:  # on a cycle, reported already
            raise _Skip
        self._tainted = True
        params = tuple(p.name for p in decl.params or ())
        defaults = tuple((p.name, sympy.Integer(0)) for p in decl.params or () if p.default)
        symbols = [sympy.Symbol(p, real=True) for p in params]
        if isinstance(decl, S.InterpolantDecl):
            symbols += [ir.t, ir.x0, ir.x1, ir.z]
            body = sympy.Function(decl.name)(*symbols)
            return Template(decl.name, params, defaults, body)
        return ir.ScalarFunction(decl.name, params, defaults, sympy.Function(decl.name)(*symbols))

    def _convert(self, key: str):
        self._tainted = False
        try:
            if key in self.entries:
                result = self._convert_entry(self.entries[key])
            elif key in self.local:
                result = self._convert_local(key, self.local[key])
            else:
                result = self._convert_single(key, self.single[key])
            return None if self._tainted else result
        except ExprError as err:
            self.report(err)
        except _Skip:
            pass
        return None

    def _convert_entry(self, entry: Entry):
        decl = entry.decl
        if isinstance(decl, S.PrimitiveDecl):
            return decl  # bound at each use
        if isinstance(decl, S.FunctionDecl):
            return self._function(entry.key, decl)
        params, defaults = self._params(entry.key, decl.params or (), allowed=())
        symbols = {p: sympy.Symbol(p, real=True) for p in params}
        symbols.update(_interpolant_symbols())
        body = convert(decl.body, self._scope_for(entry.key, symbols))
        return Template(decl.name, params, defaults, body)

    def _params(self, key, params, allowed=("t", "x")) -> tuple[tuple[str, ...], tuple]:
        """Parameter names: any declarable name; functions may also call theirs t or x.
        A named interpolant may not, since t, x0, x1 and z are bound in it already."""
        names, defaults = [], []
        for p in params:
            if p.type is not None:
                raise ExprError("Parameter types are only written in primitive declarations.",
                                p.type.span, f"Write {p.name} or {p.name} = default.")
            if p.name in names:
                raise ExprError(f"The parameter '{p.name}' appears twice.", p.span)
            if p.name.startswith("__") or name_problem(p.name) and p.name not in allowed:
                raise ExprError(f"'{p.name}' cannot name a parameter.", p.span,
                                (name_problem(p.name) or ("", None))[1])
            names.append(p.name)
            if p.default is not None:
                defaults.append((p.name, constant(p.default, self._scope_for(key, {}))))
        return tuple(names), tuple(defaults)

    def _function(self, key, decl: S.FunctionDecl) -> ir.ScalarFunction:
        params, defaults = self._params(key, decl.params)
        if decl.is_noise and (len(params) != 1 or defaults):
            raise ExprError("A noise schedule is a function of time alone, as in "
                            "noise eps(t) = 0.1 * t * (1 - t).", decl.name_span)
        symbols = {p: sympy.Symbol(p, real=True) for p in params}
        body = convert(decl.body, self._scope_for(key, symbols))
        if decl.is_noise:  # eps(t) >= 0 on [0, 1] (docs/maths.md §3.2)
            from .check_boundaries import grid_failure
            bad = grid_failure(body.xreplace({symbols[params[0]]: ir.t}), lambda v: v >= 0,
                               interior=False)
            if bad is not None:
                raise ExprError(f"The noise schedule {decl.name}({params[0]}) is negative or not "
                                f"a real number at {params[0]} = {bad:.3g}; eps(t) >= 0 is "
                                "required.", decl.body.span)
        return ir.ScalarFunction(decl.name, params, defaults, body, decl.is_noise, span=decl.span)

    def _convert_local(self, name, st):
        if isinstance(st, S.FunctionDecl):
            return self._function(name, st)
        if isinstance(st, S.EnergyDecl):
            return self._energy(name, st)
        if isinstance(st, S.ConstantDecl):
            return self._constant(name, st)
        if isinstance(st, S.NetworkDecl):
            return ir.Network(name, self._constructor(st.value, "network", name), span=st.span)
        if isinstance(st, S.SamplerDecl):
            return ir.Sampler(name, self._constructor(st.value, "sampler", name), span=st.span)
        raise AssertionError(st)  # pragma: no cover

    def _energy(self, name: str, st: S.EnergyDecl) -> ir.Energy:
        if st.arg != "x" and name_problem(st.arg):
            raise ExprError(f"'{st.arg}' cannot name the argument of an energy.", st.span,
                            "Write energy U(x) = ...")
        if self._shape_hint is None:
            raise ExprError(f"The energy '{name}' needs the shape of the sample.", st.name_span,
                            "Declare it with dim, e.g. dim 2.")
        failed = {n for n in _referenced_names(st) if isinstance(self.local.get(n), S.ConstantDecl)
                  and self.converted.get(n) is None}
        if failed:
            raise _Skip  # the constant's own error is reported; nothing more to say here
        base = self._scope_for(name, {})
        constants = {k: v.shape for k, v in self.converted.items()
                     if isinstance(v, ir.Constant)}
        scope = arrays.EnergyScope(st.arg, self._shape_hint, constants, base.resolve,
                                   base.candidates)
        tree = arrays.convert(st.body, scope)
        if tree.shape:
            raise ExprError(f"The energy '{name}' is a vector; an energy is a number.",
                            st.body.span, "Reduce it with sum, dot or norm, as in "
                            "0.5 * sum(x^2).")
        return ir.Energy(name, tree, arrays.to_sympy(tree), expr_text(st.body), st.arg,
                         span=st.span)

    def _constant(self, name: str, st: S.ConstantDecl) -> ir.Constant:
        """A number, a nested list of numbers, or load("file", key = "...")."""
        value = st.value
        if isinstance(value, S.Call) and value.func == "load":
            return self._loaded_constant(name, value, st)
        if isinstance(value, S.ListExpr):
            values, shape = _nested(value)
            return ir.Constant(name, shape, values, span=st.span)
        if isinstance(value, S.String):
            raise ExprError("A constant is a number, a list or load(\"file\").", value.span,
                            f'Write constant {name} = load("{value.value}").')
        from .signatures import real_value
        return ir.Constant(name, (), real_value(value, constant_scope(), f"The constant '{name}'"),
                           span=st.span)

    def _loaded_constant(self, name: str, call: S.Call, st) -> ir.Constant:
        from .signatures import check_path

        args = list(call.args)
        keywords = {k.name: k for k in call.keywords}
        unknown = [k for k in keywords if k not in ("path", "key")]
        if unknown or len(args) > 2:
            raise ExprError("load takes a file name and, for .npz files, a key: "
                            'load("file.npz", key = "X").', call.span)
        path_expr = args[0] if args else getattr(keywords.get("path"), "value", None)
        key_expr = args[1] if len(args) > 1 else getattr(keywords.get("key"), "value", None)
        if not isinstance(path_expr, S.String):
            raise ExprError("load needs a file name in double quotes.", call.span,
                            'For example: constant X = load("features.npy").')
        if key_expr is not None and not isinstance(key_expr, S.String):
            raise ExprError("load's key is a string in double quotes.", key_expr.span)
        path = check_path(path_expr)
        key = key_expr.value if key_expr is not None else ""
        if key and not path.lower().endswith(".npz"):
            raise ExprError("key chooses an array inside a .npz file; .npy and .csv files "
                            "hold one array.", key_expr.span, "Remove key = ...")
        folder = self.module.path.parent
        try:
            shape = array_shape(folder / path, key, path)
        except DataFileError as err:
            self.diags.append(Diagnostic("Data", str(err), call.span,
                                         f"Paths are relative to '{_show(folder)}'."))
            raise _Skip from None
        return ir.Constant(name, shape, None, path, key, span=st.span)

    def _constructor(self, expr: S.Expr, kind: str, key: str) -> ir.Constructor:
        call = as_call(expr)
        if call is None:
            raise ExprError(f"Expected a {kind}, such as {_EXAMPLE[kind]}.", expr.span)
        entry = self.module.scope.get(call.func)
        if entry is None or not isinstance(entry.decl, S.PrimitiveDecl):
            pool = [n for n, e in self.module.scope.items()
                    if isinstance(e.decl, S.PrimitiveDecl) and e.decl.kind == kind]
            what = f"'{call.func}' is not a {kind}" if entry is not None or call.func in self.local \
                else f"Unknown {kind} '{call.func}'"
            raise ExprError(f"{what}.", call.func_span,
                            did_you_mean(call.func, pool) or f"Known: {', '.join(sorted(pool))}.")
        if entry.decl.kind != kind:
            raise ExprError(f"'{call.func}' is a {entry.decl.kind}, not a {kind}.", call.func_span,
                            f"For example: {_EXAMPLE[kind]}.")
        refs = {n: "noise" for n, e in self.module.scope.items()
                if isinstance(e.decl, S.FunctionDecl) and e.decl.is_noise}
        refs |= {n: _local_kind(st) for n, st in self.local.items()}
        return bind(call, entry.decl, constant_scope(), refs)

    def _convert_single(self, role, st):
        if role == "dim":
            return _shape(st.value)
        if role in ("base", "target"):
            return self._density(st)
        if role == "coupling":
            return self._constructor(st.value, "coupling", role)
        if role == "interpolant":
            body = convert(st.body, self._scope_for(role, _interpolant_symbols()))
            return ir.Interpolant(st.name, body, span=st.span)
        if role == "objective":
            return self._objective(st)
        if role == "train":
            return lower_train(st, lambda e, k: self._constructor(e, k, role), self.diags)
        raise AssertionError(role)  # pragma: no cover

    def _density(self, st: S.DensityStmt) -> ir.Density:
        want = "x0" if st.role == "base" else "x1"
        if st.var != want:
            self.error(f"The {st.role} sample is called {want}, not '{st.var}'.", st.var_span,
                       f"Write {st.role} {want} ~ ...")
        ctor = self._constructor(st.value, "distribution", st.role)
        entry = self.module.scope[ctor.name]
        shape, size = None, 0
        if entry.decl.dim is not None:
            shape = _shape(entry.decl.dim)
        elif ctor.name == "data":
            folder = self.module.path.parent
            if ctor.arg("key") and not ctor.arg("path").lower().endswith(".npz"):
                raise ExprError("key chooses an array inside a .npz file; .npy and .csv files "
                                "hold one array.", st.value.span, "Remove key = ...")
            try:
                shape = sample_shape(folder / ctor.arg("path"), ctor.arg("key"),
                                     ctor.arg("path"))
                self._scan(st, folder, ctor)
                ctor = self._labels(st, folder, ctor)
                if ctor.arg("labels") and ctor.arg("path").lower().endswith(".csv"):
                    shape = (shape[0] - 1,)  # the label column is not part of a sample
                size = self._conditions(st, folder, ctor)
            except DataFileError as err:
                self.diags.append(Diagnostic("Data", str(err), st.value.span,
                                             f"Paths are relative to '{_show(folder)}'."))
                raise _Skip from None
        return ir.Density(st.role, ctor, shape, span=st.span, condition_size=size)

    def _labels(self, st: S.DensityStmt, folder: Path, ctor: ir.Constructor) -> ir.Constructor:
        """A data target's class labels, checked against its samples: the constructor with
        ``classes`` resolved (the file's largest label plus one where the model gives none)."""
        if not ctor.arg("labels"):
            if ctor.arg("classes"):
                raise ExprError("classes counts the classes of labels, and this data(...) "
                                "reads none.", st.value.span,
                                'Name the label array: data("...", key = "x", labels = "y").')
            return ctor
        if st.role == "base":
            raise ExprError("Labels condition the model on the target's classes; the base's "
                            "data cannot carry them.", st.value.span,
                            "Move labels = ... to the target's data(...).")
        path = ctor.arg("path")
        samples = array_shape(folder / path, ctor.arg("key"), path)[0]
        _, classes = read_labels(folder / path, ctor.arg("labels"), samples, ctor.arg("classes"),
                                 path)
        return attrs.evolve(ctor, args=tuple((k, classes if k == "classes" else v)
                                             for k, v in ctor.args))

    def _conditions(self, st: S.DensityStmt, folder: Path, ctor: ir.Constructor) -> int:
        """The size k of a data target's condition vectors, checked against its samples (0
        without ``condition``)."""
        key = ctor.arg("condition")
        if not key:
            return 0
        if st.role == "base":
            raise ExprError("Conditions condition the model on the target's samples; the base's "
                            "data cannot carry them.", st.value.span,
                            "Move condition = ... to the target's data(...).")
        if ctor.arg("labels"):
            raise ExprError("A target is conditioned on labels or on condition vectors, not "
                            "both.", st.value.span, "Keep one of labels = ... and condition = ....")
        path = ctor.arg("path")
        samples = array_shape(folder / path, ctor.arg("key"), path)[0]
        return read_conditions(folder / path, key, samples, path).shape[1]

    def _scan(self, st: S.DensityStmt, folder: Path, ctor: ir.Constructor) -> None:
        """The data file's values: non-finite samples are an error now, not after the run
        folder is made; a file too large to read here is said to be so."""
        path = ctor.arg("path")
        found = scan(folder / path, ctor.arg("key"), path)
        if found is None:
            self.diags.append(Diagnostic(
                "Data", f"'{path}' is larger than {SCAN_LIMIT // 2**20} MiB, so tfmc check does "
                "not read its values; tfmc run checks them (non-finite values) when it loads "
                "the file.", st.value.span, severity="warning"))
            return
        if found.non_finite:
            count = found.non_finite
            self.diags.append(Diagnostic(
                "Data", f"'{path}', {found.first}: non-finite values (NaN or inf); {count} "
                f"sample{'s' * (count != 1)} in all.", st.value.span,
                "Remove or repair those samples."))
        self._scans[st.role] = (path, found)

    def _scale_warning(self, base: ir.Density, target: ir.Density) -> None:
        """Data far from the scale of a normal on the other side (the base's, or 1): the
        networks and the default settings expect comparable scales."""
        for role, other in (("target", base), ("base", target)):
            if role not in self._scans or other.constructor.name != "normal":
                continue
            path, found = self._scans[role]
            scale = max(abs(v) for v in other.constructor.arg("scale"))
            spread = max(found.std, abs(found.mean))
            if scale <= 0 or spread == 0 or 1 / SCALE_RATIO <= spread / scale <= SCALE_RATIO:
                continue
            density = target if role == "target" else base
            self.warn(f"The samples in '{path}' have mean {found.mean:.3g}, standard deviation "
                      f"{found.std:.3g} and range [{found.low:.3g}, {found.high:.3g}], far from "
                      f"the scale {scale:g} of the normal {'base' if role == 'target' else 'target'}.",
                      density.constructor.span or density.span,
                      "Standardise the data (subtract the mean, divide by the standard "
                      "deviation; pixels: to [-1, 1]), or give the normal the data's scale, "
                      f"e.g. normal(0, {found.std:.2g}).")

    def _objective(self, st: S.ObjectiveBlock) -> ir.Objective:
        terms: list[ir.ObjectiveTerm] = []
        time_law = weight = labels = None
        for item in st.items:
            try:
                if isinstance(item, S.WeightDecl):
                    if weight is not None:
                        raise ExprError("The objective has two weights.", item.span)
                    if item.param != "t" and name_problem(item.param):
                        raise ExprError(f"'{item.param}' cannot name the weight's parameter.",
                                        item.span, "Write weight(t) = ...")
                    scope = self._scope_for("objective", {item.param: ir.t})
                    weight = convert(item.body, scope)
                elif item.lhs == "time":
                    if time_law is not None:
                        raise ExprError("The objective gives the time law twice.", item.span)
                    time_law = self._constructor(item.value, "timelaw", "objective")
                    _check_time_law(time_law, item.value.span)
                elif item.lhs in ("label", "condition"):
                    if labels is not None:
                        raise ExprError("The objective drops the labels twice.", item.span)
                    labels = self._constructor(item.value, "labellaw", "objective")
                    if not 0 <= labels.arg("p") < 1:
                        raise ExprError(f"A label is dropped with probability p, from 0 up to "
                                        f"(not including) 1, not {labels.arg('p')}.",
                                        item.value.span, "For example: label ~ dropped(0.1).")
                else:
                    terms.append(self._term(item, terms))
            except ExprError as err:
                self.report(err)
        if not any(isinstance(i, S.ObjectiveTerm) and i.lhs not in ("time", "label", "condition")
                   for i in st.items):
            self.error("The objective trains no network.", st.span,
                       "Add a term such as b ~ velocity, with network b = mlp() declared.")
        if time_law is None:
            time_law = ir.Constructor("timelaw", "uniform", (("low", 0.0), ("high", 1.0)))
        return ir.Objective(tuple(terms), time_law, sympy.Integer(1) if weight is None else weight,
                            span=st.span, weighted=weight is not None, labels=labels)

    def _term(self, item: S.ObjectiveTerm, seen) -> ir.ObjectiveTerm:
        st = self.local.get(item.lhs)
        if not isinstance(st, S.NetworkDecl):
            pool = [n for n, s in self.local.items() if isinstance(s, S.NetworkDecl)] + ["time"]
            what = "is not a network" if st is not None else "is not declared"
            raise ExprError(f"'{item.lhs}' {what}; only networks are trained.", item.lhs_span,
                            did_you_mean(item.lhs, pool) or
                            f"Declare it: network {item.lhs} = mlp().")
        if any(t.network == item.lhs for t in seen):
            raise ExprError(f"The network '{item.lhs}' is trained twice.", item.span,
                            "Give each network one target.")
        call = as_call(st.value)
        if call is not None and call.func in kinds.FLOWS:
            return self._flow_term(item)
        if isinstance(item.value, (S.Name, S.Call)) and \
                as_call(item.value).func in kinds.MAP_OBJECTIVES:
            return self._map_term(item, seen)
        if isinstance(item.value, (S.Name, S.Call)) and \
                (as_call(item.value).func in kinds.FLOW_OBJECTIVES):
            raise ExprError(f"'{as_call(item.value).func}' trains a normalizing flow; "
                            f"'{item.lhs}' is a {call.func if call else 'network'}.",
                            item.value.span, f"Declare {item.lhs} as a flow (network "
                            f"{item.lhs} = realnvp()), or give it a regression target "
                            "such as velocity.")
        if not isinstance(item.value, S.Name) or item.value.id not in OBJECTIVE_TARGETS:
            shown = item.value.id if isinstance(item.value, S.Name) else None
            raise ExprError(
                f"'{shown}' is not a regression target." if shown else "Expected a target name.",
                item.value.span, (did_you_mean(shown, OBJECTIVE_TARGETS) if shown else None)
                or "Targets: " + ", ".join(OBJECTIVE_TARGETS) + ".")
        return ir.ObjectiveTerm(item.lhs, item.value.id, span=item.span)

    def _map_term(self, item: S.ObjectiveTerm, seen) -> ir.ObjectiveTerm:
        """A flow map's objective (docs/fewstep.md): lagrangian(teacher = b),
        eulerian(teacher = b) or self_distillation; the last also regresses the map's velocity
        on the velocity target, so its term's target is velocity."""
        ctor = self._constructor(item.value, "objective", "objective")
        if any(t.objective is not None and t.objective.name in kinds.MAP_OBJECTIVES
               for t in seen):
            raise ExprError("The model trains a second flow map; one is allowed.", item.span,
                            "Train one network as the flow map.")
        teacher = dict(ctor.args).get("teacher")
        if isinstance(teacher, ir.Reference) and teacher.name == item.lhs:
            raise ExprError(f"'{item.lhs}' cannot be its own teacher.", item.value.span,
                            f"Write {item.lhs} ~ self_distillation to learn the map without a "
                            "teacher.")
        target = "velocity" if ctor.name == "self_distillation" else "map"
        return ir.ObjectiveTerm(item.lhs, target, span=item.span, objective=ctor)

    def _flow_term(self, item: S.ObjectiveTerm) -> ir.ObjectiveTerm:
        """A flow's objective: likelihood, reverse_kl(...), forward_kl or flow_matching."""
        call = as_call(item.value)
        if call is None or call.func not in kinds.FLOW_OBJECTIVES:
            shown = call.func if call is not None else None
            raise ExprError(
                (f"'{shown}' is not a flow objective" if shown else "Expected a flow objective")
                + f"; '{item.lhs}' is a normalizing flow.", item.value.span,
                (did_you_mean(shown, kinds.FLOW_OBJECTIVES) if shown else None)
                or "Flow objectives: " + ", ".join(kinds.FLOW_OBJECTIVES) + ".")
        ctor = self._constructor(item.value, "objective", "objective")
        return ir.ObjectiveTerm(item.lhs, ctor.name, span=item.span, objective=ctor)

    # -- 4. the model --------------------------------------------------------------------------

    def _assemble(self) -> ir.Model | None:
        got = self.converted
        name_span = self.model.name_span
        # a model with samplers and no networks, interpolant or objective samples its target's
        # energy; without samplers either, it is an unfinished generative model
        declared = [st for st in self.local.values() if isinstance(st, S.NetworkDecl)]
        sampling = not declared and \
            "interpolant" not in self.single and "objective" not in self.single and \
            any(isinstance(st, S.SamplerDecl) for st in self.local.values())
        # a model whose networks are all normalizing flows needs no interpolant
        flows = bool(declared) and "interpolant" not in self.single and all(
            as_call(st.value) is not None and as_call(st.value).func in kinds.FLOWS
            for st in declared)
        for role, example in (("base", "base x0 ~ normal(0, 1)"),
                              ("target", "target x1 ~ moons(noise = 0.1)"),
                              ("interpolant", "interpolant x_t = (1 - t) * x0 + t * x1"),
                              ("objective", "objective { b ~ velocity }")):
            if (sampling and role in ("interpolant", "objective")) or \
                    (flows and role in ("interpolant", "base")):
                continue  # a model without networks runs samplers on its target's energy
            if role not in self.single:
                self.error(f"Model {self.model.name} has no {role}.", name_span,
                           f"Add one, for example: {example}")
        shape = self._resolve_shape()
        base, target = got.get("base"), got.get("target")
        if flows and "base" not in self.single:  # a flow's own latent is N(0, I)
            base = ir.Density("base", ir.Constructor("distribution", "normal",
                                                     (("mean", (0.0,)), ("scale", (1.0,)))),
                              None, span=name_span)
        interpolant, objective = got.get("interpolant"), got.get("objective")
        coupling = got.get("coupling") if "coupling" in self.single else \
            ir.Constructor("coupling", "independent", ())
        train = got.get("train") if "train" in self.single else \
            lower_train(S.TrainBlock(()), lambda e, k: self._constructor(e, k, "train"), self.diags)
        functions = tuple(v for k, v in got.items() if k in self.local and
                          isinstance(v, ir.ScalarFunction))
        # noise schedules imported from other files, as samplers refer to them
        functions += tuple(got[key] for sampler in self.local.values()
                           if isinstance(sampler, S.SamplerDecl)
                           for key in self.graph.successors(sampler.name)
                           if key in self.entries and isinstance(got.get(key), ir.ScalarFunction))
        energies = tuple(v for v in got.values() if isinstance(v, ir.Energy))
        constants = tuple(v for k, v in got.items() if isinstance(v, ir.Constant))
        networks = tuple(v for v in got.values() if isinstance(v, ir.Network))
        samplers = tuple(v for v in got.values() if isinstance(v, ir.Sampler))
        if None in (shape, base, target, coupling, train) or \
                (not sampling and not flows and None in (interpolant, objective)) or \
                (flows and objective is None) or \
                len(functions) + len(energies) + len(constants) + len(networks) + \
                len(samplers) < len(self.local):
            return None
        order = tuple(k for k in G.evaluation_order(self.graph) if k not in self.entries)
        rank = {name: i for i, name in enumerate(order)}
        model = ir.Model(self.model.name, shape, base, target, coupling,
                         tuple(sorted(functions, key=lambda f: rank.get(f.name, -1))),
                         interpolant, energies, networks, objective, samplers, train,
                         constants=tuple(sorted(constants, key=lambda c: rank.get(c.name, -1))),
                         order=order, file=self.module.display, span=self.model.span)
        self._scale_warning(base, target)
        from .check_model import check_model
        self.diags.extend(check_model(model, self.single, self.local))
        return model

    def _resolve_shape(self):
        declared = self.converted.get("dim")
        if "dim" in self.single and declared is None:
            return None
        found = declared
        for role in ("base", "target"):
            density = self.converted.get(role)
            if density is None or density.shape is None:
                continue
            if found is None:
                found = density.shape
            elif math.prod(found) != math.prod(density.shape) or (
                    len(found) > 1 and len(density.shape) > 1 and found != density.shape):
                origin = "the dim statement" if declared is not None else "the other density"
                fix = ("Make the dim statement match the data." if declared is not None else
                       "The base's and the target's samples must have the same shape: check "
                       "the files (or the densities' dimensions).")
                self.error(f"The {role} {density.constructor.name} has samples of shape "
                           f"{list(density.shape)}, but {origin} says {list(found)}.",
                           density.span, fix)
                return None
        if found is None and all(self.converted.get(r) is not None for r in ("base", "target")
                                 if r in self.single):
            self.error(f"Model {self.model.name} does not say its dimension, and its densities "
                       "do not fix one.", self.model.name_span, "Add a statement such as dim 2.")
        return found


_EXAMPLE = {"network": "mlp(width = 256)", "sampler": "heun(steps = 20)",
            "coupling": "independent or sinkhorn(reg = 0.05)",
            "distribution": "normal(0, 1) or data(\"train.npy\")", "timelaw": "uniform(0, 1)",
            "optimizer": "adam(lr = 1e-3)", "lr_schedule": "cosine_decay(warmup = 100)",
            "labellaw": "dropped(0.1)",
            "objective": "likelihood or reverse_kl(anneal = 1000)"}


SCALE_RATIO = 5  # data spread more than this far from a normal's scale (either way): a warning


def _interpolant_symbols():
    return {"t": ir.t, "x0": ir.x0, "x1": ir.x1, "z": ir.z}


def _local_kind(st) -> str:
    if isinstance(st, S.FunctionDecl):
        return "noise" if st.is_noise else "function"
    return {S.EnergyDecl: "energy", S.ConstantDecl: "constant", S.NetworkDecl: "network",
            S.SamplerDecl: "sampler"}[type(st)]


def _entry_kind(entry: Entry) -> str:
    decl = entry.decl
    if isinstance(decl, S.PrimitiveDecl):
        return decl.kind
    if isinstance(decl, S.InterpolantDecl):
        return "interpolant"
    return "noise" if decl.is_noise else "function"


def _bound(st) -> set[str]:
    """Names an expression of ``st`` binds itself (parameters, t, x0...)."""
    if isinstance(st, S.FunctionDecl):
        return {p.name for p in st.params}
    if isinstance(st, S.InterpolantDecl):
        return {p.name for p in st.params or ()} | {"t", "x0", "x1", "z"}
    if isinstance(st, S.EnergyDecl):
        return {st.arg}
    if isinstance(st, S.PrimitiveDecl):
        return {p.name for p in st.params}
    return set()


def _referenced_names(st) -> set[str]:
    exprs = []
    if isinstance(st, (S.FunctionDecl, S.InterpolantDecl, S.EnergyDecl)):
        exprs.append(st.body)
        exprs += [p.default for p in getattr(st, "params", None) or () if p.default is not None]
    elif isinstance(st, S.PrimitiveDecl):
        return set()
    elif isinstance(st, S.ObjectiveBlock):
        for item in st.items:
            if isinstance(item, S.WeightDecl):
                exprs.append(item.body)
            elif item.lhs == "time":
                exprs.append(item.value)
    elif isinstance(st, S.TrainBlock):
        exprs += [i.value for i in st.items]
    elif hasattr(st, "value"):
        exprs.append(st.value)
    names = set()
    constructed = isinstance(st, (S.SamplerDecl, S.NetworkDecl)) and isinstance(st.value, S.Call)
    for expr in exprs:
        for node in S.walk(expr):
            if isinstance(node, S.Name):
                names.add(node.id)
            elif isinstance(node, S.Call) and not (constructed and node is expr):
                names.add(node.func)  # (a constructor names its primitive: sampler hmc = hmc())
    if isinstance(st, S.ObjectiveBlock):
        names |= {i.lhs for i in st.items if isinstance(i, S.ObjectiveTerm) and i.lhs != "time"}
    return names


MAX_CONSTANT_ELEMENTS = 100_000  # written in the file; larger arrays belong in a data file


def _nested(expr: S.ListExpr) -> tuple[tuple, tuple[int, ...]]:
    """The values and shape of a (nested) list of constant numbers, rectangular."""
    if not expr.items:
        raise ExprError("A constant list needs at least one number.", expr.span)
    if all(isinstance(item, S.ListExpr) for item in expr.items):
        rows = [_nested(item) for item in expr.items]
        shapes = {shape for _, shape in rows}
        if len(shapes) > 1:
            raise ExprError("The rows of this constant have different lengths.", expr.span,
                            "A matrix needs rows of one length.")
        shape = (len(rows),) + rows[0][1]
        if math.prod(shape) > MAX_CONSTANT_ELEMENTS:
            raise ExprError("This constant is too large to write in the file.", expr.span,
                            'Save it with numpy.save and use load("file.npy").')
        return tuple(values for values, _ in rows), shape
    if len(expr.items) > MAX_CONSTANT_ELEMENTS:
        raise ExprError("This constant is too large to write in the file.", expr.span,
                        'Save it with numpy.save and use load("file.npy").')
    values = []
    for item in expr.items:
        if isinstance(item, (S.ListExpr, S.String)):
            raise ExprError("Mix no lists or strings into a list of numbers.", item.span)
        from .signatures import real_value
        values.append(real_value(item, constant_scope(), "An entry of a constant"))
    return tuple(values), (len(values),)


def _shape(expr: S.Expr) -> tuple[int, ...]:
    items = expr.items if isinstance(expr, S.ListExpr) else (expr,)
    if not items:
        raise ExprError("A shape needs at least one size.", expr.span)
    sizes = []
    for item in items:
        value = None if isinstance(item, (S.String, S.ListExpr)) else \
            constant(item, constant_scope())
        if value is None or not (value.is_Integer and 0 < value < 2**31):
            raise ExprError("A dimension is a positive whole number, or a list of them for a "
                            "tensor shape, as in dim 2 or dim [1, 8, 8].", item.span)
        sizes.append(int(value))
    return tuple(sizes)


def _check_time_law(law: ir.Constructor, span):
    if law.name == "uniform":
        low, high = law.arg("low"), law.arg("high")
        if low >= high:
            raise ExprError(f"The time law uniform({low:g}, {high:g}) is empty; it needs "
                            "low < high.", span)
        if not 0 <= low < high <= 1:
            raise ExprError(f"The time law uniform({low:g}, {high:g}) leaves [0, 1]; it needs "
                            "0 <= low < high <= 1.", span)
    elif law.name == "logit_normal" and law.arg("std") <= 0:
        raise ExprError("logit_normal needs std > 0.", span)


def _show(folder: Path) -> str:
    from .modules import display_name
    return display_name(folder)
