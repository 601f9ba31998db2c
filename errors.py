"""Source spans, diagnostics and the exception family of tfm.

Every user-facing problem is a :class:`Diagnostic` with a :class:`Span`; the exceptions below carry
one or more of them. Whose fault it is decides the class (as in Devito): ``TfmError`` and its
subclasses are the user's (bad model text, bad data, a run that cannot continue), while
:class:`InternalCompilerError` is ours and is never raised for anything a user wrote.
Rendering follows stanc3: a header naming file, line and columns, a few numbered lines of context,
the span underlined with carets, then the message and a suggestion.
"""

from __future__ import annotations

import attrs

CONTEXT_LINES = 2


@attrs.frozen
class Span:
    """A half-open region of one source file: lines and columns are 1-based, ``end_column`` is the
    column just past the last character (as in Lark), offsets index the text."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    @classmethod
    def point(cls, file: str, line: int, column: int, offset: int = 0) -> "Span":
        return cls(file, line, column, line, column + 1, offset, offset + 1)

    def to(self, other: "Span") -> "Span":
        """The smallest span covering ``self`` and ``other`` (same file)."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column,
                    self.start, other.end)

    def describe(self) -> str:
        last = self.end_column - 1
        if self.end_line != self.line:
            return (f"line {self.line}, column {self.column} to line {self.end_line}, "
                    f"column {max(last, 1)}")
        if last > self.column:
            return f"line {self.line}, column {self.column} to column {last}"
        return f"line {self.line}, column {self.column}"


@attrs.frozen
class Diagnostic:
    """One finding: ``severity`` is ``"error"`` or ``"warning"``; ``kind`` names the family
    (``"Syntax"``, ``"Semantic"``, ``"Data"``, ``"Runtime"``)."""

    kind: str
    message: str
    span: Span | None = None
    suggestion: str | None = None
    severity: str = "error"
    notes: tuple[tuple[str, Span], ...] = ()
    pedantic: bool = False  # advice, shown only with --pedantic

    def to_json(self) -> dict:
        out: dict = {"severity": self.severity, "kind": self.kind, "message": self.message}
        if self.span is not None:
            out.update(file=self.span.file, line=self.span.line, column=self.span.column,
                       end_line=self.span.end_line, end_column=self.span.end_column)
        if self.suggestion:
            out["suggestion"] = self.suggestion
        return out


class TfmError(Exception):
    """A problem with what the user gave us. Carries one or more diagnostics, all reported."""

    kind = "Error"

    def __init__(self, diagnostics, sources: dict[str, str] | None = None):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__("\n".join(d.message for d in self.diagnostics))

    def render(self, sources: dict[str, str] | None = None) -> str:
        merged = {**self.sources, **(sources or {})}
        return "\n\n".join(render(d, merged) for d in self.diagnostics)

    def __str__(self) -> str:
        """As the command line prints it: file, line and column, the context, the fix (so
        that an error raised through the Python API reads the same)."""
        return self.render()


class TfmSyntaxError(TfmError):
    """The text is not a well-formed tfm program (user's fault: fix the text)."""

    kind = "Syntax"


class TfmSemanticError(TfmError):
    """The program parses but means nothing sensible: unknown names, wrong arguments, shapes,
    missing pieces (user's fault: fix the model)."""

    kind = "Semantic"


class TfmDataError(TfmError):
    """A data file is missing, unreadable or malformed (user's fault: fix the file)."""

    kind = "Data"


class TfmRuntimeError(TfmError):
    """Training or sampling cannot go on, e.g. a non-finite loss (the model or its settings)."""

    kind = "Runtime"


class InternalCompilerError(Exception):
    """A bug in tfm itself, never the user's fault. Deliberately not a ``TfmError``."""


def render(diag: Diagnostic, sources: dict[str, str]) -> str:
    """Render one diagnostic in the stanc3 style, with context and carets when the text is known."""
    label = f"{diag.kind} {'warning' if diag.severity == 'warning' else 'error'}"
    if diag.span is None:
        out = [f"{label}:", "", diag.message]
    else:
        out = [f"{label} in '{diag.span.file}', {diag.span.describe()}:"]
        text = sources.get(diag.span.file)
        if text is not None:
            out.append(_excerpt(text, diag.span))
        out += ["", diag.message]
    for note, span in diag.notes:
        out.append(f"  note: {note} ('{span.file}', {span.describe()})")
    if diag.suggestion:
        out.append(diag.suggestion)
    return "\n".join(out)


def _excerpt(text: str, span: Span) -> str:
    lines = text.splitlines() or [""]
    first = max(1, span.line - CONTEXT_LINES)
    last = min(len(lines), span.end_line + CONTEXT_LINES)
    width = len(str(last))
    rule = "   " + "-" * 49
    out = [rule]
    for n in range(first, last + 1):
        line = lines[n - 1] if n - 1 < len(lines) else ""
        out.append(f"  {n:>{width}}:  {line}")
        if span.line <= n <= span.end_line:
            start = span.column if n == span.line else 1
            stop = span.end_column if n == span.end_line else len(line) + 1
            stop = max(stop, start + 1)
            out.append(" " * (width + 5 + start - 1) + "^" * (stop - start))
    out.append(rule)
    return "\n".join(out)
