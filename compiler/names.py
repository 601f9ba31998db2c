"""Which names a declaration may take. Shared by model-level and top-level declarations."""

from __future__ import annotations

import keyword

from ..dsl.parse import KEYWORDS
from . import builtins as B

FIXED = {"t", "x0", "x1", "z", "x", "time", "pi"} | set(B.ALL_NAMES)


def name_problem(name: str) -> tuple[str, str | None] | None:
    """(message, suggestion) when ``name`` cannot name a declaration, else None. Python's hard
    keywords are refused so that emitted code can use names as written; soft keywords (match,
    type, _) are fine."""
    if name.startswith("__"):
        return (f"Names beginning with '__' are reserved: '{name}'.",
                "Choose a name without the leading underscores.")
    if keyword.iskeyword(name):
        return (f"'{name}' is a reserved word and cannot name a declaration.",
                f"Choose another name, e.g. '{name}_'.")
    if name in KEYWORDS:
        return f"'{name}' is a tfm keyword and cannot name a declaration.", "Choose another name."
    if name in FIXED:
        return f"'{name}' has a fixed meaning in tfm and cannot be redeclared.", "Choose another name."
    return None
