"""The tfmc command line: exit codes, formatting in place, graph and info output."""

import json
import subprocess
import sys

import pytest

from tfm.driver import cli
from tfm.errors import InternalCompilerError

EXAMPLES = ["examples/moons.tfm", "examples/gaussian_to_gaussian.tfm"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_examples_clean(capsys, in_root):
    code, out, err = run(capsys, "check", *EXAMPLES)
    assert code == 0, err
    assert out.count(": ok") == len(EXAMPLES)


def test_check_reports_errors_with_exit_1(capsys, in_root):
    code, _, err = run(capsys, "check", "examples/moons.tfm", "tests/golden/bad/unknown_names.tfm")
    assert code == 1
    assert "Did you mean 'moons'?" in err
    assert "Traceback" not in err


def test_check_json_lines(capsys, in_root):
    code, out, _ = run(capsys, "check", "--json", "tests/golden/bad/duplicates.tfm")
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and all(r["severity"] == "error" and r["line"] >= 1 for r in rows)


def test_missing_file_is_a_user_error(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "nope.tfm"))
    assert code == 1
    assert "No such file" in err


def test_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


def test_internal_errors_exit_3(capsys, monkeypatch, in_root):
    def boom(path):
        raise InternalCompilerError("KeyError: 'x'")
    monkeypatch.setattr(cli, "compile_file", boom)
    code, _, err = run(capsys, "check", "examples/moons.tfm")
    assert code == 3
    assert "bug in tfm" in err


@pytest.mark.parametrize("sub", ["check", "fmt", "graph", "info"])
def test_help(sub):
    done = subprocess.run([sys.executable, "-m", "tfm.driver.cli", sub, "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "usage: tfmc" in done.stdout


MESSY = """# header
import stdlib.toy2d
model   M{dim 2 base x0~normal(0,1)   # base
target x1 ~ moons(noise=0.1)
interpolant x_t=(1-t)*x0+t*x1
network b=mlp(width=64) objective{b~velocity}}
"""


def test_fmt_rewrites_and_check_mode(capsys, tmp_path):
    path = tmp_path / "m.tfm"
    path.write_text(MESSY)
    code, out, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 1 and "would be reformatted" in out
    assert path.read_text() == MESSY
    code, _, _ = run(capsys, "fmt", str(path))
    assert code == 0
    formatted = path.read_text()
    assert "    base x0 ~ normal(0, 1)  # base\n" in formatted
    assert formatted.startswith("# header\nimport stdlib.toy2d\n\nmodel M {\n")
    code, _, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 0
    assert not list(tmp_path.glob("*.tfmc-fmt"))


def test_fmt_syntax_error_leaves_file(capsys, tmp_path):
    path = tmp_path / "m.tfm"
    path.write_text("model M {")
    code, _, err = run(capsys, "fmt", str(path))
    assert code == 1 and "Syntax error" in err
    assert path.read_text() == "model M {"


def test_fmt_check_examples(capsys, in_root):
    code, out, _ = run(capsys, "fmt", "--check", *EXAMPLES)
    assert code == 0, out


def test_graph_text_and_dot(capsys, in_root):
    code, out, _ = run(capsys, "graph", "tests/golden/good/energy_noise.tfm")
    assert code == 0
    lines = out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names.index("gamma") < names.index("interpolant")
    assert names.index("eps") < names.index("sde")
    assert "objective (objective) uses b, eta, uniform" in lines
    code, out, _ = run(capsys, "graph", "--dot", "examples/moons.tfm")
    assert code == 0 and out.startswith('digraph "Moons" {') and '"objective" -> "b";' in out


def test_info_json(capsys, in_root):
    code, out, _ = run(capsys, "info", "--json", "examples/moons.tfm")
    assert code == 0
    info = json.loads(out)
    assert info["dim"] == 2 and info["shape"] == [2]
    assert info["target"] == {"name": "moons", "args": {"noise": 0.05}}
    assert info["networks"][0]["constructor"]["args"]["width"] == 256
    assert info["objective"]["terms"] == [{"network": "b", "target": "velocity"}]
    assert info["train"]["steps"] == 5000


def test_info_text(capsys, in_root):
    code, out, _ = run(capsys, "info", "examples/gaussian_to_gaussian.tfm")
    assert code == 0
    assert "target       normal(mean = [2.0, -1.0], scale = [0.5, 1.5])" in out


def test_info_on_errors(capsys, in_root):
    code, _, err = run(capsys, "info", "tests/golden/bad/cycle.tfm")
    assert code == 1 and "cycle" in err
