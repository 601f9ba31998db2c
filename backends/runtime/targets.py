"""The sampling targets of ``stdlib.targets``, each a density known by its energy U (density
proportional to exp(-U)), with its exact sampler where one exists and its log normalising
constant log Z = log of the integral of exp(-U) where it is known. Written once against
``ops.xp`` and ``ops.random``; registered into ``DENSITIES`` under their prelude names.

- ``gmm40``: FAB's 2-D mixture of 40 Gaussians (Midgley et al. 2023), the very means FAB draws
  (``torch.manual_seed(0); (torch.rand(40, 2) - 0.5) * 80``, written below as float32
  literals), standard deviation softplus(1) per coordinate, equal weights; U is minus the log
  of the normalised mixture, so log Z = 0.
- ``gmm50``: the same kind of mixture in 50 dimensions, means uniform in [-40, 40]^50 from
  numpy's PCG64 generator with seed 0; log Z = 0.
- ``funnel``: Neal's funnel in 10 dimensions, v ~ N(0, 3^2) and x_i | v ~ N(0, e^v) for
  i = 1..9; U the normalised negative log-density, log Z = 0.
- ``many_well``: 32 dimensions, 16 independent double wells
  U(a, b) = a^4 - 6 a^2 - 0.5 a + 0.5 b^2 on the pairs (x0, x1), (x2, x3), ... (the
  many-well of Noé et al. 2019 and FAB); log Z = 16 log(sqrt(2 pi) * integral of
  exp(-(a^4 - 6 a^2 - 0.5 a)) da) = 164.6957.
- ``phi4``: the phi^4 scalar field on a periodic lattice (8 x 8 in stdlib), with Albergo, Kanwar
  and Shanahan's (2019) action; no exact sampler, log Z unknown.
- ``breast_cancer_logistic``: the posterior of a Bayesian logistic regression on scikit-learn's
  breast-cancer data (``stdlib/data/breast_cancer.npz``), N(0, 1) prior on the 31
  coefficients; no exact sampler, log Z unknown.

The normalised targets (the mixtures, the funnel, the many-well) carry their log-density too.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import stdlib
from .array_functions import logsumexp
from .densities import DENSITIES, Density

LOG_TWO_PI = math.log(2 * math.pi)
GMM40_STD = math.log1p(math.e)  # softplus(1), FAB's component scale

# FAB's GMM-40 means: torch.manual_seed(0); (torch.rand(40, 2) - 0.5) * 80 (torch's CPU
# generator), each the shortest decimal that reads back as the same float32
_FAB_MEANS = (
    (-0.2994728, 21.457745), (-32.921806, -29.437561), (-15.406175, 10.7262945),
    (-0.7925272, 31.71558), (-3.5497618, 10.584502), (-12.088523, -7.8626156),
    (-38.21394, -26.491283), (-16.488924, 1.4817429), (15.813408, 24.000912),
    (-27.117643, -17.418514), (14.528685, 33.21552), (-8.232007, 29.93247),
    (-6.4473343, 4.232564), (36.219048, -37.106815), (-25.181519, -10.12661),
    (-15.591998, 34.56003), (-25.927185, -18.413315), (-27.945618, -37.46244),
    (-23.349619, 34.383923), (17.848736, 19.386902), (2.1036625, -20.50734),
    (6.7673874, -37.34779), (-28.902649, -20.6212), (25.237518, 23.45285),
    (-17.739801, -1.4432955), (25.582428, 39.765324), (15.875287, 5.403714),
    (26.819454, -23.552094), (7.453761, -31.01222), (-27.723446, -20.663342),
    (18.098923, 16.086416), (-23.6941, 12.084284), (21.958881, -5.0486946),
    (1.5272617, 9.268188), (24.815063, 38.407764), (-30.824944, -14.65879),
    (15.720396, 33.141975), (34.808292, 35.29427), (7.960582, -34.783306),
    (3.6797, -25.024214),
)


def gmm40_means() -> np.ndarray:
    """FAB's 40 means in [-40, 40]^2, float32 (40, 2)."""
    return np.array(_FAB_MEANS, dtype=np.float32)


def gmm50_means() -> np.ndarray:
    """40 means uniform in [-40, 40]^50 from numpy's PCG64 generator with seed 0, float32
    (40, 50)."""
    return np.random.Generator(np.random.PCG64(0)).uniform(-40, 40, (40, 50)).astype(np.float32)



