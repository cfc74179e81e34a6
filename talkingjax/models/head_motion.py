"""Paper 000, Sec. III-C: head motion encoder E_m and decoder D_m.

E_m maps a head-pose clip (T x 6) to a motion behaviour pattern x in R^k; D_m maps MFCC rows
of any speech plus x to a pose per video frame. Defaults are the reference code's sizes
(../shared/docs/reference-facts.md), 12.4 M parameters in all; every size is configurable.

The decoder is split into `audio_features` (LSTM + the 280 ms window convolution, which do not
depend on x) and `head` (x concatenated at every frame, then the conv head). Eq. 5 decodes one
audio with three patterns; running the audio trunk once and the head three times is exactly
the same function as three full decoder calls, at about a third of the cost.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from talkingjax import audio
from talkingjax.models.layers import StackedLSTM, conv1d_matmul, operand_dtype


class MotionEncoder(nn.Module):
    """E_m: LSTM over a pose clip, final (h, c) of every layer, MLP to the pattern.

    Attributes:
      hidden: LSTM width (reference 256).
      num_layers: LSTM depth (reference 3).
      mlp_features: hidden MLP widths (reference 256-128-64-32).
      pattern_dim: k, the size of the motion behaviour pattern (paper: 16).
      pose_scale: poses are divided by this on the way in (see `PoseDecoder`).
      chrono_steps: chrono initialisation of the LSTM gates for memories up to this many
        frames (see `StackedLSTM`); the final state must summarise the whole clip. None uses a
        plain forget bias of 1.
      matmul_dtype: operand dtype of the LSTM's matrix products (None / "float32", or
        "bfloat16": see `PoseDecoder`).
    """

    hidden: int = 256
    num_layers: int = 3
    mlp_features: Sequence[int] = (256, 128, 64, 32)
    pattern_dim: int = 16
    pose_scale: float = 0.1
    chrono_steps: int | None = 300
    matmul_dtype: Any = None

    @nn.compact
    def __call__(self, pose: jnp.ndarray, lengths: jnp.ndarray | None = None) -> jnp.ndarray:
        """Encodes pose clips.

        Args:
          pose: [B, T, 6] Euler angles (rad) + translation per frame, at the model's fps.
          lengths: optional int [B] of valid frames (the rest is bucket padding).

        Returns:
          [B, pattern_dim] motion behaviour patterns.
        """
        pose = pose / self.pose_scale
        lstm = StackedLSTM(
            self.hidden,
            self.num_layers,
            chrono_steps=self.chrono_steps,
            matmul_dtype=self.matmul_dtype,
            name="lstm",
        )
        _, finals = lstm(pose, lengths)
        h = jnp.concatenate([t for hc in finals for t in hc], axis=-1)  # [B, 2 * layers * hidden]
        for i, width in enumerate(self.mlp_features):
            h = nn.relu(nn.Dense(width, name=f"mlp_{i}")(h))
        return nn.Dense(self.pattern_dim, name="pattern")(h)


class PoseDecoder(nn.Module):
    """D_m: MFCC rows (100 Hz) + pattern -> absolute pose per video frame.

    Attributes:
      hidden, num_layers: audio LSTM (reference 256 x 3).
      window_features: channels of the 280 ms window convolution (reference 1024).
      head_features: widths of the k=3 conv layers after concatenating x (reference 512, 256).
      rows_per_frame: MFCC rows per video frame, i.e. the window conv stride (4 at 25 fps).
      pose_dim: 6.
      norm: "batch" (reference) or "none".
      bn_axis_name: mesh axis over which batch statistics are averaged in data-parallel training.
      pose_scale: the network predicts pose / pose_scale. Head poses spread over ~0.1 rad
        (6 deg) and ~0.1 translation units; predicting (and encoding) unit-scale values lets
        the default initialisation and Adam's step sizes fit them within a few hundred steps.
        1.0 is the reference's raw parameterisation.
      mfcc_scale: MFCC rows are multiplied by this before the LSTM. Raw reference MFCCs span
        about +-70 (log energy -36 in silence), which saturates the gates of a default-
        initialised LSTM; 1.0 feeds them raw, as the reference does.
      matmul_dtype: operand dtype of every matrix product and convolution of the decoder
        (LSTM forward and backward, window conv, head convs). None / "float32": float32
        throughout. "bfloat16": operands rounded to bfloat16, sums, parameters, states and
        BatchNorm in float32 (`layers.matmul`; the convolutions run as matrix products,
        `layers.conv1d_matmul`), several times faster on CPUs with AMX / AVX-512 BF16 and on
        GPUs / TPUs; measured against float32 in `benchmarks/pose_speed.py`.
    """

    hidden: int = 256
    num_layers: int = 3
    window_features: int = 1024
    head_features: Sequence[int] = (512, 256)
    rows_per_frame: int = 4
    pose_dim: int = 6
    norm: str = "batch"
    bn_axis_name: str | None = None
    pose_scale: float = 0.1
    mfcc_scale: float = 1.0
    matmul_dtype: Any = None

    def setup(self):
        self.lstm = StackedLSTM(self.hidden, self.num_layers, matmul_dtype=self.matmul_dtype)
        dtype = operand_dtype(self.matmul_dtype)
        conv = nn.Conv
        if dtype is not None:
            conv = functools.partial(
                nn.Conv, conv_general_dilated=functools.partial(conv1d_matmul, dtype=dtype)
            )
        self.window_conv = conv(
            self.window_features,
            (audio.WINDOW_ROWS,),
            strides=(self.rows_per_frame,),
            padding="VALID",
        )
        # The first head conv sees concat(audio features, x). It is stored as two kernels,
        # one per part of the concatenation (the same linear map), so that the large audio
        # part runs once per audio instead of once per pattern (Eq. 5 uses three).
        self.head_in_audio = conv(self.head_features[0], (3,), padding="SAME", use_bias=False)
        self.head_in_pattern = conv(self.head_features[0], (3,), padding="SAME")
        self.head_convs = [conv(w, (3,), padding="SAME") for w in self.head_features[1:]]
        if self.norm == "batch":
            self.head_norms = [
                nn.BatchNorm(momentum=0.9, axis_name=self.bn_axis_name) for _ in self.head_features
            ]
        elif self.norm != "none":
            raise ValueError(f"unknown norm {self.norm!r}; expected 'batch' or 'none'")
        self.out = conv(self.pose_dim, (1,))

    def audio_features(self, mfcc: jnp.ndarray) -> jnp.ndarray:
        """[B, R, 13] MFCC rows -> [B, F, window_features] per-frame audio features.

        Frame f sees rows [f * rows_per_frame, f * rows_per_frame + 28), the reference window
        (`talkingjax.audio.window_starts` at the model's fps), so F = (R - 28) // stride + 1.
        """
        seq, _ = self.lstm(mfcc * self.mfcc_scale)
        return self.window_conv(seq)

    def head(
        self,
        feats: jnp.ndarray,
        pattern: jnp.ndarray,
        train: bool = False,
        num_frames: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Per-frame features + pattern(s) -> pose.

        Args:
          feats: [B, F, C] from `audio_features`.
          pattern: [B, k], or [B, P, k] to decode the same audio with P patterns.
          train: use batch statistics (and update the running ones).
          num_frames: optional int [B] of valid frames; later frames are zeroed before every
            k=3 conv, so padding to a length bucket reproduces the unpadded result exactly.

        Returns:
          [B, F, 6], or [B, P, F, 6].
        """
        multi = pattern.ndim == 3
        if not multi:
            pattern = pattern[:, None]
        b, p, k = pattern.shape
        frames = feats.shape[1]
        pattern = jnp.broadcast_to(pattern[:, :, None], (b, p, frames, k)).reshape(b * p, frames, k)
        valid = None
        if num_frames is not None:
            valid = (jnp.arange(frames)[None] < num_frames[:, None])[..., None]  # [B, F, 1]
            feats = jnp.where(valid, feats, 0.0)
            valid = jnp.repeat(valid, p, axis=0)
            pattern = jnp.where(valid, pattern, 0.0)
        h = jnp.repeat(self.head_in_audio(feats), p, axis=0) + self.head_in_pattern(pattern)
        for i, conv in enumerate([None, *self.head_convs]):
            if conv is not None:
                if valid is not None:
                    h = jnp.where(valid, h, 0.0)
                h = conv(h)
            if self.norm == "batch":
                h = self.head_norms[i](h, use_running_average=not train)
            h = nn.relu(h)
        y = self.out(h).reshape(b, p, frames, self.pose_dim) * self.pose_scale
        return y if multi else y[:, 0]

    def __call__(self, mfcc, pattern, train: bool = False, num_frames=None):
        return self.head(self.audio_features(mfcc), pattern, train=train, num_frames=num_frames)


class HeadMotionModel(nn.Module):
    """E_m and D_m under one parameter tree ({"encoder": ..., "decoder": ...})."""

    encoder: MotionEncoder
    decoder: PoseDecoder

    def encode(self, pose, lengths=None):
        return self.encoder(pose, lengths)

    def decode(self, mfcc, pattern, train: bool = False, num_frames=None):
        return self.decoder(mfcc, pattern, train=train, num_frames=num_frames)

    def __call__(self, pose, mfcc, train: bool = False):
        """Reconstructs: pattern of `pose`, then pose from `mfcc` and that pattern (Eq. 3)."""
        return self.decode(mfcc, self.encode(pose), train=train)


def rows_for_frames(num_frames: int, rows_per_frame: int) -> int:
    """MFCC rows the decoder needs to produce `num_frames` frames."""
    return (num_frames - 1) * rows_per_frame + audio.WINDOW_ROWS


def build_model(cfg) -> HeadMotionModel:
    """Builds the model from a `config.model` ConfigDict (see experiments/configs/pose.py)."""
    rows_per_frame = audio.ROWS_PER_SECOND / cfg.fps
    if abs(rows_per_frame - round(rows_per_frame)) > 1e-9:
        raise ValueError(f"model fps must divide {audio.ROWS_PER_SECOND}, got {cfg.fps}")
    encoder = MotionEncoder(
        hidden=cfg.encoder_hidden,
        num_layers=cfg.encoder_layers,
        mlp_features=tuple(cfg.encoder_mlp),
        pattern_dim=cfg.pattern_dim,
        pose_scale=cfg.pose_scale,
        chrono_steps=cfg.encoder_chrono_steps or None,
        matmul_dtype=cfg.get("matmul_dtype"),
    )
    decoder = PoseDecoder(
        hidden=cfg.decoder_hidden,
        num_layers=cfg.decoder_layers,
        window_features=cfg.window_features,
        head_features=tuple(cfg.head_features),
        rows_per_frame=int(round(rows_per_frame)),
        norm=cfg.norm,
        bn_axis_name=cfg.get("bn_axis_name"),
        pose_scale=cfg.pose_scale,
        mfcc_scale=cfg.mfcc_scale,
        matmul_dtype=cfg.get("matmul_dtype"),
    )
    return HeadMotionModel(encoder=encoder, decoder=decoder)
