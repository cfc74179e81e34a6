"""Measures of a talking-head video read from its tracked face: head motion, correlation with a
reference signal, face sharpness, mouth opening and the seam along a paste boundary.

Pure NumPy (float64 inside, Python floats out), no model code: `talkingjax.evaluation.video`
tracks and fits a video and feeds these functions. Conventions:

- Pose angles are the fit's (x, y, z) = (pitch, yaw, roll) Euler angles in radians,
  R = Rz Ry Rx (`talkingjax.geometry.euler_to_rotation`); `[T, 3]` per frame (a `[T, 6]`
  pose's first three columns). Results are in degrees (and seconds).
- `valid` is a `[T]` bool mask of frames to trust (the tracked face was detected there);
  a step, or a jerk window, counts only if all its frames are valid. Default: all frames.
- Points are frame pixels (x right, y down, pixel centres at +0.5, as
  `talkingjax.video.tracking`); `[N, 2]` (extra columns are ignored). MediaPipe face-mesh
  indices name the face points (`MOUTH_POINTS`, `FACE_BOX_POINTS`).
- Images are `[H, W, 3]` RGB (uint8, or float in [0, 1]) or an `[H, W]` gray image; gray levels
  are BT.601 luma on a 0..255 scale (not rounded).

Head motion
-----------
- `step_angles`: the geodesic angle between consecutive rotations, |log(R_t^T R_t+1)|, so a
  turn counts the same whichever axis it is about (computed with atan2 of the antisymmetric
  part and the trace: accurate for small steps, unlike arccos of the trace).
- `angular_speed` = mean step angle x fps (deg/s); `max_step` = the largest step angle (deg).
- `step_percentile`: the q-th percentile of the step angles (the largest step a real video
  makes, robust to one tracking slip); `rest_jitter`: per-axis std of the angles about their
  centred 5-frame moving average (what tracking adds frame to frame).
- `jerk` = mean over windows of four consecutive frames of the norm of the third finite
  difference of the angles (deg), times fps^3 (deg/s^3). Exact for a cubic.

Correlation
-----------
- `pearson` of two `[T]` signals (0.0 when either is constant); `lagged_correlation` at every
  lag -K..K: r[k] = pearson(a[t], b[t + k]) over the overlapping t, so a copy of `a` delayed by
  k frames (b[t] = a[t - k]) peaks at lag k ("b lags a by k frames"); `best_lag`.

Sharpness
---------
- `laplacian_variance`: the variance of the 4-neighbour Laplacian ([[0,1,0],[1,-4,1],[0,1,0]])
  of the gray levels over the valid region of the image (no border padding). White noise of
  standard deviation s gives 20 s^2; A sin(k x) gives A^2 (2 - 2 cos k)^2 / 2. Blurring lowers it.
- `face_box` / `face_region`: the inner face box -- outer eye corners (MediaPipe 33, 263) across,
  eyebrow tops (105, 334) to below the lower lip (17) down -- which holds skin, eyes, nose and
  mouth but no background or hair for near-frontal faces, cut at the frame's own resolution;
  regions under `min_side` pixels are enlarged (bicubic) to it (CPBD needs 64 x 64 blocks).

Seam
----
`seam_profile(gray, points, width)`: the paste boundary is the convex hull of the face points
(MediaPipe's 468 mesh points: the generator pastes the filled convex hull of the rendered face
mask, and the default model's mesh is that mesh, subdivided; its projection has the same hull).
For every pixel near it, d = its distance to the hull boundary and n = the unit direction to
the nearest boundary point (the boundary normal there). The image gradient g (central
differences of the gray levels) is projected onto n, and

    band  = mean |g . n| over pixels with d <= width               (across the boundary),
    rings = mean |g . n| over pixels with 2 width < d <= 4 width   (both sides, beside it).

A seam (a colour, brightness or blur discontinuity at the paste boundary) raises `band` and not
`rings`; the face's own contour and texture raise both. The band is wide (+-5 % of the face
size) and a gap of one band width separates it from the rings, because the tracked hull misses
the paste boundary by a few pixels (MediaPipe's face-oval points) and a seam's gradient spreads:
measured on a rendered head with a 2 px dark rim drawn along its true hull (12 frames, 256^2,
face ~130 px), the contrast along the tracked hull against the unedited video's was 2.8x with
these settings, 1.4x with a +-3 % band, and ~1.1x with that band and rings from 1 to 3 widths.
`seam_contrast = band / rings` is the per-frame measure; a pasted video is judged against the
same measure on real frames. Known answers: a linear ramp of slope s gives band = rings =
s x 2/pi for a circular boundary (contrast 1), and a step of h across the boundary adds
h / (2 width) to `band` (the step's gradient integrates to h across the boundary; the band is
2 width wide). `seam_width` is `SEAM_WIDTH_FRACTION` of the face size (square root of the hull
area), at least `SEAM_MIN_WIDTH` pixels, so the band covers the same part of the face at any
resolution.

Mouth
-----
`mouth_opening`: the inner-lip gap (MediaPipe 13-14) over the outer eye-corner distance
(33-263), per frame: scale free, the measure of `talkingjax.evaluation.generation`.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkingjax.errors import InputError
from talkingjax.metrics import pose_peers

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as talkingjax.metrics.image
NUM_MESH_POINTS = 468  # MediaPipe's face mesh without the irises

# MediaPipe face-mesh indices.
LIP_UPPER_INNER, LIP_LOWER_INNER, LIP_LOWER_OUTER = 13, 14, 17
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = 33, 263
BROW_TOP_RIGHT, BROW_TOP_LEFT = 105, 334
MOUTH_POINTS = (LIP_UPPER_INNER, LIP_LOWER_INNER, EYE_OUTER_RIGHT, EYE_OUTER_LEFT)
FACE_BOX_POINTS = (EYE_OUTER_RIGHT, EYE_OUTER_LEFT, BROW_TOP_RIGHT, BROW_TOP_LEFT, LIP_LOWER_OUTER)

FACE_MIN_SIDE = 64  # CPBD's block
SEAM_WIDTH_FRACTION = 0.05
SEAM_MIN_WIDTH = 2.0
SEAM_RINGS = (2.0, 4.0)  # the rings' distance range, in band half-widths
SEAM_SAMPLES_PER_WIDTH = 4  # pixel samples per band half-width (subgrid on large faces)


# ----------------------------------------------------------------------------- validation


def _angles(angles, name: str = "angles") -> np.ndarray:
    a = np.asarray(angles, np.float64)
    if a.ndim != 2 or a.shape[1] < 3:
        raise InputError(f"{name} must be [T, 3] (or a [T, 6] pose), got {a.shape}")
    if not np.all(np.isfinite(a[:, :3])):
        raise InputError(f"{name} contain NaN or infinite values")
    return a[:, :3]


def _valid(valid, num: int) -> np.ndarray:
    if valid is None:
        return np.ones(num, bool)
    v = np.asarray(valid, bool)
    if v.shape != (num,):
        raise InputError(f"valid must be [{num}], got {v.shape}")
    return v


def _fps(fps: float) -> float:
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    return fps


# ----------------------------------------------------------------------------- head motion


# [..., 3] (x, y, z) radians -> [..., 3, 3] float64 R = Rz(z) Ry(y) Rx(x): the NumPy twin of
# `talkingjax.geometry.euler_to_rotation` that the peers' metrics already keep.
euler_to_rotation = pose_peers.rotation_matrices


def rotation_angle(rot) -> np.ndarray:
    """[..., 3, 3] rotation matrices -> [...] rotation angles in radians (0..pi)."""
    r = np.asarray(rot, np.float64)
    vee = np.stack(
        [r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]],
        axis=-1,
    )
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    return np.arctan2(0.5 * np.linalg.norm(vee, axis=-1), 0.5 * (trace - 1.0))


def step_angles(angles) -> np.ndarray:
    """[T, 3] Euler angles (radians) -> [T - 1] geodesic angle (degrees) from frame t to t + 1."""
    rot = euler_to_rotation(_angles(angles))
    rel = np.einsum("tji,tjk->tik", rot[:-1], rot[1:])  # R_t^T R_t+1
    return np.degrees(rotation_angle(rel))


def _valid_steps(angles, valid) -> tuple[np.ndarray, np.ndarray]:
    a = _angles(angles)
    v = _valid(valid, len(a))
    if len(a) < 2:
        raise InputError(f"head motion needs at least 2 frames, got {len(a)}")
    return step_angles(a), v[:-1] & v[1:]


def angular_speed(angles, fps: float, valid=None) -> float:
    """Mean head angular speed in degrees per second over the valid steps (nan if none).

    Args:
      angles: [T, 3] (pitch, yaw, roll) radians (or a [T, 6] pose).
      fps: frames per second.
      valid: [T] bool; a step counts if both of its frames are valid.
    """
    steps, ok = _valid_steps(angles, valid)
    return float(np.mean(steps[ok]) * _fps(fps)) if ok.any() else float("nan")


def max_step(angles, valid=None) -> float:
    """The largest frame-to-frame head rotation in degrees over the valid steps (nan if none)."""
    steps, ok = _valid_steps(angles, valid)
    return float(np.max(steps[ok])) if ok.any() else float("nan")


def jerk(angles, fps: float, valid=None) -> float:
    """Mean norm of the third time derivative of the head angles, degrees per second cubed.

    Third finite differences of the Euler angles (degrees) over windows of four consecutive
    valid frames, times fps^3 (exact for a cubic motion); nan if there is no such window.
    """
    a = np.degrees(_angles(angles))
    v = _valid(valid, len(a))
    if len(a) < 4:
        return float("nan")
    d3 = a[3:] - 3 * a[2:-1] + 3 * a[1:-2] - a[:-3]
    ok = v[3:] & v[2:-1] & v[1:-2] & v[:-3]
    if not ok.any():
        return float("nan")
    return float(np.mean(np.linalg.norm(d3[ok], axis=-1)) * _fps(fps) ** 3)


def step_percentile(angles, q: float = 99.0, valid=None) -> float:
    """The q-th percentile of the frame-to-frame head rotations in degrees over the valid
    steps (nan if none): the largest step a real video makes, robust to one tracking slip."""
    steps, ok = _valid_steps(angles, valid)
    return float(np.percentile(steps[ok], q)) if ok.any() else float("nan")


def rest_jitter(angles, valid=None, taps: int = 5) -> list[float]:
    """Per-axis (pitch, yaw, roll) jitter in degrees: the standard deviation of the angles
    about their centred `taps`-frame moving average, over valid frames whose whole window is
    valid (nan if none). What tracking and fitting add to a head's motion frame to frame; a
    still head (`--pose_scale=0`) should show no more than a real video's."""
    a = np.degrees(_angles(angles))
    v = _valid(valid, len(a))
    half = taps // 2
    if len(a) < taps:
        return [float("nan")] * 3
    kernel = np.ones(taps) / taps
    smooth = np.stack([np.convolve(a[:, k], kernel, mode="valid") for k in range(3)], -1)
    ok = np.convolve(v.astype(float), kernel, mode="valid") > 1 - 1e-9
    if not ok.any():
        return [float("nan")] * 3
    resid = a[half : len(a) - half] - smooth
    return [float(x) for x in resid[ok].std(0)]