def _normalised(energy, draw=None, log_Z=lambda: 0.0) -> Density:
    """A target whose energy and log Z (``log_Z()``) are both known: its log-density is
    -U - log Z."""
    def log_prob(ops, args, shape):
        U, shift = energy(ops, args, shape), log_Z()
        return lambda x: -U(x) - shift
    return Density(draw=draw, log_prob=log_prob, energy=energy, log_Z=lambda args: log_Z())


# --- Gaussian mixtures --------------------------------------------------------------------------

def _mixture(means: np.ndarray, std: float) -> Density:
    """The equal-weight mixture of N(mean_k, std^2 I): an exact sampler (a component, then its
    Gaussian) and U(x) = -log((1/K) sum_k N(x; mean_k, std^2 I))."""
    count, dim = means.shape
    log_norm = math.log(count) + dim * math.log(std) + 0.5 * dim * LOG_TWO_PI

    def draw(ops, args, shape, data):
        centres = ops.asarray(means)
        def sample(rng, n):
            k_mode, k_noise = rng.split(2)
            return centres[k_mode.randint(count, (n,))] + std * k_noise.normal((n, dim))
        return sample

    def energy(ops, args, shape):
        xp, centres = ops.xp, ops.asarray(means)
        def U(x):
            diff = x[:, None, :] - centres  # (n, K, d)
            return log_norm - logsumexp(xp, -0.5 / std ** 2 * xp.sum(diff * diff, axis=-1), (1,))
        return U

    return _normalised(energy, draw)


# --- Neal's funnel ------------------------------------------------------------------------------

FUNNEL_SCALE = 3.0  # the standard deviation of v


def _funnel_draw(ops, args, shape, data):
    dim, xp = shape[0], ops.xp
    def sample(rng, n):
        k_v, k_x = rng.split(2)
        v = FUNNEL_SCALE * k_v.normal((n, 1))
        return xp.concat([v, xp.exp(v / 2) * k_x.normal((n, dim - 1))], axis=-1)
    return sample


def _funnel_energy(ops, args, shape):
    """-log N(v; 0, 3^2) - sum_i log N(x_i; 0, e^v)."""
    dim, xp = shape[0], ops.xp
    const = math.log(FUNNEL_SCALE) + 0.5 * dim * LOG_TWO_PI
    def U(x):
        v, rest = x[:, 0], x[:, 1:]
        return (0.5 * v * v / FUNNEL_SCALE ** 2 + 0.5 * (dim - 1) * v
                + 0.5 * xp.exp(-v) * xp.sum(rest * rest, axis=-1) + const)
    return U


# --- many-well ----------------------------------------------------------------------------------

WELLS = 16  # double wells, on the coordinate pairs (x0, x1), (x2, x3), ..., (x30, x31)
_WELL_EDGE = 4.0  # the a-marginal's table covers [-4, 4]: outside, exp(-(U - min U)) < 1e-70
_WELL_CELLS = 2 ** 15  # cells of width 2^-12


def well(a):
    """The double well's energy along a: a^4 - 6 a^2 - 0.5 a (numpy or array arguments)."""
    a2 = a * a
    return a2 * a2 - 6 * a2 - 0.5 * a


@functools.cache
def _well_table() -> tuple[np.ndarray, float]:
    """The a-marginal's distribution function at the cell edges -4 + j 2^-12 (float64, from 0
    to 1), and log of the integral of exp(-well(a)) over the line. Each cell's mass is an
    8-point Gauss-Legendre rule (exact to rounding on a cell this narrow)."""
    width = 2 * _WELL_EDGE / _WELL_CELLS
    nodes, weights = np.polynomial.legendre.leggauss(8)
    mids = -_WELL_EDGE + width * (np.arange(_WELL_CELLS) + 0.5)
    energies = well(mids[:, None] + 0.5 * width * nodes)
    low = energies.min()
    mass = 0.5 * width * (np.exp(-(energies - low)) @ weights)
    cdf = np.concatenate([[0.0], np.cumsum(mass)])
    return cdf / cdf[-1], math.log(cdf[-1]) - low


def many_well_log_Z() -> float:
    """16 log(sqrt(2 pi) * integral of exp(-(a^4 - 6 a^2 - 0.5 a)) da) = 164.6957."""
    return WELLS * (_well_table()[1] + 0.5 * LOG_TWO_PI)


