"""Noisy: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'energy_noise.tfm'
SPEC = Spec.from_json(
    {'model': 'Noisy',
     'shape': [2],
     'dim': 2,
     'latent': True,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'data',
                'args': {'path': 'points.npy',
                         'key': '',
                         'labels': '',
                         'classes': 0,
                         'condition': ''}},
     'coupling': {'name': 'sinkhorn', 'args': {'reg': 0.1}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.001, 'high': 0.999}},
     'networks': [{'name': 'b',
                   'kind': 'resmlp',
                   'args': {'width': 128, 'blocks': 2, 'activation': 'silu'},
                   'target': 'velocity',
                   'output': 'vector',
                   'key': 'b'},
                  {'name': 'eta',
                   'kind': 'mlp',
                   'args': {'width': 128, 'depth': 3, 'activation': 'gelu'},
                   'target': 'noise',
                   'output': 'vector',
                   'key': 'eta'}],
     'fields': ['velocity', 'score', 'noise', 'data', 'base'],
     'samplers': [{'name': 'ode',
                   'method': 'dopri5',
                   'args': {'rtol': 0.0001, 'atol': 1e-05},
                   'kind': 'ode'},
                  {'name': 'sde',
                   'method': 'euler_maruyama',
                   'args': {'steps': 200, 'direction': 'backward'},
                   'kind': 'sde'}],
     'train': {'steps': 1000,
               'batch': 128,
               'optimizer': {'name': 'adamw',
                             'args': {'lr': 0.002,
                                      'weight_decay': 1e-05,
                                      'b1': 0.9,
                                      'b2': 0.999,
                                      'eps': 1e-08}},
               'lr_schedule': {'name': 'cosine_decay', 'args': {'warmup': 100, 'final': 0.0}},
               'ema': 0.0,
               'clip': 1.0,
               'seed': 0,
               'precision': 'bfloat16',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'regression',
     'energies': [],
     'constants': {}})


class Networks(torch.nn.Module):
    """The networks of Noisy (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


def interpolant(t, x0, x1, z):
    """x_t = t*x1 + x0*(1 - t) + sqrt(10)*z*sqrt(t*(1 - t))/10"""
    _c0 = t - 1
    return -_c0*x0 + t*x1 + 0.31622776601683794*z*torch.sqrt(-_c0*t)


def losses(t, x0, x1, z, out):
    """Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network."""
    out_b = out['b']
    out_eta = out['eta']
    _c0 = t + 1
    _c1 = t - 1
    return {'b': _c0*(out_b + x0 - x1 - 0.15811388300841897*z*torch.sqrt(-_c1*t)*(2.0*t - 1)/(_c1*t))**2, 'eta': _c0*(out_eta - z)**2}


def fields(t, x, out):
    """Every field the trained networks determine, at (t, x)."""
    out_b = out['b']
    out_eta = out['eta']
    _c0 = t - 1
    _c1 = torch.sqrt(-_c0*t)
    _c2 = 3.1622776601683795*out_eta
    _c3 = 0.05*_c2
    _c4 = out_b*t - x
    return {'velocity': out_b, 'score': -_c2/_c1, 'noise': out_eta, 'data': -_c3*torch.sqrt(-_c0*t)/t - _c4 + out_b, 'base': (_c1*_c3 + _c4 - out_b*t**2 + t*x)/_c0}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_b = out['b']
    return out_b


def field_score(t, x, out):
    """The score at (t, x)."""
    out_eta = out['eta']
    return -3.1622776601683795*out_eta/torch.sqrt(-t*(t - 1))


def field_noise(t, x, out):
    """The noise at (t, x)."""
    out_eta = out['eta']
    return out_eta


def field_data(t, x, out):
    """The data at (t, x)."""
    out_b = out['b']
    out_eta = out['eta']
    return -out_b*t + out_b - 0.15811388300841897*out_eta*torch.sqrt(t*(1 - t))/t + x


def field_base(t, x, out):
    """The base at (t, x)."""
    out_b = out['b']
    out_eta = out['eta']
    _c0 = t - 1
    return (-out_b*t**2 + out_b*t + 0.15811388300841897*out_eta*torch.sqrt(-_c0*t) + t*x - x)/_c0


def drifts(t, x, out):
    """Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler."""
    out_b = out['b']
    out_eta = out['eta']
    _c0 = t*(t - 1)
    return {'sde': -1.5811388300841898*_c0*out_eta/torch.sqrt(-_c0) + out_b}


# the noise part of x_t is not Gaussian (no isotropic normal base with an independent coupling):
# the fields are not functions of x and the data prediction alone, and there is no inpainting
given_data = None


def eps_sde(t):
    """eps(t) of sampler sde: t*(1 - t)/2"""
    return -0.5*t*(t - 1)


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
