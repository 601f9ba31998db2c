"""Pieces of the runtimes: the golden models' settings end to end (two networks, Sinkhorn,
resmlp, bfloat16, dopri5, a backward SDE; a convnet on images), a potential network, every
stdlib interpolant with every kind of sampler, networks' shapes and checkpoint errors, for both
backends; the time laws (couplings and densities are in test_densities.py, solvers and the
likelihood in test_solvers.py); torch.compile against eager."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import tfm  # noqa: E402
from backend_params import POTENTIAL, to_numpy as _numpy  # noqa: E402
from tfm.backends.jax.runtime.ops import OPS  # noqa: E402
from tfm.backends.runtime import time_laws  # noqa: E402
from tfm.backends.runtime.spec import Call  # noqa: E402
from tfm.errors import TfmSemanticError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "golden" / "good"


def test_time_laws():
    u = time_laws.make(OPS, Call("uniform", {"low": 0.2, "high": 0.4}))(
        OPS.random(jax.random.PRNGKey(0)), 10_000)
    assert 0.2 <= float(u.min()) and float(u.max()) <= 0.4
    ln = time_laws.make(OPS, Call("logit_normal", {"mean": 0.0, "std": 1.0}))(
        OPS.random(jax.random.PRNGKey(0)), 10_000)
    assert 0 < float(ln.min()) and float(ln.max()) < 1 and abs(float(ln.mean()) - 0.5) < 0.01


def test_noisy_golden_model_trains_and_samples_with_every_sampler(tmp_path, backend):
    """Two networks (velocity, noise), Sinkhorn coupling, resmlp, adamw, cosine decay, clip,
    bfloat16, a weight w(t), dopri5 and a backward SDE."""
    model = tfm.load(GOOD / "energy_noise.tfm", backend=backend, folder=tmp_path)
    assert "bfloat16" in str(model.dtype)
    model.fit(steps=30, progress=False)
    assert np.isfinite(model.history).all() and len(model.history) == 30
    x = model.sample(50, sampler="ode", seed=1)
    assert x.shape == (50, 2) and np.isfinite(x).all()
    x, path = model.sample(50, sampler="sde", seed=1, trajectory=True)  # one SDE program
    assert x.shape == (50, 2) and np.isfinite(x).all()
    lp = model.log_prob(model.reference(20))
    assert lp.shape == (20,) and np.isfinite(lp).all()
    assert path.shape == (201, 50, 2)


def test_convnet_on_images(tmp_path, backend):
    model = tfm.load(GOOD / "images.tfm", backend=backend, folder=tmp_path)
    model.fit(steps=4, progress=False)
    x = model.sample(6)
    assert x.shape == (6, 1, 8, 8) and np.isfinite(x).all()
    lp = model.log_prob(x)  # 64 dimensions: Hutchinson's estimator
    assert lp.shape == (6,) and np.isfinite(lp).all()


def test_potential_network_gives_the_velocity_as_its_gradient(tmp_path, backend):
    (tmp_path / "p.tfm").write_text(POTENTIAL.replace(
        "optimizer adamw(lr = 3e-3)  clip 1.0  ema 0.99", "optimizer adam(lr = 3e-3)"))
    model = tfm.load(tmp_path / "p.tfm", backend=backend, folder=tmp_path)
    model.fit(progress=False)
    x = model.sample(4000)
    # the exact field is the constant shift (1, 1): a gradient field
    assert np.allclose(x.mean(0), [1, 1], atol=0.15)
    v = model.evaluate("velocity", 0.5, x[:100])
    eps = 1e-2
    phi_net = next(n for n in model.spec.networks if n.name == "phi")
    from tfm.backends.jax.runtime import networks
    weights = {k: jnp.asarray(_numpy(v)) for k, v in model.weights.items()}

    def phi(y):  # the trained potential, evaluated by the JAX network for either backend
        return np.asarray(networks.apply(phi_net, weights, jnp.float32(0.5),
                                         jnp.asarray(y, jnp.float32), (2,)))
    fd = np.stack([(phi(x[:100] + eps * e) - phi(x[:100] - eps * e)) / (2 * eps)
                   for e in np.eye(2)], -1)
    assert np.allclose(v, fd, atol=2e-2)


def test_checkpoint_of_another_model_is_refused(tmp_path, backend):
    a = tfm.load(ROOT / "examples" / "moons.tfm", backend=backend, folder=tmp_path)
    a.save(tmp_path / "moons.safetensors")
    b = tfm.load(ROOT / "examples" / "gaussian_to_gaussian.tfm", backend=backend, folder=tmp_path)
    with pytest.raises(TfmSemanticError, match="holds model 'Moons'"):
        b.load(tmp_path / "moons.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    from tfm.errors import TfmDataError
    with pytest.raises(TfmDataError, match="not a readable checkpoint"):
        b.load(tmp_path / "junk.safetensors")


def test_initial_weights_do_not_depend_on_the_backend_rng(tmp_path, backend):
    from tfm.backends.runtime.init import init_params
    a = tfm.load(ROOT / "examples" / "moons.tfm", backend=backend, folder=tmp_path)
    ref = init_params(a.spec.networks, (2,), 0)
    assert set(ref) == set(a.params)
    assert all(np.array_equal(ref[k], _numpy(a.params[k])) for k in ref)
    assert ref["b.0.weight"].shape == (256, 3) and ref["b.3.weight"].shape == (2, 256)


DERIVE = sorted((ROOT / "tests" / "golden" / "derive").glob("*.tfm"))
SWEEP_SAMPLERS = """
    sampler sweep_ode = euler(steps = 10)
    sampler sweep_forward = euler_maruyama(steps = 10, eps = 0.5)
    sampler sweep_backward = euler_maruyama(steps = 10, eps = 0.5, direction = backward)
}"""


@pytest.mark.parametrize("path", DERIVE, ids=lambda p: p.stem)
def test_every_stdlib_interpolant_samples_finitely_with_every_sampler(path, tmp_path, backend):
    """Each stdlib interpolant (its derive golden) with an ODE, a forward and a backward SDE
    sampler, at the initial weights: the samples and log-densities are finite, though the
    derived drifts are 0/0 or infinite at t = 0 or 1 for several of them (the sampler's
    interval then starts 0.001 inside)."""
    from tfm.errors import TfmError

    text = path.read_text()
    model_text = text[:text.rindex("}")] + SWEEP_SAMPLERS
    (tmp_path / path.name).write_text(model_text)
    for data in path.parent.glob("*.npy"):  # data files the golden reads
        (tmp_path / data.name).write_bytes(data.read_bytes())
    try:
        model = tfm.load(tmp_path / path.name, backend=backend, folder=tmp_path)
        names = ["sweep_ode", "sweep_forward", "sweep_backward"]
    except TfmError:  # the networks do not determine the score: the ODE alone
        (tmp_path / path.name).write_text(text[:text.rindex("}")] + SWEEP_SAMPLERS.splitlines()[1]
                                          + "\n}")
        model = tfm.load(tmp_path / path.name, backend=backend, folder=tmp_path)
        names = ["sweep_ode"]
    samples = {}
    for name in names:
        samples[name] = x = model.sample(16, sampler=name, seed=0)
        assert np.isfinite(x).all(), name
        lo, hi = model.interval(name)
        assert 0 <= lo < 0.01 and 0.99 < hi <= 1
    if model.spec.base.name == "normal":  # log-densities need a base density
        x = samples["sweep_ode"][:4]
        assert np.isfinite(model.log_prob(x, sampler="sweep_ode")).all()


def test_emitted_module_never_runs_the_file_name(tmp_path, backend):
    name = 'g""";open("PWNED","w");""".tfm'
    (tmp_path / name).write_text((ROOT / "examples" / "gaussian_to_gaussian.tfm").read_text())
    model = tfm.load(tmp_path / name, backend=backend, folder=tmp_path / "build")
    assert model.module.SOURCE == name
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_torch_compile_trains_as_eager(tmp_path):
    """The compiled loss (torch.compile, the default on CUDA) gives the eager weights to float
    rounding, and a second fit reuses the compiled program."""
    pytest.importorskip("torch")
    from tfm.backends.torch import build
    from tfm.compiler.pipeline import compile_model

    model = compile_model(ROOT / "examples" / "gaussian_to_gaussian.tfm").model
    eager = build(model, tmp_path / "a", device="cpu", compile=False).fit(steps=10, progress=False)
    fused = build(model, tmp_path / "b", device="cpu", compile=True).fit(steps=10, progress=False)
    assert fused.compile and not eager.compile
    for k, v in eager.params.items():
        np.testing.assert_allclose(_numpy(fused.params[k]), _numpy(v), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.history, eager.history, rtol=1e-5)
    import torch
    with torch._dynamo.config.patch(error_on_recompile=True):  # a recompile would raise
        fused.fit(steps=20, progress=False)
    assert np.isfinite(fused.history).all() and fused.step == 20


def test_a_failing_torch_compile_falls_back_to_eager(monkeypatch):
    torch = pytest.importorskip("torch")
    from tfm.backends.torch.runtime import train

    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    loss = train.compiled(lambda t, x0, x1, z: (t * x0).sum(), torch.device("cpu"))
    t = torch.ones(3)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert float(loss(t, t, t, t)) == 3.0
    assert float(loss(t, 2 * t, t, t)) == 6.0  # warned once, eager since


def test_load_passes_torch_options(tmp_path):
    pytest.importorskip("torch")
    model = tfm.load(ROOT / "examples" / "moons.tfm", backend="torch", folder=tmp_path,
                     device="cpu", compile=False)
    assert str(model.device) == "cpu" and model.compile is False