def angle_std(angles, valid=None) -> list[float]:
    """Per-axis (pitch, yaw, roll) standard deviation in degrees over the valid frames."""
    a = np.degrees(_angles(angles))
    v = _valid(valid, len(a))
    if not v.any():
        return [float("nan")] * 3
    return [float(x) for x in a[v].std(0)]


# ----------------------------------------------------------------------------- correlation


def pearson(a, b) -> float:
    """Pearson r of two [T] signals (each minus its mean); 0.0 if either is constant."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"pearson needs signals of one length, got {x.shape} and {y.shape}")
    if x.size < 2:
        return 0.0
    for s in (x, y):
        if np.std(s) <= 1e-12 * max(1.0, float(np.max(np.abs(s)))):
            return 0.0
    x, y = x - x.mean(), y - y.mean()
    sx, sy = np.sqrt(np.sum(x * x)), np.sqrt(np.sum(y * y))
    return float(np.clip(np.sum(x * y) / (sx * sy), -1.0, 1.0))


def lagged_correlation(a, b, max_lag: int, valid=None) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of a[t] with b[t + k] for every lag k = -max_lag..max_lag.

    Args:
      a, b: [T] or [T, D] signals (columns correlated separately); the shorter length is used.
      max_lag: K, frames.
      valid: optional [T] bool over the common length; pairs with an invalid frame are left
        out.

    Returns:
      (lags [2K + 1] int, r [2K + 1] or [2K + 1, D]); r is 0.0 where fewer than 3 pairs
      overlap. A copy of `a` delayed by k frames (b[t] = a[t - k]) gives r = 1 at lag k.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    one = x.ndim == 1
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    if x.shape[1] != y.shape[1]:
        raise InputError(f"signals have {x.shape[1]} and {y.shape[1]} columns")
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    v = _valid(valid, n) if valid is not None else np.ones(n, bool)
    k = int(max_lag)
    if k < 0:
        raise InputError(f"max_lag must be >= 0, got {max_lag}")
    lags = np.arange(-k, k + 1)
    r = np.zeros((len(lags), x.shape[1]))
    for i, lag in enumerate(lags):
        t = np.arange(max(0, -lag), min(n, n - lag))
        t = t[v[t] & v[t + lag]] if len(t) else t
        if len(t) < 3:
            continue
        r[i] = [pearson(x[t, d], y[t + lag, d]) for d in range(x.shape[1])]
    return lags, (r[:, 0] if one else r)


def best_lag(lags: np.ndarray, r: np.ndarray) -> tuple[int, float]:
    """(lag, r) of the highest r (mean over columns for [L, D]); ties go to the smaller |lag|."""
    score = np.asarray(r, np.float64)
    score = score.mean(-1) if score.ndim == 2 else score
    order = np.lexsort((np.abs(lags), -score))
    return int(lags[order[0]]), float(score[order[0]])


# ----------------------------------------------------------------------------- sharpness


def gray_levels(image) -> np.ndarray:
    """[H, W, 3] RGB (uint8, or float in [0, 1]) or [H, W] gray -> [H, W] float64 luma 0..255."""
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.float64) * (1.0 if img.dtype == np.uint8 else 255.0)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise InputError(f"expected an [H, W, 3] RGB or [H, W] gray image, got {img.shape}")
    scale = 1.0 if img.dtype == np.uint8 else 255.0
    return (img.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)) * scale


def laplacian_variance(image) -> float:
    """Variance of the 4-neighbour Laplacian of the gray levels (valid region): higher = sharper.

    Args:
      image: [H, W, 3] RGB or [H, W] gray (uint8 or float in [0, 1]), H, W >= 3.
    """
    g = gray_levels(image)
    if min(g.shape) < 3:
        raise InputError(f"laplacian_variance needs at least 3 x 3 pixels, got {g.shape}")
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(np.var(lap))


def _points(points, need: int) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] < need:
        raise InputError(f"points must be [>= {need}, 2], got {p.shape}")
    if not np.all(np.isfinite(p[:, :2])):
        raise InputError("points contain NaN or infinite values")
    return p[:, :2]


def face_box(points) -> tuple[int, int, int, int]:
    """The inner face box (x0, y0, x1, y1), integer pixel bounds (x1, y1 exclusive).

    Across: the outer eye corners; down: the eyebrow tops to the lower lip's outer edge
    (MediaPipe points `FACE_BOX_POINTS`); at least one pixel each way.
    """
    p = _points(points, NUM_MESH_POINTS)
    x0 = min(p[EYE_OUTER_RIGHT, 0], p[EYE_OUTER_LEFT, 0])
    x1 = max(p[EYE_OUTER_RIGHT, 0], p[EYE_OUTER_LEFT, 0])
    y0 = min(p[BROW_TOP_RIGHT, 1], p[BROW_TOP_LEFT, 1])
    y1 = p[LIP_LOWER_OUTER, 1]
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    return ix0, iy0, max(int(np.ceil(x1)), ix0 + 1), max(int(np.ceil(y1)), iy0 + 1)


def face_region(frame, points, min_side: int = FACE_MIN_SIDE) -> np.ndarray:
    """The frame's inner face box (`face_box`, clipped to the frame), enlarged if smaller.

    Args:
      frame: [H, W, 3] uint8 RGB.
      points: [>= 468, 2] face points in frame pixels.
      min_side: a box with a shorter side is enlarged (bicubic, aspect kept) to it.

    Returns:
      [h, w, 3] uint8.

    Raises:
      InputError: the box lies outside the frame.
    """
    f = np.asarray(frame)
    x0, y0, x1, y1 = face_box(points)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, f.shape[1]), min(y1, f.shape[0])
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise InputError("the face box lies outside the frame")
    region = np.ascontiguousarray(f[y0:y1, x0:x1])
    h, w = region.shape[:2]
    if min(h, w) < min_side:
        s = min_side / min(h, w)
        size = (max(min_side, int(np.ceil(w * s))), max(min_side, int(np.ceil(h * s))))
        region = cv2.resize(region, size, interpolation=cv2.INTER_CUBIC)
    return region


# ----------------------------------------------------------------------------- mouth


def mouth_opening(landmarks) -> np.ndarray:
    """[T] inner-lip gap over the outer eye-corner distance of face points [T, >= 468, 2+]."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1] < NUM_MESH_POINTS or lm.shape[2] < 2:
        raise InputError(f"landmarks must be [T, >= {NUM_MESH_POINTS}, 2], got {lm.shape}")
    lm = lm[..., :2]
    gap = np.linalg.norm(lm[:, LIP_UPPER_INNER] - lm[:, LIP_LOWER_INNER], axis=-1)
    eyes = np.linalg.norm(lm[:, EYE_OUTER_RIGHT] - lm[:, EYE_OUTER_LEFT], axis=-1)
    return gap / np.maximum(eyes, 1e-6)


