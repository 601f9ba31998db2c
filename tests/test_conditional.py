"""Conditional generation (docs/conditional.md): class labels read with a data target, networks
that take them, labels dropped in training, classifier-free guidance when sampling, OT within
each class, and the errors of bad labels, for both backends."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend_params import to_numpy  # tests/
from tfm.backends.runtime import couplings
from tfm.backends.runtime.metrics import w2
from tfm.backends.runtime.spec import Call
from tfm.errors import TfmError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "eight_gaussians_conditional.tfm"
RADIUS, STD = 3.0, 0.3  # the example's data (examples/data/eight_gaussians.npz)
QUICK_STEPS = 800  # the quick form's training steps (the example: 4000)


def _component(k: int, n: int, seed: int) -> np.ndarray:
    """Exact draws of the example's component k."""
    angle = k * math.pi / 4
    centre = RADIUS * np.array([math.cos(angle), math.sin(angle)])
    return (centre + STD * np.random.default_rng(seed).standard_normal((n, 2))).astype(np.float32)


def _copy_example(folder: Path, text: str | None = None) -> Path:
    (folder / "data").mkdir(exist_ok=True)
    shutil.copy(ROOT / "examples" / "data" / "eight_gaussians.npz", folder / "data")
    path = folder / EXAMPLE.name
    path.write_text(text if text is not None else EXAMPLE.read_text())
    return path


def _model_text(target: str = 'data("points.npz", key = "x", labels = "y")',
                objective: str = "label ~ dropped(0.2)", coupling: str = "independent",
                network: str = "mlp(width = 32, depth = 2)") -> str:
    return f"""import stdlib.interpolants
model Labelled {{
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ {target}
    coupling {coupling}
    interpolant x_t = linear
    network b = {network}
    objective {{
        b ~ velocity
        {objective}
    }}
    sampler ode = heun(steps = 10)
    train {{ steps 200 batch 64 seed 0 }}
}}
"""


@pytest.fixture()
def labelled(tmp_path):
    """A folder with points.npz: 300 points of 3 classes (x, y), plus a bad label file."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.stack([y - 1.0, np.zeros(300)], axis=1) * 3 + rng.normal(size=(300, 2)) * 0.2)
    np.savez(tmp_path / "points.npz", x=x.astype(np.float32), y=y)
    np.save(tmp_path / "points.npy", x.astype(np.float32))
    rows = "\n".join(f"{a:.4f},{k},{b:.4f}" for (a, b), k in zip(x, y))
    (tmp_path / "points.csv").write_text("u,class,v\n" + rows + "\n")
    (tmp_path / "bare.csv").write_text(rows + "\n")
    return tmp_path


def _check(folder: Path, text: str):
    """The model's spec; its errors raised."""
    from tfm.backends.codegen.spec import spec
    from tfm.compiler.pipeline import compile_file
    path = folder / "m.tfm"
    path.write_text(text)
    compilation = compile_file(path)
    compilation.raise_errors()
    return spec(compilation.model)


# --- the language --------------------------------------------------------------------------

@pytest.mark.parametrize("target, objective, message", [
    ('data("points.npz", key = "x", labels = "z")', "", "has no label array 'z'; it holds x, y"),
    ('data("points.npz", key = "x", labels = "y", classes = 2)', "",
     "the label 2 is not below classes = 2"),
    ('data("points.npy", labels = "y")', "", "labels are read from a .npz file"),
    ('data("points.csv", labels = "label")', "", "has no column 'label'; its columns are u, "
                                                 "class, v"),
    ('data("bare.csv", labels = "class")', "", "has no header row"),
    ('data("points.npz", key = "x", classes = 3)', "", "classes counts the classes of labels"),
    ('data("points.npz", key = "x")', "label ~ dropped(0.1)",
     "drops the target's class labels (or condition vectors), and the target has none"),
    ('data("points.npz", key = "x", labels = "y")', "label ~ dropped(1)",
     "from 0 up to (not including) 1"),
    ('data("points.npz", key = "x", labels = "y")', "label ~ uniform(0, 1)",
     "'uniform' is a timelaw, not a labellaw"),
])
def test_bad_labels_are_located_errors(labelled, target, objective, message):
    with pytest.raises(TfmError) as err:
        _check(labelled, _model_text(target, objective))
    assert message in str(err.value)
    assert "m.tfm" in str(err.value)  # located in the model file


