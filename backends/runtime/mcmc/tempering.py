"""Normalising constants by tempering: sequential Monte Carlo samplers (Del Moral, Doucet &
Jasra 2006) and annealed importance sampling (Neal 2001) along the geometric path from the base
to the target,

    rho_beta(x) ∝ base(x)^(1 - beta) exp(-beta U(x)),    beta from 0 to 1,

whose tempered energy is U_beta(x) = -(1 - beta) log base(x) + beta U(x). Moving from beta to
beta' multiplies each particle's weight by exp(-(beta' - beta) V(x)), V = U + log base, and the
mean of the products of these increments estimates Z = ∫ exp(-U) (the base is normalised).

R independent replicas of N particles run side by side, vectorised: beta is an array over the
R N particles, so one compiled program moves every replica at its own temperature. Each replica
r gives an unbiased estimate Z_r; log Z is log mean_r Z_r and its standard error, by the delta
method, std_r(Z_r) / (sqrt(R) mean_r Z_r), both computed in log space.

The weights, the choice of temperatures and resampling run on the host in float64 (one
transfer of V per temperature); the MCMC moves run on the device. Where the particles are split
over devices (``layout``, runtime/parallel.py), each device moves its rows, V is gathered whole
for the host's decisions (every process takes the same ones, from the same generator), and a
resampling gathers the particles before each device takes its rows of the new ones.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
from scipy.special import logsumexp

from ....errors import Diagnostic, TfmRuntimeError
from ..diagnostics import log_Z_from_replicas
from ..parallel import Layout
from . import Potential, ValueAndGrad, cycle_evaluations, init_state, tracks_gradients
from .chains import check_start, iterate, signature

#: the exponent of the fixed schedule
POWER = 4
#: the most temperatures a run may take
MAX_TEMPERATURES = 10_000
#: the largest change of a log step size between two temperatures
MAX_STEP_CHANGE = 0.5
#: a replica resamples when its ESS falls below this fraction of its particles
RESAMPLE_BELOW = 0.5
BISECTIONS = 60


@attrs.frozen
class SMCResult:
    """``particles`` (R N, *shape), equally weighted draws of the target (each replica's
    particles resampled once by their final weights, whose logarithms are ``log_weights``);
    ``log_Z`` with ``log_Z_stderr`` (NaN for a single replica) and each replica's estimate;
    per replica the temperatures it went through (0 first) and its ESS fraction after each
    reweighting; per kernel its mean acceptance over all moves and its last step size; the
    energy and gradient evaluations of the whole run; the most temperatures a replica took."""

    particles: np.ndarray
    log_Z: float
    log_Z_stderr: float
    log_Z_replicas: list[float]
    betas: list[list[float]]
    ess_history: list[list[float]]
    acceptance: list[float]
    step_sizes: list[float]
    energy_evals: int
    grad_evals: int
    temperatures_used: int
    log_weights: np.ndarray


def fixed_schedule(temperatures: int) -> np.ndarray:
    """beta_k = (k / T)^4, k = 1..T: a power law, whose steps are smallest near the base, where
    the tempered law changes fastest (the spread of V under the base is typically largest), and
    grow as the path nears the target; the schedule power posteriors use for thermodynamic
    integration (Friel & Pettitt 2008)."""
    k = np.arange(1, temperatures + 1, dtype=np.float64)
    return (k / temperatures) ** POWER


def ess_fraction(log_w: np.ndarray) -> np.ndarray:
    """The effective sample size (sum w)^2 / sum w^2 of each row of log-weights, over the row's
    length."""
    return np.exp(2 * logsumexp(log_w, axis=-1) - logsumexp(2 * log_w, axis=-1)) / log_w.shape[-1]


def conditional_ess(log_w: np.ndarray, v: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The conditional ESS fraction (Zhou, Johansen & Aston 2016) of the increments
    exp(-step V) given the current weights W: (sum_i W_i w_i)^2 / sum_i W_i w_i^2 per replica
    (rows of ``log_w`` and ``v``; ``step`` (R,))."""
    log_norm = log_w - logsumexp(log_w, axis=1, keepdims=True)
    inc = -step[:, None] * v
    return np.exp(2 * logsumexp(log_norm + inc, axis=1) - logsumexp(log_norm + 2 * inc, axis=1))


