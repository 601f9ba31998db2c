"""The canonical layout of tfm text (``tfmc fmt``): one statement a line, four-space indents,
minimal parentheses, spaces around binary operators but not around ``^``, comments kept where they
were (own-line comments before the statement they precede, end-of-line comments after it; a
comment inside a statement written across lines moves to its own line before it), at most
one blank line kept between statements. Formatting is idempotent and never changes meaning: the
formatted text parses to an equal syntax tree.
"""

from __future__ import annotations

from . import syntax as S

INDENT = "    "
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "^": 4}


def format_module(module: S.Module) -> str:
    return _Printer(module).run()


def expr_text(e: S.Expr) -> str:
    """An expression with the fewest parentheses that keep its tree."""
    return _expr(e)


def _prec(e: S.Expr) -> int:
    if isinstance(e, S.BinOp):
        return _PREC[e.op]
    if isinstance(e, S.UnaryOp):
        return 3
    if isinstance(e, S.Index):
        return 5
    return 6


def _wrap(e: S.Expr, minimum: int) -> str:
    text = _expr(e)
    return f"({text})" if _prec(e) < minimum else text


def _expr(e: S.Expr) -> str:
    if isinstance(e, S.Number):
        return e.text
    if isinstance(e, S.String):
        return f'"{e.value}"'
    if isinstance(e, S.Name):
        return e.id
    if isinstance(e, S.Call):
        args = [_expr(a) for a in e.args] + [f"{k.name} = {_expr(k.value)}" for k in e.keywords]
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, S.ListExpr):
        return "[" + ", ".join(_expr(i) for i in e.items) + "]"
    if isinstance(e, S.UnaryOp):
        return e.op + _wrap(e.operand, 3)
    if isinstance(e, S.Index):
        return f"{_wrap(e.value, 5)}[{_expr(e.index)}]"
    if isinstance(e, S.BinOp):
        if e.op == "^":
            return f"{_wrap(e.left, 5)}^{_wrap(e.right, 3)}"
        p = _PREC[e.op]
        return f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"
    raise AssertionError(e)  # pragma: no cover


def _params(params) -> str:
    out = []
    for p in params:
        text = p.name
        if p.type is not None:
            text += ": " + (p.type.name if p.type.name else "{" + ", ".join(p.type.choices) + "}")
        if p.default is not None:
            text += " = " + _expr(p.default)
        out.append(text)
    return ", ".join(out)


def declaration_text(node) -> str:
    """The one-line text of a declaration (as ``tfmc fmt`` writes it)."""
    return _line(node)


def _line(node) -> str:
    """The one-line text of a simple statement or declaration."""
    if isinstance(node, S.Import):
        return "import " + ".".join(node.path)
    if isinstance(node, S.FunctionDecl):
        head = "noise " if node.is_noise else ""
        return f"{head}{node.name}({_params(node.params)}) = {_expr(node.body)}"
    if isinstance(node, S.InterpolantDecl):
        params = f"({_params(node.params)})" if node.params else ""
        return f"interpolant {node.name}{params} = {_expr(node.body)}"
    if isinstance(node, S.PrimitiveDecl):
        dim = f" dim {_expr(node.dim)}" if node.dim is not None else ""
        return f"primitive {node.kind} {node.name}({_params(node.params)}){dim}"
    if isinstance(node, S.EnergyDecl):
        return f"energy {node.name}({node.arg}) = {_expr(node.body)}"
    if isinstance(node, S.ConstantDecl):
        return f"constant {node.name} = {_expr(node.value)}"
    if isinstance(node, S.DimStmt):
        return f"dim {_expr(node.value)}"
    if isinstance(node, S.DensityStmt):
        return f"{node.role} {node.var} ~ {_expr(node.value)}"
    if isinstance(node, S.CouplingStmt):
        return f"coupling {_expr(node.value)}"
    if isinstance(node, S.NetworkDecl):
        return f"network {node.name} = {_expr(node.value)}"
    if isinstance(node, S.SamplerDecl):
        return f"sampler {node.name} = {_expr(node.value)}"
    if isinstance(node, S.ObjectiveTerm):
        return f"{node.lhs} ~ {_expr(node.value)}"
    if isinstance(node, S.WeightDecl):
        return f"weight({node.param}) = {_expr(node.body)}"
    if isinstance(node, S.TrainItem):
        return f"{node.key} {_expr(node.value)}"
    raise AssertionError(node)  # pragma: no cover


def _children(node):
    if isinstance(node, S.ModelDecl):
        return f"model {node.name} {{", node.body
    if isinstance(node, S.ObjectiveBlock):
        return "objective {", node.items
    if isinstance(node, S.TrainBlock):
        return "train {", node.items
    return None


class _Printer:
    def __init__(self, module: S.Module):
        self.module = module
        self.comments = sorted(module.comments, key=lambda c: c.span.start)
        self.next = 0
        self.out: list[str] = []
        self.last_line = 0  # source line of the last thing emitted

    def run(self) -> str:
        self._block(self.module.items, 0)
        self._flush(None, 0)
        text = "\n".join(self.out).rstrip("\n")
        return text + "\n" if text else ""

    def _emit(self, text: str, depth: int, source_line: int):
        if self.out and source_line - self.last_line > 1 and self.out[-1] != "" and \
                not self.out[-1].endswith("{"):
            self.out.append("")
        self.out.append(INDENT * depth + text)

    def _flush(self, before_line: int | None, depth: int):
        """Own-line comments that come before ``before_line`` (all, when None)."""
        while self.next < len(self.comments):
            c = self.comments[self.next]
            if before_line is not None and c.span.line >= before_line:
                break
            self._emit(c.text, depth, c.span.line)
            self.last_line = c.span.line
            self.next += 1

    def _trailing(self, line: int):
        if self.next < len(self.comments) and self.comments[self.next].span.line == line:
            self.out[-1] += "  " + self.comments[self.next].text
            self.next += 1

    def _block(self, items, depth: int):
        for i, item in enumerate(items):
            self._flush(item.span.line, depth)
            if depth == 0 and isinstance(item, S.ModelDecl) and self.out and self.out[-1] != "":
                self.out.append("")  # a model always stands apart from what precedes it
            after = items[i + 1].span.line if i + 1 < len(items) else None
            shares_line = after == item.span.end_line  # a comment there belongs to the next one
            block = _children(item)
            if block is None:
                # comments inside a statement written across lines move before it
                self._flush(item.span.end_line, depth)
                self._emit(_line(item), depth, item.span.line)
                if not shares_line:
                    self._trailing(item.span.end_line)
                self.last_line = item.span.end_line
                continue
            head, children = block
            self._emit(head, depth, item.span.line)
            if not (children and children[0].span.line == item.span.line):
                self._trailing(item.span.line)
            self.last_line = item.span.line
            self._block(children, depth + 1)
            self._flush(item.span.end_line, depth + 1)
            if self.out[-1] == INDENT * depth + head:
                self.out[-1] += "}"
            else:
                self.out.append(INDENT * depth + "}")
            if not shares_line:
                self._trailing(item.span.end_line)
            self.last_line = item.span.end_line
