"""Data parallelism on this CPU (docs/distributed.md): JAX over a mesh of 2 forced host devices,
and over 2 processes (jax.distributed); torch over 2 gloo processes started by ``tfmc run
--devices 2``. A run on 2 devices equals the 1-device run of the same seed and global batch
(losses of the first 50 steps and final weights within 1e-5 relative), with the minibatch OT
coupling solved over the global batch; a checkpoint is written by one process and resumes on
another number of devices; a process that dies stops the run with a clear message and the last
checkpoint intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tfm.backends.runtime import checkpoint, parallel
from tfm.errors import TfmSemanticError

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-5

MODEL = """import stdlib.toy2d
import stdlib.interpolants

model Parallel {
    base x0 ~ normal(0, 1)
    target x1 ~ moons(noise = 0.05)
    coupling minibatch_ot
    interpolant x_t = linear
    network b = mlp(width = 32, depth = 2)
    objective { b ~ velocity }
    sampler ode = heun(steps = 8)
    train { steps 50  batch 64  optimizer adam(lr = 1e-3)  ema 0.99
            log_every 10  checkpoint_every 10  seed 3 }
}
"""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("parallel") / "parallel.tfm"
    path.write_text(MODEL)
    (path.parent / "chains.tfm").write_text(CHAINS)
    (path.parent / "flow.tfm").write_text(FLOW)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    np.savez(path.parent / "labelled.npz", y=labels,
             x=(rng.normal(size=(600, 2)) * 0.3 + labels[:, None]).astype(np.float32))
    (path.parent / "labelled.tfm").write_text(
        MODEL.replace("model Parallel", "model Labelled").replace(
            "target x1 ~ moons(noise = 0.05)",
            'target x1 ~ data("labelled.npz", key = "x", labels = "y")').replace(
            "objective { b ~ velocity }", "objective { b ~ velocity  label ~ dropped(0.2) }"))
    return path


def _env(**extra) -> dict:
    """These tests run on the CPU, also on a machine with a GPU: JAX's host devices, gloo."""
    env = os.environ | {"PYTHONUNBUFFERED": "1", "JAX_PLATFORMS": "cpu",
                        "CUDA_VISIBLE_DEVICES": ""} | extra
    env.pop("WORLD_SIZE", None)
    return env


def _tfmc(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfm.driver.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or _env(), timeout=timeout)


def _close(a, b) -> float:
    """Largest difference relative to the largest magnitude."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))


def _run_state(folder: Path) -> tuple[np.ndarray, dict]:
    tensors, _ = checkpoint.load(folder / checkpoint.NAME)
    return tensors["loss"], {k: v for k, v in tensors.items() if k.startswith("params/")}


def _assert_same_run(one: tuple, many: tuple) -> None:
    (loss_a, weights_a), (loss_b, weights_b) = one, many
    assert len(loss_a) == len(loss_b) >= 50
    assert _close(loss_a, loss_b) < RTOL
    assert set(weights_a) == set(weights_b)
    for k in weights_a:
        assert _close(weights_a[k], weights_b[k]) < RTOL, k


# --- the rule, without devices ----------------------------------------------------------------
def test_a_global_batch_splits_into_equal_slices_that_keep_the_global_pairing(model_file):
    """Each process's slice of a step's batch is rows of the batch drawn and paired (minibatch
    OT over all 64 rows) as on one device: the pairing is the exact optimum of the global cost,
    not of each slice's (the device solver's: within 0.5% of the exact optimum)."""
    import tfm
    from scipy.optimize import linear_sum_assignment

    model = tfm.load(model_file, backend="torch", device="cpu")
    draw = model.objective.draw(model)
    whole = draw(model.ops.random(model.ops.key(5)), 64)
    t, x0, x1, z = (np.asarray(a) for a in whole)

    class Slice(parallel.Layout):
        devices = 2

        def __init__(self, rank):
            self.rank = rank

        def batch(self, arrays, n):
            return parallel.split_rows(arrays, n, parallel.rows_of(n, self.rank, self.devices))

    parts = [Slice(r).batch(draw(model.ops.random(model.ops.key(5)), 64), 64) for r in (0, 1)]
    for k, a in enumerate(whole):
        if np.ndim(np.asarray(a)):
            joined = np.concatenate([np.asarray(p[k]) for p in parts])
            np.testing.assert_array_equal(joined, np.asarray(a))
    cost = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() <= np.trace(cost) <= 1.005 * cost[rows, cols].sum()  # x1 paired
    across = cost[:32, 32:].min(axis=1) < np.diag(cost)[:32]  # pairs cross the slices' border
    assert across.any()


def test_a_batch_that_does_not_split_and_bad_devices_are_errors(model_file):
    with pytest.raises(TfmSemanticError, match="batch of 64 does not split over 3 devices"):
        parallel.check_batch(64, 3)
    parallel.check_batch(64, 2)
    import tfm

    with pytest.raises(TfmSemanticError, match="whole number of devices"):
        tfm.load(model_file, backend="jax", devices=0)


# --- JAX: a mesh of 2 host devices, in a process of its own ------------------------------------
JAX_SCRIPT = """
import json, os, sys
import numpy as np
import jax
import tfm
from tfm.backends.runtime import checkpoint

