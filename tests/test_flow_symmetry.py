"""Flows with ``symmetry = sign`` (runtime/flow_density.py): the density q_s(x) = (q(x) +
q(-x)) / 2 of a flow and its mirror image. The sign each draw takes from its latent is a fair
coin independent of the rest of the latent, which stays N(0, I); q_s is even, integrates to
one (a continuous flow's too), and the log-density a draw carries is the one log_prob gives,
in both backends. A one-coordinate sample is refused at compile time."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from test_flows import Flow, flow, perturbed
from tfm.backends.runtime.flow_density import FlowDensity, sign_and_latent
from tfm.backends.runtime.spec import Network


def test_sign_is_a_fair_coin_independent_of_a_standard_normal_latent():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200_000, 3))
    sign, latent = sign_and_latent(np, z)
    assert set(np.unique(sign)) == {-1.0, 1.0}
    assert abs(np.mean(sign > 0) - 0.5) < 4 * 0.5 / math.sqrt(len(z))
    np.testing.assert_array_equal(latent[:, 2], z[:, 2])  # the rest of the latent is kept
    np.testing.assert_allclose(np.hypot(latent[:, 0], latent[:, 1]), np.hypot(z[:, 0], z[:, 1]),
                               rtol=1e-12)  # the radius is kept
    for i in (0, 1):
        assert stats.kstest(latent[:, i], "norm").pvalue > 1e-3
        # the same law whatever the sign
        assert stats.ks_2samp(latent[sign > 0, i], latent[sign < 0, i]).pvalue > 1e-3
    assert abs(np.corrcoef(latent[:, 0], latent[:, 1])[0, 1]) < 0.01
    # the sign is not a function of the new latent: its quadrant carries no information
    quadrant = (latent[:, 0] > 0) * 2 + (latent[:, 1] > 0)
    for q in range(4):
        assert abs(np.mean(sign[quadrant == q] > 0) - 0.5) < 0.01


def test_sign_and_latent_at_the_origin_is_finite():
    sign, latent = sign_and_latent(np, np.zeros((2, 4)))
    assert np.all(np.isfinite(latent)) and np.all(latent == 0) and np.all(np.abs(sign) == 1)


def _density(backend: str, kind: str, shape, seed: int = 3):
    if kind == "cnf":
        args = {"width": 16, "depth": 2, "activation": "tanh", "steps": 8, "solver": "rk4",
                "divergence": "exact", "symmetry": "sign"}
        net = Network("T", "cnf", args, None, "flow", "T")
    else:
        net = flow(kind, layers=3, symmetry="sign")
    f = Flow(backend, net, shape, perturbed(net, shape, seed=seed))
    if backend == "jax":
        import jax.numpy as xp
    else:
        import array_api_compat.torch as xp
    return f, FlowDensity(xp, lambda z: f.passes(z, False), lambda x: f.passes(x, True), True)


@pytest.mark.parametrize("kind", ["realnvp", "spline"])
def test_symmetric_density_is_even_and_draws_carry_it(backend, kind):
    from backend_params import to_numpy

    shape = (4,)
    f, density = _density(backend, kind, shape)
    z = np.random.default_rng(1).standard_normal((64,) + shape).astype(np.float32)
    x, log_q = density.sample(f.array(z))
    x, log_q = to_numpy(x), to_numpy(log_q)
    np.testing.assert_allclose(to_numpy(density.log_prob(f.array(x))), log_q, atol=1e-4)
    np.testing.assert_allclose(to_numpy(density.log_prob(f.array(-x))), log_q, atol=1e-4)
    # each draw is the flow's push of the new latent, or its mirror image
    _, latent = sign_and_latent(np, z)
    pushed, _ = f.push(latent.astype(np.float32))
    flipped = np.all(np.isclose(x, -pushed, atol=1e-5), axis=1)
    assert np.all(flipped | np.all(np.isclose(x, pushed, atol=1e-5), axis=1))
    assert 0 < flipped.sum() < len(x)
    # not the plain flow's density: the mirror term matters for a flow far from the identity
    plain_z, plain_logdet = f.pull(x)
    plain = -0.5 * np.sum(plain_z ** 2, axis=1) - 2 * math.log(2 * math.pi) + plain_logdet
    assert np.max(np.abs(plain - math.log(2) - log_q)) > 1e-2


@pytest.mark.parametrize("kind", ["realnvp", "spline", "cnf"])
def test_symmetric_density_integrates_to_one(backend, kind):
    from backend_params import to_numpy

    f, density = _density(backend, kind, (2,), seed=7)
    step = 24 / 400
    axis = -12 + step * (np.arange(400) + 0.5)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    log_p = to_numpy(density.log_prob(f.array(grid.astype(np.float32)))).astype(np.float64)
    assert np.exp(log_p).sum() * step ** 2 == pytest.approx(1, abs=1e-3)


def test_symmetry_needs_two_coordinates():
    from tfm.compiler.pipeline import compile_text

    text = """
model G {
    dim 1
    base x0 ~ normal(0, 1)
    target x1 ~ normal(0, 2)
    network T = realnvp(layers = 2, width = 16, depth = 1, symmetry = sign)
    objective { T ~ likelihood }
    train { steps 30  batch 64  optimizer adam(lr = 3e-3)  seed 0 }
}
"""
    errors = [str(d) for d in compile_text(text).diagnostics]
    assert any("symmetry = sign" in e and "two or more coordinates" in e for e in errors), errors


PHI4_4X4 = """
model Phi4Small {
    dim [4, 4]
    base x0 ~ normal(0, 1)
    energy S(phi) = sum(phi * (4 * phi - roll(phi, 1, 0) - roll(phi, -1, 0) - roll(phi, 1, 1)
                               - roll(phi, -1, 1)) - 4 * phi^2 + 2 * phi^4)
    target x1 ~ energy(S)
    network T = realnvp(layers = 4, width = 32, depth = 1, mask = checkerboard, symmetry = sign)
    objective { T ~ reverse_kl(anneal = 50, beta0 = 0.2) }
    sampler local = hmc(step = 0.1, leapfrog = 5)
    sampler jump = flow_mh(flow = T)
    sampler mixed = cycle(local, jump, chains = 32, warmup = 30, draws = 100)
    sampler alone = hmc(step = 0.1, leapfrog = 5, chains = 32, warmup = 30, draws = 100)
    train { steps 300  batch 128  optimizer adam(lr = 3e-3)  seed 0 }
}
"""


def test_symmetric_flow_moves_carry_chains_across_the_broken_phase(tmp_path):
    """phi^4 on 4 x 4 in the broken phase (m^2 = -4, lambda = 2): HMC chains started from the base
    settle on one sign of the magnetisation and keep it; with the flow's moves (a symmetric flow
    briefly trained by reverse KL) every chain changes sign many times, and the draws' positive
    share is near one half. Torch (no compilation)."""
    from test_flow_models import _build

    model = _build(PHI4_4X4, "torch", tmp_path)
    model.fit(progress=False)

    def magnetisation(name):
        samples = model.run(name).result.samples  # (draws, chains, 4, 4)
        return samples.reshape(samples.shape[0], samples.shape[1], -1).mean(-1)

    alone, mixed = magnetisation("alone"), magnetisation("mixed")
    flips = lambda m: np.sum(np.sign(m[1:]) != np.sign(m[:-1]), axis=0)  # noqa: E731
    assert np.mean(flips(alone)) < 0.5, flips(alone)
    assert np.all(flips(mixed) >= 3), flips(mixed)
    assert abs(np.mean(mixed > 0) - 0.5) < 0.1
