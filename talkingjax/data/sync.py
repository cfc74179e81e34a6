"""Data of the AV-sync instrument (issue 19): mouth crops at 25 fps, 0.2 s windows, offsets.

The instrument follows SyncNet (Chung & Zisserman 2016) and its multi-way training (Chung et
al. 2019, "Perfect match"): a *video window* is `FRAMES` = 5 consecutive grayscale mouth crops
at `SYNC_FPS` = 25 fps (0.2 s), an *audio window* is `AUDIO_ROWS` = 20 MFCC rows (0.2 s at
100 rows/s) of `talkingjax.audio.speech_features`. Both encoders map their window to an
embedding; the audio window that matches a video window is found by scanning offsets.

Time conventions (the house ones, `talkingjax.audio`):

- Video frame k of a clip at `fps` shows time (k + 0.5) / fps (the centre of its interval
  [k / fps, (k + 1) / fps)). Any clip is brought to 25 fps by taking, for every 25-fps frame,
  the source frame whose interval holds its centre time (`resample_indices`).
- `speech_features` pads `audio.PAD_SECONDS` = 0.12 s of zeros at the start, so audio time s
  is at row (s + 0.12) * 100. The video window starting at 25-fps frame t covers
  [t / 25, (t + 5) / 25) and is centred on (t + 2.5) / 25 s; its audio window is the 20 rows
  centred there: rows [4 t + 12, 4 t + 32) (`audio_window_start`). (Row r's 25 ms analysis
  frame starts at r / 100 - 0.12 s, so the window's audio is centred 7.5 ms = 0.19 frame
  later than the video's; the bias is the same in training and scoring, and far below the
  one-frame resolution of the offsets.)

Offset sign convention: an offset d > 0 means the AUDIO LAGS THE VIDEO by d frames (a sound
is heard d / 25 s after the lips make it). The candidate audio window of video window t at
offset d starts at row 4 (t + d) + 12, i.e. d frames later in the audio. A clip whose audio
track was delayed by k frames (k / 25 s of silence prepended) is therefore best matched at
d = k, and `talkingjax.metrics.sync.av_sync` reports offset k.

Mouth crops (`mouth_boxes`, `mouth_crops`): a `MOUTH` = 48 x 96 (height x width) grayscale
patch centred on the lips (the mean of the mouth corners and the outer lip midline points),
`MOUTH_WIDTH_EYES` = 1.4 outer-eye-corner distances wide (about the lower half of the face
between the cheeks), rotated so the eye line is horizontal. The centre is lightly smoothed
over time (`CENTRE_SIGMA_S`), the scale and roll more (`SCALE_SIGMA_S`), so the box follows the
head but not every lip movement: the lips move inside a steady box.

Training data (`load_sync_clip`, `SyncSampler`): the preprocessed corpus
(`talkingjax.data.preprocess`: `clips/<id>.npz` for the MFCC rows and fps, `crops/<id>.npz`
for the 224 px face crops and their landmarks) becomes a `SyncClip` of mouths at 25 fps; the
sampler draws windows (or runs of R consecutive windows sharing their audio, `run=R`) whose
5 frames have a detected face and whose audio exists at every offset -K..K, as a pure function
of (seed, step). `load_split_clips` reads one part of the committed speaker split.

The instrument's checks (`talkingjax.evaluation.sync`) use clips with a known answer:
`shifted_clip` (the audio delayed by k frames: offset k), `still_clip` (the first mouth
repeated: no confidence), `other_audio_clip` (another clip's speech: no confidence), and
`synthetic_sync_clip` (a mouth that opens with the speech energy, for tests and the tiny
config).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import cv2
import numpy as np
import scipy.ndimage

from talkingjax import audio
from talkingjax.data import corpus
from talkingjax.data.sampling import step_rng
from talkingjax.errors import InputError
from talkingjax.face3d import topology

SYNC_FPS = 25
FRAMES = 5  # 0.2 s video window
AUDIO_ROWS = 20  # 0.2 s of MFCC rows
ROWS_PER_FRAME = audio.ROWS_PER_SECOND // SYNC_FPS  # 4
MOUTH = (48, 96)  # (height, width) of a grayscale mouth crop
MAX_OFFSET = 15  # offsets -15..15 of the SyncNet protocol (+-0.6 s)

# Mouth corners (61, 291) and the outer lip midline (0 upper, 17 lower), MediaPipe indices.
MOUTH_POINTS = (61, 291, 0, 17)
MOUTH_WIDTH_EYES = 1.4  # crop width / outer-eye-corner distance
CENTRE_SIGMA_S = 0.04  # Gaussian smoothing of the box centre, seconds
SCALE_SIGMA_S = 0.5  # Gaussian smoothing of the box size and roll, seconds
_NUM_POINTS = 478


# ------------------------------------------------------------------------------------------
# Time


def resample_indices(num_frames: int, fps: float, target_fps: float = SYNC_FPS) -> np.ndarray:
    """Source frame of every target frame, by nearest time (no interpolation).

    Target frame j shows time (j + 0.5) / target_fps; it takes the source frame whose interval
    [i / fps, (i + 1) / fps) holds that time (on an exact boundary, the later frame). The
    target frames are those whose centre time lies inside the source video [0, T / fps).

    Args:
      num_frames: T, frames of the source clip.
      fps: the source frame rate (any positive value; 29.97 and 15 are common).
      target_fps: the output frame rate.

    Returns:
      int64 [J] non-decreasing source indices in [0, T); J ~= T * target_fps / fps.
    """
    if not (np.isfinite(fps) and fps > 0 and target_fps > 0):
        raise InputError(f"frame rates must be positive, got {fps} -> {target_fps}")
    if num_frames <= 0:
        return np.zeros(0, np.int64)
    ratio = float(fps) / float(target_fps)
    count = int(np.ceil(num_frames / ratio)) + 1
    # The 1e-6 frame puts exact boundary times (e.g. 30 fps -> 25 fps, every 5th frame) in
    # the later frame whatever the rounding of the product.
    idx = np.floor((np.arange(count) + 0.5) * ratio + 1e-6).astype(np.int64)
    return idx[idx < num_frames]


def audio_window_start(t, offset=0):
    """First `speech_features` row of the audio window of video window t at offset d.

    Args:
      t: 25-fps frame index (int or int array) of the window's first frame.
      offset: d in frames (int or int array, broadcast with t); d > 0: audio lags video.

    Returns:
      4 (t + d) + 12: the 20 rows centred on (t + d + 2.5) / 25 s (module docstring).
    """
    centre = FRAMES / 2 * ROWS_PER_FRAME + audio.PAD_SECONDS * audio.ROWS_PER_SECOND  # 22
    first = int(round(centre - AUDIO_ROWS / 2))  # 12
    return ROWS_PER_FRAME * (np.asarray(t) + np.asarray(offset)) + first


def audio_window_in_range(num_rows: int, t, offset=0) -> np.ndarray:
    """bool (broadcast of t and offset): the audio window lies inside `num_rows` rows."""
    start = audio_window_start(t, offset)
    return (start >= 0) & (start + AUDIO_ROWS <= num_rows)


def audio_windows(mfcc: np.ndarray, t, offsets) -> np.ndarray:
    """Gathers audio windows.

    Args:
      mfcc: [N, 13] `speech_features` rows.
      t: int [W] first 25-fps frames of the video windows.
      offsets: int [O] offsets d in frames (d > 0: audio lags video).

    Returns:
      float32 [W, O, 20, 13]: out[w, o] = mfcc[4 (t[w] + offsets[o]) + 12 :][:20].

    Raises:
      InputError: a window reaches outside the rows.
    """
    mfcc = np.asarray(mfcc)
    t = np.asarray(t, np.int64).reshape(-1)
    offsets = np.asarray(offsets, np.int64).reshape(-1)
    start = audio_window_start(t[:, None], offsets[None, :])  # [W, O]
    if not np.all(audio_window_in_range(mfcc.shape[0], t[:, None], offsets[None, :])):
        raise InputError(
            f"audio windows of frames {t.min(initial=0)}..{t.max(initial=0)} at offsets "
            f"{offsets.min(initial=0)}..{offsets.max(initial=0)} need rows outside the "
            f"{mfcc.shape[0]} given"
        )
    return mfcc[start[..., None] + np.arange(AUDIO_ROWS)].astype(np.float32)


def audio_scan(
    mfcc: np.ndarray, num_windows: int, max_offset: int = MAX_OFFSET
) -> tuple[np.ndarray, np.ndarray]:
    """Every audio window an offset scan of `num_windows` video windows reads.

    Video window t (0 <= t < num_windows) at offset d reads the audio window of position
    p = t + d, -max_offset <= p < num_windows + max_offset; entry i of the result is position
    p = i - max_offset (the layout `talkingjax.metrics.sync.distance_matrix` expects).

    Args:
      mfcc: [N, 13] `speech_features` rows.
      num_windows: W, video windows (25-fps frames - 4).
      max_offset: K.

    Returns:
      (float32 [W + 2K, 20, 13] windows, zero where missing; bool [W + 2K] present: the
      window lies inside the rows).
    """
    mfcc = np.asarray(mfcc, np.float32)
    pos = np.arange(-max_offset, num_windows + max_offset)
    present = audio_window_in_range(mfcc.shape[0], pos)
    out = np.zeros((len(pos), AUDIO_ROWS, mfcc.shape[1]), np.float32)
    if present.any():
        out[present] = audio_windows(mfcc, pos[present], [0])[:, 0]
    return out, present


def video_windows(mouths: np.ndarray, t) -> np.ndarray:
    """Stacks 5 consecutive mouth crops per window as channels.

    Args:
      mouths: uint8 [T, 48, 96] mouth crops at 25 fps.
      t: int [W] first frames (t + 4 < T).

    Returns:
      float32 [W, 48, 96, 5] in [0, 1]; channel i is frame t + i.
    """
    t = np.asarray(t, np.int64).reshape(-1)
    if t.size and (t.min() < 0 or t.max() + FRAMES > mouths.shape[0]):
        raise InputError(f"video windows up to frame {t.max() + FRAMES - 1} of {len(mouths)}")
    frames = mouths[t[:, None] + np.arange(FRAMES)]  # [W, 5, H, W]
    return np.moveaxis(frames, 1, -1).astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------------
# Mouth crops


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames <= 0 or len(x) < 2:
        return x
    return scipy.ndimage.gaussian_filter1d(x, sigma_frames, axis=0, mode="nearest")


def mouth_boxes(
    landmarks: np.ndarray,
    fps: float,
    centre_sigma_s: float = CENTRE_SIGMA_S,
    scale_sigma_s: float = SCALE_SIGMA_S,
) -> np.ndarray:
    """Per-frame mouth boxes from MediaPipe face-mesh landmarks.

    Args:
      landmarks: [T, 478, 2] (or [T, 478, 3]; z ignored) x, y pixels, y down, pixel centres
        at +0.5 (`talkingjax.video.tracking`), e.g. the preprocessor's crop landmarks.
      fps: frame rate of the landmarks (the smoothing widths are in seconds).
      centre_sigma_s, scale_sigma_s: Gaussian smoothing of the centre, and of the log width
        and the roll, in seconds (0: none).

    Returns:
      float32 [T, 4] (cx, cy, width, angle): centre in pixels (mean of `MOUTH_POINTS`),
      width in pixels (`MOUTH_WIDTH_EYES` x outer-eye-corner distance; height = width / 2),
      angle in radians of the eye line (subject's right outer corner -> left outer corner,
      image x right, y down; 0 for an upright face).
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1] != _NUM_POINTS or lm.shape[2] < 2:
        raise InputError(f"landmarks are {lm.shape}; need [T, {_NUM_POINTS}, 2]")
    if not np.all(np.isfinite(lm[..., :2])):
        raise InputError("landmarks contain NaN or infinite values")
    lm = lm[..., :2]
    centre = lm[:, list(MOUTH_POINTS)].mean(axis=1)
    eye = lm[:, topology.LEFT_EYE_OUTER] - lm[:, topology.RIGHT_EYE_OUTER]
    dist = np.maximum(np.linalg.norm(eye, axis=-1), 1e-3)
    angle = np.unwrap(np.arctan2(eye[:, 1], eye[:, 0]))
    centre = _smooth(centre, centre_sigma_s * fps)
    log_width = _smooth(np.log(MOUTH_WIDTH_EYES * dist), scale_sigma_s * fps)
    angle = _smooth(angle, scale_sigma_s * fps)
    return np.concatenate([centre, np.exp(log_width)[:, None], angle[:, None]], axis=1).astype(
        np.float32
    )


