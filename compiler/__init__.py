"""Syntax tree to checked IR, the pipeline that runs the passes in order, and the tfmc CLI."""

from .pipeline import Compilation, compile_file, compile_model, compile_text, load_model

__all__ = ["Compilation", "compile_file", "compile_model", "compile_text", "load_model"]
