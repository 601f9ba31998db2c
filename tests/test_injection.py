"""A model file can never run code: identifiers, strings, file names and imports that look like
Python are refused with the project's own messages, nothing is executed, no file is touched, and
no user text ever reaches eval, exec, sympify or a pickle."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

from tfm.compiler import compile_text
from tfm.dsl import TfmError

ROOT = Path(__file__).resolve().parent.parent
MODEL = """
model M {{
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ {target}
    interpolant x_t = (1 - t) * x0 + t * x1
    network {network} = mlp({kwargs})
    objective {{ {network} ~ velocity }}
    {extra}
}}
"""


def model(target="normal(3, 1)", network="b", kwargs="", extra="", imports=""):
    return imports + MODEL.format(target=target, network=network, kwargs=kwargs, extra=extra)


SUSPICIOUS = ("__", "import", "eval", "exec", "system", "pwned", "..", "/etc", "open(")


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch):
    """Every test here fails if a process would start, or sympy were handed user text to parse
    (sympy parses a few strings of its own, such as unit names, which are let through)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"attempted to run {args!r}")
    monkeypatch.setattr(os, "system", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    real_sympify = sympy.sympify

    def sympify(a, *args, **kwargs):
        if isinstance(a, str) and any(word in a for word in SUSPICIOUS):
            raise AssertionError(f"sympify of text {a!r}")
        return real_sympify(a, *args, **kwargs)
    monkeypatch.setattr(sympy, "sympify", sympify)
    monkeypatch.setattr(sys.modules["sympy.core.sympify"], "sympify", sympify)
    monkeypatch.setattr(sympy, "parse_expr", refuse)


def messages(text, folder) -> list[str]:
    """All diagnostics of compiling ``text``, from the result or from the raised TfmError."""
    before = sorted(p.name for p in Path(folder).iterdir())
    try:
        result = compile_text(text, "m.tfm", folder)
        found = [d.message + " " + (d.suggestion or "") for d in result.errors]
    except TfmError as err:
        found = [d.message + " " + (d.suggestion or "") for d in err.diagnostics]
    assert sorted(p.name for p in Path(folder).iterdir()) == before, "a file appeared"
    return found


@pytest.mark.parametrize("name, expected", [
    ("__import__", "reserved"), ("__class__", "reserved"), ("__builtins__", "reserved"),
    ("lambda", "reserved word"), ("import", "reserved word"), ("pi", "fixed meaning"),
    ("x0", "fixed meaning"), ("sum", "fixed meaning"),
])
def test_network_names_that_look_like_python(tmp_path, name, expected):
    found = messages(model(network=name), tmp_path)
    assert any(expected in m for m in found), found


@pytest.mark.parametrize("decl, expected", [
    ("__import__(t) = t", "reserved"),
    ("__class__(t) = t", "reserved"),
    ("def(t) = t", "reserved word"),
    ("f(__globals__) = 1", "cannot name a parameter"),
    ("energy E(__x) = 0", "cannot name the argument"),
])
def test_declarations_that_look_like_python(tmp_path, decl, expected):
    found = messages(model(extra=decl), tmp_path)
    assert any(expected in m for m in found), found


@pytest.mark.parametrize("path, expected", [
    ("../secret.npy", "may not go up with '..'"),
    ("sub/../../secret.npy", "may not go up with '..'"),
    ("/etc/passwd", "not by an absolute path"),
    ("C:/x.npy", "not by an absolute path"),
    ("__import__('os').system('touch pwned')", ".npy, .npz or .csv"),
    ("x.pkl", ".npy, .npz or .csv"),
    ("x.npy; rm -rf /", ".npy, .npz or .csv"),
    ("", "absolute path"),
])
def test_data_file_names(tmp_path, path, expected):
    found = messages(model(target=f'data("{path}")'), tmp_path)
    assert any(expected in m for m in found), found


@pytest.mark.parametrize("string, expected", [
    ('"a\\\\b.npy"', "backslash"),
    ('"C:\\\\x.npy"', "backslash"),
    ('"a\nb.npy"', "not terminated"),
    ('"caf\u00e9.npy"', "U+00E9"),
    ('"tab\there.npy"', "U+0009"),
    ("'x.npy'", "double quotes"),
    ('"x.npy" + "y"', "string"),
])
def test_strings_with_escapes_quotes_and_newlines(tmp_path, string, expected):
    found = messages(model(target=f"data({string})"), tmp_path)
    assert any(expected in m for m in found), found


@pytest.mark.parametrize("imports, expected", [
    ("import os\n", "Cannot find the file 'os.tfm'"),
    ("import __import__\n", "Cannot find the file"),
    ("import stdlib.__init__\n", "no standard-library module '__init__'"),
    ("import stdlib.prelude\n", "always imported"),
    ("import sys.modules\n", "Cannot find the file 'sys/modules.tfm'"),
])
def test_imports_are_tfm_files_only(tmp_path, imports, expected):
    found = messages(model(imports=imports), tmp_path)
    assert any(expected in m for m in found), found


def test_import_paths_cannot_leave_the_folder(tmp_path):
    (tmp_path / "inner").mkdir()
    found = messages(model(imports="import ..secret\n"), tmp_path / "inner")
    assert found and "Unexpected" in found[0]


@pytest.mark.parametrize("kwargs, expected", [
    ("__class__ = 1", "has no parameter '__class__'"),
    ("width = __import__", "constant numbers"),
    ("width = eval(1)", "constant numbers"),
    ('activation = "__import__"', "must be one of"),
])
def test_keyword_arguments(tmp_path, kwargs, expected):
    found = messages(model(kwargs=kwargs), tmp_path)
    assert any(expected in m for m in found), found


def test_calls_of_python_names_are_unknown_functions(tmp_path):
    found = messages(model(extra="f(t) = eval(t) + exec(t) + open(t) + getattr(t)"), tmp_path)
    assert found == ["Unknown function 'eval'. "] or any("Unknown function" in m for m in found)


def test_no_user_text_reaches_a_python_parser():
    """No eval/exec/pickle/sympify-of-text anywhere in the compiler's sources."""
    forbidden = re.compile(r"\b(eval|exec|compile)\(|import pickle|\bpickle\.|"
                           r"allow_pickle\s*=\s*True|sympify\(|parse_expr\(|S\(\"")
    for folder in ("dsl", "compiler", "stdlib", "backends"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                code = line.split("#")[0]
                if path.name == "emitter.py" and code.strip().startswith("builtins.compile(tree,"):
                    continue  # the emitter byte-compiles the AST of its own output (no user text)
                code = code.replace("allow_pickle=False", "").replace("torch.compile(", "")
                assert not forbidden.search(code), \
                    f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
