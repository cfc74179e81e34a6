"""Convolutions written as large GEMMs plus cheap data movement (NHWC, HWIO kernels).

XLA's CPU convolution, and above all its gradients (the kernel gradient is a convolution
contracting over the whole batch), runs far below the machine's matmul rate for the shapes of
the pix2pix GAN (`talkingjax.models.gan`). Every function here computes exactly the function
of the named `lax`/Flax reference, but as one `dot` plus slicing / padding / adds that XLA
fuses into single loop passes. Plain autodiff of these ops is again GEMMs (the transposes of
slices and pads are pads and slices), so no custom VJP is needed: the code works unchanged
inside `jax.shard_map` with device-varying parameters, and supports forward mode too.

* `conv_im2col`: im2col + GEMM, [N Ho Wo, kh kw Cin] x [kh kw Cin, Cout]; the kernel is used
  in its stored (kh, kw, Cin) row order, so it is not transposed.
* `conv_transpose_4x4_s2`: Flax `ConvTranspose(k=4, s=2, padding 2)` (pix2pix's up layers) as
  one GEMM [N H W, Cin] x [Cin, 16 Cout] (every input pixel's 4 x 4 x Cout output patch)
  followed by an overlap-add (col2im) of those patches into the 2x upsampled output.
* `conv_small_out`: a stride-1 convolution with few output channels (the 7x7 heads) as one
  GEMM [N H W, Cin] x [Cin, kh kw Cout] followed by the shift-add of the kh kw tap maps; an
  im2col would be kh kw = 49 times the input size (822 MB at 256^2) for a tiny GEMM output.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Padding = Sequence[tuple[int, int]]


def conv_im2col(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: Padding):
    """`lax.conv_general_dilated(x, kernel, (stride,) * 2, padding)` (NHWC, HWIO) as a GEMM.

    Args:
      x: [N, H, W, Cin].
      kernel: [kh, kw, Cin, Cout].
      stride: the same in both spatial dims.
      padding: ((top, bottom), (left, right)) zero padding.

    Returns:
      [N, Ho, Wo, Cout].
    """
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    (pt, pb), (pl, pr) = padding
    ho = (h + pt + pb - kh) // stride + 1
    wo = (w + pl + pr - kw) // stride + 1
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    taps = [
        jax.lax.slice(
            xp,
            (0, i, j, 0),
            (n, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c),
            (1, stride, stride, 1),
        )
        for i in range(kh)
        for j in range(kw)
    ]
    # Column order (i, j, c) = the row order of the HWIO kernel reshaped to [kh kw Cin, Cout].
    cols = jnp.concatenate(taps, axis=-1).reshape(n * ho * wo, kh * kw * c)
    y = cols @ kernel.reshape(kh * kw * c, c_out)
    return y.reshape(n, ho, wo, c_out)


def _shift(t: jnp.ndarray, dy: int, dx: int, size: tuple[int, int] | None = None):
    """out[:, p, q] = t[:, p + dy, q + dx], zero outside t; output spatial size `size` (or t's).

    Each small tap map is padded and sliced on its own: XLA fuses that into the sum of the
    taps, whereas padding the whole [N, H, W, taps, C] GEMM output first materialises a copy
    of it (measured 6x slower for the outermost up layer).
    """
    h, w = t.shape[1:3]
    ho, wo = (h, w) if size is None else size
    lo_y, lo_x = max(-dy, 0), max(-dx, 0)
    hi_y, hi_x = max(ho + dy - h, 0), max(wo + dx - w, 0)
    tp = jnp.pad(t, ((0, 0), (lo_y, hi_y), (lo_x, hi_x), (0, 0)))
    y0, x0 = dy + lo_y, dx + lo_x
    return tp[:, y0 : y0 + ho, x0 : x0 + wo]


# Flax ConvTranspose(kernel 4, stride 2, padding ((2, 2), (2, 2))) is a convolution of the
# stride-dilated input padded by 2 with the (unflipped) kernel: y[o] = sum_a xdp[o + a] K[a]
# with xdp[2 i + 2] = x[i], so input i reaches outputs o = 2 i + 2 - a. Writing o = 2 p + r:
# r = 0 gets tap a = 2 of input p and tap a = 0 of input p - 1; r = 1 gets tap a = 1 of input
# p and tap a = 3 of input p + 1. (tap, input offset) pairs per output phase r:
_UP_TAPS = (((2, 0), (0, -1)), ((1, 0), (3, 1)))


@jax.custom_vjp
def conv_transpose_4x4_s2(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """Flax `ConvTranspose(Cout, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))` as a GEMM.

    Forward: P = x @ K ([N H W, Cin] x [Cin, 16 Cout]: each input pixel's 4 x 4 output
    patch), then the overlap-add y[2 p + r, 2 q + s] = sum of the 2 x 2 taps of `_UP_TAPS`.
    Backward (custom VJP): dP is one concatenation of 16 shifted phase maps of dy (an im2col
    of dy), then dx = dP @ K^T and dK = x^T @ dP, both GEMMs. (Plain autodiff turns the
    overlap-add into pads into the [N, H, W, 4, 4, Cout] layout, one strided 16-way select
    per element: ~2x slower for the outermost layer.) Reverse mode only; under
    `jax.shard_map` the kernel must have x's device-varying type
    (`talkingjax.models.layers._vary_like`).

    Args:
      x: [N, H, W, Cin].
      kernel: [4, 4, Cin, Cout] (Flax's layout, `transpose_kernel=False`).

    Returns:
      [N, 2 H, 2 W, Cout], without bias.
    """
    n, h, w, c = x.shape
    c_out = kernel.shape[-1]
    k = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, 16 * c_out)
    patches = (x.reshape(n * h * w, c) @ k).reshape(n, h, w, 4, 4, c_out)
    phases = []
    for r in range(2):
        row = []
        for s in range(2):
            terms = [
                _shift(patches[:, :, :, a, b], dy, dx)
                for a, dy in _UP_TAPS[r]
                for b, dx in _UP_TAPS[s]
            ]
            row.append(terms[0] + terms[1] + terms[2] + terms[3])
        phases.append(jnp.stack(row, axis=3))  # [N, H, W, 2 (s), Cout]
    y = jnp.stack(phases, axis=2)  # [N, H, 2 (r), W, 2 (s), Cout]
    return y.reshape(n, 2 * h, 2 * w, c_out)


# For each tap a of a 4-tap axis: (output phase r, input offset d) with a in _UP_TAPS[r].
_TAP_PHASE = {a: (r, d) for r in range(2) for a, d in _UP_TAPS[r]}


def _up_fwd(x, kernel):
    return conv_transpose_4x4_s2(x, kernel), (x, kernel)


def _up_bwd(res, g):
    x, kernel = res
    n, h, w, c = x.shape
    c_out = kernel.shape[-1]
    g6 = g.reshape(n, h, 2, w, 2, c_out)
    # dP[i, j, a, b] = g[2 (i - d_a) + r_a, 2 (j - d_b) + r_b]: the (r_a, r_b) phase map of
    # g shifted by (-d_a, -d_b); columns (a, b, Cout) as in the forward's K.
    maps = []
    for a in range(4):
        ra, da = _TAP_PHASE[a]
        for b in range(4):
            rb, db = _TAP_PHASE[b]
            maps.append(_shift(g6[:, :, ra, :, rb], -da, -db))
    dp = jnp.concatenate(maps, axis=-1).reshape(n * h * w, 16 * c_out)
    k = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, 16 * c_out)
    dx = (dp @ k.T).reshape(n, h, w, c)
    dk = x.reshape(n * h * w, c).T @ dp
    dk = jnp.transpose(dk.reshape(c, 4, 4, c_out), (1, 2, 0, 3))
    return dx, dk


conv_transpose_4x4_s2.defvjp(_up_fwd, _up_bwd)


_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_taps_first(x: jnp.ndarray, kernel: jnp.ndarray, padding: Padding) -> jnp.ndarray:
    """Stride-1 `lax.conv_general_dilated(x, kernel, (1, 1), padding)` for Cout ~ 1.

    y[o] = sum_t x[o + t - pad] K[t] = sum_t P[o + t - pad, t] with P = x @ K (all taps in one
    GEMM [N H W, Cin] x [Cin, kh kw Cout]), then the shift-add of the tiny tap maps; an im2col
    would copy the input kh kw times for a matrix-vector product. Plain autodiff: fine while
    kh kw Cout is small (PatchGAN's logit conv: 16); for the 4-output 7x7 heads the transpose
    of the 49 tap slices is slow, see `conv_small_out`.
    """
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    (pt, pb), (pl, pr) = padding
    ho, wo = h + pt + pb - kh + 1, w + pl + pr - kw + 1
    k = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, kh * kw * c_out)
    taps = (x.reshape(n * h * w, c) @ k).reshape(n, h, w, kh, kw, c_out)
    y = None
    for i in range(kh):
        for j in range(kw):
            term = _shift(taps[:, :, :, i, j], i - pt, j - pl, (ho, wo))
            y = term if y is None else y + term
    return y


def _im2col_shifted(t: jnp.ndarray, shifts, size: tuple[int, int]) -> jnp.ndarray:
    """[N Ho Wo, len(shifts) C]: the maps t[:, p + dy, q + dx] (zero outside t), tap-major."""
    n, _, _, c = t.shape
    cols = jnp.concatenate([_shift(t, dy, dx, size) for dy, dx in shifts], axis=-1)
    return cols.reshape(n * size[0] * size[1], len(shifts) * c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_small_out(x: jnp.ndarray, kernel: jnp.ndarray, padding: Padding) -> jnp.ndarray:
    """Stride-1 `lax.conv_general_dilated(x, kernel, (1, 1), padding)` for small Cout.

    Forward: XLA's convolution, which is fast here (~100 GFLOP/s for the 7x7x64x4 heads).
    Backward: XLA's kernel gradient of this shape ran at ~5 GFLOP/s (1 s per step at 256^2),
    so both gradients are GEMMs over one im2col of the small dy (kh kw Cout columns):
    with cols[p, (t, co)] = dy[p - t + pad, co], dx = cols @ K[(t, co), ci] and
    dK[t, ci, co] = x^T @ cols. Reverse mode only; under `jax.shard_map` the kernel must have
    x's device-varying type (`talkingjax.models.layers._vary_like`).

    Args:
      x: [N, H, W, Cin].
      kernel: [kh, kw, Cin, Cout].
      padding: ((top, bottom), (left, right)) zero padding (static).

    Returns:
      [N, Ho, Wo, Cout].
    """
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), tuple(padding), dimension_numbers=_NHWC)


def _small_out_fwd(x, kernel, padding):
    return conv_small_out(x, kernel, padding), (x, kernel)


def _small_out_bwd(padding, res, dy):
    x, kernel = res
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    (pt, _), (pl, _) = padding
    shifts = [(pt - i, pl - j) for i in range(kh) for j in range(kw)]
    cols = _im2col_shifted(dy, shifts, (h, w))  # [N H W, kh kw Cout]
    k = jnp.transpose(kernel, (0, 1, 3, 2)).reshape(kh * kw * c_out, c)
    dx = (cols @ k).reshape(n, h, w, c)
    dk = x.reshape(n * h * w, c).T @ cols  # [Cin, kh kw Cout]
    dk = jnp.transpose(dk.reshape(c, kh, kw, c_out), (1, 2, 0, 3))
    return dx, dk


conv_small_out.defvjp(_small_out_fwd, _small_out_bwd)


__all__ = ["conv_im2col", "conv_taps_first", "conv_small_out", "conv_transpose_4x4_s2"]
