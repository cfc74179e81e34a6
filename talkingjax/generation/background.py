"""Background matching for the rendered talking head (paper 000, Sec. IV-B2).

The renderer draws only the face, so every output frame borrows the hair, neck, body and
background of one frame of the input (reference) video. A 10-15 s input video has only ~300
frames, far too few to find a good match for every predicted pose, so the paper matches only
*keyframes* -- the frames with the most extreme head orientation about one axis within a
short period, e.g. the leftmost / rightmost head -- and linearly interpolates the background
index between them (background retiming); the pose of each frame is then modified to fit its
background. Details the paper leaves open follow the authors' 2020 code
(`choose_bg_gexinghua2_reassign.py`), as summarised in docs/reference-facts.md:

1. `choose_axis`: the angle that drives the keyframes (largest temporal std).
2. `keyframes`: local extrema of that angle after a 7-tap Hanning smoothing, thinned to at most
   N/10, extrema closer than 3 frames merged, first and last frame added.
3. `match_keyframes`: each keyframe gets the reference frame with the nearest angles (L1),
   searched near the previous match (`match`: at most `MAX_SPEED` reference frames per output
   frame since the previous keyframe, the 2020 code's window); by default the pose *change*
   between consecutive keyframes is matched (the journal variant) instead of the absolute pose.
4. `background_indices`: rounded linear interpolation of the matches between keyframes.
5. `adjust_pose`: the translation (and, by `blend`, the angles) of the background frame.

`match` runs all five and returns a `BackgroundPlan`.

Conventions: a pose is 6-d `[pitch, yaw, roll, tx, ty, tz]` -- the angles about x, y, z in
radians (as in `FaceCoeffs.angles`), then the translation, as in `VideoFit.pose`. `pred` is
`[T, 6]` (the synthesized sequence), `ref` is `[R, 6]` (the fitted poses of the reference
video's frames). Everything is NumPy on the host, not jittable; unusable input raises
`InputError`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from talkingjax.errors import InputError

NUM_POSE = 6
NUM_ANGLES = 3
# Retiming speed limit of `match` (reference frames per output frame): the 2020 code's search
# window, `speed * (keys[i] - keys[i-1])` frames around the previous match, with speed 1.
MAX_SPEED = 1.0
# Tie order of `choose_axis`: the paper's example of a critical movement is the leftmost /
# rightmost head, i.e. yaw, so yaw wins ties, then pitch, then roll.
_AXIS_PREFERENCE = (1, 0, 2)


@dataclasses.dataclass(frozen=True)
class BackgroundPlan:
    """The result of `match`.

    Attributes:
      axis: the angle (0 pitch, 1 yaw, 2 roll) whose extrema are the keyframes.
      keys: [K] int64 sorted keyframe indices into the predicted sequence (first and last
        frame included).
      matches: [K] int64 reference-frame index matched to each keyframe.
      indices: [T] int64 reference-frame (background) index of every frame.
      pose: [T, 6] the predicted pose adjusted to its background (`adjust_pose`).
    """

    axis: int
    keys: np.ndarray
    matches: np.ndarray
    indices: np.ndarray
    pose: np.ndarray


# ------------------------------------------------------------------------------------------
# Validation


def _poses(x, name: str) -> np.ndarray:
    """`x` as a finite float [N >= 1, 6] array, else `InputError`."""
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != NUM_POSE:
        raise InputError(f"{name}: expected poses of shape [N, {NUM_POSE}], got {a.shape}")
    if a.shape[0] == 0:
        raise InputError(f"{name}: empty pose sequence")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputError(f"{name}: expected real numbers, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: contains NaN or inf")
    return a


def _indices(x, name: str, upper: int, *, strict: bool = False) -> np.ndarray:
    """`x` as a non-empty 1-D int64 array of integral values in [0, upper), else `InputError`.

    With `strict`, the values must also be strictly increasing (keyframe lists).
    """
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-D index array, got shape {a.shape}")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputError(f"{name}: expected integer indices, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
        raise InputError(f"{name}: indices must be whole numbers")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= upper:
        raise InputError(f"{name}: indices must lie in [0, {upper}), got [{a.min()}, {a.max()}]")
    if strict and np.any(np.diff(a) <= 0):
        raise InputError(f"{name}: indices must be strictly increasing")
    return a


# ------------------------------------------------------------------------------------------
# 1. Axis


def choose_axis(pose: np.ndarray) -> int:
    """The angle whose extrema define the keyframes.

    The paper picks "the frames with largest head orientation in one axis" without saying
    which axis (the 2020 code hard-codes one, `aaxis=2`). We take the angle that moves most
    over the sequence -- the largest standard deviation over time -- since its extremes are
    the critical head movements of this particular clip; ties (e.g. a still head) go to yaw,
    then pitch, then roll.

    Args:
      pose: [T, 6] poses (angles first).

    Returns:
      0 (pitch), 1 (yaw) or 2 (roll).
    """
    pose = _poses(pose, "pose")
    std = np.std(pose[:, :NUM_ANGLES].astype(np.float64), axis=0)
    # Python's max keeps the first of equal keys, so the preference order breaks ties.
    return int(max(_AXIS_PREFERENCE, key=lambda k: std[k]))


# ------------------------------------------------------------------------------------------
# 2. Keyframes


def _hanning_smooth(y: np.ndarray, taps: int) -> np.ndarray:
    """[T] -> [T]: centred moving average with a normalised `np.hanning(taps)` window.

    The ends are mirror-padded without repeating the edge sample, as the 2020 code's
    `smooth` (`np.r_[x[w-1:0:-1], x, x[-2:-w-1:-1]]`) does, so a turning point near the start
    or end is neither flattened (zero padding) nor moved (edge padding).
    """
    if taps <= 1 or y.size < 2:
        return y.copy()
    w = np.hanning(taps)
    w = w / w.sum()
    padded = np.pad(y, taps // 2, mode="reflect")  # repeated reflection covers T < taps
    return np.convolve(padded, w, mode="valid")


def _extrema(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima and minima of a [T] signal (never its first or last sample).

    A plateau (a run of equal samples higher / lower than both neighbours) counts as one
    extremum at its middle: a symmetric peak sampled between two frames can give two
    bitwise-equal samples, which a strict `y[i-1] < y[i] > y[i+1]` test (the 2020 code's
    `argrelextrema`) would miss.
    """
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])  # first sample of each run
    ends = np.r_[starts[1:], y.size] - 1
    v = y[starts]
    if v.size < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mid = (starts + ends) // 2
    inner = mid[1:-1]
    is_max = (v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])
    is_min = (v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])
    return inner[is_max].astype(np.int64), inner[is_min].astype(np.int64)


