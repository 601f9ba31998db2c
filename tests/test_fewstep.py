"""Flow maps and few-step samplers (issue 14, docs/fewstep.md): the compiler's forms and errors,
the map's identity at s = t, both backends' losses and maps on the same weights, the refusal of
log-densities, the Gaussian closed form and the example's run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import tfm
from tfm.compiler.pipeline import compile_text
from tfm.errors import TfmSemanticError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "moons_flowmap.tfm"

MODEL = """
import stdlib.interpolants

model Maps {
    dim 2
    base x0 ~ normal(0, 1)
    target x1 ~ normal(mean = [2, -1], scale = [0.5, 1.5])
    interpolant x_t = linear
    TEACHER
    network X = mlp(width = 32, depth = 2)
    objective {
        TERMS
    }
    sampler ode = heun(steps = 10)
    sampler one = fewstep(steps = 1)
    sampler two = fewstep(steps = 2)
    train {
        steps 100
        batch 64
        optimizer adam(lr = 1e-3)
        seed 0
    }
}
"""
FORMS = {
    "lagrangian": ("network b = mlp(width = 32, depth = 2)",
                   "b ~ velocity\n        X ~ lagrangian(teacher = b)"),
    "eulerian": ("network b = mlp(width = 32, depth = 2)",
                 "b ~ velocity\n        X ~ eulerian(teacher = b)"),
    "self_distillation": ("", "X ~ self_distillation"),
}


def _text(form: str, **replace) -> str:
    teacher, terms = FORMS[form]
    text = MODEL.replace("TEACHER", teacher).replace("TERMS", terms)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def _write(tmp_path, form: str, **replace) -> Path:
    path = tmp_path / f"{form}.tfm"
    path.write_text(_text(form, **replace))
    return path


def _errors(text: str) -> list[str]:
    compilation = compile_text(text, file="maps.tfm", folder=ROOT)
    return [d.message for d in compilation.diagnostics if d.severity == "error"]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_form_compiles_with_its_loss_derived(form):
    compilation = compile_text(_text(form), file="maps.tfm", folder=ROOT)
    assert not [d for d in compilation.diagnostics if d.severity == "error"]
    loss = compilation.model.derivation.flow_map
    assert loss.network == "X" and loss.form == form
    assert str(loss.map) == "x + (-s + t)*v_X(s, t, x)"
    text = str(loss.loss)
    if form == "eulerian":  # d/ds X + (d/dx X) b(s, x_s)
        assert "Derivative(v_X(s, t, x_s), s)" in text and "b(s, x_s)" in text
    else:  # d/dt X - b(t, X): the teacher at the map's point
        assert "Derivative(v_X(s, t, x_s), t)" in text
        teacher = "b(t, " if form == "lagrangian" else "v_X(t, t, "
        assert teacher + "x_s + (-s + t)*v_X(s, t, x_s))" in text
    spec = compilation.model
    assert spec.objective.flow_map.network == "X"


def test_derive_prints_the_flow_map(tmp_path, capsys):
    from tfm.driver import cli

    assert cli.main(["derive", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "flow map X (lagrangian, teacher b;" in out
    assert "X_{s,t}(x) = x + (-s + t)*v_X(s, t, x)" in out
    assert "x_s = s*x1 + x0*(1 - s)" in out


@pytest.mark.parametrize("replace, message", [
    ({"sampler one = fewstep(steps = 1)": "sampler one = fewstep(steps = 1)",
      "X ~ self_distillation": "X ~ velocity"},
     "The sampler 'one' (fewstep) steps a flow map, but the objective trains none."),
    ({"X ~ self_distillation": "X ~ lagrangian(teacher = X)"},
     "'X' cannot be its own teacher."),
    ({"X ~ self_distillation": "X ~ lagrangian(teacher = Y)"},
     "The argument 'teacher' of lagrangian must be a network declared with network NAME = ...; 'Y' is not."),
])
def test_flow_map_mistakes_are_errors(replace, message):
    errors = _errors(_text("self_distillation", **replace))
    assert any(message in e for e in errors), errors


def test_an_untrained_teacher_is_an_error():
    text = _text("lagrangian", **{"b ~ velocity\n": ""})
    errors = _errors(text)
    assert any("The teacher 'b' of the flow map 'X' is not trained on a regression target"
               in e for e in errors), errors


def test_a_second_flow_map_is_an_error():
    text = _text("lagrangian", **{"network X =": "network Y = mlp()\n    network X =",
                                  "X ~ lagrangian(teacher = b)":
                                  "X ~ lagrangian(teacher = b)\n        Y ~ eulerian(teacher = b)"})
    assert any("second flow map" in e for e in _errors(text))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_map_is_the_identity_at_equal_times(tmp_path, backend):
    model = tfm.load(_write(tmp_path, "lagrangian"), backend=backend, folder=tmp_path / backend)
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    flow_map = model.flow_map(model.network(model.weights), "X")
    ops = model.ops
    for s in (0.0, 0.3, 1.0):
        y = ops.numpy(flow_map(ops.asarray(np.full(16, s, np.float32)),
                               ops.asarray(np.full(16, s, np.float32)), ops.asarray(x)))
        np.testing.assert_array_equal(y, x)


ANCHORED = {"X ~ lagrangian(teacher = b)":
            "X ~ lagrangian(teacher = b, anchor = 0.5, anchor_steps = 3)"}


def test_an_anchored_map_shows_its_anchor_term():
    compilation = compile_text(_text("lagrangian", **ANCHORED), file="maps.tfm", folder=ROOT)
    loss = compilation.model.derivation.flow_map
    assert (loss.anchor, loss.anchor_steps) == (0.5, 3)
    assert str(loss.anchor_loss) == "(v_X(s, t, x_s) - (-x_s + Phi(s, t, x_s))/(-s + t))**2"
    plain = compile_text(_text("lagrangian"), file="maps.tfm", folder=ROOT)
    assert plain.model.derivation.flow_map.anchor_loss is None
    errors = _errors(_text("lagrangian", **{"X ~ lagrangian(teacher = b)":
                                            "X ~ lagrangian(teacher = b, anchor = 2)"}))
    assert any("anchor is the fraction of each batch anchored to the teacher's ODE; it is at "
               "most 1, and is 2." in e for e in errors), errors
    assert any("has no parameter 'anchor'" in e for e in _errors(
        _text("self_distillation", **{"X ~ self_distillation": "X ~ self_distillation(anchor = 1)"})))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_anchor_target_is_the_mean_velocity_of_the_teachers_flow(tmp_path, backend):
    """With the exact velocity of the Gaussian flow as teacher, the anchor's target (Heun in
    each point's own interval) is the exact map's mean velocity, to Heun's error."""
    from tfm.backends.runtime.objectives.flow_map import mean_velocity

    model = tfm.load(_write(tmp_path, "lagrangian", **ANCHORED), backend=backend,
                     folder=tmp_path / backend)
    assert (model.spec.objective_args["anchor"], model.spec.objective_args["anchor_steps"]) == \
        (0.5, 3)
    ops, xp = model.ops, model.ops.xp
    mean, scale = np.array([2.0, -1.0]), np.array([0.5, 1.5])
    rng = np.random.default_rng(3)
    u = rng.uniform(0, 1, (2, 256))
    s, t = np.minimum(*u), np.maximum(*u)
    x = rng.standard_normal((256, 2)) * 1.3

    def velocity(time, y):
        time = time[:, None]
        sd = xp.sqrt((1 - time) ** 2 + time ** 2 * ops.asarray(scale ** 2))
        rate = (time * ops.asarray(scale ** 2) - (1 - time)) / sd
        return ops.asarray(mean) + rate / sd * (y - time * ops.asarray(mean))

    exact = (_exact_map(s[:, None], t[:, None], x, mean, scale) - x) / np.maximum(
        (t - s)[:, None], 1e-3)
    errors = {steps: float(np.abs(ops.numpy(mean_velocity(
        ops, velocity, ops.asarray(s), ops.asarray(t), ops.asarray(x), steps)) - exact).max())
        for steps in (5, 10, 20, 40)}
    # Heun's order 2: each halving of the step divides the error by about 4
    for coarse, fine in ((5, 10), (10, 20), (20, 40)):
        assert 3.0 < errors[coarse] / errors[fine] < 5.0, errors
    assert errors[40] < 2e-3, errors


