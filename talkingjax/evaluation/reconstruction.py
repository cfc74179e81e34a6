"""Self-reconstruction on held-out speakers: the pipeline against the real frames it should make.

The field's standard when ground truth exists (issue 19, item 5). A held-out talking clip of T
frames is split at `split_point`: the first part personalises, the rest is driven with its own
speech and -- for this protocol -- its own fitted head pose, and every row is compared with the
real frames of the rest. The rows run the same code:

- "nearest_pose" (a): for every frame of the rest, the real frame of the first part whose fitted
  head angles are nearest (`nearest_pose`): the right head pose, no lip motion;
- "raw_render" (b): the pipeline without the GAN (`generation.Controls(pose=..., refine=False)`):
  the face rendered at the given pose with the predicted expression, over its background crop,
  pasted into the matched background frame;
- "pipeline" (c): the paper's pipeline (`generation.personalize` + `generation.generate` with
  `Controls(pose=..., region="face")`): the refined face replaces the real one;
- "composite" (d): the same with `region="mouth"` (beyond the paper): only the region speech
  moves is taken from the refined crop, the rest of the face stays the matched real frame's;
- "real": the real frames of the rest, written through the same mp4 writer: the reference row
  (its face PSNR is the encoder's ceiling, its video measures the real video's).

Each row is an mp4 (speech of the rest as its audio), measured by the same code:

- face-region PSNR / SSIM against the real frames of the rest (decoded from the original clip):
  the region is the filled hull of the real frame's tracked face mesh (MediaPipe, 468 points),
  dilated by `Protocol.region_dilation` of the face size (the landmarks' larger box side)
  (`face_mask`). `region_psnr`: MSE over the region's pixels and channels, capped at
  `metrics.image.PSNR_CAP_DB` as `metrics.image.psnr` is (identical frames give exactly the
  cap); `region_ssim`: `metrics.image.ssim`'s map (11x11 Gaussian window, per channel), averaged
  over the window positions centred in the region. Frames where the tracker lost the real face
  are left out.
- mouth LMD (`mouth_lmd`): the 40 MediaPipe lip points tracked on the output and on the real
  frame; "mouth_lmd": each frame's lip points minus their centroid, over that frame's own
  outer eye-corner distance (a scale-free mouth shape), mean point distance in percent of it;
  "mouth_lmd_placed": the points as they are, over the real frame's eye distance (also counts
  where the mouth is). Frames where either face was lost are left out.
- the video measures of `talkingjax.evaluation.video` (`analyze_video` + `compare`: head speed,
  jerk, steps, the tracked pose against the given pose, face sharpness, mouth opening against
  the speech energy, AV offset and confidence with a sync scorer, lost frames, paste seam),
  each row against the real rest ("*_target" keys).

Protocol choices (`Protocol`, all in the report):

- The split: the first max(round(`first_fraction` T), ceil(`min_first_seconds` fps)) frames
  personalise; the rest must be at least `min_rest_seconds` long, else the clip is skipped as
  too short, and is driven for at most `max_rest_seconds` (default 10 s; the frames after it
  are not used). The pipeline itself refuses targets under `generation.MIN_TARGET_SECONDS` (4 s:
  the motion encoder's minimum), so such clips are skipped too, with that reason.
- What personalisation sees: `generation.personalize` fits the whole clip (the 3DMM fit is the
  measuring instrument the given pose comes from, so identity, albedo, light and the per-frame
  pose are of one fit), but everything learned and every background is of the first part only:
  both fine-tunes run on its first `tune_frames` frames (`TuneOptions.frames`), and the target
  is cut to the first part (`first_part`) before generation, so background matching can only
  pick first-part frames. The motion pattern (of the whole clip) is unused: the pose is given.
- Short clips. The paper fine-tunes on 300 frames; `TuneOptions.frames` (default 300) takes the
  first `frames` frames, and a video shorter than that is tuned on all of it, without a
  warning, for the same number of steps (`expression_steps`; the shipped GAN config's
  `finetune.steps`, 300; a GAN config with steps 0 would run `epochs * frames / batch`, fewer
  for fewer frames): more passes over fewer frames. Under 4 s `personalize` refuses the video.
  Here the first part is the tuning set, so every clip under 600 frames tunes on fewer than
  300 frames: the report gives each clip's count ("tune_frames"). Both fine-tunes count
  `frames` in the video's own frames (the expression trainer converts them to its 25 fps), so
  the tuning set is exactly the first part's first `tune_frames` frames.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Sequence

import cv2
import jax
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from talkingjax import audio, generation, visualize
from talkingjax.data import corpus, records
from talkingjax.data.corpus import preprocess_status
from talkingjax.errors import InputError
from talkingjax.evaluation import video as video_eval
from talkingjax.face3d import default
from talkingjax.metrics import image as image_metrics
from talkingjax.metrics import video as video_metrics
from talkingjax.progress import Progress
from talkingjax.video import tracking

REAL = "real"
ROWS = ("nearest_pose", "raw_render", "pipeline", "composite")
# The generated rows: the `generation.Controls` each is made with (besides the given pose).
GENERATED_ROWS = {
    "raw_render": dict(refine=False, region="face"),
    "pipeline": dict(refine=True, region="face"),
    "composite": dict(refine=True, region="mouth"),
}
ROW_TITLES = {
    REAL: "real frames (re-encoded)",
    "nearest_pose": "(a) nearest-pose real frame",
    "raw_render": "(b) raw render pasted",
    "pipeline": "(c) pipeline (GAN, full face)",
    "composite": "(d) GAN, mouth region",
}
# MediaPipe face mesh: the 40 lip points (`FACEMESH_LIPS`), the outer eye corners.
MOUTH_MESH_POINTS = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185,
    191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409,
    415,
)  # fmt: skip
NUM_MESH_POINTS = video_metrics.NUM_MESH_POINTS
STRIP_TILE = 192  # pixels of one frame-strip tile
STRIP_TIMES = 4  # frames of the rest shown in the strip


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The documented parameters of the protocol (module docstring).

    Attributes:
      first_fraction: share of the clip's frames that personalise (the rest is driven).
      min_first_seconds: the personalisation part is at least this long.
      min_rest_seconds: a clip whose driven part would be shorter is skipped.
      max_rest_seconds: the driven part stops after this long (0 = the whole rest): long clips
        would otherwise weigh several times a short one in the cost, not in the mean.
      expression_steps: expression fine-tune steps (`TuneOptions.expression_steps`).
      gan_steps: GAN fine-tune steps; None = the GAN config's (`TuneOptions.gan_steps`).
      region_dilation: the face region's hull is dilated by this share of the face size.
      video_measures: also fit every row's video (`evaluation.video`; ~1 min a row).
    """

    first_fraction: float = 0.5
    min_first_seconds: float = 2.0
    min_rest_seconds: float = 1.0
    max_rest_seconds: float = 10.0
    expression_steps: int = 300
    gan_steps: int | None = None
    region_dilation: float = 0.1
    video_measures: bool = True

    def check(self) -> None:
        """`InputError` on values the protocol cannot use."""
        if not 0.0 < self.first_fraction < 1.0:
            raise InputError(f"first_fraction must lie in (0, 1), got {self.first_fraction}")
        for name in ("min_first_seconds", "min_rest_seconds", "max_rest_seconds",
                     "region_dilation"):  # fmt: skip
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a finite number >= 0, got {value}")
        if self.expression_steps < 0 or (self.gan_steps is not None and self.gan_steps < 0):
            raise InputError("fine-tune steps must be >= 0")


