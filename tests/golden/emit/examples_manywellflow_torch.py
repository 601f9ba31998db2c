"""ManyWellFlow: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'manywell_flow.tfm'
SPEC = Spec.from_json(
    {'model': 'ManyWellFlow',
     'shape': [32],
     'dim': 32,
     'latent': False,
     'base': {'name': 'normal', 'args': {'mean': [0.0], 'scale': [2.0]}},
     'target': {'name': 'many_well', 'args': {}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'T',
                   'kind': 'spline',
                   'args': {'layers': 4,
                            'bins': 8,
                            'bound': 4.0,
                            'width': 64,
                            'depth': 2,
                            'activation': 'silu',
                            'mask': 'alternating',
                            'symmetry': 'none'},
                   'target': 'reverse_kl',
                   'output': 'flow',
                   'key': 'T'}],
     'fields': [],
     'samplers': [{'name': 'weights',
                   'method': 'importance',
                   'args': {'flow': {'ref': 'network', 'name': 'T'},
                            'particles': 20000,
                            'replicas': 8},
                   'kind': 'flow'}],
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
     'objective_args': {'anneal': 1000, 'beta0': 0.05}})


class Networks(torch.nn.Module):
    """The networks of ManyWellFlow (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
