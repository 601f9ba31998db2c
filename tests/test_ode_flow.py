"""A velocity trained along an interpolant, used as a flow by the samplers of the target's energy
(runtime/ode_flow.py, docs/flows.md): the compiler's rules for ``flow = ode``, the ODE flow's
density against the model's own likelihood, push and pull inverse to the solver's error, the
same flow in both backends, importance sampling with a known log Z, and a run folder with the
transport's and the samplers' metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend_params import BACKENDS

MODEL = """
import stdlib.interpolants
model Shifted {
    dim 2
    base x0 ~ normal(mean = [0.5, -0.5], scale = [1.5, 0.8])
    target x1 ~ normal(mean = [1, -2], scale = [0.5, 2])
    coupling independent
    interpolant x_t = linear
    network b = mlp(width = 32, depth = 2, activation = silu)
    objective { b ~ velocity }
    sampler ode = rk4(steps = 16)
    sampler w = importance(flow = ode, particles = 4000, replicas = 8)
    sampler local = mala(step = 0.3)
    sampler jump = flow_mh(flow = ode)
    sampler mixed = cycle(local, jump, chains = 32, warmup = 50, draws = 100)
    train { steps 300  batch 256  optimizer adam(lr = 3e-3)  seed 0 }
}
"""


def _compile(text: str, folder=None):
    from tfm.compiler.pipeline import compile_text
    return compile_text(text, folder=folder) if folder is not None else compile_text(text)


def _build(text: str, backend: str, tmp_path):
    from tfm.driver.run import backend_module

    compilation = _compile(text)
    compilation.raise_errors()
    return backend_module(backend).build(compilation.model, tmp_path / "build", root=tmp_path)


def _flow(model, z: np.ndarray):
    """The ODE flow's draws from latents z and their log-densities, and the pull of those
    draws (latent and log-density), with the model's weights."""
    ops = model.ops
    model.interval("ode")  # (found on the host, as the samplers do before binding the flow)

    def both(w, z):
        density = model.flow_density(model.bound(w), "ode")
        x, log_q = density.sample(z)
        back, _ = density.pull(x)
        return x, log_q, back, density.log_prob(x)
    out = model.program(("test", "ode_flow"), both)(model.weights, ops.asarray(z))
    return [ops.numpy(v) for v in out]


# --- the compiler ------------------------------------------------------------------------------

def test_ode_flow_compiles_with_the_sampler_as_reference():
    from tfm.backends.codegen.spec import spec

    model = _compile(MODEL).model
    assert not model.sampling and not model.flow
    s = spec(model)
    w = next(e for e in s.samplers if e.name == "w")
    assert w.args["flow"] == {"ref": "sampler", "name": "ode"} and w.kind == "flow"


@pytest.mark.parametrize("old, new, message", [
    ("sampler ode = rk4(steps = 16)", "sampler ode = dopri5()", "chooses its steps"),
    ("sampler ode = rk4(steps = 16)", "noise e(t) = 0.1\n sampler ode = euler_maruyama(eps = e)",
     "not an ODE sampler"),
    ("importance(flow = ode,", "importance(flow = local,", "not an ODE sampler"),
    ("importance(flow = ode,", "importance(flow = b,", "flow = ode"),
    ("importance(flow = ode,", "importance(flow = nothing,", "neither"),
    ("target x1 ~ normal(mean = [1, -2], scale = [0.5, 2])", 'target x1 ~ data("d.npy")',
     "known by its samples only"),
    ("base x0 ~ normal(mean = [0.5, -0.5], scale = [1.5, 0.8])",
     "base x0 ~ box(low = -1, high = 1)", "Use base x0 ~ normal"),
    ("sampler mixed = cycle(local, jump, chains = 32, warmup = 50, draws = 100)",
     "sampler fmc = flow_mcmc(flow = ode, kernel = local)", "flow_mcmc"),
])
def test_ode_flow_errors(old, new, message, tmp_path):
    assert old in MODEL
    text = MODEL.replace(old, new)
    np.save(tmp_path / "d.npy", np.zeros((10, 2), np.float32))
    diags = _compile(text, tmp_path).errors
    said = [d.message + " " + (d.suggestion or "") for d in diags]
    assert any(message in s for s in said), said


# --- the flow ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_ode_flow_density_is_the_models_likelihood(backend, tmp_path):
    """Draws of the ODE flow carry log q(x) equal to Model.log_prob(x) (the backward ODE with
    the exact divergence) and to the flow's own pull, and pull(push(z)) = z, each up to rk4's
    error with 16 steps; the base's mean and scale enter as an affine first map."""
    model = _build(MODEL, backend, tmp_path)
    model.fit(steps=100, progress=False)
    z = np.random.default_rng(0).standard_normal((256, 2)).astype(np.float32)
    x, log_q, back, log_q_pull = _flow(model, z)
    np.testing.assert_allclose(back, z, atol=2e-3)
    np.testing.assert_allclose(log_q_pull, log_q, atol=2e-3)
    np.testing.assert_allclose(model.log_prob(x, sampler="ode"), log_q, atol=2e-3)
    # the flow's draws are the ODE sampler's from the same base points
    start = np.array([0.5, -0.5]) + np.array([1.5, 0.8]) * z
    pushed = model.sample(256, sampler="ode", x0=start.astype(np.float32))
    np.testing.assert_allclose(pushed, x, atol=1e-4)