path, out = sys.argv[1], sys.argv[2]
assert len(jax.devices()) == 2, jax.devices()
report = {}

one = tfm.load(path, backend="jax")
one.fit(steps=50, progress=False)
np.savez(out + "/one.npz", loss=np.asarray(one.history),
         **{f"params/{k}": np.asarray(v) for k, v in one.params.items()})
two = tfm.load(path, backend="jax", devices=2)
two.fit(steps=50, progress=False)
report["devices"] = sorted(str(d) for d in next(iter(two.params.values())).sharding.device_set)
report["loss"] = float(np.max(np.abs(np.subtract(one.history, two.history))
                             / np.max(np.abs(one.history))))
report["weights"] = max(float(np.max(np.abs(np.asarray(one.params[k]) - np.asarray(v)))
                              / np.max(np.abs(np.asarray(one.params[k]))))
                        for k, v in two.params.items())

# the step's batch under the mesh: drawn and paired over all 64 rows, then split by rows
layout = two.layout
draw = two.objective.draw(two)
def batch(key):
    return layout.batch(draw(two.ops.random(key), 64), 64)
laid = jax.jit(batch)(jax.random.PRNGKey(7))
whole = jax.jit(lambda key: draw(one.ops.random(key), 64))(jax.random.PRNGKey(7))
report["batch_sharded"] = [len(a.sharding.device_set) for a in laid if a.ndim]
report["batch_equal"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                            for a, b in zip(laid, whole))

# sampling and log-densities: points split over the devices, gathered in order (101 points:
# padded to 102 and cut)
x1, x2 = one.sample(101, seed=4), two.sample(101, seed=4)
report["samples"] = float(np.max(np.abs(x1 - x2)))
report["log_prob"] = float(np.max(np.abs(one.log_prob(x1[:33]) - two.log_prob(x1[:33]))))

# resumed on another number of devices: 30 steps on 1 device, then to 50 on 2
os.makedirs(out + "/resumed")
a = tfm.load(path, backend="jax")
a.fit(steps=30, out=out + "/resumed", progress=False)
b = tfm.load(path, backend="jax", devices=2)
b.fit(steps=50, out=out + "/resumed", resume=True, progress=False)
report["resumed"] = float(np.max(np.abs(np.subtract(one.history, b.history))
                                 / np.max(np.abs(one.history))))
report["resumed_weights"] = max(float(np.max(np.abs(np.asarray(one.params[k]) - np.asarray(v)))
                                      / np.max(np.abs(np.asarray(one.params[k]))))
                                for k, v in b.params.items())

# MCMC chains and SMC particles split over the devices (64 chains; 4 x 256 particles)
chains = os.path.join(os.path.dirname(path), "chains.tfm")
plain = tfm.load(chains, backend="jax")
split = tfm.load(chains, backend="jax", devices=2)
report["mcmc"] = float(np.max(np.abs(plain.run("mala", seed=1).draws
                                     - split.run("mala", seed=1).draws)))
report["log_Z"] = [plain.run("smc", seed=1).result.log_Z, split.run("smc", seed=1).result.log_Z]
seen = []
shard = split.layout.rows
split.layout.rows = lambda x, *a: seen.append(len(shard(x).sharding.device_set)) or shard(x, *a)
split.run("mala", seed=2)
split.run("smc", seed=2)
report["chains_on"] = seen