# ----------------------------------------------------------------------------- the split


def split_point(num_frames: int, fps: float, protocol: Protocol) -> int:
    """Frames of the personalisation part of a clip of `num_frames` at `fps` (module docstring).

    Raises:
      InputError: the driven part would be shorter than `protocol.min_rest_seconds`, or the clip
        is shorter than the pipeline's minimum target (`generation.MIN_TARGET_SECONDS`).
    """
    seconds = num_frames / fps
    if num_frames < math.ceil(generation.MIN_TARGET_SECONDS * fps - 1e-6):
        raise InputError(
            f"{seconds:.2f} s: the pipeline refuses targets under "
            f"{generation.MIN_TARGET_SECONDS:.0f} s (generation.personalize)"
        )
    first = max(
        int(round(protocol.first_fraction * num_frames)),
        math.ceil(protocol.min_first_seconds * fps - 1e-6),
    )
    rest = num_frames - first
    if rest < max(1, math.ceil(protocol.min_rest_seconds * fps - 1e-6)):
        raise InputError(
            f"{seconds:.2f} s is too short for the split: {first} frames personalise, "
            f"{rest} would be driven (at least {protocol.min_rest_seconds:g} s needed)"
        )
    return first


def first_part(target: generation.Target, frames: int) -> generation.Target:
    """The personalised target cut to its first `frames` frames (fit, crops, pose; and so the
    frames `Target.frames` decodes and background matching can pick)."""
    if not 1 <= frames <= target.num_frames:
        raise InputError(f"cannot cut a {target.num_frames}-frame target to {frames} frames")
    return dataclasses.replace(
        target,
        coeffs=jax.tree.map(lambda x: np.asarray(x)[:frames], target.coeffs),
        params=np.asarray(target.params)[:frames],
        pose=np.asarray(target.pose)[:frames],
    )


