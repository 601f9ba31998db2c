"""MoonsSBCFM: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'moons_sbcfm.tfm'
SPEC = Spec.from_json(
    {'model': 'MoonsSBCFM',
     'shape': [2],
     'dim': 2,
     'latent': True,
     'base': {'name': 'eight_gaussians', 'args': {'radius': 2.0, 'scale': 0.1}},
     'target': {'name': 'moons', 'args': {'noise': 0.05}},
     'coupling': {'name': 'sinkhorn', 'args': {'reg': 0.5}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.001, 'high': 0.999}},
     'networks': [{'name': 'b',
                   'kind': 'mlp',
                   'args': {'width': 256, 'depth': 3, 'activation': 'silu'},
                   'target': 'velocity',
                   'output': 'vector',
                   'key': 'b'}],
     'fields': ['velocity'],
     'samplers': [{'name': 'ode', 'method': 'heun', 'args': {'steps': 20}, 'kind': 'ode'}],
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


class Networks(torch.nn.Module):
    """The networks of MoonsSBCFM (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


def interpolant(t, x0, x1, z):
    """x_t = t*x1 + x0*(1 - t) + z*sqrt(t*(1 - t))/2"""
    _c0 = t - 1
    return -_c0*x0 + t*x1 + 0.5*z*torch.sqrt(-_c0*t)


def losses(t, x0, x1, z, out):
    """Per-element loss integrand w(t) |N(t, x_t) - Y|^2 of each trained network."""
    out_b = out['b']
    _c0 = t - 1
    return {'b': (out_b + x0 - x1 - 0.25*z*torch.sqrt(-_c0*t)*(2.0*t - 1)/(_c0*t))**2}


def fields(t, x, out):
    """Every field the trained networks determine, at (t, x)."""
    out_b = out['b']
    return {'velocity': out_b}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_b = out['b']
    return out_b


def drifts(t, x, out):
    """Drift b + eps s (forward) or b - eps s (backward) of each SDE sampler."""
    return {}


# the noise part of x_t is not Gaussian (no isotropic normal base with an independent coupling):
# the fields are not functions of x and the data prediction alone, and there is no inpainting
given_data = None


# each field alone, by name: what samplers evaluate
FIELDS = {
    'velocity': field_velocity,
}
# eps(t) of each SDE sampler, by name
EPS = {
}


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