def _prominence(y: np.ndarray, peak: int) -> float:
    """Topographic prominence of the local maximum `peak` of `y` (as `scipy.signal`).

    How far the signal must descend from the peak before it can climb to anything higher:
    from the peak, walk left until a strictly higher sample (or the start) and take the
    minimum on the way; same to the right; the prominence is the peak minus the higher of
    the two minima.
    """
    h = y[peak]
    higher_left = np.flatnonzero(y[:peak] > h)
    lo = higher_left[-1] + 1 if higher_left.size else 0
    higher_right = np.flatnonzero(y[peak + 1 :] > h)
    hi = peak + 1 + higher_right[0] if higher_right.size else y.size
    return float(h - max(y[lo : peak + 1].min(), y[peak:hi].min()))


def keyframes(
    angle: np.ndarray, max_fraction: float = 0.1, merge: int = 3, taps: int = 7
) -> np.ndarray:
    """Keyframes of a predicted pose sequence: the turning points of one head angle.

    Steps (2020 code, reference-facts "Background matching"):

    1. Smooth `angle` with a normalised `taps`-tap Hanning window (mirror-padded ends) so that
       jitter does not create extrema.
    2. Take the local maxima and minima of the smoothed curve (plateaus count once, at their
       middle; the first and last frame are never extrema).
    3. Thin to at most `floor(max_fraction * T)` extrema, keeping the most *pronounced* ones.
       "Pronounced" is the topographic prominence of the smoothed curve (of `-curve` for a
       minimum): the swing the head makes into and out of that turn before reaching a more
       extreme one, so a large left-right sweep beats a wiggle on top of it, wherever the
       curve's level is. Ties keep the earlier frame. (The 2020 code instead repeatedly keeps
       the order-2 extrema of the extrema values until few enough remain, which can overshoot
       well below the limit.)
    4. Merge extrema closer than `merge` frames, left to right: of two neighbours less than
       `merge` frames apart only the more prominent survives (ties: the earlier), so keyframes
       are never crowded where interpolation would be meaningless. Merging only removes, so
       the limit of step 3 still holds.
    5. Add the first and the last frame (not merged with their neighbours: they anchor the
       interpolation at both ends).

    Args:
      angle: [T] one predicted angle over time (T >= 1), e.g. `pred[:, choose_axis(pred)]`.
      max_fraction: at most `floor(max_fraction * T)` extrema are kept, in [0, 1].
      merge: minimum distance in frames between two kept extrema (>= 1; 1 merges nothing).
      taps: Hanning window length, odd and >= 1 (1 and 3 leave the curve unchanged, as the
        Hanning window's end taps are zero).

    Returns:
      [K] int64 sorted unique frame indices, K <= floor(max_fraction * T) + 2; always
      containing 0 and T - 1 ([0] for T = 1, [0, 1] for T = 2).
    """
    y = np.asarray(angle)
    if y.ndim != 1:
        raise InputError(f"angle: expected a 1-D [T] array, got shape {y.shape}")
    if y.size == 0:
        raise InputError("angle: empty sequence")
    if not np.issubdtype(y.dtype, np.number) or np.iscomplexobj(y):
        raise InputError(f"angle: expected real numbers, got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise InputError("angle: contains NaN or inf")
    if not 0.0 <= max_fraction <= 1.0:
        raise InputError(f"max_fraction must lie in [0, 1], got {max_fraction}")
    if int(merge) != merge or merge < 1:
        raise InputError(f"merge must be an integer >= 1, got {merge}")
    if int(taps) != taps or taps < 1 or taps % 2 == 0:
        raise InputError(f"taps must be an odd integer >= 1, got {taps}")

    n = y.size
    ends = np.unique(np.array([0, n - 1], np.int64))
    if n < 3:
        return ends
    s = _hanning_smooth(y.astype(np.float64), int(taps))
    maxima, minima = _extrema(s)
    cand = np.r_[maxima, minima]
    prom = np.r_[
        [_prominence(s, int(p)) for p in maxima], [_prominence(-s, int(p)) for p in minima]
    ]

    # 3. thinning: the `limit` most prominent; stable sort so equal prominences keep the
    # earlier frame, which makes the result deterministic.
    limit = int(np.floor(max_fraction * n))
    order = np.lexsort((cand, -prom))[:limit]
    cand, prom = cand[order], prom[order]
    by_time = np.argsort(cand)
    cand, prom = cand[by_time], prom[by_time]

    # 4. merging, greedy left to right against the last survivor.
    kept: list[int] = []
    for i in range(cand.size):
        if kept and cand[i] - cand[kept[-1]] < merge:
            if prom[i] > prom[kept[-1]]:
                kept[-1] = i
        else:
            kept.append(i)
    return np.unique(np.r_[ends, cand[kept]]).astype(np.int64)


# ------------------------------------------------------------------------------------------
# 3. Matching


def match_keyframes(
    pred: np.ndarray,
    ref: np.ndarray,
    keys: np.ndarray,
    search: int | None = None,
    changes: bool = True,
    max_speed: float | None = None,
) -> np.ndarray:
    """The reference frame (background) for each keyframe, by nearest head angles.

    Cost is the L1 distance over the three angles only (as the 2020 code's `nearest`):
    translation says where the head sits in the crop, not which way it faces, and is taken
    from the background frame anyway (`adjust_pose`).

    - First keyframe: the reference frame with the nearest *absolute* angles, searched over
      the whole reference video (there is no previous match to search around).
    - Each later keyframe i, searched among reference frames r with
      `|r - matches[i-1]| <= search` (all frames if `search` is None) and
      `|r - matches[i-1]| <= ceil(max_speed * (keys[i] - keys[i-1]))` (no limit if
      `max_speed` is None): the reference code's search "near the previous match", whose
      window grows with the time between the keyframes, so the interpolated background index
      (`background_indices`) never runs through the reference video faster than `max_speed`
      frames per output frame (plus rounding) -- played back faster, the reference head would
      turn faster than the person ever did, and a jump across the video is a jump of the head;
        - `changes=False` (2020 code): minimise `|ref[r] - pred[keys[i]]|_1`.
        - `changes=True` (journal code): minimise
          `|(ref[r] - ref[matches[i-1]]) - (pred[keys[i]] - pred[keys[i-1]])|_1`, i.e. the
          background's head must turn from the previous key background as the predicted head
          turns from the previous keyframe. The predicted and reference poses need then only
          agree up to an offset (a different mean pose), but the step error is carried on: each
          step starts from the background actually chosen, which is what is on screen.
      Ties go to the frame closest to the previous match (the smallest background jump), then
      to the earlier frame.

    Matches are not forced to be monotone: the paper (and the 2020 code, whose window is
    symmetric around the previous match) re-uses earlier input frames when the predicted head
    turns back, which is the point of pose-driven retiming; any jump between keyframes is
    spread over the frames in between by `background_indices`.

    Args:
      pred: [T, 6] predicted poses.
      ref: [R, 6] poses of the reference video's frames.
      keys: [K] strictly increasing keyframe indices into `pred`.
      search: the largest distance, in reference frames, of a match from the previous match
        (>= 0), or None for no limit. (The 2020 code used `speed * (keys[i] - keys[i-1])`
        frames, speed 1 in its pipeline.)
      changes: match pose changes (True) or absolute poses (False).
      max_speed: the retiming speed limit in reference frames per output frame (> 0), or None.

    Returns:
      [K] int64 reference-frame indices in [0, R).
    """
    pred = _poses(pred, "pred")
    ref = _poses(ref, "ref")
    keys = _indices(keys, "keys", pred.shape[0], strict=True)
    if search is not None and (int(search) != search or search < 0):
        raise InputError(f"search must be None or an integer >= 0, got {search}")
    if max_speed is not None and not (np.isfinite(max_speed) and max_speed > 0):
        raise InputError(f"max_speed must be None or a number > 0, got {max_speed}")

    pa = pred[:, :NUM_ANGLES].astype(np.float64)
    ra = ref[:, :NUM_ANGLES].astype(np.float64)
    frames = np.arange(ra.shape[0])
    matches = np.empty(keys.size, np.int64)
    matches[0] = int(np.argmin(np.abs(ra - pa[keys[0]]).sum(axis=1)))
    for i in range(1, keys.size):
        prev = matches[i - 1]
        if changes:
            target = ra[prev] + (pa[keys[i]] - pa[keys[i - 1]])
        else:
            target = pa[keys[i]]
        cost = np.abs(ra - target).sum(axis=1)
        jump = np.abs(frames - prev)
        window = np.inf if search is None else search
        if max_speed is not None:
            window = min(window, math.ceil(max_speed * (keys[i] - keys[i - 1]) - 1e-9))
        allowed = frames[jump <= window]
        # lexsort: last key is primary -> cost, then jump, then frame index.
        best = np.lexsort((allowed, jump[allowed], cost[allowed]))[0]
        matches[i] = allowed[best]
    return matches


# ------------------------------------------------------------------------------------------
# 4. Interpolation


def background_indices(keys: np.ndarray, matches: np.ndarray, num_frames: int) -> np.ndarray:
    """The background (reference-frame) index of every frame, interpolated between keyframes.

    Between keyframes `a = keys[i]` and `b = keys[i+1]`, frame `a + j` gets
    `round(j / (b - a) * (matches[i+1] - matches[i]) + matches[i])`, written in this order and
    rounded half to even exactly as the 2020 code's Python `round`; at the keyframes this is
    exactly the match. Frames before the first / after the last keyframe (not produced by
    `keyframes`, which always includes both ends) keep the first / last match.

    Args:
      keys: [K] strictly increasing keyframe indices in [0, num_frames).
      matches: [K] non-negative integer reference indices, one per keyframe.
      num_frames: T, the length of the predicted sequence.

    Returns:
      [T] int64 reference-frame indices.
    """
    if int(num_frames) != num_frames or num_frames < 1:
        raise InputError(f"num_frames must be an integer >= 1, got {num_frames}")
    num_frames = int(num_frames)
    keys = _indices(keys, "keys", num_frames, strict=True)
    m = np.asarray(matches)
    if m.shape != keys.shape:
        raise InputError(f"matches: expected shape {keys.shape} (one per key), got {m.shape}")
    m = _indices(m, "matches", np.iinfo(np.int64).max)

    t = np.arange(num_frames)
    seg = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, max(keys.size - 2, 0))
    out = np.empty(num_frames, np.float64)
    if keys.size == 1:
        out[:] = m[0]
    else:
        a, b = keys[seg], keys[seg + 1]
        ma, mb = m[seg].astype(np.float64), m[seg + 1].astype(np.float64)
        j = (t - a).astype(np.float64)
        out = j / (b - a) * (mb - ma) + ma
    out[t <= keys[0]] = m[0]
    out[t >= keys[-1]] = m[-1]
    return np.rint(out).astype(np.int64)


