"""tfm: a declarative language for transport-based generative models, and its compiler tfmc.

The package maps onto the repository's folders, in the order they import one another:
``tfm.errors`` and ``tfm.data_files`` (the bottom), ``tfm.dsl`` (text to syntax tree),
``tfm.compiler`` (syntax tree to IR, checks, derivations), ``tfm.backends`` (code generation and
runtimes), ``tfm.driver`` (the command line and run folders); ``tfm.stdlib`` is the standard
library, written in tfm (docs/architecture.md).
"""

__version__ = "0.1.0"


def load(path, backend: str = "jax", folder=None, **options):
    """The model of a .tfm file as an object with ``fit``, ``sample``, ``log_prob``, ``save``
    and ``load`` (``backend`` is "jax" or "torch"; the emitted module goes into ``folder``, a
    temporary folder by default; torch's ``options``: ``device`` (default CUDA when there is
    one) and ``compile`` (train through torch.compile; default on CUDA))::

        import tfm
        m = tfm.load("examples/moons.tfm", backend="jax")
        m.fit(steps=2000)
        x = m.sample(1000)
        logp = m.log_prob(x)
    """
    from .driver.run import build

    return build(path, backend, folder, **options)
