"""Talking-face videos -> per-frame 3DMM coefficients, head-motion records and quality reports.

One clip (`preprocess_video`): probe the video (`talkingjax.video.tracking.probe_video`) ->
reject it if too short -> speech features of its audio track (checked against the video's
length before anything expensive) -> decode it once for MediaPipe tracking
(`tracking.track_video`) and a `FrameScan` (frame differences, whole-frame face detections)
-> screen it (`screen_track`: face too small, turned away, several faces, a cut) -> crop every
frame around the face and fit the morphable model to the whole video
(`talkingjax.video.reconstruct`) -> write, each file atomically (temporary file in the same
directory + `os.replace`):

    <out>/coeffs/<clip_id>.mat    `coeff` [T, D] + `transform_params` [T, 5] for all T video
                                  frames (`talkingjax.face3d.coeffs.write_mat`): the raw fit
    <out>/crops/<clip_id>.npz     only with save_crops: `crops` uint8 [T, S, S, 3],
                                  `landmarks` [T, 478, 2] crop px, `detected` [T],
                                  `transform_params` [T, 5]
    <out>/reports/<clip_id>.json  quality report: `VideoFit.report()` ("fit"), lost tracking
                                  frames, the screening's measurements ("screen"), "audio",
                                  seconds per stage (a skipped clip gets one with its
                                  "reason" and skip category "kind")
    <out>/clips/<clip_id>.npz     the `talkingjax.data.records` clip (pose [n, 6], mfcc, fps),
                                  plus `exp` [n, K_exp] expression coefficients and the
                                  clip's metadata strings; written LAST

The record's pose is `VideoFit.pose` (optionally smoothed over `pose_sigma` frames, paper 003
Eq. 1), trimmed with its MFCC rows to the frames the audio covers
(`talkingjax.data.coeff257.align_to_audio`, the rule of the 257-d coefficient import).

Videos without usable audio (`silent_clips`, on by default). A video with no audio track, or
whose audio is silent, is still tracked, screened and fitted: its record has the pose and
expression of every video frame, an empty `mfcc` [0, 13] and `has_audio` False
(`talkingjax.data.records`), and the manifest lists it under `silent_clips` (so
`records.load_dataset` reads it only with `silent=True`, and the consumers of speech refuse
it). Its report says `"audio": "silent (no audio track)"` or `"silent (audio is silent)"`
(`AUDIO_*`); clips with speech say `"speech"` and are processed exactly as without the
option. `silent_clips=False` skips such videos instead.

Skip reasons. Every clip ends processed or skipped with a one-line reason and a category
(`skip_kind`, `SKIP_KINDS`): "too short" (under `ScreenConfig.min_video_seconds`, or audio
under 1 s), "irregular frame rate" (variable rate or irregular timestamps: `probe_video`),
"face too small", "turned away", "several faces", "cut" (the screening, `ScreenConfig`:
thresholds and their meaning), "face lost" / "no face" (tracking), "no audio track" / "silent
audio" (only without `silent_clips`), "audio and video lengths differ", "frame too small",
"unreadable", "internal error" (a bug: the traceback is in the clip's report), "other".

Resuming. A clip is *finished* iff `clips/<clip_id>.npz` exists. A run (`preprocess`) skips
finished clips, so an interrupted run is resumed by running it again. A clip interrupted
half-way has at most temporary files (removed) and outputs of the earlier attempt
(overwritten, or removed if the clip now fails), so it is simply redone. Failed clips are
retried by default (`retry_failed`). Finished clips are not redone, so a screening added
after they were made does not apply to them; `recheck` screens every finished clip whose
report predates the current screening (`SCREEN_VERSION`), without refitting it, and removes
the outputs of those it rejects.

Short clips (LRW). Head-motion records need at least `records.MIN_CLIP_SECONDS` (4 s) per
clip; an LRW clip is 29 frames (1.16 s). Such clips are still processed completely (the
coefficients, expression and MFCC are what the audio-to-expression network and the rendering
GAN train on, paper 000 Sec. IV) and count as finished, but `manifest.json` lists them under
`short_clips`, not `clips`: `records.load_dataset` (and so the head-motion trainer) reads only
`clips`. Their `report.json` entries say `"head_motion": false` with a note.

Clip discovery (`discover`):

- `folder`: one video file (any extension), or every video (by extension, recursively,
  hidden entries skipped) under a directory. clip_id = video_id = the path relative to the
  directory without extension, '/' -> '__' (`spk1/take2.mp4` -> `spk1__take2`); speaker_id
  = the relative parent directory the same way (`spk1`), or the clip_id for videos at the
  top. All clips get `split` ("train" unless told).
- `lrw`: `lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4` (the `lipread_mp4` directory or
  its parent). clip_id = video_id = `WORD__split__WORD_NNNNN` (the numbers restart in
  every split), split from the directory; LRW does not name its speakers, so speaker_id =
  WORD. Other files (LRW's `.txt` word boundaries) are ignored.
- `coeff`: a directory of 257-d coefficient `.mat` + audio pairs made by other tools
  (`talkingjax.data.coeff257.coeff_dir_to_dataset`: all-or-nothing, needs `fps`, rewrites
  the manifest with just those clips).

Parallelism. `workers` > 1 runs clips in a `ProcessPoolExecutor` (spawn context), each worker
loading JAX, MediaPipe and the face model once (and compiling the fit once: ~30 s on CPU,
then a few seconds per LRW clip); one clip per worker is in flight. A worker that dies (e.g.
out of memory) fails the clips the pool held, and the run continues with a new pool. Ctrl-C
terminates the workers at once (every output is atomic) and still rewrites the manifest and
report from what finished. Every per-clip failure (an `InputError`, or an unexpected
exception, whose traceback goes into the clip's report) becomes a skip reason in
`report.json` instead of aborting. At the end `manifest.json` is rewritten from every
finished clip in `<out>/clips` (also those of earlier runs and other inputs), and
`report.json` lists every clip of this run (ok / done / skipped + reason, timings) with
totals.

From Python::

    from talkingjax.data import preprocess, records
    run = preprocess.preprocess("videos/", "dataset/", workers=2)
    print(run.summary())
    clips = records.load_dataset("dataset/")   # the head-motion records

From the command line: `python -m experiments.preprocess --input videos/ --out dataset/`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import glob
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

import numpy as np

from talkingjax import audio
from talkingjax import progress as progress_lib
from talkingjax.data import coeff257, records
from talkingjax.errors import InputError

LAYOUTS = ("folder", "lrw", "coeff")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
LRW_SPLITS = ("train", "val", "test")
REPORT_FORMAT = "talkingjax.preprocess/1"
OUTPUT_DIRS = ("clips", "coeffs", "reports", "crops")
_MAX_LISTED_FRAMES = 200  # lost-frame indices listed in a report; the count is always given
SCREEN_VERSION = 1  # of the per-clip "screen" report section; `recheck` redoes older ones
AUDIO_SPEECH = "speech"
AUDIO_NO_TRACK = "silent (no audio track)"
AUDIO_SILENT = "silent (audio is silent)"
#: Audio whose loud parts (the 95th percentile of its 100 ms RMS levels) stay below this is
#: silent: a hiss at -60 dBFS is no speech. The quietest speech of the real corpus is 0.0096
#: (MEAD, -40 dBFS); `talkingjax.audio` itself only rejects all-but-zero audio (RMS < 1e-4).
SILENT_LEVEL = 0.002


# ------------------------------------------------------------------------------ clip discovery


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """One video to preprocess and the record metadata it gets."""

    clip_id: str
    video_path: str
    video_id: str
    speaker_id: str
    split: str = "train"


def _id_from_relpath(rel: str) -> str:
    return os.path.splitext(rel)[0].replace(os.sep, "__").replace("/", "__")


def _check_unique(specs: list[ClipSpec], where: str) -> list[ClipSpec]:
    seen: dict[str, str] = {}
    for s in specs:
        if s.clip_id in seen:
            raise InputError(
                f"{where}: videos {seen[s.clip_id]} and {s.video_path} would both be clip "
                f"{s.clip_id!r}; rename one"
            )
        seen[s.clip_id] = s.video_path
    return sorted(specs, key=lambda s: s.clip_id)


def discover_folder(
    path: str | os.PathLike, split: str = "train", exts: Sequence[str] = VIDEO_EXTS
) -> list[ClipSpec]:
    """Clips of the `folder` layout: one video file, or all videos under a directory.

    Raises:
      InputError: a missing path, a directory without videos, or two videos mapping to the
        same clip id (`a.mp4` and `a.mov`).
    """
    path = os.fspath(path)
    if os.path.isfile(path):  # an explicitly named file is taken whatever its extension
        cid = _id_from_relpath(os.path.basename(path))
        return [ClipSpec(cid, path, cid, cid, split)]
    if not os.path.isdir(path):
        raise InputError(f"input not found: {path}")
    exts = tuple(e.lower() for e in exts)
    specs = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(exts):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), path)
            cid = _id_from_relpath(rel)
            parent = os.path.dirname(rel)
            speaker = parent.replace(os.sep, "__") if parent else cid
            specs.append(ClipSpec(cid, os.path.join(dirpath, name), cid, speaker, split))
    if not specs:
        raise InputError(f"{path}: no videos ({', '.join(exts)}) found")
    return _check_unique(specs, path)


def discover_lrw(path: str | os.PathLike, splits: Sequence[str] | None = None) -> list[ClipSpec]:
    """Clips of the `lrw` layout: `lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4`.

    Args:
      path: the `lipread_mp4` directory or the directory holding it.
      splits: only these splits (default all three).

    Raises:
      InputError: a missing directory, unknown split names, or no clip in that structure.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(f"input not found: {path}")
    if os.path.isdir(os.path.join(path, "lipread_mp4")):
        path = os.path.join(path, "lipread_mp4")
    splits = tuple(LRW_SPLITS if not splits else splits)
    unknown = sorted(set(splits) - set(LRW_SPLITS))
    if unknown:
        raise InputError(f"unknown LRW split(s) {unknown}; LRW has {list(LRW_SPLITS)}")
    specs = []
    for word in sorted(os.listdir(path)):
        if word.startswith(".") or not os.path.isdir(os.path.join(path, word)):
            continue
        for split in splits:
            d = os.path.join(path, word, split)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if name.startswith(".") or not name.lower().endswith(".mp4"):
                    continue
                cid = f"{word}__{split}__{os.path.splitext(name)[0]}"
                specs.append(ClipSpec(cid, os.path.join(d, name), cid, word, split))
    if not specs:
        raise InputError(
            f"{path}: no LRW clips (expected WORD/{{{','.join(splits)}}}/WORD_NNNNN.mp4)"
        )
    return _check_unique(specs, path)


