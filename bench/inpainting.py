"""Inpainting (docs/conditional.md): samples of one coordinate given the other, against the
exact conditional, with the exact field and with a trained network.

1. ``gaussian``: the exact velocity from N(0, I) to N((2, -1), [[1, .8], [.8, 1]]) (a network of
   the user's own, examples/gaussian_to_gaussian.tfm); the second coordinate given the first at
   3 has mean -0.2 and variance 0.36. 100,000 samples with rk4 at 10 and 20 steps, on both
   backends.
2. ``eight``: bench/eight_gaussians.tfm (radius 3, standard deviation 0.3) trained for its 4,000
   steps, and the exact velocity of the same mixture; for each observed first coordinate, the
   1-D W2 of 4,000 samples of the second against 4,000 exact draws of its conditional (a
   mixture of the components' second coordinates, weighted by the first's likelihood), with the
   floor (two exact draws against each other), for the ODE (heun, 20 steps) and the SDE
   (Euler-Maruyama, 200 steps, eps(t) = 1 - t); the total variation between the samples'
   shares of the modes and the exact weights;
   the seconds per 4,000 samples with and without inpainting.
3. ``digits``: examples/digits.tfm trained for its 3,000 steps (torch); the bottom half of 200
   held-out digits inpainted from their top half; the share that a logistic regression trained
   on the other digits recognises as the original's class, and the RMS error of the bottom half,
   against three fillings: the mean image's bottom half, the nearest training digit's (by the
   top half) and the original itself.

    .venv/bin/python bench/inpainting.py
    SECTIONS=eight BACKEND=torch .venv/bin/python bench/inpainting.py

Not a test (tests/test_inpainting.py checks the exact Gaussian cases).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

BACKEND = os.environ.get("BACKEND", "jax")
SECTIONS = os.environ.get("SECTIONS", "gaussian,eight,digits").split(",")
ROOT = Path(__file__).resolve().parent.parent
RADIUS, SCALE = 3.0, 0.3
CENTRES = RADIUS * np.stack([np.cos(np.arange(8) * np.pi / 4),
                             np.sin(np.arange(8) * np.pi / 4)], axis=1)
OBSERVED = (3.0, 2.1213, 1.0, 0.0, -1.5)


def gaussian_velocity(backend: str, mean, cov):
    """The exact velocity from N(0, I) to N(mean, cov) in 2-D along the linear interpolant,
    as a network of the user's own."""
    if backend == "torch":
        import torch

        class Exact(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.zero = torch.nn.Parameter(torch.zeros(()))

            def forward(self, t, x):
                return _gaussian(torch, t, x, mean, cov) + self.zero
        return Exact()
    import equinox as eqx
    import jax.numpy as jnp

    class ExactJax(eqx.Module):
        zero: jnp.ndarray

        def __call__(self, t, x):
            return _gaussian(jnp, t, x, mean, cov) + self.zero
    return ExactJax(jnp.zeros(()))


def _gaussian(xp, t, x, mean, cov):
    """In 2-D, with the inverse of the covariance of x_t written out: JAX's batched LAPACK
    solve stalled the XLA CPU runtime at 30,000 points inside the sampler's vmap."""
    t = t[:, None]
    m = xp.asarray(np.float32(mean))
    (c00, c01), (_, c11) = np.float32(cov)
    a, b, d = (1 - t) ** 2 + t ** 2 * c00, t ** 2 * c01, (1 - t) ** 2 + t ** 2 * c11
    r = x - t * m
    u0, u1 = (d * r[:, :1] - b * r[:, 1:]) / (a * d - b * b), (a * r[:, 1:] - b * r[:, :1]) / (a * d - b * b)
    k00, k01, k11 = t * c00 - (1 - t), t * c01, t * c11 - (1 - t)
    return m + xp.concatenate([k00 * u0 + k01 * u1, k01 * u0 + k11 * u1], axis=1)


def mixture_velocity():
    """The exact velocity from N(0, I) to the eight Gaussians (torch)."""
    import torch

    centres = torch.tensor(CENTRES, dtype=torch.float32)

    class Exact(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.zero = torch.nn.Parameter(torch.zeros(()))

        def forward(self, t, x):
            t = t[:, None]
            var = (1 - t) ** 2 + t ** 2 * SCALE ** 2
            diff = x[:, None, :] - t[:, :, None] * centres
            weights = torch.softmax(-(diff ** 2).sum(-1) / (2 * var), dim=1)
            means = centres + (t[:, :, None] * SCALE ** 2 / var[:, :, None]) * diff
            data = (weights[:, :, None] * means).sum(1)
            return (data - x) / (1 - t).clamp(min=1e-6) + self.zero
    return Exact()


def exact_conditional(x: float, n: int, rng) -> np.ndarray:
    log_w = -(x - CENTRES[:, 0]) ** 2 / (2 * SCALE ** 2)
    w = np.exp(log_w - log_w.max())
    k = rng.choice(8, n, p=w / w.sum())
    return CENTRES[k, 1] + SCALE * rng.standard_normal(n)


def w2_1d(a, b) -> float:
    return float(np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2)))


LEVELS = np.unique(np.round(CENTRES[:, 1], 6))  # the components' second coordinates