# ----------------------------------------------------------------------------- seam


def hull(points) -> np.ndarray:
    """The convex hull [M, 2] (float64, in order) of face points [N, 2+]."""
    p = _points(points, 3)
    return cv2.convexHull(p.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def seam_width(points) -> float:
    """Half-width in pixels of the seam band: `SEAM_WIDTH_FRACTION` of the face size (the
    square root of the face points' hull area), at least `SEAM_MIN_WIDTH`."""
    h = hull(points)
    x, y = h[:, 0], h[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return max(SEAM_MIN_WIDTH, SEAM_WIDTH_FRACTION * float(np.sqrt(area)))


def _boundary_field(poly: np.ndarray, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance [N] to the closed polygon's boundary, unit normal [N, 2] toward the pixel)."""
    starts, ends = poly, np.roll(poly, -1, axis=0)
    best = np.full(len(px), np.inf)
    which = np.zeros(len(px), np.int64)
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        ab = b - a
        length2 = float(ab @ ab)
        if length2 <= 0:
            continue
        rel = px - a
        t = np.clip((rel @ ab) / length2, 0.0, 1.0)
        d2 = (rel[:, 0] - t * ab[0]) ** 2 + (rel[:, 1] - t * ab[1]) ** 2
        closer = d2 < best
        best = np.where(closer, d2, best)
        which = np.where(closer, k, which)
    a, ab = starts[which], ends[which] - starts[which]
    length2 = np.maximum(np.sum(ab * ab, axis=1), 1e-18)
    t = np.clip(np.sum((px - a) * ab, axis=1) / length2, 0.0, 1.0)
    diff = px - (a + t[:, None] * ab)
    dist = np.sqrt(best)
    edge_normal = np.stack([-ab[:, 1], ab[:, 0]], axis=1) / np.sqrt(length2)[:, None]
    on_edge = dist[:, None] <= 1e-9
    normal = np.where(on_edge, edge_normal, diff / np.maximum(dist, 1e-9)[:, None])
    return dist, normal


def seam_profile(image, points, width: float | None = None) -> tuple[float, float]:
    """(band, rings): mean |gradient . boundary normal| across and beside the face hull.

    Args:
      image: [H, W, 3] RGB or [H, W] gray frame (uint8, or float in [0, 1]).
      points: [>= 3, 2] face points (frame pixels); their convex hull is the boundary.
      width: the band's half-width in pixels (default `seam_width(points)`).

    Returns:
      gray levels per pixel: band = over pixels within `width` of the boundary, rings = over
      those between 2 and 4 `width` (module docstring). nan where no pixel of the frame
      (away from its one-pixel border) falls in the band / rings.
    """
    g = gray_levels(image)
    poly = hull(points)
    w = seam_width(points) if width is None else float(width)
    if not np.isfinite(w) or w <= 0:
        raise InputError(f"seam width must be positive, got {width}")
    reach = SEAM_RINGS[1] * w
    h_img, w_img = g.shape
    # Pixels near the hull, off the frame's border row/column (central differences).
    x0 = max(1, int(np.floor(poly[:, 0].min() - reach - 1)))
    x1 = min(w_img - 1, int(np.ceil(poly[:, 0].max() + reach + 1)))
    y0 = max(1, int(np.floor(poly[:, 1].min() - reach - 1)))
    y1 = min(h_img - 1, int(np.ceil(poly[:, 1].max() + reach + 1)))
    if x1 <= x0 or y1 <= y0:
        return float("nan"), float("nan")
    # A regular subgrid of pixels, `SEAM_SAMPLES_PER_WIDTH` samples per band half-width
    # (every pixel for bands up to that many pixels): the same means, far fewer distances on
    # large faces.
    step = max(1, int(w // SEAM_SAMPLES_PER_WIDTH))
    ys, xs = np.mgrid[y0:y1:step, x0:x1:step]
    ys, xs = ys.ravel(), xs.ravel()
    px = np.stack([xs + 0.5, ys + 0.5], axis=1)
    dist, normal = _boundary_field(poly, px)
    gx = 0.5 * (g[ys, xs + 1] - g[ys, xs - 1])
    gy = 0.5 * (g[ys + 1, xs] - g[ys - 1, xs])
    across = np.abs(gx * normal[:, 0] + gy * normal[:, 1])
    band = dist <= w
    rings = (dist > SEAM_RINGS[0] * w) & (dist <= reach)
    return (
        float(np.mean(across[band])) if band.any() else float("nan"),
        float(np.mean(across[rings])) if rings.any() else float("nan"),
    )


def seam_contrast(band: float, rings: float) -> float:
    """band / rings of `seam_profile` (nan if rings is 0 or either is nan)."""
    if not (np.isfinite(band) and np.isfinite(rings)) or rings <= 0:
        return float("nan")
    return float(band / rings)


def readback(want, read) -> dict:
    """Per axis (pitch, yaw, roll) slope and r of read-back angle offsets [T, 3] against the
    offsets asked for [T, 3] (degrees): slope 1 and r 1 = the tracker sees exactly the turn
    (`experiments.warp_readback`)."""
    want, read = np.asarray(want, np.float64), np.asarray(read, np.float64)
    out = {}
    for k, name in enumerate(("pitch", "yaw", "roll")):
        out[name] = {
            "slope": round(float(np.polyfit(want[:, k], read[:, k], 1)[0]), 3),
            "r": round(pearson(want[:, k], read[:, k]), 3),
        }
    return out
