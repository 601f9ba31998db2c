"""The convolution of the ``convnet`` layers in JAX: stride 1, "SAME" padding, NCHW images and
OIHW kernels (PyTorch's layouts), the function ``lax.conv_general_dilated`` computes.

On the CPU it is computed with matrix products instead (issue 17; bench/conv.py). XLA:CPU runs
a convolution fast (YNNPACK/Eigen) only in the NHWC layout. At the top level of a compiled
program its layout assignment turns an NCHW convolution into an NHWC one, but not inside the
body of a loop: in the ``lax.scan`` of a training chunk or the loop of a sampler the
convolution, and the two that autodiff derives from it (the input and the weight gradients, in
dimension orders that no layout makes fast), fall back to XLA's naive loop emitter, 10-40x
slower than a product of the same size (a training step 1.7-3.5 s instead of 0.05 s). Matrix
products run at full speed everywhere, so on the NHWC image a convolution becomes:

- Winograd's F(2x2, 3x3) for a 3x3 kernel (float32, float64; no more input than output
  channels): 16 products of (tiles, I) by (I, O) matrices, 2.25x fewer multiplications than
  im2col;
- ``im2col`` for other kernels and for bfloat16 (Winograd's transforms would round there): the
  kh * kw shifted copies of the zero-padded input side by side, (B H W, kh kw I), times the
  kernel as a (kh kw I, O) matrix;
- ``shifted outputs`` when there are more input than output channels (the last layer of a
  convnet): the input (B H W, I) times the kernel as an (I, kh kw O) matrix, and the sum of the
  kh * kw shifted slices of the product.

The derivatives of Winograd's and of the shifted outputs are autodiff's. Autodiff would compute
im2col's input gradient as a product with kh * kw * O wide outputs and their shifted sum (twice
the time of the forward product), so im2col has a derivative rule (``custom_jvp``) that writes
the tangent in the input as shifted outputs, whose transpose is again an im2col (of the output
gradient); forward and reverse mode, higher orders and vmap all go through the rule.
Undifferentiated (sampling), im2col convolves a large batch in blocks of images one after the
other (``lax.map``), so that the product finds its copies in the cache.

The sums run in another order than a direct convolution's, so results agree with
``lax.conv_general_dilated`` to float32 rounding (about 1e-6 relative), not bit for bit. On other
platforms (GPU) the convolution stays ``lax.conv_general_dilated``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def _pads(k: int) -> tuple[int, int]:
    """"SAME" padding of a stride-1 window of k (as lax pads it: the odd one at the end)."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


def _offsets(w) -> list[tuple[int, int]]:
    return [(i, j) for i in range(w.shape[2]) for j in range(w.shape[3])]


def _cols(hn, w):
    """The kh * kw shifted copies of hn (B, H, W, I) (zero-padded), side by side in channels:
    (B H W, kh kw I), in the order (i, j, c) of ``_cols_kernel``."""
    batch, height, width, cin = hn.shape
    hp = jnp.pad(hn, ((0, 0), _pads(w.shape[2]), _pads(w.shape[3]), (0, 0)))
    cols = jnp.concatenate([hp[:, i:i + height, j:j + width, :] for i, j in _offsets(w)], axis=-1)
    return cols.reshape(batch * height * width, len(_offsets(w)) * cin)


def _cols_kernel(w):
    """w (O, I, kh, kw) as the (kh kw I, O) matrix of ``_cols``."""
    cout, cin, kh, kw = w.shape
    return jnp.transpose(w, (2, 3, 1, 0)).reshape(kh * kw * cin, cout)