def mode_error(y, x: float) -> float:
    """The total variation between the shares of samples nearest each level of the second
    coordinate (-3, -2.12, 0, 2.12, 3) and the exact conditional's weights of those levels."""
    log_w = -(x - CENTRES[:, 0]) ** 2 / (2 * SCALE ** 2)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    want = np.array([w[np.isclose(CENTRES[:, 1], v, atol=1e-5)].sum() for v in LEVELS])
    nearest = np.argmin(np.abs(y[:, None] - LEVELS[None]), axis=1)
    got = np.bincount(nearest, minlength=len(LEVELS)) / len(y)
    return float(0.5 * np.abs(got - want).sum())


def gaussian():
    import tfm
    from tfm.backends.runtime.spec import Sampler
    mean, cov = np.array([2.0, -1.0]), np.array([[1.0, 0.8], [0.8, 1.0]])
    print("gaussian: x2 given x1 = 3 (exact mean -0.2, variance 0.36), 100,000 samples")
    print("| backend | rk4 steps | mean | variance | seconds |")
    print("|---|---|---|---|---|")
    for backend in ("jax", "torch"):
        m = tfm.load(ROOT / "examples/gaussian_to_gaussian.tfm", backend=backend,
                     networks={"b": gaussian_velocity(backend, mean, cov)})
        for steps in (10, 20):
            sampler = Sampler(f"rk4_{steps}", "rk4", {"steps": steps}, "ode")
            m.sample(100_000, sampler=sampler, observed=[3.0, np.nan], seed=1)  # compiles
            start = time.perf_counter()
            x = m.sample(100_000, sampler=sampler, observed=[3.0, np.nan], seed=2)
            seconds = time.perf_counter() - start
            print(f"| {backend} | {steps} | {x[:, 1].mean():.4f} | {x[:, 1].var():.4f} | "
                  f"{seconds:.2f} |")


def eight():
    import tfm
    path = ROOT / "bench/eight_gaussians.tfm"
    with tempfile.TemporaryDirectory() as folder:
        trained = tfm.load(path, backend=BACKEND)
        start = time.perf_counter()
        trained.fit(out=folder, progress=False)
        print(f"eight: trained {BACKEND} in {time.perf_counter() - start:.1f} s")
    exact = tfm.load(path, backend="torch", networks={"b": mixture_velocity()})
    rng = np.random.default_rng(0)
    n = 4000
    print("| x1 | field | sampler | W2 of x2 | floor | mode weights TV | floor | s per 4,000 "
          "(plain) |")
    print("|---|---|---|---|---|---|---|---|")
    for x in OBSERVED:
        want, again = exact_conditional(x, n, rng), exact_conditional(x, n, rng)
        for name, model in ((f"trained ({BACKEND})", trained), ("exact (torch)", exact)):
            for sampler in ("ode", "sde"):
                model.sample(n, sampler=sampler, observed=[x, np.nan], seed=0)  # compiles
                start = time.perf_counter()
                y = model.sample(n, sampler=sampler, observed=[x, np.nan], seed=1)[:, 1]
                guided = time.perf_counter() - start
                model.sample(n, sampler=sampler, seed=0)
                start = time.perf_counter()
                model.sample(n, sampler=sampler, seed=1)
                plain = time.perf_counter() - start
                print(f"| {x:+.2f} | {name} | {sampler} | {w2_1d(y, want):.3f} | "
                      f"{w2_1d(again, want):.3f} | {mode_error(y, x):.3f} | "
                      f"{mode_error(again, x):.3f} | {guided:.2f} ({plain:.2f}) |")


def digits():
    import tfm
    from sklearn.linear_model import LogisticRegression
    data = np.load(ROOT / "examples/data/digits.npz")
    x, labels = data["images"], data["labels"]
    rng = np.random.default_rng(0)
    test = rng.choice(len(x), 200, replace=False)
    train = np.setdiff1d(np.arange(len(x)), test)
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    classifier = LogisticRegression(max_iter=2000).fit(flat(x[train]), labels[train])
    observed = x[test].copy()
    observed[:, :, 4:, :] = np.nan  # the bottom half is not observed
    with tempfile.TemporaryDirectory() as folder:
        m = tfm.load(ROOT / "examples/digits.tfm", backend="torch")
        start = time.perf_counter()
        m.fit(out=folder, progress=False)
        print(f"digits: trained torch in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    inpainted = m.sample(len(test), observed=observed, seed=0)
    seconds = time.perf_counter() - start
    top = flat(x[train][:, :, :4])
    nearest = np.argmin(((flat(observed[:, :, :4])[:, None] - top[None]) ** 2).sum(-1), axis=1)
    unknown = np.isnan(observed)
    fillings = {f"inpainted ({seconds:.0f} s)": inpainted,
                "the mean image's bottom half": np.where(unknown, x[train].mean(0), observed),
                "the nearest training digit's": np.where(unknown, x[train][nearest], observed),
                "the original": x[test]}
    print("| bottom half | recognised as the original's class | RMS error of the bottom half |")
    print("|---|---|---|")
    for name, images in fillings.items():
        right = float(np.mean(classifier.predict(flat(images)) == labels[test]))
        error = float(np.sqrt(np.mean((images - x[test])[:, :, 4:] ** 2)))
        print(f"| {name} | {right:.3f} | {error:.3f} |")


if __name__ == "__main__":
    for section in SECTIONS:
        {"gaussian": gaussian, "eight": eight, "digits": digits}[section]()