# ------------------------------------------------------------------------------------------
# 5. Pose adjustment


def adjust_pose(
    pred: np.ndarray, ref: np.ndarray, indices: np.ndarray, blend: float = 1.0
) -> np.ndarray:
    """The predicted pose "modified to fit the background" frame by frame.

    The rendered face is pasted onto the background frame `ref[indices[t]]`, whose neck and
    shoulders are fixed in the image, so the head must sit where that frame's head sat:
    - translation (tx, ty, tz) is **replaced** by the background frame's translation, always:
      any other position detaches the face from the neck;
    - the angles become `(1 - blend) * pred + blend * ref[indices]`: `blend = 1` (the 2020
      code, which copies all six numbers) gives exactly the background's head orientation, so
      face and hair / neck agree and the predicted motion survives only through the choice
      and retiming of backgrounds; `blend < 1` keeps some of the predicted orientation, and
      `talkingjax.generation` then turns the background frame's real head to it
      (`talkingjax.generation.warp`) so face and hair agree again; `blend = 0` keeps the
      predicted angles.
      Blending Euler angles linearly is fine for head poses, which stay far from +-pi.

    Args:
      pred: [T, 6] predicted poses.
      ref: [R, 6] poses of the reference video's frames.
      indices: [T] reference-frame index per frame (`background_indices`).
      blend: in [0, 1], weight of the background's angles.

    Returns:
      [T, 6] poses, dtype `result_type(pred, ref, float32)`.
    """
    pred = _poses(pred, "pred")
    ref = _poses(ref, "ref")
    idx = _indices(indices, "indices", ref.shape[0])
    if idx.shape[0] != pred.shape[0]:
        raise InputError(
            f"indices: expected {pred.shape[0]} entries (one per frame), got {idx.size}"
        )
    if not np.isfinite(blend) or not 0.0 <= blend <= 1.0:
        raise InputError(f"blend must lie in [0, 1], got {blend}")
    dtype = np.result_type(pred.dtype, ref.dtype, np.float32)
    bg = ref[idx].astype(dtype)
    out = np.empty(pred.shape, dtype)
    # Written as two products so that blend 0 / 1 return pred / bg angles bit for bit.
    own, bg_angles = pred[:, :NUM_ANGLES].astype(dtype), bg[:, :NUM_ANGLES]
    out[:, :NUM_ANGLES] = (1.0 - blend) * own + blend * bg_angles
    out[:, NUM_ANGLES:] = bg[:, NUM_ANGLES:]
    return out