def next_betas(log_w: np.ndarray, v: np.ndarray, beta: np.ndarray, ess: float) -> np.ndarray:
    """Adaptive tempering: each replica's next temperature, the largest beta' <= 1 whose
    conditional ESS fraction is at least ``ess`` (bisection; the CESS falls as beta' grows)."""
    lo, hi = np.zeros_like(beta), 1.0 - beta
    done = conditional_ess(log_w, v, hi) >= ess
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        good = conditional_ess(log_w, v, mid) >= ess
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
    return np.where(done, 1.0, beta + lo)


def systematic(host: np.random.Generator, log_w: np.ndarray) -> np.ndarray:
    """Systematic resampling of each row of log-weights (R, N): one uniform u per row, and the
    indices (within the row) of the N points (u + j) / N in the weights' cumulative sum."""
    r, n = log_w.shape
    w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
    cdf = np.cumsum(w, axis=1)
    cdf[:, -1] = 1.0
    points = (host.random((r, 1)) + np.arange(n)) / n
    index = np.stack([np.searchsorted(cdf[i], points[i], side="right") for i in range(r)])
    return np.minimum(index, n - 1)


def smc(ops, program, kernels, base_log_prob, energy, x0, key, replicas: int, temperatures,
        ess: float, moves: int, resample: bool, step_sizes, target_accepts,
        layout=None) -> SMCResult:
    """Tempers ``replicas`` replicas of the particles ``x0`` (R N, *shape; drawn from the base,
    replica r holding rows r N .. (r + 1) N - 1; this device's rows of them where ``layout``
    splits the particles over devices) from the base (``base_log_prob``, normalised)
    to exp(-``energy``). ``temperatures``: a fixed schedule of that many steps
    (``fixed_schedule``), or None for adaptive tempering keeping the conditional ESS at the
    fraction ``ess`` of N. After each reweighting a replica whose ESS is below N / 2 is
    resampled (systematically) when ``resample`` (SMC), never otherwise (AIS); then ``moves``
    iterations of the cycle ``kernels`` at the new temperatures. Each kernel's log step size
    moves by its mean acceptance minus its target between temperatures (at most
    ``MAX_STEP_CHANGE``).

    Evaluations per particle: V at the start; per temperature the tempered energy (with its
    gradient where the kernels use it) to start the moves, the moves, and V at their end.
    Finished replicas stay at beta = 1 and keep moving while others finish."""
    xp = ops.xp
    layout = layout or Layout()
    total = layout.whole(int(x0.shape[0]))
    if temperatures is not None and not 1 <= int(temperatures) <= MAX_TEMPERATURES:
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"A fixed tempering schedule takes from 1 to {MAX_TEMPERATURES} "
            f"temperatures, not {temperatures}."))
    if temperatures is None and not 0 < ess < 1:
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"The ESS fraction of adaptive tempering must lie in (0, 1), not {ess}."))
    if replicas < 1 or total % replicas:
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"{total} particles do not split into {replicas} replicas of equal size.",
            suggestion="Make the number of particles a multiple of the number of replicas."))
    n, k = total // replicas, len(kernels)
    gradients = tracks_gradients(kernels)
    sig = (energy, base_log_prob, signature(kernels), moves)

    def relative(x):
        """V(x) = U(x) + log base(x): the log-weight increment is -(beta' - beta) V."""
        return energy(x) + base_log_prob(x)

    def tempered(beta):
        def u(x):
            return beta * energy(x) - (1 - beta) * base_log_prob(x)
        return Potential(u, ValueAndGrad(ops, u), gradients)

    def move(x, beta, eps, key):
        pot = tempered(beta)

        def body(carry, key):
            state, total = carry
            state, accept = iterate(ops, kernels, pot, state, eps, key, layout=layout)
            return (state, total + accept), None
        state = init_state(ops, kernels, pot, x)
        state, total = ops.scan(body, (state, xp.zeros_like(eps)), ops.random(key).keys(moves))[0]
        return state[0], layout.average(total / moves), relative(state[0])

    def energies(x):
        u = energy(x)
        return u, u + base_log_prob(x)

    start_program = program(("mcmc", "smc-start") + sig[:2], energies)
    move_program = program(("mcmc", "smc-move") + sig, move)

    rng = ops.random(key)
    seed_rng, rng = rng.split(2)
    host = np.random.default_rng(int(ops.numpy(seed_rng.randint(2 ** 31 - 1, (1,)))[0]))

    x = x0
    u_dev, v_dev = (layout.assemble(a) for a in start_program(x))
    check_start(ops, (None, u_dev, xp.zeros_like(u_dev)), "particle")
    v = ops.numpy(v_dev).astype(np.float64).reshape(replicas, n)
    beta = np.zeros(replicas)
    log_w = np.zeros((replicas, n))
    betas = [[0.0] for _ in range(replicas)]
    history = [[] for _ in range(replicas)]
    log_eps = np.log(np.asarray(step_sizes, dtype=np.float64))
    targets = np.asarray(target_accepts, dtype=np.float64)
    accept_sum = np.zeros(k)
    schedule = None if temperatures is None else fixed_schedule(int(temperatures))

    steps = 0
    while np.any(beta < 1.0):
        if steps >= MAX_TEMPERATURES:
            r = int(np.argmin(beta))
            raise TfmRuntimeError(Diagnostic(
                "Runtime", f"Tempering did not reach beta = 1 within {MAX_TEMPERATURES} "
                f"temperatures (replica {r} is at beta = {beta[r]:.3g}).",
                suggestion="Lower the ESS fraction (ess), use more particles or moves, or start "
                "from a base closer to the target."))
        active = beta < 1.0
        if schedule is not None:
            nxt = np.full(replicas, schedule[steps])
        else:
            nxt = next_betas(log_w, v, beta, ess)
        nxt = np.where(active, nxt, 1.0)
        step = nxt - beta
        log_w = log_w + np.where(step[:, None] > 0, -step[:, None] * v, 0.0)
        beta = nxt
        steps += 1
        fraction = ess_fraction(log_w)
        for r in np.flatnonzero(active):
            betas[r].append(float(beta[r]))
            history[r].append(float(fraction[r]))

        low = np.flatnonzero(active & (fraction < RESAMPLE_BELOW)) if resample else ()
        if len(low):
            index = np.arange(total).reshape(replicas, n)
            index[low] = systematic(host, log_w[low]) + n * low[:, None]
            # each replica keeps its total mass: every particle gets the mean weight
            log_w[low] = (logsumexp(log_w[low], axis=1) - math.log(n))[:, None]
            x = layout.rows(xp.take(layout.assemble(x), ops.asarray(index.reshape(-1), xp.int32),
                                    axis=0))
            v = v.reshape(-1)[index.reshape(-1)].reshape(replicas, n)

        if moves > 0:
            rng, move_rng = rng.split(2)
            temps = layout.own((ops.asarray(np.repeat(beta, n)),), total)[0]
            x, accept, v_dev = move_program(x, temps, ops.asarray(np.exp(log_eps)),
                                            move_rng.key())
            accept = ops.numpy(accept).astype(np.float64)
            v = ops.numpy(layout.assemble(v_dev)).astype(np.float64).reshape(replicas, n)
            v = np.where(np.isnan(v), np.inf, v)  # a NaN V (never accepted by a move) weighs 0
            accept_sum += accept
            log_eps += np.clip(accept - targets, -MAX_STEP_CHANGE, MAX_STEP_CHANGE)

    log_z_r = logsumexp(log_w, axis=1) - math.log(n)
    if not np.all(np.isfinite(log_z_r)):
        raise TfmRuntimeError(Diagnostic(
            "Runtime", f"A replica's log Z is not finite ({log_z_r.tolist()}): every particle's "
            "weight vanished.", suggestion="Start from a base that covers the target, or use "
            "more particles or temperatures."))
    final = (systematic(host, log_w) + n * np.arange(replicas)[:, None]).reshape(-1)
    particles = ops.numpy(xp.take(layout.assemble(x), ops.asarray(final, xp.int32), axis=0))

    moved = steps if moves > 0 else 0
    energy_evals, grad_evals = cycle_evaluations(kernels, gradients)
    evals = (total * (1 + moved * (2 + moves * energy_evals)),
             total * moved * (int(gradients) + moves * grad_evals))
    acceptance = accept_sum / moved if moved else np.full(k, math.nan)
    log_z, stderr = log_Z_from_replicas(log_z_r)
    return SMCResult(particles, log_z, math.nan if stderr is None else stderr,
                     [float(z) for z in log_z_r], betas,
                     history, [float(a) for a in acceptance], [float(e) for e in np.exp(log_eps)],
                     *evals, steps, log_w.reshape(-1))
