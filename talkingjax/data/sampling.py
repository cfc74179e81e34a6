"""Triplet sampling of fixed-length windows for paper 000's head motion training.

A triplet is two windows of one video (anchor y1, positive y2) and one window of another
video (negative y3), plus the anchor's MFCC rows; Eq. 1-5 all read from it. Sampling is a
pure function of (seed, step), so a resumed run sees exactly the batches an uninterrupted
run would have seen.

Pose-only triplets (`TripletSampler(..., pose_only=True)` over `prepare_videos(...,
pose_only=True)`) have no audio: Eq. 1 (the encoder's contrastive phase) needs none, so
records without speech (`records.Clip.has_audio` False) can serve there too.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from talkingjax import audio
from talkingjax.data.records import Clip, require_audio, resample_pose
from talkingjax.errors import InputError


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The NumPy generator of training step `step`: seeded from fold_in(key(seed), step).

    As for any stochastic layer, so a resumed run draws exactly the batches an uninterrupted
    one would.
    """
    key = jax.random.fold_in(jax.random.key(seed), step)
    return np.random.default_rng(np.asarray(jax.random.key_data(key)))


def with_seeds(sample, seed: int):
    """Wraps a sampler `(step, batch_size) -> batch` to add "seed": int32 [B], per-example
    seeds for stochastic layers (dropout), drawn from `step_rng(seed, step)`: pass a seed
    stream the sampler itself does not use, so the seeds are not its draws."""

    def sample_with_seeds(step: int, batch_size: int) -> dict:
        batch = sample(step, batch_size)
        rng = step_rng(seed, step)
        batch["seed"] = rng.integers(0, 2**31 - 1, size=batch_size, dtype=np.int64).astype(np.int32)
        return batch

    return sample_with_seeds


@dataclasses.dataclass(frozen=True)
class Video:
    """All frames of one clip at the model fps, with its padded MFCC rows.

    `video_id` names the source of motion the clip belongs to (a video, or after
    `data.corpus.apply_split` a speaker); several clips may share it.
    """

    video_id: str
    pose: np.ndarray  # [F, 6] at the model fps
    mfcc: np.ndarray  # [R, 13], speech_features rows; [0, 13] for a record without speech
    style: np.ndarray | None
    clip_id: str = ""
    has_audio: bool = True


def prepare_videos(clips: list[Clip], fps: float, pose_only: bool = False) -> list[Video]:
    """Resamples every clip's pose to `fps` and trims it to the frames its audio covers.

    Several clips of one video stay separate `Video`s sharing the id: a window never straddles
    two clips, whose audio need not be contiguous.

    Args:
      clips: records; with `pose_only` False each must have speech (`require_audio`).
      fps: the model's frame rate.
      pose_only: for uses that read the pose alone (Eq. 1, pattern retrieval): records without
        speech are accepted and every clip keeps all its pose frames (no trim to the audio).
    """
    videos = []
    for clip in clips:
        if not pose_only:
            require_audio(clip, "triplet sampling")
        pose = resample_pose(clip.pose, clip.fps, fps)
        frames = pose.shape[0]
        if not pose_only:
            frames = min(frames, audio.frames_in_features(clip.mfcc.shape[0], fps))
        videos.append(
            Video(clip.video_id, pose[:frames], clip.mfcc, clip.style, clip.clip_id, clip.has_audio)
        )
    return videos