def test_labels_from_a_csv_column_are_left_out_of_the_samples(labelled):
    import tfm
    spec = _check(labelled, _model_text('data("points.csv", labels = "class")'))
    assert spec.classes == 3 and tuple(spec.shape) == (2,)
    m = tfm.load(labelled / "m.tfm", backend="jax")
    data = np.load(labelled / "points.npz")
    np.testing.assert_allclose(m._density_array("target"), data["x"], atol=1e-4)
    assert np.array_equal(m.labels(), data["y"])


def test_labels_on_the_base_are_an_error(labelled):
    text = _model_text().replace("base x0 ~ normal(0, 1)",
                                 'base x0 ~ data("points.npz", key = "x", labels = "y")')
    with pytest.raises(TfmError, match="the base's data cannot carry them"):
        _check(labelled, text)


def test_the_spec_carries_the_classes_and_the_drop(labelled):
    spec = _check(labelled, _model_text())
    assert spec.classes == 3 and spec.label_drop == 0.2
    assert spec.network("b").args["classes"] == 3
    plain = _check(labelled, _model_text('data("points.npz", key = "x")', ""))
    assert plain.classes == 0 and "classes" not in plain.network("b").args


def test_derive_shows_the_guided_field(labelled):
    path = labelled / "m.tfm"
    path.write_text(_model_text())
    out = subprocess.run([sys.executable, "-m", "tfm", "derive", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert "labels (3 classes from 'points.npz'[y])" in out
    assert "(1 + w) N(t, x | c) - w N(t, x | none)" in out


# --- OT within each class ------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["device", "exact"])
def test_minibatch_ot_pairs_within_each_class(backend_ops, solver):
    _, ops = backend_ops
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 128)
    x0 = ops.asarray(rng.normal(size=(128, 2)).astype(np.float32))
    x1 = ops.asarray((rng.normal(size=(128, 2)) + labels[:, None]).astype(np.float32))
    couple = couplings.make(ops, Call("minibatch_ot", {"solver": solver}))
    a, b, y = couple(ops.random(ops.key(0)), x0, x1, labels=ops.asarray(labels))
    assert np.array_equal(to_numpy(y), labels)  # each x0 keeps the class drawn with its row
    rows = {tuple(r): k for r, k in zip(to_numpy(x1).round(5), labels)}
    assert all(rows[tuple(r)] == k for r, k in zip(to_numpy(b).round(5), labels))


def test_sinkhorn_pairs_within_each_class(backend_ops):
    _, ops = backend_ops
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 64)
    x0 = ops.asarray(rng.normal(size=(64, 2)).astype(np.float32))
    x1 = ops.asarray(rng.normal(size=(64, 2)).astype(np.float32))
    couple = couplings.make(ops, Call("sinkhorn", {"reg": 0.5}))
    _, _, y = couple(ops.random(ops.key(0)), x0, x1, labels=ops.asarray(labels))
    assert np.array_equal(to_numpy(y), labels)


# --- training and sampling -----------------------------------------------------------------

def _trained(path: Path, backend: str, steps: int):
    import tfm
    m = tfm.load(path, backend=backend)
    m.fit(steps=steps, progress=False, log=lambda *a, **k: None)
    return m


def test_each_class_is_sampled_as_well_as_the_unconditional_model_samples_all(tmp_path):
    """The example, in a quick form (JAX; torch gives the same fields, below): each label's
    samples against that component's exact draws, W2 within 1.5x the W2 of the same model
    trained without labels on the whole target (800 points on each side throughout)."""
    backend = "jax"
    text = EXAMPLE.read_text().replace("coupling minibatch_ot", "coupling independent")
    m = _trained(_copy_example(tmp_path, text), backend, QUICK_STEPS)
    plain = text.replace(', labels = "label", classes = 8', "").replace("label ~ dropped(0.1)", "")
    (tmp_path / "plain").mkdir()
    u = _trained(_copy_example(tmp_path / "plain", plain), backend, QUICK_STEPS)
    whole = np.concatenate([_component(k, 100, 100 + k) for k in range(8)])
    unconditional = w2(u.sample(800, seed=1), whole)
    per_class = [w2(m.sample(800, cond=k, seed=k), _component(k, 800, k)) for k in range(8)]
    assert max(per_class) < 1.5 * unconditional, (per_class, unconditional)
    # the guided field is (1 + w) b(t, x | c) - w b(t, x | none)
    x = np.random.default_rng(5).normal(size=(32, 2)).astype(np.float32)
    with_class = m.evaluate("velocity", 0.4, x, cond=2)
    without = m.evaluate("velocity", 0.4, x)
    np.testing.assert_allclose(m.evaluate("velocity", 0.4, x, cond=2, guidance=2.0),
                               3 * with_class - 2 * without, rtol=1e-4, atol=1e-4)
    assert np.abs(with_class - without).max() > 0.1  # the label matters
    # the model without labels (label "none", trained one time in ten) samples all classes
    assert m.sample(1000, seed=3).shape == (1000, 2)


