"""The runtime that emitted JAX modules use: networks, optimisers, densities, couplings, the fused
training loop, solvers, likelihoods, and the model object tying them together."""

from .energy_model import JaxEnergyModel
from .flow_model import JaxFlowModel
from .model import JaxModel

__all__ = ["JaxEnergyModel", "JaxFlowModel", "JaxModel"]
