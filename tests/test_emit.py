"""Both emitters (JAX and PyTorch): emitted modules parse, match their goldens, and compute
exactly what the derivations say (checked against ``sympy.lambdify`` with numpy at random
points, in float64)."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import numpy as np
import pytest
import sympy

from tfm.backends.codegen import spec as specs
from tfm.backends.runtime.spec import Spec
from tfm.compiler import ir
from tfm.compiler.pipeline import load_model

from backend_params import trains  # (tests/)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
MODELS = (sorted((GOLDEN / "derive").glob("*.tfm")) + sorted((GOLDEN / "good").glob("*.tfm"))
          + [p for p in sorted((ROOT / "examples").glob("*.tfm")) if trains(p)])
EXAMPLES = sorted((ROOT / "examples").glob("*.tfm")) + sorted((GOLDEN / "good").glob("*.tfm"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.fixture(params=["jax", "torch"])
def emit(request):
    """The backend's emitter (skipped where its array library is not installed)."""
    pytest.importorskip(request.param)
    return importlib.import_module(f"tfm.backends.{request.param}.emit")


def _arrays(emit):
    """float64 arrays of the backend, and back to numpy."""
    if emit.BACKEND == "torch":
        import torch
        return (lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)),
                lambda v: np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64),
                contextlib.nullcontext())
    import jax
    return (lambda a: np.asarray(a, dtype=np.float64), lambda v: np.asarray(v, dtype=np.float64),
            jax.enable_x64(True))


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_emitted_module_golden(path, monkeypatch, update_golden, emit):
    monkeypatch.chdir(ROOT)
    model = load_model(path.relative_to(ROOT))
    text = emit.emit(model)
    expected = GOLDEN / "emit" / f"{path.parent.name}_{emit.module_name(model)}.py"
    if update_golden or not expected.exists():
        expected.write_text(text)
        if not update_golden:
            pytest.fail(f"{expected.name} did not exist; written now, check it in")
    assert text == expected.read_text(), f"emitted code differs from {expected}"


@pytest.mark.parametrize("path", MODELS, ids=_id)
def test_emitted_functions_equal_the_derivations(path, tmp_path, emit):
    """interpolant, losses, fields, drifts, given_data and eps of the emitted module against
    lambdify of the derived expressions, at 64 random points with t in [0.05, 0.95] (float64)."""
    model = load_model(path)
    module = emit.load(emit.write(model, tmp_path))
    maths = specs.maths(model)
    rng = np.random.default_rng(0)
    n = 64
    values = {"t": rng.uniform(0.05, 0.95, n), "x0": rng.standard_normal(n),
              "x1": rng.standard_normal(n), "z": rng.standard_normal(n),
              "x": rng.standard_normal(n), "d": rng.standard_normal(n)}
    raw_out = {k: rng.standard_normal(n) for k in specs.output_keys(model).values()}
    symbols = {**{s: values[s] for s in values}, **{f"out_{k}": v for k, v in raw_out.items()}}
    array, back, precision = _arrays(emit)
    out = {k: array(v) for k, v in raw_out.items()}

    def reference(expr):
        free = sorted(expr.free_symbols, key=lambda s: s.name)
        f = sympy.lambdify(free, expr, modules="numpy")
        return np.broadcast_to(f(*(symbols[s.name] for s in free)), (n,))

    with precision:
        t, x0, x1, z, x, d = (array(values[k]) for k in ("t", "x0", "x1", "z", "x", "d"))
        got = {"interpolant": {"x_t": module.interpolant(t, x0, x1, z)},
               "losses": module.losses(t, x0, x1, z, out),
               "fields": module.fields(t, x, out),
               "field": {name: getattr(module, f"field_{name}")(t, x, out)
                         for name in maths["fields"]},
               "drifts": module.drifts(t, x, out),
               "given_data": {} if module.given_data is None else module.given_data(t, x, d),
               "eps": {name: getattr(module, f"eps_{name}")(t) for name in maths["eps"]}}
        for group, exprs in list(maths.items()) + [("field", maths["fields"])]:
            assert set(got[group]) == set(exprs), group
            for name, expr in exprs.items():
                want = reference(expr)
                have = np.broadcast_to(back(got[group][name]), (n,))
                np.testing.assert_allclose(have, want, rtol=1e-9, atol=1e-9,
                                           err_msg=f"{group}/{name}: {expr}")


def test_emitted_text_holds_no_user_text_but_identifiers_and_numbers(tmp_path, emit):
    """A data path with quotes and a model name reach the module only as repr of plain data."""
    folder = tmp_path
    np.save(folder / "it's.npy", np.zeros((4, 2)))
    (folder / "m.tfm").write_text('import stdlib.interpolants\nmodel M { dim 2\n'
                                  'base x0 ~ normal(0, 1)\ntarget x1 ~ data("it\'s.npy")\n'
                                  'interpolant x_t = linear\nnetwork b = mlp()\n'
                                  'objective { b ~ velocity }\n}\n')
    model = load_model(folder / "m.tfm")
    text = emit.emit(model)
    assert "'path': \"it's.npy\"" in text
    module = emit.load(emit.write(model, tmp_path / "out"))
    assert module.SPEC.target.args["path"] == "it's.npy"
    assert isinstance(module.SPEC, Spec) and ir.t.name == "t"


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.tfm")), ids=lambda p: p.stem)
def test_benchmark_models_compile_and_emit(path, tmp_path, emit):
    model = load_model(path)
    assert emit.load(emit.write(model, tmp_path)).SPEC.model == model.name