def test_both_backends_give_the_same_guided_field(tmp_path):
    pytest.importorskip("torch")
    import tfm
    path = _copy_example(tmp_path)
    j = _trained(path, "jax", 30)
    j.save(tmp_path / "ckpt.safetensors")
    t = tfm.load(path, backend="torch").load(tmp_path / "ckpt.safetensors")
    x = np.random.default_rng(4).normal(size=(16, 2)).astype(np.float32)
    cond = np.arange(16) % 8
    for guidance in (0.0, 1.5):
        a = j.evaluate("velocity", 0.3, x, cond=cond, guidance=guidance)
        b = t.evaluate("velocity", 0.3, x, cond=cond, guidance=guidance)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # log-densities given the classes agree too
    np.testing.assert_allclose(j.log_prob(x, cond=cond), t.log_prob(x, cond=cond), rtol=1e-3,
                               atol=1e-3)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.sample(4, cond=9), "The class 9 (point 0) is not among the trained classes 0 "
                                    "to 7, or 8 for none"),
    (lambda m: m.sample(4, cond=[1, 2]), "shape (2,); it gives one class per point"),
    (lambda m: m.sample(4, cond=[0.5] * 4), "not whole numbers"),
    (lambda m: m.sample(4, guidance=1.0), "it needs the classes (cond=)"),
    (lambda m: m.log_prob(np.zeros((3, 2), np.float32), cond=[1, 2]), "shape (2,)"),
])
def test_bad_classes_at_sampling_are_clear_errors(tmp_path, call, message):
    import tfm
    m = tfm.load(_copy_example(tmp_path), backend="jax")
    with pytest.raises(TfmError) as err:
        call(m)
    assert message in str(err.value)


def test_a_model_without_labels_refuses_classes_and_one_without_drop_needs_them(labelled):
    import tfm
    path = labelled / "m.tfm"
    path.write_text(_model_text('data("points.npz", key = "x")', ""))
    with pytest.raises(TfmError, match="not conditioned on labels"):
        tfm.load(path, backend="jax").sample(4, cond=1)
    path.write_text(_model_text(objective=""))
    m = tfm.load(path, backend="jax")
    with pytest.raises(TfmError, match="has no unconditional field"):
        m.sample(4)
    with pytest.raises(TfmError, match="Guidance needs the unconditional field"):
        m.sample(4, cond=1, guidance=1.0)
    assert m.sample(4, cond=[0, 1, 2, 0]).shape == (4, 2)


def test_a_user_network_cannot_stand_in_for_a_conditioned_one(labelled):
    torch = pytest.importorskip("torch")
    import tfm
    path = labelled / "m.tfm"
    path.write_text(_model_text())

    class Net(torch.nn.Module):
        def forward(self, t, x):
            return x * t[:, None]
    with pytest.raises(TfmError, match="conditions its networks on the target's labels"):
        tfm.load(path, backend="torch", networks={"b": Net()})


def test_tfmc_run_and_sample_with_a_label(tmp_path, capsys):
    from tfm.driver import cli
    text = EXAMPLE.read_text().replace("coupling minibatch_ot", "coupling independent")
    path = _copy_example(tmp_path, text)
    out = tmp_path / "run"
    assert cli.main(["run", str(path), "--out", str(out), "--steps", "200", "--quiet"]) == 0
    import json
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["w2_per_class"]) == {str(k) for k in range(8)}
    three = tmp_path / "three.npy"
    sample = ["sample", str(out), "-o", str(three)]
    assert cli.main(sample + ["-n", "50", "--label", "3", "--guidance", "1"]) == 0
    assert np.load(three).shape == (50, 2)
    capsys.readouterr()
    assert cli.main(sample + ["-n", "5", "--label", "12"]) != 0
    assert "The class 12 (point 0) is not among" in capsys.readouterr().err