@pytest.mark.parametrize("form, replace", [(f, {}) for f in sorted(FORMS)] +
                         [("lagrangian", ANCHORED)], ids=sorted(FORMS) + ["anchored"])
def test_both_backends_give_the_same_flow_map_loss_steps_and_samples(tmp_path, form, replace):
    path = _write(tmp_path, form, **replace)
    jax_model = tfm.load(path, backend="jax", folder=tmp_path / "jax")
    torch_model = tfm.load(path, backend="torch", folder=tmp_path / "torch")
    rng = np.random.default_rng(1)

    def batch():
        n = 32
        return (rng.uniform(0, 1, n).astype(np.float32),
                rng.standard_normal((n, 2)).astype(np.float32),
                (rng.standard_normal((n, 2)) * 0.5 + 1).astype(np.float32),
                np.zeros((n, 2), np.float32), rng.uniform(0, 1, n).astype(np.float32))
    first = batch()
    a, b = jax_model.loss(*first), torch_model.loss(*first)
    assert abs(a - b) <= 1e-5 * abs(a), (a, b)
    for _ in range(5):
        step = batch()
        a, b = jax_model.step_on(*step), torch_model.step_on(*step)
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (a, b)
    x0 = rng.standard_normal((32, 2)).astype(np.float32)
    for sampler in ("one", "two"):
        ja, path_a = jax_model.sample(32, sampler=sampler, x0=x0, trajectory=True)
        tb, path_b = torch_model.sample(32, sampler=sampler, x0=x0, trajectory=True)
        np.testing.assert_allclose(tb, ja, rtol=1e-4, atol=1e-4)
        assert path_a.shape == (3 if sampler == "two" else 2, 32, 2)
        np.testing.assert_allclose(path_b, path_a, rtol=1e-4, atol=1e-4)


