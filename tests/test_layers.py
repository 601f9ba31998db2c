"""The layers import one way: errors/data_files/stdlib -> dsl -> compiler -> backends -> driver.

Every .py file of the package is parsed (statically, so imports inside functions, under
``if TYPE_CHECKING`` and in ``try`` blocks count too) and each import of a ``tfm`` module (or of
sympy) is checked against RULES below; a failure lists every offending import with file:line and
the rule it breaks. A second test imports each backend's runtime in a fresh interpreter and checks
that neither the compiler, the front end nor sympy came along (a runtime must load without them).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent


# --- the rules --------------------------------------------------------------------------------

class Rule(NamedTuple):
    name: str                             # a module, or a package and every module under it
    layer: int                            # may import its own layer and lower ones, never higher
    must_not_import: tuple[str, ...] = ()  # further forbidden (with everything under them)
    lazy_ok: tuple[str, ...] = ()          # may import these although higher, inside a function


# what a runtime needs no compiler for: emitted modules and saved runs load with the runtime alone
RUNTIME_MUST_NOT_IMPORT = (
    "tfm.compiler", "tfm.dsl", "tfm.driver", "tfm.backends.codegen",
    "tfm.backends.jax.emit", "tfm.backends.jax.printer",
    "tfm.backends.torch.emit", "tfm.backends.torch.printer",
    "sympy",
)

# A module follows the rule with the longest matching name ("tfm" matches the facade only).
RULES: tuple[Rule, ...] = (
    # layer 0: what every layer uses
    Rule("tfm", 0, lazy_ok=("tfm.driver",)),  # tfm/__init__.py, the facade: load() -> driver
    Rule("tfm.errors", 0),                    # diagnostics and the exception family
    Rule("tfm.data_files", 0),                # data-file headers
    Rule("tfm.stdlib", 0),                    # .tfm files and their __init__
    # layer 1: text -> syntax tree
    Rule("tfm.dsl", 1),
    # layer 2: IR, checks, derivations
    Rule("tfm.compiler", 2),
    # layer 3: code generation (codegen, {jax,torch}.{emit,printer}, the __init__s) and runtimes
    Rule("tfm.backends", 3),
    Rule("tfm.backends.runtime", 3, RUNTIME_MUST_NOT_IMPORT),
    Rule("tfm.backends.jax.runtime", 3, RUNTIME_MUST_NOT_IMPORT),
    Rule("tfm.backends.torch.runtime", 3, RUNTIME_MUST_NOT_IMPORT),
    # layer 4: command line, run folders
    Rule("tfm.driver", 4),
    Rule("tfm.__main__", 4),  # python -m tfm: the command line, for launchers such as torchrun
)

# the package's files: these folders (all of them) and the .py files at the root
PACKAGE_DIRS = ("dsl", "compiler", "backends", "driver", "stdlib")
SKIP_DIRS = {"__pycache__", "build", "dist", ".venv", "tests", "bench", "examples"}

# the runtimes imported in a fresh interpreter: (module, the array library it needs or None)
RUNTIMES = (
    ("tfm.backends.runtime.model", None),
    ("tfm.backends.jax.runtime", "jax"),
    ("tfm.backends.torch.runtime", "torch"),
)
NOT_WITH_A_RUNTIME = ("sympy", "tfm.compiler", "tfm.dsl")


# --- the checker ------------------------------------------------------------------------------

def _under(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def rule_of(module: str) -> Rule | None:
    """The rule of a tfm module: its longest matching entry of RULES (None if there is none)."""
    found = [r for r in RULES
             if module == r.name or (r.name != "tfm" and module.startswith(r.name + "."))]
    return max(found, key=lambda r: len(r.name), default=None)


def package_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package."""
    files = sorted(root.glob("*.py"))
    for folder in PACKAGE_DIRS:
        files += sorted(p for p in (root / folder).rglob("*.py")
                        if not SKIP_DIRS & set(p.relative_to(root).parts[:-1]))
    modules = {}
    for path in files:
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(["tfm", *parts])] = path
    return modules


