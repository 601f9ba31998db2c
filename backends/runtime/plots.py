"""Plots of a run (matplotlib, Agg): samples against reference data, trajectories, the loss.
Points of more than two dimensions are shown by their first two coordinates; image-shaped
samples (C, H, W) as grids (samples beside data; trajectories as strips), one channel in grey
and three in colour."""

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


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Images (n, C, H, W) as one picture: a grid of ``columns`` columns with a 1-pixel gap,
    (rows (H + 1), columns (W + 1)) for one channel, with a last axis of 3 for three. Other
    channel counts show their first channel. Values are scaled to [0, 1] by the images' joint
    range (a constant array is mid-grey)."""
    x = np.asarray(images, dtype=np.float64)
    x = x[:, :3] if x.shape[1] == 3 else x[:, :1]
    finite = x[np.isfinite(x)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    x = np.clip((np.nan_to_num(x, nan=low) - low) / (high - low), 0, 1) if high > low \
        else np.full_like(x, 0.5)
    n, c, h, w = x.shape
    rows = -(-n // columns)
    out = np.ones((c, rows * (h + 1) - 1, columns * (w + 1) - 1))
    for k in range(n):
        r, col = divmod(k, columns)
        out[:, r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = x[k]
    return out[0] if c == 1 else np.moveaxis(out, 0, -1)


def _show(ax, picture: np.ndarray, title: str) -> None:
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")


def samples(path: str | Path, generated: np.ndarray, reference: np.ndarray | None,
            title: str) -> None:
    """2-D points over the reference's, or, for image-shaped samples (n, C, H, W), a grid of
    samples beside a grid of data (one channel in grey, three as colour)."""
    path = Path(path)
    if generated.ndim == 4:
        shown = [(generated[:64], "samples")]
        if reference is not None and np.ndim(reference) == 4:
            shown.append((np.asarray(reference)[:64], "data"))
        fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.6), squeeze=False)
        for ax, (images, name) in zip(axes[0], shown):
            _show(ax, tile(images, 8), name)
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
    """paths: (steps + 1, N, ...) states along the ODE: lines in the plane of the first two
    coordinates, or, for images (steps + 1, N, C, H, W), strips: a row per sample, a column per
    time (8 evenly spaced states from the first to the last)."""
    if paths.ndim == 5:
        times = np.unique(np.linspace(0, paths.shape[0] - 1, 8).round().astype(int))
        rows = min(6, paths.shape[1])
        strips = np.stack([paths[i, :rows] for i in times], axis=1)  # (rows, times, C, H, W)
        fig, ax = plt.subplots(figsize=(1.1 * len(times) + 0.5, 1.1 * rows + 0.6))
        _show(ax, tile(strips.reshape((-1,) + paths.shape[2:]), len(times)),
              f"{title}: state k of {paths.shape[0] - 1}, k = " + ", ".join(map(str, times)))
        _save(fig, Path(path))
        return
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


# sampling from an energy (docs/sampling.md)

def samples_on_energy(path: str | Path, samples: np.ndarray, grid, title: str) -> None:
    """Samples (n, d) by their first two coordinates over filled contours of the energy U;
    ``grid`` = (xs (gx,), ys (gy,), U (gy, gx)) on the plane of those coordinates, or None.
    The contours are of log(1 + U - min U), so that the wells stay visible beside high walls."""
    s = np.asarray(samples, dtype=np.float64)
    s = s.reshape(len(s), -1)
    fig, ax = plt.subplots(figsize=(5, 5))
    if grid is not None:
        xs, ys, u = (np.asarray(v, dtype=np.float64) for v in grid)
        finite = u[np.isfinite(u)]
        if finite.size and finite.max() > finite.min():
            shown = np.log1p(np.where(np.isfinite(u), u, finite.max()) - finite.min())
            cs = ax.contourf(xs, ys, shown, levels=25, cmap="viridis_r", alpha=0.85)
            fig.colorbar(cs, ax=ax, shrink=0.8, label="log(1 + U - min U)")
    ax.scatter(s[:, 0], s[:, 1 % s.shape[1]], s=2, alpha=0.5, c="tab:red", label="samples")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]" if s.shape[1] > 1 else "x[0]")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    _save(fig, Path(path))


def traces(path: str | Path, samples: np.ndarray, title: str, chains: int = 4,
           coords: int = 2) -> None:
    """Trace plots of the first ``chains`` chains for the first ``coords`` coordinates of chains
    (draws, chains, *shape), one panel per coordinate."""
    s = np.asarray(samples, dtype=np.float64)
    s = s.reshape(s.shape[0], s.shape[1], -1)
    chains, coords = min(chains, s.shape[1]), min(coords, s.shape[2])
    fig, axes = plt.subplots(coords, 1, figsize=(7, 1.8 * coords + 0.6), sharex=True, squeeze=False)
    draws = np.arange(s.shape[0])
    for j, ax in enumerate(axes[:, 0]):
        for c in range(chains):
            ax.plot(draws, s[:, c, j], lw=0.5, alpha=0.8, label=f"chain {c}")
        ax.set_ylabel(f"x[{j}]")
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("draw")
    axes[0, 0].legend(loc="upper right", fontsize="small", ncol=chains)
    _save(fig, Path(path))


def log_Z_curve(path: str | Path, temperatures, log_Z, stderr, truth: float | None,
                title: str) -> None:
    """log Z estimates with error bars (standard errors; None or NaN: none) against the number
    of temperatures (log scale), and the true log Z as a horizontal line when given."""
    k = np.asarray(temperatures, dtype=np.float64)
    lz = np.asarray(log_Z, dtype=np.float64)
    err = (None if stderr is None else
           np.nan_to_num(np.array([np.nan if e is None else e for e in stderr], dtype=np.float64)))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.errorbar(k, lz, yerr=err, fmt="o-", capsize=3, c="tab:blue", label="estimate")
    if truth is not None:
        ax.axhline(truth, c="tab:red", ls="--", lw=1, label="truth")
    ax.set_xscale("log")
    ax.set_xlabel("temperatures")
    ax.set_ylabel("log Z")
    ax.legend()
    ax.set_title(title)
    _save(fig, Path(path))


def histogram(path: str | Path, values, title: str, xlabel: str) -> None:
    """A density histogram of values (n,), e.g. the magnetisation of lattice fields."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(v, bins=min(60, max(10, int(np.sqrt(max(v.size, 1))))), density=True,
            color="tab:blue", alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    _save(fig, Path(path))
