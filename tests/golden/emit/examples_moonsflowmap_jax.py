"""MoonsFlowMap: the JAX module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.jax.runtime.JaxModel (networks, training loop, solvers).
"""

import jax.numpy as jnp

from tfm.backends.runtime.spec import Spec

SOURCE = 'moons_flowmap.tfm'
SPEC = Spec.from_json(
    {'model': 'MoonsFlowMap',
     'shape': [2],
     'dim': 2,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'moons', 'args': {'noise': 0.05}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'X',
                   'kind': 'resmlp',
                   'args': {'width': 256, 'blocks': 6, 'activation': 'silu', 'times': 2},
                   'target': 'map',
                   'output': 'map',
                   'key': 'X'},
                  {'name': 'b',
                   'kind': 'mlp',
                   'args': {'width': 256, 'depth': 3, 'activation': 'silu'},
                   'target': 'velocity',
                   'output': 'vector',
                   'key': 'b'}],
     'fields': ['velocity', 'score', 'noise', 'data', 'base'],
     'samplers': [{'name': 'ode', 'method': 'heun', 'args': {'steps': 20}, 'kind': 'ode'},
                  {'name': 'one', 'method': 'fewstep', 'args': {'steps': 1}, 'kind': 'map'},
                  {'name': 'two', 'method': 'fewstep', 'args': {'steps': 2}, 'kind': 'map'}],
     'train': {'steps': 20000,
               'batch': 256,
               'optimizer': {'name': 'adam',
                             'args': {'lr': 0.001, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}},
               'lr_schedule': {'name': 'cosine_decay', 'args': {'warmup': 100, 'final': 0.0}},
               'ema': 0.999,
               'clip': 0.0,
               'seed': 0,
               'precision': 'float32',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'flow_map',
     'energies': [],
     'constants': {},
     'objective_args': {'network': 'X',
                        'form': 'lagrangian',
                        'teacher': 'b',
                        'teacher_run': None,
                        'anchor': 0.25,
                        'anchor_steps': 10}})


def interpolant(t, x0, x1, z):
    """x_t = t*x1 + x0*(1 - t)"""
    return t*x1 - x0*(t - 1)


def losses(t, x0, x1, z, out):
    """Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network."""
    out_b = out['b']
    return {'b': (out_b + x0 - x1)**2}


def fields(t, x, out):
    """Every field the trained networks determine, at (t, x)."""
    out_b = out['b']
    _c0 = t - 1
    _c1 = -x
    _c2 = _c1 + out_b*t
    return {'velocity': out_b, 'score': -_c2/_c0, 'noise': 0, 'data': -_c0*out_b - _c1, 'base': -_c2}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_b = out['b']
    return out_b


def field_score(t, x, out):
    """The score at (t, x)."""
    out_b = out['b']
    return -(out_b*t - x)/(t - 1)


def field_noise(t, x, out):
    """The noise at (t, x)."""
    return 0


def field_data(t, x, out):
    """The data at (t, x)."""
    out_b = out['b']
    return -out_b*(t - 1) + x


def field_base(t, x, out):
    """The base at (t, x)."""
    out_b = out['b']
    return -out_b*t + x


def drifts(t, x, out):
    """Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler."""
    return {}


def given_data(t, x, d):
    """The velocity and the score at (t, x) where the data prediction E[x1 | x_t = x] is d
    (inpainting, docs/conditional.md)."""
    _c0 = -x
    return {'velocity': -(_c0 + d)/(t - 1), 'score': (_c0 + d*t)/(t**2 - 2*t + 1)}


# each field alone, by name: what samplers evaluate
FIELDS = {
    'velocity': field_velocity,
    'score': field_score,
    'noise': field_noise,
    'data': field_data,
    'base': field_base,
}
# eps(t) of each SDE sampler, by name
EPS = {
}


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