class TripletSampler:
    """Samples (y1, y2, y3, audio of y1) windows of `window` frames at the model fps.

    With `pose_only` the batches hold the three pose windows only (no "mfcc"): the encoder's
    contrastive phase (Eq. 1), which may then draw from records without speech too. Without
    it every video must have speech.
    """

    def __init__(
        self, videos: list[Video], window: int, fps: float, seed: int, pose_only: bool = False
    ):
        self.fps = fps
        self.window = window
        self.seed = seed
        self.pose_only = pose_only
        self.rows_per_frame = int(round(audio.ROWS_PER_SECOND / fps))
        if not pose_only:
            silent = [v.clip_id or v.video_id for v in videos if not v.has_audio]
            if silent:
                raise InputError(
                    f"triplets with audio need speech; {len(silent)} clips have none "
                    f"(e.g. {silent[0]}): sample them with pose_only=True"
                )
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
           "mfcc": float32 [B, rows, 13] the anchor's audio, rows = (window-1)*stride + 28;
           absent with `pose_only`}
        """
        rng = step_rng(self.seed, step)
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
            if not self.pose_only:
                mfccs.append(self._rows(va, sa))
        batch = {"pose": np.stack(poses).astype(np.float32)}
        if not self.pose_only:
            batch["mfcc"] = np.stack(mfccs).astype(np.float32)
        return batch


@dataclasses.dataclass(frozen=True)
class ExpressionClip:
    """One clip at the model fps: per-frame audio windows with expression and pose targets."""

    clip_id: str
    windows: np.ndarray  # [T, 28, 12] MFCC windows (energy row dropped)
    exp: np.ndarray  # [T, K]
    pose: np.ndarray  # [T, 6]
    energy: np.ndarray  # [T] log energy at the frame's window centre (for evaluation)


def prepare_expression_clips(
    clips: list[Clip], fps: float, num_exp: int, first_frames: int | None = None
) -> list[ExpressionClip]:
    """Clips with expression targets -> `ExpressionClip`s at `fps`.

    Args:
      clips: records with `exp` (e.g. from `talkingjax.data.preprocess` or the synthetic
        expression corpus).
      fps: the model's frame rate (expression and pose are resampled to it).
      num_exp: the model's expression size; every clip must match it.
      first_frames: keep only the first frames of every clip (a fine-tuning set).

    Raises:
      InputError: a clip without `exp`, or with another expression size than the model's.
    """
    from talkingjax.models.expression import expression_windows

    out = []
    for clip in clips:
        require_audio(clip, "expression training")
        if clip.exp is None:
            raise InputError(f"clip {clip.clip_id} has no expression coefficients ('exp')")
        if clip.exp.shape[1] != num_exp:
            raise InputError(
                f"clip {clip.clip_id} has {clip.exp.shape[1]} expression coefficients; the "
                f"model predicts {num_exp} (use the face model the records were made with)"
            )
        exp = resample_pose(clip.exp, clip.fps, fps)
        pose = resample_pose(clip.pose, clip.fps, fps)
        frames = min(exp.shape[0], audio.frames_in_features(clip.mfcc.shape[0], fps))
        if first_frames is not None:
            frames = min(frames, first_frames)
        windows = expression_windows(clip.mfcc, fps, frames)
        energy = audio.frame_windows(clip.mfcc, fps, frames)[:, audio.WINDOW_ROWS // 2, 0]
        out.append(ExpressionClip(clip.clip_id, windows, exp[:frames], pose[:frames], energy))
    return out


class WindowSampler:
    """Samples windows of `window` consecutive frames (a pure function of seed and step)."""

    def __init__(self, clips: list[ExpressionClip], window: int, seed: int):
        self.window = window
        self.seed = seed
        self.clips = [c for c in clips if c.exp.shape[0] >= window]
        if not self.clips:
            raise InputError(f"no clip has the {window} frames a training window needs")
        sizes = np.array([c.exp.shape[0] - window + 1 for c in self.clips], np.float64)
        self._p = sizes / sizes.sum()

    def windows_per_epoch(self) -> int:
        """Non-overlapping windows in the data."""
        return sum(c.exp.shape[0] // self.window for c in self.clips)

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """{"windows": [B, W, 28, 12], "exp": [B, W, K], "pose": [B, W, 6]} float32."""
        rng = step_rng(self.seed, step)
        out = {"windows": [], "exp": [], "pose": []}
        w = self.window
        for i in rng.choice(len(self.clips), size=batch_size, p=self._p):
            c = self.clips[i]
            s = int(rng.integers(0, c.exp.shape[0] - w + 1))
            out["windows"].append(c.windows[s : s + w])
            out["exp"].append(c.exp[s : s + w])
            out["pose"].append(c.pose[s : s + w])
        return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


# ------------------------------------------------------------------ peer pose models (002-004)

#: Rows of a frame's 28-row window that `frame_audio_features` keeps: the 4 centre rows.
_CENTRE_ROWS = slice(audio.WINDOW_ROWS // 2 - 2, audio.WINDOW_ROWS // 2 + 2)


def frame_audio_features(mfcc: np.ndarray, fps: float, frames: int) -> np.ndarray:
    """Per-frame audio features of the peer pose models: [frames, 52] = 4 MFCC rows x 13.

    The 4 rows at the centre of each frame's 28-row window (`audio.frame_windows`). At 25 fps
    these are exactly the frame's own 40 ms of audio: window k starts at row 4k and the padding
    is 12 rows, so rows 12..15 of the window are padded rows 4k+12..4k+15, i.e. the unpadded
    rows 4k..4k+3. (Audio2Head and LSP use a few audio windows per video frame; PoseGAN one
    feature vector per frame.) At other frame rates the 4 rows are those nearest the frame's
    centre, so frames may share or skip rows.

    Args:
      mfcc: [N, 13] padded `speech_features` rows, frame 0's window starting where
        `audio.window_starts` says.
      fps: video frame rate.
      frames: number of frames (their windows must fit in `mfcc`).

    Returns:
      float32 [frames, 52], each row the 4 MFCC rows in time order.
    """
    windows = audio.frame_windows(np.asarray(mfcc), fps, frames)
    rows = windows[:, _CENTRE_ROWS]
    return rows.reshape(frames, rows.shape[1] * rows.shape[2]).astype(np.float32)


class PoseWindowSampler:
    """Windows of per-frame audio features and poses for the peer pose models.

    Every clip's pose is resampled to `fps` and cut to the frames its audio covers; clips
    shorter than `window` frames are skipped. A batch is a pure function of (seed, step).
    """

    def __init__(self, clips: list[Clip], fps: float, window: int, seed: int):
        self.fps = fps
        self.window = window
        self.seed = seed
        self.audio, self.pose = [], []
        for clip in clips:
            require_audio(clip, "pose window sampling")
            pose = resample_pose(clip.pose, clip.fps, fps)
            frames = min(pose.shape[0], audio.frames_in_features(clip.mfcc.shape[0], fps))
            if frames < window:
                continue
            self.audio.append(frame_audio_features(clip.mfcc, fps, frames))
            self.pose.append(pose[:frames].astype(np.float32))
        if not self.pose:
            raise InputError(
                f"no clip has the {window} frames ({window / fps:.1f} s at {fps} fps) a "
                f"training window needs; got {len(clips)} clips"
            )
        # Clips are drawn in proportion to their number of window positions, so every
        # window of the corpus is equally likely.
        sizes = np.array([p.shape[0] - window + 1 for p in self.pose], np.float64)
        self._p = sizes / sizes.sum()

    def windows_per_epoch(self) -> int:
        """Non-overlapping windows in the data."""
        return sum(p.shape[0] // self.window for p in self.pose)

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """{"audio": float32 [B, window, 52], "pose": float32 [B, window, 6]} of step `step`."""
        rng = step_rng(self.seed, step)
        w = self.window
        out = {"audio": [], "pose": []}
        for i in rng.choice(len(self.pose), size=batch_size, p=self._p):
            s = int(rng.integers(0, self.pose[i].shape[0] - w + 1))
            out["audio"].append(self.audio[i][s : s + w])
            out["pose"].append(self.pose[i][s : s + w])
        return {k: np.stack(v).astype(np.float32) for k, v in out.items()}
