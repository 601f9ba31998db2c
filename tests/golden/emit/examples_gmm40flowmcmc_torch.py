"""GMM40FlowMCMC: the PyTorch module tfmc 0.1.0 emitted from the file SOURCE names.

Generated code: edit the .tfm file and run `tfmc compile` again rather than editing this file.
It is used by tfm.backends.torch.runtime.TorchModel (training loop, solvers).
"""

import torch

from tfm.backends.runtime.spec import Spec
from tfm.backends.torch.runtime import networks

SOURCE = 'gmm40_flow_mcmc.tfm'
SPEC = Spec.from_json(
    {'model': 'GMM40FlowMCMC',
     'shape': [2],
     'dim': 2,
     'latent': False,
     'base': {'name': 'box', 'args': {'low': [-40.0], 'high': [40.0]}},
     'target': {'name': 'gmm40', 'args': {}},
     'coupling': {'name': 'independent', 'args': {}},
     'time_law': {'name': 'uniform', 'args': {'low': 0.0, 'high': 1.0}},
     'networks': [{'name': 'T',
                   'kind': 'spline',
                   'args': {'layers': 4,
                            'bins': 8,
                            'bound': 5.0,
                            'width': 64,
                            'depth': 2,
                            'activation': 'silu',
                            'mask': 'alternating',
                            'symmetry': 'none'},
                   'target': 'forward_kl',
                   'output': 'flow',
                   'key': 'T'}],
     'fields': [],
     'samplers': [{'name': 'local',
                   'method': 'mala',
                   'args': {'step': 0.5,
                            'accept': 0.574,
                            'chains': 64,
                            'warmup': 1000,
                            'draws': 1000,
                            'thin': 1},
                   'kind': 'mcmc'},
                  {'name': 'fmc',
                   'method': 'flow_mcmc',
                   'args': {'flow': {'ref': 'network', 'name': 'T'},
                            'kernel': {'ref': 'sampler', 'name': 'local'},
                            'chains': 500,
                            'rounds': 10,
                            'local_steps': 40,
                            'global_steps': 40,
                            'draws': 100,
                            'thin': 1},
                   'kind': 'flow'}],
     'train': {'steps': 2000,
               'batch': 1024,
               'optimizer': {'name': 'adam',
                             'args': {'lr': 0.001, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}},
               'lr_schedule': {'name': 'constant_lr', 'args': {'warmup': 0}},
               'ema': 0.0,
               'clip': 0.0,
               'seed': 0,
               'precision': 'float32',
               'checkpoint_every': 1000,
               'log_every': 100},
     'objective': 'forward_kl',
     'energies': [],
     'constants': {}})


class Networks(torch.nn.Module):
    """The networks of GMM40FlowMCMC (``nets``); ``forward(t, x)`` is every network's output at
    (t, x), keyed as the functions below read them (``grad_NAME`` for a potential network)."""

    def __init__(self):
        super().__init__()
        self.nets = networks.build(SPEC)

    def forward(self, t, x, seeds=None, labels=None):
        return networks.outputs(SPEC, self.nets, t, x, seeds, labels)


# each energy by name (density proportional to exp(-U)): what MCMC and SMC samplers evaluate
ENERGIES = {
}
