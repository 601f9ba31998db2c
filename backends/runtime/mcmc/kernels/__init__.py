"""MCMC kernels, one module each, registered in ``mcmc.KERNELS`` under their prelude names."""