def _many_well_draw(ops, args, shape, data):
    """Exact in b ~ N(0, 1); a by inversion of the distribution function, tabulated at 2^15 + 1
    edges on [-4, 4] with exact cell masses and linear in between: within each cell of width
    2^-12 the draw is uniform, so the law is exact up to the density's tilt across a cell (its
    distribution function is off by at most 5e-8, the size of the table's float32 rounding)."""
    xp = ops.xp
    cdf = ops.asarray(_well_table()[0])
    width = 2 * _WELL_EDGE / _WELL_CELLS

    def sample(rng, n):
        k_a, k_b = rng.split(2)
        u = k_a.uniform((n * WELLS,))
        # cdf[i - 1] <= u < cdf[i] with 1 <= i <= cells, since cdf[0] = 0 <= u < 1 = cdf[-1]
        i = xp.searchsorted(cdf, u, side="right")
        lo, hi = xp.take(cdf, i - 1), xp.take(cdf, i)
        a = -_WELL_EDGE + width * (xp.astype(i - 1, xp.float32) + (u - lo) / (hi - lo))
        pairs = xp.stack([xp.reshape(a, (n, WELLS)), k_b.normal((n, WELLS))], axis=-1)
        return xp.reshape(pairs, (n, 2 * WELLS))
    return sample


def _many_well_energy(ops, args, shape):
    """sum over the 16 pairs (a, b) of a^4 - 6 a^2 - 0.5 a + 0.5 b^2."""
    xp = ops.xp
    def U(x):
        pairs = xp.reshape(x, (x.shape[0], WELLS, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        return xp.sum(well(a) + 0.5 * b * b, axis=-1)
    return U


# --- phi^4 lattice field ------------------------------------------------------------------------

def _phi4_energy(ops, args, shape):
    """The lattice action of Albergo, Kanwar and Shanahan (2019), periodic in every lattice axis:
    S(phi) = sum_x [sum_mu phi_x (2 phi_x - phi_{x+mu} - phi_{x-mu}) + m^2 phi_x^2
    + lambda phi_x^4], with m^2 = ``mass2`` and lambda = ``lam``."""
    xp = ops.xp
    mass2, lam = float(args["mass2"]), float(args["lam"])
    def U(phi):
        axes = range(1, phi.ndim)  # axis 0 is the batch
        kinetic = sum(phi * (2 * phi - xp.roll(phi, 1, axis=mu) - xp.roll(phi, -1, axis=mu))
                      for mu in axes)
        phi2 = phi * phi
        density = kinetic + mass2 * phi2 + lam * phi2 * phi2
        return xp.sum(xp.reshape(density, (phi.shape[0], -1)), axis=-1)
    return U


# --- Bayesian logistic regression ---------------------------------------------------------------

BREAST_CANCER = stdlib.STDLIB_DIR / "data" / "breast_cancer.npz"


@functools.cache
def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """The design X (569, 31: an intercept column of ones, then the 30 standardised features)
    and the labels y in {-1, +1}, float32, as ``stdlib/data/make_breast_cancer.py`` wrote them."""
    with np.load(BREAST_CANCER, allow_pickle=False) as data:
        return np.asarray(data["X"], np.float32), np.asarray(data["y"], np.float32)


def _logistic_energy(ops, args, shape):
    """U(w) = sum_i log(1 + exp(-y_i x_i.w)) + 0.5 |w|^2: the negative log-likelihood of the
    logistic regression plus the N(0, I) prior, up to a constant."""
    xp = ops.xp
    X, y = breast_cancer()
    signed = ops.asarray((y[:, None] * X).T)  # (31, 569): column i is y_i x_i
    def U(w):
        margins = xp.matmul(w, signed)  # y_i x_i.w, (n, 569)
        return (xp.sum(xp.logaddexp(xp.zeros_like(margins), -margins), axis=-1)
                + 0.5 * xp.sum(w * w, axis=-1))
    return U


# the component means of the equal-weight mixtures, for the mode diagnostics of sampling runs
MIXTURE_MEANS = {"gmm40": gmm40_means, "gmm50": gmm50_means}

DENSITIES.register("gmm40")(_mixture(gmm40_means(), GMM40_STD))
DENSITIES.register("gmm50")(_mixture(gmm50_means(), GMM40_STD))
DENSITIES.register("funnel")(_normalised(_funnel_energy, _funnel_draw))
DENSITIES.register("many_well")(_normalised(_many_well_energy, _many_well_draw, many_well_log_Z))
DENSITIES.register("phi4")(Density(energy=_phi4_energy))
DENSITIES.register("breast_cancer_logistic")(Density(energy=_logistic_energy))
