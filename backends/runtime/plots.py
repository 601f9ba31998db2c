"""Plots of a run (matplotlib, Agg): samples against reference data, trajectories, the loss.
Points of more than two dimensions are shown by their first two coordinates; image-shaped
samples (C, H, W) as a grid of the first channel."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def samples(path: str | Path, generated: np.ndarray, reference: np.ndarray | None,
            title: str) -> None:
    path = Path(path)
    if generated.ndim == 4:
        images = generated[:36, 0]
        fig, axes = plt.subplots(6, 6, figsize=(6, 6))
        for ax, img in zip(axes.flat, images):
            ax.imshow(img, cmap="gray")
            ax.axis("off")
        fig.suptitle(title)
        _save(fig, path)
        return
    g = generated.reshape(len(generated), -1)
    fig, ax = plt.subplots(figsize=(5, 5))
    if reference is not None:
        r = reference.reshape(len(reference), -1)
        ax.scatter(r[:, 0], r[:, 1 % r.shape[1]], s=2, alpha=0.4, label="target", c="tab:gray")
    ax.scatter(g[:, 0], g[:, 1 % g.shape[1]], s=2, alpha=0.6, label="samples", c="tab:blue")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)
    ax.set_aspect("equal", adjustable="datalim")
    _save(fig, path)


def trajectories(path: str | Path, paths: np.ndarray, title: str, count: int = 200) -> None:
    """paths: (steps + 1, N, ...) states along the ODE."""
    p = paths[:, :count].reshape(paths.shape[0], min(count, paths.shape[1]), -1)
    if p.shape[2] < 2:
        return
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(p[:, :, 0], p[:, :, 1], lw=0.4, alpha=0.5, c="tab:olive")
    ax.scatter(p[0, :, 0], p[0, :, 1], s=3, c="black", label="t = 0")
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=3, c="tab:blue", label="t = 1")
    ax.legend(loc="upper right", markerscale=3)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    _save(fig, Path(path))


def loss(path: str | Path, history: np.ndarray, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(history) + 1)
    ax.plot(steps, history, lw=0.5, alpha=0.4, c="tab:blue", label="loss")
    if len(history) >= 50:
        w = max(10, len(history) // 50)
        smooth = np.convolve(history, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, c="tab:red", lw=1.2, label=f"mean of {w}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if np.all(history > 0) else "linear")
    ax.legend()
    ax.set_title(title)
    _save(fig, Path(path))
