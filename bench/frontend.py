"""Front-end timing: parse, lower and check every example and golden model, and format each
stdlib file, reporting the best of several runs per file. Not a test; run it by hand:

    .venv/bin/python bench/frontend.py
"""

from __future__ import annotations

import time
from pathlib import Path

from tfm.compiler import compile_file
from tfm.dsl import parse
from tfm.dsl.format import format_module

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5


def best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    files = sorted(ROOT.glob("examples/*.tfm")) + sorted(ROOT.glob("tests/golden/good/*.tfm"))
    print(f"{'file':<44} {'parse ms':>9} {'compile ms':>11} {'fmt ms':>8}")
    for path in files + sorted(ROOT.glob("stdlib/*.tfm")):
        text = path.read_text()
        parse_s = best(lambda: parse(text, path.name))
        tree = parse(text, path.name)
        fmt_s = best(lambda: format_module(tree))
        compile_s = best(lambda: compile_file(path)) if path in files else float("nan")
        print(f"{path.relative_to(ROOT).as_posix():<44} {parse_s * 1e3:>9.2f} "
              f"{compile_s * 1e3:>11.2f} {fmt_s * 1e3:>8.2f}")


if __name__ == "__main__":
    main()
