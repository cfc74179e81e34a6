"""The AV-sync instrument's network (issue 19): SyncNet-style audio and mouth encoders.

After Chung & Zisserman 2016 (SyncNet) and Chung et al. 2019 ("Perfect match"), at a size the
project can train on its corpus and ship: two small conv stacks map a video window (5 stacked
grayscale mouth crops, `talkingjax.data.sync`) and an audio window (20 MFCC rows x 13, 0.2 s)
to L2-normalised embeddings of one size; in sync, the two embeddings of a moment are close
(trained with `talkingjax.losses.sync.multiway_matching_loss`, scored with the SyncNet
protocol, `talkingjax.metrics.sync`).

Video encoder: [B, 48, 96, 5] in [0, 1] -> per-window standardisation (mean 0, std 1 over
the window, so lighting and contrast do not matter) -> per stage: 3x3 conv stride 2, 3x3 conv
stride 1, each with GroupNorm + ReLU (default widths 32, 64, 96, 128: 48 x 96 -> 3 x 6) ->
flatten -> dense -> L2 normalise.

Audio encoder: [B, 20, 13] MFCC rows -> x `mfcc_scale` -> the same stages over the (time,
cepstrum) image, the first at stride 1 (default widths 32, 64, 128: 20 x 13 -> 5 x 4) ->
flatten -> dense -> L2 normalise.

GroupNorm (no batch statistics) keeps the model stateless: one window's embedding never
depends on the others in its batch, as the scorer needs.

Size and cost (default sizes, `SyncNet()`): 1.37 M parameters (5.5 MB float32, half that
stored as bfloat16): video 0.76 M (0.30 M of them in the final dense), audio 0.62 M (0.33 M in
its dense). Forward ~86 MFLOP per video window and ~22 MFLOP per audio window (analytic, a
multiply-add counts 2; XLA's cost analysis says 80 and 19), so scoring a 10 s clip (246 video
windows, 276 audio positions for offsets +-15) costs ~27 GFLOP, and a training example with 31
candidate offsets ~0.77 GFLOP forward (~2.3 GFLOP with the backward pass), over 85% of it in
the audio encoder. `SyncNet(**TINY)` (16-d, widths 8, 16) is for tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

EMBED_DIM = 128
TINY = {"video_features": (8, 16), "audio_features": (8, 16), "embed_dim": 16}


def l2_normalise(x: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
    """x / max(||x||, eps) over the last axis."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def _norm(features: int) -> nn.GroupNorm:
    # Up to 8 groups: one channel per group in the tiny model, 4-16 in the default.
    return nn.GroupNorm(num_groups=None, group_size=max(features // 8, 1))


class ConvStack(nn.Module):
    """Stages of (3x3 conv at `strides[i]`, GroupNorm, ReLU, 3x3 conv, GroupNorm, ReLU).

    Attributes:
      features: output channels per stage.
      strides: the first conv's stride per stage (same length as `features`).
    """

    features: Sequence[int]
    strides: Sequence[int]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """[B, H, W, C] -> [B, H', W', features[-1]]."""
        for f, s in zip(self.features, self.strides, strict=True):
            for stride in (s, 1):
                x = nn.Conv(f, (3, 3), strides=(stride, stride), padding="SAME")(x)
                x = nn.relu(_norm(f)(x))
        return x


class VideoEncoder(nn.Module):
    """[..., 48, 96, 5] mouth windows in [0, 1] -> [..., embed_dim] unit vectors."""

    features: Sequence[int] = (32, 64, 96, 128)
    embed_dim: int = EMBED_DIM

    @nn.compact
    def __call__(self, video: jnp.ndarray) -> jnp.ndarray:
        lead = video.shape[:-3]
        x = video.reshape((-1, *video.shape[-3:]))
        mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
        std = jnp.std(x, axis=(1, 2, 3), keepdims=True)
        x = (x - mean) / (std + 0.02)
        x = ConvStack(tuple(self.features), (2,) * len(self.features))(x)
        x = nn.Dense(self.embed_dim)(x.reshape(x.shape[0], -1))
        return l2_normalise(x).reshape((*lead, self.embed_dim))


class AudioEncoder(nn.Module):
    """[..., 20, 13] MFCC windows -> [..., embed_dim] unit vectors.

    Attributes:
      mfcc_scale: raw MFCCs span about +-40 (log energy down to -36 in the zero padding); the
        first GroupNorm removes the scale anyway, this only keeps the first conv's
        pre-activations near unit size at initialisation.
    """

    features: Sequence[int] = (32, 64, 128)
    embed_dim: int = EMBED_DIM
    mfcc_scale: float = 0.05

    @nn.compact
    def __call__(self, mfcc: jnp.ndarray) -> jnp.ndarray:
        lead = mfcc.shape[:-2]
        x = mfcc.reshape((-1, *mfcc.shape[-2:], 1)) * self.mfcc_scale
        strides = (1,) + (2,) * (len(self.features) - 1)
        x = ConvStack(tuple(self.features), strides)(x)
        x = nn.Dense(self.embed_dim)(x.reshape(x.shape[0], -1))
        return l2_normalise(x).reshape((*lead, self.embed_dim))


class SyncNet(nn.Module):
    """Video and audio encoders under one parameter tree ({"video": ..., "audio": ...}).

    Attributes:
      video_features: channels of the video stages (each halves the resolution).
      audio_features: channels of the audio stages (all but the first halve it).
      embed_dim: size of both embeddings.
    """

    video_features: Sequence[int] = (32, 64, 96, 128)
    audio_features: Sequence[int] = (32, 64, 128)
    embed_dim: int = EMBED_DIM

    def setup(self):
        self.video = VideoEncoder(tuple(self.video_features), self.embed_dim)
        self.audio = AudioEncoder(tuple(self.audio_features), self.embed_dim)

    def encode_video(self, video: jnp.ndarray) -> jnp.ndarray:
        """[..., 48, 96, 5] float in [0, 1] -> [..., embed_dim], unit L2 norm."""
        return self.video(video)

    def encode_audio(self, mfcc: jnp.ndarray) -> jnp.ndarray:
        """[..., 20, 13] `speech_features` rows -> [..., embed_dim], unit L2 norm."""
        return self.audio(mfcc)

    def __call__(self, video: jnp.ndarray, mfcc: jnp.ndarray):
        """(encode_video(video), encode_audio(mfcc)); e.g. [B, D] and [B, 2K + 1, D]."""
        return self.encode_video(video), self.encode_audio(mfcc)