class Import(NamedTuple):
    line: int
    target: str            # the absolute module imported
    lazy: bool             # inside a function
    typing: bool = False   # under ``if TYPE_CHECKING`` (never run)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str], source: str | None = None) -> list[Import]:
    """Every import in the file, resolved to absolute module names. ``from P import x`` imports
    the submodule P.x where there is one (else P itself); relative imports resolve against the
    module's package."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, typing: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, a.name, lazy, typing) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level > len(parts):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the package")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(node.lineno, sub if sub in known else base, lazy, typing))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (isinstance(node.func, ast.Name) and node.func.id == "__import__"
                   or isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
              and not node.args[0].value.startswith(".")):
            found.append(Import(node.lineno, node.args[0].value, lazy, typing))  # literal, dynamic
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            visit(node.test, lazy, typing)
            for child in node.body:
                visit(child, lazy, True)
            for child in node.orelse:
                visit(child, lazy, typing)
            return
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner, typing)

    visit(tree, False, False)
    return found


def import_chain(start: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """How importing ``start`` reaches a module under ``forbidden`` through the imports that run
    on import (module level, not under TYPE_CHECKING; importing a module first runs its
    packages' __init__): the steps as "file:line -> module", [] if none does."""
    modules = package_files(root)
    known = set(modules)
    came_from: dict[str, tuple[str, str] | None] = {start: None}
    queue = [start]
    while queue:
        module = queue.pop(0)
        if any(_under(module, f) for f in forbidden):
            steps = []
            while came_from[module] is not None:
                module, step = came_from[module][0], came_from[module][1] + f" -> {module}"
                steps.append(step)
            return steps[::-1]
        if module not in modules:
            continue
        edges = []
        parent = module.rpartition(".")[0]
        if parent:
            edges.append((parent, f"(package of {module})"))
        where = modules[module].relative_to(root).as_posix()
        edges += [(i.target, f"{where}:{i.line}")
                  for i in imports_of(module, modules[module], known) if not (i.lazy or i.typing)]
        for target, step in edges:
            if target not in came_from:
                came_from[target] = (module, step)
                queue.append(target)
    return []


def violations(root: Path = ROOT, sources: dict[str, str] | None = None) -> list[str]:
    """Every import that breaks RULES, as "file:line: importer imports target: the rule".
    ``sources`` (module -> text) stands in for files, for testing the checker itself."""
    modules = package_files(root)
    sources = sources or {}
    for module in sources:
        modules.setdefault(module, root / "<test>" / (module.replace(".", "/") + ".py"))
    known = set(modules)
    out = []
    for module, path in sorted(modules.items()):
        where = (path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path))
        rule = rule_of(module)
        if rule is None:
            out.append(f"{where}:1: {module} is in no layer: add it to RULES in tests/test_layers.py")
            continue
        seen = set()
        for imp in imports_of(module, path, known, sources.get(module)):
            target = imp.target
            if (imp.line, target) in seen:
                continue
            seen.add((imp.line, target))
            head = f"{where}:{imp.line}: {module} imports {target}"
            for forbidden in rule.must_not_import:
                if _under(target, forbidden):
                    out.append(f"{head}: runtime rule: {rule.name} must not import {forbidden} "
                               "(a runtime loads without the compiler)")
            if not _under(target, "tfm"):
                continue
            theirs = rule_of(target)
            if theirs is None:
                out.append(f"{head}: {target} is in no layer: add it to RULES")
            elif theirs.layer > rule.layer and not (imp.lazy and any(_under(target, ok)
                                                                     for ok in rule.lazy_ok)):
                lazy = " (lazily: " + ", ".join(rule.lazy_ok) + " only)" if rule.lazy_ok else ""
                out.append(f"{head}: layer rule: {rule.name} (layer {rule.layer}) must not import "
                           f"{theirs.name} (layer {theirs.layer}){lazy}")
    return out


# --- the tests --------------------------------------------------------------------------------

def test_layers_import_one_way():
    found = violations()
    assert not found, (f"{len(found)} import(s) against the layer rules:\n  " + "\n  ".join(found))


def test_every_file_is_seen_and_in_a_layer():
    modules = package_files()
    for name in ("tfm", "tfm.errors", "tfm.data_files", "tfm.dsl.parse", "tfm.compiler.ir",
                 "tfm.backends.runtime.model", "tfm.backends.jax.runtime", "tfm.driver.cli",
                 "tfm.stdlib"):
        assert name in modules, name
    assert not [m for m in modules if m.startswith(("tfm.tests", "tfm.bench", "tfm.examples"))]
    assert all(rule_of(m) is not None for m in modules), [m for m in modules if not rule_of(m)]