def _shifted(hn, w, transposed: bool = False):
    """The convolution as shifted outputs: (B, H, W, I) -> (B, H, W, O). Written so that its
    transpose in hn (the input gradient) is an im2col of the output gradient: the product's
    columns are split (transpose: a concatenation) before they are padded and sliced, and with
    ``transposed`` the product takes the kernel as the transpose of a (kh kw O, I) matrix, so
    that the transposed product takes it as it is (a product is fastest with its right
    operand (K, N) row-major)."""
    batch, height, width, cin = hn.shape
    cout, _, kh, kw = w.shape
    rows = hn.reshape(batch * height * width, cin)
    if transposed:
        z = rows @ jnp.transpose(w, (2, 3, 0, 1)).reshape(kh * kw * cout, cin).T
    else:
        z = rows @ jnp.transpose(w, (1, 2, 3, 0)).reshape(cin, kh * kw * cout)
    parts = jax.lax.split(z, (cout,) * (kh * kw), axis=1)
    pads = ((0, 0), _pads(kh), _pads(kw), (0, 0))
    return sum(jnp.pad(part.reshape(batch, height, width, cout), pads)[:, i:i + height,
                                                                      j:j + width, :]
               for part, (i, j) in zip(parts, _offsets(w)))


def _im2col_direct(hn, w):
    return (_cols(hn, w) @ _cols_kernel(w)).reshape(hn.shape[:3] + (w.shape[0],))


BLOCK_BYTES = 4 << 20  # the im2col copies of one block of images (see _im2col)


@jax.custom_jvp
def _im2col(hn, w):
    """The convolution by im2col: (B, H, W, I) -> (B, H, W, O). Undifferentiated (sampling),
    in blocks of images whose copies take at most about BLOCK_BYTES, one after the other
    (``lax.map``), so that the product reads them from the cache, not from memory: 25% faster
    on 500 8 x 8 images of 64 channels. (In training the whole batch at once is faster.)"""
    batch = hn.shape[0]
    per_image = hn.shape[1] * hn.shape[2] * w.shape[2] * w.shape[3] * hn.shape[3] * \
        hn.dtype.itemsize
    blocks = -(-batch * per_image // BLOCK_BYTES)
    if blocks < 2:
        return _im2col_direct(hn, w)
    size = -(-batch // blocks)  # images per block, the batch padded with zeros to whole blocks
    padded = jnp.pad(hn, ((0, blocks * size - batch), (0, 0), (0, 0), (0, 0)))
    y = jax.lax.map(lambda block: _im2col_direct(block, w),
                    padded.reshape((blocks, size) + hn.shape[1:]))
    return y.reshape((blocks * size,) + y.shape[2:])[:batch]


def _im2col_jvp(primals, tangents):
    """The tangent in the input as shifted outputs (its transpose, the input gradient, is an
    im2col of the output gradient); the tangent in the kernel on the forward pass's copies."""
    hn, w = primals
    hn_dot, w_dot = tangents
    cols = _cols(hn, w)
    shape = hn.shape[:3] + (w.shape[0],)
    y = (cols @ _cols_kernel(w)).reshape(shape)
    parts = []
    if not isinstance(hn_dot, SymbolicZero):
        parts.append(_shifted(hn_dot, w, transposed=True))
    if not isinstance(w_dot, SymbolicZero):
        parts.append((cols @ _cols_kernel(w_dot)).reshape(shape))
    return y, sum(parts[1:], parts[0]) if parts else jnp.zeros_like(y)


_im2col.defjvp(_im2col_jvp, symbolic_zeros=True)


# Winograd F(2x2, 3x3) (Lavin and Gray, 2016): a 3x3 convolution on 2x2 output tiles, each from a
# 4x4 input tile, as 16 products of (tiles, I) by (I, O) matrices: 2.25x fewer multiplications
# than im2col, and 16/9 times the input copied instead of 9 times.
_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))  # input tile transform
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))  # kernel transform
_BATCHED = (((2,), (1,)), ((0,), (0,)))  # (16, N, K) x (16, K, M) -> (16, N, M)


