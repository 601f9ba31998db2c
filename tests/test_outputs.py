"""What a run shows: image grids and trajectory strips for image-shaped models, `tfmc plot` of
what `tfmc sample` wrote, the NLL of images in bits per dimension, and training chunks cut by
time so that the progress bar moves and Ctrl-C is answered within seconds."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from tfm.backends.runtime import loop, plots
from tfm.driver import cli

ROOT = Path(__file__).resolve().parent.parent


def test_tile_lays_images_out_in_a_grid_with_gaps():
    images = np.zeros((5, 1, 2, 3))
    images[1] = 1.0  # the second image white, the others black
    picture = plots.tile(images, columns=3)
    assert picture.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert picture[0:2, 4:7].min() == 1.0 and picture[0:2, 0:3].max() == 0.0
    assert picture[2, 0] == 1.0  # the gap row
    colour = plots.tile(np.random.default_rng(0).normal(size=(4, 3, 4, 4)), columns=2)
    assert colour.shape == (9, 9, 3) and 0 <= colour.min() and colour.max() <= 1


def test_image_plots_are_written(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    plots.samples(tmp_path / "s.png", images, images[::-1], "digits")
    path = rng.normal(size=(11, 20, 1, 8, 8)).astype(np.float32)
    plots.trajectories(tmp_path / "t.png", path, "digits")
    assert (tmp_path / "s.png").stat().st_size > 1000 and (tmp_path / "t.png").stat().st_size > 1000


def test_plot_command_for_points_and_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "points.npy", rng.normal(size=(100, 2)).astype(np.float32))
    np.save(tmp_path / "images.npy", rng.normal(size=(10, 3, 4, 4)).astype(np.float32))
    assert cli.main(["plot", str(tmp_path / "points.npy"), "-o", str(tmp_path / "p.png")]) == 0
    assert cli.main(["plot", str(tmp_path / "images.npy"), "--reference",
                     str(tmp_path / "images.npy"), "-o", str(tmp_path / "i.png")]) == 0
    assert (tmp_path / "p.png").exists() and (tmp_path / "i.png").exists()
    assert cli.main(["plot", str(tmp_path / "images.npy"), "--reference",
                     str(tmp_path / "points.npy"), "-o", str(tmp_path / "x.png")]) == 1
    assert "holds samples of shape [2]" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path / "none.npy"), "-o", str(tmp_path / "x.png")]) == 1


def test_image_run_reports_bits_per_dimension_and_draws_grids(tmp_path):
    pytest.importorskip("torch")
    from tfm.driver.run import run

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", images=rng.normal(size=(64, 1, 4, 4)).astype(np.float32))
    (tmp_path / "m.tfm").write_text(
        'import stdlib.interpolants\nmodel Img {\n    base x0 ~ normal(0, 1)\n'
        '    target x1 ~ data("img.npz", key = "images")\n    interpolant x_t = linear\n'
        '    network b = convnet(channels = 4, depth = 1)\n    objective { b ~ velocity }\n'
        '    sampler ode = euler(steps = 4)\n    train { steps 4  batch 16 }\n}\n')
    metrics = run(tmp_path / "m.tfm", "torch", tmp_path / "run", progress=False,
                  log=lambda m: None)
    assert metrics["nll_bits_per_dim"] == pytest.approx(metrics["nll"] / (16 * np.log(2)))
    assert metrics["dequantisation"].startswith("none:")
    assert (tmp_path / "run" / "samples.png").exists()
    assert (tmp_path / "run" / "trajectories.png").exists()


def test_slow_chunks_are_cut_to_about_a_second():
    """Steps of 4 ms and log_every 1000: after the first chunk (a bound, with its compilation)
    the chunks are the power of two of steps that fits in CHUNK_SECONDS; all steps run once,
    and chunks still end at the log and checkpoint steps."""
    lengths, ends = [], []

    def run_chunk(state, length):
        lengths.append(length)
        time.sleep(0.004 * length)
        return state + length, np.zeros(length)

    loop.train(run_chunk, 0, 0, 2500, 1000, 1000, lambda s, losses: ends.append(s),
               lambda s: None, pipelined=False)
    assert sum(lengths) == 2500 and lengths[0] == 1000
    assert max(lengths[1:]) <= 256 and 1000 in ends and 2000 in ends
    fast = []
    loop.train(lambda s, n: (fast.append(n) or s + n, np.zeros(n)), 0, 0, 300, 100, 1000,
               lambda s, losses: None, lambda s: None, pipelined=False)
    assert fast == [100, 100, 100]  # fast steps: chunks as before


def test_where_lengths_are_free_the_first_chunk_is_short():
    lengths = []

    def run_chunk(state, length):
        lengths.append(length)
        time.sleep(0.004 * length)
        return state + length, np.zeros(length)

    loop.train(run_chunk, 0, 0, 1000, 1000, 1000, lambda s, losses: None, lambda s: None,
               pipelined=False, free_lengths=True)
    assert lengths[0] == loop.FIRST_CHUNK and max(lengths[1:]) <= 256 and sum(lengths) == 1000


def test_a_jax_chunk_of_any_length_runs_one_compiled_loop(tmp_path):
    """JAX's chunk runner takes any length up to log_every with one compilation, so that the
    first chunk is short (Ctrl-C is seen after FIRST_CHUNK steps, not log_every): 3 steps and
    then 5 end where one chunk of 8 does, with the same losses."""
    pytest.importorskip("jax")
    import tfm

    path = tmp_path / "m.tfm"
    path.write_text((ROOT / "examples" / "gaussian_to_gaussian.tfm").read_text())
    a = tfm.load(path, folder=tmp_path / "a")
    run = a._chunk_runner(100, None)
    state, first = run(a._state(), 3)
    state, second = run(state, 5)
    b = tfm.load(path, folder=tmp_path / "b")
    state_b, together = b._chunk_runner(100, None)(b._state(), 8)
    np.testing.assert_array_equal(np.concatenate([first, second]), np.asarray(together))
    a._set_state(state)
    b._set_state(state_b)
    assert a.step == b.step == 8
    for k, v in a.params.items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(b.params[k]))
    # so a fit's first chunk is FIRST_CHUNK steps, not log_every: Ctrl-C is seen after those
    lengths, runner = [], a._chunk_runner

    def recorded(total, data):
        run_chunk = runner(total, data)
        return lambda state, length: (lengths.append(length), run_chunk(state, length))[1]
    a._chunk_runner = recorded
    a.fit(steps=40, progress=False)
    assert lengths[0] == loop.FIRST_CHUNK and sum(lengths) == 32 and a.step == 40


def test_compiled_chunks_keep_one_length_aligned_to_the_log_steps():
    """Where each new length compiles (a runner compiled per length), slow steps give one chunk
    length, a divisor of log_every, chosen once: the first chunk's and that one (and none
    other) compile."""
    lengths = []

    def run_chunk(state, length):
        lengths.append(length)
        time.sleep(0.004 * length)
        return state + length, np.zeros(length)

    loop.train(run_chunk, 0, 0, 1000, 100, 500, lambda s, losses: None, lambda s: None,
               pipelined=False)
    assert sum(lengths) == 1000 and len(set(lengths)) <= 2 and 100 % lengths[-1] == 0


@pytest.mark.parametrize("value, points", [(None, 2000), ("500", 500), (" 64 ", 64)])
def test_the_number_of_evaluation_points_comes_from_the_environment(monkeypatch, value, points):
    """TFM_EVAL_POINTS sets how many samples `tfmc run` evaluates with (the suite sets 500)."""
    from tfm.driver import run

    if value is None:
        monkeypatch.delenv("TFM_EVAL_POINTS", raising=False)
    else:
        monkeypatch.setenv("TFM_EVAL_POINTS", value)
    assert run.eval_points() == points
    assert run.nll_points(points) == min(1000, points // 2)


@pytest.mark.parametrize("value", ["1", "many", "2.5", "-3"])
def test_a_bad_number_of_evaluation_points_is_a_clear_error(monkeypatch, value):
    from tfm.driver import run
    from tfm.errors import TfmSemanticError

    monkeypatch.setenv("TFM_EVAL_POINTS", value)
    with pytest.raises(TfmSemanticError,
                       match=rf"(?s)TFM_EVAL_POINTS is '{re.escape(value)}'.*at least 2"):
        run.eval_points()
