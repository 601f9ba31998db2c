"""The runtime that emitted PyTorch modules use: networks, optimisers, densities, couplings,
training steps, solvers, likelihoods, and the model object tying them together."""

from .energy_model import TorchEnergyModel
from .flow_model import TorchFlowModel
from .model import TorchModel

__all__ = ["TorchEnergyModel", "TorchFlowModel", "TorchModel"]
