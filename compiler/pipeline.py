"""The compiler's stages, in order. Each stage is a pure function of the previous one's output:

    text --parse--> syntax tree --load/resolve--> modules --lower--> IR --check--> checked IR
         --derive--> derived IR (targets, conversions, drifts) --check_boundaries--> findings
         --conditioning--> findings (each weighted target's variance over the time law)

``run`` performs them all and returns a :class:`Compilation` holding every stage, so that any one
can be dumped (``tfmc info``, ``tfmc graph``) and every diagnostic is reported together.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import networkx as nx

from ..errors import (Diagnostic, InternalCompilerError, TfmDataError, TfmError,
                               TfmSemanticError)
from . import conditioning, ir
from .ast_to_ir import Lowering
from .check_boundaries import check_boundaries
from .derive import derive
from .modules import LoadedModule, Loader, display_name

STAGES = ("parse", "resolve", "lower", "check", "derive", "check_boundaries", "conditioning")


@attrs.define
class Compilation:
    module: LoadedModule
    model: ir.Model | None
    graph: nx.DiGraph | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def raise_errors(self) -> None:
        errors = self.errors
        if errors:
            cls = TfmDataError if all(d.kind == "Data" for d in errors) else TfmSemanticError
            raise cls(errors, self.sources)


def compile_file(path: str | Path) -> Compilation:
    """All stages for one file. Raises ``TfmSyntaxError`` for unparsable text; semantic errors
    are collected in the result (``raise_errors`` turns them into an exception)."""
    path = Path(path)
    if not path.is_file():
        raise TfmError(Diagnostic("Semantic", f"No such file: '{path}'."))
    return _compile(lambda loader: loader.load(path))


def compile_text(text: str, file: str = "<string>", folder: str | Path = ".") -> Compilation:
    """All stages for model text not on disk; imports and data resolve relative to ``folder``."""
    path = Path(folder).resolve() / (Path(file).name if file.endswith(".tfm") else "_.tfm")
    return _compile(lambda loader: loader.load_text(text, file, path))


def compile_model(path: str | Path) -> Compilation:
    """All stages for a file that must hold a model; raises on any error."""
    result = compile_file(path)
    result.raise_errors()
    if result.model is None:
        raise TfmSemanticError(Diagnostic("Semantic", f"'{path}' declares no model.",
                                          suggestion="Add model NAME { ... }."), result.sources)
    return result


def load_model(path: str | Path) -> ir.Model:
    """The checked IR of the model in ``path``; raises on any error."""
    return compile_model(path).model


def _compile(load) -> Compilation:
    loader = Loader()
    try:
        module = load(loader)
        model = graph = None
        models = module.models
        lowering = Lowering(module, models[0] if models else None, loader.diagnostics)
        model = lowering.run()
        if models:
            graph = lowering.graph
        if model is not None:
            model = _derive(model, loader.diagnostics)
    except TfmError as err:
        err.sources = {**loader.sources, **err.sources}
        raise
    except RecursionError:
        raise TfmSemanticError(Diagnostic(
            "Semantic", "The model nests its declarations too deeply to compile.",
            suggestion="Flatten long chains of functions that call functions."),
            loader.sources) from None
    except Exception as err:  # a bug of ours, never the user's
        raise InternalCompilerError(f"{type(err).__name__}: {err}") from err
    diagnostics = _dedupe(loader.diagnostics)
    return Compilation(module, model, graph, diagnostics, loader.sources)


def _derive(model: ir.Model, diagnostics: list[Diagnostic]) -> ir.Model:
    if model.sampling:  # no interpolant to derive from
        return model
    derivation, found = derive(model)
    diagnostics.extend(found)
    findings, time_law = check_boundaries(model, derivation)
    diagnostics.extend(findings)
    diagnostics.extend(conditioning.check(model, derivation, time_law))
    return attrs.evolve(model, derivation=attrs.evolve(derivation, time_law=time_law))


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        key = (d.message, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return sorted(out, key=_position)


def _position(d: Diagnostic):
    return (d.span.file, d.span.start, d.span.line, d.span.column) if d.span else ("", 0, 0, 0)


__all__ = ["STAGES", "Compilation", "compile_file", "compile_model", "compile_text",
           "display_name", "load_model"]