def test_a_map_sampler_refuses_log_densities_with_the_reason(tmp_path):
    model = tfm.load(_write(tmp_path, "self_distillation"), folder=tmp_path / "jax")
    with pytest.raises(TfmSemanticError, match="inverse of the K-step map and its Jacobian"):
        model.log_prob(np.zeros((4, 2), np.float32), sampler="one")
    assert model.log_prob(np.zeros((4, 2), np.float32), sampler="ode").shape == (4,)


def _exact_map(s, t, x, mean, scale):
    """The flow map of the linear interpolant from N(0, I) to N(mean, diag(scale^2)) with an
    independent coupling: x_t ~ N(t mean, (1 - t)^2 + t^2 scale^2) per coordinate, and the map
    is the affine one between the marginals."""
    def sd(u):
        return np.sqrt((1 - u) ** 2 + u ** 2 * scale ** 2)
    return t * mean + sd(t) / sd(s) * (x - s * mean)


def _exact_velocity(mean, scale):
    """The exact velocity of that flow as an Equinox module of (t, x) (a user network, its one
    weight multiplied by zero): the teacher is exact, so the test measures the map alone."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    mean, scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)

    class Exact(eqx.Module):
        zero: jax.Array

        def __call__(self, t, x):
            t = t[:, None]
            sd = jnp.sqrt((1 - t) ** 2 + t ** 2 * scale ** 2)
            rate = (t * scale ** 2 - (1 - t)) / sd  # d sd / dt
            return mean + rate / sd * (x - t * mean) + 0 * self.zero
    return Exact(jnp.zeros(()))


def test_the_learned_map_of_a_gaussian_matches_the_closed_form(tmp_path):
    """N(0, I) -> N([2, -1], diag([0.5, 1.5]^2)), the map distilled (lagrangian, a quarter of
    each batch anchored to the teacher's Heun flow) from the exact velocity: at five (s, t) the
    learned map's RMS error over points of rho_s is within 2% of the spread of X_{s,t} (its
    standard deviation), in each coordinate. (Without the anchor it was 1.44%, with it 1.77%:
    docs/fewstep.md §5; only the anchored run is kept here, for the suite's time.)"""
    pytest.importorskip("equinox")
    mean, scale = np.array([2.0, -1.0]), np.array([0.5, 1.5])
    path = _write(tmp_path, "lagrangian", **{
        "steps 100": "steps 5000", "batch 64": "batch 1024",
        "network X = mlp(width = 32, depth = 2)": "network X = resmlp(width = 64, blocks = 2)",
        "optimizer adam(lr = 1e-3)": "optimizer adam(lr = 2e-3)\n        "
        "lr_schedule cosine_decay(warmup = 100)\n        ema 0.99",
        "X ~ lagrangian(teacher = b)": "X ~ lagrangian(teacher = b, anchor = 0.25)"})
    model = tfm.load(path, folder=tmp_path / "jax",
                     networks={"b": _exact_velocity(mean, scale)}).fit(progress=False)
    rng = np.random.default_rng(2)
    flow_map = model.flow_map(model.network(model.weights), "X")
    ops = model.ops
    errors = {}
    for s, t in ((0.0, 1.0), (0.0, 0.5), (0.5, 1.0), (0.25, 0.75), (0.1, 0.9)):
        sd_s = np.sqrt((1 - s) ** 2 + s ** 2 * scale ** 2)
        x = (s * mean + sd_s * rng.standard_normal((4000, 2))).astype(np.float32)
        got = ops.numpy(flow_map(ops.asarray(np.full(4000, s, np.float32)),
                                 ops.asarray(np.full(4000, t, np.float32)), ops.asarray(x)))
        exact = _exact_map(s, t, x, mean, scale)
        spread = np.sqrt((1 - t) ** 2 + t ** 2 * scale ** 2)
        errors[(s, t)] = float(np.max(np.sqrt(np.mean((got - exact) ** 2, 0)) / spread))
    assert max(errors.values()) <= 0.02, errors
    # the 1-step sampler is the map from the base: its samples' moments are the target's
    samples = model.sample(20000, sampler="one", seed=3)
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(samples.std(0), scale, rtol=0.03)


def test_the_example_run_compares_its_samplers(tmp_path):
    from tfm.driver.run import run

    result = run(EXAMPLE, "jax", out=tmp_path / "run", steps=200, progress=False,
                 log=lambda m: None)
    rows = result["samplers"]
    assert {k: v["network_calls"] for k, v in rows.items()} == {"ode": 40, "one": 1, "two": 2}
    assert all(math.isfinite(v["w2"]) and v["samples_per_second"] > 0 for v in rows.values())
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["samplers"]["one"]["network_calls"] == 1


def test_reflow_trains_on_the_pairs_of_a_run_and_straightens_its_paths(tmp_path, monkeypatch):
    """Round 1 (examples/moons.tfm) and round 2 (examples/moons_reflow.tfm on its pairs), short:
    the pairs are the first run's ODE from base draws, the second round's normalised path energy
    is below the first's, and the second run records the first's. The path energies are
    compared at the default 2000 evaluation points (at the suite's 500 they are too noisy)."""
    from tfm.driver.run import EVAL_POINTS, build, open_run, run

    monkeypatch.setenv("TFM_EVAL_POINTS", str(EVAL_POINTS))

    examples = tmp_path / "examples"
    examples.mkdir()
    for name in ("moons", "moons_reflow"):
        text = (ROOT / "examples" / f"{name}.tfm").read_text()
        text = text.replace("steps 5000", "steps 600").replace("width = 256", "width = 64")
        (examples / f"{name}.tfm").write_text(text.replace("pairs = 20000", "pairs = 2000"))
    first = run(examples / "moons.tfm", "jax", out=tmp_path / "runs" / "moons", progress=False,
                log=lambda m: None)
    model = build(examples / "moons_reflow.tfm", "jax", tmp_path / "build")
    x0, x1 = model.reflow_pairs()
    assert x0.shape == x1.shape == (2000, 2)
    teacher = open_run(tmp_path / "runs" / "moons")
    np.testing.assert_allclose(teacher.sample(2000, x0=x0), x1, rtol=1e-5, atol=1e-5)
    second = run(examples / "moons_reflow.tfm", "jax", out=tmp_path / "runs" / "reflow",
                 progress=False, log=lambda m: None)
    assert second["reflow"]["teacher_normalized_path_energy"] == first["normalized_path_energy"]
    assert second["normalized_path_energy"] < 0.9 * first["normalized_path_energy"], \
        (first["normalized_path_energy"], second["normalized_path_energy"])
    # sampling a trained reflow run does not need the first run any more
    import shutil
    shutil.rmtree(tmp_path / "runs" / "moons")
    assert open_run(tmp_path / "runs" / "reflow").sample(5).shape == (5, 2)


def test_reflow_without_a_run_is_a_clear_error(tmp_path):
    from tfm.errors import TfmDataError

    text = (ROOT / "examples" / "moons_reflow.tfm").read_text()
    (tmp_path / "m.tfm").write_text(text.replace("../runs/moons", "nowhere"))
    model = tfm.load(tmp_path / "m.tfm", folder=tmp_path / "build")
    with pytest.raises(TfmDataError, match="names the run folder .*nowhere.*which holds no run"):
        model.fit(steps=1, progress=False)


TEACHER_RUN = 'X ~ lagrangian(teacher = b, run = "runs/teacher")'


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A short run of the Gaussian model's velocity b alone (torch), to be a teacher."""
    from tfm.driver.run import run

    folder = tmp_path_factory.mktemp("teacher")
    text = _text("lagrangian", **{"\n        X ~ lagrangian(teacher = b)": "",
                                  "network X = mlp(width = 32, depth = 2)\n": "",
                                  "sampler one = fewstep(steps = 1)\n": "",
                                  "sampler two = fewstep(steps = 2)\n": "",
                                  "steps 100": "steps 60", "seed 0": "seed 0\n        ema 0.9"})
    (folder / "teacher.tfm").write_text(text)
    run(folder / "teacher.tfm", "torch", out=folder / "runs" / "teacher", progress=False,
        log=lambda m: None)
    return folder


def _teacher_weights(folder: Path) -> dict:
    from safetensors.numpy import load_file

    saved = load_file(str(folder / "runs" / "teacher" / "checkpoint.safetensors"))
    return {k[4:]: v for k, v in saved.items() if k.startswith("ema/b.")}


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_teacher_read_from_a_run_folder_is_fixed_while_the_map_trains(teacher_run, backend):
    """lagrangian(teacher = b, run = ...): b takes the run's trained (EMA) weights when
    training starts and keeps them through training and a resume, which reads the checkpoint,
    not the run; the map trains."""
    import shutil

    folder = teacher_run / backend
    (folder / "runs").mkdir(parents=True)
    shutil.copytree(teacher_run / "runs" / "teacher", folder / "runs" / "teacher")
    path = folder / "map.tfm"
    path.write_text(_text("lagrangian", **{"X ~ lagrangian(teacher = b)": TEACHER_RUN}))
    expected = _teacher_weights(teacher_run)
    out = folder / "runs" / "map"
    model = tfm.load(path, backend=backend, folder=folder / "build")
    initial = {k: np.array(model.ops.numpy(v)) for k, v in model.weights.items()}  # copies
    model.fit(steps=4, out=out, progress=False, log=lambda m: None)
    shutil.rmtree(folder / "runs" / "teacher")  # a resume reads the checkpoint, not the run
    resumed = tfm.load(path, backend=backend, folder=folder / "build")
    resumed.fit(steps=8, out=out, resume=True, progress=False, log=lambda m: None)
    for m in (model, resumed):
        got = {k: np.asarray(m.ops.numpy(v)) for k, v in m.weights.items()}
        for k, v in expected.items():
            np.testing.assert_array_equal(got[k], v)
        assert any(not np.allclose(got[k], v) for k, v in initial.items() if k.startswith("X."))
    assert resumed.step == 8 and resumed.sample(5, sampler="one").shape == (5, 2)


@pytest.mark.parametrize("replace, error, message", [
    ({"runs/teacher": "nowhere"}, "TfmDataError", "names the run folder .*nowhere.*holds no run"),
    ({"network b = mlp(width = 32, depth = 2)": "network b = mlp(width = 16, depth = 2)"},
     "TfmSemanticError", r"trained 'b' as mlp\(width = 32, depth = 2.*declares mlp\(width = 16"),
    ({"b ~ velocity": "b ~ data"}, "TfmSemanticError",
     "to another velocity than this model gives it"),
])
def test_a_teacher_run_that_does_not_fit_is_a_clear_error(teacher_run, tmp_path, replace, error,
                                                         message):
    from tfm import errors

    path = teacher_run / f"bad_{len(list(teacher_run.glob('bad_*')))}.tfm"
    path.write_text(_text("lagrangian", **{"X ~ lagrangian(teacher = b)": TEACHER_RUN,
                                           **replace}))
    model = tfm.load(path, folder=tmp_path / "build")
    with pytest.raises(getattr(errors, error), match=message):
        model.fit(steps=1, progress=False)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_convolutional_flow_map_of_digits(tmp_path, backend):
    """examples/digits_flowmap.tfm, quick: both backends' convolutional maps agree on the same
    weights, and a few steps of training give finite 1-step samples of the image shape."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "digits.npz").write_bytes((ROOT / "examples" / "data" /
                                                    "digits.npz").read_bytes())
    text = (ROOT / "examples" / "digits_flowmap.tfm").read_text()
    path = tmp_path / "digits.tfm"
    path.write_text(text.replace("channels = 64, depth = 4", "channels = 8, depth = 2"))
    model = tfm.load(path, backend=backend, folder=tmp_path / backend)
    other = tfm.load(path, backend="torch" if backend == "jax" else "jax",
                     folder=tmp_path / "other")
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    outs = []
    for m in (model, other):
        flow_map = m.flow_map(m.network(m.weights), "X")
        outs.append(m.ops.numpy(flow_map(m.ops.asarray(np.full(4, 0.2, np.float32)),
                                         m.ops.asarray(np.full(4, 0.9, np.float32)),
                                         m.ops.asarray(x))))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    model.fit(steps=3, progress=False)
    assert np.isfinite(model.history).all()
    samples = model.sample(6, sampler="one")
    assert samples.shape == (6, 1, 8, 8) and np.isfinite(samples).all()
