"""LogisticPosterior: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'logistic_posterior.tfm'
SPEC = Spec.from_json(
    {'model': 'LogisticPosterior',
     'shape': [31],
     'dim': 31,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'energy', 'args': {'U': {'ref': 'energy', 'name': 'U'}}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [],
     'fields': [],
     'samplers': [{'name': 'hmc',
                   'method': 'hmc',
                   'args': {'step': 0.05,
                            'leapfrog': 10,
                            'accept': 0.8,
                            'jitter': 0.0,
                            'chains': 64,
                            'warmup': 1000,
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
     'energies': ['U'],
     'constants': {'X': {'shape': [569, 31], 'path': 'data/breast_cancer.npz', 'key': 'X'},
                   'y': {'shape': [569], 'path': 'data/breast_cancer.npz', 'key': 'y'}}})


class Networks(torch.nn.Module):
    """The networks of LogisticPosterior (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


from tfm.backends.runtime import array_functions as af  # noqa: E402


def energy_U(xp, x, c):
    """U(w) = sum(softplus(-y * (X @ w))) + 0.5 * sum(w^2)

    One number per sample of the batch x (batch axis first); xp is the array API namespace, c
    the constants by name."""
    return (xp.sum(xp.logaddexp(0.0, (-(c['y'])) * (xp.matmul(x, xp.permute_dims(c['X'], (1, 0))))), axis=(1,))) + (0.5 * (xp.sum(x ** 2, axis=(1,))))


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
    'U': energy_U,
}
