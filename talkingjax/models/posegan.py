"""Paper 003, Sec. 4.1: PoseGAN, audio to a head-pose sequence with a conditional GAN.

G(x, p) maps per-frame audio features x [B, T, A] and the initial head pose p [B, 6] to a pose
sequence [B, T, 6]; D(x, y) scores a pose sequence y together with its audio (Sec. 4.1.2). The
paper's unit sequence is T = 256 frames (Sec. 4.1, 4.3). The losses (Eq. 3-6) are in
`talkingjax.losses.posegan`.

What the paper states (Sec. 4.1.1): a CNN audio encoder ("enhanced CNN encoder") in front of a
U-Net [48], in the style of Ginosar et al. [47]; p is embedded "into the input layer and the
U-net output layer"; during training p is the pose of the window's first frame, at inference the
first window gets the rest pose (approximated by the mean pose) and every later window the last
pose of the previous one (`generate_long`). There is no noise input: the paper writes G(x, p).

Fig. 5 (the layer diagram) is not in the text, so widths, depths, kernels, normalisation and
activations are our choices, documented on each class and modelled on Ginosar et al. [47]
(constant-width 1D U-Net with stride-2 downsampling, LeakyReLU 0.2, a 1D PatchGAN-style
discriminator). Both networks are stateless (LayerNorm, no BatchNorm, no dropout), so
`train=True` and `train=False` are the same function: the flag is kept for the library's common
interface, and the losses can take plain `{"params": ...}` variables without mutable state.

Pose units: the paper centralises and normalises the poses (Sec. 4.3) and filters them with the
Gaussian of Eq. 1 (`video.reconstruct.smooth_pose`, applied by `talkingjax.data.preprocess`).
Here both networks divide poses by `pose_scale` on the way in (and G multiplies its output by
it), so radians / translation units of ~0.1 spread are seen as unit-scale values; use 1.0 for
poses that are already normalised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from talkingjax.errors import InputError

POSE_DIM = 6
WINDOW = 256  # the paper's unit sequence (Sec. 4.1)


def _norm(kind: str, name: str):
    """Per-frame LayerNorm (or identity).

    Per frame rather than over the window (GroupNorm) or the batch (BatchNorm): the initial-pose
    embedding is constant over time, and a time-wise normalisation would subtract most of it;
    per-frame statistics also keep padded frames of the last window (`generate_long`) out of
    the statistics of the real ones.
    """
    if kind == "layer":
        return nn.LayerNorm(name=name)
    if kind == "none":
        return lambda h: h
    raise ValueError(f"unknown norm {kind!r}; expected 'layer' or 'none'")


class PoseGANGenerator(nn.Module):
    """G(x, p): conditional 1D U-Net generator, audio + initial pose -> pose sequence.

    Layout (all convolutions over time, "SAME" padding, LeakyReLU 0.2):
      1. audio encoder: `encoder_layers` k=3 conv + norm + act blocks of width `features`; the
         first one sees the audio and the embedded initial pose (the "input layer").
      2. U-Net: `depth` stride-2 k=4 downsampling blocks, then `depth` blocks of nearest x2
         upsampling, concatenation with the skip of the same resolution and a k=3 conv block.
      3. output: the first of `decoder_layers` k=3 conv blocks sees the U-Net output and the
         embedded initial pose again (the "U-net output layer"), then a per-frame linear map to
         the 6 pose values.

    "Embedding" p: a learned linear map of p (`init_in`, `init_out`) added to the block's
    pre-activation at every frame. That is the same function as convolving the concatenation
    [features; p tiled over time], without the zero-padding edge effect at both ends.

    The paper gives T = 256 and nothing else about sizes (Fig. 5 is not in the text). Our
    defaults follow Ginosar et al. [47]: constant width 256 and 5 downsamplings (256 -> 8
    frames at the bottleneck, a receptive field of about 200 frames); 3 encoder and 2 output
    blocks are our choice. 4.1 M parameters with A = 52 (the discriminator: 0.18 M).

    Attributes:
      features: width of every layer.
      encoder_layers: k=3 blocks of the audio encoder (>= 1).
      depth: U-Net downsamplings; T must be a multiple of 2**depth.
      decoder_layers: k=3 blocks after the U-Net (>= 1).
      norm: "layer" (per-frame LayerNorm) or "none".
      pose_scale: poses are divided by this on the way in and the output multiplied by it.
      audio_scale: audio features are multiplied by this on the way in (1.0: raw).
    """

    features: int = 256
    encoder_layers: int = 3
    depth: int = 5
    decoder_layers: int = 2
    norm: str = "layer"
    pose_scale: float = 0.1
    audio_scale: float = 1.0

    def check_length(self, num_frames: int) -> None:
        """Raises `InputError` unless the U-Net can halve `num_frames` `depth` times."""
        multiple = 2**self.depth
        if num_frames <= 0 or num_frames % multiple:
            raise InputError(
                f"PoseGANGenerator with depth={self.depth} needs T to be a positive multiple of "
                f"2**depth = {multiple}; got T = {num_frames}. Pad the window (generate_long "
                "does) or use a smaller depth."
            )

    @nn.compact
    def __call__(
        self, audio: jnp.ndarray, init_pose: jnp.ndarray, train: bool = False
    ) -> jnp.ndarray:
        """Generates one window.

        Args:
          audio: [B, T, A] per-video-frame audio features.
          init_pose: [B, 6] pose of the window's first frame (pitch, yaw, roll rad, translation).
          train: unused (no train-dependent layers); kept for the common interface.

        Returns:
          [B, T, 6] poses.
        """
        del train
        if self.encoder_layers < 1 or self.decoder_layers < 1:
            raise ValueError("encoder_layers and decoder_layers must be >= 1")
        self.check_length(audio.shape[1])
        act = lambda h: nn.leaky_relu(h, 0.2)  # noqa: E731
        p = init_pose / self.pose_scale
        width = self.features

        # 1. Audio encoder; p enters the very first layer.
        h = nn.Conv(width, (3,), name="encoder_0")(audio * self.audio_scale)
        h = h + nn.Dense(width, name="init_in")(p)[:, None]
        h = act(_norm(self.norm, "encoder_norm_0")(h))
        for i in range(1, self.encoder_layers):
            h = nn.Conv(width, (3,), name=f"encoder_{i}")(h)
            h = act(_norm(self.norm, f"encoder_norm_{i}")(h))

        # 2. U-Net over time.
        skips = []
        for i in range(self.depth):
            skips.append(h)
            h = nn.Conv(width, (4,), strides=(2,), name=f"down_{i}")(h)
            h = act(_norm(self.norm, f"down_norm_{i}")(h))
        for i in reversed(range(self.depth)):
            h = jnp.repeat(h, 2, axis=1)  # nearest x2: no checkerboard of transposed convs
            h = nn.Conv(width, (3,), name=f"up_{i}")(jnp.concatenate([h, skips[i]], axis=-1))
            h = act(_norm(self.norm, f"up_norm_{i}")(h))

        # 3. p again at the U-Net output, so the start pose need not survive the bottleneck.
        h = nn.Conv(width, (3,), name="decoder_0")(h)
        h = h + nn.Dense(width, name="init_out")(p)[:, None]
        h = act(_norm(self.norm, "decoder_norm_0")(h))
        for i in range(1, self.decoder_layers):
            h = nn.Conv(width, (3,), name=f"decoder_{i}")(h)
            h = act(_norm(self.norm, f"decoder_norm_{i}")(h))
        return nn.Dense(POSE_DIM, name="out")(h) * self.pose_scale


class PoseGANDiscriminator(nn.Module):
    """D(x, y): conditional discriminator on a pose sequence and its audio (Sec. 4.1.2).

    The paper: "a CNN structure ... taking the generated head pose sequence G(x, p) combined
    with audio x as the input". We concatenate pose and audio per frame and run a 1D
    PatchGAN-style CNN (as Ginosar et al. [47], pix2pix): k=4 convs of widths `features`, the
    first `num_strided` with stride 2, LeakyReLU 0.2, no norm on the first layer, then a k=4
    conv to one logit per temporal patch. Layer sizes are our choice (paper silent).

    Attributes:
      features: widths of the hidden conv layers (default 64, 128, 256).
      num_strided: how many of them halve the time axis (default 2).
      norm, pose_scale, audio_scale: as in `PoseGANGenerator` (use the same scales for both).
    """

    features: Sequence[int] = (64, 128, 256)
    num_strided: int = 2
    norm: str = "layer"
    pose_scale: float = 0.1
    audio_scale: float = 1.0

    @nn.compact
    def __call__(self, pose: jnp.ndarray, audio: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """Scores pose sequences.

        Args:
          pose: [B, T, 6] real or generated poses.
          audio: [B, T, A] the audio they go with.
          train: unused (no train-dependent layers); kept for the common interface.

        Returns:
          [B, T / 2**num_strided] logits (ceil for T not a multiple), one per temporal patch;
          the GAN losses average over them.
        """
        del train
        h = jnp.concatenate([pose / self.pose_scale, audio * self.audio_scale], axis=-1)
        for i, width in enumerate(self.features):
            stride = 2 if i < self.num_strided else 1
            h = nn.Conv(width, (4,), strides=(stride,), name=f"conv_{i}")(h)
            if i > 0:
                h = _norm(self.norm, f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        return nn.Conv(1, (4,), name="logits")(h)[..., 0]


def num_windows(num_frames: int, window: int, overlap: bool = True) -> int:
    """Windows `generate_long` runs for `num_frames` frames."""
    step = window - int(overlap)
    return max(1, math.ceil((num_frames - int(overlap)) / step))


def generate_long(
    generator_apply: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
    audio: jnp.ndarray,
    init_pose: jnp.ndarray,
    window: int = WINDOW,
    overlap: bool = True,
) -> jnp.ndarray:
    """Generates a pose sequence of any length, window by window (Sec. 4.1.1).

    The first window starts from `init_pose` (the paper: the rest pose, approximated by the
    mean pose); every later window starts from the last generated pose of the previous one.

    With `overlap` (default) consecutive windows share one frame: window k covers frames
    [k (window - 1), k (window - 1) + window), its initial pose is the pose already generated
    for its first frame, and its own prediction for that frame is dropped. This matches
    training, where p *is* the pose of the window's first frame (and Eq. 3 pulls y_hat_0 to
    p). Without it, windows tile the sequence ([k window, (k + 1) window)) and p is the pose of
    the frame before the window's first one (the paper does not say which it does).

    The last window is padded by repeating the last audio frame (zeros are not silence for
    MFCCs) and its padded frames are cut.

    Args:
      generator_apply: JAX-traceable (audio [B, window, A], init_pose [B, 6]) -> [B, window, 6],
        e.g. `functools.partial(generator.apply, {"params": params})`. It runs once per window
        inside a `lax.scan`, so it is traced (and compiled) once.
      audio: [T_total, A] per-video-frame audio features.
      init_pose: [6] pose of frame 0.
      window: frames per generator call (256 in the paper); must suit the generator.
      overlap: share one frame between consecutive windows (see above).

    Returns:
      [T_total, 6] poses.
    """
    audio = jnp.asarray(audio)
    total = audio.shape[0]
    if audio.ndim != 2 or total == 0:
        raise InputError(f"audio must be [T_total > 0, A]; got shape {audio.shape}")
    if window < 2:
        raise InputError(f"window must be >= 2; got {window}")
    step = window - int(overlap)
    n = num_windows(total, window, overlap)
    padded = (n - 1) * step + window
    audio = jnp.pad(audio, ((0, padded - total), (0, 0)), mode="edge")
    starts = jnp.arange(n) * step
    windows = audio[starts[:, None] + jnp.arange(window)[None]]  # [n, window, A]

    def body(pose0, audio_window):
        out = generator_apply(audio_window[None], pose0[None])[0]
        return out[-1], out

    _, outs = jax.lax.scan(body, jnp.asarray(init_pose, audio.dtype), windows)
    # Later windows re-predict their shared first frame: keep the earlier prediction.
    pose = jnp.concatenate([outs[0], outs[1:, int(overlap) :].reshape(-1, POSE_DIM)], axis=0)
    return pose[:total]