# a model conditioned on labels (minibatch OT within each class, labels dropped): the labels
# are split with their rows in training, and with their points in sampling
labelled = os.path.join(os.path.dirname(path), "labelled.tfm")
c1, c2 = tfm.load(labelled, backend="jax"), tfm.load(labelled, backend="jax", devices=2)
c1.fit(steps=20, progress=False)
c2.fit(steps=20, progress=False)
report["labelled_loss"] = float(np.max(np.abs(np.subtract(c1.history, c2.history))
                                       / np.max(np.abs(c1.history))))
cond = np.arange(101) % 3
report["labelled_samples"] = float(np.max(np.abs(c1.sample(101, cond=cond, guidance=1.0)
                                                 - c2.sample(101, cond=cond, guidance=1.0))))

# a normalizing flow: its training, draws, log-densities and importance sampling (2 x 301
# draws: padded to 302 a replica, and cut) over the devices
flow = os.path.join(os.path.dirname(path), "flow.tfm")
f1, f2 = tfm.load(flow, backend="jax"), tfm.load(flow, backend="jax", devices=2)
f1.fit(progress=False)
f2.fit(progress=False)
report["flow_loss"] = float(np.max(np.abs(np.subtract(f1.history, f2.history))
                                   / np.max(np.abs(f1.history))))
seen = []
points = f2.layout.points
f2.layout.points = lambda x: seen.append(len(points(x).sharding.device_set)) or points(x)
d1, d2 = f1.sample(101, seed=2), f2.sample(101, seed=2)
report["flow_samples"] = float(np.max(np.abs(d1 - d2)))
report["flow_log_prob"] = float(np.max(np.abs(f1.log_prob(d1) - f2.log_prob(d1))))
r1, r2 = f1.run("w", seed=1), f2.run("w", seed=1)
report["importance"] = [r1.result.log_Z, r2.result.log_Z]
report["importance_draws"] = float(np.max(np.abs(r1.draws - r2.draws)))
report["flow_points_on"] = seen
print(json.dumps(report))
"""

CHAINS = """import stdlib.targets

model Chains {
    base x0 ~ normal(0, 3)
    target x1 ~ funnel()
    sampler mala = mala(step = 0.2, chains = 64, warmup = 100, draws = 100)
    sampler moves = hmc(step = 0.3, leapfrog = 5, jitter = 3, accept = 0.9)
    sampler smc = smc(kernel = moves, particles = 256, replicas = 4, ess = 0.9, moves = 5)
}
"""

FLOW = """import stdlib.targets

model Flow {
    base x0 ~ normal(0, 1)
    target x1 ~ funnel()
    network T = realnvp(layers = 2, width = 16, depth = 1)
    objective { T ~ reverse_kl }
    sampler w = importance(flow = T, particles = 301, replicas = 2)
    train { steps 20  batch 64  optimizer adam(lr = 1e-3)  seed 0 }
}
"""


@pytest.fixture(scope="module")
def jax_report(model_file, tmp_path_factory) -> dict:
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("jax_resume")
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(model_file), str(out)], capture_output=True,
        text=True, timeout=600,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"folder": out}


def test_jax_on_a_mesh_of_two_devices_equals_one_device(jax_report):
    assert len(jax_report["devices"]) == 2  # the weights live on both devices
    assert jax_report["loss"] < RTOL
    assert jax_report["weights"] < RTOL


def test_jax_couples_the_global_batch_and_shards_it(jax_report):
    assert jax_report["batch_equal"] < 1e-6
    assert jax_report["batch_sharded"] and all(n == 2 for n in jax_report["batch_sharded"])


def test_jax_samples_and_log_densities_over_two_devices_equal_one(jax_report):
    assert jax_report["samples"] < 1e-5
    assert jax_report["log_prob"] < 1e-4


def test_jax_splits_mcmc_chains_and_smc_particles_over_the_devices(jax_report):
    """The chains' draws equal the 1-device run's to float rounding (200 MALA iterations);
    SMC's resampling and adaptive temperatures turn rounding into other choices, so its runs
    agree in law: both log Z near the funnel's 0."""
    assert jax_report["chains_on"] and set(jax_report["chains_on"]) == {2}  # (and resamplings)
    assert jax_report["mcmc"] < 1e-3
    assert all(abs(v) < 0.5 for v in jax_report["log_Z"])


