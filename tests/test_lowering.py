"""Syntax tree to IR: exact maths, name resolution, imports, shapes, data files, diagnostics."""

import textwrap

import numpy as np
import pytest
import sympy

from tfm.compiler import compile_text, load_model
from tfm.compiler import builtins as B
from tfm.compiler import ir
from tfm.compiler.expressions import ExprError
from tfm.compiler.modules import Loader
from tfm.compiler.signatures import bind, constant_scope
from tfm.dsl import TfmSyntaxError
from tfm.dsl import syntax as S
from tfm import stdlib

t, x0, x1, z = ir.t, ir.x0, ir.x1, ir.z


def model_text(body: str, imports: str = "") -> str:
    return f"{imports}\nmodel M {{\n{textwrap.indent(textwrap.dedent(body), '    ')}\n}}\n"


BASIC = """
dim 2
base x0 ~ normal(0, 1)
target x1 ~ normal(3, 1)
network b = mlp()
objective { b ~ velocity }
"""


def compiled(body: str, imports: str = "", folder="."):
    return compile_text(model_text(body, imports), "m.tfm", folder)


def ok(body: str, imports: str = "", folder="."):
    result = compiled(body, imports, folder)
    assert not result.errors, [d.message for d in result.errors]
    return result.model


def errors(body: str, imports: str = "", folder=".") -> list[str]:
    return [d.message for d in compiled(body, imports, folder).errors]


def test_gaussian_example_ir(in_root):
    model = load_model("examples/gaussian_to_gaussian.tfm")
    assert model.shape == (2,) and model.dim == 2
    assert model.interpolant.expr == (1 - t) * x0 + t * x1
    assert model.target.constructor.arg("mean") == (2.0, -1.0)
    assert model.target.constructor.arg("scale") == (0.5, 1.5)
    assert model.coupling.name == "independent"
    assert model.objective.weight == 1
    assert model.train["optimizer"].name == "adam"


def test_literals_are_exact_rationals():
    model = ok(BASIC + "gamma(t) = sqrt(0.1 * t * (1 - t))\n"
               "interpolant x_t = (1 - t) * x0 + t * x1 + gamma(t) * z")
    gamma = model.function("gamma").body
    assert gamma == sympy.sqrt(sympy.Rational(1, 10) * t * (1 - t))
    assert sympy.simplify(model.interpolant.expr.coeff(z) - gamma.subs(t, t)) == 0


def test_functions_inline_with_defaults_and_keywords():
    model = ok(BASIC + """
        g(s, a = 2, b = 1) = a * s + b
        interpolant x_t = (1 - g(t, b = 0) / 2) * x0 + g(t, 1, 0) * x1
    """)
    assert sympy.expand(model.interpolant.expr) == sympy.expand((1 - t) * x0 + t * x1)


def test_named_interpolant_with_arguments():
    model = ok(BASIC + "interpolant x_t = schrodinger_bridge(sigma = 0.5)",
               "import stdlib.interpolants")
    expected = (1 - t) * x0 + t * x1 + sympy.Rational(1, 2) * sympy.sqrt(t * (1 - t)) * z
    assert sympy.simplify(model.interpolant.expr - expected) == 0
    assert model.interpolant.uses_latent


def test_stdlib_interpolants_all_lower():
    loader = Loader()
    module = loader.load(stdlib.module_path("interpolants"))
    assert not loader.diagnostics
    names = [d.name for d in module.syntax.items if isinstance(d, S.InterpolantDecl)]
    for name in names:
        if name == "mirror":  # data to itself: needs x0 = x1, see the next test
            continue
        body = BASIC + f"interpolant x_t = {name}"
        if name == "ve":  # variance exploding: the base has the largest noise's spread
            assert any("violates I(0) = x0: beta(0) = 1" in m
                       for m in errors(body, "import stdlib.interpolants"))
            body = body.replace("normal(0, 1)", "normal(0, 50)")
        model = ok(body, "import stdlib.interpolants")
        assert model.interpolant.expr.free_symbols <= {t, x0, x1, z}


def test_mirror_needs_paired_copies_of_the_data(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((8, 2)))
    body = """
        base x0 ~ data("d.npy")
        target x1 ~ data("d.npy")
        coupling {coupling}
        interpolant x_t = mirror
        network b = mlp()
        network eta = mlp()
        objective {{ b ~ velocity  eta ~ noise }}
    """
    model = ok(body.format(coupling="paired"), "import stdlib.interpolants", folder=tmp_path)
    assert model.interpolant.expr.coeff(z) != 0
    messages = errors(body.format(coupling="independent"), "import stdlib.interpolants",
                      folder=tmp_path)
    assert any("violates I(0) = x0" in m for m in messages)


def test_every_stdlib_module_loads_and_every_primitive_binds_its_defaults():
    for name in stdlib.module_names():
        loader = Loader()
        module = loader.load(stdlib.module_path(name))
        assert not loader.diagnostics, (name, loader.diagnostics)
        for item in module.syntax.items:
            if isinstance(item, S.PrimitiveDecl) and all(p.default is not None
                                                         for p in item.params):
                ctor = bind(S.Call(item.name, (), ()), item, constant_scope(), {})
                assert [k for k, _ in ctor.args] == [p.name for p in item.params]


def test_dim_inferred_from_target():
    model = ok("""
        base x0 ~ normal(0, 1)
        target x1 ~ moons()
        interpolant x_t = (1 - t) * x0 + t * x1
        network b = mlp()
        objective { b ~ velocity }
    """, "import stdlib.toy2d")
    assert model.shape == (2,)


