"""The AV-sync instrument's training loss: multi-way matching over offsets (issue 19).

Chung et al. 2019 ("Perfect match: improved cross-modal embeddings for audio-visual
synchronisation") train SyncNet-style encoders as an N-way classification instead of
SyncNet's pairwise contrastive loss: a video window is compared with N candidate audio
windows -- the same clip's audio at N offsets, one of them the true one -- and a softmax over
the N similarities is trained with cross-entropy to the true offset. Here the similarity is
the cosine of the two embeddings divided by a temperature.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

TEMPERATURE = 0.1


def offset_logits(
    video_emb: jnp.ndarray, audio_emb: jnp.ndarray, temperature: float = TEMPERATURE
) -> jnp.ndarray:
    """Cosine similarity / temperature of each video window with its candidate audio windows.

    Args:
      video_emb: [B, D] video-window embeddings.
      audio_emb: [B, O, D] the candidate audio windows of each video window (O offsets).
      temperature: divides the cosines (> 0).

    Returns:
      [B, O] logits[b, o] = cos(video_emb[b], audio_emb[b, o]) / temperature; the embeddings
      need not be normalised (they are, here, with a 1e-6 floor on the norm).
    """
    eps = 1e-6
    v = video_emb / jnp.maximum(jnp.linalg.norm(video_emb, axis=-1, keepdims=True), eps)
    a = audio_emb / jnp.maximum(jnp.linalg.norm(audio_emb, axis=-1, keepdims=True), eps)
    return jnp.einsum("bd,bod->bo", v, a) / temperature


def multiway_matching_loss(
    video_emb: jnp.ndarray,
    audio_emb: jnp.ndarray,
    target: jnp.ndarray | None = None,
    temperature: float = TEMPERATURE,
) -> jnp.ndarray:
    """Perfect match's N-way loss over offsets.

    Args:
      video_emb: [B, D] video-window embeddings.
      audio_emb: [B, O, D] candidate audio windows (`talkingjax.data.sync.SyncSampler`: the
        same clip's audio at offsets -K..K, O = 2K + 1).
      target: int [B] index of the true candidate; default O // 2 (offset 0 of -K..K).
      temperature: of `offset_logits`.

    Returns:
      scalar mean over the batch of -log softmax(logits[b])[target[b]].
    """
    logits = offset_logits(video_emb, audio_emb, temperature)
    if target is None:
        target = jnp.full((logits.shape[0],), logits.shape[1] // 2, jnp.int32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, target[:, None], axis=-1))


def offset_accuracy(
    video_emb: jnp.ndarray, audio_emb: jnp.ndarray, target: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Fraction of the batch whose most similar candidate is the true one (shapes as above)."""
    logits = offset_logits(video_emb, audio_emb, 1.0)
    if target is None:
        target = jnp.full((logits.shape[0],), logits.shape[1] // 2, jnp.int32)
    return jnp.mean((jnp.argmax(logits, axis=-1) == target).astype(jnp.float32))


def run_candidates(
    audio_emb: jnp.ndarray, num_windows: int, max_offset: int, stride: int = 1
) -> jnp.ndarray:
    """The candidates of runs of consecutive windows (`SyncSampler(run=R)`).

    Args:
      audio_emb: [G, R + 2K, D] embeddings of audio positions t-K..t+R-1+K of each run.
      num_windows: R, video windows per run.
      max_offset: K.
      stride: keep every `stride`-th offset (K % stride == 0, so offset 0 stays a candidate):
        offsets -K, -K + stride, ..., K.

    Returns:
      [G, R, C, D], C = 2K / stride + 1: out[g, r, j] = audio_emb[g, r + j * stride], the
      audio of window r at offset -K + j * stride; the true (offset 0) candidate is j = K / stride.
    """
    if max_offset % stride:
        raise ValueError(f"max_offset {max_offset} is not a multiple of the stride {stride}")
    if audio_emb.shape[1] != num_windows + 2 * max_offset:
        raise ValueError(
            f"audio embeddings have {audio_emb.shape[1]} positions; runs of {num_windows} "
            f"windows at offsets +-{max_offset} need {num_windows + 2 * max_offset}"
        )
    idx = jnp.arange(num_windows)[:, None] + stride * jnp.arange(2 * max_offset // stride + 1)
    return audio_emb[:, idx]


def run_matching_loss(
    video_emb: jnp.ndarray,
    audio_emb: jnp.ndarray,
    max_offset: int,
    stride: int = 1,
    temperature: float = TEMPERATURE,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`multiway_matching_loss` and `offset_accuracy` of runs of windows.

    Args:
      video_emb: [G, R, D] embeddings of R consecutive video windows per run.
      audio_emb: [G, R + 2K, D] embeddings of the runs' audio positions.
      max_offset: K.
      stride: offsets kept as candidates (`run_candidates`).
      temperature: of `offset_logits`.

    Returns:
      (loss, accuracy) over the G R windows.
    """
    g, r, d = video_emb.shape
    cand = run_candidates(audio_emb, r, max_offset, stride)
    v = video_emb.reshape(g * r, d)
    a = cand.reshape(g * r, cand.shape[2], d)
    target = jnp.full((g * r,), max_offset // stride, jnp.int32)
    return (
        multiway_matching_loss(v, a, target, temperature),
        offset_accuracy(v, a, target),
    )