def test_jax_splits_a_flows_draws_log_densities_and_importance_sampling(jax_report):
    """A normalizing flow on 2 devices: the same training, and its draws, exact log-densities
    and importance sampling (log Z and the resampled draws) equal the 1-device ones."""
    assert jax_report["flow_loss"] < RTOL
    assert jax_report["flow_points_on"] and set(jax_report["flow_points_on"]) == {2}
    assert jax_report["flow_samples"] < 1e-4
    assert jax_report["flow_log_prob"] < 1e-3
    one, two = jax_report["importance"]
    assert abs(one - two) < 1e-4 and jax_report["importance_draws"] < 1e-4


def test_jax_trains_and_samples_a_labelled_model_over_two_devices_as_on_one(jax_report):
    assert jax_report["labelled_loss"] < RTOL
    assert jax_report["labelled_samples"] < 1e-4


def test_jax_resumes_on_another_number_of_devices(jax_report):
    assert jax_report["resumed"] < RTOL
    assert jax_report["resumed_weights"] < RTOL


def test_jax_over_two_processes_equals_one_process(model_file, tmp_path, jax_report):
    """Two processes of one device each (jax.distributed over gloo on a CPU), as on two
    machines: the same run, written once, by process 0."""
    pytest.importorskip("jax")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "two"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tfm.driver.cli", "run", str(model_file), "--out", str(out),
         "--quiet", "--coordinator", f"127.0.0.1:{port}", "--processes", "2",
         "--process-id", str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env()) for k in (0, 1)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    # (gloo prints a line of its own on stdout, in C++)
    first, second = (text[text.find("{"):] if "{" in text else "" for text, _ in outputs)
    assert json.loads(first)["w2"] > 0 and second == ""  # one process reports and writes
    one = np.load(jax_report["folder"] / "one.npz")  # the 1-device run, on the CPU
    _assert_same_run((one["loss"], {k: one[k] for k in one.files if k != "loss"}),
                     _run_state(out))
    layouts = json.loads((out / "config.json").read_text())["layouts"]
    assert layouts[-1]["devices"] == 2 and layouts[-1]["processes"] == 2


# --- torch: 2 gloo processes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_runs(model_file, tmp_path_factory) -> dict:
    """``tfmc run --devices 2`` (2 processes, 50 steps, evaluated), the same run in this
    process on one device, and both continued here on one process to 80 steps."""
    pytest.importorskip("torch")
    import tfm
    from tfm.driver.run import evaluate

    two = tmp_path_factory.mktemp("torch_runs") / "two"
    done = _tfmc("run", model_file, "--backend", "torch", "--out", two, "--quiet",
                 "--devices", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    one = tfm.load(model_file, backend="torch", device="cpu")
    one.fit(progress=False)
    runs = {"two": two, "two_50": _run_state(two),
            "two_metrics": json.loads(done.stdout[done.stdout.find("{"):]),
            "one_metrics": evaluate(one), "one_50": (np.asarray(one.history), _weights(one))}
    one.fit(steps=80, progress=False)
    runs["one_80"] = (np.asarray(one.history), _weights(one))
    resumed = tfm.load(model_file, backend="torch", device="cpu")
    resumed.fit(steps=80, out=two, resume=True, progress=False)
    runs["two_80"] = (np.asarray(resumed.history), _weights(resumed))
    return runs


def _weights(model) -> dict:
    return {f"params/{k}": np.array(v) for k, v in model._numpy_state()[0].items()}  # copies


def test_torch_on_two_processes_equals_one_process(torch_runs):
    _assert_same_run(torch_runs["one_50"], torch_runs["two_50"])
    assert torch_runs["two_metrics"]["w2"] == pytest.approx(torch_runs["one_metrics"]["w2"],
                                                            rel=1e-4)


def test_torch_writes_the_run_once_and_resumes_on_another_count(torch_runs):
    two = torch_runs["two"]
    assert sorted(p.name for p in two.iterdir()) == sorted(
        ["checkpoint.safetensors", "config.json", "loss.png", "metrics.json", "model.tfm",
         "parallel_torch.py", "samples.npy", "samples.png", "trajectories.png"])
    layouts = json.loads((two / "config.json").read_text())["layouts"]
    assert [(e["from_step"], e["devices"], e["processes"]) for e in layouts] == [(0, 2, 2)]
    assert layouts[0]["batch_per_device"] == 32 and layouts[0]["collectives"] == "gloo"
    _assert_same_run(torch_runs["one_80"], torch_runs["two_80"])  # 50 on 2, then 30 on 1


def test_info_of_a_run_folder_says_how_it_was_trained(torch_runs, capsys):
    from tfm.driver.cli import main

    assert main(["info", str(torch_runs["two"])]) == 0
    text = capsys.readouterr().out
    assert "torch backend, seed 3, step " in text
    assert "from step 0      2 devices in 2 processes (cpu), 32 points per device" in text


def test_the_torchrun_form_runs_the_same_training(model_file, tmp_path):
    pytest.importorskip("torch")
    import tfm

    out = tmp_path / "torchrun"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "tfm",
         "run", str(model_file), "--backend", "torch", "--out", str(out), "--quiet",
         "--steps", "20"], capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one = tfm.load(model_file, backend="torch", device="cpu")
    one.fit(steps=20, progress=False)
    loss, weights = _run_state(out)
    assert _close(one.history, loss) < RTOL
    assert max(_close(v, weights[k]) for k, v in _weights(one).items()) < RTOL
    assert json.loads((out / "config.json").read_text())["layouts"][0]["processes"] == 2


