"""Loading files and resolving ``import``: each file becomes a :class:`LoadedModule` with the
scope its declarations see.

``import stdlib.NAME`` reads the standard library; ``import a.b`` reads ``a/b.tfm`` next to the
importing file. Import paths are dotted identifiers, so no import can leave the importing file's
folder by ``..`` or reach an absolute path. A scope holds the prelude, then each imported module's
own top-level declarations (imports are not re-exported), then the file's own; a file's own
declaration shadows an imported one.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from .. import stdlib
from ..dsl import syntax as S
from ..errors import Diagnostic
from ..dsl.parse import parse
from ..dsl.suggest import did_you_mean
from .names import name_problem

TopDecl = S.FunctionDecl | S.InterpolantDecl | S.PrimitiveDecl


@attrs.define(eq=False)
class Entry:
    """A top-level declaration visible in some scope, and the module that declared it."""

    decl: TopDecl
    module: "LoadedModule"

    @property
    def key(self) -> str:
        return f"{self.module.display}:{self.decl.name}"


@attrs.define(eq=False)
class LoadedModule:
    path: Path
    display: str
    syntax: S.Module
    is_stdlib: bool
    scope: dict[str, Entry] = attrs.field(factory=dict)
    own: dict[str, Entry] = attrs.field(factory=dict)

    @property
    def models(self) -> list[S.ModelDecl]:
        return [i for i in self.syntax.items if isinstance(i, S.ModelDecl)]


def display_name(path: Path) -> str:
    """How diagnostics name a file: stdlib files as ``stdlib/NAME.tfm``, others relative to the
    working directory when below it."""
    path = path.resolve()
    if path.parent == stdlib.STDLIB_DIR:
        return f"stdlib/{path.name}"
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class Loader:
    """Parses files once each, resolves imports, collects diagnostics and every source text."""

    def __init__(self):
        self.modules: dict[Path, LoadedModule] = {}
        self.sources: dict[str, str] = {}
        self.diagnostics: list[Diagnostic] = []
        self._loading: list[Path] = []

    def error(self, message, span, suggestion=None, notes=()):
        self.diagnostics.append(Diagnostic("Semantic", message, span, suggestion, notes=notes))

    def load_text(self, text: str, display: str, path: Path) -> LoadedModule:
        """Load a file's text (raises ``TfmSyntaxError`` for the file itself)."""
        path = path.resolve()
        self.sources[display] = text
        module = LoadedModule(path, display, parse(text, display), _is_stdlib(path))
        self.modules[path] = module
        self._loading.append(path)
        try:
            self._resolve(module)
        finally:
            self._loading.pop()
        return module

    def load(self, path: Path) -> LoadedModule:
        path = Path(path).resolve()
        if path in self.modules:
            return self.modules[path]
        return self.load_text(path.read_text(encoding="utf-8", errors="replace"),
                              display_name(path), path)

    def _resolve(self, module: LoadedModule) -> None:
        scope: dict[str, Entry] = {}
        if module.path != stdlib.PRELUDE:
            scope.update(self.load(stdlib.PRELUDE).own)
        origin: dict[str, S.Import] = {}
        for item in module.syntax.items:
            if isinstance(item, S.Import):
                imported = self._import(module, item)
                if imported is None:
                    continue
                for name, entry in imported.own.items():
                    if name in origin and scope[name].module is not imported:
                        self.error(f"The name '{name}' is declared by both "
                                   f"'{'.'.join(origin[name].path)}' and '{'.'.join(item.path)}'.",
                                   item.span, "Import only one of them, or rename one declaration.",
                                   notes=(("first imported here", origin[name].span),))
                        continue
                    scope[name], origin[name] = entry, item
        own: dict[str, Entry] = {}
        models = module.models
        for model in models:
            problem = name_problem(model.name)
            if problem:
                self.error(problem[0].replace("a declaration", "a model"), model.name_span,
                           problem[1])
        for extra in models[1:]:
            self.error("A file holds at most one model.", extra.name_span,
                       f"Move model '{extra.name}' to a file of its own and import what it shares.",
                       notes=(("first model here", models[0].name_span),))
        for item in module.syntax.items:
            if isinstance(item, (S.FunctionDecl, S.InterpolantDecl, S.PrimitiveDecl)):
                if item.name in own:
                    self.error(f"'{item.name}' is declared twice in this file.", item.name_span,
                               "Rename or remove one of them.",
                               notes=(("first declared here", own[item.name].decl.name_span),))
                    continue
                problem = None if module.is_stdlib else name_problem(item.name)
                if problem:  # the stdlib may use keywords, e.g. the distribution energy(U)
                    self.error(problem[0], item.name_span, problem[1])
                    continue
                if isinstance(item, S.PrimitiveDecl) and not module.is_stdlib:
                    self.error("Only the standard library may declare primitives.", item.kind_span,
                               "Primitives are implemented in Python by each backend; use the "
                               "stdlib's, or say what you need with functions and interpolants.")
                    continue
                own[item.name] = Entry(item, module)
        module.own = own
        scope.update(own)
        module.scope = scope

    def _import(self, module: LoadedModule, item: S.Import) -> LoadedModule | None:
        parts = item.path
        if parts[0] == "stdlib":
            if len(parts) != 2:
                self.error("Standard-library imports name one module, as in import stdlib.toy2d.",
                           item.span)
                return None
            target = stdlib.module_path(parts[1])
            if not target.is_file() or parts[1] == "prelude":
                hint = did_you_mean(parts[1], [n for n in stdlib.module_names() if n != "prelude"])
                self.error(f"There is no standard-library module '{parts[1]}'."
                           + (" The prelude is always imported." if parts[1] == "prelude" else ""),
                           item.span, hint or "Standard-library modules: "
                           + ", ".join(n for n in stdlib.module_names() if n != "prelude") + ".")
                return None
        else:
            target = module.path.parent.joinpath(*parts[:-1], parts[-1] + ".tfm")
            if not target.is_file():
                self.error(f"Cannot find the file '{'/'.join(parts)}.tfm' to import.", item.span,
                           f"Imports are read relative to '{display_name(module.path.parent)}'; "
                           "use stdlib.NAME for the standard library.")
                return None
        target = target.resolve()
        if target in self._loading:
            cycle = [display_name(p) for p in self._loading[self._loading.index(target):]]
            self.error("These imports form a cycle: " + " -> ".join(cycle + [cycle[0]]) + ".",
                       item.span, "Move what both files need into a third file.")
            return None
        return self.load(target)


def _is_stdlib(path: Path) -> bool:
    return path.parent == stdlib.STDLIB_DIR
