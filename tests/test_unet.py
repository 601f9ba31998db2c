"""The ``unet`` network (backends/runtime/unet.py, issue 17): one function in both backends
from the same initial weights, every planned layer used exactly once, its checks in
``tfmc check``, a smoke run on 3 x 32 x 32 images, and training on digits to samples a
classifier of the real digits recognises."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import tfm
from backend_params import to_numpy  # tests/
from tfm.errors import TfmSemanticError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits_unet.tfm"

SMALL = """import stdlib.interpolants

model Small {{
    dim [{c}, {h}, {w}]
    base x0 ~ normal(0, 1)
    target x1 ~ data("images.npy")
    interpolant x_t = linear
    network b = unet({args})
    objective {{ b ~ {target} }}
    sampler ode = euler(steps = 2)
    train {{ steps 2  batch 4  optimizer adam(lr = 1e-3)  log_every 1 }}
}}
"""


def _model(tmp_path, args="channels = 8, multipliers = [1, 2], blocks = 1, attention = [4], "
           "groups = 4", shape=(1, 8, 8), target="velocity") -> Path:
    images = np.random.default_rng(0).uniform(-1, 1, (16,) + shape).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    path = tmp_path / "small.tfm"
    path.write_text(SMALL.format(c=shape[0], h=shape[1], w=shape[2], args=args, target=target))
    return path


def _perturbed(model, seed=1):
    """The model's initial weights plus noise (its last layer starts at zero, which would make
    every output zero), as numpy."""
    rng = np.random.default_rng(seed)
    return {k: (to_numpy(v) + 0.05 * rng.standard_normal(np.shape(to_numpy(v)))).astype(np.float32)
            for k, v in model.params.items()}


def _set(model, weights):
    """The raw and the EMA weights of ``model`` to ``weights`` (numpy), as a checkpoint would."""
    model._restore(weights, dict(weights))


@pytest.mark.parametrize("target", ["velocity", "potential"])
def test_the_unet_is_one_function_in_both_backends(tmp_path, target):
    """The same outputs from the same weights. The potential (one number; the velocity is its
    gradient) is compared on a U-Net of one level, with attention and without down- and
    up-sampling, which the velocity's two levels cover: JAX compiles the gradient of two levels
    in 14 s, of one in 8 s."""
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    args = {} if target == "velocity" else {
        "args": "channels = 8, multipliers = [1], blocks = 1, attention = [8], groups = 4"}
    path = _model(tmp_path, target=target, **args)
    models = {b: tfm.load(path, backend=b, folder=tmp_path / b) for b in ("jax", "torch")}
    for k, v in models["jax"].params.items():  # the same initial weights, bit for bit
        np.testing.assert_array_equal(to_numpy(v), to_numpy(models["torch"].params[k]))
    weights = _perturbed(models["jax"])
    x = np.random.default_rng(2).standard_normal((5, 1, 8, 8)).astype(np.float32)
    out = {}
    for b, m in models.items():
        _set(m, weights)
        out[b] = m.evaluate("velocity", 0.3, x)
        assert out[b].shape == x.shape and np.abs(out[b]).mean() > 1e-3
    np.testing.assert_allclose(out["jax"], out["torch"], rtol=1e-4, atol=1e-5)


class _Stub:
    """What runtime/dropout.py asks of a backend's layers: cast and constant."""

    def __init__(self, backend):
        if backend == "jax":
            import jax.numpy as jnp

            self.xp, self.cast, self.constant = jnp, lambda h, d: h.astype(d), jnp.asarray
        else:
            import array_api_compat.torch as xp
            import torch

            self.xp, self.cast, self.constant = xp, lambda h, d: h.to(d), torch.as_tensor


