"""Models without networks end to end: each sampling example runs (with its sizes cut down) into a
complete run folder in both backends, `tfmc sample` continues the chains or reruns SMC, and the
logistic-regression posterior agrees with a long reference run of an independent sampler
(BlackJAX's NUTS: tests/golden/sampling/logistic_reference.npz, written by
bench/logistic_reference.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from backend_params import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SMALL = {"chains": 8, "warmup": 40, "draws": 40, "particles": 64, "replicas": 2, "moves": 2,
         "ess": "0.5"}


def _small(name: str, folder: Path, **override) -> Path:
    """The example ``name`` with its sizes cut down, next to a copy of its data."""
    text = (EXAMPLES / f"{name}.tfm").read_text()
    sizes = SMALL | override
    text = re.sub(r"\b(chains|warmup|draws|particles|replicas|moves|ess) = [\d.]+",
                  lambda m: f"{m.group(1)} = {sizes[m.group(1)]}", text)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    source = EXAMPLES / "data" / "breast_cancer.npz"
    (folder / "data" / "breast_cancer.npz").write_bytes(source.read_bytes())
    path = folder / f"{name}.tfm"
    path.write_text(text)
    return path


def _run(path: Path, backend: str, out: Path) -> dict:
    from tfm.driver.run import run
    return run(path, backend, out, progress=False, log=lambda message: None)


_RUNS: dict = {}


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """(run folder, metrics) of a cut-down example, run once per module and backend."""
    def get(name: str, backend: str):
        if (name, backend) not in _RUNS:
            folder = tmp_path_factory.mktemp(f"{name}_{backend}")
            out = folder / "run"
            _RUNS[name, backend] = out, _run(_small(name, folder), backend, out)
        return _RUNS[name, backend]
    return get


# every example with JAX; with torch (the same runtime, a slower loop) the SMC and MCMC ones
# whose settings differ most
NAMES = {"jax": ("funnel", "manywell", "gmm40_mala", "phi4", "logistic_posterior"),
         "torch": ("funnel", "manywell", "logistic_posterior")}
CASES = [pytest.param(name, backend.values[0], marks=backend.marks)
         for backend in BACKENDS for name in NAMES[backend.values[0]]]


@pytest.mark.parametrize("name, backend", CASES)
def test_sampling_examples_run(name, backend, example_run):
    out, result = example_run(name, backend)
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.tfm", "metrics.json", "samples.npy", "samples.png"} <= files
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result))
    samples = np.load(out / "samples.npy")
    assert np.isfinite(samples).all() and len(samples) > 0
    for summary in metrics["samplers"].values():
        assert summary["energy_evals"] > 0
        assert all(0 <= a <= 1 for a in summary["acceptance"].values())
    if name in ("funnel", "manywell"):  # SMC: log Z and its standard error
        assert np.isfinite(metrics["log_Z"]) and metrics["log_Z_stderr"] is not None
        assert {"log_Z_true", "log_Z_error"} <= set(metrics)
        assert f"log_Z_{metrics['sampler']}.png" in files
        assert "moves" not in metrics["samplers"]  # a kernel used by SMC does not run alone
    else:
        assert "chains.safetensors" in files
        summary = metrics["samplers"][metrics["sampler"]]
        assert summary["rhat_max"] is not None and summary["ess_bulk_min"] > 0
        assert any(f.startswith("traces_") for f in files)
    if name == "phi4":
        assert "magnetisation.png" in files and "abs_mean" in metrics["magnetisation"]


def test_sample_continues_the_chains_and_reruns_smc(tmp_path, capsys, example_run):
    from tfm.driver.cli import main

    out, _ = example_run("logistic_posterior", "jax")
    assert main(["sample", str(out), "-n", "50", "-o", str(tmp_path / "a.npy")]) == 0
    draws = np.load(tmp_path / "a.npy")
    assert draws.shape == (50, 31) and np.isfinite(draws).all()
    # the chains go on from their last states: near the posterior, not the base's spread
    reference = np.load(ROOT / "tests" / "golden" / "sampling" / "logistic_reference.npz")
    assert np.abs(draws.mean(0) - reference["mean"]).max() < 1.0
    assert main(["sample", str(out), "-n", "5", "--trajectory", str(tmp_path / "t.npy"),
                 "-o", str(tmp_path / "b.npy")]) == 1
    assert "trajectory" in capsys.readouterr().err

    smc_out, _ = example_run("funnel", "jax")
    assert main(["sample", str(smc_out), "-n", "30", "-o", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (30, 10)


def test_logistic_posterior_agrees_with_a_long_reference_run(tmp_path):
    """The example's HMC chains (64 chains, 500 draws after 500 of warm-up) against 288 000
    NUTS draws: the mean within 0.05 posterior standard deviations in every coordinate (our
    bulk ESS is in the thousands, so the Monte Carlo error is about 0.01 sd), the covariance
    within 10% (relative Frobenius norm)."""
    import tfm

    path = _small("logistic_posterior", tmp_path, chains=64, warmup=500, draws=500)
    model = tfm.load(path, backend="jax", folder=tmp_path / "build")
    draws = model.run(seed=0).draws
    reference = np.load(ROOT / "tests" / "golden" / "sampling" / "logistic_reference.npz")
    sd = np.sqrt(np.diag(reference["cov"]))
    assert np.max(np.abs(draws.mean(0) - reference["mean"]) / sd) < 0.05
    cov = np.cov(draws, rowvar=False)
    assert np.linalg.norm(cov - reference["cov"]) / np.linalg.norm(reference["cov"]) < 0.1
