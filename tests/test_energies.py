"""Energies written in the language (compiler/arrays.py, printed once on the array API by
backends/codegen/emitter.py), checked in both backends: each construct against a float64 numpy
reference at random points, gradients (the backend's autodiff) and Hessian-vector products
against finite differences; the examples' phi^4 and logistic posterior against the stdlib
targets; constants read from .npy/.npz/.csv files; compile-time errors with their positions; a
non-finite energy at the initial states; and the same chains in both backends from the same
draws on an emitted energy. The ``backend`` fixture (conftest.py) runs each test that takes
it for JAX and for PyTorch (tests/backend_params.py's BACKENDS)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import tfm
from tfm.backends.runtime import densities
from tfm.backends.runtime.mcmc import KERNELS, init_state, potential
from tfm.backends.runtime.spec import Call
from tfm.compiler.pipeline import compile_model, compile_text
from tfm.driver.run import build
from tfm.errors import TfmDataError, TfmRuntimeError

ROOT = Path(__file__).resolve().parent.parent
RNG_SEED = 11

M = np.array([1.0, 2.0, 3.0])
A = np.array([[1.0, 0.5, -0.2], [0.3, -1.0, 0.4], [0.0, 0.2, 0.8]])
B = np.array([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.7]])
K = np.array([[0.5, 0.1, 0.0, -0.2], [0.1, 0.4, 0.3, 0.0],
              [0.0, -0.3, 0.6, 0.1], [0.2, 0.0, 0.1, 0.7]])


def _lines(matrix) -> str:
    return "[" + ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]"
                           for row in matrix) + "]"


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _lse(v, axis):
    top = np.max(v, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(v - top), axis=axis, keepdims=True)) + top, axis)


# name -> (the energy in the language, its float64 numpy reference on a batch x (n, 3))
VECTOR_ENERGIES = {
    "elementwise": (
        "sum(exp(0.3 * x) + log1p(x^2) + softplus(x) + sigmoid(x) + tanh(x) + abs(x)"
        " + sqrt(x^2 + 1) + expm1(0.2 * x))",
        lambda x: np.sum(np.exp(0.3 * x) + np.log1p(x ** 2) + np.logaddexp(0, x) + _sigmoid(x)
                         + np.tanh(x) + np.abs(x) + np.sqrt(x ** 2 + 1) + np.expm1(0.2 * x),
                         axis=1)),
    "broadcast_matmul": (  # vector broadcasting, matrix @ batched vector, batched vector @ matrix
        "sum((x - m)^2 / m) + sum(x @ B) + dot(A @ x, x)",
        lambda x: (np.sum((x - M) ** 2 / M, axis=1) + np.sum(x @ B, axis=1)
                   + np.sum((x @ A.T) * x, axis=1))),
    "vector_products": (  # vector @ vector, matrix @ matrix in a sum, norm, index of x
        "x @ m + sum(A @ A) * x[0] + norm(x - m)",
        lambda x: x @ M + np.sum(A @ A) * x[:, 0] + np.linalg.norm(x - M, axis=1)),
    "batched_matrices": (  # (A * x) is a matrix per sample: @ on both sides, and dot of matrices
        "sum((A * x) @ m) + sum(m @ (A * x)) + x @ (A * x) @ m + dot(A * x, A)",
        lambda x: (np.einsum("ij,nj,j->n", A, x, M) + np.einsum("i,ij,nj->n", M, A, x)
                   + np.einsum("ni,ij,nj,j->n", x, A, x, M) + np.einsum("ij,nj,ij->n", A, x, A))),
    "lse": (  # over a vector (batched and constant), and of numbers
        "logsumexp(-(x - m)^2) + logsumexp(x[0], x[1] * m[1], 1.0) + logsumexp(m) * x[2]",
        lambda x: (_lse(-(x - M) ** 2, 1)
                   + _lse(np.stack([x[:, 0], x[:, 1] * M[1], np.ones(len(x))], 1), 1)
                   + _lse(M, 0) * x[:, 2])),
    "roll_index": (
        "dot(roll(x, 1), x) + sum(roll(x, -1, 0) * m) + x[2] * m[1] + (A @ x)[1]",
        lambda x: (np.sum(np.roll(x, 1, axis=1) * x, axis=1)
                   + np.sum(np.roll(x, -1, axis=1) * M, axis=1) + x[:, 2] * M[1]
                   + (x @ A.T)[:, 1])),
    "min_max_function_pi": (  # f is the model's scalar function, applied elementwise
        "sum(max(x, 0.5) + min(x, m, 2.5)) + sum(f(x)) + pi * x[1] + sum(g(x, m))",
        lambda x: (np.sum(np.maximum(x, 0.5) + np.minimum(np.minimum(x, M), 2.5), axis=1)
                   + np.sum(x ** 2 + np.sin(x), axis=1) + math.pi * x[:, 1]
                   + np.sum(x * M / (1 + M ** 2), axis=1))),
}

VECTOR_MODEL = f"""
model Energies {{
    dim 3
    constant m = [1, 2, 3]
    constant A = {_lines(A)}
    constant B = {_lines(B)}
    f(u) = u^2 + sin(u)
    g(u, v) = u * v / (1 + v^2)
    base x0 ~ normal(0, 1)
{chr(10).join(f"    energy {name}(x) = {text}" for name, (text, _) in VECTOR_ENERGIES.items())}
    target x1 ~ energy(elementwise)
    sampler s = rwm()
}}
"""


def _lattice_reference(phi):
    n = len(phi)
    return (np.sum(phi * np.roll(phi, 1, axis=1), axis=(1, 2))
            + 0.5 * np.sum(phi * np.roll(phi, 1, axis=2), axis=(1, 2))
            + np.sum(phi ** 2 + 0.25 * phi ** 4, axis=(1, 2)) + phi.reshape(n, -1)[:, 5]
            + 0.1 * np.sum((K @ phi) * phi, axis=(1, 2)) + 0.2 * np.sum(phi @ K, axis=(1, 2))
            + np.sum(np.roll(phi, 1, axis=2) * K, axis=(1, 2)))


LATTICE_MODEL = f"""
model Lattice {{
    dim [4, 4]
    constant K = {_lines(K)}
    base x0 ~ normal(0, 1)
    energy L(phi) = sum(phi * roll(phi, 1, 0)) + 0.5 * sum(phi * roll(phi, 1, 1))
                    + sum(phi^2 + 0.25 * phi^4) + phi[5] + 0.1 * dot(K @ phi, phi)
                    + 0.2 * sum(phi @ K) + sum(roll(phi, 1, 1) * K)
    target x1 ~ energy(L)
    sampler s = rwm()
}}
"""

# every energy: name -> (shape of a sample, numpy reference)
REFERENCES = {name: ((3,), ref) for name, (_, ref) in VECTOR_ENERGIES.items()}
REFERENCES["L"] = ((4, 4), _lattice_reference)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def models(backend, tmp_path_factory):
    """The two models of this file's energies, built once per backend: energy name -> model."""
    folder = tmp_path_factory.mktemp(f"energies_{backend}")
    out = {}
    for file, text in (("energies.tfm", VECTOR_MODEL), ("lattice.tfm", LATTICE_MODEL)):
        model = tfm.load(_write(folder, file, text), backend=backend, folder=folder / file[:-4])
        out.update({name: model for name in model.module.ENERGIES})
    assert set(out) == set(REFERENCES)
    return out


