"""The reference posterior of examples/logistic_posterior.tfm: a long run of BlackJAX's NUTS (an
implementation independent of tfm's kernels), written to tests/golden/sampling/
logistic_reference.npz (posterior mean, covariance, and the run's size and bulk ESS).

The energy is computed here in float64 numpy-style JAX from the data file, not by tfm:
U(w) = sum_i log(1 + exp(-y_i x_i.w)) + |w|^2 / 2. Window adaptation (step size and a diagonal
mass matrix) on one chain, then ``--chains`` chains of ``--draws`` NUTS steps from the adapted
state. Needs ``pip install blackjax``. Run:

    python bench/logistic_reference.py [--chains 16] [--draws 20000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "golden" / "sampling" / "logistic_reference.npz"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--draws", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import jax
    jax.config.update("jax_enable_x64", True)
    import blackjax
    import jax.numpy as jnp

    from tfm.backends.runtime.diagnostics import ess_bulk

    data = np.load(ROOT / "examples" / "data" / "breast_cancer.npz", allow_pickle=False)
    X, y = jnp.asarray(data["X"], jnp.float64), jnp.asarray(data["y"], jnp.float64)

    def logdensity(w):
        return -(jnp.sum(jnp.logaddexp(0.0, -y * (X @ w))) + 0.5 * jnp.sum(w * w))

    key = jax.random.PRNGKey(args.seed)
    k_warm, k_init, k_run = jax.random.split(key, 3)
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
    (state, params), _ = warmup.run(k_warm, jnp.zeros(X.shape[1]), num_steps=2000)
    nuts = blackjax.nuts(logdensity, **params)
    starts = state.position + 0.1 * jax.random.normal(k_init, (args.chains, X.shape[1]))

    @jax.jit
    def run(starts, key):
        def one(start, key):
            s = nuts.init(start)
            def body(s, k):
                s, _ = nuts.step(k, s)
                return s, s.position
            return jax.lax.scan(body, s, jax.random.split(key, args.draws))[1]
        return jax.vmap(one)(starts, jax.random.split(key, args.chains))

    draws = np.asarray(run(starts, k_run))  # (chains, draws, d)
    chains = np.swapaxes(draws[:, args.draws // 10:], 0, 1)  # the first tenth dropped
    flat = chains.reshape(-1, chains.shape[-1])
    ess = ess_bulk(chains)
    np.savez(OUT, mean=flat.mean(0), cov=np.cov(flat, rowvar=False), ess_bulk=ess,
             chains=args.chains, draws=args.draws, seed=args.seed)
    print(f"wrote {OUT}: {flat.shape[0]} draws, bulk ESS min {ess.min():.0f}, "
          f"posterior sd {np.sqrt(np.diag(np.cov(flat, rowvar=False))).min():.3g} .. "
          f"{np.sqrt(np.diag(np.cov(flat, rowvar=False))).max():.3g}")


if __name__ == "__main__":
    main()
