"""Run folders written by an earlier version of tfm still open, sample and score, with the same
numbers, for the backend that trained them and for the other one.

``tests/golden/runs/<backend>_v0/`` were written by tfm 0.1.0 (commit b9aaebf, before the
backends/shared -> backends/runtime refactor): a tiny moons model (``model.tfm``: mlp(16, 2) on
the velocity, ``heun(steps = 8)`` and ``euler_maruyama(steps = 8)`` samplers) trained 50 steps
with ``run(..., steps=50)``. Each folder keeps only what ``open_run`` reads (``config.json``,
``model.tfm``, ``checkpoint.safetensors``) and what the old code computed from it:

- ``expected_samples.npy``: ``sample(16, x0=x0)`` (the first sampler, the ODE);
- ``expected_sde_samples.npy``: ``sample(16, sampler="sde", x0=x0, seed=3)``;
- ``expected_seed0_samples.npy``: ``sample(5, seed=0)`` (what ``tfmc sample -n 5`` writes);
- ``expected_logprob.npy``: ``log_prob(points, exact=True)``;
- ``expected_hutchinson_logprob.npy``: ``log_prob(points, exact=False, seed=0)``.

Deterministic outputs (the ODE from given starting points, exact log-densities) must agree with
either backend; outputs of the random streams (seeded starting points, SDE noise, Hutchinson
probes) with the backend that wrote them, since the two backends' generators differ.

``config.json`` names the source file by the absolute path it had then (``/tmp/...``), which no
longer exists: opening must not depend on it. Never regenerate these files from the current code;
they are the old version's outputs.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

RUNS = Path(__file__).resolve().parent / "golden" / "runs"
TRAINED = ("jax", "torch")
SAME, CROSS = 1e-5, 1e-4


def _needs(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")


@pytest.fixture
def run_dir(request, tmp_path) -> Path:
    """A copy of the stored run folder (opening emits modules into it: build_<backend>/)."""
    trained = request.param
    _needs(trained)
    origin = RUNS / f"{trained}_v0"
    copy = tmp_path / f"{trained}_v0"
    shutil.copytree(origin, copy)
    return copy


def _expected(run: Path, name: str) -> np.ndarray:
    return np.load(run / f"{name}.npy", allow_pickle=False)


def test_the_stored_runs_are_there():
    """A clone without them (e.g. lost to an ignore rule) must fail, not skip silently."""
    for trained in TRAINED:
        folder = RUNS / f"{trained}_v0"
        for name in ("config.json", "model.tfm", "checkpoint.safetensors", "x0.npy",
                     "points.npy", "expected_samples.npy", "expected_sde_samples.npy",
                     "expected_seed0_samples.npy", "expected_logprob.npy",
                     "expected_hutchinson_logprob.npy"):
            assert (folder / name).is_file(), f"{folder / name} is missing"
        config = json.loads((folder / "config.json").read_text())
        assert config["backend"] == trained and config["tfm_version"] == "0.1.0"


@pytest.mark.parametrize("run_dir", TRAINED, indirect=True, ids=lambda b: f"trained_{b}")
@pytest.mark.parametrize("reader", ("same", "other"))
def test_old_run_ode_samples_and_exact_log_prob(run_dir, reader):
    from tfm.driver.run import open_run

    trained = json.loads((run_dir / "config.json").read_text())["backend"]
    backend = trained if reader == "same" else next(b for b in TRAINED if b != trained)
    _needs(backend)
    tol = SAME if backend == trained else CROSS
    x0, points = _expected(run_dir, "x0"), _expected(run_dir, "points")

    model = open_run(run_dir, backend)  # weights only: step and history stay 0 / empty

    samples = np.asarray(model.sample(16, x0=x0))
    assert samples.shape == (16, 2) and samples.dtype == np.float32
    np.testing.assert_allclose(samples, _expected(run_dir, "expected_samples"), rtol=tol, atol=tol)

    log_prob = np.asarray(model.log_prob(points, exact=True))
    assert log_prob.shape == (8,)
    np.testing.assert_allclose(log_prob, _expected(run_dir, "expected_logprob"), rtol=tol, atol=tol)


@pytest.mark.parametrize("run_dir", TRAINED, indirect=True, ids=lambda b: f"trained_{b}")
def test_old_run_random_streams(run_dir, tmp_path, capsys):
    """The same seed gives the same draws as the version that wrote the run (same backend)."""
    from tfm.driver import cli
    from tfm.driver.run import open_run

    x0, points = _expected(run_dir, "x0"), _expected(run_dir, "points")
    model = open_run(run_dir)
    found = {
        "expected_seed0_samples": np.asarray(model.sample(5, seed=0)),
        "expected_sde_samples": np.asarray(model.sample(16, sampler="sde", x0=x0, seed=3)),
        "expected_hutchinson_logprob": np.asarray(model.log_prob(points, exact=False, seed=0)),
    }
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(run_dir), "-n", "5", "-o", str(out)]) == 0
    found["expected_seed0_samples (tfmc sample -n 5)"] = np.load(out, allow_pickle=False)
    capsys.readouterr()
    wrong = []
    for name, value in found.items():
        expected = _expected(run_dir, name.split(" ")[0])
        if value.shape != expected.shape or not np.allclose(value, expected, rtol=SAME, atol=SAME):
            wrong.append(f"{name}: max |diff| {np.max(np.abs(value - expected)):.3g}")
    assert not wrong, "differs from the old version's draws: " + "; ".join(wrong)


@pytest.mark.parametrize("run_dir", TRAINED, indirect=True, ids=lambda b: f"trained_{b}")
def test_old_run_through_the_command_line(run_dir, tmp_path, capsys):
    from tfm.driver import cli

    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(run_dir), "-n", "5", "-o", str(out)]) == 0
    samples = np.load(out, allow_pickle=False)
    assert samples.shape == (5, 2) and samples.dtype == np.float32
    assert np.all(np.isfinite(samples))

    scores = tmp_path / "lp.npy"
    assert cli.main(["logprob", str(run_dir), str(run_dir / "points.npy"), "--exact",
                     "-o", str(scores)]) == 0
    values = np.load(scores, allow_pickle=False)
    assert values.shape == (8,) and values.dtype == np.float32
    np.testing.assert_allclose(values, _expected(run_dir, "expected_logprob"),
                               rtol=SAME, atol=SAME)
    capsys.readouterr()