def test_dropout_masks_are_one_hash_in_both_backends():
    """The masks are the same bits in JAX and torch, uniform, and differ between examples and
    sites (runtime/dropout.py)."""
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    from tfm.backends.runtime import dropout

    seeds = np.random.default_rng(0).integers(0, dropout.SEED_LIMIT, 64)
    got = {}
    for backend in ("jax", "torch"):
        stub = _Stub(backend)
        got[backend] = [to_numpy(dropout.uniform(stub.xp, stub, stub.constant(seeds), site,
                                                 (64, 16, 8, 8))) for site in (3, 4)]
    for a, b in zip(got["jax"], got["torch"]):
        np.testing.assert_array_equal(a, b)
    u, other = got["jax"]
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() * 12 - 1) < 0.02
    assert abs((u < 0.1).mean() - 0.1) < 0.005
    counts = np.histogram(u, 10, (0, 1))[0]
    assert counts.min() > 0.95 * counts.mean()
    assert abs(np.corrcoef(u[0].ravel(), u[1].ravel())[0, 1]) < 0.15  # examples: 1/sqrt(1024)
    assert abs(np.corrcoef(u.ravel(), other.ravel())[0, 1]) < 0.02  # sites


def test_unet_dropout_acts_in_training_only_and_alike_in_both_backends(tmp_path):
    """unet(dropout = 0.3): the training loss on a batch with dropout seeds is the same in both
    backends; without seeds (sampling, evaluation) nothing is dropped; the batches training
    draws carry one seed per example; torch trains a few steps."""
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    args = "channels = 8, multipliers = [1, 2], blocks = 1, attention = [4], groups = 4"
    path = _model(tmp_path, args=args + ", dropout = 0.3")
    models = {b: tfm.load(path, backend=b, folder=tmp_path / b) for b in ("jax", "torch")}
    (tmp_path / "plain").mkdir()
    plain = tfm.load(_model(tmp_path / "plain", args=args), backend="torch",
                     folder=tmp_path / "plain_build")
    weights = _perturbed(models["jax"])
    for m in (*models.values(), plain):
        _set(m, weights)
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 1, 6).astype(np.float32)
    x0, x1 = rng.standard_normal((2, 6, 1, 8, 8)).astype(np.float32)
    z = np.zeros_like(x0)
    seeds = rng.integers(0, 2**30, 6)
    dropped = {b: m.loss(t, x0, x1, z, seeds) for b, m in models.items()}
    assert dropped["jax"] == pytest.approx(dropped["torch"], rel=1e-4)
    kept = models["torch"].loss(t, x0, x1, z)
    assert kept == pytest.approx(plain.loss(t, x0, x1, z), rel=1e-6)  # no seeds: no dropout
    assert abs(dropped["torch"] - kept) > 1e-4 * abs(kept)
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(models["torch"].evaluate("velocity", 0.4, x),
                                  plain.evaluate("velocity", 0.4, x))
    torch_model = models["torch"]
    batch = torch_model.objective.draw(torch_model)(torch_model.ops.random(
        torch_model.ops.key(0)), 4)
    assert len(batch) == 5 and tuple(batch[4].shape) == (4,)
    torch_model.fit(steps=2, progress=False)
    assert np.isfinite(torch_model.history).all()


def test_every_planned_layer_is_used_once(tmp_path):
    """The forward pass takes each layer of ``_plan`` (weights named by position), in order:
    a layer left out or taken twice would shift every later name."""
    jax = pytest.importorskip("jax")
    from tfm.backends.jax.runtime import networks as jax_networks
    m = tfm.load(_model(tmp_path), backend="jax", folder=tmp_path)
    net = m.spec.networks[0]
    taken = []

    class Recording(dict):
        def __getitem__(self, key):
            taken.append(key)
            return super().__getitem__(key)

    params = Recording({k: jax.numpy.asarray(to_numpy(v)) for k, v in m.params.items()})
    x = np.zeros((2, 1, 8, 8), np.float32)
    # traced, not run: the layers are taken as the program is built (run eagerly, each of the
    # convolutions' operations compiled on its own, it took 13 s)
    jax.make_jaxpr(lambda: jax_networks.apply(net, params, 0.5, x, (1, 8, 8)))()
    names = sorted(m.params, key=lambda k: (int(k.split(".")[1]), k.endswith("bias")))
    assert taken == names  # each weight and bias once, layer by layer


