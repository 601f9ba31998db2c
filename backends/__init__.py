"""Code generation targets. Each backend (``jax``, ``torch``) is a package with the same files and
the same public API: an expression printer, an emitter, and the runtime emitted modules import."""

BACKENDS = ("jax", "torch")  # the --backend choices; each a subpackage with build, emit, OPTIONS
