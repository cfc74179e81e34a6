"""AV offset and AV confidence: the SyncNet protocol (Chung & Zisserman 2016), paper 000 Table III.

Given an embedding of every 5-frame video window of a clip and of every audio window
(`talkingjax.models.sync.SyncNet`, windows from `talkingjax.data.sync`), the protocol measures
the Euclidean distance between each video window and the audio window at every offset d in
-15..15 frames (d > 0: the audio lags the video by d frames, the convention of
`talkingjax.data.sync`), averages those distances over the video windows into one curve of 31
values, and reads

    AV offset     = the offset of the curve's minimum (0 for a clip in sync; k for a clip
                    whose audio was delayed by k frames),
    AV confidence = median(curve) - min(curve)  (how sharply one offset stands out; about 0
                    for a still face, whose video embedding is the same at every offset).

Pure NumPy: no model code. Distances of missing audio windows (before the start or past the
end of the audio) are NaN and left out of the averages; a scorer first keeps only the video
windows with audio at every offset (`complete_rows`), when the clip has any.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from talkingjax.errors import InputError

MAX_OFFSET = 15  # frames at 25 fps (+-0.6 s), as SyncNet's evaluation


def distance_matrix(
    video_emb: np.ndarray, audio_emb: np.ndarray, max_offset: int = MAX_OFFSET
) -> np.ndarray:
    """Distances of every video window to the audio at every offset.

    Args:
      video_emb: [W, D] embeddings of video windows t = 0..W-1; NaN rows for windows to
        leave out (e.g. a frame without a detected face).
      audio_emb: [W + 2K, D] embeddings of audio positions p = -K..W-1+K (entry i is position
        p = i - K, `talkingjax.data.sync.audio_scan`); NaN rows for missing audio windows.
      max_offset: K.

    Returns:
      float64 [W, 2K + 1]: dist[t, d + K] = ||video_emb[t] - audio_emb[t + d + K]||, NaN where
      either row is NaN.
    """
    v = np.asarray(video_emb, np.float64)
    a = np.asarray(audio_emb, np.float64)
    k = int(max_offset)
    if v.ndim != 2 or a.ndim != 2 or a.shape != (v.shape[0] + 2 * k, v.shape[1]):
        raise InputError(
            f"embeddings are {v.shape} (video) and {a.shape} (audio); need [W, D] and "
            f"[W + {2 * k}, D]"
        )
    idx = np.arange(v.shape[0])[:, None] + np.arange(2 * k + 1)[None, :]  # [W, 2K + 1]
    return np.linalg.norm(v[:, None, :] - a[idx], axis=-1)


def complete_rows(dists: np.ndarray) -> np.ndarray:
    """The rows (video windows) with a distance at every offset, if any; else all rows.

    Averaging only complete rows makes every offset's mean one over the same windows, so the
    curve's shape reflects the offset alone. With partial rows, the extreme offsets of a
    short clip average a different, smaller subset of windows (those with audio that far
    away), whose mean can dip below the true minimum by chance (measured: a 4.3 s clip read
    +15 instead of 0).

    Args:
      dists: [W, O] distances (`distance_matrix`), NaN where missing.

    Returns:
      [W', O], W' >= 1 when W >= 1: the complete rows, or `dists` unchanged when none is.
    """
    d = np.asarray(dists, np.float64)
    full = np.all(np.isfinite(d), axis=1)
    return d[full] if full.any() else d


def centre_audio(dists: np.ndarray) -> np.ndarray:
    """Distances minus the mean distance of their audio window (to every video window reading it).

    dist[t, j] reads audio position p = t + j; each entry is reduced by the mean of all finite
    entries reading the same p. A video that cannot follow the audio -- a still face, whose
    every window has one embedding, so dist[t, j] depends on p alone -- becomes exactly 0
    everywhere (a flat curve: no confidence, whatever the audio), and audio windows that are
    far from every video window (silence, music) no longer pull the curve of the offsets that
    read them. A match stands out of the mean over the 2K + 1 windows reading it, so
    the in-sync minimum remains.

    Args:
      dists: [W, 2K + 1] (`distance_matrix`), NaN where missing.

    Returns:
      [W, 2K + 1], NaN where `dists` is.
    """
    d = np.asarray(dists, np.float64)
    w, o = d.shape
    pos = np.arange(w)[:, None] + np.arange(o)[None, :]
    ok = np.isfinite(d)
    total = np.zeros(w + o - 1)
    count = np.zeros(w + o - 1)
    np.add.at(total, pos[ok], d[ok])
    np.add.at(count, pos[ok], 1.0)
    mean = total / np.maximum(count, 1.0)
    return np.where(ok, d - mean[pos], np.nan)


def offset_curve(dists: np.ndarray) -> np.ndarray:
    """[W, O] distances -> [O] mean over the windows (NaNs left out)."""
    d = np.asarray(dists, np.float64)
    if d.ndim != 2 or d.shape[0] == 0:
        raise InputError(f"distances are {d.shape}; need [W >= 1, offsets]")
    counts = np.sum(np.isfinite(d), axis=0)
    if np.any(counts == 0):
        raise InputError("an offset has no audio window at all; the clip is too short")
    return np.nansum(d, axis=0) / counts


@dataclasses.dataclass(frozen=True)
class SyncScore:
    """The result of the protocol on one clip.

    Attributes:
      offset: AV offset in frames (25 fps); > 0: the audio lags the video.
      confidence: AV confidence, median(curve) - min(curve) (distance units).
      min_distance: min(curve).
      curve: [O] mean distance per offset.
      offsets: [O] the offsets of the curve (-K..K).
      num_windows: video windows averaged.
    """

    offset: int
    confidence: float
    min_distance: float
    curve: np.ndarray
    offsets: np.ndarray
    num_windows: int

    def to_dict(self) -> dict:
        return {
            "av_offset": self.offset,
            "av_confidence": self.confidence,
            "min_distance": self.min_distance,
            "num_windows": self.num_windows,
        }


def av_sync(dists: np.ndarray, max_offset: int | None = None) -> SyncScore:
    """AV offset and confidence from a [W, 2K + 1] distance matrix (`distance_matrix`).

    Args:
      dists: dist[t, d + K] for offsets d = -K..K.
      max_offset: K; default (columns - 1) / 2.

    Returns:
      `SyncScore`: offset = the d of the smallest mean distance (the smaller |d|, then the
      smaller d, on an exact tie), confidence = median - min of the mean distances.
    """
    d = np.asarray(dists, np.float64)
    k = (d.shape[-1] - 1) // 2 if max_offset is None else int(max_offset)
    if d.ndim != 2 or d.shape[1] != 2 * k + 1:
        raise InputError(f"distances are {d.shape}; need [W, {2 * k + 1}]")
    curve = offset_curve(d)
    offsets = np.arange(-k, k + 1)
    low = np.flatnonzero(curve == curve.min())
    best = int(low[np.lexsort((offsets[low], np.abs(offsets[low])))[0]])
    return SyncScore(
        offset=int(offsets[best]),
        confidence=float(np.median(curve) - curve[best]),
        min_distance=float(curve[best]),
        curve=curve,
        offsets=offsets,
        num_windows=int(np.sum(np.any(np.isfinite(d), axis=1))),
    )
