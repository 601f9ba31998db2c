"""Golden files: every ``tests/golden/good/*.tfm`` checks clean and its ``tfmc info --json`` is
recorded; every ``tests/golden/bad/*.tfm`` gives exactly the recorded diagnostics (file, line,
column, underline, message, suggestion). Regenerate with ``pytest --update-golden``."""

from pathlib import Path

import pytest

from tfm.compiler.cli import main

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
