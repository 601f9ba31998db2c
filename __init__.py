"""tfm: a declarative language for transport-based generative models, and its compiler tfmc.

The package maps onto the repository's folders: ``tfm.dsl`` (text to syntax tree),
``tfm.compiler`` (syntax tree to IR, checks, the command line), ``tfm.backends`` and
``tfm.stdlib`` (the standard library, written in tfm).
"""

__version__ = "0.1.0"
