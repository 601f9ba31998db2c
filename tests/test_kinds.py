"""Kinds, not branches: a new sampler kind takes its prelude line, its compiler signature and one
runtime module, and nothing else. This test adds Ralston's second-order Runge-Kutta method as a
sampler kind the way docs/architecture.md says (the prelude line goes into a copy of the
standard library, the signature and the runtime kind are registered here), then samples and
scores with it in both backends. It also checks every emitted module against the protocol."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

import tfm
from tfm import stdlib
from tfm.backends.runtime import protocol
from tfm.backends.runtime.ops import tree_map
from tfm.backends.runtime.samplers import SAMPLERS, SamplerKind
from tfm.compiler import kinds
from tfm.compiler.pipeline import load_model
from tfm.errors import TfmSemanticError

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]


class Ralston(SamplerKind):
    """The one runtime module of the new kind: y <- y + h (k1 / 4 + 3 k2 / 4), k2 at 2h/3."""

    trajectory = False  # it keeps no trajectory; ``integrate`` gives it log-densities

    def _solve(self, model, f, y0, a: float, b: float, steps: int):
        ops, h = model.ops, (b - a) / steps
        times = ops.asarray(np.array([a + k * h for k in range(steps)]))

        def body(y, t):
            k1 = f(t, y)
            k2 = f(t + 2 * h / 3, tree_map(lambda u, k: u + (2 * h / 3) * k, y, k1))
            return tree_map(lambda u, p, q: u + h * (p / 4 + 3 * q / 4), y, k1, k2), None
        return ops.scan(body, y0, times)[0]

    def run(self, model, entry, weights, x, key, t0, t1, trajectory):
        return self._solve(model, model.field("velocity", weights), x, t0, t1,
                           int(entry.args["steps"]))

    def integrate(self, model, entry, f, y0, t0, t1):
        return self._solve(model, f, y0, t1, t0, int(entry.args["steps"]))


MODEL = """import stdlib.interpolants

model Toy {
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ normal(2, 0.5)
    interpolant x_t = linear
    network b = mlp(width = 16, depth = 2)
    objective { b ~ velocity }
    sampler ode = ralston(steps = 40)
    sampler reference = rk4(steps = 40)
}
"""


@pytest.fixture
def ralston(tmp_path, monkeypatch):
    """The three touches: the prelude line (in a copy of the standard library), the signature,
    the runtime kind."""
    lib = tmp_path / "stdlib"
    shutil.copytree(stdlib.STDLIB_DIR, lib, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with (lib / "prelude.tfm").open("a") as fh:
        fh.write("primitive sampler ralston(steps: count = 20)\n")
    monkeypatch.setattr(stdlib, "STDLIB_DIR", lib.resolve())
    monkeypatch.setattr(stdlib, "PRELUDE", (lib / "prelude.tfm").resolve())
    monkeypatch.setitem(kinds.SAMPLERS, "ralston", kinds.ODE)
    SAMPLERS.register("ralston")(Ralston)
    (tmp_path / "toy.tfm").write_text(MODEL)
    yield tmp_path / "toy.tfm"
    SAMPLERS.unregister("ralston")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_sampler_kind_needs_three_touches(ralston, backend, tmp_path):
    model = tfm.load(ralston, backend=backend, folder=tmp_path / "build")
    x0 = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    ours = model.sample(64, sampler="ode", x0=x0)
    reference = model.sample(64, sampler="reference", x0=x0)
    assert np.abs(ours - reference).max() < 1e-3  # second order at 40 steps on an untrained MLP
    assert model.sampler_entry(None).name == "ode"  # ranked like any deterministic sampler
    lp, lp_ref = (model.log_prob(ours[:8], sampler=s, exact=True) for s in ("ode", "reference"))
    assert np.allclose(lp, lp_ref, atol=1e-3)
    with pytest.raises(TfmSemanticError, match="trajectory"):
        model.sample(4, sampler="ode", trajectory=True)


def test_a_sampler_kind_without_a_signature_is_a_diagnostic(ralston, monkeypatch):
    monkeypatch.delitem(kinds.SAMPLERS, "ralston")
    with pytest.raises(TfmSemanticError, match="'ralston' has no signature"):
        load_model(ralston)


def _emitted(backend, tmp_path):
    emit = pytest.importorskip(f"tfm.backends.{backend}.emit")
    for path in sorted((ROOT / "examples").glob("*.tfm")) + sorted(
            (ROOT / "tests" / "golden" / "good").glob("*.tfm")):
        model = load_model(path)
        yield path.stem, emit.load(emit.write(model, tmp_path / backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_emitted_module_satisfies_the_protocol(backend, tmp_path):
    expected = protocol.TorchEmittedModule if backend == "torch" else protocol.EmittedModule
    for name, module in _emitted(backend, tmp_path):
        assert protocol.check(module, expected) == [], name


def test_the_protocol_check_finds_what_is_missing(tmp_path):
    import types
    module = types.ModuleType("fake")
    assert protocol.check(module) and "missing" in protocol.check(module)[0]
