"""Shared layers: a stacked LSTM with length masking and a hand-written backward pass.

The pose decoder runs a 3 x 256 LSTM over ~1200 MFCC rows, and its forward + backward pass
dominated a CPU training step. The stack therefore computes the same function as a plain
`lax.scan` LSTM (gate order i, f, g, o), organised for speed:

* Time-major layout throughout; each layer projects its whole input sequence with one large
  GEMM (`x @ W_ih`), so only `h @ W_hh` runs inside the recurrence.
* Each layer is a `jax.custom_vjp` with a cuDNN-style backward. Plain autodiff of the scan
  accumulates dW_hh with one small outer product per step (a 1 MB read-modify-write per step)
  and saves many per-step residuals. Here the forward saves, per step, the factors that turn
  (dh, dc) into gate gradients; the backward scan only carries (dh, dc) and does one
  [B, 4H] x [4H, H] matmul per step; dW_hh, dW_ih, db and the input gradient are then single
  large GEMMs / reductions over all steps.
* The [T, B, 4H] buffer holding the input projection is overwritten in place, first with the
  backward factors and then with the gate gradients, so the largest array of a layer is
  allocated once. On CPU every freshly allocated page costs a page fault, which was ~20% of
  the runtime.
* The four gate nonlinearities are one `tanh` over the whole [B, 4H] gate block with
  per-column scale/shift (sigmoid(x) = 0.5 + 0.5 * tanh(x / 2)), instead of four sliced
  sigmoid/tanh calls.

Measured on the 2-core CPU (jit grad of a sum of squares; best of several runs, which vary
with the machine's state): paper decoder (B=16, T=1224, D=13) 2.0-2.8 s -> 1.4-1.7 s with both
cores free and 3.1-4.1 s -> 2.0-2.1 s pinned to one core; encoder (B=48, T=300, D=6, loss on
the final states) 1.2-1.6 s -> 0.9-1.0 s and 2.2 s -> 1.5 s; the joint training step of
`benchmarks/pose_speed.py` 6.0 s -> 4.5 s (two cores) and 10.0 s -> 7.8 s (one core).
With `matmul_dtype="bfloat16"` every product takes bfloat16 operands and float32 sums (the
per-step backward product excepted: see `_lstm_layer_bwd`). Results match the autodiff scan
to float32 rounding (float32). Tried and dropped:
`scan(unroll=2..16)` (slower), a wavefront over layers (one scan, all layers per step: 5%
faster for the decoder with two free cores, slower on one core and for the encoder),
one merged GEMM for dW_ih and dW_hh, and moving the input projection into the scan.

Constraints kept: parameters `w_ih_{l}` [in, 4H], `w_hh_{l}` [H, 4H], `b_{l}` [4H]; the carry
and the weights handed to the custom VJP have the input's device-varying type, so the layer
works inside `jax.shard_map` (see `_vary_like`). Being a `custom_vjp`, the layer supports
reverse-mode differentiation (`grad`, `vjp`) but not forward mode (`jvp`, `jacfwd`).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _gate_affine(hidden: int, dtype):
    """Per-column (scale, shift) with act = scale * tanh(scale * pre) + shift.

    That is sigmoid for the i, f, o blocks (scale = shift = 0.5) and tanh for g (1, 0); the
    derivative is d act / d pre = scale**2 * (1 - tanh**2).
    """
    half = jnp.full((hidden,), 0.5, dtype)
    scale = jnp.concatenate([half, half, jnp.ones((hidden,), dtype), half])
    shift = jnp.concatenate([half, half, jnp.zeros((hidden,), dtype), half])
    return scale, shift


def matmul(a: jnp.ndarray, b: jnp.ndarray, dtype=None) -> jnp.ndarray:
    """`a @ b` of 2-D arrays, or with the operands rounded to `dtype` and float32 sums.

    On CPUs with AMX / AVX-512 BF16 (and on GPUs and TPUs) a bfloat16 x bfloat16 -> float32
    product runs several times faster than a float32 one; the sums stay float32, so only
    the operands lose precision (8 bits of mantissa). The gradient products round the
    incoming gradient to `dtype` the same way (plain autodiff would run them in float32).
    `dtype` None is the plain product.
    """
    if dtype is None:
        return a @ b
    return _mixed_matmul(a, b, dtype)


def _mixed(a, b, dtype):
    return jnp.matmul(a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _mixed_matmul(a, b, dtype):
    return _mixed(a, b, dtype)


def _mixed_matmul_fwd(a, b, dtype):
    a_lo, b_lo = a.astype(dtype), b.astype(dtype)
    # Zero-size markers carry the operands' dtypes (residuals must be arrays).
    return _mixed(a_lo, b_lo, dtype), (
        a_lo,
        b_lo,
        jnp.zeros((0,), a.dtype),
        jnp.zeros((0,), b.dtype),
    )


def _mixed_matmul_bwd(dtype, res, g):
    a_lo, b_lo, a_like, b_like = res
    g_lo = g.astype(dtype)
    return (
        _mixed(g_lo, b_lo.T, dtype).astype(a_like.dtype),
        _mixed(a_lo.T, g_lo, dtype).astype(b_like.dtype),
    )


_mixed_matmul.defvjp(_mixed_matmul_fwd, _mixed_matmul_bwd)


def _forward(x, w_ih, b, w_hh, mask, residuals: bool, dtype=None):
    """Runs one layer.

    Args:
      x: [T, B, D] inputs (time-major).
      w_ih, b, w_hh: the layer's parameters.
      mask: None or bool [T, B, 1]; masked steps keep the previous state.
      residuals: also compute what the backward needs (skipped when not differentiating).
      dtype: operand dtype of the matrix products (`matmul`); None = float32.

    Returns:
      hs [T, B, H] (the state after every step, i.e. the outputs), h_last, c_last, and the
      residuals (factors [T, B, 4H], extra [T, B, 2H]) described in `step`, or None.
    """
    steps, batch, d_in = x.shape
    hidden = w_hh.shape[0]
    scale, shift = _gate_affine(hidden, w_hh.dtype)
    # The bias is added inside the step (fused there for free) rather than in another pass
    # over this [T, B, 4H] array.
    proj = matmul(x.reshape(steps * batch, d_in), w_ih, dtype).reshape(steps, batch, 4 * hidden)
    w_rec = w_hh if dtype is None else w_hh.astype(dtype)  # cast once, not per step

    def step(carry, inp):
        h, c, buf = carry
        t, m = inp
        pre = jax.lax.dynamic_index_in_dim(buf, t, keepdims=False) + b + matmul(h, w_rec, dtype)
        th = jnp.tanh(pre * scale)
        i, f, g, o = jnp.split(th * scale + shift, 4, axis=-1)
        c_new = f * c + i * g
        tc = jnp.tanh(c_new)
        h_new = o * tc
        if m is not None:
            h_new = jnp.where(m, h_new, h)
            c_new = jnp.where(m, c_new, c)
        if not residuals:
            return (h_new, c_new, buf), h_new
        # With dc = dL/dc_new (including the path through h_new), the gate pre-activation
        # gradients are [dc, dc, dc, dh] * factors; dc = dc_in + dh * o * (1 - tc^2) and
        # dL/dc = dc * f. At masked steps these are computed but multiplied by zero.
        factors = jnp.concatenate([g, c, i, tc], axis=-1) * (scale * scale) * (1.0 - th * th)
        extra = jnp.concatenate([o * (1.0 - tc * tc), f], axis=-1)
        # Row t of the projection is no longer needed: store the factors in its place.
        buf = jax.lax.dynamic_update_index_in_dim(buf, factors, t, 0)
        return (h_new, c_new, buf), (h_new, extra)

    # Derived from the input (not jnp.zeros) so that under shard_map the carry has the
    # input's device-varying type, as scan requires.
    zeros = jnp.zeros_like(proj[0, :, :hidden])
    (h_last, c_last, factors), ys = jax.lax.scan(
        step, (zeros, zeros, proj), (jnp.arange(steps), mask)
    )
    if not residuals:
        return ys, h_last, c_last, None
    hs, extra = ys
    return hs, h_last, c_last, (factors, extra)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _lstm_layer(x, w_ih, b, w_hh, mask, dtype=None):
    """One LSTM layer: [T, B, D] -> (hs [T, B, H], h_last, c_last); `dtype` as `matmul`."""
    hs, h_last, c_last, _ = _forward(x, w_ih, b, w_hh, mask, residuals=False, dtype=dtype)
    return hs, h_last, c_last


def _lstm_layer_fwd(x, w_ih, b, w_hh, mask, dtype):
    hs, h_last, c_last, (factors, extra) = _forward(
        x, w_ih, b, w_hh, mask, residuals=True, dtype=dtype
    )
    return (hs, h_last, c_last), (x, w_ih, w_hh, mask, hs, factors, extra)


def _lstm_layer_bwd(dtype, res, cts):
    x, w_ih, w_hh, mask, hs, factors, extra = res
    d_hs, d_h_last, d_c_last = cts
    steps, batch, d_in = x.shape
    hidden = w_hh.shape[0]
    w_hh_t = w_hh.T
    is_o = (jnp.arange(4) == 3)[:, None]  # [4, 1]: which gate block takes dh instead of dc

    def step(carry, inp):
        # dh, dc: gradients w.r.t. the state after step t (from later steps / final state).
        dh, dc, buf = carry
        t, d_out, ex, m = inp
        dh = dh + d_out
        if m is None:
            dh_in, dc_in = dh, dc
        else:  # a masked step passes the state through: its gradient goes straight back
            dh_in = jnp.where(m, dh, 0.0)
            dc_in = jnp.where(m, dc, 0.0)
        dc_dh, f = jnp.split(ex, 2, axis=-1)
        dc_tot = dc_in + dh_in * dc_dh
        dgates = jnp.where(is_o, dh_in[:, None, :], dc_tot[:, None, :]).reshape(batch, -1)
        dgates = dgates * jax.lax.dynamic_index_in_dim(buf, t, keepdims=False)
        # The factors of step t are used up: store the gate gradients in their place.
        buf = jax.lax.dynamic_update_index_in_dim(buf, dgates, t, 0)
        # float32 product even with `dtype`: a bfloat16 cast of dgates here fuses with the
        # read of buf[t], and XLA then copies the whole buffer every step to update it in
        # place (25x slower at the paper size); the GEMMs after the loop use `dtype`.
        dh_prev = dgates @ w_hh_t
        dc_prev = dc_tot * f
        if m is not None:
            dh_prev = dh_prev + jnp.where(m, 0.0, dh)
            dc_prev = dc_prev + jnp.where(m, 0.0, dc)
        return (dh_prev, dc_prev, buf), None

    (_, _, dgates), _ = jax.lax.scan(
        step,
        (d_h_last, d_c_last, factors),
        (jnp.arange(steps), d_hs, extra, mask),
        reverse=True,
    )
    # Weight gradients: one GEMM each over all T * B rows instead of per-step accumulation.
    dg = dgates.reshape(steps * batch, 4 * hidden)
    d_b = jnp.sum(dg, axis=0)
    if dtype is not None:
        dg = dg.astype(dtype)  # once for the three GEMMs
    h_prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]], axis=0)
    d_w_hh = matmul(h_prev.reshape(steps * batch, hidden).T, dg, dtype)
    d_w_ih = matmul(x.reshape(steps * batch, d_in).T, dg, dtype)
    d_x = matmul(dg, w_ih.T, dtype).reshape(steps, batch, d_in)
    return d_x, d_w_ih, d_b, d_w_hh, None


_lstm_layer.defvjp(_lstm_layer_fwd, _lstm_layer_bwd)


def operand_dtype(name):
    """None for float32 (the plain products), else the numpy dtype (hashable, static)."""
    if name is None or jnp.dtype(name) == jnp.float32:
        return None
    return jnp.dtype(name)


def conv1d_matmul(lhs, rhs, window_strides, padding, *args, dtype=None, **kwargs):
    """`lax.conv_general_dilated` for 1-D NWC convolutions, written as one matrix product.

    A drop-in for flax `nn.Conv(conv_general_dilated=...)` (use `functools.partial(
    conv1d_matmul, dtype=...)`). With kernel K and stride s dividing K, the input is cut into
    blocks of s rows and output f reads blocks f .. f + K/s - 1, so the convolution is
    [B * F, K * C_in] @ [K * C_in, C_out] over those blocks laid side by side; the product
    then runs as `matmul(..., dtype)` (bfloat16 operands, float32 sums, the fast path of
    AMX / AVX-512 BF16 CPUs, which XLA takes for dots but not for convolutions). Other
    layouts (dilation, groups, s not dividing K) fall back to `lax.conv_general_dilated`
    with bfloat16 operands and float32 results.
    """
    plain = (
        lhs.ndim == 3
        and rhs.shape[0] % window_strides[0] == 0
        and kwargs.get("feature_group_count", 1) == 1
        and all(tuple(kwargs.get(k) or (1,)) == (1,) for k in ("lhs_dilation", "rhs_dilation"))
        and _is_nwc(kwargs.get("dimension_numbers"))
    )
    if not plain:
        cast = (lambda v: v) if dtype is None else (lambda v: v.astype(dtype))
        return jax.lax.conv_general_dilated(
            cast(lhs),
            cast(rhs),
            window_strides,
            padding,
            *args,
            preferred_element_type=jnp.float32,
            **kwargs,
        )
    kernel, c_in, c_out = rhs.shape
    stride = window_strides[0]
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(lhs.shape[1:2], rhs.shape[:1], window_strides, padding)
    ((lo, hi),) = padding
    x = jnp.pad(lhs, ((0, 0), (lo, hi), (0, 0)))
    frames = (x.shape[1] - kernel) // stride + 1
    per = kernel // stride  # blocks each output reads
    blocks = x[:, : (frames + per - 1) * stride].reshape(
        x.shape[0], frames + per - 1, stride * c_in
    )
    cols = jnp.concatenate([blocks[:, j : j + frames] for j in range(per)], axis=-1)
    out = matmul(cols.reshape(-1, kernel * c_in), rhs.reshape(kernel * c_in, c_out), dtype)
    return out.reshape(lhs.shape[0], frames, c_out)


def _is_nwc(dimension_numbers) -> bool:
    """Whether `lax.ConvDimensionNumbers` say NWC input, WIO kernel, NWC output."""
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, jax.lax.ConvDimensionNumbers):
        return (
            tuple(dimension_numbers.lhs_spec) == (0, 2, 1)
            and tuple(dimension_numbers.rhs_spec) == (2, 1, 0)
            and tuple(dimension_numbers.out_spec) == (0, 2, 1)
        )
    return tuple(dimension_numbers) == ("NWC", "WIO", "NWC")


def _vary_like(w, x):
    """`w` with the device-varying type of `x` under shard_map (a no-op value-wise).

    A custom VJP must return cotangents of its inputs' types. Replicated weights meeting
    per-device activations get per-device gradients, so the weights enter the custom VJP
    already varying; the transpose of this add then sums the gradients over devices, exactly
    as autodiff does where replicated weights meet varying values.
    """
    return w + jnp.zeros_like(x.ravel()[0])


class StackedLSTM(nn.Module):
    """`num_layers` LSTMs of width `hidden` (gate order i, f, g, o as in PyTorch).

    Attributes:
      hidden: state size of every layer.
      num_layers: depth.
      chrono_steps: if set, chrono initialisation of the gate biases (see `_bias_init`).
      matmul_dtype: operand dtype of every matrix product, forward and backward (`matmul`):
        None (float32) or e.g. "bfloat16"; parameters, state and sums stay float32.
    """

    hidden: int
    num_layers: int
    chrono_steps: int | None = None
    matmul_dtype: Any = None

    def _bias_init(self, key, shape, dtype=jnp.float32):
        """Gate biases: forget gate 1, or "chrono" initialisation for long memories.

        With a forget bias of 1 a cell keeps ~1/(1 - sigmoid(1)) = 4 steps of memory, and
        gradients through hundreds of steps vanish before training can lengthen it. Chrono
        initialisation (Tallec & Ollivier, ICLR 2018) draws forget biases log(U(1, T - 1)) and
        input biases their negatives, so memories span 1..T steps from the start; the motion
        encoder needs that to summarise a 300-frame clip in its final state.
        """
        h = self.hidden
        if self.chrono_steps is None:
            forget = jnp.ones((h,), dtype)
            inp = jnp.zeros((h,), dtype)
        else:
            forget = jnp.log(jax.random.uniform(key, (h,), dtype, 1.0, self.chrono_steps - 1.0))
            inp = -forget
        return jnp.concatenate([inp, forget, jnp.zeros((2 * h,), dtype)])

    @nn.compact
    def __call__(self, x: jnp.ndarray, lengths: jnp.ndarray | None = None):
        """Runs the stack.

        Args:
          x: [B, T, D] inputs.
          lengths: optional int [B]; steps at t >= length leave the state unchanged, so the
            final state is the state after each sequence's last real step (padding to length
            buckets does not change results).

        Returns:
          outputs [B, T, hidden] of the top layer, and the final states: a tuple of
          (h, c) pairs, one per layer, each [B, hidden].
        """
        steps = x.shape[1]
        mask = None
        if lengths is not None:
            mask = (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]  # [T, B, 1]
        finals = []
        h_seq = jnp.swapaxes(x, 0, 1)  # time-major for scan
        for layer in range(self.num_layers):
            w_ih = self.param(
                f"w_ih_{layer}", nn.initializers.lecun_normal(), (h_seq.shape[-1], 4 * self.hidden)
            )
            w_hh = self.param(
                f"w_hh_{layer}", nn.initializers.orthogonal(), (self.hidden, 4 * self.hidden)
            )
            b = self.param(f"b_{layer}", self._bias_init, (4 * self.hidden,))
            w_ih, b, w_hh = (_vary_like(w, h_seq) for w in (w_ih, b, w_hh))
            h_seq, h_last, c_last = _lstm_layer(
                h_seq, w_ih, b, w_hh, mask, operand_dtype(self.matmul_dtype)
            )
            finals.append((h_last, c_last))
        return jnp.swapaxes(h_seq, 0, 1), tuple(finals)
