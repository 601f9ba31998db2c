"""Text to syntax tree: grammar, parser, syntax tree, diagnostics and the formatter."""

from ..errors import (Diagnostic, InternalCompilerError, Span, TfmDataError, TfmError,
                          TfmRuntimeError, TfmSemanticError, TfmSyntaxError)
from .parse import parse

__all__ = ["Diagnostic", "InternalCompilerError", "Span", "TfmDataError", "TfmError",
           "TfmRuntimeError", "TfmSemanticError", "TfmSyntaxError", "parse"]
