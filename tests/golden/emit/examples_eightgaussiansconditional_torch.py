"""EightGaussiansConditional: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'eight_gaussians_conditional.tfm'
SPEC = Spec.from_json(
    {'model': 'EightGaussiansConditional',
     'shape': [2],
     'dim': 2,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'data',
                'args': {'path': 'data/eight_gaussians.npz',
                         'key': 'x',
                         'labels': 'label',
                         'classes': 8,
                         'condition': ''}},
     'coupling': {'name': 'minibatch_ot', 'args': {'solver': 'device'}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'b',
                   'kind': 'mlp',
                   'args': {'width': 128, 'depth': 3, 'activation': 'silu', 'classes': 8},
                   'target': 'velocity',
                   'output': 'vector',
                   'key': 'b'}],
     'fields': ['velocity', 'noise', 'data', 'base'],
     'samplers': [{'name': 'ode', 'method': 'heun', 'args': {'steps': 20}, 'kind': 'ode'}],
     'train': {'steps': 4000,
               'batch': 256,
               'optimizer': {'name': 'adam',
                             'args': {'lr': 0.001, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}},
               'lr_schedule': {'name': 'constant_lr', 'args': {'warmup': 0}},
               'ema': 0.999,
               'clip': 0.0,
               'seed': 0,
               'precision': 'float32',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'regression',
     'energies': [],
     'constants': {},
     'label_drop': 0.1})


class Networks(torch.nn.Module):
    """The networks of EightGaussiansConditional (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


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
    _c0 = -x
    return {'velocity': out_b, 'noise': 0, 'data': -_c0 - out_b*(t - 1), 'base': -_c0 - out_b*t}


def field_velocity(t, x, out):
    """The velocity at (t, x)."""
    out_b = out['b']
    return out_b


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


# the noise part of x_t is not Gaussian (no isotropic normal base with an independent coupling):
# the fields are not functions of x and the data prediction alone, and there is no inpainting
given_data = None


# each field alone, by name: what samplers evaluate
FIELDS = {
    'velocity': field_velocity,
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
