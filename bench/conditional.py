"""Conditional generation (docs/conditional.md): the two examples' figures, in one run.

1. ``digits``: examples/digits_conditional.tfm trained for its steps (or STEPS); 1,000 samples,
   100 per class, at each guidance scale of GUIDANCE; the share a logistic regression trained on
   the real digits (scikit-learn's, on the flattened images scaled to [-1, 1]) labels as the
   class asked for; the samples per second of each scale.
2. ``eight``: examples/eight_gaussians_conditional.tfm trained for its steps, and the same model
   without labels; each class's W2 (1,000 samples against 1,000 exact draws of its component)
   against the unlabelled model's W2 (1,000 samples against 1,000 exact draws of the whole
   target), and their ratio.

    .venv/bin/python bench/conditional.py                    # both, JAX
    BACKEND=torch SECTIONS=digits .venv/bin/python bench/conditional.py
    QUICK=1 .venv/bin/python bench/conditional.py            # smoke run

Not a test (tests/test_conditional.py runs both in a quick form). Results: docs/conditional.md.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

QUICK = os.environ.get("QUICK") == "1"
BACKEND = os.environ.get("BACKEND", "jax")
SECTIONS = os.environ.get("SECTIONS", "digits,eight").split(",")
STEPS = int(os.environ["STEPS"]) if os.environ.get("STEPS") else (100 if QUICK else None)
GUIDANCE = (0.0, 1.0, 2.0, 4.0)
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def trained(name: str, text: str | None = None):
    import tfm
    folder = Path(tempfile.mkdtemp())
    shutil.copytree(EXAMPLES / "data", folder / "data")
    path = folder / f"{name}.tfm"
    path.write_text(text if text is not None else (EXAMPLES / f"{name}.tfm").read_text())
    m = tfm.load(path, backend=BACKEND)
    start = time.perf_counter()
    m.fit(steps=STEPS, progress=False, log=lambda *a, **k: None)
    return m, time.perf_counter() - start


def digits():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    m, seconds = trained("digits_conditional")
    data = load_digits()
    classifier = LogisticRegression(max_iter=2000).fit(
        (data.images / 8 - 1).reshape(len(data.images), -1), data.target)
    cond = np.repeat(np.arange(10), 100)
    print(f"\n## digits_conditional ({BACKEND}, {m.step} steps, {seconds:.0f} s of training)")
    print("| guidance | recognised as the class asked for | samples / s |\n|---|---|---|")
    for w in GUIDANCE:
        m.sample(1000, cond=cond, guidance=w, seed=1)  # compiles
        start = time.perf_counter()
        samples = m.sample(1000, cond=cond, guidance=w, seed=1)
        rate = 1000 / (time.perf_counter() - start)
        share = float(np.mean(classifier.predict(samples.reshape(1000, -1)) == cond))
        print(f"| {w:g} | {100 * share:.1f}% | {rate:,.0f} |", flush=True)


def component(k: int, n: int, seed: int) -> np.ndarray:
    angle = k * math.pi / 4
    return 3 * np.array([math.cos(angle), math.sin(angle)]) + \
        0.3 * np.random.default_rng(seed).standard_normal((n, 2))


def eight():
    from tfm.backends.runtime.metrics import w2
    text = (EXAMPLES / "eight_gaussians_conditional.tfm").read_text()
    m, seconds = trained("eight_gaussians_conditional", text)
    plain = text.replace(', labels = "label", classes = 8', "").replace(
        "label ~ dropped(0.1)", "")
    u, plain_seconds = trained("eight_gaussians_conditional", plain)
    whole = np.concatenate([component(k, 125, 100 + k) for k in range(8)])
    unlabelled = w2(u.sample(1000, seed=1), whole)
    per_class = [w2(m.sample(1000, cond=k, seed=k), component(k, 1000, k)) for k in range(8)]
    print(f"\n## eight_gaussians_conditional ({BACKEND}, {m.step} steps; {seconds:.0f} s and "
          f"{plain_seconds:.0f} s of training)")
    print(f"unlabelled model, W2 on the whole target: {unlabelled:.4f}")
    print("per class: " + ", ".join(f"{v:.4f}" for v in per_class))
    print(f"largest per-class W2 / unlabelled W2: {max(per_class) / unlabelled:.3f} (bar 1.5)")


if __name__ == "__main__":
    if "digits" in SECTIONS:
        digits()
    if "eight" in SECTIONS:
        eight()
