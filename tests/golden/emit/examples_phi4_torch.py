"""Phi4: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'phi4.tfm'
SPEC = Spec.from_json(
    {'model': 'Phi4',
     'shape': [8, 8],
     'dim': 64,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'energy', 'args': {'U': {'ref': 'energy', 'name': 'S'}}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [],
     'fields': [],
     'samplers': [{'name': 'hmc',
                   'method': 'hmc',
                   'args': {'step': 0.1,
                            'leapfrog': 10,
                            'accept': 0.8,
                            'jitter': 0.0,
                            'chains': 128,
                            'warmup': 500,
                            'draws': 1000,
                            'thin': 1},
                   'kind': 'mcmc'}],
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
     'objective': 'none',
     'energies': ['S'],
     'constants': {}})


class Networks(torch.nn.Module):
    """The networks of Phi4 (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


from tfm.backends.runtime import array_functions as af  # noqa: E402


def energy_S(xp, x, c):
    """S(phi) = sum(phi * (4 * phi - roll(phi, 1, 0) - roll(phi, -1, 0) - roll(phi, 1, 1) - roll(phi, -1, 1)) - 4 * phi^2 + 8 * phi^4)

    One number per sample of the batch x (batch axis first); xp is the array API namespace, c
    the constants by name."""
    return xp.sum(((x * (((((4.0 * x) - (xp.roll(x, 1, axis=1))) - (xp.roll(x, -1, axis=1))) - (xp.roll(x, 1, axis=2))) - (xp.roll(x, -1, axis=2)))) - (4.0 * (x ** 2))) + (8.0 * (x ** 4)), axis=(1, 2))


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
    'S': energy_S,
}
