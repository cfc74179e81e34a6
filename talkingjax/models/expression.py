"""Paper 000 Sec. IV-A2 (Eq. 6) and paper 001 Sec. 3.2 (Eq. 1): the audio-to-expression regressor.

Every video frame t gets its 280 ms MFCC window s(t) (28 rows x 12 cepstra; the log-energy
column 0 of the 13 is dropped, as the 2020 reference code does with `mfcc[:, 1:]`). An audio
encoder E maps each window to a 256-d feature; a 3 x 256 LSTM R runs over the frames and a
linear head reads the expression coefficients beta(t) (paper 000: 64) and, in the joint variant
of paper 001, the 6 pose values p(t) (3 Euler angles in radians, 3 translations).

Reference sizes (../shared/docs/reference-facts.md and the 2020 code's `ATC_net`):

  28 x 12 x 1 -> conv 64 -> conv 128 -> maxpool 3x3 / (1, 2) -> conv 256 -> conv 256
  -> conv 512 -> maxpool 3x3 / (2, 2) -> flatten 12 x 2 x 512 = 12288 -> FC 2048 -> FC 256
  -> LSTM 256 x 3 -> linear (64, or 64 + 6)

Convs are 3x3, stride 1, zero padding 1 ("SAME"), no bias (BatchNorm follows, as in the
reference's `conv2d` helper), then BatchNorm + ReLU; both FC layers are followed by ReLU. The
max-pools use no padding ("VALID", PyTorch's default): 28 x 12 -> 26 x 5 after the first
(H: (28 - 3) / 1 + 1 = 26, W: floor((12 - 3) / 2) + 1 = 5) and 26 x 5 -> 12 x 2 after the
second (floor(23 / 2) + 1 = 12, floor(2 / 2) + 1 = 2), hence 512 * 12 * 2 = 12288 = the
reference's `1024 * 12`. With "SAME" pooling the flatten would be 14 x 3 x 512 instead. The
flatten order here is (H, W, C) (NHWC); PyTorch's is (C, H, W), so porting the reference's
first FC weight needs that permutation. 29.4 M parameters, ~0.65 GFLOP per video frame
(`flops_per_frame`), nearly all of it in the last three convolutions.

No input scaling is needed (unlike the LSTM of the head-motion decoder): the first conv is
followed by BatchNorm, which removes the scale of the raw MFCCs.

Speed (benchmarks/expression_speed.py, 2-core AMD EPYC, float32). The encoder sees every window
independently, so it runs on all B * T windows as one batch (where the FLOPs are); only the
256-d features go through the recurrence (`StackedLSTM`, ~3 MFLOP per frame). Measured with
the machine otherwise idle: 5.8-6.2 s for 60 s of speech (~10x real time, 150-165 GFLOP/s;
PyTorch eager: 8.7 s) and 3.4-3.9 s per training step at 16 x 16 frames (~135 GFLOP/s;
PyTorch: 4.5 s). Plain Flax (nn.Conv, nn.max_pool) takes 7.4 s and 6.2 s. What it took:
* `conv3x3`: XLA's CPU convolution computes the kernel gradient at 10-30 GFLOP/s (2.5 s of
  a training step); as 9 GEMMs per layer it runs at 120-150 GFLOP/s.
* Convolutions in chunks of 8-32 windows (activations stay in cache: 140 -> 175-190 GFLOP/s
  on the 26 x 5 layers), and an im2col GEMM for the 28 x 12 layer, where XLA's convolution
  manages only 75-90 GFLOP/s (`_conv_plan`).
* `max_pool3x3`: the autodiff gradient of `reduce_window` (`select_and_scatter`) took 0.8 s
  per training step; recording the winning tap (int8) and routing dy with selects + strided
  pads takes ~0.05 s. (A first version found the maxima again by comparing x with the pooled
  values; under jit XLA recomputed x with different rounding and gradients were silently
  lost. tests/test_expression_model.py compares the encoder with stock Flax layers.)
* BatchNorm is Flax's (with `use_running_average=not train`, XLA fuses the inference-mode
  affine + ReLU into one elementwise pass); a hand-fused BatchNorm + ReLU with a custom
  backward was no faster. XLA_FLAGS for oneDNN / XNNPACK / YNNPACK convolutions did not help.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from talkingjax import audio
from talkingjax.models.layers import StackedLSTM, _vary_like

NUM_CEPSTRA_IN = audio.NUM_CEPSTRA - 1  # 12: the energy column is dropped
POSE_DIM = 6
REFERENCE_CONV_CHANNELS = (64, 128, 256, 256, 512)
REFERENCE_FC = (2048, 256)
# (index of the conv the pool follows, strides); both pools are 3x3 without padding.
REFERENCE_POOLS = ((1, (1, 2)), (4, (2, 2)))
POOL_WINDOW = (3, 3)


_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=_NHWC)


def _im2col_conv(x, k):
    """The same convolution as one GEMM over the 9 shifted copies of x (channels inner)."""
    n, h, w, c_in = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, i : i + h, j : j + w] for i in range(3) for j in range(3)], -1)
    return (cols.reshape(n * h * w, 9 * c_in) @ k.reshape(9 * c_in, -1)).reshape(n, h, w, -1)


def _conv_plan(h: int, w: int, c_in: int) -> tuple[str, int]:
    """(method, frames per chunk) for a 3x3 convolution of [N, h, w, c_in] inputs.

    Measured on the 2-core AMD EPYC (AVX-512) this project runs on, GFLOP/s at N = 256:
    XLA's convolution reaches 140 on the 26 x 5 layers over the whole batch and 175-190 in
    chunks of 16-32 windows (their activations stay in cache), but only 75-90 at 28 x 12 with
    64-128 channels; there an explicit im2col GEMM in chunks of 8 reaches 110-135. A single
    input channel (the first conv, 0.03% of the FLOPs) is left to XLA.
    """
    if c_in == 1:
        return "conv", 0
    if h * w > 200:
        return "im2col", 8
    return "conv", 16


def _map_batch(f, x, chunk: int):
    """f applied to `chunk`-row slices of x (sequentially, `lax.map`), zero-padding the last."""
    n = x.shape[0]
    if chunk <= 0 or chunk >= n:
        return f(x)
    m = -(-n // chunk)
    xp = jnp.pad(x, [(0, m * chunk - n)] + [(0, 0)] * (x.ndim - 1))
    y = jax.lax.map(f, xp.reshape(m, chunk, *x.shape[1:]))
    return y.reshape(m * chunk, *y.shape[2:])[:n]


def _conv_fast(x, k):
    method, chunk = _conv_plan(x.shape[1], x.shape[2], x.shape[3])
    f = _im2col_conv if method == "im2col" else _conv
    return _map_batch(lambda xc: f(xc, k), x, chunk)


@jax.custom_vjp
def conv3x3(x: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
    """3x3 stride-1 "SAME" convolution (NHWC x HWIO), organised for speed on CPU.

    Same function as `lax.conv_general_dilated(x, k, (1, 1), "SAME")` (to float32 rounding):
    * forward and input gradient run in chunks of frames, by XLA's convolution or an im2col
      GEMM (`_conv_plan`);
    * the kernel gradient, for which XLA's CPU convolution (a contraction over the whole
      batch) reaches only 10-30 GFLOP/s here, is 9 GEMMs, one per tap,
      dk[i, j] = shift_ij(x)^T @ dy ([C_in, n] x [n, C_out]), accumulated over chunks of 32
      frames (120-150 GFLOP/s).
    Being a `custom_vjp`, it supports reverse-mode differentiation only.
    """
    return _conv_fast(x, k)


def _conv3x3_fwd(x, k):
    return _conv_fast(x, k), (x, k)


_DK_CHUNK = 32


def _conv3x3_bwd(res, dy):
    x, k = res
    n, h, w, c_in = x.shape
    c_out = k.shape[-1]
    # Input gradient: the transposed convolution = a convolution with the flipped kernel.
    dx = _conv_fast(dy, jnp.flip(k, (0, 1)).swapaxes(2, 3))

    def taps(acc, chunk):
        xc, dyc = chunk
        rows = xc.shape[0] * h * w
        xp = jnp.pad(xc, ((0, 0), (1, 1), (1, 1), (0, 0)))
        dy2 = dyc.reshape(rows, c_out)
        parts = [
            xp[:, i : i + h, j : j + w].reshape(rows, c_in).T @ dy2
            for i in range(3)
            for j in range(3)
        ]
        return acc + jnp.stack(parts), None

    chunk = min(_DK_CHUNK, n)
    m = -(-n // chunk)
    pad = ((0, m * chunk - n), (0, 0), (0, 0), (0, 0))
    xs = jnp.pad(x, pad).reshape(m, chunk, h, w, c_in)
    dys = jnp.pad(dy, pad).reshape(m, chunk, h, w, c_out)
    # The carry takes x's device-varying type under shard_map, as scan requires.
    acc0 = _vary_like(jnp.zeros((9, c_in, c_out), x.dtype), x)
    dk, _ = jax.lax.scan(taps, acc0, (xs, dys))
    return dx, dk.reshape(3, 3, c_in, c_out)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
    """`nn.Conv(features, (3, 3), padding="SAME", use_bias=False)` computed by `conv3x3`.

    Same parameter ("kernel" [3, 3, C_in, C_out], LeCun-normal) and values as nn.Conv.
    """

    features: int

    @nn.compact
    def __call__(self, x):
        k = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        # Under shard_map the kernel must carry x's device-varying type into the custom VJP.
        return conv3x3(x, _vary_like(k, x))


def _pool_geometry(shape, strides):
    _, h, w, _ = shape
    sh, sw = strides
    return (h - POOL_WINDOW[0]) // sh + 1, (w - POOL_WINDOW[1]) // sw + 1


def _pool_taps(x, strides):
    """The 9 strided [N, Ho, Wo, C] slices of x that a 3x3 "VALID" pool takes the max of."""
    ho, wo = _pool_geometry(x.shape, strides)
    sh, sw = strides
    for i in range(POOL_WINDOW[0]):
        for j in range(POOL_WINDOW[1]):
            yield i, j, x[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool3x3(x: jnp.ndarray, strides: tuple[int, int]) -> jnp.ndarray:
    """3x3 max-pool without padding on NHWC (= `nn.max_pool(x, (3, 3), strides, "VALID")`).

    The forward pass is XLA's `reduce_window`. Its autodiff gradient is a `select_and_scatter`,
    which is slow on CPU (0.28 s / 0.50 s for the two pools of a 256-frame batch). Here the
    differentiated forward also records which of the 9 taps won (int8, the first maximum, as
    `select_and_scatter` picks) and the backward routes dy there with elementwise selects and
    strided pads that XLA fuses (~0.05 s each). The winner is recorded rather than found again
    by comparing x with the pooled values: XLA may recompute x inside a fusion with different
    rounding, and such equality tests then silently drop gradients.
    """
    sh, sw = strides
    return jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, *POOL_WINDOW, 1), (1, sh, sw, 1), "VALID"
    )


def _max_pool_fwd(x, strides):
    y, winner = None, None
    for t, (_, _, tap) in enumerate(_pool_taps(x, strides)):
        if y is None:
            y, winner = tap, jnp.zeros(tap.shape, jnp.int8)
        else:
            better = tap > y
            y = jnp.where(better, tap, y)
            winner = jnp.where(better, jnp.int8(t), winner)
    return y, (winner, x.shape)


def _max_pool_bwd(strides, res, dy):
    winner, (n, h, w, c) = res
    ho, wo = _pool_geometry((n, h, w, c), strides)
    sh, sw = strides
    dx = None
    for t, (i, j) in enumerate((i, j) for i in range(3) for j in range(3)):
        part = jnp.where(winner == t, dy, 0.0)
        # Transpose of the strided slice: interior padding puts part back at its positions.
        config = [
            (0, 0, 0),
            (i, h - i - (ho - 1) * sh - 1, sh - 1),
            (j, w - j - (wo - 1) * sw - 1, sw - 1),
            (0, 0, 0),
        ]
        part = jax.lax.pad(part, jnp.zeros((), dy.dtype), config)
        dx = part if dx is None else dx + part
    return (dx,)


max_pool3x3.defvjp(_max_pool_fwd, _max_pool_bwd)


def encoder_shapes(
    window_hw: tuple[int, int] = (audio.WINDOW_ROWS, NUM_CEPSTRA_IN),
    conv_channels: Sequence[int] = REFERENCE_CONV_CHANNELS,
    pools: Sequence[tuple[int, tuple[int, int]]] = REFERENCE_POOLS,
) -> list[tuple[int, int, int]]:
    """(H, W, C) at the input of every conv, then after the last layer (flatten = H * W * C)."""
    h, w = window_hw
    c = 1
    pool_at = dict(pools)
    shapes = []
    for i, out in enumerate(conv_channels):
        shapes.append((h, w, c))
        c = out
        if i in pool_at:
            sh, sw = pool_at[i]
            h = (h - POOL_WINDOW[0]) // sh + 1
            w = (w - POOL_WINDOW[1]) // sw + 1
            if h < 1 or w < 1:
                raise ValueError(f"window {window_hw} too small for the pools {tuple(pools)}")
    shapes.append((h, w, c))
    return shapes


class AudioEncoder(nn.Module):
    """E: one 28 x 12 MFCC window -> a 256-d feature (a batch of windows at a time).

    Attributes:
      conv_channels: output channels of the 3x3 convs (reference 64, 128, 256, 256, 512).
      fc: widths of the fully connected layers after the flatten (reference 2048, 256).
      pools: (conv index, strides) of the 3x3 "VALID" max-pools, each after that conv's
        BatchNorm + ReLU (reference: (1, 2) after conv 2, (2, 2) after conv 5).
      bn_axis_name: mesh axis over which batch statistics are averaged in data-parallel training.
      bn_momentum: running-average decay (0.9 = PyTorch's momentum 0.1).
    """

    conv_channels: Sequence[int] = REFERENCE_CONV_CHANNELS
    fc: Sequence[int] = REFERENCE_FC
    pools: Sequence[tuple[int, tuple[int, int]]] = REFERENCE_POOLS
    bn_axis_name: str | None = None
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(
        self, windows: jnp.ndarray, train: bool = False, mask: jnp.ndarray | None = None
    ) -> jnp.ndarray:
        """Encodes windows.

        Args:
          windows: [N, 28, 12] MFCC windows (energy column dropped).
          train: use batch statistics and update the running ones; else use the running ones.
          mask: optional bool [N]; in training only these windows enter the batch statistics
            (padding frames do not shift them). Outputs are computed for every window. Under
            data parallelism the per-device masked means are averaged with equal weights.

        Returns:
          [N, fc[-1]] features (after the last FC's ReLU).
        """
        n, h, w = windows.shape
        pool_at = dict(self.pools)
        x = windows[..., None]  # NHWC, one input channel
        bn_mask = None if mask is None else mask[:, None, None, None]
        for i, ch in enumerate(self.conv_channels):
            x = Conv3x3(ch, name=f"conv_{i}")(x)
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=self.bn_momentum,
                axis_name=self.bn_axis_name,
                name=f"bn_{i}",
            )(x, mask=bn_mask)
            x = nn.relu(x)
            if i in pool_at:
                x = max_pool3x3(x, tuple(pool_at[i]))
        want = encoder_shapes((h, w), self.conv_channels, self.pools)[-1]
        assert x.shape[1:] == want, (x.shape, want)
        x = x.reshape(n, -1)
        for i, width in enumerate(self.fc):
            x = nn.relu(nn.Dense(width, name=f"fc_{i}")(x))
        return x


class ExpressionRegressor(nn.Module):
    """Eq. 6 (paper 000) / Eq. 1 (paper 001): windows -> expression (and pose) per frame.

    Attributes:
      num_exp: K, expression coefficients per frame (paper: 64).
      with_pose: also predict the 6 pose values (paper 001's joint model; 70 outputs).
      hidden, num_layers: LSTM R (reference 256 x 3).
      conv_channels, fc: audio encoder E (see `AudioEncoder`).
      bn_axis_name: mesh axis of data-parallel training, for BatchNorm's batch statistics.
      pose_scale: the head predicts pose / pose_scale and the output is multiplied back, so
        `pose` comes out in raw units (radians, translation units) while the network works at
        unit scale, as the head-motion decoder does (head poses spread over ~0.1). 1.0 is the
        reference's raw parameterisation. Expressions are predicted unscaled.
    """

    num_exp: int
    with_pose: bool = False
    hidden: int = 256
    num_layers: int = 3
    conv_channels: Sequence[int] = REFERENCE_CONV_CHANNELS
    fc: Sequence[int] = REFERENCE_FC
    bn_axis_name: str | None = None
    pose_scale: float = 0.1

    def setup(self):
        self.encoder = AudioEncoder(
            conv_channels=tuple(self.conv_channels),
            fc=tuple(self.fc),
            bn_axis_name=self.bn_axis_name,
        )
        self.lstm = StackedLSTM(self.hidden, self.num_layers)
        # One linear layer for all outputs, as the reference's `lstm_fc` (256 -> 64 [+ 6]).
        self.head = nn.Dense(self.num_exp + (POSE_DIM if self.with_pose else 0))

    def encode(
        self, windows: jnp.ndarray, train: bool = False, mask: jnp.ndarray | None = None
    ) -> jnp.ndarray:
        """E on every window at once: [B, T, 28, 12] -> [B, T, fc[-1]].

        `mask` (optional bool [B, T]) keeps padding frames out of the batch statistics.
        """
        b, t = windows.shape[:2]
        flat_mask = None if mask is None else mask.reshape(b * t)
        feats = self.encoder(windows.reshape(b * t, *windows.shape[2:]), train, flat_mask)
        return feats.reshape(b, t, -1)

    def decode(self, feats: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """R and the head: [B, T, C] features -> {"exp": [B, T, K], "pose": [B, T, 6]}."""
        seq, _ = self.lstm(feats)
        y = self.head(seq)
        out = {"exp": y[..., : self.num_exp]}
        if self.with_pose:
            out["pose"] = y[..., self.num_exp :] * self.pose_scale
        return out

    def __call__(
        self, windows: jnp.ndarray, train: bool = False, mask: jnp.ndarray | None = None
    ) -> dict[str, jnp.ndarray]:
        """Predicts a sequence.

        Args:
          windows: [B, T, 28, 12] per-frame MFCC windows (`expression_windows`).
          train: BatchNorm uses (and updates) batch statistics; pass `mutable=["batch_stats"]`.
          mask: optional bool [B, T], False at padding frames: they are excluded from the batch
            statistics. The LSTM is causal, so trailing padding never changes real frames.

        Returns:
          {"exp": [B, T, num_exp]} and, if `with_pose`, "pose": [B, T, 6] in raw units.
        """
        return self.decode(self.encode(windows, train, mask))


def expression_windows(features: np.ndarray, fps: float, num_frames: int | None = None):
    """Per-frame model inputs: `audio.frame_windows` without the log-energy column.

    Args:
      features: [num_rows, 13] from `audio.speech_features` (column 0 = log frame energy).
      fps: video frame rate.
      num_frames: defaults to all frames with a full window.

    Returns:
      [T, 28, 12] float32 windows, cepstra 1..12.
    """
    return np.ascontiguousarray(audio.frame_windows(features, fps, num_frames)[..., 1:])


def build_expression_model(cfg) -> ExpressionRegressor:
    """Builds the regressor from a `config.model` ConfigDict (experiments/configs/expression.py).

    Fields: num_exp, with_pose, hidden, num_layers, conv_channels, fc; optional bn_axis_name
    (default None) and pose_scale (default 0.1).
    """
    return ExpressionRegressor(
        num_exp=int(cfg.num_exp),
        with_pose=bool(cfg.with_pose),
        hidden=int(cfg.hidden),
        num_layers=int(cfg.num_layers),
        conv_channels=tuple(int(c) for c in cfg.conv_channels),
        fc=tuple(int(f) for f in cfg.fc),
        bn_axis_name=cfg.get("bn_axis_name"),
        pose_scale=float(cfg.get("pose_scale", 0.1)),
    )


def _sizes(model_cfg):
    """(num_out, hidden, num_layers, conv_channels, fc) of a ConfigDict or a regressor."""
    if isinstance(model_cfg, ExpressionRegressor):
        m = model_cfg
        num_exp, with_pose, hidden, layers = m.num_exp, m.with_pose, m.hidden, m.num_layers
        conv, fc = tuple(m.conv_channels), tuple(m.fc)
    else:
        num_exp, with_pose = int(model_cfg.num_exp), bool(model_cfg.with_pose)
        hidden, layers = int(model_cfg.hidden), int(model_cfg.num_layers)
        conv, fc = tuple(model_cfg.conv_channels), tuple(model_cfg.fc)
    return num_exp + (POSE_DIM if with_pose else 0), hidden, layers, conv, fc


def flops_per_frame(model_cfg, breakdown: bool = False):
    """Analytic forward FLOPs per video frame (a multiply-add counts 2).

    Counts the convolutions (at their input resolution, "SAME" padding), the FC layers, the
    LSTM (input and recurrent GEMMs) and the head; BatchNorm, ReLU, pooling and the gate
    nonlinearities (~1% together) are left out. A training step costs ~3x this per frame
    (forward, input gradients, weight gradients).

    Args:
      model_cfg: a `config.model` ConfigDict or an `ExpressionRegressor`.
      breakdown: also return a {layer: flops} dict.

    Returns:
      total FLOPs (float; / 1e9 for GFLOP), or (total, breakdown).
    """
    num_out, hidden, layers, conv, fc = _sizes(model_cfg)
    parts = {}
    shapes = encoder_shapes(conv_channels=conv)
    for i, ((h, w, c_in), c_out) in enumerate(zip(shapes[:-1], conv, strict=True)):
        parts[f"conv_{i}"] = 2.0 * h * w * 9 * c_in * c_out
    width = int(np.prod(shapes[-1]))
    for i, f in enumerate(fc):
        parts[f"fc_{i}"] = 2.0 * width * f
        width = f
    for layer in range(layers):
        parts[f"lstm_{layer}"] = 2.0 * (width + hidden) * 4 * hidden
        width = hidden
    parts["head"] = 2.0 * hidden * num_out
    total = float(sum(parts.values()))
    return (total, parts) if breakdown else total


def param_count(model_cfg) -> int:
    """Analytic number of trainable parameters (BatchNorm running statistics excluded)."""
    num_out, hidden, layers, conv, fc = _sizes(model_cfg)
    n = 0
    c_in = 1
    for c in conv:
        n += 9 * c_in * c + 2 * c  # kernel (no bias) + BatchNorm scale and bias
        c_in = c
    width = int(np.prod(encoder_shapes(conv_channels=conv)[-1]))
    for f in fc:
        n += width * f + f
        width = f
    for _ in range(layers):
        n += (width + hidden) * 4 * hidden + 4 * hidden  # w_ih, w_hh, one bias
        width = hidden
    return n + hidden * num_out + num_out


def predict_sequence(model: ExpressionRegressor, variables, windows: jnp.ndarray, chunk: int = 256):
    """Inference on one long sequence, the encoder in chunks of frames (jit-compatible).

    Args:
      model, variables: the regressor and its {"params", "batch_stats"}.
      windows: [T, 28, 12] windows of one utterance.
      chunk: encode this many frames at a time (`lax.map` over chunks). The encoder's
        activations take ~0.9 MB per frame at the reference sizes (1.3 GB for 60 s at once,
        0.23 GB in chunks of 256); the speed hardly depends on it. 0 = all frames at once.

    Returns:
      {"exp": [T, K], "pose": [T, 6] if the model has it}.
    """
    steps = windows.shape[0]
    enc = lambda w: model.apply(variables, w[None], method=ExpressionRegressor.encode)[0]  # noqa: E731
    if chunk <= 0 or chunk >= steps:
        feats = enc(windows)
    else:
        n_chunks = -(-steps // chunk)
        pad = n_chunks * chunk - steps
        padded = jnp.pad(windows, ((0, pad), (0, 0), (0, 0)))
        feats = jax.lax.map(enc, padded.reshape(n_chunks, chunk, *windows.shape[1:]))
        feats = feats.reshape(n_chunks * chunk, -1)[:steps]
    out = model.apply(variables, feats[None], method=ExpressionRegressor.decode)
    return {k: v[0] for k, v in out.items()}
