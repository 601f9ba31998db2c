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

Both residuals are local in t': an error of the map grows along the flow where the flow
stretches (Gronwall); on moons the 1- and 2-step samplers' worst points start near the line
that splits the base between the two moons. With ``anchor = a`` the first ceil(a B) points of
a batch (a random subset: the batch is drawn independently) are also anchored to the teacher's
flow: the map's mean velocity
v(s, t', x_s) = (X_{s,t'}(x_s) - x_s) / (t' - s) is regressed on the teacher's,
(Phi_{s,t'}(x_s) - x_s) / (t' - s), Phi solved by ``anchor_steps`` Heun steps of b (the mean
over the anchored points and the elements, added to the loss). This term is zero at the flow
map too, up to the Heun error, and measures the map's error where it lands, not where it
starts to drift. The teacher's ODE is solved in the interval's own time tau = (u - s) / (t' - s)
in [0, 1], so that one fixed-step solve serves every point's interval.
"""

from __future__ import annotations

import math

from .. import solvers, time_laws
from . import OBJECTIVES, Objective

SHORTEST_GAP = 1e-3  # mean velocities over shorter intervals are taken as over this one


def mean_velocity(ops, teacher, s, t, x, steps: int):
    """The teacher's mean velocity (Phi_{s,t}(x) - x) / (t - s) over each point's interval
    (s, t (B,), s <= t), its flow Phi solved by ``steps`` Heun steps; its gradient stopped."""
    xp = ops.xp
    gap = xp.reshape(t - s, (-1,) + (1,) * (x.ndim - 1))

    def f(tau, y):  # dy/dtau = (t - s) b(s + tau (t - s), y)
        return gap * teacher(s + tau * (t - s), y)

    y = solvers.fixed_step(ops, f, x, 0.0, 1.0, steps, "heun")
    return ops.stop_gradient((y - x) / xp.maximum(gap, SHORTEST_GAP))


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

        anchor = float(args.get("anchor", 0.0))  # (none in self_distillation's spec, or an old one)

        def anchored(s, later, xs, mapped):
            """The anchor term on the first ceil(anchor B) points of the batch (``mapped``:
            X_{s,t'}(x_s), which the residual's JVP has computed already)."""
            k = min(xs.shape[0], math.ceil(anchor * xs.shape[0]))
            s, later, xs = s[:k], later[:k], xs[:k]
            target = mean_velocity(ops, teacher, s, later, xs, int(args["anchor_steps"]))
            gap = xp.reshape(xp.maximum(later - s, SHORTEST_GAP), (-1,) + trailing)
            error = (mapped[:k] - xs) / gap - target
            return xp.mean(error * error)

        def loss(t, x0, x1, z, *rest):  # rest: (dropout seeds,) u
            u = rest[-1]
            s, later = xp.minimum(t, u), xp.maximum(t, u)
            xs = module.interpolant(xp.reshape(s, (-1,) + trailing), x0, x1, z)
            if form == "eulerian":
                b = teacher(s, xs)
                mapped, residual = ops.jvp(lambda s_, x_: flow_map(s_, later, x_), (s, xs),
                                      (xp.ones_like(s), b))
            else:
                mapped, dx = ops.jvp(lambda t_: flow_map(s, t_, xs), (later,),
                                     (xp.ones_like(later),))
                residual = dx - teacher(later, mapped)
            value = regression(t, x0, x1, z, *rest[:-1]) + xp.mean(residual * residual)
            return value + anchored(s, later, xs, mapped) if anchor > 0 else value
        return loss
