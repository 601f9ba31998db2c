"""The runtime that emitted PyTorch modules use: networks, optimisers, densities, couplings,
training steps, solvers, likelihoods, and the model object tying them together."""

from .model import TorchModel

__all__ = ["TorchModel"]
