"""The JAX side of ``runtime/ops.py``: keys split at each draw, ``lax.scan`` and
``lax.while_loop``, ``jax.jvp``, the exact divergence by one linearisation per point, scipy's
assignment through ``jax.pure_callback``, and diffrax's dopri5."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ...runtime.couplings import exact_assignment as host_assignment


class Random:
    """One JAX key. A draw uses the key itself, so a Random draws once: an algorithm that draws
    more than once splits first (``split(n)``), as JAX code does; a second draw is a bug of the
    algorithm and raises. Under tracing the key is traced, so the draws are a pure function of
    the key a compiled program was given."""

    def __init__(self, key):
        self._key = key
        self._used = False

    def _take(self):
        if self._used:
            raise RuntimeError("a JAX Random draws once; split it first (rng.split(n))")
        self._used = True
        return self._key

    def split(self, n: int) -> tuple["Random", ...]:
        return tuple(Random(k) for k in jax.random.split(self._take(), n))

    def key(self):
        return self._take()

    def keys(self, n: int):
        """Keys for n streams, one per step of a loop (a stacked key array, ``scan``'s xs)."""
        return jax.random.split(self._take(), n)

    def normal(self, shape, dtype=None):
        return jax.random.normal(self._take(), tuple(shape), dtype or jnp.float32)

    def uniform(self, shape):
        return jax.random.uniform(self._take(), tuple(shape))

    def randint(self, high, shape):
        return jax.random.randint(self._take(), tuple(shape), 0, high)

    def rademacher(self, shape, dtype=None):
        return jax.random.rademacher(self._take(), tuple(shape), dtype or jnp.float32)

    def categorical(self, logits):
        return jax.random.categorical(self._take(), logits, axis=1)


def _assignment(cost: np.ndarray) -> np.ndarray:
    return host_assignment(cost).astype(np.int32)


def exact_matmul(a, b):
    """a @ b in full float32 precision (JAX's default on a GPU is TF32)."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


class _ExactProducts:
    """jax.numpy with ``matmul`` at full float32 precision."""

    matmul = staticmethod(exact_matmul)

    def __getattr__(self, name):
        return getattr(jnp, name)


class Ops:
    name = "jax"
    xp = jnp
    exact_xp = _ExactProducts()

    def key(self, seed: int, index: int | None = None):
        key = jax.random.PRNGKey(seed)
        return key if index is None else jax.random.fold_in(key, index)

    def random(self, key) -> Random:
        return Random(key)

    def asarray(self, value, dtype=None):
        return jnp.asarray(value, dtype or jnp.float32)

    def numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def scan(self, body, carry, xs, trajectory: bool = False):
        """(carry, stacked outputs of ``body``: None unless ``trajectory``)."""
        return jax.lax.scan(body, carry, xs)

    def while_loop(self, cond, body, state):
        return jax.lax.while_loop(cond, body, state)

    def cond(self, pred, if_true, if_false):
        """``if_true()`` where the scalar ``pred`` holds, else ``if_false()``: only one runs."""
        return jax.lax.cond(pred, if_true, if_false)

    def full(self, value, like, dtype=None):
        """``value`` (an array that broadcasts to ``like``, or a number) as an array of
        ``like``'s shape and of ``dtype`` (default: like's)."""
        return jnp.broadcast_to(value, like.shape).astype(dtype or like.dtype)

    def time(self, t, like):
        """t (a number or a 0-d array) as a float32 array."""
        return jnp.asarray(t, jnp.float32)

    def stop_gradient(self, x):
        return jax.lax.stop_gradient(x)

    def jvp(self, f, primals, tangents):
        return jax.jvp(f, primals, tangents)

    def velocity_and_divergence(self, velocity, t, x):
        """b(t, x) and the trace of db/dx for each point of the batch x (B, *shape)."""
        b, jac = self.value_and_jacobian(velocity, t, x)
        return b, jnp.trace(jac, axis1=1, axis2=2)

    def value_and_jacobian(self, f, t, x):
        """f(t, x) (B, *shape) and, for each point, the Jacobian of f in x flattened, (B, d,
        d): one linearisation per point (the primal once), d forward-mode derivatives under
        vmap."""
        shape = x.shape[1:]
        labels = getattr(f, "labels", None)  # each point's class, passed with it

        def single(xi, label=None):
            def g(y):
                y = y.reshape((1,) + shape)
                out = f(t, y) if label is None else f(t, y, labels=label[None])
                return out.reshape(-1)
            y, tangent = jax.linearize(g, xi.reshape(-1))
            columns = jax.vmap(tangent)(jnp.eye(y.shape[0], dtype=y.dtype))
            return y.reshape(shape), columns.T

        return jax.vmap(single)(x) if labels is None else jax.vmap(single)(x, labels)

    def value_and_grad(self, f, x):
        """f(x) and its gradient point by point: one reverse pass through the sum over the
        batch (the points do not interact)."""
        value, pullback = jax.vjp(f, x)
        (grad,) = pullback(jnp.ones_like(value))
        return value, grad

    def hvp(self, f, x, v):
        """Hessian-vector products point by point: forward mode over the gradient."""
        return jax.jvp(lambda y: self.value_and_grad(f, y)[1], (x,), (v,))[1]

    def assignment(self, cost):
        """The exact assignment of a cost matrix, solved on the host (scipy) inside the
        compiled program."""
        return jax.pure_callback(_assignment, jax.ShapeDtypeStruct((cost.shape[0],), jnp.int32),
                                 cost)

    def adaptive(self, f, y0, t0, t1, rtol, atol, max_steps: int = 4096):
        """Dormand-Prince 5(4) with a PID step-size controller (diffrax): (y(t1), steps)."""
        term = diffrax.ODETerm(lambda t, y, args: f(t, y))
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t0=t0, t1=t1, dt0=(t1 - t0) / 20,
                                  y0=y0, stepsize_controller=diffrax.PIDController(rtol=rtol,
                                                                                  atol=atol),
                                  max_steps=max_steps)
        return jax.tree_util.tree_map(lambda y: y[-1], sol.ys), sol.stats["num_steps"]


OPS = Ops()
