"""Paper 000, Sec. IV-B3: the rendering-to-realistic GAN (attention U-Net G, PatchGAN D).

G refines a window of three rendered frames (r_{t-2}, r_{t-1}, r_t), stacked on channels as
[B, H, W, 9] in [-1, 1] (NHWC), into a realistic frame o_t. It predicts a colour mask C_t and
an attention mask A_t and blends them with the rendered frame (Eq. 8):

    o_t = A_t * r_t + (1 - A_t) * C_t

D is a conditional PatchGAN [37]: it sees the same 9 conditioning channels and a checked frame
(real g_t or refined o_t) and returns a map of logits, one per 70 x 70 patch at the default
sizes. The losses (Eq. 9, 10) are in `talkingjax.losses.gan`.

What the paper states: a U-Net [46] whose last convolution block is replaced by two parallel
blocks, one per mask (Sec. IV-B3); a PatchGAN discriminator. The layer sizes come from the
authors' 2020 code (pix2pix's `UnetACGenerator` / `NLayerDiscriminator`), see
docs/reference-facts.md: an 8-level U-Net of 4x4 stride-2 convolutions with widths
64-128-256-512-512-512-512-512, LeakyReLU 0.2 on the way down, ReLU + 4x4 stride-2 transposed
convolutions on the way up, dropout 0.5, skip connections, heads 7x7 conv + tanh (C) and
7x7 conv + sigmoid (A).

Normalisation: pix2pix (and the 2020 code) use BatchNorm with batch size 1, in training mode
also at test time (pix2pix's test script only switches to running statistics with `--eval`).
BatchNorm over a batch of one image *is* instance normalisation with a learned per-channel
scale and bias, so `norm="instance"` (the default) is the faithful choice at the paper's batch
size 1, and it keeps both models stateless (no `batch_stats`): `train` only switches dropout.
It also makes D's scores per-sample, so real and generated frames can share one D call.
As in pix2pix, the outermost and innermost down convolutions are not normalised (the
innermost output is 1 x 1 at 256^2, where instance statistics would zero it).

Speed (benchmarks/gan_speed.py, 2-core AMD EPYC CPU, float32). XLA's CPU convolutions, and
above all their gradients, are slow for these shapes: with nn.Conv / nn.ConvTranspose a
G+D training step (Eq. 10, Adam) took 6.4 s at 128^2 batch 4 (7 levels) and 9.0 s at 256^2
batch 1, G inference 0.293 s per 256^2 frame (PyTorch eager: 1.45 s, 1.67 s, 0.308 s). The
kernel gradients of the transposed convolutions alone ran at 2-10 GFLOP/s (0.7-3.6 s per
layer at 256^2) and that of the 7x7 heads at ~5 GFLOP/s (1 s). Every layer is therefore
computed as large GEMMs (`talkingjax.models.conv_gemm`), with the same parameters (names,
shapes, init rng paths) as the Flax layers, so checkpoints are interchangeable:
* 4x4 convolutions (G's down path, D): im2col + one GEMM; plain autodiff of it gives GEMMs
  for both gradients (`_Conv4x4`). D's 1-channel logit conv: one GEMM over all 16 taps and a
  shift-add of the tap maps (`conv_taps_first`) instead of a 16x im2col for a mat-vec.
* 4x4 stride-2 transposed convolutions: one GEMM [N H W, Cin] x [Cin, 16 Cout] and an
  overlap-add; a custom VJP builds dP as one concatenation of shifted phase maps of dy and
  takes dx, dK as GEMMs (`conv_transpose_4x4_s2`).
* The two 7x7 heads run as one 7x7 conv with 3 + 1 outputs (their two parameter subtrees
  kept): XLA's convolution forward (fast here), GEMM gradients (`conv_small_out`).
The custom-VJP kernels enter with the activations' device-varying type (`_vary_like`), so
the layers work in the data-parallel `jax.shard_map` trainer. Instance norm was measured at
< 3 % of a step and is left to Flax's GroupNorm.

Measured back to back with another job loading the machine (matmul rate 84-94 instead of
~155 GFLOP/s), Flax layers -> these layers: training step 11.4 -> 2.2 s at 128^2 batch 4 and
16.4 -> 2.1 s at 256^2 batch 1; G inference 0.45 -> 0.42 s per 256^2 frame, 0.22 -> 0.14 s
per 128^2 frame at batch 1 and 0.18 -> 0.08 s at batch 4. G's and D's passes now run at
~60 % of the (loaded) GEMM rate; the rest is im2col / overlap-add data movement and Adam.
On an idle machine (matmul 188 GFLOP/s, `benchmarks/gan_speed.py`): 0.94 s and 1.13 s per
step, 0.190 s per 256^2 frame (51 % of the matmul rate); the README keeps the table.
tests/test_gan_speed_equivalence.py checks outputs and gradients against the XLA
convolutions, also under shard_map.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.errors import InputError
from talkingjax.models import memory
from talkingjax.models.conv_gemm import (
    conv_im2col,
    conv_small_out,
    conv_taps_first,
    conv_transpose_4x4_s2,
)
from talkingjax.models.layers import _vary_like

FEATURES = (64, 128, 256, 512, 512, 512, 512, 512)  # the 8-level U-Net at 256^2
D_FEATURES = (64, 128, 256, 512)  # PatchGAN widths; all but the last have stride 2
FRAME_CHANNELS = 3
WINDOW = 3  # rendered frames t-2, t-1, t
KERNEL = 4  # every down/up (transposed) convolution and every D convolution
HEAD_KERNEL = 7

# pix2pix initialisation ("normal", gain 0.02).
_INIT = nn.initializers.normal(0.02)
# PyTorch's padding 1 for a 4x4 stride-2 conv (H -> H / 2) and, for the transposed conv,
# lax padding k - 1 - 1 = 2 on the dilated input (H -> 2 H): the same alignment as pix2pix.
_PAD_DOWN = ((1, 1), (1, 1))
_PAD_UP = ((2, 2), (2, 2))


# True computes every convolution with Flax's nn.Conv / nn.ConvTranspose (XLA convolutions)
# instead of the GEMM formulations of `talkingjax.models.conv_gemm`: same parameters, same
# function; for the equivalence tests and the "before" numbers of benchmarks/gan_speed.py.
_REFERENCE_LAYERS = False


class _Conv4x4(nn.Module):
    """`nn.Conv(features, (4, 4), strides, padding=1)` as an im2col GEMM (same params).

    XLA's CPU convolution gradients of these shapes ran at 2-30 GFLOP/s; as GEMMs the
    forward and both gradients (plain autodiff of `conv_im2col`) reach 60-150 GFLOP/s.
    """

    features: int
    stride: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        k = self.param("kernel", _INIT, (KERNEL, KERNEL, x.shape[-1], self.features))
        if self.features <= 4 and self.stride == 1:
            # PatchGAN's 1-channel logit conv: a matrix-vector product per tap, not an
            # im2col copying the [.., 512] input 16 times (94 -> 4 ms at 128^2, batch 12).
            y = conv_taps_first(x, k, _PAD_DOWN)
        else:
            y = conv_im2col(x, k, self.stride, _PAD_DOWN)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


class _ConvTranspose4x4(nn.Module):
    """`nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding=_PAD_UP)`, same params,
    as one GEMM + overlap-add (`conv_transpose_4x4_s2`).

    XLA's transposed-convolution gradients were the bulk of a training step (0.7-3.6 s per
    layer at 256^2); the GEMM form's gradients are GEMMs at 40-160 GFLOP/s.
    """

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        k = self.param("kernel", _INIT, (KERNEL, KERNEL, x.shape[-1], self.features))
        # Custom VJP: under shard_map the kernel must carry x's device-varying type.
        y = conv_transpose_4x4_s2(x, _vary_like(k, x))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


def _conv(features, stride, use_bias, name):
    if _REFERENCE_LAYERS:
        return nn.Conv(
            features,
            (KERNEL, KERNEL),
            strides=(stride, stride),
            padding=_PAD_DOWN,
            use_bias=use_bias,
            kernel_init=_INIT,
            name=name,
        )
    return _Conv4x4(features, stride, use_bias, name=name)


def _conv_transpose(features, use_bias, name):
    if _REFERENCE_LAYERS:
        return nn.ConvTranspose(
            features,
            (KERNEL, KERNEL),
            strides=(2, 2),
            padding=_PAD_UP,
            use_bias=use_bias,
            kernel_init=_INIT,
            name=name,
        )
    return _ConvTranspose4x4(features, use_bias, name=name)


class _HeadParams(nn.Module):
    """The parameters of one `nn.Conv(features, (7, 7))` head (same names, shapes, init);
    the parent applies both heads as one fused convolution."""

    features: int

    @nn.compact
    def __call__(self, c_in: int):
        shape = (HEAD_KERNEL, HEAD_KERNEL, c_in, self.features)
        kernel = self.param("kernel", _INIT, shape)
        return kernel, self.param("bias", nn.initializers.zeros_init(), (self.features,))


def _heads(h):
    """(color, attention) pre-activations of the two 7x7 heads from h [B, H, W, C].

    Both heads read the same input, so they run as one 7x7 conv with 3 + 1 outputs. Its
    forward is XLA's convolution (fast for this shape); its gradients are GEMMs
    (`conv_small_out`), where XLA's kernel gradient took ~1 s per step at 256^2.
    """
    if _REFERENCE_LAYERS:
        head = dict(kernel_size=(HEAD_KERNEL, HEAD_KERNEL), padding=3, kernel_init=_INIT)
        return (
            nn.Conv(FRAME_CHANNELS, name="color_head", **head)(h),
            nn.Conv(1, name="attention_head", **head)(h),
        )
    kc, bc = _HeadParams(FRAME_CHANNELS, name="color_head")(h.shape[-1])
    ka, ba = _HeadParams(1, name="attention_head")(h.shape[-1])
    kernel = _vary_like(jnp.concatenate([kc, ka], axis=-1), h)  # custom VJP: see its doc
    pad = (HEAD_KERNEL // 2, HEAD_KERNEL // 2)
    y = conv_small_out(h, kernel, (pad, pad)) + jnp.concatenate([bc, ba])
    return y[..., :FRAME_CHANNELS], y[..., FRAME_CHANNELS:]


def _norm(kind: str, name: str):
    """Instance norm with learned scale and bias (= BatchNorm at batch 1), or identity."""
    if kind == "instance":
        # group_size=1: statistics per sample and per channel over H, W. eps as PyTorch's BN.
        return nn.GroupNorm(num_groups=None, group_size=1, epsilon=1e-5, name=name)
    if kind == "none":
        return lambda h: h
    raise ValueError(f"unknown norm {kind!r}; expected 'instance' or 'none'")


def attention_composite(
    render_t: jnp.ndarray, color: jnp.ndarray, attention: jnp.ndarray
) -> jnp.ndarray:
    """Eq. 8: o_t = A_t * r_t + (1 - A_t) * C_t.

    Args:
      render_t: [B, H, W, 3] the rendered frame r_t in [-1, 1].
      color: [B, H, W, 3] the colour mask C_t in [-1, 1].
      attention: [B, H, W, 1] the attention mask A_t in [0, 1] (1 keeps the render).

    Returns:
      [B, H, W, 3] the refined frame o_t.
    """
    return attention * render_t + (1.0 - attention) * color


class AttentionUNetGenerator(nn.Module):
    """G: attention U-Net, rendered window [B, H, W, 9] -> refined frame (Sec. IV-B3, Eq. 8).

    Layout for features (f_0, ..., f_{n-1}), n = depth (pix2pix `UnetACGenerator`):
      down i = 0..n-1: [LeakyReLU 0.2 if i > 0] 4x4 stride-2 conv to f_i [norm if 0 < i < n-1];
      up k = 0..n-1 (k = 0 innermost): ReLU, 4x4 stride-2 transposed conv to f_{n-2-k}
        (f_0 for the last, outermost one), norm, [dropout if k in `dropout_blocks`], then
        concatenation with the skip of the same resolution (not after the outermost);
      outermost: after its norm a ReLU, then two parallel 7x7 convs: tanh -> C [.., 3],
        sigmoid -> A [.., 1]; o = A * r_t + (1 - A) * C (Eq. 8) with r_t the last 3 input
        channels.

    Dropout: "the first three up blocks" (k = 0, 1, 2) as in the pix2pix paper's decoder
    (CD512-CD512-CD512-C512-...); the PyTorch port used by the 2020 code puts it on the three
    intermediate 512 blocks instead, k = 1, 2, 3 (`dropout_blocks=(1, 2, 3)` reproduces that).
    The outermost block never has dropout. Active only with train=True and an rng "dropout".

    Sizes: the default is the paper's 256 x 256 with 8 levels (1 x 1 bottleneck); H and W
    must be multiples of 2**depth, e.g. 64 x 64 with 6 levels or 32 x 32 with 3-5 levels for
    tests and CPU runs. 54.6 M parameters at the default widths (`num_params`).

    Attributes:
      features: widths of the down convolutions, outermost first; depth = len(features).
      dropout: rate of the dropout layers (0.5 in pix2pix).
      dropout_blocks: indices k of the up blocks with dropout (0 = innermost).
      norm: "instance" (default, see the module docstring) or "none".
    """

    features: Sequence[int] = FEATURES
    dropout: float = 0.5
    dropout_blocks: Sequence[int] = (0, 1, 2)
    norm: str = "instance"
    # Paper 001 (Sec. 3.4): the decoder's norms become AdaIN whose parameters an MLP computes
    # from an identity feature (`talkingjax.models.memory.AdaIN`); __call__ then needs it.
    adain: bool = False

    def check_size(self, height: int, width: int) -> None:
        """Raises `InputError` unless H and W can be halved `len(features)` times."""
        multiple = 2 ** len(self.features)
        if height <= 0 or width <= 0 or height % multiple or width % multiple:
            raise InputError(
                f"AttentionUNetGenerator with {len(self.features)} levels needs H and W to be "
                f"positive multiples of 2**{len(self.features)} = {multiple}; got H x W = "
                f"{height} x {width}. Resize/crop the frames or use fewer levels (features)."
            )

    @nn.compact
    def __call__(
        self, render: jnp.ndarray, train: bool = False, identity: jnp.ndarray | None = None
    ) -> dict[str, jnp.ndarray]:
        """Refines one window per batch element.

        Args:
          render: [B, H, W, 3 k] rendered frames in [-1, 1], oldest first (k = 3 in the paper:
            r_{t-2}, r_{t-1}, r_t); the last 3 channels are r_t.
          train: enables dropout (needs `rngs={"dropout": key}`).
          identity: [B, D] identity features; required with `adain=True`, else unused.

        Returns:
          {"image": o_t [B, H, W, 3], "color": C_t [B, H, W, 3] in [-1, 1],
           "attention": A_t [B, H, W, 1] in [0, 1]}.
        """
        depth = len(self.features)
        if depth < 1:
            raise ValueError("features must have at least one level")
        if render.ndim != 4 or render.shape[-1] < FRAME_CHANNELS:
            raise InputError(f"render must be [B, H, W, >= 3]; got shape {render.shape}")
        self.check_size(render.shape[1], render.shape[2])
        if self.adain and identity is None:
            raise InputError("this generator has AdaIN (adain=True): pass identity=[B, D]")
        use_norm = self.norm != "none"
        if self.norm not in ("instance", "none"):
            raise ValueError(f"unknown norm {self.norm!r}; expected 'instance' or 'none'")

        skips = []
        h = render
        for i, width in enumerate(self.features):
            normed = use_norm and 0 < i < depth - 1
            if i > 0:
                h = nn.leaky_relu(h, 0.2)
            # use_bias: a following norm removes any bias.
            h = _conv(width, 2, not normed, f"down_{i}")(h)
            if normed:
                h = _norm(self.norm, f"down_norm_{i}")(h)
            skips.append(h)

        skips.pop()  # the bottleneck itself is not a skip
        for k in range(depth):
            outermost = k == depth - 1
            width = self.features[0] if outermost else self.features[depth - 2 - k]
            h = nn.relu(h)
            h = _conv_transpose(width, not use_norm, f"up_{k}")(h)
            if self.adain:
                h = memory.AdaIN(name=f"up_adain_{k}")(h, identity)
            else:
                h = _norm(self.norm, f"up_norm_{k}")(h)
            if outermost:
                break
            if k in tuple(self.dropout_blocks) and self.dropout > 0:
                h = nn.Dropout(self.dropout, deterministic=not train, name=f"dropout_{k}")(h)
            h = jnp.concatenate([h, skips.pop()], axis=-1)

        # The paper's "two parallel convolution blocks", one per mask.
        h = nn.relu(h)
        color, attention = _heads(h)
        color, attention = jnp.tanh(color), nn.sigmoid(attention)
        render_t = render[..., -FRAME_CHANNELS:]
        return {
            "image": attention_composite(render_t, color, attention),
            "color": color,
            "attention": attention,
        }


class PatchDiscriminator(nn.Module):
    """D: conditional PatchGAN [37] on (rendered window, checked frame) (Sec. IV-B3).

    pix2pix `NLayerDiscriminator` (n_layers = 3): the 12 input channels (9 conditioning + 3
    checked) go through 4x4 convs of widths `features`, all but the last with stride 2, the
    last with stride 1, LeakyReLU 0.2 after each, norm on all but the first; then a 4x4
    stride-1 conv to one logit per patch. All convs pad by 1 as in PyTorch, so at 256 x 256
    the logit map is 30 x 30.

    Receptive field of one logit (`receptive_field`): with kernels k_l and strides s_l of all
    L convolutions (the logit conv included), RF = 1 + sum_l (k_l - 1) * prod_{m < l} s_m.
    Default: 1 + 3 (1 + 2 + 4 + 8 + 8) = 70, the "70 x 70 PatchGAN".

    Attributes:
      features: hidden widths (default 64, 128, 256, 512).
      norm: "instance" (default; = pix2pix's BatchNorm at batch 1) or "none".

    2.77 M parameters at the default widths.
    """

    features: Sequence[int] = D_FEATURES
    norm: str = "instance"

    @nn.compact
    def __call__(
        self, condition: jnp.ndarray, frame: jnp.ndarray, train: bool = False
    ) -> jnp.ndarray:
        """Scores frames given their rendered windows.

        Args:
          condition: [B, H, W, 9] rendered frames (the generator's input).
          frame: [B, H, W, 3] real or refined frame.
          train: unused (no train-dependent layers); kept for the common interface.

        Returns:
          [B, h, w, 1] logits, one per patch (D = sigmoid(logit)).
        """
        del train
        h = jnp.concatenate([condition, frame], axis=-1)
        n = len(self.features)
        for i, width in enumerate(self.features):
            normed = self.norm != "none" and i > 0
            stride = 2 if i < n - 1 else 1
            h = _conv(width, stride, not normed, f"conv_{i}")(h)
            if normed:
                h = _norm(self.norm, f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        return _conv(1, 1, True, "logits")(h)


def receptive_field(num_layers: int = len(D_FEATURES), kernel: int = KERNEL) -> int:
    """Receptive field (pixels per side) of one `PatchDiscriminator` logit.

    RF = 1 + sum_l (k - 1) prod_{m < l} s_m over the `num_layers` hidden convs (strides 2, ...,
    2, 1) and the stride-1 logit conv. 70 for the default 4 layers, kernel 4.
    """
    strides = [2] * (num_layers - 1) + [1, 1]
    field, jump = 1, 1
    for s in strides:
        field += (kernel - 1) * jump
        jump *= s
    return field


def gflops_per_frame(
    features: Sequence[int] = FEATURES,
    size: int | tuple[int, int] = 256,
    in_channels: int = WINDOW * FRAME_CHANNELS,
) -> float:
    """Generator forward GFLOPs for one frame, 2 FLOPs per multiply-accumulate.

    Counts the down convolutions (MACs = H_out W_out k^2 C_in C_out), the transposed
    convolutions (MACs = H_in W_in k^2 C_in C_out: every input pixel scatters a k x k x C_out
    patch) and both 7x7 heads; biases, norms, activations, dropout and the Eq. 8 blend are
    left out (< 0.1 % at the default sizes).

    Args:
      features: the generator's widths.
      size: H = W, or (H, W); multiples of 2**len(features).
      in_channels: 9 for the paper's three-frame window.
    """
    height, width = (size, size) if isinstance(size, int) else size
    depth = len(features)
    macs = 0
    c_in = in_channels
    for i, c_out in enumerate(features):
        macs += (height >> (i + 1)) * (width >> (i + 1)) * KERNEL**2 * c_in * c_out
        c_in = c_out
    for k in range(depth):
        level = depth - k  # input resolution is size / 2**level
        c_out = features[0] if k == depth - 1 else features[depth - 2 - k]
        c_in = features[-1] if k == 0 else 2 * features[depth - 1 - k]
        macs += (height >> level) * (width >> level) * KERNEL**2 * c_in * c_out
    macs += height * width * HEAD_KERNEL**2 * features[0] * (FRAME_CHANNELS + 1)
    return 2.0 * macs / 1e9


def num_params(features: Sequence[int] = FEATURES, in_channels: int = 9) -> int:
    """Generator parameter count (instance norm, default layout) without building it."""
    depth = len(features)
    total = 0
    c_in = in_channels
    for i, c_out in enumerate(features):
        normed = 0 < i < depth - 1
        total += KERNEL**2 * c_in * c_out + (2 * c_out if normed else c_out)
        c_in = c_out
    for k in range(depth):
        c_out = features[0] if k == depth - 1 else features[depth - 2 - k]
        c_in = features[-1] if k == 0 else 2 * features[depth - 1 - k]
        total += KERNEL**2 * c_in * c_out + 2 * c_out
    total += HEAD_KERNEL**2 * features[0] * 4 + 4
    return total


__all__ = [
    "AttentionUNetGenerator",
    "PatchDiscriminator",
    "attention_composite",
    "gflops_per_frame",
    "num_params",
    "receptive_field",
]


# ---------------------------------------------------------------- test-time self-ensemble

SELF_ENSEMBLE_OFF = -1  # `ensemble_shift` meaning "one pass, no self-ensemble"


def self_ensemble_transforms(shift: int) -> np.ndarray:
    """[K, 3] int32 rows (dy, dx, flip) of the geometric self-ensemble (not in paper 000).

    shift 0: the frame and its left-right mirror (K = 2); shift s > 0: every translation in
    {-s, 0, s}^2 pixels, each with and without the mirror (K = 18). Both kinds are in the
    training augmentation (random crop offsets and flips, `gan_pairs.PairSampler`), so the
    generator is trained to map them consistently; what differs between passes is mostly
    the detail it invents, which the mean averages out (EDSR's self-ensemble, with shifts).
    """
    if shift < 0:
        raise InputError(f"self-ensemble shift is {shift}; expected 0 (mirror only) or more")
    offsets = (-shift, 0, shift) if shift else (0,)
    rows = [(dy, dx, f) for dy in offsets for dx in offsets for f in (0, 1)]
    return np.asarray(rows, np.int32)


def self_ensemble(fn, x: jnp.ndarray, transforms) -> dict:
    """The mean over K transformed copies of x of fn's outputs, each transformed back.

    Args:
      fn: [B, H, W, C] -> pytree of [B, H, W, *] arrays (per-pixel outputs, e.g. the
        generator's {"image", "color", "attention"}).
      x: [B, H, W, C].
      transforms: [K, 3] int (dy, dx, flip) as from `self_ensemble_transforms`. Shifts are
        circular (`jnp.roll`), so each is undone exactly; the copies run one after another
        (`lax.map`): memory of one pass, one compiled body.

    Returns:
      fn's pytree, each leaf the mean of the K passes.
    """

    def one(t):
        dy, dx, flip = t[0], t[1], t[2]

        def forward(a):
            a = jnp.roll(a, (dy, dx), axis=(1, 2))
            return jnp.where(flip > 0, a[:, :, ::-1], a)

        def backward(a):
            a = jnp.where(flip > 0, a[:, :, ::-1], a)
            return jnp.roll(a, (-dy, -dx), axis=(1, 2))

        return jax.tree.map(backward, fn(forward(x)))

    outs = jax.lax.map(one, jnp.asarray(transforms, jnp.int32))
    return jax.tree.map(lambda o: o.mean(axis=0), outs)
