"""Phi4Flow: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'phi4_flow.tfm'
SPEC = Spec.from_json(
    {'model': 'Phi4Flow',
     'shape': [8, 8],
     'dim': 64,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [1.0]}},
     'target': {'name': 'phi4', 'args': {'mass2': -4.0, 'lam': 3.0}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'T',
                   'kind': 'realnvp',
                   'args': {'layers': 8,
                            'width': 64,
                            'depth': 1,
                            'activation': 'silu',
                            'mask': 'checkerboard',
                            'symmetry': 'sign'},
                   'target': 'reverse_kl',
                   'output': 'flow',
                   'key': 'T'}],
     'fields': [],
     'samplers': [{'name': 'local',
                   'method': 'hmc',
                   'args': {'step': 0.1,
                            'leapfrog': 10,
                            'accept': 0.8,
                            'jitter': 0.0,
                            'chains': 64,
                            'warmup': 1000,
                            'draws': 1000,
                            'thin': 1},
                   'kind': 'mcmc'},
                  {'name': 'jump',
                   'method': 'flow_mh',
                   'args': {'flow': {'ref': 'network', 'name': 'T'},
                            'chains': 64,
                            'warmup': 0,
                            'draws': 1000,
                            'thin': 1},
                   'kind': 'mcmc'},
                  {'name': 'mixed',
                   'method': 'cycle',
                   'args': {'first': {'ref': 'sampler', 'name': 'local'},
                            'second': {'ref': 'sampler', 'name': 'jump'},
                            'chains': 128,
                            'warmup': 200,
                            'draws': 400,
                            'thin': 1},
                   'kind': 'mcmc'},
                  {'name': 'alone',
                   'method': 'hmc',
                   'args': {'step': 0.1,
                            'leapfrog': 10,
                            'accept': 0.8,
                            'jitter': 0.0,
                            'chains': 128,
                            'warmup': 200,
                            'draws': 400,
                            'thin': 1},
                   'kind': 'mcmc'}],
     'train': {'steps': 3000,
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
     'objective': 'reverse_kl',
     'energies': [],
     'constants': {},
     'objective_args': {'anneal': 500, 'beta0': 0.1}})


class Networks(torch.nn.Module):
    """The networks of Phi4Flow (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
