"""Models of normalizing flows end to end (docs/flows.md): the compiler's rules for them, maximum
likelihood on a Gaussian against its closed form, reverse KL on an energy with a known log Z
checked by importance sampling within its reported error, the flow kernel keeping its target
invariant, importance-sampling estimates on weights with known answers, and the adaptive loop
visiting both modes of a two-mode target with the right shares; in both backends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend_params import BACKENDS

LOG_2PI = math.log(2 * math.pi)


def _compile(text: str):
    from tfm.compiler.pipeline import compile_text
    return compile_text(text)


def _errors(text: str) -> list[str]:
    return [d.message for d in _compile(text).errors]


def _build(text: str, backend: str, tmp_path):
    from tfm.backends.jax import build as jax_build  # noqa: F401 - the backend registry
    from tfm.driver.run import backend_module

    compilation = _compile(text)
    compilation.raise_errors()
    return backend_module(backend).build(compilation.model, tmp_path / "build", root=tmp_path)


GAUSS = """
model Gauss {
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ normal(mean = [1, -2], scale = [0.5, 2])
    network T = realnvp(layers = 2, width = 16, depth = 1)
    objective { T ~ likelihood }
    train { steps 300  batch 256  optimizer adam(lr = 3e-3)  seed 0 }
}
"""


# --- the compiler ------------------------------------------------------------------------------

def test_flow_model_compiles_to_a_flow_spec():
    from tfm.backends.codegen.spec import spec

    model = _compile(GAUSS).model
    assert model.flow and model.sampling
    s = spec(model)
    assert s.objective == "likelihood" and not s.sampling
    assert [n.output for n in s.networks] == ["flow"] and s.flows[0].name == "T"


@pytest.mark.parametrize("body, message", [
    ("target x1 ~ energy(U)\n energy U(x) = sum(x^2)\n network T = realnvp()\n"
     "objective { T ~ likelihood }", "known only through its energy"),
    ("target x1 ~ normal(0, 1)\n network T = realnvp()\n objective { T ~ reverse_kl }",
     "needs the target's energy"),
    ("target x1 ~ energy(U)\n energy U(x) = sum(x^2)\n network T = realnvp()\n"
     "objective { T ~ forward_kl }", "learns from the chains of the flow_mcmc"),
    ("target x1 ~ energy(U)\n energy U(x) = sum(x^2)\n network T = realnvp()\n"
     "objective { T ~ reverse_kl }\n sampler s = heun()", "integrates a learned velocity"),
    ("target x1 ~ normal(0, 1)\n network T = realnvp()\n objective { T ~ velocity }",
     "not a flow objective"),
    ("target x1 ~ energy(U)\n energy U(x) = sum(x^2)\n network T = realnvp()\n"
     "network S = spline()\n objective { T ~ reverse_kl\n S ~ reverse_kl }", "one flow"),
    ("target x1 ~ energy(U)\n energy U(x) = sum(x^2)\n network T = realnvp()\n"
     "objective { T ~ reverse_kl(anneal = -1) }", "anneal"),
])
def test_flow_model_errors(body, message):
    text = f"model M {{\n dim 2\n base x0 ~ normal(0, 1)\n {body}\n}}"
    errors = _errors(text)
    assert any(message in e for e in errors), errors


def test_flow_sampler_needs_a_flow_network():
    text = """
    import stdlib.interpolants
    model M {
        dim 2
        base x0 ~ normal(0, 1)
        target x1 ~ normal(0, 1)
        interpolant x_t = linear
        network b = mlp()
        objective { b ~ velocity }
        sampler w = importance(flow = b)
    }"""
    errors = _errors(text)
    assert any("not a normalizing flow" in e for e in errors), errors


def test_regression_target_on_a_flow_names_the_flow_objectives():
    text = "model M {\n dim 2\n base x0 ~ normal(0, 1)\n target x1 ~ normal(0, 1)\n" \
           " network T = realnvp()\n objective { T ~ velocity }\n}"
    diags = _compile(text).errors
    assert any("likelihood" in (d.suggestion or "") for d in diags)


# --- training and sampling ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_maximum_likelihood_on_a_gaussian_matches_the_closed_form(backend, tmp_path):
    """The flow's log-density after maximum likelihood on N(m, diag s^2) draws is that normal's
    (the maximum-likelihood fit of a normal is the normal itself)."""
    model = _build(GAUSS, backend, tmp_path)
    model.fit(progress=False)
    m, s = np.array([1.0, -2.0]), np.array([0.5, 2.0])
    x = (m + s * np.random.default_rng(1).standard_normal((2000, 2))).astype(np.float32)
    exact = -0.5 * np.sum(((x - m) / s) ** 2, 1) - np.sum(np.log(s)) - LOG_2PI
    lp = model.log_prob(x)
    assert abs(np.mean(lp) - np.mean(exact)) < 0.05, (np.mean(lp), np.mean(exact))
    assert np.mean(np.abs(lp - exact)) < 0.1
    draws = model.sample(4000, seed=3)
    np.testing.assert_allclose(draws.mean(0), m, atol=0.15)
    np.testing.assert_allclose(draws.std(0), s, rtol=0.08)


SHIFTED = """
model Shifted {
    dim 3
    base x0 ~ normal(0, 1)
    energy U(x) = 0.5 * sum((x - 1)^2) / 4
    target x1 ~ energy(U)
    network T = realnvp(layers = 2, width = 16, depth = 1)
    objective { T ~ reverse_kl(anneal = 100, beta0 = 0.1) }
    sampler w = importance(flow = T, particles = 4000, replicas = 8)
    train { steps 400  batch 256  optimizer adam(lr = 3e-3)  seed 0 }
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_reverse_kl_then_importance_sampling_gives_log_Z_within_its_error(backend, tmp_path):
    """U = |x - 1|^2 / 8 in 3-D: log Z = 1.5 log(8 pi)."""
    model = _build(SHIFTED, backend, tmp_path)
    model.fit(progress=False)
    run = model.run("w")
    truth = 1.5 * math.log(8 * math.pi)
    res = run.result
    assert res.log_Z_stderr is not None and res.log_Z_stderr < 0.05
    assert abs(res.log_Z - truth) < 4 * res.log_Z_stderr + 1e-3, (res.log_Z, truth,
                                                                  res.log_Z_stderr)
    assert res.ess > 0.5 and res.non_finite == 0
    np.testing.assert_allclose(run.draws.mean(0), 1.0, atol=0.1)


def test_importance_estimates_on_known_weights():
    from tfm.backends.runtime import importance

    x = np.arange(8, dtype=np.float32)[:, None]
    equal = importance.estimate(x, np.full(8, 2.0, np.float32), 2, seed=0)
    assert equal.log_Z == pytest.approx(2.0) and equal.log_Z_stderr == pytest.approx(0.0)
    assert equal.ess == pytest.approx(1.0) and sorted(equal.particles[:, 0]) == list(range(8))
    lw = np.array([0.0, -np.inf, 0.0, -np.inf, 0.0, 0.0, 0.0, 0.0], np.float32)
    one = importance.estimate(x, lw, 2, seed=0)
    assert one.non_finite == 2 and one.ess == pytest.approx(6 / 8)
    assert set(one.particles[:, 0]) <= {0.0, 2.0, 4.0, 5.0, 6.0, 7.0}
    assert one.log_Z == pytest.approx(math.log(0.75))


TWO_MODES = """
model TwoModes {
    dim 2
    base x0 ~ box(-8, 8)
    energy U(x) = -logsumexp(-0.5 * sum((x - 4)^2), -0.5 * sum((x + 4)^2))
    target x1 ~ energy(U)
    network T = realnvp(layers = 4, width = 32, depth = 2)
    objective { T ~ forward_kl }
    sampler local = mala(step = 0.5)
    sampler fmc = flow_mcmc(flow = T, kernel = local, chains = 64, rounds = 4,
                            local_steps = 20, global_steps = 20, draws = 100)
    train { steps 800  batch 256  optimizer adam(lr = 3e-3)  seed 0 }
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_loop_moves_chains_between_two_modes(backend, tmp_path):
    """Two equal modes at (4, 4) and (-4, -4), far apart for MALA: every chain visits both
    through the flow's moves, and the draws split evenly between them."""
    model = _build(TWO_MODES, backend, tmp_path)
    run = model.run("fmc")
    samples = run.result.samples  # (draws, chains, 2)
    upper = samples.sum(-1) > 0
    assert abs(upper.mean() - 0.5) < 0.08, upper.mean()
    assert (upper.any(0) & (~upper).any(0)).mean() > 0.9  # chains that visited both modes
    assert run.extra["global_acceptance"][-1] > 0.3
    assert run.result.acceptance[-1] > 0.3
    assert model.step == 800


@pytest.mark.parametrize("backend", BACKENDS)
def test_flow_kernel_keeps_a_gaussian_target(backend, tmp_path):
    """Independence Metropolis-Hastings with an untrained (standardised) flow as the proposal,
    in a cycle with MALA, samples N(1, 4 I): the chains' moments are the target's."""
    text = """
    model K {
        dim 2
        base x0 ~ normal(0, 3)
        energy U(x) = 0.5 * sum((x - 1)^2) / 4
        target x1 ~ energy(U)
        network T = realnvp(layers = 2, width = 8, depth = 1)
        objective { T ~ reverse_kl }
        sampler local = mala(step = 1)
        sampler jump = flow_mh(flow = T)
        sampler both = cycle(local, jump, chains = 256, warmup = 100, draws = 200)
        train { steps 1  batch 16  seed 0 }
    }"""
    model = _build(text, backend, tmp_path)
    run = model.run("both")
    x = run.result.samples.reshape(-1, 2)
    np.testing.assert_allclose(x.mean(0), 1.0, atol=0.1)
    np.testing.assert_allclose(x.std(0), 2.0, rtol=0.05)
    assert 0.05 < run.result.acceptance[1] < 1


# --- the examples, cut down --------------------------------------------------------------------

CUT = {"chains": 16, "rounds": 2, "local_steps": 4, "global_steps": 4, "draws": 8,
       "particles": 128, "replicas": 2, "moves": 1, "steps": 16, "batch": 32, "layers": 2,
       "width": 16}


def _cut(name: str, folder):
    """The example with its sizes cut down (and without SMC from the flow, which
    test_smc_started_from_the_flow covers at less cost than the run's log Z sweep)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "examples" / f"{name}.tfm").read_text()
    text = re.sub(r"\n\s*sampler (\w+ = flow_smc|moves = )\(?.*", "", text)
    pattern = r"\b(" + "|".join(CUT) + r")(\s*=\s*|\s+)(\d+)"
    text = re.sub(pattern, lambda m: f"{m.group(1)}{m.group(2)}{CUT[m.group(1)]}", text)
    path = folder / f"{name}.tfm"
    path.write_text(text)
    return path


def _run_example(name: str, backend: str, tmp_path) -> tuple:
    from tfm.driver.run import run

    out = tmp_path / "run"
    metrics = run(_cut(name, tmp_path), backend, out, progress=False, log=lambda m: None)
    return out, metrics


# every example with torch (no compilation: the fastest here; the runtime is the same code,
# and the tests above run the adaptive loop, maximum likelihood and reverse KL with JAX too)
EXAMPLE_BACKENDS = {"gmm40_flow_mcmc": ("torch",), "manywell_flow": ("torch",),
                    "funnel_flow": ("torch",), "phi4_flow": ("torch",),
                    "moons_realnvp": ("torch",), "moons_cnf": ("torch",),
                    "gmm40_cnf": ("torch",), "gmm40_interpolant": ("torch",)}


@pytest.mark.parametrize("name, backend", [(n, b) for n, bs in EXAMPLE_BACKENDS.items()
                                           for b in bs])
def test_flow_example_runs_into_a_run_folder(name, backend, tmp_path):
    from tfm.driver.run import open_run

    out, metrics = _run_example(name, backend, tmp_path)
    files = {p.name for p in out.iterdir()}
    assert {"checkpoint.safetensors", "metrics.json", "samples.npy", "loss.png",
            "config.json"} <= files
    samples = np.load(out / "samples.npy")
    assert np.isfinite(samples).all() and len(samples) > 0
    assert metrics["steps"] == 16
    if name in ("moons_realnvp", "moons_cnf"):
        assert np.isfinite(metrics["nll"]) and metrics["w2"] > 0
        assert "samples.png" in files
    if name == "gmm40_flow_mcmc":
        fmc = metrics["samplers"]["fmc"]
        assert len(fmc["global_acceptance"]) == 2 and "flow_mh" in fmc["acceptance"]
        assert metrics["modes"]["of"] == 40 and 1 <= metrics["modes"]["visited"] <= 40
        assert "chains.safetensors" in files
        if backend == "torch":
            model = open_run(out)
            more = model.sample(32, sampler="fmc")  # continues the chains with the trained flow
            assert more.shape == (32, 2) and np.isfinite(more).all()
    if name == "manywell_flow":
        assert abs(metrics["log_Z_error"]) < 50  # a 16-step flow: only finite
        weights = metrics["samplers"]["weights"]
        assert 0 < weights["ess_fraction"] <= 1 and weights["replicas"] == 2
    if name == "gmm40_cnf":
        assert np.isfinite(metrics["log_Z"]) and metrics["modes"]["of"] == 40
    if name == "gmm40_interpolant":  # a velocity's ODE as the flow (tests/test_ode_flow.py)
        assert np.isfinite(metrics["log_Z"]) and metrics["modes"]["of"] == 40
        assert metrics["transport"]["sampler"] == "ode" and "jump" in \
            metrics["samplers"]["mixed"]["acceptance"]
    if name == "funnel_flow":
        assert np.isfinite(metrics["log_Z"]) and "fsmc" not in metrics["samplers"]
    if name == "phi4_flow":
        assert 0 <= metrics["magnetisation"]["positive_share"] <= 1
        for sampler in ("mixed", "alone"):
            crossing = metrics["samplers"][sampler]["magnetisation"]
            assert 0 <= crossing["chains_changing_sign"] <= 1
            assert crossing["sign_changes_per_chain"] >= 0
        assert "jump" in metrics["samplers"]["mixed"]["acceptance"]
    model = open_run(out)
    lp = model.log_prob(samples[:8])
    assert lp.shape == (8,) and np.isfinite(lp).all()


@pytest.mark.parametrize("method", ["flow_smc", "flow_ais"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_smc_and_ais_started_from_the_flow(backend, method, tmp_path):
    """SMC (adaptive) and AIS (20 fixed temperatures) from a briefly trained flow towards
    N(1, 4 I) in 3-D give log Z = 1.5 log(8 pi) within their error, and their particles the
    target's mean."""
    schedule = "temperatures = 20, " if method == "flow_ais" else ""
    text = SHIFTED.replace("sampler w = importance(flow = T, particles = 4000, replicas = 8)",
                           "sampler moves = mala(step = 0.5)\n"
                           f"    sampler s = {method}(flow = T, kernel = moves, particles = 512, "
                           f"replicas = 4, {schedule}moves = 2)").replace("steps 400", "steps 50")
    model = _build(text, backend, tmp_path)
    model.fit(progress=False)
    run = model.run("s")
    truth = 1.5 * math.log(8 * math.pi)
    res = run.result
    assert abs(res.log_Z - truth) < 4 * res.log_Z_stderr + 0.02, (res.log_Z, res.log_Z_stderr)
    np.testing.assert_allclose(run.draws.mean(0), 1.0, atol=0.25)
    assert res.temperatures_used >= 1