def _points(shape, n=5, seed=RNG_SEED):
    return np.random.default_rng(seed).standard_normal((n,) + shape)


def _emitted(model, name):
    """x -> U(x) of the emitted energy ``name``, on the backend's arrays."""
    fn, xp, constants = model.module.ENERGIES[name], model.ops.exact_xp, model.constants
    return lambda x: fn(xp, x, constants)


def _numpy(model, value):
    return np.asarray(model.ops.numpy(value), np.float64)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_an_emitted_energy_equals_numpy(models, name):
    model = models[name]
    shape, reference = REFERENCES[name]
    x = _points(shape)
    x32 = x.astype(np.float32)
    value = _numpy(model, _emitted(model, name)(model.ops.asarray(x32)))
    assert value.shape == (5,)
    expected = reference(x32.astype(np.float64))
    np.testing.assert_allclose(value, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_energies_take_their_matrix_products_in_full_float32(backend_ops):
    """``ops.exact_xp``, the namespace energies are evaluated in, multiplies matrices in full
    float32 precision on every device (a GPU's TF32 products would be ~1e-3 off), and is the
    array namespace otherwise."""
    _, ops = backend_ops
    a, b = np.random.default_rng(0).standard_normal((2, 256, 256)).astype(np.float32)
    got = np.asarray(ops.numpy(ops.exact_xp.matmul(ops.asarray(a), ops.asarray(b))), np.float64)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-6
    assert ops.exact_xp.sum is ops.xp.sum


def _central_gradient(f, x, h=1e-6):
    """d f / d x of f: (n, *shape) -> (n,), point by point, by central differences."""
    grad = np.zeros_like(x)
    flat = grad.reshape(len(x), -1)
    for i in range(flat.shape[1]):
        e = np.zeros(flat.shape[1])
        e[i] = h
        e = e.reshape(x.shape[1:])
        flat[:, i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_the_backends_gradient_equals_finite_differences(models, name):
    model = models[name]
    shape, reference = REFERENCES[name]
    x = _points(shape, seed=RNG_SEED + 1).astype(np.float32).astype(np.float64)
    value, grad = model.ops.value_and_grad(_emitted(model, name),
                                           model.ops.asarray(x.astype(np.float32)))
    expected = _central_gradient(reference, x)
    np.testing.assert_allclose(_numpy(model, value), reference(x), rtol=2e-5, atol=1e-4)
    assert _numpy(model, grad).shape == x.shape
    np.testing.assert_allclose(_numpy(model, grad), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["lse", "L"])
def test_hessian_vector_products_equal_finite_differences_of_the_gradient(models, name):
    """ops.hvp against central differences, along v, of the numpy gradient (itself central
    differences of the float64 reference)."""
    model = models[name]
    shape, reference = REFERENCES[name]
    rng = np.random.default_rng(RNG_SEED + 2)
    x = rng.standard_normal((4,) + shape).astype(np.float32).astype(np.float64)
    v = rng.standard_normal((4,) + shape).astype(np.float32).astype(np.float64)
    h = 1e-4
    expected = (_central_gradient(reference, x + h * v, 1e-5)
                - _central_gradient(reference, x - h * v, 1e-5)) / (2 * h)
    ops = model.ops
    got = _numpy(model, ops.hvp(_emitted(model, name), ops.asarray(x.astype(np.float32)),
                                ops.asarray(v.astype(np.float32))))
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


def test_logsumexp_of_plain_numbers(backend, tmp_path):
    text = VECTOR_MODEL.replace("    target x1", "    energy N(x) = sum(x^2) + logsumexp(1, 2)\n"
                                "    target x1")
    model = tfm.load(_write(tmp_path, "n.tfm", text), backend=backend, folder=tmp_path / "b")
    x = _points((3,))
    got = _numpy(model, _emitted(model, "N")(model.ops.asarray(x.astype(np.float32))))
    np.testing.assert_allclose(got, np.sum(x ** 2, 1) + np.logaddexp(1, 2), rtol=1e-5)


# --- the examples against the stdlib targets ------------------------------------------------

_EXAMPLES: dict = {}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """(file, backend) -> the example's model, built once for the module."""
    def get(file: str, backend: str):
        pytest.importorskip(backend)
        if (file, backend) not in _EXAMPLES:
            folder = tmp_path_factory.mktemp(f"{Path(file).stem}_{backend}")
            _EXAMPLES[file, backend] = tfm.load(ROOT / "examples" / file, backend=backend,
                                                folder=folder)
        return _EXAMPLES[file, backend]
    yield get
    _EXAMPLES.clear()


def test_the_language_phi4_equals_the_stdlib_phi4(backend, example):
    model = example("phi4.tfm", backend)
    assert model.shape == (8, 8)
    stdlib = densities.energy(model.ops, Call("phi4", {"mass2": -4.0, "lam": 8.0}), (8, 8))
    phi = model.ops.asarray(_points((8, 8), n=6).astype(np.float32))
    got, expected = _numpy(model, model.energy(phi)), _numpy(model, stdlib(phi))
    assert np.all(np.abs(expected) > 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_the_logistic_example_equals_the_stdlib_posterior(backend, example):
    model = example("logistic_posterior.tfm", backend)
    assert model.constants["X"].shape == (569, 31) and model.constants["y"].shape == (569,)
    stdlib = densities.energy(model.ops, Call("breast_cancer_logistic", {}), (31,))
    w = model.ops.asarray((0.3 * _points((31,), n=6)).astype(np.float32))
    got, expected = _numpy(model, model.energy(w)), _numpy(model, stdlib(w))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- constants from files ---------------------------------------------------------------------

CONSTANTS_MODEL = """
model Constants {
    dim 3
    constant v = load("v.npy")
    constant W = load("w.npz", key = "W")
    constant c = load("c.csv")
    constant C = load("cc.csv")
    base x0 ~ normal(0, 1)
    energy U(x) = sum(v * x) + sum(W @ x) + sum(c * x) + sum(C @ x)
    target x1 ~ energy(U)
    sampler s = rwm()
}
"""


def _constant_files(folder: Path, v=None):
    rng = np.random.default_rng(3)
    files = {"v": rng.standard_normal(3) if v is None else v,
             "W": rng.standard_normal((2, 3)), "c": rng.standard_normal(3),
             "C": rng.standard_normal((4, 3))}
    np.save(folder / "v.npy", files["v"])
    np.savez(folder / "w.npz", other=np.zeros(2), W=files["W"])
    (folder / "c.csv").write_text("value\n" + "".join(f"{float(a)!r}\n" for a in files["c"]))
    (folder / "cc.csv").write_text("".join(",".join(repr(float(a)) for a in row) + "\n"
                                           for row in files["C"]))
    return files


def test_constants_are_read_from_npy_npz_and_csv(backend, tmp_path):
    files = _constant_files(tmp_path)
    model = tfm.load(_write(tmp_path, "c.tfm", CONSTANTS_MODEL), backend=backend,
                     folder=tmp_path / "b")
    shapes = {"v": (3,), "W": (2, 3), "c": (3,), "C": (4, 3)}
    for name, shape in shapes.items():
        value = _numpy(model, model.constants[name])
        assert value.shape == shape, name
        np.testing.assert_allclose(value, files[name], rtol=1e-6)
    x = _points((3,))
    expected = x @ (files["v"] + files["W"].sum(0) + files["c"] + files["C"].sum(0))
    np.testing.assert_allclose(model.energy_of(x), expected, rtol=1e-5, atol=1e-5)


def test_a_constant_file_that_changed_shape_since_compiling_is_a_clear_error(backend, tmp_path):
    _constant_files(tmp_path)
    path = _write(tmp_path, "c.tfm", CONSTANTS_MODEL)
    compilation = compile_model(path)
    np.save(tmp_path / "v.npy", np.ones(4))
    with pytest.raises(TfmDataError) as error:
        build(path, backend, tmp_path / "b", compilation)
    message = str(error.value)
    assert "'v'" in message and "[4]" in message and "[3]" in message, message


@pytest.mark.parametrize("where", [(1,), (2, 0)])
def test_a_nan_in_a_constant_file_names_its_index(backend, tmp_path, where):
    _constant_files(tmp_path)
    name, file = ("v", "v.npy") if len(where) == 1 else ("C", "cc.npy")
    text = CONSTANTS_MODEL.replace('load("cc.csv")', 'load("cc.npy")')
    values = np.ones((3,) if name == "v" else (4, 3))
    values[where] = np.nan
    np.save(tmp_path / "cc.npy", np.ones((4, 3)))
    np.save(tmp_path / file, values)
    with pytest.raises(TfmDataError) as error:
        tfm.load(_write(tmp_path, "c.tfm", text), backend=backend, folder=tmp_path / "b")
    message = str(error.value)
    assert f"'{name}'" in message and f"index {where}" in message, message


# --- compile-time errors ------------------------------------------------------------------------

HEAD = """model E {
    dim 3
    constant m = [1, 2, 3]
    constant n = [1, 2]
    constant A2 = [[1, 0], [0, 1]]
    base x0 ~ normal(0, 1)
"""
TAIL = "    target x1 ~ energy(U)\n"

# (lines after HEAD, the text the error's span starts at (its first occurrence after HEAD),
#  pieces of the message, the diagnostic's kind)
COMPILE_ERRORS = {
    "vector_energy": ("    energy U(x) = x * m\n", "x * m",
                      ["energy 'U' is a vector; an energy is a number"], "Semantic"),
    "index_out_of_range": ("    energy U(x) = x[3]\n", "3]",
                           ["Index 3 is out of range", "0 to 2"], "Semantic"),
    "inner_sizes": ("    energy U(x) = sum(A2 @ x)\n", "A2 @",
                    ["inner sizes", "[2, 2]", "[3]"], "Semantic"),
    "broadcast": ("    energy U(x) = sum(x + n)\n", "x + n",
                  ["do not fit", "[3]", "[2]"], "Semantic"),
    "roll_axis": ("    energy U(x) = sum(roll(x, 1, 1))\n", "1))",
                  ["Axis 1 is out of range"], "Semantic"),
    "unknown_function": ("    energy U(x) = sum(sofplus(x))\n", "sofplus",
                         ["Unknown function 'sofplus'"], "Semantic"),
    "missing_file": ('    constant D = load("missing.npy")\n    energy U(x) = sum(x)\n',
                     "load(", ["missing.npy", "does not exist"], "Data"),
    "list_in_energy": ("    energy U(x) = sum(x * [1, 2, 3])\n", "[1, 2, 3])",
                       ["A list cannot be used inside an energy"], "Semantic"),
    "ragged_constant": ("    constant R = [[1, 2], [3]]\n    energy U(x) = sum(x)\n",
                        "[[1, 2]", ["different lengths"], "Semantic"),
    "ode_sampler": ("    energy U(x) = sum(x^2)\n    sampler e = euler()\n", "euler()",
                    ["'e' (euler)", "no networks"], "Semantic"),
    "smc_of_no_kernel": ("    energy U(x) = sum(x^2)\n    sampler e = euler()\n"
                         "    sampler q = smc(kernel = e)\n", "smc(",
                         ["'e' is not an MCMC kernel"], "Semantic"),
    "accept": ("    energy U(x) = sum(x^2)\n    sampler s = mala(accept = 1.5)\n", "mala(",
               ["'accept'", "(0, 1)", "1.5"], "Semantic"),
}


def _position(text: str, piece: str, after: int) -> tuple[int, int]:
    offset = text.index(piece, after)
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)


@pytest.mark.parametrize("case", sorted(COMPILE_ERRORS))
def test_compile_errors_have_their_message_and_position(case, tmp_path):
    lines, at, pieces, kind = COMPILE_ERRORS[case]
    text = HEAD + lines + TAIL + ("" if "sampler" in lines else "    sampler s = rwm()\n") + "}\n"
    errors = compile_text(text, folder=tmp_path).errors
    matching = [e for e in errors if all(p in e.message for p in pieces)]
    assert matching, [e.message for e in errors]
    error = matching[0]
    assert error.kind == kind
    assert (error.span.line, error.span.column) == _position(text, at, len(HEAD)), error.span
    if case == "unknown_function":
        assert error.suggestion == "Did you mean 'softplus'?"


def test_a_missing_constant_file_gives_only_its_data_error(tmp_path):
    text = HEAD + '    constant D = load("missing.npy")\n    energy U(x) = sum(D * x)\n' + TAIL \
        + "    sampler s = rwm()\n}\n"
    errors = compile_text(text, folder=tmp_path).errors
    assert [e.kind for e in errors] == ["Data"], [e.message for e in errors]


def test_an_mcmc_sampler_in_a_model_with_networks_needs_a_target_with_an_energy(tmp_path):
    """After training, a model with an interpolant may sample its target's energy (the normal
    target's is -log p); a data file has none, which is an error at the sampler."""
    from backend_params import POTENTIAL
    text = POTENTIAL.replace("    sampler ode", "    sampler k = mala()\n    sampler ode")
    assert not compile_text(text, folder=tmp_path).errors
    np.save(tmp_path / "p.npy", np.zeros((8, 2), np.float32))
    text = text.replace("target x1 ~ normal(mean = [1, 1], scale = 1)",
                        'target x1 ~ data("p.npy")')
    errors = compile_text(text, folder=tmp_path).errors
    assert len(errors) == 1, [e.message for e in errors]
    assert "'k' (mala) samples the target's energy, but the target is a data file" in \
        errors[0].message
    assert (errors[0].span.line, errors[0].span.column) == _position(text, "mala()", 0)


# --- a non-finite energy at the initial states ------------------------------------------------

def test_a_non_finite_energy_at_the_initial_states_names_the_chain_and_value(backend, tmp_path):
    text = """
model Log {
    dim 3
    base x0 ~ normal(0, 1)
    energy U(x) = sum(log(x))
    target x1 ~ energy(U)
    sampler s = rwm(chains = 8, warmup = 0, draws = 2)
}
"""
    model = tfm.load(_write(tmp_path, "log.tfm", text), backend=backend, folder=tmp_path / "b")
    x0 = model.ops.numpy(model.base_draws(8, 0))
    bad = np.flatnonzero(np.any(x0 <= 0, axis=1))
    assert bad.size
    with pytest.raises(TfmRuntimeError) as error:
        model.run(seed=0)
    message = str(error.value)
    assert f"initial state of chain {bad[0]} (U = nan)" in message, message
    assert f"{bad.size} of 8" in message, message


# --- the same chains in both backends -------------------------------------------------------

@pytest.mark.parametrize("kernel, args", [("mala", {"step": 0.06}),
                                          ("hmc", {"step": 0.06, "leapfrog": 5})])
def test_both_backends_give_the_same_chains_on_an_emitted_energy(example, kernel, args):
    """The logistic posterior of examples/logistic_posterior.tfm: 16 chains from the same numpy
    initial states, 10 steps of the kernel with the same numpy draws in JAX and torch."""
    k = KERNELS[kernel]
    n, steps = 16, 10
    rng = np.random.default_rng(RNG_SEED + 3)
    x0 = (0.1 * rng.standard_normal((n, 31))).astype(np.float32)
    draws = [(rng.standard_normal((n, 31)).astype(np.float32),
              rng.uniform(size=n).astype(np.float32)) for _ in range(steps)]
    paths = []
    for backend in ("jax", "torch"):
        model = example("logistic_posterior.tfm", backend)
        ops = model.ops
        pot = potential(ops, model.energy, gradients=True)
        step = lambda state, eps, d: k.step(ops, pot, state, eps, d, args)  # noqa: E731
        if backend == "jax":
            import jax
            step = jax.jit(step)
        state = init_state(ops, [(k, args)], pot, ops.asarray(x0))
        path, accepted = [], []
        for given in draws:
            state, accept = step(state, ops.asarray(args["step"]),
                                 tuple(ops.asarray(d) for d in given))
            path.append((ops.numpy(state[0]), ops.numpy(state[1])))
            accepted.append(ops.numpy(accept))
        paths.append((path, np.mean(accepted)))
    (jax_path, jax_accept), (torch_path, torch_accept) = paths
    assert 0.2 < jax_accept < 0.95 and abs(jax_accept - torch_accept) < 1e-3
    for (xj, uj), (xt, ut) in zip(jax_path, torch_path):
        np.testing.assert_allclose(xj, xt, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(uj, ut, rtol=1e-4)
    assert np.mean(np.any(jax_path[-1][0] != x0, axis=1)) > 0.5
