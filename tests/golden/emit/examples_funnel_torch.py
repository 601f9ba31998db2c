"""Funnel: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'funnel.tfm'
SPEC = Spec.from_json(
    {'model': 'Funnel',
     'shape': [10],
     'dim': 10,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [3.0]}},
     'target': {'name': 'funnel', 'args': {}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [],
     'fields': [],
     'samplers': [{'name': 'moves',
                   'method': 'hmc',
                   'args': {'step': 0.3,
                            'leapfrog': 10,
                            'accept': 0.9,
                            'jitter': 3.0,
                            'chains': 64,
                            'warmup': 1000,
                            'draws': 1000,
                            'thin': 1},
                   'kind': 'mcmc'},
                  {'name': 'smc',
                   'method': 'smc',
                   'args': {'kernel': {'ref': 'sampler', 'name': 'moves'},
                            'particles': 2000,
                            'replicas': 8,
                            'temperatures': 0,
                            'ess': 0.9,
                            'moves': 30},
                   'kind': 'smc'}],
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
     'energies': [],
     'constants': {}})


class Networks(torch.nn.Module):
    """The networks of Funnel (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
