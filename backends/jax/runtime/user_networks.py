"""Networks of the user's own in the JAX backend (``tfm.load(..., networks={name: module})``):
an Equinox module of (t, x), whose array leaves are its weights. They join the model's flat
weight dict under ``<network><path>`` (the leaf's path in the module, as
``jax.tree_util.keystr`` writes it), so that the optimiser, the EMA and checkpoints treat them
as they treat the built-in networks' weights; the module's other fields stay as they are."""

from __future__ import annotations

from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from ...runtime.model import check_output, error


@attrs.frozen(eq=False)
class UserNetwork:
    name: str
    static: Any  # the module without its arrays (eqx.partition)
    treedef: Any  # the structure of its arrays
    names: tuple[str, ...]  # each array's weight name
    initial: tuple[np.ndarray, ...]  # the arrays it came with (what reset restores)

    def weights(self) -> dict:
        return {n: jnp.asarray(v) for n, v in zip(self.names, self.initial)}

    def __call__(self, params: dict, t, x):
        """The module with the weights ``params`` at (t, x): t as (B,), x (B, *shape)."""
        import equinox as eqx

        arrays = jax.tree_util.tree_unflatten(self.treedef, [params[n] for n in self.names])
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
        return eqx.combine(arrays, self.static)(t, x)


def install(spec, shape: tuple[int, ...], given: dict) -> dict[str, UserNetwork]:
    """The user networks of ``given`` (name -> Equinox module), their outputs' shapes
    checked."""
    out = {}
    for name, module in given.items():
        try:
            import equinox as eqx
        except ImportError:  # pragma: no cover - equinox comes with diffrax
            raise error("A JAX user network is an Equinox module, and equinox is not "
                        "installed.", "pip install equinox") from None
        if not isinstance(module, eqx.Module):
            raise error(f"The network given for '{name}' is a {type(module).__name__}; the jax "
                        "backend takes an Equinox module (eqx.Module) of (t, x).")
        arrays, static = eqx.partition(module, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays)
        names = tuple(f"{name}{jax.tree_util.keystr(path)}" for path, _ in leaves)
        net = UserNetwork(name, static, treedef, names,
                          tuple(np.asarray(v, np.float32) for _, v in leaves))
        got = net(net.weights(), jnp.full((2,), 0.5), jnp.zeros((2,) + tuple(shape))).shape
        check_output(spec, name, shape, tuple(got))
        out[name] = net
    return out
