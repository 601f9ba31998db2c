"""Golden files: every ``tests/golden/good/*.tfm`` checks clean and its ``tfmc info --json`` is
recorded; every ``tests/golden/bad/*.tfm`` gives exactly the recorded diagnostics (file, line,
column, underline, message, suggestion). Regenerate with ``pytest --update-golden``."""

import json
from pathlib import Path

import pytest

from tfm.driver.cli import main

GOLDEN = Path(__file__).parent / "golden"
GOOD = sorted((GOLDEN / "good").glob("*.tfm"))
BAD = sorted((GOLDEN / "bad").glob("*.tfm"))


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _compare(expected: Path, actual: str, update: bool):
    if update or not expected.exists():
        expected.write_text(actual)
        if not update:
            pytest.fail(f"{expected.name} did not exist; written now, check it in")
    assert actual == expected.read_text(), f"output differs from {expected}"


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good(path, capsys, in_root, update_golden):
    rel = path.relative_to(in_root).as_posix()
    code, out, err = _run(capsys, "check", rel)
    assert code == 0, err
    assert "error" not in err
    code, out, err = _run(capsys, "info", rel, "--json")
    assert code == 0, err
    _compare(path.with_suffix(".json"), out, update_golden)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad(path, capsys, in_root, update_golden):
    rel = path.relative_to(in_root).as_posix()
    code, out, err = _run(capsys, "check", rel)
    assert code == 1
    assert "Traceback" not in err
    assert f"in '{rel}', line " in err
    assert "^" in err
    _compare(path.with_suffix(".expected"), err, update_golden)


def test_there_are_goldens():
    assert len(GOOD) >= 3 and len(BAD) >= 15


DERIVE = sorted((GOLDEN / "derive").glob("*.tfm"))


@pytest.mark.parametrize("path", DERIVE, ids=lambda p: p.stem)
def test_derive(path, capsys, in_root, update_golden):
    """``tfmc derive`` for every stdlib interpolant, as text; JSON and LaTeX are well formed."""
    rel = path.relative_to(in_root).as_posix()
    code, out, err = _run(capsys, "derive", rel)
    assert code == 0, err
    _compare(path.with_suffix(".txt"), out, update_golden)
    code, out, err = _run(capsys, "derive", rel, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data["fields"]) == {"velocity", "score", "noise", "data", "base"}
    assert data["interpolant"]["affine"] is True
    code, out, err = _run(capsys, "derive", rel, "--format", "latex")
    assert code == 0 and "\\begin{align*}" in out and out.rstrip().endswith("\\end{align*}")


def test_every_stdlib_interpolant_has_a_derive_golden():
    from tfm.compiler.modules import Loader
    from tfm.dsl import syntax as S
    from tfm import stdlib
    module = Loader().load(stdlib.module_path("interpolants"))
    names = {d.name for d in module.syntax.items if isinstance(d, S.InterpolantDecl)}
    assert names <= {p.stem for p in DERIVE}