def test_a_worker_that_dies_stops_the_run_and_keeps_the_checkpoint(model_file, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "dies"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tfm.driver.cli", "run", str(model_file), "--backend", "torch",
         "--out", str(out), "--quiet", "--devices", "2", "--steps", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 240
        while not (out / checkpoint.NAME).exists():
            assert launcher.poll() is None, launcher.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        workers = _children(launcher.pid)
        assert len(workers) == 2
        time.sleep(1.0)
        os.kill(workers[1], signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode not in (0, None)
    assert "Worker 1 of 2 stopped (killed by SIGKILL)" in err
    assert "Another process of this run stopped" in err  # worker 0's own words
    assert "is kept in" in err and "--resume" in err
    tensors, _ = checkpoint.load(out / checkpoint.NAME)  # intact, and it resumes on 1 device
    step = int(tensors["step"][0])
    assert step >= 10 and step % 10 == 0
    done = _tfmc("run", model_file, "--backend", "torch", "--out", out, "--quiet", "--resume",
                 "--steps", str(step + 10))
    assert done.returncode == 0, done.stderr[-2000:]


def test_torch_splits_mcmc_chains_and_smc_particles_over_processes(model_file, tmp_path, capsys):
    """``tfmc run chains.tfm --backend torch --devices 2``: each process runs half of the 64
    MALA chains and of the 4 x 256 SMC particles. The chains' draws are drawn for all chains
    and sliced, so they equal the 1-process run's to float rounding (measured: 1e-5); SMC's
    host decisions are taken on the gathered energies, the same in every process, so log Z
    does too (measured: 2e-7)."""
    pytest.importorskip("torch")
    import tfm

    chains, two = model_file.parent / "chains.tfm", tmp_path / "two"
    done = _tfmc("run", chains, "--backend", "torch", "--out", two, "--quiet", "--devices", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    one = tfm.load(chains, backend="torch", device="cpu")
    assert np.max(np.abs(np.load(two / "samples.npy") - one.run("mala").draws)) < 1e-3
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["log_Z"] == pytest.approx(one.run("smc").result.log_Z, abs=1e-4)
    layout = json.loads((two / "config.json").read_text())["layouts"][0]
    assert (layout["devices"], layout["processes"], layout["collectives"]) == (2, 2, "gloo")
    from tfm.driver.cli import main

    assert main(["info", str(two)]) == 0
    text = capsys.readouterr().out
    assert "torch backend, seed 0, samplers run (nothing trained)" in text
    assert "  on 2 devices in 2 processes (cpu)" in text


def test_torch_splits_a_flows_draws_and_importance_sampling_over_processes(model_file, tmp_path):
    """``tfmc run flow.tfm --backend torch --devices 2``: the flow trains as on one process,
    and each process draws its share of the flow's points, of their exact log-densities and of
    importance sampling's 2 x 301 draws (padded to split, cut when gathered); the results equal
    the 1-process run's."""
    pytest.importorskip("torch")
    import tfm
    from tfm.driver.flows import evaluate_flow

    flow, two = model_file.parent / "flow.tfm", tmp_path / "two"
    done = _tfmc("run", flow, "--backend", "torch", "--out", two, "--quiet", "--devices", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    one = tfm.load(flow, backend="torch", device="cpu")
    one.fit(progress=False)
    loss, weights = _run_state(two)
    assert len(loss) == 20 and _close(one.history, loss) < RTOL
    assert all(_close(v, weights[k]) < RTOL for k, v in _weights(one).items())
    (tmp_path / "one").mkdir()
    mine = evaluate_flow(one, tmp_path / "one", progress=False, log=lambda *a: None)
    theirs = json.loads((two / "metrics.json").read_text())
    assert theirs["log_Z"] == pytest.approx(mine["log_Z"], abs=1e-4)
    assert theirs["flow"]["nll"] == pytest.approx(mine["flow"]["nll"], abs=1e-4)
    assert np.max(np.abs(np.load(two / "flow_samples.npy")
                         - np.load(tmp_path / "one" / "flow_samples.npy"))) < 1e-4
    assert np.max(np.abs(np.load(two / "samples.npy")
                         - np.load(tmp_path / "one" / "samples.npy"))) < 1e-4


def test_chains_that_do_not_split_stop_the_run_before_training(tmp_path):
    """63 chains on 2 devices: the error names the sampler before any step, rather than after
    the training (torch used to run every chain in every process)."""
    pytest.importorskip("torch")
    import tfm

    class TwoDevices(parallel.Layout):
        devices = 2

    from test_flow_models import TWO_MODES  # tests/: a flow-assisted MCMC of two modes

    path = tmp_path / "odd.tfm"
    path.write_text(TWO_MODES.replace("chains = 64", "chains = 63"))
    model = tfm.load(path, backend="torch", device="cpu")
    model.layout = TwoDevices()
    with pytest.raises(TfmSemanticError, match="63 chains or particles of the sampler 'fmc' do "
                       "not split over 2 devices"):
        model.fit(progress=False)
    assert model.step == 0
    # a model that only samples: its sampler stops at once, named
    path = tmp_path / "chains.tfm"
    path.write_text(CHAINS.replace("chains = 64", "chains = 63"))
    sampling = tfm.load(path, backend="torch", device="cpu")
    sampling.layout = TwoDevices()
    with pytest.raises(TfmSemanticError, match="63 chains or particles of the sampler 'mala'"):
        sampling.run("mala")


def test_what_a_stopped_run_keeps_is_said_truthfully(tmp_path):
    from tfm.driver.launch import kept

    assert "No checkpoint was written" in kept(tmp_path)
    assert kept(tmp_path, trains=False) == ("The model trains nothing, so there is nothing to "
                                            "resume: run it again.")


def _children(pid: int) -> dict[int, int]:
    """The worker processes of the launcher ``pid``, by their RANK (from their environment:
    the order of process ids is not the order of starting once the ids wrap around)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            rank = next(v.split(b"=", 1)[1] for v in env if v.startswith(b"RANK="))
            found[int(rank)] = child
    return found


def test_torch_in_one_process_refuses_more_devices(model_file):
    pytest.importorskip("torch")
    import tfm

    with pytest.raises(TfmSemanticError, match="2 devices asked for, but this process is one "
                       "of 1"):
        tfm.load(model_file, backend="torch", devices=2)


def test_the_command_line_refuses_jax_options_with_torch(model_file):
    done = _tfmc("run", model_file, "--backend", "torch", "--processes", "2")
    assert done.returncode == 2
    assert "torchrun" in done.stderr


def test_distributed_docs_give_the_commands():
    text = (ROOT / "docs" / "distributed.md").read_text()
    for command in ("--devices 2", "torchrun --nproc-per-node", "--coordinator",
                    "xla_force_host_platform_device_count"):
        assert command in text
    assert "--devices" in (ROOT / "README.md").read_text()
