"""CirclesVP: the JAX module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.jax.runtime.JaxModel (networks, training loop, solvers).
"""

import jax.numpy as jnp

from tfm.backends.runtime.spec import Spec

SOURCE = 'circles_vp.tfm'
SPEC = Spec.from_json(
    {'model': 'CirclesVP',
     'shape': [2],
     'dim': 2,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'circles', 'args': {'noise': 0.05, 'factor': 0.5}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 0.999}},
     'networks': [{'name': 'eta',
                   'kind': 'mlp',
                   'args': {'width': 256, 'depth': 3, 'activation': 'silu'},
                   'target': 'base',
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
    """x_t = x0*sqrt(1 - exp(t/10 - 199*(1 - t)**2/20 - 1/10)) + x1*exp(t/20 - 199*(1 - t)**2/40 - 1/20)"""
    _c0 = (1 - t)**2
    return x0*jnp.sqrt(1 - jnp.exp(-9.95*_c0 + (0.1)*t - 0.1)) + x1*jnp.exp(-4.975*_c0 + (0.05)*t - 0.05)


def losses(t, x0, x1, z, out):
    """Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network."""
    out_eta = out['eta']
    return {'eta': (out_eta - x0)**2}


def fields(t, x, out):
    """Every field the trained networks determine, at (t, x)."""
    out_eta = out['eta']
    _c0 = t - 1
    _c1 = _c0**2
    _c2 = 0.05 - 0.05*t
    _c3 = (4.975)*_c1 + _c2
    _c4 = _c0**2
    _c5 = jnp.sqrt(1 - jnp.exp(-9.95*_c4 + (0.1)*t - 0.1))
    _c6 = t**2
    return {'velocity': (0.05)*(199*t - 200)*(_c5*out_eta + out_eta*jnp.exp(-_c2 - 4.975*_c4)/jnp.sqrt(jnp.exp((9.95)*_c1 - 0.1*t + 0.1) - 1) - x), 'score': -out_eta/_c5, 'noise': 0, 'data': -(out_eta*jnp.sqrt(-jnp.exp(20*t) + jnp.exp((9.95)*_c6 + 10.05)) - x*jnp.exp((4.975)*_c6 + 5.025))*jnp.exp(-10*t), 'base': out_eta}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_eta = out['eta']
    _c0 = t - 1
    _c1 = _c0**2
    _c2 = 0.05 - 0.05*t
    _c3 = (4.975)*_c1 + _c2
    _c4 = _c0**2
    return (0.05)*(199*t - 200)*(out_eta*jnp.sqrt(1 - jnp.exp(-9.95*_c4 + (0.1)*t - 0.1)) + out_eta*jnp.exp(-_c2 - 4.975*_c4)/jnp.sqrt(jnp.exp((9.95)*_c1 - 0.1*t + 0.1) - 1) - x)


def field_score(t, x, out):
    """The score at (t, x)."""
    out_eta = out['eta']
    return -out_eta/jnp.sqrt(1 - jnp.exp((0.1)*t - 9.95*(1 - t)**2 - 0.1))


def field_noise(t, x, out):
    """The noise at (t, x)."""
    return 0


def field_data(t, x, out):
    """The data at (t, x)."""
    out_eta = out['eta']
    _c0 = t**2
    return -(out_eta*jnp.sqrt(-jnp.exp(20*t) + jnp.exp((9.95)*_c0 + 10.05)) - x*jnp.exp((4.975)*_c0 + 5.025))*jnp.exp(-10*t)


def field_base(t, x, out):
    """The base at (t, x)."""
    out_eta = out['eta']
    return out_eta


def drifts(t, x, out):
    """Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler."""
    out_eta = out['eta']
    _c0 = t - 1
    _c1 = _c0**2
    _c2 = jnp.sqrt(1 - jnp.exp(-9.95*_c1 + (0.1)*t - 0.1))
    _c3 = _c0**2
    _c4 = 0.05 - 0.05*t
    _c5 = (4.975)*_c3 + _c4
    return {'sde': (0.05)*(199*t - 200)*(_c2*out_eta + out_eta*jnp.exp(-4.975*_c1 - _c4)/jnp.sqrt(jnp.exp((9.95)*_c3 - 0.1*t + 0.1) - 1) - x) - out_eta/_c2}


def given_data(t, x, d):
    """The velocity and the score at (t, x) where the data prediction E[x1 | x_t = x] is d
    (inpainting, docs/conditional.md)."""
    _c0 = t**2
    _c1 = jnp.exp(25.125)*jnp.exp((24.875)*_c0)
    _c2 = _c1*x
    _c3 = 199*t
    _c4 = 10*t
    _c5 = jnp.exp(-_c4)
    _c6 = _c5*d*jnp.exp(30.15)*jnp.exp((29.85)*_c0)
    _c7 = (4.975)*_c0
    _c8 = _c5*jnp.exp(5.025)*jnp.exp(_c7)
    return {'velocity': (0.05)*(-_c2*_c3 + 200*_c2 + _c3*_c6 - 200*_c6)/(_c1 - jnp.exp(35.175)*jnp.exp((34.825)*_c0)*jnp.exp(-20*t)), 'score': -(-_c8*x + d)/(-_c8 + jnp.exp(-5.025)*jnp.exp(_c4)*jnp.exp(-_c7))}


def eps_sde(t):
    """eps(t) of sampler sde: 1"""
    return 1


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
