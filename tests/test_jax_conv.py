"""The JAX backend's convolution on the CPU (backends/jax/runtime/conv.py, issue 17): matrix
products (Winograd, im2col, shifted outputs) in place of ``lax.conv_general_dilated``, which
XLA:CPU runs with its naive loop emitter inside a loop. The function, its derivatives in every
mode and under vmap must agree with lax's to float32 rounding, and the compiled training chunk
of a convnet model must hold no convolution."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from tfm.backends.jax.runtime import conv  # noqa: E402


# (batch, in, out, height, width, kh, kw): Winograd (3x3, in <= out), odd sizes (partial tiles),
# shifted outputs (in > out), im2col (other kernels, even ones padded as lax pads them)
CASES = [(3, 18, 16, 8, 8, 3, 3), (2, 16, 1, 8, 8, 3, 3), (2, 5, 7, 7, 9, 3, 3),
         (1, 3, 3, 1, 1, 3, 3), (2, 7, 5, 5, 4, 1, 1), (2, 4, 6, 7, 7, 5, 3),
         (2, 4, 6, 6, 6, 2, 4), (2, 6, 4, 5, 5, 3, 3)]


def _close(a, b, tol=2e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * max(1.0, np.max(np.abs(a)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_the_matmul_convolution_is_lax_convolution(case):
    b, i, o, hgt, wid, kh, kw = case
    rng = np.random.default_rng(sum(case))
    h, hd = (jnp.asarray(rng.normal(size=(b, i, hgt, wid)), jnp.float32) for _ in range(2))
    w, wd = (jnp.asarray(rng.normal(size=(o, i, kh, kw)) / np.sqrt(i * kh * kw), jnp.float32)
             for _ in range(2))
    g = jnp.asarray(rng.normal(size=(b, o, hgt, wid)), jnp.float32)

    def derived(f):
        return [
            f(h, w),
            *jax.grad(lambda h, w: (f(h, w) * g).sum(), (0, 1))(h, w),
            jax.grad(lambda w: (f(h, w) * g).sum())(w),  # the input not differentiated
            jax.jvp(f, (h, w), (hd, wd))[1],
            jax.jvp(lambda h: f(h, w), (h,), (hd,))[1],
            jax.linearize(lambda w: f(h, w), w)[1](wd),
            jax.vmap(lambda hi: f(hi[None], w)[0])(h),
            # second order: a potential network's loss, and forward over reverse
            jax.grad(lambda w: (jax.grad(lambda h: jnp.tanh(f(h, w)).sum())(h) ** 2).sum())(w),
            jax.jvp(jax.grad(lambda h: jnp.tanh(f(h, w)).sum()), (h,), (hd,))[1],
            *jax.jit(jax.grad(lambda h, w: (f(h, w) * g).sum(), (0, 1)))(h, w),
        ]

    # each side compiled as one program: op by op, the eager dispatch compiled every primitive
    # of every derivative on its own (10 s a case against 2 s)
    for got, want in zip(jax.jit(lambda: derived(conv.conv_matmul))(),
                         jax.jit(lambda: derived(conv.conv_lax))()):
        _close(got, want, 1e-4)


@pytest.mark.parametrize("batch", [1, 57, 300])
def test_large_batches_are_convolved_alike(batch):
    """Undifferentiated, im2col (a 5x5 kernel) convolves a large batch in blocks of images
    (padded to whole blocks): every image as if alone; Winograd and shifted outputs whole."""
    rng = np.random.default_rng(batch)
    h = jnp.asarray(rng.normal(size=(batch, 64, 8, 8)), jnp.float32)
    for cout, k in ((64, 3), (1, 3), (64, 5)):
        w = jnp.asarray(rng.normal(size=(cout, 64, k, k)) / (8 * k), jnp.float32)
        _close(jax.jit(conv.conv_matmul)(h, w), conv.conv_lax(h, w))


def test_bfloat16_convolves_at_bfloat16_precision():
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(4, 8, 8, 8)), jnp.bfloat16)
    w = jnp.asarray(rng.normal(size=(8, 8, 3, 3)) / 8, jnp.bfloat16)
    y = conv.conv_matmul(h, w)
    assert y.dtype == jnp.bfloat16
    _close(y, conv.conv_lax(h.astype(jnp.float32), w.astype(jnp.float32)), 3e-2)


def test_the_training_chunk_of_a_convnet_holds_no_convolution(tmp_path):
    """Inside the chunk's loop XLA:CPU would run a convolution with its naive emitter, 10-40x
    slower than the products that replace it (issue 17)."""
    if jax.default_backend() != "cpu":
        pytest.skip("the products replace the convolution on the CPU only")
    import tfm
    from tfm.backends.jax.runtime import train

    np.savez(tmp_path / "digits.npz",
             images=np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32))
    (tmp_path / "m.tfm").write_text(
        "import stdlib.interpolants\nmodel M {\n    dim [1, 8, 8]\n    base x0 ~ normal(0, 1)\n"
        '    target x1 ~ data("digits.npz", key = "images")\n    interpolant x_t = linear\n'
        "    network b = convnet(channels = 8, depth = 2)\n    objective { b ~ velocity }\n"
        "    sampler ode = euler(steps = 2)\n    train { batch 4 }\n}\n")
    m = tfm.load(tmp_path / "m.tfm", backend="jax", folder=tmp_path / "out")
    step = train.make_step(m.spec, m.objective.draw(m, None), m._update(),
                           jax.random.PRNGKey(0))
    chunk = jax.jit(lambda s: jax.lax.scan(step, s, None, length=2))
    lowered = chunk.lower(m._state()).as_text()  # the program XLA gets (compiling it: 12 s)
    assert "dot_general" in lowered and "convolution" not in lowered
    m.fit(steps=4, progress=False)
    assert np.isfinite(m.history).all() and m.sample(3).shape == (3, 1, 8, 8)
