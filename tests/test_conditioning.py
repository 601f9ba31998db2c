"""How well the regressions are conditioned (compiler/conditioning.py, docs/maths.md §2.4): each
weighted target's variance factor V(t), the warning of `tfmc check` where it spans more than
three orders of magnitude of its median over the time law, the score's standard weighting by
default, and a VP score model trained with that default against the closed form."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sympy

from tfm.compiler import conditioning, ir
from tfm.compiler.pipeline import compile_file, compile_text
from tfm.errors import TfmError

ROOT = Path(__file__).resolve().parent.parent
MEAN, SCALE = np.array([2.0, -1.0]), np.array([0.5, 1.5])

MODEL = """import stdlib.interpolants

model G {{
    dim 2
    base x0 ~ normal(0, {scale})
    target x1 ~ normal(mean = [2, -1], scale = [0.5, 1.5])
    interpolant x_t = {interpolant}
    network s = mlp(width = 64, depth = 2)
    objective {{
        s ~ {target}
        {weight}
    }}
    sampler ode = heun(steps = 50)
    train {{
        steps 5000
        batch 512
        optimizer adam(lr = 1e-3)
        seed 0
    }}
}}
"""


def _compile(interpolant="vp", target="score", weight="", scale=1):
    text = MODEL.format(interpolant=interpolant, target=target, weight=weight, scale=scale)
    compilation = compile_text(text, file="g.tfm", folder=ROOT)
    assert not compilation.errors, [d.message for d in compilation.errors]
    return compilation


def _warnings(compilation) -> list[str]:
    return [d.message for d in compilation.diagnostics if "ill-conditioned" in d.message]


def _ratio(compilation) -> float:
    d = compilation.model.derivation
    median, top, _ = conditioning.profile(d.variances[0][1], d.time_law)
    return top / median


def test_an_unweighted_vp_score_is_ill_conditioned_and_says_so():
    found = _warnings(_compile(weight="weight(t) = 1"))
    assert len(found) == 1
    assert "The score target of 's' is ill-conditioned" in found[0]
    assert "times its median over the time law" in found[0]
    assert _ratio(_compile(weight="weight(t) = 1")) > 1e3
    diagnostic = next(d for d in _compile(weight="weight(t) = 1").diagnostics
                      if "ill-conditioned" in d.message)
    assert diagnostic.severity == "warning" and "Leave the weight out" in diagnostic.suggestion


def test_a_score_without_a_written_weight_takes_its_standard_weighting():
    """The default weight is 1 / V of the unweighted target: alpha(t)^2 s^2 for the score
    through a normal base, so the weighted target's variance is 1 at every t."""
    for scale in (1, 2):
        compilation = _compile(scale=scale)
        assert not _warnings(compilation)
        d = compilation.model.derivation
        weight = dict(d.weights)["s"]
        alpha = d.form.x0
        assert sympy.simplify(weight - alpha ** 2 * scale ** 2) == 0
        assert sympy.simplify(d.variances[0][1] - 1) == 0
        assert _ratio(compilation) == pytest.approx(1.0)
    # with latent noise: gamma(t)^2
    d = _compile(interpolant="linear_noisy").model.derivation
    assert sympy.simplify(dict(d.weights)["s"] - d.form.z ** 2) == 0
    # a written weight is used as written, for the score too
    d = _compile(weight="weight(t) = 1 + t").model.derivation
    out, y = sympy.Symbol("s", real=True), d.targets[0][2]
    assert d.weights == ()
    assert sympy.simplify(d.losses[0][1] - (1 + ir.t) * (out - y) ** 2) == 0


@pytest.mark.parametrize("interpolant, target, expected", [
    ("linear", "velocity", 2), ("linear", "data", 1), ("linear", "base", 1),
    ("linear_noisy", "noise", 1)])
def test_variance_factors_of_simple_targets(interpolant, target, expected):
    v = _compile(interpolant=interpolant, target=target).model.derivation.variances[0][1]
    assert sympy.simplify(v - expected) == 0


def test_velocity_targets_of_the_diffusions_are_not_flagged_but_ve_is():
    """The VP velocity spans 1e3 from its smallest value but only ~9 times its median; the VE
    velocity grows like sigma(t)^2 and is flagged."""
    assert not _warnings(_compile(target="velocity"))
    assert _ratio(_compile(target="velocity")) < 20
    assert _warnings(_compile(interpolant="ve", target="velocity", scale=50))


def test_no_example_or_golden_model_is_flagged():
    files = sorted((ROOT / "examples").glob("*.tfm")) + \
        sorted((ROOT / "tests" / "golden").rglob("*.tfm"))
    assert len(files) > 20
    flagged = []
    for path in files:
        try:
            compilation = compile_file(path)
        except TfmError:  # the goldens of syntax errors
            continue
        flagged += [f"{path.name}: {m}" for m in _warnings(compilation)]
    assert not flagged, flagged


def test_a_vp_score_model_trained_with_the_default_weight_matches_the_closed_form(tmp_path):
    """N(0, I) -> N([2, -1], diag(0.5, 1.5)^2) through the VP interpolant, s ~ score with no
    weight written (the standard weighting), 5,000 Adam steps at batch 512: the samples' mean
    within 0.1 of the scale, standard deviations within 8%, the mean log-density within 0.1
    nats of the closed form (measured: 4.5%, 3.2%, 0.012 nats; with weight(t) = 1 the
    standard deviations were 132% and 30% off after 2,000 steps)."""
    pytest.importorskip("jax")
    import tfm

    path = tmp_path / "vp.tfm"
    path.write_text(MODEL.format(interpolant="vp", target="score", weight="", scale=1))
    model = tfm.load(path, folder=tmp_path / "build").fit(progress=False)
    x = model.sample(20_000, seed=1)
    assert np.all(np.abs(x.mean(0) - MEAN) < 0.1 * SCALE), x.mean(0)
    np.testing.assert_allclose(x.std(0), SCALE, rtol=0.08)
    points = (MEAN + SCALE * np.random.default_rng(1).standard_normal((1000, 2))).astype(np.float32)
    u = (points - MEAN) / SCALE
    exact = np.sum(-0.5 * u ** 2 - np.log(SCALE) - 0.5 * math.log(2 * math.pi), -1)
    assert abs(np.mean(model.log_prob(points) - exact)) < 0.1