def discover(
    path: str | os.PathLike,
    layout: str = "folder",
    split: str = "train",
    splits: Sequence[str] | None = None,
) -> list[ClipSpec]:
    """The clips of `path` in a video layout (`folder` or `lrw`), sorted by clip id."""
    if layout == "folder":
        return discover_folder(path, split=split)
    if layout == "lrw":
        return discover_lrw(path, splits=splits)
    raise InputError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")


# ------------------------------------------------------------------------------- screening


class ClipRejected(InputError):
    """A clip the screening rejects; `kind` is its skip category (`SKIP_KINDS`), `details`
    the measurements behind the verdict (they go into the clip's report as "screen")."""

    def __init__(self, kind: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.kind = kind
        self.details = details or {}


@dataclasses.dataclass(frozen=True)
class ScreenConfig:
    """What makes a clip unusable, checked after tracking and before the (expensive) fit.

    Attributes:
      min_video_seconds: shorter videos are rejected ("too short") before anything else.
      min_face_px: the tracked face's median size (sqrt of its landmark box area, frame
        pixels, over the frames where it was detected) must be at least this ("face too
        small"): smaller faces give landmarks and crops too coarse to fit expressions.
      face_samples_per_second: frames per second checked for other faces (a face detector
        on the full frame; 0 = no check).
      other_face_min_ratio: a detection counts as another face if it does not overlap the
        tracked face and its size is at least this fraction of the tracked face's.
      several_faces_min_fraction: the clip is rejected ("several faces") if another face is
        in at least this fraction of the sampled frames (and in at least 2 of them).
      cut_min_diff: a cut (scene change) between frames t-1 and t needs a mean absolute
        difference of their 32x32 grayscale thumbnails (0-1) of at least this ...
      cut_min_hist: ... and an HSV colour-histogram distance (half the L1 distance of the
        normalised 3 x 16-bin histograms, 0-1) of at least this ...
      cut_min_ratio: ... and a thumbnail difference at least this many times the median
        difference of the frames within `cut_window_seconds` around it (a jump out of the
        clip's usual motion, not fast motion or camera shake).
      cut_window_seconds: half-width of that neighbourhood.
      max_yaw_deg: a frame's face is turned away if its `face_yaws` estimate exceeds this
        many degrees (MediaPipe's landmarks flatten large turns: a rendered head turned
        45 / 60 / 85 degrees reads about 35 / 40-43 / 38-48; frontal talking heads read
        under 15).
      max_turned_fraction: the clip is rejected ("turned away") if the face is turned away
        in more than this fraction of its tracked frames; 1.0 (the default) never rejects --
        the corpus keeps its turned clips, a target video (`generation.personalization`)
        asks for less.

    The cut detector finds shot changes (another picture: colours and layout change at
    once). Jump cuts -- an edit inside one shot, where the head jumps but the picture stays
    alike -- are not rejected: measured on the corpus, the frame and landmark changes they
    cause overlap those of fast motion and of small faces; `landmark_steps` reports the
    largest jump per clip instead. Defaults measured on the real corpus (139 clips): its one
    shot change scores a thumbnail difference 0.20 / histogram distance 0.40; the largest
    values without a shot change were 0.12 / 0.08 (fast motion) and 0.09 / 0.18 (a colour
    fade).
    """

    min_video_seconds: float = 1.0
    min_face_px: float = 48.0
    face_samples_per_second: float = 2.0
    other_face_min_ratio: float = 0.5
    several_faces_min_fraction: float = 0.2
    cut_min_diff: float = 0.08
    cut_min_hist: float = 0.25
    cut_min_ratio: float = 4.0
    cut_window_seconds: float = 1.0
    max_yaw_deg: float = 35.0
    max_turned_fraction: float = 1.0


THUMB_SIZE = 32
HIST_BINS = 16


def frame_signature(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(thumbnail float32 [32, 32] grayscale in [0, 1], histogram float32 [48]) of a frame.

    The thumbnail is the area-averaged grayscale frame; the histogram concatenates 16-bin
    histograms of hue, saturation and value of a 64x64 area-averaged copy, each summing to 1.
    """
    import cv2

    rgb = np.ascontiguousarray(rgb, np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    thumb = cv2.resize(gray, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    hists = [
        np.histogram(hsv[..., c], bins=HIST_BINS, range=(0, 180 if c == 0 else 256))[0]
        for c in range(3)
    ]
    hist = np.concatenate(hists).astype(np.float32) / (64 * 64)
    return thumb.astype(np.float32) / 255.0, hist


def find_cuts(
    diff: np.ndarray, hist_dist: np.ndarray, fps: float, config: ScreenConfig = ScreenConfig()
) -> np.ndarray:
    """Frames t where a cut (scene change) starts: frame t shows another shot than t - 1.

    Args:
      diff: [T - 1] mean absolute thumbnail difference of frames t-1 and t (entry t - 1).
      hist_dist: [T - 1] their colour-histogram distance (`frame_signature`, 0-1).
      fps: frame rate (the neighbourhood is in seconds).
      config: the thresholds (`ScreenConfig.cut_*`).

    Returns:
      int64 [K] frame indices t (>= 1), ascending.
    """
    diff, hist_dist = np.asarray(diff, np.float64), np.asarray(hist_dist, np.float64)
    if diff.size == 0:
        return np.zeros(0, np.int64)
    half = max(int(round(config.cut_window_seconds * fps)), 2)
    cand = np.flatnonzero((diff >= config.cut_min_diff) & (hist_dist >= config.cut_min_hist))
    cuts = []
    for i in cand:
        around = np.r_[diff[max(i - half, 0) : i], diff[i + 1 : i + 1 + half]]
        usual = float(np.median(around)) if around.size else 0.0
        if diff[i] >= config.cut_min_ratio * usual:
            cuts.append(i + 1)
    return np.asarray(cuts, np.int64)


def face_sizes(landmarks: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """[T] size of the tracked face per frame: sqrt of its landmark box's area (pixels);
    NaN where the face was lost. `landmarks` [T, N, >= 2] frame pixels."""
    pts = np.asarray(landmarks, np.float64)[..., :2]
    extent = pts.max(axis=1) - pts.min(axis=1)
    size = np.sqrt(np.clip(extent[:, 0], 0, None) * np.clip(extent[:, 1], 0, None))
    return np.where(np.asarray(detected, bool), size, np.nan)


#: MediaPipe face-mesh points on the left and right edge of the face at the cheekbones.
_CHEEK_POINTS = (234, 454)


def face_yaws(landmarks: np.ndarray) -> np.ndarray:
    """[T] how far the tracked face is turned left or right (degrees, unsigned): the angle of
    the line between the face's edges at the cheekbones (MediaPipe points 234 and 454) out of
    the image plane, from the landmarks' x and depth z (`tracking.Track`: same pixel units).
    MediaPipe's landmarks flatten large turns (`ScreenConfig.max_yaw_deg`)."""
    pts = np.asarray(landmarks, np.float64)
    d = pts[:, _CHEEK_POINTS[1]] - pts[:, _CHEEK_POINTS[0]]
    return np.degrees(np.abs(np.arctan2(d[:, 2], np.abs(d[:, 0]))))


def _frames_text(frames: np.ndarray, total: int) -> str:
    """'frames 12-80, 95 (70 of 110)' of [T] bool `frames`."""
    from talkingjax.video import tracking

    ranges = tracking.lost_ranges(~np.asarray(frames, bool))
    return f"frames {tracking.format_ranges(ranges)} ({int(np.sum(frames))} of {total})"


def landmark_steps(landmarks: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """[T - 1] how far the tracked face moved from frame t - 1 to t (entry t - 1): the median
    landmark displacement over the face size (`face_sizes` of frame t); 0 where either frame
    lost the face. Reported, not judged: a jump cut (an edit within one shot) shows as an
    outlier here, but so does fast motion of a small face, so no threshold separates them."""
    pts = np.asarray(landmarks, np.float64)[..., :2]
    detected = np.asarray(detected, bool)
    if len(pts) < 2:
        return np.zeros(0)
    moved = np.median(np.linalg.norm(np.diff(pts, axis=0), axis=-1), axis=1)
    size = face_sizes(pts, np.ones(len(pts), bool))[1:]
    ok = detected[1:] & detected[:-1] & (size > 0)
    return np.where(ok, moved / np.where(size > 0, size, 1.0), 0.0)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def other_face_frames(
    samples: Sequence[tuple[int, np.ndarray]],
    landmarks: np.ndarray,
    detected: np.ndarray,
    min_ratio: float,
) -> tuple[list[int], int]:
    """Sampled frames showing a face besides the tracked one.

    Args:
      samples: (frame index, boxes [K, 4] = (x0, y0, x1, y1) frame pixels of every face a
        detector found in that frame).
      landmarks: [T, N, >= 2] the tracked face's landmarks, frame pixels.
      detected: [T] where the tracked face was found (other frames are not judged).
      min_ratio: a box counts if its size (sqrt area) is at least this fraction of the
        tracked face's, measured like the boxes (the detector's box of the tracked face when
        it found it, else the landmark box).

    Returns:
      (the frames with another face, ascending; the number of frames judged). A box is the
      tracked face's own if it overlaps the landmark box (IoU > 0.1) or its centre lies in it.
    """
    detected = np.asarray(detected, bool)
    hits, judged = [], 0
    for t, boxes in samples:
        if t >= len(detected) or not detected[t]:
            continue
        judged += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        pts = np.asarray(landmarks[t], np.float64)[:, :2]
        own = np.concatenate([pts.min(0), pts.max(0)])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = np.all((centres >= own[:2]) & (centres <= own[2:]), axis=1)
        mine = np.array([inside[k] or _box_iou(b, own) > 0.1 for k, b in enumerate(boxes)], bool)
        sizes = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1))
        ref = sizes[mine].max() if mine.any() else float(np.sqrt(np.prod(own[2:] - own[:2])))
        if np.any(~mine & (sizes >= min_ratio * ref)):
            hits.append(int(t))
    return hits, judged


@contextlib.contextmanager
def _open_face_detector() -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """A face detector for whole frames: rgb uint8 [H, W, 3] -> boxes [K, 4] (x0, y0, x1, y1)
    in pixels. MediaPipe's full-range BlazeFace (faces far from the camera too)."""
    import mediapipe as mp

    from talkingjax import console
    from talkingjax.video import tracking

    with console.native_stderr_filtered():
        det = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.5
        )
        det._graph.wait_until_idle()
        tracking.warm_up(det)  # its first image logs too

    def detect(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        with console.mediapipe_warnings_ignored():
            result = det.process(np.ascontiguousarray(rgb))
        boxes = []
        for d in result.detections or ():
            b = d.location_data.relative_bounding_box
            boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
        return np.asarray(boxes, np.float64).reshape(-1, 4)

    try:
        yield detect
    finally:
        det.close()


class FrameScan:
    """Per-frame measurements taken while a video is decoded once for tracking.

    `frames(source)` passes the frames through unchanged, recording for every frame its
    difference from the previous one (`frame_signature`: thumbnail difference and histogram
    distance) and, every `1 / face_samples_per_second` s, the boxes of all faces a whole-frame
    detector finds (`samples`, for `other_face_frames`).
    """

    def __init__(self, fps: float, config: ScreenConfig):
        self.fps = fps
        self.config = config
        rate = config.face_samples_per_second
        self.face_every = max(int(round(fps / rate)), 1) if rate > 0 else 0
        self.diff: list[float] = []
        self.hist_dist: list[float] = []
        self.samples: list[tuple[int, np.ndarray]] = []
        self.num_frames = 0

    def frames(self, source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        previous = None
        detector = _open_face_detector() if self.face_every else contextlib.nullcontext()
        with detector as detect:
            for i, rgb in enumerate(source):
                sig = frame_signature(rgb)
                if previous is not None:
                    self.diff.append(float(np.mean(np.abs(sig[0] - previous[0]))))
                    self.hist_dist.append(float(0.5 * np.sum(np.abs(sig[1] - previous[1])) / 3))
                previous = sig
                if detect is not None and i % self.face_every == 0:
                    self.samples.append((i, detect(np.asarray(rgb))))
                self.num_frames = i + 1
                yield rgb


def screen_track(track, scan: FrameScan, path: str, config: ScreenConfig = ScreenConfig()) -> dict:
    """Judges a tracked clip: face size, other faces, cuts (`ScreenConfig`).

    Returns:
      the report's "screen" section (measurements of a clip that passes).

    Raises:
      ClipRejected: "face too small", "turned away", "several faces" or "cut", with the
        measurements and the frames concerned.
    """
    fps = float(track.fps)
    detected = np.asarray(track.detected, bool)
    sizes = face_sizes(track.landmarks[:, : min(468, track.landmarks.shape[1])], detected)
    face_px = float(np.nanmedian(sizes)) if detected.any() else 0.0
    diff, hist_dist = np.asarray(scan.diff), np.asarray(scan.hist_dist)
    cuts = find_cuts(diff, hist_dist, fps, config)
    hits, judged = other_face_frames(
        scan.samples, track.landmarks, detected, config.other_face_min_ratio
    )
    steps = landmark_steps(track.landmarks[:, : min(468, track.landmarks.shape[1])], detected)
    details = {
        "version": SCREEN_VERSION,
        "face_size_px_median": round(face_px, 2),
        "landmark_step_max": round(float(steps.max()), 4) if steps.size else None,
        "landmark_step_max_frame": int(np.argmax(steps)) + 1 if steps.size else None,
        "face_size_px_min": round(float(np.nanmin(sizes)), 2) if detected.any() else 0.0,
        "frames_scanned": scan.num_frames,
        "frame_diff_max": round(float(diff.max()), 4) if diff.size else None,
        "cuts": cuts.tolist(),
        "faces_sampled_frames": judged,
        "other_face_frames": hits,
    }
    turned = detected & (face_yaws(track.landmarks) > config.max_yaw_deg)
    details["turned_frames"] = int(turned.sum())
    if face_px < config.min_face_px:
        small = detected & (sizes < config.min_face_px)
        raise ClipRejected(
            "face too small",
            f"{path}: face too small: {face_px:.0f} px (median sqrt area of the landmark box; "
            f"at least {config.min_face_px:g} px needed) in {_frames_text(small, len(small))}",
            details,
        )
    if turned.sum() > config.max_turned_fraction * detected.sum():
        raise ClipRejected(
            "turned away",
            f"{path}: face turned away (over {config.max_yaw_deg:g} degrees) in "
            f"{_frames_text(turned, len(turned))}; at most {config.max_turned_fraction:.0%} "
            "of the frames may be",
            details,
        )
    if len(hits) >= max(2, config.several_faces_min_fraction * judged):
        raise ClipRejected(
            "several faces",
            f"{path}: several faces: another face at least {config.other_face_min_ratio:.0%} of "
            f"the tracked one's size in {len(hits)} of {judged} sampled frames (frames "
            f"{', '.join(map(str, hits[:8]))}{', ...' if len(hits) > 8 else ''})",
            details,
        )
    if cuts.size:
        raise ClipRejected("cut", _cut_message(path, cuts, fps), details)
    return details


def _track_and_screen(path: str, info, config: ScreenConfig):
    """Decodes the video once: MediaPipe tracking and the `FrameScan`; then `screen_track`.

    A clip whose tracking fails (e.g. the face is lost for seconds) after the scan saw a cut
    is rejected as a cut, the tracking's message appended: the cut is the cause.
    """
    from talkingjax.video import tracking

    scan = FrameScan(float(info.fps), config)
    try:
        track = tracking.track_video(path, frames=scan.frames(tracking.read_frames(path)))
    except InputError as err:
        cuts = find_cuts(scan.diff, scan.hist_dist, float(info.fps), config)
        if not cuts.size or isinstance(err, ClipRejected):
            raise
        first = (str(err).splitlines() or [""])[0].removeprefix(f"{path}: ")
        raise ClipRejected(
            "cut", f"{_cut_message(path, cuts, float(info.fps))} ({first})", {"cuts": cuts.tolist()}
        ) from None
    return track, screen_track(track, scan, path, config)


def _cut_message(path: str, cuts: np.ndarray, fps: float) -> str:
    where = ", ".join(f"{t} ({t / fps:.2f} s)" for t in cuts[:5].tolist())
    more = f" and {cuts.size - 5} more" if cuts.size > 5 else ""
    return f"{path}: a cut (scene change) at frame{'s' if cuts.size > 1 else ''} {where}{more}"


def _check_length(info, path: str, config: ScreenConfig) -> None:
    seconds = info.num_frames / info.fps
    if seconds < config.min_video_seconds:
        raise ClipRejected(
            "too short",
            f"{path}: too short: {info.num_frames} frames ({seconds:.2f} s), at least "
            f"{config.min_video_seconds:g} s needed",
        )


#: Skip categories of the reports, and message fragments of errors raised elsewhere.
SKIP_KINDS = {
    "too short": ("too short", "s long, at least"),
    "irregular frame rate": ("variable frame rate", "irregular frame timestamps"),
    "face too small": ("face too small",),
    "several faces": ("several faces",),
    "turned away": ("face turned away",),
    "cut": ("a cut (scene change)",),
    "face lost": ("face lost in frames",),
    "no face": ("no face found",),
    "no audio track": ("no audio track",),
    "silent audio": ("audio is silent", "contains no audio samples"),
    "audio and video lengths differ": ("but the audio",),
    "frame too small": ("the short side must be",),
    "unreadable": ("not a video", "cannot read", "cannot decode", "not found", "no video"),
    "internal error": ("internal error", "worker process died"),
}


def speech_level(wave: np.ndarray, rate: int = audio.SAMPLE_RATE) -> float:
    """The level of a waveform's loud parts: the 95th percentile of its RMS over 100 ms
    frames (full scale = 1; the RMS of the whole wave if shorter than a frame)."""
    wave = np.asarray(wave, np.float64)
    n = rate // 10
    k = len(wave) // n
    if k == 0:
        return float(np.sqrt(np.mean(np.square(wave)))) if wave.size else 0.0
    frames = np.sqrt(np.mean(np.square(wave[: k * n].reshape(k, n)), axis=1))
    return float(np.percentile(frames, 95))


def skip_kind(reason: str) -> str:
    """The skip category (`SKIP_KINDS` key) of a reason string; "other" if none fits."""
    for kind, fragments in SKIP_KINDS.items():
        if any(f in reason for f in fragments):
            return kind
    return "other"


# -------------------------------------------------------------------------------- one clip


@dataclasses.dataclass(frozen=True)
class ClipResult:
    """What happened to one clip.

    Attributes:
      clip_id: the clip.
      status: "ok" (processed now), "done" (finished by an earlier run, not redone) or
        "skipped" (failed; `reason` says why).
      reason: the failure (one line), or a note for an ok clip (e.g. too short for
        head-motion training).
      head_motion: the record is long enough for the head-motion manifest.
      video_frames: frames of the video (= rows of the coefficient file).
      record_frames: frames of the record (the video trimmed to the audio).
      fps: the video frame rate.
      timings: seconds per stage ("probe", "audio", "track", "crop", "fit", "write", "total").
      internal: the failure was an unexpected exception (a bug), not bad input.
      audio: "speech", or for a record without speech "silent (no audio track)" / "silent
        (audio is silent)" (`AUDIO_*`).
      kind: a skipped clip's category (`skip_kind`: "too short", "face too small", ...).
    """

    clip_id: str
    status: str
    reason: str | None = None
    head_motion: bool | None = None
    video_frames: int | None = None
    record_frames: int | None = None
    fps: float | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    internal: bool = False
    audio: str | None = None
    kind: str | None = None

    def to_json(self) -> dict:
        """The report.json entry: the fields that are set (a kept clip's reason as "note")."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != {}}
        if not self.internal:
            del d["internal"]
        if self.status in ("ok", "done") and "reason" in d:
            d["note"] = d.pop("reason")
        return d


def clip_paths(out_root: str | os.PathLike, clip_id: str) -> dict[str, str]:
    """Output files of a clip, by kind ("clips", "coeffs", "reports", "crops")."""
    out_root = os.fspath(out_root)
    ext = {"clips": ".npz", "coeffs": ".mat", "reports": ".json", "crops": ".npz"}
    return {k: os.path.join(out_root, k, clip_id + ext[k]) for k in OUTPUT_DIRS}


def is_finished(out_root: str | os.PathLike, clip_id: str) -> bool:
    return os.path.isfile(clip_paths(out_root, clip_id)["clips"])


def _remove_stale_temps(paths: Iterable[str]) -> None:
    """Temporary files an interrupted attempt left next to these outputs."""
    for p in paths:
        for tmp in glob.glob(glob.escape(p) + ".*.tmp"):
            try:
                os.remove(tmp)
            except OSError:
                pass


def _write_json(path: str, obj: dict) -> None:
    records.atomic_write(path, lambda f: json.dump(_jsonable(obj), f, indent=1), mode="x")


def _jsonable(x):
    """numpy scalars/arrays and NaN -> plain JSON values (NaN/inf -> null)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _load_model(model):
    from talkingjax.face3d import default
    from talkingjax.face3d import model as mm

    if model is None or model == "default":
        return default.load_default()
    if isinstance(model, str | os.PathLike):
        return mm.load(os.fspath(model))
    return model


def preprocess_video(
    video_path: str | os.PathLike,
    out_root: str | os.PathLike,
    clip_id: str,
    video_id: str,
    speaker_id: str,
    split: str,
    model,
    crop_size: int = 224,
    save_crops: bool = False,
    pose_sigma: float | None = None,
    *,
    fit_config=None,
    max_mismatch_seconds: float = coeff257.MAX_MISMATCH_SECONDS,
    silent_clips: bool = True,
    screen_config: ScreenConfig | None = None,
) -> ClipResult:
    """Preprocesses one talking-face video into `out_root` (see the module docstring).

    Args:
      video_path: the video.
      out_root: the dataset directory (created if needed).
      clip_id, video_id, speaker_id, split: record metadata (`talkingjax.data.records`).
      model: a `MorphableModel`, a model `.npz` path, or None / "default" (the shipped one).
      crop_size: side of the square face crops the model is fitted in.
      save_crops: also write `crops/<clip_id>.npz`.
      pose_sigma: Gaussian smoothing (in frames) of the record's pose; None = raw fit. The
        coefficient file always keeps the raw fit.
      fit_config: a `reconstruct.VideoFitConfig` (None = its defaults).
      max_mismatch_seconds: video and audio lengths differing more are rejected.
      silent_clips: a video without usable audio (no audio track, or silent audio) is still
        fitted and written as a record without speech (`has_audio` False, module
        docstring); False = rejected, as clips with speech need.
      screen_config: what makes a clip unusable (`ScreenConfig`; None = its defaults).

    Returns:
      `ClipResult` with status "ok"; `head_motion` False for clips shorter than
      `records.MIN_CLIP_SECONDS` (written, but listed under the manifest's `short_clips`).

    Raises:
      InputError: not a readable video, too short, no audio track or silent audio (unless
        `silent_clips`), no trackable face, bad audio, video and audio of different lengths;
        `ClipRejected` (an `InputError`) for a face too small or turned away, several faces
        or a cut.
        Nothing but temporary files is written before all of the work succeeded, and those
        are removed.
    """
    from talkingjax.video import reconstruct, tracking

    video_path = os.fspath(video_path)
    screen_config = screen_config or ScreenConfig()
    paths = clip_paths(out_root, clip_id)
    timings: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    model = _load_model(model)
    info = tracking.probe_video(video_path)
    _check_length(info, video_path, screen_config)
    fps = float(np.float32(info.fps))  # as the record stores it, so every length check agrees
    lap("probe")
    # Audio before the expensive stages: silent audio or a length mismatch fails at once.
    audio_kind, feats = AUDIO_SPEECH, None
    if not info.has_audio:
        if not silent_clips:
            raise InputError(f"{video_path}: no audio track (the records need the speech)")
        audio_kind = AUDIO_NO_TRACK
    else:
        try:
            wave = audio.load_audio(video_path)
            level = speech_level(wave)
            if level < SILENT_LEVEL:
                raise InputError(
                    f"{video_path}: audio is silent (its loud parts are at "
                    f"{20 * np.log10(max(level, 1e-10)):.0f} dBFS)"
                )
            feats = audio.speech_features(wave)
        except InputError as err:
            if not (silent_clips and skip_kind(str(err)) == "silent audio"):
                raise
            audio_kind = AUDIO_SILENT
    has_audio = feats is not None
    if has_audio:
        align = lambda pose: coeff257.align_to_audio(
            pose, feats, fps, video_path, video_path, max_mismatch_seconds, min_seconds=0.0
        )
        align(np.zeros((int(info.num_frames), records.POSE_DIM), np.float32))
    lap("audio")
    track, screen = _track_and_screen(video_path, info, screen_config)
    lap("track")
    params = tracking.crop_track(track, model, size=crop_size)
    crops = tracking.crop_video(video_path, params, crop_size)
    landmarks = np.asarray(tracking.landmarks_in_crop(track, params), np.float32)
    lap("crop")
    fit = reconstruct.fit_video(model, crops, landmarks, track.detected, config=fit_config)
    lap("fit")
    params = np.asarray(params, np.float32)
    detected = np.asarray(track.detected, bool)
    pose = np.asarray(fit.pose, np.float32)
    if pose_sigma:
        pose = np.asarray(reconstruct.smooth_pose(pose, pose_sigma), np.float32)
    if has_audio:
        pose, mfcc = align(pose)
    else:  # every video frame; no speech rows
        pose = records.check_pose(pose, fps, name=video_path, min_seconds=0.0)
        mfcc = np.zeros((0, audio.NUM_CEPSTRA), np.float32)
    n = pose.shape[0]
    head_motion = n / fps >= records.MIN_CLIP_SECONDS
    clip = records.Clip(clip_id, video_id, speaker_id, fps, pose, mfcc, split, has_audio=has_audio)

    lost = np.flatnonzero(~detected)
    note = None
    if not has_audio:
        note = (
            f"no usable audio ({audio_kind.removeprefix('silent (')[:-1]}): pose and expression "
            f"of all {n} frames written as a record without speech, listed under silent_clips"
        )
    elif not head_motion:
        note = (
            f"shorter than {records.MIN_CLIP_SECONDS:g} s ({n / fps:.2f} s): coefficients and "
            "record written, listed under short_clips, not in the head-motion manifest"
        )
    report = {
        "clip_id": clip_id,
        "video": os.path.abspath(video_path),
        "video_id": video_id,
        "speaker_id": speaker_id,
        "split": split,
        "status": "ok",
        "audio": audio_kind,
        "fps": float(info.fps),
        "video_frames": int(detected.shape[0]),
        "record_frames": n,
        "head_motion": bool(head_motion),
        "note": note,
        "frame_size": [int(info.width), int(info.height)],
        "crop_size": crop_size,
        "pose_sigma": pose_sigma,
        "tracking": {
            "lost_frames": int(lost.size),
            "lost_fraction": float(lost.size / max(detected.shape[0], 1)),
            "lost_frame_indices": lost[:_MAX_LISTED_FRAMES].tolist(),
        },
        "screen": screen,
        "fit": fit.report(),
    }

    # Writing: everything but the record first, the record last (it marks the clip finished).
    for kind in OUTPUT_DIRS:
        if kind != "crops" or save_crops:
            os.makedirs(os.path.dirname(paths[kind]), exist_ok=True)
    _remove_stale_temps(paths.values())
    from talkingjax.face3d import coeffs as coeffs_lib

    coeffs_lib.write_mat(paths["coeffs"], fit.coeffs, params)
    if save_crops:
        arrays = {
            "crops": np.asarray(crops, np.uint8),
            "landmarks": landmarks,
            "detected": detected,
            "transform_params": params,
        }
        records.atomic_write(paths["crops"], lambda f: np.savez_compressed(f, **arrays))
    clip = dataclasses.replace(clip, exp=np.asarray(fit.coeffs.exp, np.float32)[:n])
    # The metadata travels with the record, so the manifest can be rebuilt from the files.
    meta = {"clip_id": clip_id, "video_id": video_id, "speaker_id": speaker_id, "split": split}
    extra = {k: np.asarray(str(v)) for k, v in meta.items()}
    lap("write")
    timings["total"] = round(time.perf_counter() - start, 3)
    report["timings"] = timings
    _write_json(paths["reports"], report)
    records.save_clip(paths["clips"], clip, extra=extra)
    return ClipResult(
        clip_id=clip_id,
        status="ok",
        reason=note,
        head_motion=bool(head_motion),
        video_frames=int(detected.shape[0]),
        record_frames=n,
        fps=fps,
        timings=timings,
        audio=audio_kind,
    )


# ------------------------------------------------------------------------ a run over clips


@dataclasses.dataclass
class RunReport:
    """The outcome of `preprocess`: one result per discovered clip and the totals."""

    out_root: str
    layout: str
    results: list[ClipResult]
    totals: dict[str, Any]

    @property
    def report_path(self) -> str:
        return os.path.join(self.out_root, "report.json")

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.out_root, "manifest.json")

    def failures(self) -> list[ClipResult]:
        return [r for r in self.results if r.status == "skipped"]

    def summary(self) -> str:
        t = self.totals
        line = (
            f"{t['clips']} clip(s): {t['ok']} processed, {t['done']} already done, "
            f"{t['skipped']} skipped"
        )
        if t.get("internal_errors"):
            line += f" ({t['internal_errors']} internal errors)"
        line += (
            f"; manifest: {t['manifest_clips']} head-motion clip(s)"
            f", {t['manifest_short_clips']} short, {t.get('manifest_silent_clips', 0)} without "
            f"speech; report: {self.report_path}"
        )
        if t.get("skip_kinds"):
            line += "; skipped: " + ", ".join(f"{k} {v}" for k, v in t["skip_kinds"].items())
        return line


def _run_clip(spec: ClipSpec, out_root: str, model, options: dict) -> ClipResult:
    """`preprocess_video` with every failure turned into a "skipped" result (+ its report).

    A clip that is already finished (only given to it by a `recheck` run) is rechecked
    instead (`_recheck_clip`).
    """
    if is_finished(out_root, spec.clip_id):
        return _recheck_clip(spec, out_root, options)
    start = time.perf_counter()
    details = None
    try:
        return preprocess_video(
            spec.video_path,
            out_root,
            spec.clip_id,
            spec.video_id,
            spec.speaker_id,
            spec.split,
            model,
            **options,
        )
    except InputError as err:
        reason, internal, tb = (str(err).splitlines() or ["?"])[0], False, None
        details = getattr(err, "details", None)
        kind = getattr(err, "kind", None) or skip_kind(reason)
    except Exception as err:  # a bug, or a library failing on odd input: keep going
        reason = f"internal error: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        internal, tb, kind = True, traceback.format_exc(), "internal error"
    seconds = round(time.perf_counter() - start, 3)
    paths = clip_paths(out_root, spec.clip_id)
    if not os.path.exists(paths["clips"]):  # outputs of an earlier, interrupted attempt
        _remove_outputs(paths)
    _write_skip_report(spec, paths, reason, kind, seconds, details, tb)
    return ClipResult(
        spec.clip_id, "skipped", reason, timings={"total": seconds}, internal=internal, kind=kind
    )


def _remove_outputs(paths: dict[str, str]) -> None:
    """Removes a clip's record (first: the clip is then no longer finished), coefficients,
    crops and stale temporary files; its report is left."""
    _remove_stale_temps(paths.values())
    for kind in ("clips", "coeffs", "crops"):
        try:
            os.remove(paths[kind])
        except OSError:
            pass


def _write_skip_report(spec, paths, reason, kind, seconds, details=None, tb=None, **extra):
    report = {"clip_id": spec.clip_id, "video": os.path.abspath(spec.video_path)}
    report |= {"status": "skipped", "reason": reason, "kind": kind, **extra}
    report["timings"] = {"total": seconds}
    if details:
        report["screen"] = details
    if tb:
        report["traceback"] = tb
    try:
        os.makedirs(os.path.dirname(paths["reports"]), exist_ok=True)
        _write_json(paths["reports"], report)
    except OSError:
        pass


def _read_report(out_root: str, clip_id: str) -> dict | None:
    try:
        with open(clip_paths(out_root, clip_id)["reports"]) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def is_screened(out_root: str | os.PathLike, clip_id: str) -> bool:
    """Whether a clip's report has the current screening (`SCREEN_VERSION`)."""
    report = _read_report(os.fspath(out_root), clip_id) or {}
    return (report.get("screen") or {}).get("version") == SCREEN_VERSION


def _record_has_audio(path: str) -> bool | None:
    try:
        with np.load(path) as z:
            return bool(z["has_audio"]) if "has_audio" in z.files else True
    except (OSError, ValueError, KeyError):
        return None


def _recheck_clip(spec: ClipSpec, out_root: str, options: dict) -> ClipResult:
    """Screens a clip finished by an earlier run without refitting it (`recheck`).

    Its video is probed, tracked and scanned again (`_check_length`, `_track_and_screen`).
    Rejected: its record, coefficients and crops are removed and its report says why, as
    if a fresh run had skipped it. Passed: the "screen" section is added to its report. An
    error that is not a screening verdict (e.g. ffmpeg missing) leaves the clip as it was.
    """
    from talkingjax.video import tracking

    start = time.perf_counter()
    config = options.get("screen_config") or ScreenConfig()
    paths = clip_paths(out_root, spec.clip_id)
    report = _read_report(out_root, spec.clip_id) or {}
    try:
        info = tracking.probe_video(spec.video_path)
        _check_length(info, spec.video_path, config)
        _, screen = _track_and_screen(spec.video_path, info, config)
    except ClipRejected as err:
        seconds = round(time.perf_counter() - start, 3)
        _remove_outputs(paths)
        reason = (str(err).splitlines() or ["?"])[0]
        _write_skip_report(spec, paths, reason, err.kind, seconds, err.details, rechecked=True)
        return ClipResult(
            spec.clip_id, "skipped", reason, timings={"total": seconds}, kind=err.kind
        )
    except Exception as err:  # not a verdict on the clip: keep it
        first = (str(err).splitlines() or [""])[0]
        note = f"recheck failed ({type(err).__name__}: {first}); kept as it was"
        return ClipResult(spec.clip_id, "done", note, audio=report.get("audio"))
    has_audio = _record_has_audio(paths["clips"])
    audio_kind = report.get("audio") or (AUDIO_SPEECH if has_audio else None)
    report |= {"screen": screen, "audio": audio_kind}
    report.setdefault("timings", {})["recheck"] = round(time.perf_counter() - start, 3)
    _write_json(paths["reports"], report)
    return ClipResult(
        spec.clip_id,
        "done",
        "rechecked: passes the screening",
        fps=report.get("fps"),
        video_frames=report.get("video_frames"),
        record_frames=report.get("record_frames"),
        audio=audio_kind,
    )


_WORKER_MODEL = None


def _init_worker(model_spec) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = _load_model(model_spec)


def _worker_run(spec: ClipSpec, out_root: str, options: dict) -> ClipResult:
    return _run_clip(spec, out_root, _WORKER_MODEL, options)


def _run_parallel(
    todo: list[ClipSpec], out_root: str, model_spec, options: dict, workers: int, on_result
) -> None:
    """Runs clips on `workers` spawned processes, one clip per worker in flight.

    A pool whose worker died (`BrokenProcessPool`) fails the clips it held (few, as only one
    per worker is submitted at a time); the rest run on a new pool.
    """
    ctx = multiprocessing.get_context("spawn")
    pending = list(reversed(todo))
    while pending:
        pool = cf.ProcessPoolExecutor(
            workers, ctx, initializer=_init_worker, initargs=(model_spec,)
        )
        running: dict[cf.Future, ClipSpec] = {}
        try:
            while pending or running:
                while pending and len(running) < workers:
                    spec = pending[-1]
                    running[pool.submit(_worker_run, spec, out_root, options)] = spec
                    pending.pop()
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    on_result(fut.result())
                    del running[fut]
        except cf.process.BrokenProcessPool:
            for spec in running.values():
                on_result(_crashed(spec))
        except BaseException:  # Ctrl-C: stop our workers now; their outputs are atomic
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _crashed(spec: ClipSpec) -> ClipResult:
    return ClipResult(
        spec.clip_id,
        "skipped",
        "a worker process died while this clip was running (out of memory?)",
        internal=True,
        kind="internal error",
    )


def _model_spec_for_workers(model):
    """What the worker initializer receives: a path/None, or the model's arrays as numpy."""
    if model is None or isinstance(model, str | os.PathLike):
        return model
    import jax

    return jax.tree.map(np.asarray, model)


def preprocess(
    inputs: str | os.PathLike,
    out_root: str | os.PathLike,
    layout: str = "folder",
    model=None,
    workers: int = 1,
    crop_size: int = 224,
    save_crops: bool = False,
    pose_sigma: float | None = None,
    split: str = "train",
    splits: Sequence[str] | None = None,
    fps: float | None = None,
    retry_failed: bool = True,
    fit_config=None,
    progress: TextIO | None | bool = None,
    silent_clips: bool = True,
    recheck: bool = False,
    screen_config: ScreenConfig | None = None,
) -> RunReport:
    """Preprocesses every clip of `inputs` into the dataset `out_root` (module docstring).

    Args:
      inputs: a video file or directory (`folder`), an LRW `lipread_mp4` directory (`lrw`),
        or a directory of coefficient .mat + audio pairs (`coeff`).
      out_root: the dataset directory (created if needed); may already hold finished clips.
      layout: "folder", "lrw" or "coeff".
      model: None / "default" (shipped model), a model .npz path, or a `MorphableModel`.
      workers: processes working on clips in parallel (1 = in this process).
      crop_size, save_crops, pose_sigma, fit_config: see `preprocess_video`.
      split: split of all `folder` clips (and of `coeff` clips).
      splits: LRW splits to process (default all).
      fps: frame rate of the coefficient files (`coeff` layout only; required there).
      retry_failed: also rerun clips whose last attempt failed (their report says so).
      progress: stream for the progress line; None = stderr, False = none.
      silent_clips: videos without usable audio become records without speech (see
        `preprocess_video`); False = they are skipped.
      recheck: screen finished clips whose report predates the current screening
        (`SCREEN_VERSION`) without refitting them (`_recheck_clip`); rejected ones lose
        their record and count as skipped.
      screen_config: what makes a clip unusable (`ScreenConfig`).

    Returns:
      `RunReport`; also written as `<out_root>/report.json`.

    Raises:
      InputError: missing input, unknown layout, no clips found, an unreadable face model, or
        (`coeff` layout) any unusable pair. Failures of single video clips do not raise.
    """
    inputs, out_root = os.fspath(inputs), os.fspath(out_root)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    if layout == "coeff":
        return _import_coeff(inputs, out_root, fps, split)
    if fps is not None:
        raise InputError("fps is only for the coeff layout (videos carry their frame rate)")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    if not crop_size >= 32:
        raise InputError(f"crop size must be at least 32 pixels, got {crop_size}")
    if pose_sigma is not None and not pose_sigma >= 0:
        raise InputError(f"pose_sigma must be >= 0 frames, got {pose_sigma}")
    specs = discover(inputs, layout, split=split, splits=splits)
    loaded = _load_model(model)  # fails fast on a bad model path, before any clip runs
    os.makedirs(out_root, exist_ok=True)
    options = {
        "crop_size": crop_size,
        "save_crops": save_crops,
        "pose_sigma": pose_sigma,
        "fit_config": fit_config,
        "silent_clips": silent_clips,
        "screen_config": screen_config,
    }

    results: dict[str, ClipResult] = {}
    todo = []
    for spec in specs:
        if is_finished(out_root, spec.clip_id):
            if recheck and not is_screened(out_root, spec.clip_id):
                todo.append(spec)
            else:
                audio_kind = (_read_report(out_root, spec.clip_id) or {}).get("audio")
                results[spec.clip_id] = ClipResult(spec.clip_id, "done", audio=audio_kind)
        elif not retry_failed and (prev := _previous_failure(out_root, spec.clip_id)):
            results[spec.clip_id] = ClipResult(spec.clip_id, "skipped", prev, kind=_prev_kind(prev))
        else:
            todo.append(spec)
    bar = progress_lib.Progress(quiet=progress is False, stream=progress or None).bar(
        "preprocess", len(todo), every=1.0, failures=True
    )

    def on_result(result: ClipResult) -> None:
        results[result.clip_id] = result
        bar.advance(failed=result.status == "skipped")

    start = time.perf_counter()
    try:
        if workers == 1 or len(todo) <= 1:
            for spec in todo:
                on_result(_run_clip(spec, out_root, loaded, options))
        else:
            spec_for_workers = _model_spec_for_workers(model)
            _run_parallel(todo, out_root, spec_for_workers, options, workers, on_result)
    finally:  # also after Ctrl-C: what finished so far is in the manifest
        ordered = [results[s.clip_id] for s in specs if s.clip_id in results]
        run = _finish(out_root, layout, ordered, len(specs), time.perf_counter() - start)
    return run


def _previous_failure(out_root: str, clip_id: str) -> str | None:
    report = _read_report(out_root, clip_id) or {}
    if report.get("status") == "skipped":
        return f"failed in an earlier run: {report.get('reason')}"
    return None


def _prev_kind(reason: str) -> str:
    """`skip_kind` of a reason (also of "failed in an earlier run: <reason>")."""
    return skip_kind(reason.removeprefix("failed in an earlier run: "))


def _finish(
    out_root: str, layout: str, results: list[ClipResult], num_clips: int, seconds: float
) -> RunReport:
    entries, short, silent = rebuild_manifest(out_root, fresh={r.clip_id for r in results})
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "done", "skipped")}
    kinds: dict[str, int] = {}
    for r in results:
        if r.status == "skipped":
            kinds[r.kind or "other"] = kinds.get(r.kind or "other", 0) + 1
    totals = {
        "clips": num_clips,
        **counts,
        "not_run": num_clips - len(results),
        "internal_errors": sum(r.internal for r in results),
        "manifest_clips": len(entries),
        "manifest_short_clips": len(short),
        "manifest_silent_clips": len(silent),
        "skip_kinds": dict(sorted(kinds.items())),
        "seconds": round(seconds, 3),
    }
    run = RunReport(out_root, layout, results, totals)
    report = {
        "format": REPORT_FORMAT,
        "layout": layout,
        "totals": totals,
        "clips": [r.to_json() for r in results],
    }
    _write_json(run.report_path, report)
    return run


