"""Triplet sampling of fixed-length windows for paper 000's head motion training.

A triplet is two windows of one video (anchor y1, positive y2) and one window of another
video (negative y3), plus the anchor's MFCC rows; Eq. 1-5 all read from it. Sampling is a
pure function of (seed, step), so a resumed run sees exactly the batches an uninterrupted
run would have seen.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from talkingjax import audio
from talkingjax.data.records import Clip, resample_pose
from talkingjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Video:
    """All frames of one video at the model fps, with its padded MFCC rows."""

    video_id: str
    pose: np.ndarray  # [F, 6] at the model fps
    mfcc: np.ndarray  # [R, 13], speech_features rows
    style: np.ndarray | None


def prepare_videos(clips: list[Clip], fps: float) -> list[Video]:
    """Resamples every clip's pose to `fps` and trims it to the frames its audio covers.

    Several clips of one video stay separate `Video`s sharing the id: a window never straddles
    two clips, whose audio need not be contiguous.
    """
    videos = []
    for clip in clips:
        pose = resample_pose(clip.pose, clip.fps, fps)
        frames = min(pose.shape[0], audio.frames_in_features(clip.mfcc.shape[0], fps))
        videos.append(Video(clip.video_id, pose[:frames], clip.mfcc, clip.style))
    return videos


class TripletSampler:
    """Samples (y1, y2, y3, audio of y1) windows of `window` frames at the model fps."""

    def __init__(self, videos: list[Video], window: int, fps: float, seed: int):
        self.fps = fps
        self.window = window
        self.seed = seed
        self.rows_per_frame = int(round(audio.ROWS_PER_SECOND / fps))
        self.videos = [v for v in videos if v.pose.shape[0] >= window]
        if len({v.video_id for v in self.videos}) < 2:
            raise InputError(
                f"triplet sampling needs clips of at least 2 videos with >= {window} frames "
                f"({window / fps:.1f} s) each; got {len(self.videos)} usable clips"
            )
        ids = sorted({v.video_id for v in self.videos})
        self._by_id = {i: [j for j, v in enumerate(self.videos) if v.video_id == i] for i in ids}
        self._ids = ids
        # Offset of frame 0's window start in `speech_features` rows (0 at 25 fps).
        self._row0 = int(audio.window_starts(1, fps)[0])

    def windows_per_epoch(self) -> int:
        """Non-overlapping windows in the data: one epoch draws this many anchors."""
        return sum(v.pose.shape[0] // self.window for v in self.videos)

    def _window(self, rng, video_index):
        v = self.videos[video_index]
        start = int(rng.integers(0, v.pose.shape[0] - self.window + 1))
        return v, start

    def _rows(self, v: Video, start: int) -> np.ndarray:
        n_rows = (self.window - 1) * self.rows_per_frame + audio.WINDOW_ROWS
        r = self._row0 + start * self.rows_per_frame
        return v.mfcc[r : r + n_rows]

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """The batch of training step `step`.

        Returns:
          {"pose": float32 [B, 3, window, 6] (y1, y2, y3),
           "mfcc": float32 [B, rows, 13] the anchor's audio, rows = (window-1)*stride + 28}
        """
        # The step's RNG is fold_in(key(seed), step), as for any stochastic layer: a resumed
        # run draws exactly the batches an uninterrupted one would.
        key = jax.random.fold_in(jax.random.key(self.seed), step)
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)))
        poses, mfccs = [], []
        for _ in range(batch_size):
            a_id, n_id = rng.choice(len(self._ids), size=2, replace=False)
            a_clips = self._by_id[self._ids[a_id]]
            va, sa = self._window(rng, a_clips[rng.integers(len(a_clips))])
            vp, sp = self._window(rng, a_clips[rng.integers(len(a_clips))])
            n_clips = self._by_id[self._ids[n_id]]
            vn, sn = self._window(rng, n_clips[rng.integers(len(n_clips))])
            w = self.window
            poses.append(
                np.stack([va.pose[sa : sa + w], vp.pose[sp : sp + w], vn.pose[sn : sn + w]])
            )
            mfccs.append(self._rows(va, sa))
        return {
            "pose": np.stack(poses).astype(np.float32),
            "mfcc": np.stack(mfccs).astype(np.float32),
        }