@pytest.mark.parametrize("args, message", [
    ("channels = 8, multipliers = [1, 2, 2, 2], groups = 4", "its height and width must divide by 8"),
    ("channels = 6, multipliers = [1, 2], groups = 4", "6 channels do not divide by 4"),
    ("channels = 6, multipliers = [2, 4], groups = 4", "6 channels do not divide by 4"),
    ("channels = 8, multipliers = [1, 2], attention = [2], groups = 4",
     "the resolution 2, which no level has"),
    ("channels = 8, multipliers = [], groups = 4", "multipliers is empty"),
    ("channels = 8, multipliers = [1, 0.5], groups = 4", "must be a list of whole numbers"),
    ("channels = 8, multipliers = [1, 2], groups = 4, dropout = 1", "must be below 1, and is 1"),
    ("channels = 8, multipliers = [1, 2], groups = 4, dropout = -0.1", "must be 0 or more"),
])
def test_unet_arguments_are_checked(tmp_path, args, message):
    path = _model(tmp_path, args=args, shape=(1, 12, 12))
    with pytest.raises(TfmSemanticError, match=message):
        tfm.load(path, backend="jax", folder=tmp_path)


def test_unet_needs_images(tmp_path):
    path = tmp_path / "flat.tfm"
    path.write_text("import stdlib.toy2d\nimport stdlib.interpolants\nmodel F {\n  dim 2\n"
                    "  base x0 ~ normal(0, 1)\n  target x1 ~ moons()\n  interpolant x_t = linear\n"
                    "  network b = unet()\n  objective { b ~ velocity }\n}\n")
    with pytest.raises(TfmSemanticError, match="unet works on image-shaped data"):
        tfm.load(path, backend="jax", folder=tmp_path)


def test_a_unet_trains_and_samples(tmp_path):
    """Torch only: JAX compiles a U-Net's training chunk for a minute or two on 2 CPU cores,
    even this small one (docs/backends.md §13); its gradient through the U-Net is checked
    against torch's by the potential case above."""
    pytest.importorskip("torch")
    path = _model(tmp_path)
    m = tfm.load(path, backend="torch", folder=tmp_path / "m")
    m.fit(progress=False)
    assert len(m.history) == 2 and np.isfinite(m.history).all()
    x = m.sample(3)
    assert x.shape == (3, 1, 8, 8) and np.isfinite(x).all()


def test_a_unet_on_3x32x32_images_trains_and_samples(tmp_path):
    """The default U-Net's layout (three levels, attention at 16 x 16) on colour images, a
    smoke run: two steps, two samples (torch, as above)."""
    pytest.importorskip("torch")
    path = _model(tmp_path, args="channels = 16", shape=(3, 32, 32))
    m = tfm.load(path, backend="torch", folder=tmp_path / "m")
    m.fit(progress=False)
    assert len(m.history) == 2 and np.isfinite(m.history).all()
    x = m.sample(2)
    assert x.shape == (2, 3, 32, 32) and np.isfinite(x).all()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_digits_example_trains_to_recognisable_samples(tmp_path, backend):
    """examples/digits_unet.tfm in its quick form (fewer steps, a smaller batch, half the
    channels), in each backend: a logistic regression trained on the real digits gives at
    least 80% of 1,000 samples a class probability above 0.5 (85% in both when last measured;
    JAX 30 s with its compilation, torch 14 s on 2 cores)."""
    pytest.importorskip(backend)
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data" / "digits.npz")
    text = EXAMPLE.read_text().replace("steps 3000", f"steps {QUICK_STEPS}").replace(
        "batch 128", f"batch {QUICK_BATCH}").replace("channels = 32", f"channels = {QUICK_CHANNELS}")
    assert f"channels = {QUICK_CHANNELS}" in text
    (tmp_path / "digits.tfm").write_text(text)
    m = tfm.load(tmp_path / "digits.tfm", backend=backend, folder=tmp_path)
    m.fit(progress=False)
    x = m.sample(1000, seed=1)
    digits = load_digits()
    classifier = LogisticRegression(max_iter=2000).fit(digits.images.reshape(-1, 64) / 8 - 1,
                                                       digits.target)
    confident = classifier.predict_proba(x.reshape(len(x), 64)).max(1) > 0.5
    assert confident.mean() >= 0.8, confident.mean()
    del sklearn


QUICK_STEPS, QUICK_BATCH, QUICK_CHANNELS = 400, 64, 16