def rest_speech(wave: np.ndarray, first: int, rest: int, fps: float) -> np.ndarray:
    """The 16 kHz speech of video frames [first, first + rest): exactly `rest` frames long for
    `audio.num_video_frames` (zero-padded if the track ends early)."""
    start = int(round(first / fps * audio.SAMPLE_RATE))
    size = int(math.ceil(rest / fps * audio.SAMPLE_RATE))
    out = np.zeros(size, np.float32)
    piece = np.asarray(wave, np.float32)[start : start + size]
    out[: piece.size] = piece
    return out


# ----------------------------------------------------------------------------- rows


def nearest_pose(rest_pose: np.ndarray, first_pose: np.ndarray) -> np.ndarray:
    """[R] index into `first_pose` [N, 6] of the nearest head angles to each of `rest_pose` [R, 6].

    Distance: Euclidean over (pitch, yaw, roll) in radians; the translation is left out, as in
    background matching (`generation.background.match_keyframes`): it is relative to each
    frame's crop and says where the head sits, not which way it faces. Ties: the earlier frame.
    """
    rest, first = np.asarray(rest_pose, np.float64), np.asarray(first_pose, np.float64)
    for name, p in (("rest_pose", rest), ("first_pose", first)):
        if p.ndim != 2 or p.shape[1] < 3 or p.shape[0] < 1 or not np.isfinite(p).all():
            raise InputError(f"{name} must be finite [N >= 1, 6] poses, got shape {p.shape}")
    d = np.linalg.norm(rest[:, None, :3] - first[None, :, :3], axis=-1)  # [R, N]
    return np.argmin(d, axis=1).astype(np.int64)


# ----------------------------------------------------------------------------- measures


def face_mask(shape: tuple[int, int], points: np.ndarray, dilation: float) -> np.ndarray:
    """[H, W] bool: the filled convex hull of face points [>= 3, 2] (frame pixels, centres at
    +0.5), dilated by `dilation` x the points' larger box side (an elliptical kernel)."""
    p = np.asarray(points, np.float64)[:, :2]
    if p.ndim != 2 or p.shape[0] < 3 or not np.isfinite(p).all():
        raise InputError(f"face points must be finite [N >= 3, 2], got shape {p.shape}")
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(p - 0.5).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    radius = int(round(dilation * float(np.max(p.max(0) - p.min(0)))))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