def _combine(coefs, terms):
    """sum(c * t) over the nonzero coefficients, written with as few operations as it takes:
    where they are all +-s, as s times a sum and difference of the terms (the Winograd
    transforms' rows). A product by 1 is an operation too, which XLA removes only after its
    passes have gone over it: the training chunk of examples/digits_unet.tfm (quick form) has
    13,938 operations instead of 20,073."""
    nonzero = sorted(((c, t) for c, t in zip(coefs, terms) if c), key=lambda ct: ct[0] < 0)
    scale = abs(nonzero[0][0])
    if any(abs(c) != scale for c, _ in nonzero):
        return sum(c * t for c, t in nonzero)
    total = nonzero[0][1] if nonzero[0][0] > 0 else -nonzero[0][1]
    for c, t in nonzero[1:]:
        total = total + t if c > 0 else total - t
    return total if scale == 1 else total * scale


def _tiles(n: int) -> int:
    return -(-n // 2)


def _wino_in(hn):
    """(B, H, W, I) -> (16, B th tw, I): B^T d B of every 4x4 tile d (stride 2) of the
    zero-padded image (th, tw: the 2x2 output tiles down and across)."""
    batch, height, width, cin = hn.shape
    th, tw = _tiles(height), _tiles(width)
    hp = jnp.pad(hn, ((0, 0), (1, 2 * th + 1 - height), (1, 2 * tw + 1 - width), (0, 0)))

    def transform(rows):  # B^T applied to the 4 rows (or columns) of the tiles
        return [_combine(coefs, rows) for coefs in _BT]

    out = []
    for u in transform([hp[:, a:a + 2 * th - 1:2] for a in range(4)]):
        out += transform([u[:, :, a:a + 2 * tw - 1:2] for a in range(4)])
    return jnp.stack(out).reshape(16, batch * th * tw, cin)


def _wino_kernel(w):
    """(O, I, 3, 3) -> (16, I, O): G g G^T of every (o, i)."""
    def transform(taps):  # G applied to the 3 rows (or columns) of the kernels
        return [_combine(coefs, taps) for coefs in _G]

    k = jnp.transpose(w, (2, 3, 1, 0))  # (3, 3, I, O)
    u = []
    for row in transform([k[a] for a in range(3)]):
        u += transform([row[b] for b in range(3)])
    return jnp.stack(u)


def _wino_out(m, shape):
    """(16, B th tw, O) -> (B, H, W, O): A^T m A of every tile, the 2x2 tiles put together."""
    batch, height, width, cout = shape
    th, tw = _tiles(height), _tiles(width)
    m = m.reshape(4, 4, batch, th, tw, cout)
    rows = [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]  # A^T over the tile's rows
    y = jnp.stack([jnp.stack([r[0] + r[1] + r[2], r[1] - r[2] - r[3]], axis=-2)
                   for r in rows], axis=2)  # (B, th, 2, tw, 2, O)
    return y.reshape(batch, 2 * th, 2 * tw, cout)[:, :height, :width]


def _winograd(hn, w):
    """The 3x3 convolution by Winograd's F(2x2, 3x3): (B, H, W, I) -> (B, H, W, O). Autodiff's
    derivatives are products of the same transforms (a derivative rule that passed the
    products their operands row-major, as in _im2col, measured no faster: the copies cost what
    the products save)."""
    m = jax.lax.dot_general(_wino_in(hn), _wino_kernel(w), _BATCHED)
    return _wino_out(m, hn.shape[:3] + (w.shape[0],))


def conv_lax(h, w):
    return jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))


def conv_matmul(h, w):
    """The convolution by matrix products (module docstring): h (B, I, H, W), w (O, I, kh, kw)
    -> (B, O, H, W)."""
    hn = jnp.transpose(h, (0, 2, 3, 1))  # NHWC: channels contiguous, the rows of the products
    if w.shape[1] > w.shape[0]:
        y = _shifted(hn, w)
    elif w.shape[2:] == (3, 3) and h.dtype in (jnp.float32, jnp.float64):
        y = _winograd(hn, w)
    else:
        y = _im2col(hn, w)
    return jnp.transpose(y, (0, 3, 1, 2))


def conv2d(h, w):
    """The stride-1 "SAME" convolution of h (B, I, H, W) by w (O, I, kh, kw): (B, O, H, W)."""
    return conv_matmul(h, w) if jax.default_backend() == "cpu" else conv_lax(h, w)
