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
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from talkingjax.errors import InputError

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
    def __call__(self, render: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
        """Refines one window per batch element.

        Args:
          render: [B, H, W, 3 k] rendered frames in [-1, 1], oldest first (k = 3 in the paper:
            r_{t-2}, r_{t-1}, r_t); the last 3 channels are r_t.
          train: enables dropout (needs `rngs={"dropout": key}`).

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
        use_norm = self.norm != "none"
        if self.norm not in ("instance", "none"):
            raise ValueError(f"unknown norm {self.norm!r}; expected 'instance' or 'none'")

        skips = []
        h = render
        for i, width in enumerate(self.features):
            normed = use_norm and 0 < i < depth - 1
            if i > 0:
                h = nn.leaky_relu(h, 0.2)
            h = nn.Conv(
                width,
                (KERNEL, KERNEL),
                strides=(2, 2),
                padding=_PAD_DOWN,
                use_bias=not normed,  # a following norm removes any bias
                kernel_init=_INIT,
                name=f"down_{i}",
            )(h)
            if normed:
                h = _norm(self.norm, f"down_norm_{i}")(h)
            skips.append(h)

        skips.pop()  # the bottleneck itself is not a skip
        for k in range(depth):
            outermost = k == depth - 1
            width = self.features[0] if outermost else self.features[depth - 2 - k]
            h = nn.relu(h)
            h = nn.ConvTranspose(
                width,
                (KERNEL, KERNEL),
                strides=(2, 2),
                padding=_PAD_UP,
                use_bias=not use_norm,
                kernel_init=_INIT,
                name=f"up_{k}",
            )(h)
            h = _norm(self.norm, f"up_norm_{k}")(h)
            if outermost:
                break
            if k in tuple(self.dropout_blocks) and self.dropout > 0:
                h = nn.Dropout(self.dropout, deterministic=not train, name=f"dropout_{k}")(h)
            h = jnp.concatenate([h, skips.pop()], axis=-1)

        # The paper's "two parallel convolution blocks", one per mask.
        h = nn.relu(h)
        head = dict(kernel_size=(HEAD_KERNEL, HEAD_KERNEL), padding=3, kernel_init=_INIT)
        color = jnp.tanh(nn.Conv(FRAME_CHANNELS, name="color_head", **head)(h))
        attention = nn.sigmoid(nn.Conv(1, name="attention_head", **head)(h))
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
            h = nn.Conv(
                width,
                (KERNEL, KERNEL),
                strides=(stride, stride),
                padding=_PAD_DOWN,
                use_bias=not normed,
                kernel_init=_INIT,
                name=f"conv_{i}",
            )(h)
            if normed:
                h = _norm(self.norm, f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        return nn.Conv(1, (KERNEL, KERNEL), padding=_PAD_DOWN, kernel_init=_INIT, name="logits")(h)


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
