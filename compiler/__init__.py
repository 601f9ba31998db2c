"""Syntax tree to checked IR and its derivations, and the pipeline that runs the passes in order."""

from .pipeline import Compilation, compile_file, compile_model, compile_text, load_model

__all__ = ["Compilation", "compile_file", "compile_model", "compile_text", "load_model"]
