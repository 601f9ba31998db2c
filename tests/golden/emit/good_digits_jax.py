"""Digits: the JAX module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.jax.runtime.JaxModel (networks, training loop, solvers).
"""

import jax.numpy as jnp

from tfm.backends.runtime.spec import Spec

SOURCE = 'images.tfm'
SPEC = Spec.from_json(
    {'model': 'Digits',
     'shape': [1, 8, 8],
     'dim': 64,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'data',
                'args': {'path': 'digits.npz',
                         'key': 'images',
                         'labels': '',
                         'classes': 0,
                         'condition': ''}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'b',
                   'kind': 'convnet',
                   'args': {'channels': 32, 'depth': 3, 'activation': 'silu'},
                   'target': 'velocity',
                   'output': 'vector',
                   'key': 'b'}],
     'fields': ['velocity', 'score', 'noise', 'data', 'base'],
     'samplers': [{'name': 'ode', 'method': 'midpoint', 'args': {'steps': 50}, 'kind': 'ode'}],
     'train': {'steps': 10000,
               'batch': 256,
               'optimizer': {'name': 'adam',
                             'args': {'lr': 0.001, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}},
               'lr_schedule': {'name': 'constant_lr', 'args': {'warmup': 0}},
               'ema': 0.0,
               'clip': 0.0,
               'seed': 0,
               'precision': 'float32',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'regression',
     'energies': [],
     'constants': {}})


def interpolant(t, x0, x1, z):
    """x_t = x0*cos(pi*t/2) + x1*sin(pi*t/2)"""
    _c0 = (0.5)*jnp.pi*t
    return x0*jnp.cos(_c0) + x1*jnp.sin(_c0)


def losses(t, x0, x1, z, out):
    """Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network."""
    out_b = out['b']
    _c0 = (0.5)*jnp.pi
    _c1 = _c0*t
    return {'b': (_c0*x0*jnp.sin(_c1) - _c0*x1*jnp.cos(_c1) + out_b)**2}


def fields(t, x, out):
    """Every field the trained networks determine, at (t, x)."""
    out_b = out['b']
    _c0 = (0.5)*jnp.pi*t
    _c1 = 2*out_b/jnp.pi
    _c2 = jnp.sin(_c0)
    _c3 = jnp.cos(_c0)
    return {'velocity': out_b, 'score': _c1*jnp.tan(_c0) - x, 'noise': 0, 'data': _c1*_c3 + _c2*x, 'base': -_c1*_c2 + _c3*x}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_b = out['b']
    return out_b


def field_score(t, x, out):
    """The score at (t, x)."""
    out_b = out['b']
    return 2*out_b*jnp.tan((0.5)*jnp.pi*t)/jnp.pi - x


def field_noise(t, x, out):
    """The noise at (t, x)."""
    return 0


def field_data(t, x, out):
    """The data at (t, x)."""
    out_b = out['b']
    _c0 = (0.5)*jnp.pi*t
    return 2*out_b*jnp.cos(_c0)/jnp.pi + x*jnp.sin(_c0)


def field_base(t, x, out):
    """The base at (t, x)."""
    out_b = out['b']
    _c0 = (0.5)*jnp.pi*t
    return -2*out_b*jnp.sin(_c0)/jnp.pi + x*jnp.cos(_c0)


def drifts(t, x, out):
    """Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler."""
    return {}


def given_data(t, x, d):
    """The velocity and the score at (t, x) where the data prediction E[x1 | x_t = x] is d
    (inpainting, docs/conditional.md)."""
    _c0 = (0.5)*jnp.pi
    _c1 = _c0*t
    _c2 = jnp.cos(_c1)
    _c3 = jnp.sin(_c1)
    _c4 = _c2**2
    return {'velocity': _c0*(_c3**2*d - _c3*x + _c4*d)/_c2, 'score': (_c3*d - x)/_c4}


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