def _frames(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise InputError(f"{name} must be uint8 [N, H, W, 3] frames, got {a.dtype} {a.shape}")
    return a


def _masked_pair(pred, real, masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, r = _frames(pred, "pred"), _frames(real, "real")
    m = np.asarray(masks, bool)
    if p.shape != r.shape or m.shape != p.shape[:3]:
        raise InputError(f"pred {p.shape}, real {r.shape} and masks {m.shape} do not match")
    if not m.reshape(len(m), -1).any(axis=1).all():
        raise InputError("every frame's face region must hold at least one pixel")
    return p, r, m


def region_psnr(pred, real, masks) -> float:
    """Mean over frames of the PSNR (dB) inside each frame's region, capped as
    `metrics.image.psnr` (identical regions give exactly `PSNR_CAP_DB`).

    Args:
      pred, real: [N, H, W, 3] uint8. masks: [N, H, W] bool, each with a pixel at least.
    """
    p, r, m = _masked_pair(pred, real, masks)
    cap = image_metrics.PSNR_CAP_DB
    out = []
    for x, y, k in zip(p, r, m, strict=True):
        d = (x[k].astype(np.float64) - y[k].astype(np.float64)) / 255.0
        mse = max(float(np.mean(d**2)), 10.0 ** (-cap / 10.0))
        out.append(min(10.0 * math.log10(1.0 / mse), cap))
    return float(np.mean(out))


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[H - 10, W - 10, C] SSIM map of two float [H, W, C] images in [0, 1]: the window and
    constants of `metrics.image.ssim` (whose mean over the map, then channels, is its value)."""
    k, s = image_metrics.SSIM_WINDOW, image_metrics.SSIM_SIGMA
    r = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * s**2))
    g /= g.sum()

    def blur(a: np.ndarray) -> np.ndarray:
        a = sliding_window_view(a, k, axis=0) @ g  # [H - k + 1, W, C]
        return sliding_window_view(a, k, axis=1) @ g  # [H - k + 1, W - k + 1, C]

    c1, c2 = (image_metrics.SSIM_K1) ** 2, (image_metrics.SSIM_K2) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def region_ssim(pred, real, masks) -> float:
    """Mean over frames of the SSIM inside each frame's region: `metrics.image.ssim`'s map
    averaged over the window positions whose centre lies in the region (a full mask gives
    `metrics.image.ssim` exactly). Frames at least 11 x 11.

    Args:
      pred, real: [N, H, W, 3] uint8. masks: [N, H, W] bool.
    """
    p, r, m = _masked_pair(pred, real, masks)
    k = image_metrics.SSIM_WINDOW
    h = k // 2
    if min(p.shape[1:3]) < k:
        raise InputError(f"region_ssim needs frames of at least {k}x{k}, got {p.shape[1:3]}")
    out = []
    for x, y, mask in zip(p, r, m, strict=True):
        inner = mask[h : mask.shape[0] - h, h : mask.shape[1] - h]  # window centres
        if not inner.any():  # the region hugs the border: centre windows on its nearest pixels
            inner = np.zeros_like(inner)
            ys, xs = np.nonzero(mask)
            inner[
                np.clip(ys - h, 0, inner.shape[0] - 1), np.clip(xs - h, 0, inner.shape[1] - 1)
            ] = 1
        ys, xs = np.nonzero(inner)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1  # box of the centres
        crop = (slice(y0, y1 + 2 * h), slice(x0, x1 + 2 * h))
        sm = _ssim_map(x[crop].astype(np.float64) / 255.0, y[crop].astype(np.float64) / 255.0)
        out.append(float(sm[inner[y0:y1, x0:x1]].mean()))
    return float(np.mean(out))


def _eye_distance(points: np.ndarray) -> np.ndarray:
    e = video_metrics.EYE_OUTER_RIGHT, video_metrics.EYE_OUTER_LEFT
    return np.maximum(np.linalg.norm(points[:, e[0]] - points[:, e[1]], axis=-1), 1e-6)


def mouth_lmd(out_points, real_points, valid=None) -> dict[str, float]:
    """Mouth landmark distances of tracked face points [T, >= 468, 2] (module docstring).

    Args:
      out_points, real_points: tracked points of the output and the real frames.
      valid: [T] bool, frames to use (both faces found); default all.

    Returns:
      {"mouth_lmd": shape distance, "mouth_lmd_placed": position distance}, both in percent of
      the outer eye-corner distance; nan without valid frames.
    """
    o, r = np.asarray(out_points, np.float64), np.asarray(real_points, np.float64)
    if o.shape != r.shape or o.ndim != 3 or o.shape[1] < NUM_MESH_POINTS:
        raise InputError(f"mouth_lmd takes two [T, >= 468, 2] point sets, got {o.shape}, {r.shape}")
    ok = np.ones(len(o), bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (len(o),):
        raise InputError(f"valid must be [{len(o)}] booleans, got shape {ok.shape}")
    if not ok.any():
        return {"mouth_lmd": float("nan"), "mouth_lmd_placed": float("nan")}
    o, r = o[ok][..., :2], r[ok][..., :2]
    mo, mr = o[:, MOUTH_MESH_POINTS], r[:, MOUTH_MESH_POINTS]
    eo, er = _eye_distance(o)[:, None, None], _eye_distance(r)[:, None, None]
    shape_o = (mo - mo.mean(1, keepdims=True)) / eo
    shape_r = (mr - mr.mean(1, keepdims=True)) / er
    return {
        "mouth_lmd": float(100 * np.linalg.norm(shape_o - shape_r, axis=-1).mean()),
        "mouth_lmd_placed": float(100 * np.linalg.norm((mo - mr) / er, axis=-1).mean()),
    }


# ----------------------------------------------------------------------------- one clip


@dataclasses.dataclass
class _Tracked:
    """A row video's tracked face points, and its full analysis with the video measures."""

    points: np.ndarray  # [T, 478, 2]
    detected: np.ndarray  # [T] bool
    analysis: video_eval.VideoAnalysis | None


def _track(path: str, protocol: Protocol, face_model) -> _Tracked:
    if protocol.video_measures:
        a = video_eval.analyze_video(path, face_model)
        return _Tracked(a.landmarks, a.detected, a)
    track = tracking.track_video(path, max_lost_fraction=1.0, max_gap_seconds=float("inf"))
    return _Tracked(np.asarray(track.landmarks)[..., :2], np.asarray(track.detected, bool), None)


def _strip_crop(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int]:
    """(x0, y0, side) of a square around face points, 1.6 x their larger box side."""
    lo, hi = points.min(0), points.max(0)
    side = int(math.ceil(1.6 * float(np.max(hi - lo))))
    side = max(8, min(side, shape[0], shape[1]))
    cx, cy = (lo + hi) / 2
    x0 = int(np.clip(round(cx - side / 2), 0, shape[1] - side))
    y0 = int(np.clip(round(cy - side / 2), 0, shape[0] - side))
    return x0, y0, side


def _tile(frame: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    x0, y0, side = box
    return cv2.resize(frame[y0 : y0 + side, x0 : x0 + side], (STRIP_TILE, STRIP_TILE))


def _measure_row(
    path: str,
    real: list[np.ndarray],
    real_track: _Tracked,
    protocol: Protocol,
    face_model,
    strip: dict[int, tuple[int, int, int]],
    tracked: _Tracked | None = None,
) -> tuple[dict, _Tracked, dict[int, np.ndarray]]:
    """Face PSNR / SSIM and mouth LMD of one row's mp4 against the real rest, and its tiles
    (`tracked`: the row's tracking, if already done)."""
    tracked = tracked or _track(path, protocol, face_model)
    psnr, ssim, tiles = [], [], {}
    count = 0
    for t, frame in enumerate(tracking.read_frames(path)):
        count += 1
        if t >= len(real):
            break
        if t in strip:
            tiles[t] = _tile(frame, strip[t])
        if not real_track.detected[t]:
            continue
        mask = face_mask(frame.shape[:2], real_track.points[t, :NUM_MESH_POINTS],
                         protocol.region_dilation)[None]  # fmt: skip
        psnr.append(region_psnr(frame[None], real[t][None], mask))
        ssim.append(region_ssim(frame[None], real[t][None], mask))
    if count != len(real):
        raise InputError(f"{path} has {count} frames; the real rest has {len(real)}")
    both = real_track.detected & tracked.detected
    out = {
        "face_psnr_db": float(np.mean(psnr)) if psnr else float("nan"),
        "face_ssim": float(np.mean(ssim)) if ssim else float("nan"),
        "measured_frames": len(psnr),
        **mouth_lmd(tracked.points, real_track.points, both),
    }
    return out, tracked, tiles


def _write(path: str, frames: list[np.ndarray], fps: float, speech: np.ndarray) -> None:
    """An mp4 of frames with the speech, through the writer `generate` uses, in chunks."""
    with visualize.VideoWriter(path, fps, speech) as writer:
        for a in range(0, len(frames), 50):
            writer.write(np.stack(frames[a : a + 50]))


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float | np.floating):
        return round(float(x), 6) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def reconstruct_clip(
    video: str,
    out_dir: str,
    models: generation.Models,
    protocol: Protocol = Protocol(),  # noqa: B008 (a frozen dataclass)
    *,
    cache: str = generation.DEFAULT_CACHE,
    sync_scorer: video_eval.SyncScorer | None = None,
    progress: Progress | None = None,
    face_model=None,
) -> dict:
    """Runs the protocol on one clip: writes `out_dir/<row>.mp4` (`REAL` and `ROWS`)
    and returns its report (split, tuning frames, and per row the measures; JSON-ready) with the
    strip tiles under "_tiles" ({row: [STRIP_TIMES tiles]}, not JSON).

    Raises:
      InputError: an unusable clip (too short for the split or the pipeline, no speech, no
        face: the reason to report it skipped).
    """
    protocol.check()
    progress = progress or Progress(quiet=True)
    face_model = face_model or default.load_default()
    info = tracking.probe_video(video)
    first = split_point(info.num_frames, info.fps, protocol)
    wave = audio.load_audio(video)
    tune = min(first, generation.TuneOptions().frames)  # video frames, both fine-tunes
    options = generation.TuneOptions(tune, protocol.expression_steps, protocol.gan_steps)
    target = generation.personalize(video, models, cache, options, progress, face_model)
    fps, total = target.fps, target.num_frames
    rest = total - first  # the fit's frame count (preprocessing may drop a last frame)
    if protocol.max_rest_seconds > 0:
        rest = min(rest, max(1, math.ceil(protocol.max_rest_seconds * fps - 1e-6)))
    if rest < 1:
        raise InputError(f"{video}: {total} frames fitted, none left after the first {first}")
    rest_pose = np.asarray(target.pose[first : first + rest], np.float32)
    speech = rest_speech(wave, first, rest, fps)
    head = first_part(target, first)
    os.makedirs(out_dir, exist_ok=True)
    paths = {row: os.path.join(out_dir, f"{row}.mp4") for row in (REAL, *ROWS)}

    with progress.stage("real rest and nearest-pose rows"):
        real = list(tracking.read_frames(video, start=first, count=rest))
        if len(real) != rest:
            raise InputError(f"{video}: {len(real)} frames decoded after frame {first}, not {rest}")
        near = nearest_pose(rest_pose, head.pose)
        first_frames = head.frames()
        _write(paths[REAL], real, fps, speech)
        _write(paths["nearest_pose"], [first_frames[i] for i in near], fps, speech)
        del first_frames
    rendered = {REAL: rest_pose, "nearest_pose": head.pose[near]}
    for row, knobs in GENERATED_ROWS.items():
        result = generation.generate(
            speech, head, models, paths[row],
            generation.Controls(pose=rest_pose, **knobs), progress, face_model,
        )  # fmt: skip
        rendered[row] = result.pose

    with progress.stage("measure the rows"):
        real_track = _track(paths[REAL], protocol, face_model)
        times = np.unique(np.linspace(0, rest - 1, STRIP_TIMES + 2).round().astype(int)[1:-1])
        strip = {
            int(t): _strip_crop(real_track.points[t, :NUM_MESH_POINTS], real[0].shape[:2])
            for t in times
        }
        rows, tiles = {}, {}
        for row in (REAL, *ROWS):
            measures, tracked, row_tiles = _measure_row(
                paths[row], real, real_track, protocol, face_model, strip,
                real_track if row == REAL else None,
            )  # fmt: skip
            if tracked.analysis is not None:
                measures.update(
                    video_eval.compare(
                        tracked.analysis,
                        real_track.analysis,
                        speech,
                        rest_pose,
                        sync_scorer,
                        rendered_pose=rendered[row],
                    )  # fmt: skip
                )
                r = measures.get("pose_r_pitch_yaw_roll") or []
                r = [x for x in r if x is not None]
                measures["pose_r_mean"] = float(np.mean(r)) if r else None
            rows[row] = measures
            tiles[row] = [row_tiles[int(t)] for t in times]
        tiles["real_original"] = [_tile(real[int(t)], strip[int(t)]) for t in times]
    report = {
        "video": video,
        "fps": fps,
        "frames": total,
        "first_frames": first,
        "rest_frames": rest,
        "tune_frames": tune,
        "videos": paths,
        "real_lost_frames": int(np.sum(~real_track.detected)),
        "rows": _json_safe(rows),
    }
    report["_tiles"] = tiles
    return report


# ----------------------------------------------------------------------------- many clips

CLIP_RESULT = "result.json"  # a measured clip's report, in its directory
CLIP_TILES = "tiles.npz"  # its strip tiles


def _result_key(protocol: Protocol, models: generation.Models, sync_scorer) -> dict:
    """What a clip's measures depend on besides the clip: a saved result is reused only if
    these are equal (the models by content)."""
    return {
        "protocol": dataclasses.asdict(protocol),
        "models": models.fingerprint(),
        "av_sync_measured": sync_scorer is not None,
    }


def save_clip_result(clip_dir: str, result: dict, key: dict) -> None:
    """Writes a measured clip (`reconstruct_clip`'s report, tiles included) to `clip_dir`:
    the tiles first, then `result.json` (written last: it marks the clip finished)."""
    tiles = result["_tiles"]
    arrays = {f"{row}__{i}": t for row, ts in tiles.items() for i, t in enumerate(ts)}
    records.atomic_write(os.path.join(clip_dir, CLIP_TILES), lambda f: np.savez(f, **arrays))
    body = {k: v for k, v in result.items() if k != "_tiles"}
    text = json.dumps({"key": key, "result": body}, indent=1)
    records.atomic_write(os.path.join(clip_dir, CLIP_RESULT), lambda f: f.write(text), mode="w")


def load_clip_result(clip_dir: str, key: dict) -> dict | None:
    """A clip measured before with the same `key` (its report with "_tiles"), else None."""
    try:
        with open(os.path.join(clip_dir, CLIP_RESULT)) as f:
            saved = json.load(f)
        if saved.get("key") != json.loads(json.dumps(key)):
            return None
        tiles: dict[str, list] = {}
        with np.load(os.path.join(clip_dir, CLIP_TILES)) as z:
            for name in sorted(
                z.files, key=lambda n: (n.rsplit("__", 1)[0], int(n.rsplit("__", 1)[1]))
            ):
                tiles.setdefault(name.rsplit("__", 1)[0], []).append(z[name])
    except (OSError, ValueError, KeyError):
        return None
    return {**saved["result"], "_tiles": tiles}


def read_part(split_path: str, part: str) -> list[dict]:
    """The clips (`file`, `clip_id`, `speaker_id`, `audio`, `seconds`) of one part ("val",
    "test", "train") of a committed split file (`talkingjax.data.corpus.read_split_part`)."""
    return corpus.read_split_part(split_path, part)


# Columns of the markdown table: (key, header, format).
COLUMNS = (
    ("face_psnr_db", "face PSNR dB", "{:.2f}"),
    ("face_ssim", "face SSIM", "{:.3f}"),
    ("mouth_lmd", "mouth LMD %", "{:.2f}"),
    ("mouth_lmd_placed", "mouth LMD placed %", "{:.2f}"),
    ("pose_r_mean", "pose r (given)", "{:.2f}"),
    ("angular_speed_deg_s", "head speed deg/s", "{:.1f}"),
    ("max_step_deg", "max step deg", "{:.2f}"),
    ("face_cpbd", "face CPBD", "{:.3f}"),
    ("face_laplacian_var", "face Laplacian", "{:.0f}"),
    ("mouth_energy_r", "mouth-energy r", "{:.2f}"),
    ("av_offset", "AV offset", "{:.1f}"),
    ("av_confidence", "AV conf", "{:.2f}"),
    ("lost_fraction", "lost", "{:.2f}"),
    ("seam_contrast", "seam contrast", "{:.2f}"),
)

PER_CLIP = (("face_psnr_db", "{:.2f}"), ("face_ssim", "{:.3f}"), ("mouth_lmd", "{:.2f}"))


def summarize(clips: Sequence[dict]) -> dict:
    """{row: {measure: mean over the clips that have it}} of clip reports' rows."""
    out: dict = {}
    for row in (REAL, *ROWS):
        values: dict[str, list[float]] = {}
        for clip in clips:
            for key, v in clip["rows"].get(row, {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool) and v is not None:
                    values.setdefault(key, []).append(float(v))
        out[row] = {k: float(np.mean(v)) for k, v in values.items()}
        out[row]["clips"] = len(clips)
    return out


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return fmt.format(v)


def table_markdown(report: dict) -> str:
    """The report as markdown: the mean table over clips, one line per clip, the skipped clips
    and the protocol (`run`'s report)."""
    summary = report["summary"]
    columns = [c for c in COLUMNS if any(c[0] in summary[r] for r in summary)]
    head = "| row | " + " | ".join(c[1] for c in columns) + " |"
    lines = [
        f"# Self-reconstruction on {report['part']} clips ({len(report['clips'])} clip(s))",
        "",
        *([f"Command: `{report['command']}`", ""] if report.get("command") else []),
        "Mean over clips (the `real` row: the real frames written by the same mp4 writer).",
        "",
        head,
        "|" + "---|" * (len(columns) + 1),
    ]
    for row in (REAL, *ROWS):
        cells = [_cell(summary[row], k, f) for k, _, f in columns]
        lines.append(f"| {ROW_TITLES[row]} | " + " | ".join(cells) + " |")
    lines += ["", "Per clip (face PSNR dB / face SSIM / mouth LMD %):", ""]
    lines.append(
        "| clip | frames (first + rest, tuned) | " + " | ".join(ROW_TITLES[r] for r in ROWS) + " |"
    )
    lines.append("|---|---|" + "---|" * len(ROWS))
    for clip in report["clips"]:
        cells = [" / ".join(_cell(clip["rows"][r], k, f) for k, f in PER_CLIP) for r in ROWS]
        lines.append(
            f"| {clip['clip_id']} | {clip['first_frames']} + {clip['rest_frames']}, "
            f"{clip['tune_frames']} | " + " | ".join(cells) + " |"
        )
    if report["skipped"]:
        lines += ["", "Skipped:", ""]
        lines += [f"- {s['clip_id']}: {s['reason']}" for s in report["skipped"]]
    lines += ["", "Protocol: " + json.dumps(report["protocol"]), ""]
    return "\n".join(lines)


def frame_strip(tiles: dict[str, list[np.ndarray]], title: str = "") -> np.ndarray:
    """[H, W, 3] uint8: one column per row (real original | nearest pose | raw render |
    pipeline | composite), one line per strip time, a header with the columns' names."""
    columns = [("real_original", "real"), ("nearest_pose", "(a) nearest pose"),
               ("raw_render", "(b) raw render"), ("pipeline", "(c) full face"),
               ("composite", "(d) mouth region")]  # fmt: skip
    grid = np.concatenate(
        [np.concatenate([tiles[key][i] for key, _ in columns], axis=1)
         for i in range(len(tiles["real_original"]))],
        axis=0,
    )  # fmt: skip
    header = np.full((28 + (20 if title else 0), grid.shape[1], 3), 255, np.uint8)
    for j, (_, name) in enumerate(columns):
        cv2.putText(header, name, (j * STRIP_TILE + 6, header.shape[0] - 8),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    if title:
        cv2.putText(header, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 80, 80), 1,
                    cv2.LINE_AA)  # fmt: skip
    return np.concatenate([header, grid], axis=0)


def run(
    clips: Sequence[dict],
    corpus: str,
    preprocessed: str,
    out_dir: str,
    models: generation.Models,
    protocol: Protocol = Protocol(),  # noqa: B008 (a frozen dataclass)
    *,
    part: str = "val",
    cache: str = generation.DEFAULT_CACHE,
    sync_scorer: video_eval.SyncScorer | None = None,
    strip_clip: str | None = None,
    progress: Progress | None = None,
    command: str = "",
) -> dict:
    """The protocol over split clips: writes `out_dir/reconstruction.{json,md}`, `strip.png` (of
    `strip_clip`, default the first clip measured) and `out_dir/clips/<clip_id>/*.mp4`.

    A clip that cannot be used (silent, skipped by preprocessing, too short, no face) is listed
    under "skipped" with its reason. Each measured clip is saved in its directory
    (`save_clip_result`) as soon as it is done, and a later run with the same protocol, models
    (by content) and sync setting reads it back instead of measuring it again: an interrupted
    run resumes, and `--max_clips` can grow a table. Returns the report.

    Raises:
      InputError: no clip could be measured.
    """
    protocol.check()
    progress = progress or Progress(quiet=True)
    face_model = default.load_default()
    key = _result_key(protocol, models, sync_scorer)
    done, skipped, tiles = [], [], {}
    for clip in clips:
        cid = clip["clip_id"]
        reason = None
        if clip.get("audio") != "speech":
            reason = "no speech to drive the rest with (silent clip)"
        else:
            reason = preprocess_status(preprocessed, cid)
        clip_dir = os.path.join(out_dir, "clips", cid)
        if reason is None and (result := load_clip_result(clip_dir, key)) is not None:
            progress.write(f"clip {cid}: measured before, read from {clip_dir}\n")
        elif reason is None:
            progress.write(f"clip {cid}\n")
            try:
                result = reconstruct_clip(
                    os.path.join(corpus, clip["file"]), clip_dir, models, protocol, cache=cache,
                    sync_scorer=sync_scorer, progress=progress, face_model=face_model,
                )  # fmt: skip
            except InputError as err:
                reason = str(err).splitlines()[0]
                shutil.rmtree(clip_dir, ignore_errors=True)
            else:
                save_clip_result(clip_dir, result, key)
        if reason is None:
            tiles[cid] = result.pop("_tiles")
            done.append({"clip_id": cid, "speaker_id": clip.get("speaker_id"), **result})
        if reason is not None:
            skipped.append({"clip_id": cid, "reason": reason})
    if not done:
        raise InputError(
            "no clip could be measured: "
            + "; ".join(f"{s['clip_id']}: {s['reason']}" for s in skipped[:3])
        )
    report = {
        "part": part,
        "command": command,
        "protocol": dataclasses.asdict(protocol),
        "models": dataclasses.asdict(models),
        "av_sync_measured": sync_scorer is not None,
        "summary": _json_safe(summarize(done)),
        "clips": done,
        "skipped": skipped,
    }
    shown = strip_clip if strip_clip in tiles else done[0]["clip_id"]
    report["strip_clip"] = shown
    png = cv2.imencode(".png", frame_strip(tiles[shown], shown)[..., ::-1])[1].tobytes()
    text = json.dumps(report, indent=1)
    records.atomic_write(os.path.join(out_dir, "strip.png"), lambda f: f.write(png), mode="wb")
    records.atomic_write(
        os.path.join(out_dir, "reconstruction.json"), lambda f: f.write(text), mode="w"
    )
    records.atomic_write(
        os.path.join(out_dir, "reconstruction.md"),
        lambda f: f.write(table_markdown(report)),
        mode="w",
    )
    return report
