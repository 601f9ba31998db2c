"""Derivation timing (issue: under one second per model): lower, derive and check every example,
golden model and stdlib interpolant, best of several runs in one warm process, and once cold
(first use in a fresh process, caches empty). Not a test; run it by hand:

    .venv/bin/python bench/derive.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tfm.compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def files() -> list[Path]:
    return (sorted(ROOT.glob("examples/*.tfm")) + sorted(ROOT.glob("tests/golden/good/*.tfm"))
            + sorted(ROOT.glob("tests/golden/derive/*.tfm")))


def cold(path: Path) -> float:
    code = ("import time; from tfm.compiler import compile_file; s = time.perf_counter(); "
            f"compile_file({str(path)!r}); print(time.perf_counter() - s)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> None:
    print(f"{'model':<44} {'cold s':>7} {'warm s':>7}")
    worst = 0.0
    for path in files():
        first = cold(path)
        warm = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            compile_file(path)
            warm.append(time.perf_counter() - start)
        worst = max(worst, first)
        print(f"{path.relative_to(ROOT).as_posix():<44} {first:>7.3f} {min(warm):>7.3f}")
    print(f"slowest cold compile (parse + lower + derive + checks): {worst:.3f} s")


if __name__ == "__main__":
    main()