@pytest.mark.parametrize("network", ["resmlp(width = 32, blocks = 2)",
                                     "convnet(channels = 8, depth = 2)"])
def test_every_network_kind_takes_labels_alike_in_both_backends(tmp_path, network):
    """A kind's label input, on the same weights in both backends (the initial ones with noise
    added): the outputs agree, and the label changes them."""
    pytest.importorskip("torch")
    import tfm
    from tfm.backends.runtime import checkpoint
    rng = np.random.default_rng(6)
    image = network.startswith("conv")
    shape = (1, 8, 8) if image else (2,)
    np.savez(tmp_path / "points.npz", x=rng.normal(size=(40,) + shape).astype(np.float32),
             y=np.arange(40) % 4)
    text = _model_text(network=network).replace("dim 2", "dim [1, 8, 8]" if image else "dim 2")
    path = tmp_path / "m.tfm"
    path.write_text(text)
    j = tfm.load(path, backend="jax")
    j.save(tmp_path / "ckpt.safetensors")
    tensors, meta = checkpoint.load(tmp_path / "ckpt.safetensors")
    noisy = {k: (v + 0.1 * rng.normal(size=v.shape)).astype(v.dtype)
             if k.startswith(("params/", "ema/")) else v for k, v in tensors.items()}
    checkpoint.save(tmp_path / "ckpt.safetensors", noisy, meta)
    j.load(tmp_path / "ckpt.safetensors")
    t = tfm.load(path, backend="torch").load(tmp_path / "ckpt.safetensors")
    x = rng.normal(size=(6,) + shape).astype(np.float32)
    cond = np.array([0, 1, 2, 3, 0, 1])
    a = j.evaluate("velocity", 0.3, x, cond=cond)
    np.testing.assert_allclose(a, t.evaluate("velocity", 0.3, x, cond=cond), rtol=1e-4,
                               atol=1e-5)
    assert np.abs(a - j.evaluate("velocity", 0.3, x, cond=(cond + 1) % 4)).max() > 1e-3


def test_the_unet_and_the_other_kinds_widen_their_label_input():
    from tfm.backends.runtime import networks
    base = {"channels": 8, "multipliers": [1, 2], "blocks": 1, "attention": [4], "groups": 4,
            "activation": "silu", "dropout": 0.0}
    for kind, args, shape in (("unet", base, (1, 8, 8)), ("mlp", {"width": 8, "depth": 2}, (2,)),
                              ("convnet", {"channels": 8, "depth": 2}, (1, 8, 8))):
        plain = networks.layer_plan(networks.NETWORKS[kind], args, shape, False)
        labelled = networks.layer_plan(networks.NETWORKS[kind], {**args, "classes": 10}, shape,
                                       False)
        widened = [(a, b) for a, b in zip(plain, labelled) if a != b]
        assert len(widened) == 1 and widened[0][1][1] == widened[0][0][1] + 11, kind


def test_guided_digits_are_recognised_as_the_class_asked_for(tmp_path):
    """examples/digits_conditional.tfm with a smaller network, in a quick form (torch, 800 steps
    of convnet(channels = 32, depth = 3)): a logistic regression trained on the real digits
    labels most of 1,000 samples (100 per class) as the class asked for with guidance 4, far
    more than without (measured: 90.1% against 33.0%). The example itself reaches 90.1% without
    guidance and 100% with guidance 2 (bench/conditional.py, docs/conditional.md)."""
    pytest.importorskip("torch")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data")
    path = tmp_path / "digits_conditional.tfm"
    text = (ROOT / "examples" / "digits_conditional.tfm").read_text()
    path.write_text(text.replace("convnet(channels = 64, depth = 4)",
                                 "convnet(channels = 32, depth = 3)"))
    m = _trained(path, "torch", 800)
    digits = load_digits()
    classifier = LogisticRegression(max_iter=2000).fit(
        (digits.images / 8 - 1).reshape(len(digits.images), -1), digits.target)
    cond = np.repeat(np.arange(10), 100)

    def accuracy(guidance):
        samples = m.sample(1000, cond=cond, guidance=guidance, seed=1)
        return float(np.mean(classifier.predict(samples.reshape(1000, -1)) == cond))
    plain, guided = accuracy(0.0), accuracy(4.0)
    assert guided >= 0.8 and guided > plain + 0.3, (guided, plain)