def _clip_entry_from_file(root: str, rel: str) -> dict | None:
    """A manifest entry from a clip file's own arrays (None if unreadable or not ours)."""
    try:
        with np.load(os.path.join(root, rel)) as z:
            meta = {k: str(z[k]) for k in ("clip_id", "video_id", "speaker_id", "split")}
            num_frames = int(z["pose"].shape[0])
            fps = float(z["fps"])
            has_audio = bool(z["has_audio"]) if "has_audio" in z.files else True
    except (OSError, ValueError, KeyError):
        return None
    entry = {**meta, "fps": fps, "num_frames": num_frames, "file": rel}
    if not has_audio:
        entry["has_audio"] = False
    return entry


def rebuild_manifest(
    out_root: str | os.PathLike, fresh: Iterable[str] = ()
) -> tuple[list[dict], list[dict], list[dict]]:
    """Rewrites `<out_root>/manifest.json` from every finished clip in `<out_root>/clips`.

    Entries of the existing manifest are reused for files still present, except for the clip
    ids in `fresh` (just written); other clip files are read for their metadata. Records with
    speech of at least `records.MIN_CLIP_SECONDS` go to `clips` (what `records.load_dataset`
    reads), shorter ones to `short_clips`; records without speech (`has_audio` False) to
    `silent_clips`, whatever their length.

    Returns:
      (clips, short_clips, silent_clips entries), each sorted by clip id.
    """
    out_root, fresh = os.fspath(out_root), set(fresh)
    clip_dir = os.path.join(out_root, "clips")
    files = (
        sorted(f for f in os.listdir(clip_dir) if f.endswith(".npz"))
        if os.path.isdir(clip_dir)
        else []
    )
    known: dict[str, dict] = {}
    try:
        with open(os.path.join(out_root, "manifest.json")) as f:
            old = json.load(f)
        if old.get("format") == records.FORMAT:
            for key in ("clips", "short_clips", "silent_clips"):
                for e in old.get(key, []):
                    known[e["file"]] = e
    except (OSError, ValueError, KeyError, TypeError):
        pass
    entries, short, silent = [], [], []
    for name in files:
        rel = os.path.join("clips", name)
        entry = None if name[:-4] in fresh else known.get(rel)
        entry = entry or _clip_entry_from_file(out_root, rel)
        if entry is None:
            continue
        if entry.get("has_audio", True) is False:
            silent.append(entry)
        elif entry["num_frames"] / entry["fps"] >= records.MIN_CLIP_SECONDS:
            entries.append(entry)
        else:
            short.append(entry)
    for part in (entries, short, silent):
        part.sort(key=lambda e: e["clip_id"])
    if files or os.path.exists(os.path.join(out_root, "manifest.json")):
        records.write_manifest(out_root, entries, short_clips=short, silent_clips=silent)
    return entries, short, silent