def test_ode_flow_is_the_same_in_both_backends(tmp_path):
    """Same initial weights, same latents: the same draws and log-densities."""
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    z = np.random.default_rng(1).standard_normal((64, 2)).astype(np.float32)
    jax_out = _flow(_build(MODEL, "jax", tmp_path / "jax"), z)
    torch_out = _flow(_build(MODEL, "torch", tmp_path / "torch"), z)
    for a, b in zip(jax_out, torch_out):
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_importance_sampling_with_the_ode_flow_gives_log_Z(tmp_path):
    """The target N(m, diag s^2) has log Z = 0 (its energy is -log p); importance sampling with
    the ODE of a briefly trained velocity as the proposal finds it within its error, and the
    resampled draws have the target's mean; chains of MALA and ODE-proposed moves accept some
    of both. (JAX only: torch's ODE flow is the same, test_ode_flow_is_the_same_in_both_backends,
    and 32,000 draws and 150 chain steps through its divergence take minutes on two cores.)"""
    pytest.importorskip("jax")
    model = _build(MODEL, "jax", tmp_path)
    model.fit(progress=False)
    res = model.run("w").result
    assert res.non_finite == 0 and res.ess > 0.3
    assert abs(res.log_Z) < 4 * res.log_Z_stderr + 0.01, (res.log_Z, res.log_Z_stderr)
    run = model.run("mixed")
    np.testing.assert_allclose(run.draws.mean(0), [1, -2], atol=0.35)
    assert 0.05 < run.result.acceptance[1] <= 1 and 0.05 < run.result.acceptance[0] <= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_smc_started_from_the_ode_flow(backend, tmp_path):
    """flow_smc with the ODE as its start and its density on the path: log Z = 0 within its
    error, few temperatures from a briefly trained velocity."""
    text = MODEL.replace(
        "sampler w = importance(flow = ode, particles = 4000, replicas = 8)",
        "sampler moves = mala(step = 0.3)\n"
        "    sampler s = flow_smc(flow = ode, kernel = moves, particles = 256, replicas = 4, "
        "moves = 1)").replace("steps 300", "steps 150")
    model = _build(text, backend, tmp_path)
    model.fit(progress=False)
    res = model.run("s").result
    assert abs(res.log_Z) < 4 * res.log_Z_stderr + 0.03, (res.log_Z, res.log_Z_stderr)
    assert res.temperatures_used >= 1


def test_ode_flow_run_folder_and_sample_command(tmp_path):
    """`tfmc run` trains, evaluates the transport (transport_*) and runs the samplers
    (samples.npy of the first, chains.safetensors); `tfmc sample --sampler` draws from a sampler
    of the energy in the run folder, continuing the chains."""
    pytest.importorskip("torch")
    from tfm.driver.cli import main
    from tfm.driver.run import open_run, run

    path = tmp_path / "m.tfm"
    path.write_text(MODEL.replace("steps 300", "steps 30").replace(
        "rk4(steps = 16)", "rk4(steps = 4)").replace(
        "particles = 4000, replicas = 8", "particles = 128, replicas = 2").replace(
        "chains = 32, warmup = 50, draws = 100", "chains = 8, warmup = 10, draws = 10"))
    out = tmp_path / "run"
    metrics = run(path, "torch", out, progress=False, log=lambda m: None)
    files = {p.name for p in out.iterdir()}
    assert {"samples.npy", "transport_samples.npy", "transport_trajectories.png",
            "chains.safetensors", "traces_mixed.png", "checkpoint.safetensors"} <= files
    assert metrics["sampler"] == "w" and set(metrics["samplers"]) == {"w", "mixed"}
    assert metrics["transport"]["sampler"] == "ode" and math.isfinite(metrics["transport"]["nll"])
    assert metrics["log_Z_true"] == 0 and math.isfinite(metrics["log_Z"])
    assert set(metrics["samplers"]["mixed"]["acceptance"]) == {"local", "jump"}
    model = open_run(out)
    assert "mixed" in model.energy_model.states
    assert main(["sample", str(out), "-n", "40", "--sampler", "mixed",
                 "--out", str(tmp_path / "s.npy")]) == 0
    drawn = np.load(tmp_path / "s.npy")
    assert drawn.shape == (40, 2) and np.isfinite(drawn).all()
    with pytest.raises(Exception, match="gives no log-densities"):
        model.log_prob(drawn, sampler="w")
