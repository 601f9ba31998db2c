"""The standard library as ``tfmc stdlib`` lists it: every importable module (the prelude, which
every file sees, first), each declaration's signature with its parameters' types and defaults,
and its one-line doc, taken from the comment block above it in the library's source.

A declaration's doc is the comment block that ends on the line above it, or, for a declaration
in a run of declarations without blank lines between them, the block above the first of the run
(a block that heads a group, such as "Densities (base or target)."). The one line is the block's
first sentence.
"""

from __future__ import annotations

import re

import attrs

from ..dsl import format as F
from ..dsl import syntax as S
from ..dsl.parse import parse
from ..stdlib import PRELUDE, module_names, module_path


@attrs.frozen
class Entry:
    module: str  # "prelude" or the name after "import stdlib."
    kind: str  # a primitive's kind, "interpolant", "function" or "noise"
    name: str
    signature: str  # the declaration without its body
    params: tuple[tuple[str, str | None, str | None], ...]  # (name, type, default)
    doc: str

    def to_json(self) -> dict:
        return {"module": self.module, "kind": self.kind, "name": self.name,
                "signature": self.signature, "doc": self.doc,
                "params": [{"name": n, "type": t, "default": d} for n, t, d in self.params]}


def modules() -> list[str]:
    """The prelude, then the importable modules in alphabetical order."""
    return ["prelude"] + [m for m in module_names() if module_path(m) != PRELUDE]


def entries(module: str) -> list[Entry]:
    """The declarations of one stdlib module, in the order of its file."""
    path = PRELUDE if module == "prelude" else module_path(module)
    text = path.read_text()
    tree = parse(text, file=path.name)
    docs = _docs(text)
    out = []
    for item in tree.items:
        if isinstance(item, (S.Import, S.ModelDecl)):
            continue
        out.append(Entry(module, _kind(item), item.name, _signature(item),
                         tuple(_param(p) for p in (getattr(item, "params", None) or ())),
                         _one_line(docs.get(item.span.line, ""), item.name)))
    return out


def _kind(item) -> str:
    if isinstance(item, S.PrimitiveDecl):
        return item.kind
    if isinstance(item, S.InterpolantDecl):
        return "interpolant"
    if isinstance(item, S.FunctionDecl):
        return "noise" if item.is_noise else "function"
    return type(item).__name__.removesuffix("Decl").lower()


def _signature(item) -> str:
    line = F.declaration_text(item)
    if isinstance(item, (S.FunctionDecl, S.InterpolantDecl)):  # without the body
        return line[:_close(line)] if item.params else line.split(" = ", 1)[0]
    return line


def _close(line: str) -> int:
    """The end of the parameter list that opens at the first '(' of ``line``."""
    depth = 0
    for i, ch in enumerate(line):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ")" and depth == 0:
            return i + 1
    return len(line)  # pragma: no cover - a parsed declaration closes its parameters


def _param(p: S.Param) -> tuple[str, str | None, str | None]:
    kind = None
    if p.type is not None:
        kind = p.type.name or "{" + ", ".join(p.type.choices) + "}"
    return p.name, kind, F.expr_text(p.default) if p.default is not None else None


def _docs(text: str) -> dict[int, str]:
    """Line number of each declaration line -> the comment block that documents it."""
    docs: dict[int, str] = {}
    block: list[str] = []
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            block, current = [], ""
        elif stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
        else:
            if block:
                current, block = " ".join(block), []
            docs[number] = current
    return docs


def _one_line(block: str, name: str) -> str:
    """The sentence of ``block`` that is about ``name`` ("name: ...", "`name` ..."), else its
    first sentence."""
    sentences = [x.strip() for x in re.split(r"(?<=[.])\s+", block) if x.strip()]
    if not sentences:
        return ""
    about = rf"(^|[\s(`]){re.escape(name)}`?(:|\s\(|\s+is\b|\s+=)"
    for sentence in sentences:
        match = re.search(about, sentence)
        if match:
            return sentence[match.start(2) - len(name):].lstrip("`").strip()
    return sentences[0]


def listing(selected: list[str] | None = None) -> str:
    """The text of ``tfmc stdlib``."""
    out = []
    for module in selected or modules():
        heading = ("prelude (every file sees it)" if module == "prelude"
                   else f"stdlib.{module} (import stdlib.{module})")
        out.append(heading)
        for e in entries(module):
            out.append(f"  {e.signature}")
            if e.doc:
                out.append(f"      {e.doc}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
