"""Flow maps (docs/fewstep.md): a two-time network X_{s,t}(x) = x + (t - s) v(s, t, x), which
is the identity at s = t for any weights, trained to carry a point of the probability flow at
time s to where the flow is at time t, so that K steps of the map sample in K network calls.

A batch is the interpolant's (t, x0, x1, z) and a second time u from the same law; the map is
trained on the ordered pair s = min(t, u) <= t' = max(t, u) at x_s = I(s, x0, x1, z), the
interpolant at s. (Drawing the gap t' - s uniformly instead, so that long jumps are as frequent
as short ones, made the 2-step sampler's error on moons larger, 0.024 against 0.016 RMS from the
ODE's points, and the 1-step sampler's no smaller: docs/fewstep.md.)

The map's loss is added to the regression of every network trained on a target
(``regression.py``: the teacher's, or, for self-distillation, the map's own velocity v(t, t, x)
on the velocity target). The teacher b is the model's velocity field at the weights being
trained, with its gradient stopped, so teacher and map train together in one run:

- ``lagrangian`` (and ``self_distillation``, where the teacher is the map's own velocity):
  |d/dt' X_{s,t'}(x_s) - b(t', X_{s,t'}(x_s))|^2, the derivative in t' by one forward-mode
  Jacobian-vector product;
- ``eulerian``: |d/ds X_{s,t'}(x_s) + (grad_x X_{s,t'}(x_s)) b(s, x_s)|^2, both derivatives by
  one Jacobian-vector product in (s, x) along (1, b(s, x_s)).

Each is zero exactly when X is the flow map of b (Boffi, Albergo and Vanden-Eijnden 2024); the
loss is the mean over the batch and the elements, as the regression's.
"""

from __future__ import annotations

from .. import time_laws
from . import OBJECTIVES, Objective

@OBJECTIVES.register("flow_map")
class FlowMap(Objective):
    def draw(self, model, data=None):
        pairs = OBJECTIVES["regression"].draw(model, data)
        times = time_laws.make(model.ops, model.spec.time_law)

        def draw(rng, n, step=None):
            k_pairs, k_time = rng.split(2)
            return pairs(k_pairs, n, step) + (times(k_time, n),)
        return draw

    def loss(self, model, network):
        ops, module, xp = model.ops, model.module, model.ops.xp
        args = model.spec.objective_args
        form, trailing = args["form"], (1,) * len(model.shape)
        regression = OBJECTIVES["regression"].loss(model, network)
        flow_map = model.flow_map(network, args["network"])
        velocity = module.FIELDS["velocity"]

        def teacher(t, x):
            """The model's velocity at per-point times t (B,), its gradient stopped."""
            field = velocity(xp.reshape(t, (-1,) + trailing), x, network(t, x))
            return ops.stop_gradient(ops.full(field, x))

        def loss(t, x0, x1, z, *rest):  # rest: (dropout seeds,) u
            u = rest[-1]
            s, later = xp.minimum(t, u), xp.maximum(t, u)
            xs = module.interpolant(xp.reshape(s, (-1,) + trailing), x0, x1, z)
            if form == "eulerian":
                b = teacher(s, xs)
                _, residual = ops.jvp(lambda s_, x_: flow_map(s_, later, x_), (s, xs),
                                      (xp.ones_like(s), b))
            else:
                x, dx = ops.jvp(lambda t_: flow_map(s, t_, xs), (later,), (xp.ones_like(later),))
                residual = dx - teacher(later, x)
            return regression(t, x0, x1, z, *rest[:-1]) + xp.mean(residual * residual)
        return loss
