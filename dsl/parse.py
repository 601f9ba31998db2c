"""Text to syntax tree: the Lark LALR parser, the transformer to :mod:`tfm.dsl.syntax`, and
readable syntax errors.

Nothing here evaluates anything: tokens become tree nodes, and that is all. Limits that protect
later passes (numbers that do not fit a float64, expressions nested deeper than
:data:`MAX_DEPTH`) are enforced here, so that every later pass may recurse freely.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import lark
from lark import v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from . import syntax as S
from ..errors import Diagnostic, Span, TfmSyntaxError
from .suggest import did_you_mean

MAX_DEPTH = 100
MAX_INT_DIGITS = 18
MAX_NUMBER_CHARS = 64
GRAMMAR = Path(__file__).with_name("grammar.lark")
# the keywords that start a statement of a model (where one appears inside an unclosed block)
STATEMENTS = ("dim", "base", "target", "coupling", "noise", "interpolant", "energy", "constant",
              "network", "sampler", "objective", "train")
KEYWORDS = ("import", "model", "dim", "base", "target", "coupling", "noise", "interpolant",
            "energy", "constant", "network", "sampler", "objective", "weight", "train",
            "primitive")


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(), parser="lalr", propagate_positions=True,
                     maybe_placeholders=True)


def parse(text: str, file: str = "<string>") -> S.Module:
    """Parse one file's text into a :class:`~tfm.dsl.syntax.Module`; raise ``TfmSyntaxError``."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise TfmSyntaxError(_describe(err, text, file), {file: text}) from None
    try:
        module = _ToSyntax(file).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, _NodeError):
            raise TfmSyntaxError(err.orig_exc.diagnostic, {file: text}) from None
        raise
    comments = tuple(S.Comment(body.rstrip(), Span(file, line, col, line, col + len(body),
                                                   offset, offset + len(body)))
                     for offset, line, col, body in _comment_tokens(text))
    module = S.Module(module.items, file=file, comments=comments)
    _check_depth(module, text)
    return module


def _comment_tokens(text: str) -> list[tuple[int, int, int, str]]:
    """(offset, line, column, text) of each comment. The parser drops comments; this scan finds
    them again for the formatter, skipping '#' inside strings exactly as the lexer does."""
    out, line, col, i, n = [], 1, 1, 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, col, in_string = line + 1, 1, False
            i += 1
            continue
        if ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append((i, line, col, text[i:end]))
            col += end - i
            i = end
            continue
        i += 1
        col += 1
    return out


def _token_span(tok, file: str) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column,
                tok.start_pos, tok.end_pos)


def _meta_span(meta, file: str) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column,
                meta.start_pos, meta.end_pos)


class _NodeError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _syntax(message: str, span: Span, suggestion: str | None = None) -> _NodeError:
    return _NodeError(Diagnostic("Syntax", message, span, suggestion))


