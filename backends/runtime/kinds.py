"""Registries of kinds: each density, coupling, time law, sampler and objective of the runtime is
registered once under its prelude name, and looked up by that name; nothing else branches on it.

A registry whose kinds live one per module in a package (samplers, objectives) imports every
module of that package the first time it is asked, so a new kind is one new module there.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from ...errors import Diagnostic, TfmSemanticError

T = TypeVar("T")


class Registry(Generic[T]):
    """Kinds of one sort (``what``: "density", "sampler", ...) by prelude name."""

    def __init__(self, what: str, package: str | None = None):
        self.what = what
        self.package = package
        self._kinds: dict[str, T] = {}
        self._discovered = package is None

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: registers the decorated object under each of ``names`` (a class: one
        instance of it)."""
        def add(kind: T) -> T:
            for name in names:
                self._kinds[name] = kind() if isinstance(kind, type) else kind
            return kind
        return add

    def unregister(self, name: str) -> None:
        self._kinds.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._kinds)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._kinds

    def __getitem__(self, name: str) -> T:
        self._discover()
        try:
            return self._kinds[name]
        except KeyError:
            raise TfmSemanticError(Diagnostic(
                "Semantic", f"This version of the runtime has no {self.what} '{name}'.",
                suggestion=f"Known {self.what} kinds: {', '.join(self.names())}.")) from None