def test_a_conditioned_image_model_gets_a_grid_per_class(tmp_path):
    """tfmc run's evaluation of an image model with labels: a sample grid per class."""
    from tfm.driver.run import evaluate
    import tfm
    rng = np.random.default_rng(8)
    np.savez(tmp_path / "points.npz", x=rng.normal(size=(30, 1, 4, 4)).astype(np.float32),
             y=np.arange(30) % 3)
    path = tmp_path / "m.tfm"
    path.write_text(_model_text(network="convnet(channels = 4, depth = 1)")
                    .replace("dim 2", "dim [1, 4, 4]"))
    metrics = evaluate(tfm.load(path, backend="jax"), out=tmp_path, n=30)
    assert set(metrics["w2_per_class"]) == {0, 1, 2}
    assert all((tmp_path / f"samples_class_{k}.png").is_file() for k in range(3))


# --- condition vectors ---------------------------------------------------------------------

POSTERIOR = ROOT / "examples" / "gaussian_posterior.tfm"


@pytest.fixture()
def observed(tmp_path):
    """points.npz with 200 points x and a 3-vector c per point, plus bad condition arrays."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    c = rng.normal(size=(200, 3)).astype(np.float32)
    bad = c.copy()
    bad[17, 1] = np.nan
    np.savez(tmp_path / "points.npz", x=x, c=c, short=c[:10], bad=bad, y=np.arange(200) % 2)
    return tmp_path


@pytest.mark.parametrize("target, coupling, message", [
    ('data("points.npz", key = "x", condition = "d")', "independent",
     "has no condition array 'd'"),
    ('data("points.npz", key = "x", condition = "short")', "independent",
     "has shape (10, 3); the conditions are one vector per sample: shape (200, k)"),
    ('data("points.npz", key = "x", condition = "bad")', "independent",
     "sample 17: non-finite values"),
    ('data("points.npz", key = "x", condition = "c", labels = "y")', "independent",
     "labels or on condition vectors, not both"),
    ('data("points.npz", key = "x", condition = "c")', "minibatch_ot",
     "condition vectors have none"),
])
def test_bad_condition_vectors_are_located_errors(observed, target, coupling, message):
    with pytest.raises(TfmError) as err:
        _check(observed, _model_text(target, "", coupling))
    assert message in str(err.value)


def test_the_posterior_of_a_gaussian_is_sampled_given_each_observation(tmp_path):
    """examples/gaussian_posterior.tfm in a quick form (JAX, 2,000 steps): theta ~ N(0, I),
    x = theta + N(0, 0.25 I), so theta | x ~ N(x / 1.25, 0.2 I) exactly."""
    import tfm
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "gaussian_posterior.npz", tmp_path / "data")
    path = tmp_path / POSTERIOR.name
    path.write_text(POSTERIOR.read_text())
    m = tfm.load(path, backend="jax")
    assert m.spec.condition_size == 2 and m.spec.network("b").args["conditions"] == 2
    m.fit(steps=2000, progress=False, log=lambda *a, **k: None)
    for x in ([1.0, -0.5], [2.0, 2.0]):
        theta = m.sample(4000, cond=x, seed=2)
        np.testing.assert_allclose(theta.mean(0), np.asarray(x) / 1.25, atol=0.1)
        np.testing.assert_allclose(theta.var(0), 0.2, rtol=0.25)
    with pytest.raises(TfmError, match=r"shape \(3,\); the model's are vectors of 2"):
        m.sample(5, cond=[1.0, 2.0, 3.0])
    with pytest.raises(TfmError, match="has no unconditional field"):
        m.sample(5)
    # one observation per point, and log-densities given them, in both backends alike
    t = tfm.load(path, backend="torch")
    m.save(tmp_path / "ckpt.safetensors")
    t.load(tmp_path / "ckpt.safetensors")
    points = np.random.default_rng(3).normal(size=(12, 2)).astype(np.float32)
    obs = np.random.default_rng(4).normal(size=(12, 2)).astype(np.float32)
    np.testing.assert_allclose(m.log_prob(points, cond=obs), t.log_prob(points, cond=obs),
                               rtol=1e-3, atol=1e-3)
