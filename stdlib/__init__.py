"""The standard library, written in tfm: ``import stdlib.NAME`` reads ``NAME.tfm`` from here.

``prelude.tfm`` is imported into every file. Only files in this folder may declare primitives.
"""

from pathlib import Path

STDLIB_DIR = Path(__file__).resolve().parent
PRELUDE = STDLIB_DIR / "prelude.tfm"


def module_path(name: str) -> Path:
    """The file of stdlib module ``name`` (it may not exist)."""
    return STDLIB_DIR / f"{name}.tfm"


def module_names() -> list[str]:
    return sorted(p.stem for p in STDLIB_DIR.glob("*.tfm"))