@v_args(meta=True)
class _ToSyntax(Transformer_NonRecursive):
    """Lark tree to syntax tree. One method per grammar rule (or alias)."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, meta) -> Span | None:
        return None if meta.empty else _meta_span(meta, self.file)

    def _tok(self, tok) -> Span:
        return _token_span(tok, self.file)

    # module level
    def start(self, meta, items):
        return S.Module(tuple(items), file=self.file)

    def import_decl(self, meta, names):
        return S.Import(tuple(str(n) for n in names), self._span(meta))

    def model_decl(self, meta, children):
        name, *body = children
        return S.ModelDecl(str(name), tuple(body), self._span(meta), self._tok(name))

    def function_decl(self, meta, children):
        name, params, body = children
        return S.FunctionDecl(str(name), params, body, False, self._span(meta), self._tok(name))

    def noise_decl(self, meta, children):
        name, params, body = children
        return S.FunctionDecl(str(name), params, body, True, self._span(meta), self._tok(name))

    def interpolant_decl(self, meta, children):
        name, params, body = children
        return S.InterpolantDecl(str(name), params, body, self._span(meta), self._tok(name))

    def primitive_decl(self, meta, children):
        kind, name, params, dim = children
        return S.PrimitiveDecl(str(kind), str(name), params or (), dim, self._span(meta),
                               self._tok(name), self._tok(kind))

    def energy_decl(self, meta, children):
        name, arg, body = children
        return S.EnergyDecl(str(name), str(arg), body, self._span(meta), self._tok(name))

    def constant_decl(self, meta, children):
        name, value = children
        return S.ConstantDecl(str(name), value, self._span(meta), self._tok(name))

    def params(self, meta, children):
        return tuple(children)

    def param(self, meta, children):
        name, type_, default = children
        return S.Param(str(name), type_, default, self._span(meta))

    def type_name(self, meta, children):
        return S.TypeSpec(str(children[0]), (), self._span(meta))

    def type_choice(self, meta, children):
        return S.TypeSpec(None, tuple(str(c) for c in children), self._span(meta))

    # model statements
    def dim_stmt(self, meta, children):
        return S.DimStmt(children[0], self._span(meta))

    def base_stmt(self, meta, children):
        var, value = children
        return S.DensityStmt("base", str(var), value, self._span(meta), self._tok(var))

    def target_stmt(self, meta, children):
        var, value = children
        return S.DensityStmt("target", str(var), value, self._span(meta), self._tok(var))

    def coupling_stmt(self, meta, children):
        return S.CouplingStmt(children[0], self._span(meta))

    def network_decl(self, meta, children):
        name, value = children
        return S.NetworkDecl(str(name), value, self._span(meta), self._tok(name))

    def sampler_decl(self, meta, children):
        name, value = children
        return S.SamplerDecl(str(name), value, self._span(meta), self._tok(name))

    def objective_block(self, meta, children):
        return S.ObjectiveBlock(tuple(children), self._span(meta))

    def objective_term(self, meta, children):
        lhs, value = children
        return S.ObjectiveTerm(str(lhs), value, self._span(meta), self._tok(lhs))

    def weight_decl(self, meta, children):
        param, body = children
        return S.WeightDecl(str(param), body, self._span(meta))

    def train_block(self, meta, children):
        return S.TrainBlock(tuple(children), self._span(meta))

    def train_item(self, meta, children):
        key, value = children
        return S.TrainItem(str(key), value, self._span(meta), self._tok(key))

    # expressions
    def number(self, meta, children):
        tok = children[0]
        text, span = str(tok), self._tok(tok)
        if len(text) > MAX_NUMBER_CHARS:
            raise _syntax(f"This number literal is {len(text)} characters long; tfm reads at most "
                          f"{MAX_NUMBER_CHARS}.", span, "Write it with an exponent, e.g. 1e-30.")
        if "." not in text and "e" not in text.lower():
            if len(text.lstrip("0")) > MAX_INT_DIGITS:
                raise _syntax(f"The integer {text[:24]}{'...' if len(text) > 24 else ''} has more "
                              f"than {MAX_INT_DIGITS} digits.", span,
                              "Integers must fit in 64 bits; write a real number such as 1e20.")
        else:
            value = float(text)
            if math.isinf(value):
                raise _syntax(f"The number {text} is too large for a 64-bit float.", span)
            if value == 0.0 and re.search(r"[1-9]", text.split("e")[0].split("E")[0]):
                raise _syntax(f"The number {text} is too small for a 64-bit float "
                              "(it would round to 0).", span)
        return S.Number(text, span)

    def string(self, meta, children):
        tok = children[0]
        value = str(tok)[1:-1]
        bad = next((c for c in value if c == "\\" or not (" " <= c <= "~")), None)
        if bad is not None:
            what = "a backslash" if bad == "\\" else f"the character {bad!r} (U+{ord(bad):04X})"
            raise _syntax(f"Strings may not contain {what}.", self._tok(tok),
                          "Use plain ASCII file names with '/' between folders.")
        return S.String(value, self._tok(tok))

    def name(self, meta, children):
        return S.Name(str(children[0]), self._tok(children[0]))

    def call(self, meta, children):
        func, args = children
        args = args or ()
        positional = tuple(a for a in args if not isinstance(a, S.Keyword))
        keywords = tuple(a for a in args if isinstance(a, S.Keyword))
        seen_kw = False
        for a in args:
            if isinstance(a, S.Keyword):
                seen_kw = True
            elif seen_kw:
                raise _syntax("A positional argument follows a keyword argument.", a.span,
                              "Put positional arguments first, as in f(1, scale = 2).")
        return S.Call(str(func), positional, keywords, self._span(meta), self._tok(func))

    def args(self, meta, children):
        return tuple(children)

    def keyword(self, meta, children):
        name, value = children
        return S.Keyword(str(name), value, self._span(meta))

    def list(self, meta, children):
        return S.ListExpr(tuple(c for c in children if c is not None), self._span(meta))

    def paren(self, meta, children):
        return children[0]

    def _binop(self, op, meta, children):
        return S.BinOp(op, children[0], children[1], self._span(meta))

    def add(self, meta, children):
        return self._binop("+", meta, children)

    def sub(self, meta, children):
        return self._binop("-", meta, children)

    def mul(self, meta, children):
        return self._binop("*", meta, children)

    def div(self, meta, children):
        return self._binop("/", meta, children)

    def matmul(self, meta, children):
        return self._binop("@", meta, children)

    def pow(self, meta, children):
        return self._binop("^", meta, children)

    def neg(self, meta, children):
        return S.UnaryOp("-", children[0], self._span(meta))

    def pos(self, meta, children):
        return S.UnaryOp("+", children[0], self._span(meta))

    def index(self, meta, children):
        return S.Index(children[0], children[1], self._span(meta))


def _expressions(module: S.Module):
    for item in module.items:
        yield from _node_expressions(item)


def _node_expressions(node):
    if isinstance(node, S.ModelDecl):
        for st in node.body:
            yield from _node_expressions(st)
    elif isinstance(node, (S.ObjectiveBlock, S.TrainBlock)):
        for it in node.items:
            yield from _node_expressions(it)
    else:
        for field in ("value", "body", "dim"):
            expr = getattr(node, field, None)
            if expr is not None:
                yield expr
        for p in getattr(node, "params", None) or ():
            if p.default is not None:
                yield p.default


def _check_depth(module: S.Module, text: str) -> None:
    for expr in _expressions(module):
        stack = [(expr, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise TfmSyntaxError(Diagnostic(
                    "Syntax", f"This expression is nested more than {MAX_DEPTH} levels deep.",
                    node.span, "Split it into named functions, e.g. f(t) = ... then g(t) = f(t) + ..."),
                    {module.file: text})
            children = []
            if isinstance(node, S.Call):
                children = [*node.args, *(k.value for k in node.keywords)]
            elif isinstance(node, S.BinOp):
                children = [node.left, node.right]
            elif isinstance(node, S.UnaryOp):
                children = [node.operand]
            elif isinstance(node, S.Index):
                children = [node.value, node.index]
            elif isinstance(node, S.ListExpr):
                children = list(node.items)
            stack.extend((c, depth + 1) for c in children)


# --- syntax errors ---------------------------------------------------------------------------

_EXAMPLES: list[tuple[str, list[str]]] = [
    ("A function is declared with '=', as in alpha(t) = 1 - t.",
     ["alpha(t) 1 - t", "model M { alpha(t) cos(t) }", "model M { noise eps(t) 0.1 }"]),
    ("A density is given with '~', as in target x1 ~ moons(noise = 0.1).",
     ["model M { target x1 = moons() }", "model M { base x0 = normal(0, 1) }",
      "model M { target x1 moons() }", "model M { base x0 normal(0, 1) }"]),
    ("Keyword arguments are written name = value, as in mlp(width = 64).",
     ["model M { network b = mlp(width: 64) }", "model M { target x1 ~ moons(noise: 0.1) }"]),
    ("'**' is not an operator in tfm; write powers with '^', as in t^2.",
     ["f(t) = t ** 2", "model M { f(t) = t ** 2 }", "model M { f(t) = t**2 }"]),
    ("A network is declared as network NAME = constructor(...), as in network b = mlp().",
     ["model M { network mlp() }", "model M { network b mlp() }"]),
    ("A sampler is declared as sampler NAME = method(...), as in sampler ode = heun(steps = 20).",
     ["model M { sampler heun(steps = 20) }", "model M { sampler ode heun() }"]),
    ("An objective term is written NETWORK ~ TARGET, as in b ~ velocity.",
     ["model M { objective { b = velocity } }", "model M { objective { b velocity } }"]),
    ("An interpolant is written interpolant x_t = ..., as in interpolant x_t = (1 - t) * x0 + t * x1.",
     ["model M { interpolant = t }", "model M { interpolant x_t (1 - t) }"]),
    ("A model is written model NAME { ... }.",
     ["model { }", "model M dim 2 }"]),
]


def _describe(err: UnexpectedInput, text: str, file: str) -> Diagnostic:
    parser = _parser()
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = text[pos]
        span = Span(file, err.line, err.column, err.line, err.column + 1, pos, pos + 1)
        if ch == '"':
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            span = Span(file, err.line, err.column, err.line, err.column + (end - pos), pos, end)
            return Diagnostic("Syntax", "This string is not terminated before the end of the line.",
                              span, "Close it with '\"'; strings cannot span lines.")
        if ord(ch) > 127:
            return Diagnostic("Syntax", f"The character {ch!r} (U+{ord(ch):04X}) is not allowed "
                              "here: tfm source is ASCII outside comments.", span,
                              "Use ASCII names and operators, e.g. 'pi' for π, '*' for ×.")
        if ch == "\\":
            return Diagnostic("Syntax", "A backslash is not allowed here: tfm has no line "
                              "continuations or escapes.", span, "Remove it.")
        return Diagnostic("Syntax", f"The character {ch!r} is not part of the tfm language.", span,
                          _char_hint(ch))

    at = err.token.start_pos if isinstance(err, UnexpectedToken) and \
        err.token.type != "$END" else len(text)
    glued = _number_then_name(text, at)
    if glued is not None:
        start, end, number, name = glued
        return Diagnostic("Syntax", f"'{number}{name}' is a number followed by a name; tfm "
                          "writes every product with '*'.", _offset_span(text, file, start, end),
                          f"Write {number} * {name}.")
    if isinstance(err, UnexpectedToken) and err.token.type != "$END" and \
            str(err.token) in STATEMENTS and "RBRACE" in (err.expected or ()):
        unclosed = _unclosed_block(text, err.token, file)
        if unclosed is not None:
            return unclosed
    message = err.match_examples(_parse_only, _EXAMPLES, use_accepts=True)
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok = err.token
        span = _token_span(tok, file)
        shown = repr(str(tok))
    else:
        opened = _unclosed_brace(text)
        if opened is not None:
            line = text.count("\n", 0, opened) + 1
            col = opened - (text.rfind("\n", 0, opened) + 1) + 1
            return Diagnostic("Syntax", "The file ends before this '{' is closed.",
                              Span(file, line, col, line, col + 1, opened, opened + 1),
                              "Add the missing '}'.")
        pos = len(text.rstrip())
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        span = Span(file, line, col, line, col + 1, pos, pos + 1)
        shown = "end of the file"
    expected = sorted((_readable(parser, name) for name in (getattr(err, "expected", None) or ())),
                      key=lambda s: (s[1:-1].isalpha(), s))
    suggestion = None
    previous = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", text[max(0, span.start - 80): span.start])
    for word in ([str(err.token)] if isinstance(err, UnexpectedToken) else []) + (
            [previous.group(1)] if previous else []):
        keyword = did_you_mean(word, [k for k in KEYWORDS if k != word])
        if keyword:
            suggestion = f"{keyword.replace('Did you mean', 'Did you mean the keyword')}"
            break
    if message is None:
        message = f"Unexpected {shown}."
        if expected:
            message += " Expected " + _join_or(expected) + "."
    elif expected and suggestion is None:
        suggestion = "Expected " + _join_or(expected) + f" but found {shown}."
    return Diagnostic("Syntax", message, span, suggestion)


_TOKENS = (r'(?P<comment>#[^\n]*)|(?P<string>"[^"\n]*"?)'
           r'|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)'
           r'|(?P<name>[A-Za-z_][A-Za-z0-9_]*)')  # comments, strings, numbers and names


def _number_then_name(text: str, before: int):
    """(start, end, number, name) of the first number written directly before a name, as in
    ``2t``, that starts before offset ``before`` (never valid tfm), or None."""
    previous = None
    for m in re.finditer(_TOKENS, text[:before + 1]):
        if m.lastgroup == "name" and previous is not None and previous.lastgroup == "number" \
                and previous.end() == m.start() and m.start() <= before:
            return previous.start(), m.end(), previous.group(), m.group()
        previous = m
    return None


def _offset_span(text: str, file: str, start: int, end: int) -> Span:
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return Span(file, line, col, line, col + (end - start), start, end)


def _unclosed_block(text: str, token, file: str) -> Diagnostic | None:
    """A statement keyword where a block's '}' was expected: the block opened last (inside the
    model) is not closed. Reported at the block, with a note at the statement."""
    stack = _open_braces(text[:token.start_pos])
    if len(stack) < 2:  # only the model's brace is open: not an unclosed inner block
        return None
    opened = stack[-1]
    head = re.search(r"([A-Za-z_][A-Za-z0-9_]*(?:\s+[A-Za-z_][A-Za-z0-9_]*)?)\s*$",
                     text[max(0, opened - 80):opened])
    block = f"{head.group(1)} {{" if head else "{"
    span = _offset_span(text, file, opened, opened + 1)
    return Diagnostic("Syntax", f"The block '{block}' is not closed before the statement "
                      f"'{token}' on line {token.line}.", span,
                      "Add the missing '}' at the end of the block.",
                      notes=((f"'{token}' starts a new statement here", _token_span(token, file)),))


def _unclosed_brace(text: str) -> int | None:
    """Offset of the innermost '{' left open at the end of ``text`` (comments and strings skipped)."""
    stack = _open_braces(text)
    return stack[-1] if stack else None


def _open_braces(text: str) -> list[int]:
    """Offsets of the '{' left open at the end of ``text``, outermost first (comments and
    strings skipped)."""
    stack: list[int] = []
    comment_at = {offset for offset, *_ in _comment_tokens(text)}
    i, in_string = 0, False
    while i < len(text):
        ch = text[i]
        if i in comment_at:
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if ch == '"':
            in_string = not in_string
        elif ch == "\n":
            in_string = False
        elif not in_string and ch == "{":
            stack.append(i)
        elif not in_string and ch == "}" and stack:
            stack.pop()
        i += 1
    return stack


def _parse_only(text: str):
    return _parser().parse(text)


def _readable(parser: lark.Lark, name: str) -> str:
    if name == "$END":
        return "the end of the file"
    term = parser.get_terminal(name)
    if isinstance(term.pattern, lark.lexer.PatternStr):
        return f"'{term.pattern.value}'"
    return {"NAME": "a name", "NUMBER": "a number", "STRING": "a string"}.get(name, name.lower())


def _join_or(items: list[str]) -> str:
    if len(items) > 8:
        items = items[:8] + ["..."]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _char_hint(ch: str) -> str | None:
    return {"'": "Strings use double quotes, as in data(\"train.npy\").",
            ";": "Statements need no separator; put each on its own line.",
            "%": "There is no '%' operator.", "&": "There are no logical operators.",
            "|": "There are no logical operators.", "!": "There are no logical operators.",
            "@": "Write a product with '*' or use dot(a, b).",
            "$": None}.get(ch)