def box_affine(box: np.ndarray, size: tuple[int, int] = MOUTH) -> np.ndarray:
    """The 2 x 3 map of continuous pixel coordinates, image -> mouth crop.

    A point p of the image goes to s R(-angle) (p - c) + (W / 2, H / 2), s = W / width, with
    (H, W) = `size`; pixel centres are at +0.5 in both images.
    """
    cx, cy, width, angle = (float(v) for v in box)
    h, w = size
    s = w / width
    cos, sin = np.cos(angle), np.sin(angle)
    lin = s * np.array([[cos, sin], [-sin, cos]])
    shift = np.array([w / 2, h / 2]) - lin @ np.array([cx, cy])
    return np.concatenate([lin, shift[:, None]], axis=1)


def mouth_crops(frames: np.ndarray, boxes: np.ndarray, size: tuple[int, int] = MOUTH):
    """Cuts grayscale mouth crops.

    Args:
      frames: uint8 [T, H, W, 3] RGB or [T, H, W] gray images.
      boxes: [T, 4] from `mouth_boxes`, in the frames' pixels.
      size: (height, width) of the crops.

    Returns:
      uint8 [T, height, width]; the box centre lands at the crop centre, the eye line
      horizontal; outside the image the border is replicated.
    """
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, np.float64)
    if (
        frames.dtype != np.uint8
        or frames.ndim not in (3, 4)
        or (frames.ndim == 4 and frames.shape[-1] != 3)
    ):
        raise InputError(f"frames are {frames.dtype} {frames.shape}; need uint8 [T, H, W(, 3)]")
    if boxes.shape != (len(frames), 4):
        raise InputError(f"boxes are {boxes.shape}; need [{len(frames)}, 4]")
    h, w = size
    out = np.empty((len(frames), h, w), np.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        m = box_affine(box, size)
        # cv2 puts pixel centres at integers: x_cv = x - 0.5 in both images.
        m_cv = m.copy()
        m_cv[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
        scale = w / box[2]
        out[i] = cv2.warpAffine(
            np.ascontiguousarray(gray),
            m_cv,
            (w, h),
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out


# ------------------------------------------------------------------------------------------
# Clips


@dataclasses.dataclass(frozen=True)
class SyncClip:
    """One clip ready for the sync instrument.

    Attributes:
      clip_id: the clip's id.
      mouths: uint8 [T, 48, 96] grayscale mouth crops at 25 fps.
      mfcc: float32 [N, 13] `speech_features` rows of the clip's audio (0.12 s left padding).
      detected: bool [T] the face was detected in the 25-fps frame (not filled in).
    """

    clip_id: str
    mouths: np.ndarray
    mfcc: np.ndarray
    detected: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.mouths.shape[0])

    def usable_windows(self, max_offset: int = MAX_OFFSET) -> np.ndarray:
        """int64 [W] first frames t of the usable video windows.

        Usable: frames t..t+4 exist and are all detected, and the audio window exists at every
        offset -max_offset..max_offset (rows of the zero padding count as audio).
        """
        n = self.num_frames - FRAMES + 1
        if n <= 0:
            return np.zeros(0, np.int64)
        t = np.arange(n)
        ok = np.ones(n, bool)
        for i in range(FRAMES):
            ok &= self.detected[t + i]
        rows = self.mfcc.shape[0]
        ok &= audio_window_in_range(rows, t, -max_offset) & audio_window_in_range(
            rows, t, max_offset
        )
        return t[ok]


def sync_clip(
    clip_id: str,
    frames: np.ndarray,
    landmarks: np.ndarray,
    detected: np.ndarray,
    mfcc: np.ndarray,
    fps: float,
) -> SyncClip:
    """Builds a `SyncClip` from frames at any fps.

    Args:
      clip_id: a name.
      frames: uint8 [T, H, W, 3] RGB (e.g. the preprocessor's 224 px face crops).
      landmarks: [T, 478, 2] in the frames' pixels.
      detected: bool [T].
      mfcc: [N, 13] `speech_features` rows of the clip's audio.
      fps: the frames' rate.

    Returns:
      `SyncClip` at 25 fps: the mouth boxes are computed (and smoothed) at the source rate,
      then the frames nearest in time to every 25-fps frame are cropped.
    """
    t = len(frames)
    if len(landmarks) != t or len(detected) != t:
        raise InputError(
            f"{clip_id}: {t} frames, {len(landmarks)} landmark rows, {len(detected)} flags"
        )
    mfcc = np.asarray(mfcc, np.float32)
    if mfcc.ndim != 2 or mfcc.shape[1] != audio.NUM_CEPSTRA:
        raise InputError(f"{clip_id}: mfcc is {mfcc.shape}; need [N, {audio.NUM_CEPSTRA}]")
    idx = resample_indices(t, fps)
    boxes = mouth_boxes(landmarks, fps)[idx]
    mouths = mouth_crops(np.asarray(frames)[idx], boxes)
    return SyncClip(clip_id, mouths, mfcc, np.asarray(detected, bool)[idx])


def load_sync_clip(root: str | os.PathLike, clip_id: str) -> SyncClip:
    """A `SyncClip` from the preprocessed corpus at `root`.

    Reads `clips/<clip_id>.npz` (mfcc, fps, and pose for the number of frames the audio
    covers) and `crops/<clip_id>.npz` (crops, landmarks, detected). Video frames beyond the
    record's frames (not covered by the audio) are dropped.

    Raises:
      InputError: a file is missing or lacks a field.
    """
    root = os.fspath(root)
    paths = [os.path.join(root, d, f"{clip_id}.npz") for d in ("clips", "crops")]
    for p in paths:
        if not os.path.isfile(p):
            raise InputError(f"{clip_id}: {p} not found")
    with np.load(paths[0]) as rec, np.load(paths[1]) as crops:
        for name, f, keys in (
            ("clip", rec, ("mfcc", "fps", "pose")),
            ("crops", crops, ("crops", "landmarks", "detected")),
        ):
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise InputError(f"{clip_id}: the {name} file lacks {missing}")
        if "has_audio" in rec.files and not bool(rec["has_audio"]):
            raise InputError(f"{clip_id}: a record without speech (no usable audio in its video)")
        n = min(int(rec["pose"].shape[0]), int(crops["crops"].shape[0]))
        return sync_clip(
            clip_id,
            crops["crops"][:n],
            crops["landmarks"][:n],
            crops["detected"][:n],
            rec["mfcc"],
            float(rec["fps"]),
        )


# ------------------------------------------------------------------------------------------
# Sampling


def run_starts(windows: np.ndarray, run: int) -> np.ndarray:
    """First frames t of the runs t, t + 1, ..., t + run - 1 that lie wholly in `windows`.

    Args:
      windows: int [W] sorted distinct usable window starts (`SyncClip.usable_windows`).
      run: R >= 1.

    Returns:
      int64 [S] the t whose R consecutive windows are all usable.
    """
    w = np.asarray(windows, np.int64)
    if run < 1:
        raise InputError(f"run must be at least 1, got {run}")
    if len(w) < run:
        return np.zeros(0, np.int64)
    head = w[: len(w) - run + 1]
    return head[w[run - 1 :] - head == run - 1]


class SyncSampler:
    """Training batches of the multi-way matching loss, a pure function of (seed, step).

    Two layouts:

    - `run=None` (one window per example): every example is a usable window
      (`SyncClip.usable_windows`), its video window and its audio windows at offsets
      -max_offset..max_offset; the true offset is 0, index `max_offset` of the offset axis.
    - `run=R` (runs of R windows per example, R + 2K audio encodings instead of R (2K + 1)):
      every example is R consecutive usable windows t..t+R-1 of one clip and the audio
      windows of positions t-K..t+R-1+K; the candidates of window t + r at offsets -K..K are
      positions r..r+2K of the example's audio axis (`talkingjax.losses.sync.run_candidates`),
      the true one at r + K. At R = 8, K = 15: 38 audio encodings per 8 windows instead of 248.

    Examples are drawn uniformly over all windows (runs), or with each clip's weight capped at
    `max_windows_per_clip` (so one long clip does not dominate).

    Augmentation (`augment`), the same for all frames of an example: a horizontal flip with
    probability 1/2, contrast x U(0.7, 1.3) about the example's mean and brightness + U(-0.1,
    0.1), clipped to [0, 1]; and an audio gain of U(-6, 6) dB (added to the log-energy
    column 0, all offsets alike).
    """

    def __init__(
        self,
        clips: Sequence[SyncClip],
        seed: int,
        max_offset: int = MAX_OFFSET,
        augment: bool = True,
        max_windows_per_clip: int | None = None,
        run: int | None = None,
    ):
        self.seed = seed
        self.max_offset = int(max_offset)
        self.augment = augment
        self.run = None if run is None else int(run)
        self.offsets = np.arange(-self.max_offset, self.max_offset + 1)
        self.clips = []
        self.windows = []
        for c in clips:
            w = c.usable_windows(self.max_offset)
            if self.run is not None:
                w = run_starts(w, self.run)
            if len(w):
                self.clips.append(c)
                self.windows.append(w)
        if not self.clips:
            what = "window" if self.run is None else f"run of {self.run} windows"
            raise InputError(f"no clip has a usable {what} at offsets +-{self.max_offset}")
        sizes = np.array([len(w) for w in self.windows], np.float64)
        if max_windows_per_clip is not None:
            sizes = np.minimum(sizes, max_windows_per_clip)
        self._p = sizes / sizes.sum()

    def windows_per_epoch(self) -> int:
        """Usable windows (runs, with `run`) in the data (overlapping: one per start frame)."""
        return int(sum(len(w) for w in self.windows))

    def _augment(self, rng, v: np.ndarray, a: np.ndarray):
        if rng.random() < 0.5:
            v = v[..., :, ::-1, :]
        mean = v.mean()
        v = np.clip((v - mean) * rng.uniform(0.7, 1.3) + mean + rng.uniform(-0.1, 0.1), 0, 1)
        a = a.copy()
        a[..., 0] += rng.uniform(-6.0, 6.0) * np.log(10.0) / 10.0
        return v, a

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """A batch of `batch_size` examples.

        Returns:
          without `run`: {"video": float32 [B, 48, 96, 5] in [0, 1], "audio": float32
          [B, 2K + 1, 20, 13]}; audio[:, K] is the true (offset 0) window, audio[:, K + d]
          the window at offset d. With `run=R`: {"video": [B, R, 48, 96, 5], "audio":
          [B, R + 2K, 20, 13]}; audio[:, i] is position t - K + i.
        """
        rng = step_rng(self.seed, step)
        k = self.max_offset
        video, aud = [], []
        for i in rng.choice(len(self.clips), size=batch_size, p=self._p):
            c, w = self.clips[i], self.windows[i]
            t = int(w[int(rng.integers(len(w)))])
            if self.run is None:
                v = video_windows(c.mouths, [t])[0]
                a = audio_windows(c.mfcc, [t], self.offsets)[0]
            else:
                v = video_windows(c.mouths, t + np.arange(self.run))
                a = audio_windows(c.mfcc, np.arange(t - k, t + self.run + k), [0])[:, 0]
            if self.augment:
                v, a = self._augment(rng, v, a)
            video.append(v)
            aud.append(a)
        return {
            "video": np.stack(video).astype(np.float32),
            "audio": np.stack(aud).astype(np.float32),
        }


# ------------------------------------------------------------------------------------------
# Manipulated clips (the instrument's checks) and synthetic clips (tests, the tiny config)


def shift_audio(mfcc: np.ndarray, k: int) -> np.ndarray:
    """The rows of the same audio delayed by k frames (k < 0: advanced), same length.

    Delaying the waveform by k / 25 s moves every row 4 k rows later: the first 4 k rows
    become the silence row (`mfcc[0]`, computed on the zero padding) and the last 4 k drop
    off; advancing drops the first 4 |k| rows and pads silence at the end. Equal to the
    features of the shifted waveform up to the rows next to the padding. A clip whose audio
    was delayed by k frames scores offset k (+ the clip's own offset).
    """
    mfcc = np.asarray(mfcc, np.float32)
    n, rows = len(mfcc), ROWS_PER_FRAME * abs(int(k))
    if rows == 0:
        return mfcc.copy()
    silence = np.repeat(mfcc[:1], min(rows, n), axis=0)
    if k > 0:
        return np.concatenate([silence, mfcc])[:n]
    return np.concatenate([mfcc[rows:], silence])[-n:] if rows < n else silence


def shifted_clip(clip: SyncClip, k: int) -> SyncClip:
    """`clip` with its audio delayed by k frames (`shift_audio`)."""
    mfcc = shift_audio(clip.mfcc, k)
    return dataclasses.replace(clip, clip_id=f"{clip.clip_id}@{k:+d}", mfcc=mfcc)


def still_clip(clip: SyncClip) -> SyncClip:
    """`clip`'s first detected mouth repeated for its whole length, with its real audio."""
    first = int(np.argmax(clip.detected)) if clip.detected.any() else 0
    mouths = np.repeat(clip.mouths[first : first + 1], clip.num_frames, axis=0)
    return dataclasses.replace(
        clip,
        clip_id=f"{clip.clip_id}@still",
        mouths=mouths,
        detected=np.full(clip.num_frames, bool(clip.detected[first])),
    )


def other_audio_clip(clip: SyncClip, other: SyncClip) -> SyncClip:
    """`clip`'s mouths with `other`'s audio (repeated if shorter, cut to `clip`'s row count):
    a moving face whose lips do not belong to the speech (no confidence)."""
    n = len(clip.mfcc)
    reps = -(-n // max(len(other.mfcc), 1))
    mfcc = np.concatenate([other.mfcc] * reps)[:n]
    return dataclasses.replace(clip, clip_id=f"{clip.clip_id}@{other.clip_id}", mfcc=mfcc)


def synthetic_sync_clip(seed: int, seconds: float = 6.0, lag: int = 0) -> SyncClip:
    """A clip whose mouth opening follows its speech energy (a known answer for the checks).

    A dark ellipse (the mouth) on a noisy skin-gray patch opens with a random smooth openness
    o(k) in [0, 1] per 25-fps frame; the MFCC log energy (column 0) of the 4 rows of frame
    k + lag is -30 + 50 o(k) and columns 1-3 rise by 10 o(k) over N(0, 1) noise, so the audio
    lags the video by `lag` frames (offset `lag`).

    Returns:
      `SyncClip` with int(seconds * 25) frames, all detected.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SYNC_FPS)
    o = np.clip(np.convolve(rng.uniform(0, 1, n + 40), np.ones(3) / 3, "same"), 0, 1)
    ys, xs = np.mgrid[0 : MOUTH[0], 0 : MOUTH[1]] + 0.5
    base = rng.uniform(120, 200)
    mouths = np.empty((n, *MOUTH), np.uint8)
    for k in range(n):
        h = 2 + 12 * o[k]
        inside = ((xs - MOUTH[1] / 2) / 26) ** 2 + ((ys - MOUTH[0] / 2) / h) ** 2 <= 1
        img = np.full(MOUTH, base) + rng.normal(0, 5, MOUTH)
        img[inside] = 30
        mouths[k] = np.clip(img, 0, 255)
    rows = int(round((seconds + 2 * audio.PAD_SECONDS + 0.08) * audio.ROWS_PER_SECOND))
    mfcc = rng.normal(0, 1, (rows, audio.NUM_CEPSTRA)).astype(np.float32)
    mfcc[:, 0] = -30
    for k in range(n):
        r = ROWS_PER_FRAME * (k + lag) + 12
        if 0 <= r and r + ROWS_PER_FRAME <= rows:
            mfcc[r : r + ROWS_PER_FRAME, 0] = -30 + 50 * o[k]
            mfcc[r : r + ROWS_PER_FRAME, 1:4] += 10 * o[k]
    return SyncClip(f"synthetic{seed}", mouths, mfcc, np.ones(n, bool))


# ------------------------------------------------------------------------------------------
# The corpus split


def split_clip_ids(
    split_path: str | os.PathLike, part: str, audio_kind: str = "speech"
) -> list[str]:
    """Clip ids of one part ("train", "val", "test") of a committed split file with speech
    (`talkingjax.data.corpus.read_split_part`; `audio_kind`: the clips' `audio` field to keep).

    Raises:
      InputError: a missing or malformed file, or an unknown part.
    """
    return [
        c["clip_id"]
        for c in corpus.read_split_part(split_path, part)
        if c.get("audio") == audio_kind
    ]


def load_split_clips(
    root: str | os.PathLike, split_path: str | os.PathLike, part: str
) -> tuple[list[SyncClip], list[str]]:
    """The speech clips of a split part that the preprocessed corpus at `root` holds.

    Returns:
      (clips, missing ids): clips whose `clips/` and `crops/` files exist, in split order;
      the ids of the others (not preprocessed or skipped by the preprocessor).
    """
    root = os.fspath(root)
    clips, missing = [], []
    for cid in split_clip_ids(split_path, part):
        files = [os.path.join(root, d, f"{cid}.npz") for d in ("clips", "crops")]
        if all(os.path.isfile(p) for p in files):
            clips.append(load_sync_clip(root, cid))
        else:
            missing.append(cid)
    return clips, missing