def test_the_checker_finds_planted_violations():
    """The checker on made-up modules: relative imports (``from . import x`` of a submodule, and
    of a name), imports in functions and under TYPE_CHECKING, a module in no layer."""
    sources = {
        "tfm.dsl.planted": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                           "    from ..compiler import ir\n",
        "tfm.compiler.planted": "def f():\n    from ..backends.codegen import spec\n",
        "tfm.backends.runtime.planted": "from ..jax import emit\nimport sympy.core\n"
                                        "from .. import BACKENDS\nfrom . import checkpoint\n",
        "tfm.errors_planted": "x = 1\n",
    }
    found = [v for v in violations(sources=sources) if "planted" in v]
    text = "\n".join(found)
    assert "tfm.dsl.planted imports tfm.compiler.ir: layer rule" in text
    assert "tfm.compiler.planted imports tfm.backends.codegen.spec: layer rule" in text
    assert "tfm.backends.runtime.planted imports tfm.backends.jax.emit: runtime rule" in text
    assert "tfm.backends.runtime.planted imports sympy.core: runtime rule" in text
    assert "imports tfm.backends:" not in text and "imports tfm.backends.runtime.checkpoint" not in text
    assert "tfm.errors_planted is in no layer" in text
    assert len(found) == 5, text


def test_the_facade_exception_is_lazy_only(tmp_path):
    """tfm/__init__.py may import the driver inside a function, and nothing else above layer 0."""
    (tmp_path / "__init__.py").write_text("import tfm.dsl\ndef load():\n    from .driver import run\n"
                                          "    from .compiler import ir\n")
    for folder in ("driver", "compiler", "dsl"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "driver" / "run.py").write_text("")
    (tmp_path / "compiler" / "ir.py").write_text("")
    found = violations(root=tmp_path)
    assert len(found) == 2, found
    assert found[0].startswith("__init__.py:1: tfm imports tfm.dsl: layer rule")
    assert found[1].startswith("__init__.py:4: tfm imports tfm.compiler.ir: layer rule")


def test_import_chain_follows_package_inits_but_not_type_checking(tmp_path):
    files = {"backends/__init__.py": "", "backends/jax/__init__.py": "from . import emit\n",
             "backends/jax/runtime/__init__.py": "def f():\n    import sympy\n",
             "backends/jax/emit.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                     "    import sympy\nimport tfm.compiler.ir\n",
             "compiler/__init__.py": "", "compiler/ir.py": ""}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert import_chain("tfm.backends.jax.runtime", NOT_WITH_A_RUNTIME, root=tmp_path) == [
        "(package of tfm.backends.jax.runtime) -> tfm.backends.jax",
        "backends/jax/__init__.py:1 -> tfm.backends.jax.emit",
        "backends/jax/emit.py:4 -> tfm.compiler.ir"]
    assert import_chain("tfm.compiler.ir", ("sympy",), root=tmp_path) == []


_CHILD = """
import importlib, json, sys
library, runtime = sys.argv[1], sys.argv[2]
if library:
    importlib.import_module(library)
before = set(sys.modules)
importlib.import_module(runtime)
print(json.dumps(sorted(m for m in set(sys.modules) - before
                        if any(m == p or m.startswith(p + ".") for p in json.loads(sys.argv[3])))))
"""


@pytest.fixture(scope="module")
def runtime_imports():
    """Each runtime imported in its own fresh interpreter, all at once (module -> process). The
    array library is imported first, so that only what the runtime itself loads counts."""
    started = {}
    for runtime, library in RUNTIMES:
        if library is None or importlib.util.find_spec(library) is not None:
            started[runtime] = subprocess.Popen(
                [sys.executable, "-c", _CHILD, library or "", runtime, json.dumps(NOT_WITH_A_RUNTIME)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield started
    for process in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("runtime,library", RUNTIMES, ids=[r for r, _ in RUNTIMES])
def test_runtime_loads_without_the_compiler(runtime_imports, runtime, library):
    if runtime not in runtime_imports:
        pytest.skip(f"{library} is not installed")
    out, err = runtime_imports[runtime].communicate(timeout=60)
    assert runtime_imports[runtime].returncode == 0, f"importing {runtime} failed:\n{err}"
    loaded = json.loads(out)
    if loaded:
        tops = sorted({m for m in loaded if "." not in m or m in ("tfm.compiler", "tfm.dsl")})
        chain = import_chain(runtime, NOT_WITH_A_RUNTIME)
        pytest.fail(f"importing {runtime} also loaded {', '.join(tops)} ({len(loaded)} modules"
                    ", the compiler's and the front end's: " + ", ".join(
                        m for m in loaded if m.startswith("tfm.")) + ")"
                    + ("; by\n  " + "\n  ".join(chain) if chain else ""), pytrace=False)
