"""Networks of the user's own, passed through the Python API (``tfm.load(path,
networks={name: module})``): a torch ``nn.Module`` or an Equinox module of (t, x) trains,
samples, scores, checkpoints and resumes like a built-in network; names and output shapes are
checked when the model is loaded. The model file never names code."""

from __future__ import annotations

import numpy as np
import pytest

import tfm
from tfm.errors import TfmSemanticError

MODEL = """
import stdlib.toy2d
import stdlib.interpolants
model Moons {
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ moons()
    interpolant x_t = linear
    network b = mlp(width = 16, depth = 2)
    objective { b ~ velocity }
    sampler ode = euler(steps = 8)
    train { steps 60  batch 128  optimizer adam(lr = 3e-3)  seed 0 }
}
"""


def _torch_net(out: int = 2):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, out))

        def forward(self, t, x):
            return self.f(torch.cat([t[:, None], x], 1))
    torch.manual_seed(0)
    return Net()


def _write(tmp_path):
    path = tmp_path / "m.tfm"
    path.write_text(MODEL)
    return path


def test_a_torch_module_trains_samples_scores_and_resumes(tmp_path):
    pytest.importorskip("torch")
    path = _write(tmp_path)
    net = _torch_net()
    first = {k: v.detach().clone() for k, v in net.named_parameters()}
    m = tfm.load(path, backend="torch", folder=tmp_path / "b", networks={"b": net})
    assert all(k.startswith("b.") for k in m.params) and len(m.params) == 4
    m.fit(steps=30, out=tmp_path / "run", progress=False)
    loss_30 = float(np.mean(m.history[-10:]))
    x = m.sample(64, seed=1)
    assert x.shape == (64, 2) and np.isfinite(m.log_prob(x)).all()
    # resume from the checkpoint of step 30 to 60: the same weights as 60 steps in one go
    again = tfm.load(path, backend="torch", folder=tmp_path / "c", networks={"b": _torch_net()})
    again.fit(steps=60, out=tmp_path / "run", resume=True, progress=False)
    whole = tfm.load(path, backend="torch", folder=tmp_path / "d", networks={"b": _torch_net()})
    whole.fit(steps=60, progress=False)
    for k in whole.params:
        np.testing.assert_allclose(again.params[k].detach().cpu().numpy(),
                                   whole.params[k].detach().cpu().numpy(), rtol=1e-5, atol=1e-6)
    assert np.mean(whole.history[-10:]) < loss_30 * 1.5
    whole.reset(0)  # back to the module's own initial weights
    for k, v in first.items():
        np.testing.assert_array_equal(whole.params[f"b.module.{k}"].detach().cpu().numpy(),
                                      v.cpu().numpy())


def test_user_network_names_and_shapes_are_checked(tmp_path):
    pytest.importorskip("torch")
    path = _write(tmp_path)
    with pytest.raises(TfmSemanticError, match="networks= names 'v', which is not a network of "
                       "model Moons \\(it has b\\)"):
        tfm.load(path, backend="torch", networks={"v": _torch_net()})
    with pytest.raises(TfmSemanticError, match="returns shape \\[2, 3\\] at a batch of 2 points "
                       "of shape \\[2\\]; the model needs \\[2, 2\\]"):
        tfm.load(path, backend="torch", networks={"b": _torch_net(out=3)})
    with pytest.raises(TfmSemanticError, match="is a dict; the torch backend takes a "
                       "torch.nn.Module"):
        tfm.load(path, backend="torch", networks={"b": {}})


def _equinox_net(out: int = 2, key: int = 0):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    class Net(eqx.Module):
        layers: list

        def __init__(self, key):
            a, b = jax.random.split(key)
            self.layers = [eqx.nn.Linear(3, 32, key=a), eqx.nn.Linear(32, out, key=b)]

        def __call__(self, t, x):
            h = jnp.concatenate([t[:, None], x], 1)
            h = jax.nn.silu(jax.vmap(self.layers[0])(h))
            return jax.vmap(self.layers[1])(h)
    return Net(jax.random.PRNGKey(key))


def test_an_equinox_module_trains_samples_scores_and_resumes(tmp_path):
    pytest.importorskip("equinox")
    path = _write(tmp_path)
    m = tfm.load(path, backend="jax", folder=tmp_path / "b", networks={"b": _equinox_net()})
    assert sorted(m.params) == ["b.layers[0].bias", "b.layers[0].weight", "b.layers[1].bias",
                                "b.layers[1].weight"]
    start = {k: np.asarray(v) for k, v in m.params.items()}
    m.fit(steps=30, out=tmp_path / "run", progress=False)
    assert any(not np.array_equal(start[k], np.asarray(m.params[k])) for k in start)
    x = m.sample(64, seed=1)
    assert x.shape == (64, 2) and np.isfinite(m.log_prob(x)).all()
    again = tfm.load(path, backend="jax", folder=tmp_path / "c", networks={"b": _equinox_net()})
    again.fit(steps=60, out=tmp_path / "run", resume=True, progress=False)
    whole = tfm.load(path, backend="jax", folder=tmp_path / "d", networks={"b": _equinox_net()})
    whole.fit(steps=60, progress=False)
    for k in whole.params:
        np.testing.assert_allclose(np.asarray(again.params[k]), np.asarray(whole.params[k]),
                                   rtol=1e-5, atol=1e-6)
    whole.reset(0)
    for k, v in start.items():
        np.testing.assert_array_equal(np.asarray(whole.params[k]), v)
    with pytest.raises(TfmSemanticError, match="returns shape \\[2, 3\\]"):
        tfm.load(path, backend="jax", networks={"b": _equinox_net(out=3)})
    with pytest.raises(TfmSemanticError, match="is a dict; the jax backend takes an Equinox "
                       "module"):
        tfm.load(path, backend="jax", networks={"b": {}})
