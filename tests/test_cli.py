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


# --- tfmc stdlib ---------------------------------------------------------------------------------

def test_stdlib_lists_every_module_with_signatures_and_docs(capsys):
    code, out, _ = run(capsys, "stdlib")
    assert code == 0
    assert out.startswith("prelude (every file sees it)\n")
    for heading in ("stdlib.interpolants (import stdlib.interpolants)",
                    "stdlib.targets (import stdlib.targets)", "stdlib.toy2d (import stdlib.toy2d)"):
        assert heading in out
    assert "  primitive distribution normal(mean: vector = 0, scale: vector = 1)\n" in out
    assert "  interpolant schrodinger_bridge(sigma = 1)\n      Linear with Brownian-bridge latent " \
        "noise: the Schrodinger-bridge interpolant of SB-CFM.\n" in out
    assert "      flow_mh: the independence Metropolis-Hastings kernel" in out
    assert "  vp_beta(tau, beta_min = 0.1, beta_max = 20)\n" in out


def test_stdlib_json_and_one_module(capsys):
    from tfm.compiler.modules import Loader
    from tfm.dsl import syntax as S
    from tfm import stdlib

    code, out, _ = run(capsys, "stdlib", "--json", "prelude")
    assert code == 0
    entries = json.loads(out)
    prelude = Loader().load(stdlib.PRELUDE).syntax
    assert [e["name"] for e in entries] == [d.name for d in prelude.items
                                            if isinstance(d, S.PrimitiveDecl)]
    normal = next(e for e in entries if e["name"] == "normal")
    assert normal["kind"] == "distribution" and normal["params"][1] == {
        "name": "scale", "type": "vector", "default": "1"}
    assert all(e["doc"] for e in entries), [e["name"] for e in entries if not e["doc"]]
    code, out, _ = run(capsys, "stdlib", "stdlib.toy2d")
    assert code == 0 and "moons: two interleaved half circles" in out and "prelude" not in out


def test_stdlib_unknown_module(capsys):
    code, _, err = run(capsys, "stdlib", "interpolant")
    assert code == 1
    assert "The standard library has no module 'interpolant'." in err
    assert "Did you mean 'interpolants'?" in err


# --- data far from unit scale, errors through the API ------------------------------------------

def test_data_far_from_unit_scale_is_a_warning_with_the_remedy(capsys, tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pixels.npy", rng.integers(0, 17, size=(50, 2)).astype(np.float32))
    (tmp_path / "m.tfm").write_text(
        'import stdlib.interpolants\nmodel M {\n    base x0 ~ normal(0, 1)\n'
        '    target x1 ~ data("pixels.npy")\n    interpolant x_t = linear\n'
        '    network b = mlp()\n    objective { b ~ velocity }\n}\n')
    code, out, err = run(capsys, "check", str(tmp_path / "m.tfm"))
    assert code == 0 and "ok (1 warning)" in out
    assert "The samples in 'pixels.npy' have mean" in err
    assert "far from the scale 1 of the normal base." in err
    assert "Standardise the data (subtract the mean, divide by the standard deviation; " \
        "pixels: to [-1, 1]), or give the normal the data's scale" in err
    (tmp_path / "w.tfm").write_text((tmp_path / "m.tfm").read_text().replace(
        "normal(0, 1)", "normal(8, 5)"))
    code, out, err = run(capsys, "check", str(tmp_path / "w.tfm"))
    assert code == 0 and "warning" not in err


def test_errors_through_the_api_read_as_the_command_line_prints_them(tmp_path):
    import tfm
    from tfm.errors import TfmError

    path = tmp_path / "m.tfm"
    path.write_text("import stdlib.toy2d\nmodel M {\n    dim 2\n    base x0 ~ normal(0, 1)\n"
                    "    target x1 ~ mons()\n}\n")
    with pytest.raises(TfmError) as caught:
        tfm.load(path, backend="jax")
    text = str(caught.value)
    assert text == caught.value.render()
    assert "m.tfm', line 5, column" in text and "^^^^" in text
    assert "Did you mean 'moons'?" in text