# ------------------------------------------------------------------------------------------
# Everything


def match(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    axis: int | None = None,
    max_fraction: float = 0.1,
    merge: int = 3,
    taps: int = 7,
    search: int | None = None,
    changes: bool = True,
    max_speed: float | None = MAX_SPEED,
    blend: float = 1.0,
) -> BackgroundPlan:
    """Background matching of a predicted pose sequence against a reference video.

    Runs `choose_axis` (unless `axis` is given), `keyframes` on that angle, `match_keyframes`,
    `background_indices` and `adjust_pose`; the keyword arguments are passed to the step of
    the same name.

    Args:
      pred: [T, 6] predicted poses.
      ref: [R, 6] poses of the reference video's frames.

    Returns:
      A `BackgroundPlan`; render frame t with `plan.pose[t]` over reference frame
      `plan.indices[t]`.
    """
    pred = _poses(pred, "pred")
    ref = _poses(ref, "ref")
    if axis is None:
        axis = choose_axis(pred)
    elif isinstance(axis, bool) or axis not in range(NUM_ANGLES):
        raise InputError(f"axis must be 0, 1 or 2 (an angle), got {axis}")
    axis = int(axis)
    keys = keyframes(pred[:, axis], max_fraction=max_fraction, merge=merge, taps=taps)
    matches = match_keyframes(pred, ref, keys, search=search, changes=changes, max_speed=max_speed)
    indices = background_indices(keys, matches, pred.shape[0])
    pose = adjust_pose(pred, ref, indices, blend=blend)
    return BackgroundPlan(int(axis), keys, matches, indices, pose)