def _import_coeff(inputs: str, out_root: str, fps: float | None, split: str) -> RunReport:
    """The `coeff` layout: `coeff257.coeff_dir_to_dataset`, with a report.json alongside."""
    if fps is None:
        raise InputError("the coeff layout needs the frame rate of the coefficient files (fps)")
    if not os.path.isdir(inputs):
        raise InputError(f"input not found: {inputs}")
    start = time.perf_counter()
    clips = coeff257.coeff_dir_to_dataset(inputs, out_root, fps, split=split)
    results = [
        ClipResult(
            c.clip_id,
            "ok",
            head_motion=True,
            record_frames=c.num_frames,
            fps=c.fps,
        )
        for c in clips
    ]
    totals = {
        "clips": len(clips),
        "ok": len(clips),
        "done": 0,
        "skipped": 0,
        "not_run": 0,
        "internal_errors": 0,
        "manifest_clips": len(clips),
        "manifest_short_clips": 0,
        "manifest_silent_clips": 0,
        "seconds": round(time.perf_counter() - start, 3),
    }
    run = RunReport(out_root, "coeff", results, totals)
    report = {
        "format": REPORT_FORMAT,
        "layout": "coeff",
        "totals": totals,
        "clips": [r.to_json() for r in results],
    }
    _write_json(run.report_path, report)
    return run
