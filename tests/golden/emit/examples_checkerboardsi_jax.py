"""CheckerboardSI: the JAX module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.jax.runtime.JaxModel (networks, training loop, solvers).
"""

import jax.numpy as jnp

from tfm.backends.runtime.spec import Spec

SOURCE = 'checkerboard_si_sde.tfm'
SPEC = Spec.from_json(
    {'model': 'CheckerboardSI',
     'shape': [2],
     'dim': 2,
     'latent': True,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'checkerboard', 'args': {}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.001, 'high': 0.999}},
     'networks': [{'name': 'b',
                   'kind': 'mlp',
                   'args': {'width': 256, 'depth': 3, 'activation': 'silu'},
                   'target': 'velocity',
                   'output': 'vector',
                   'key': 'b'},
                  {'name': 'eta',
                   'kind': 'mlp',
                   'args': {'width': 256, 'depth': 3, 'activation': 'silu'},
                   'target': 'noise',
                   'output': 'vector',
                   'key': 'eta'}],
     'fields': ['velocity', 'score', 'noise', 'data', 'base'],
     'samplers': [{'name': 'ode', 'method': 'heun', 'args': {'steps': 50}, 'kind': 'ode'},
                  {'name': 'sde',
                   'method': 'euler_maruyama',
                   'args': {'steps': 200, 'direction': 'forward'},
                   'kind': 'sde'}],
     'train': {'steps': 10000,
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
     'objective': 'regression',
     'energies': [],
     'constants': {}})


def interpolant(t, x0, x1, z):
    """x_t = x0*cos(pi*t/2) + x1*sin(pi*t/2) + sqrt(2)*z*sqrt(t*(1 - t))/2"""
    _c0 = (0.5)*jnp.pi*t
    return x0*jnp.cos(_c0) + x1*jnp.sin(_c0) + (0.5)*jnp.sqrt(2)*z*jnp.sqrt(-t*(t - 1))


def losses(t, x0, x1, z, out):
    """Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network."""
    out_b = out['b']
    out_eta = out['eta']
    _c0 = (0.5)*jnp.pi
    _c1 = _c0*t
    _c2 = t - 1
    return {'b': (_c0*x0*jnp.sin(_c1) - _c0*x1*jnp.cos(_c1) + out_b - 0.25*jnp.sqrt(2)*z*jnp.sqrt(-_c2*t)*(2*t - 1)/(_c2*t))**2, 'eta': (out_eta - z)**2}


def fields(t, x, out):
    """Every field the trained networks determine, at (t, x)."""
    out_b = out['b']
    out_eta = out['eta']
    _c0 = jnp.sqrt(2)
    _c1 = t*(t - 1)
    _c2 = jnp.sqrt(-_c1)
    _c3 = _c0/_c2
    _c4 = _c3*out_eta
    _c5 = (0.5)*jnp.pi*t
    _c6 = jnp.cos(_c5)
    return {'velocity': out_b, 'score': -_c4, 'noise': out_eta, 'data': -_c3*(-0.5*_c0*_c2*x - 0.5*_c1*out_eta + _c6**2*out_eta)/jnp.sin(_c5), 'base': _c4*_c6}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_b = out['b']
    return out_b


def field_score(t, x, out):
    """The score at (t, x)."""
    out_eta = out['eta']
    return -jnp.sqrt(2)*out_eta/jnp.sqrt(-t*(t - 1))


def field_noise(t, x, out):
    """The noise at (t, x)."""
    out_eta = out['eta']
    return out_eta


def field_data(t, x, out):
    """The data at (t, x)."""
    out_eta = out['eta']
    _c0 = jnp.sqrt(2)
    _c1 = (0.5)*jnp.pi*t
    _c2 = t*(t - 1)
    _c3 = jnp.sqrt(-_c2)
    return -_c0*(-0.5*_c0*_c3*x - 0.5*_c2*out_eta + out_eta*jnp.cos(_c1)**2)/(_c3*jnp.sin(_c1))


def field_base(t, x, out):
    """The base at (t, x)."""
    out_eta = out['eta']
    return jnp.sqrt(2)*out_eta*jnp.cos((0.5)*jnp.pi*t)/jnp.sqrt(-t*(t - 1))


def drifts(t, x, out):
    """Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler."""
    out_b = out['b']
    out_eta = out['eta']
    return {'sde': out_b - 0.5*jnp.sqrt(2)*out_eta/jnp.sqrt(t*(1 - t))}


def given_data(t, x, d):
    """The velocity and the score at (t, x) where the data prediction E[x1 | x_t = x] is d
    (inpainting, docs/conditional.md)."""
    _c0 = t**2
    _c1 = jnp.pi*t
    _c2 = (0.5)*_c1
    _c3 = jnp.cos(_c2)
    _c4 = (-_c0 + 2*_c3**2 + t)**(-1.0)
    _c5 = 2*t
    _c6 = jnp.sin(_c2)
    _c7 = _c6*d
    _c8 = jnp.pi*d
    _c9 = 2*_c8
    return {'velocity': (0.5)*_c4*(-_c0*_c3*_c8 + _c1*_c3*d + _c3**3*_c9 + _c3*_c6**2*_c9 - 2*jnp.pi*_c3*_c6*x + _c5*_c7 - _c5*x - _c7 + x), 'score': 2*_c4*(_c7 - x)}


def eps_sde(t):
    """eps(t) of sampler sde: 1/2"""
    return 0.5


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
    'sde': eps_sde,
}


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