def test_relative_imports_and_import_cycles(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "sched.tfm").write_text("half(t) = t / 2\n")
    model = ok(BASIC + "interpolant x_t = (1 - 2 * half(t)) * x0 + 2 * half(t) * x1",
               "import lib.sched", folder=tmp_path)
    assert model.interpolant.expr == (1 - t) * x0 + t * x1
    (tmp_path / "a.tfm").write_text("import b\nfa(t) = t\n")
    (tmp_path / "b.tfm").write_text("import a\nfb(t) = t\n")
    messages = errors(BASIC + "interpolant x_t = (1 - t) * x0 + fa(t) * x1", "import a",
                      folder=tmp_path)
    assert any("cycle" in m and "a.tfm" in m for m in messages)


def test_imported_names_do_not_leak_transitively(tmp_path):
    # stdlib.interpolants imports stdlib.schedules; its functions are not re-exported
    messages = errors(BASIC + "interpolant x_t = vp_signal(1 - t) * x1 + (1 - t) * x0",
                      "import stdlib.interpolants")
    assert "Unknown function 'vp_signal'." in messages


def test_all_semantic_errors_reported_together():
    messages = errors("""
        dim 2
        base x0 ~ normal(0, 1)
        target x1 ~ normal(1, 1)
        a(t) = nope(t)
        interpolant x_t = (1 - t) * x0 + t * x1 + c(t)
        network b = mlp(widht = 3)
        objective { b ~ velocity  q ~ noise }
        train { stesp 3 }
    """)
    assert len(messages) == 5, messages


def test_warnings_for_unused_network_and_noise():
    result = compiled(BASIC + """
        network spare = mlp()
        noise eps(t) = 0.1
        interpolant x_t = (1 - t) * x0 + t * x1
    """)
    assert not result.errors
    warnings = [d.message for d in result.warnings]
    assert any("'spare' is not trained" in w for w in warnings)
    assert any("'eps' is not used" in w for w in warnings)


def test_energy_lowering():
    result = compiled("""
        dim 3
        base x0 ~ normal(0, 1)
        target x1 ~ normal(0, 1)
        energy U(x) = 0.5 * dot(x, x) + logsumexp(-sum((x - 1)^2), -norm(x)) + x[2]
        interpolant x_t = (1 - t) * x0 + t * x1
        network b = mlp()
        objective { b ~ velocity }
    """)
    assert not result.errors
    energy = result.model.energies[0].expr
    assert energy.has(B.VSum) and energy.has(B.LogSumExp)
    assert sympy.Indexed(sympy.IndexedBase("x"), 2) in energy.atoms(sympy.Indexed)


@pytest.mark.parametrize("expr, message", [
    ("2^100000", "too large"),
    ("1 / 0", "Division by zero"),
    ("0^-1", "infinite"),
    ("t(1)", "not a function"),
    ("sin", "is a function"),
    ("mlp(1)", "network"),
    ('"a"', "string"),
    ("[1, 2]", "list"),
    ("x0[1]", "indexed"),
    ("sum(t)", "energy"),
    ("min(t)", "at least 2"),
])
def test_expression_errors(expr, message):
    messages = errors(BASIC + f"f(t) = {expr}\ninterpolant x_t = (1 - t) * x0 + t * x1")
    assert any(message in m for m in messages), messages


def test_data_files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pts.npy", rng.normal(size=(10, 3)))
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 3)), b=np.zeros((4, 2)))
    (tmp_path / "pts.csv").write_text("u,v,w\n1,2,3\n4,5,6\n")
    (tmp_path / "bad.csv").write_text("1,2,3\n4,x,6\n")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 4, dtype=object).reshape(2, 2),
            allow_pickle=True)

    def with_target(spec):
        return compiled(f"""
            base x0 ~ normal(0, 1)
            target x1 ~ {spec}
            interpolant x_t = (1 - t) * x0 + t * x1
            network b = mlp()
            objective {{ b ~ velocity }}
        """, folder=tmp_path)

    assert with_target('data("pts.npy")').model.shape == (3,)
    assert with_target('data("pts.csv")').model.shape == (3,)
    assert with_target('data("two.npz", key = "b")').model.shape == (2,)
    assert "several arrays" in with_target('data("two.npz")').errors[0].message
    bad = with_target('data("bad.csv")').errors[0]
    assert bad.kind == "Data" and "row 2" in bad.message
    assert "object" in with_target('data("obj.npy")').errors[0].message
    assert "does not exist" in with_target('data("none.npy")').errors[0].message
    assert ".npy, .npz or .csv" in with_target('data("x.pkl")').errors[0].message


def test_syntax_error_in_imported_file_names_that_file(tmp_path):
    (tmp_path / "broken.tfm").write_text("f(t) = (t\n")
    with pytest.raises(TfmSyntaxError) as exc:
        compiled(BASIC, "import broken", folder=tmp_path)
    assert "broken.tfm" in exc.value.render()


def test_model_order_puts_dependencies_first():
    model = ok(BASIC + """
        c(t) = b2(t) + 1
        b2(t) = a(t) * 2
        a(t) = t
        interpolant x_t = (1 - a(t)) * x0 + a(t) * x1
    """)
    order = list(model.order)
    assert order.index("a") < order.index("b2") < order.index("c")
    assert order.index("a") < order.index("interpolant")
    assert [f.name for f in model.functions] == [n for n in order if n in {"a", "b2", "c"}]


def test_expr_error_type_is_internal_to_the_compiler():
    assert not issubclass(ExprError, TfmSyntaxError)
