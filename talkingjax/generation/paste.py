"""Putting a refined face crop back into its full video frame (paper 000 Sec. IV-B, last step).

The generator works on an S x S crop cut from a frame by the crop transform of the fit
(`face3d.fit.apply_crop`: crop = scale * frame + (tx, ty)); the output video needs whole
frames. `paste_crop` maps the crop back with the inverse of that transform and blends it in
only where the face is, so the frame's own pixels (hair, body, background) stay untouched:

- "poisson": OpenCV's seamless cloning (Perez et al. 2003) over the face region, which
  matches the crop's colours to the frame at the seam; the default, as the issue asks for
  seamless blending;
- "feather": an alpha blend with the face mask eroded and blurred by `feather` pixels
  (cheaper, and exactly the frame outside the mask's blurred support).

Both work in frame pixels; the mask is the renderer's face mask at crop resolution, binary
(the whole face, paper 000) or soft (an alpha in [0, 1]: the region speech moves, below).

What is pasted (`REGIONS`, beyond the paper for "mouth"):

- "face": the whole refined face (paper 000: the generated face replaces the real one);
- "mouth": only the region speech moves -- mouth, jaw, lower cheeks -- as a soft mask that
  follows the fitted mesh (`speech_region_weights`, drawn at each frame's pose by
  `visualize.render_fit_weighted`, holes filled by `region_alpha`). With the background matched,
  the real frame already holds the target's eyes, blinks, skin and hair at (nearly) the
  rendered pose; only the lower face is replaced.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkingjax.errors import InputError

MODES = ("poisson", "feather")
REGIONS = ("face", "mouth")


def _crop_affine(params: np.ndarray) -> np.ndarray:
    """The 2x3 frame -> crop map of `apply_crop` (pixel centres at integers for OpenCV)."""
    scale, tx, ty = (float(x) for x in np.asarray(params)[2:5])
    offset = 0.5 * (scale - 1)
    return np.array([[scale, 0.0, tx + offset], [0.0, scale, ty + offset]])


def crop_box(
    params: np.ndarray, size: int, frame_size: tuple[int, int], margin: int = 0
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the frame pixels [y0:y1, x0:x1] an S x S crop covers (`uncrop` is zero
    outside them), grown by `margin` pixels and clipped to the frame of (width, height).
    Working in this window instead of the whole frame is what keeps a 1080p frame cheap."""
    a = _crop_affine(params)  # frame -> crop
    scale = a[0, 0]
    lo = (np.array([-1.0, -1.0]) - a[:, 2]) / scale  # the crop's corners, one pixel out
    hi = (np.array([size, size], float) - a[:, 2]) / scale
    w, h = (int(x) for x in frame_size)
    x0, y0 = (int(np.floor(v)) - margin for v in lo)
    x1, y1 = (int(np.ceil(v)) + 1 + margin for v in hi)
    return max(x0, 0), max(y0, 0), min(max(x1, 0), w), min(max(y1, 0), h)


def uncrop(
    crop: np.ndarray,
    params: np.ndarray,
    frame_size: tuple[int, int],
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The crop drawn at its place in a frame of (width, height); zero outside it.

    Args:
      crop: [S, S, C] or [S, S] (any dtype OpenCV warps).
      params: [5] the crop transform (w0, h0, scale, tx, ty) at the crop's size S.
      frame_size: (width, height) of the frame.
      box: optional (x0, y0, x1, y1) (`crop_box`): only that window of the frame is drawn,
        [y1 - y0, x1 - x0, ...], equal to the whole frame's drawing there.
    """
    a = _crop_affine(params)
    size = tuple(int(x) for x in frame_size)
    if box is not None:
        x0, y0, x1, y1 = box
        a = a.copy()
        a[:, 2] += a[:, :2] @ np.array([x0, y0], float)
        size = (x1 - x0, y1 - y0)
    return cv2.warpAffine(
        np.ascontiguousarray(crop),
        a,
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def speech_region_weights(model) -> np.ndarray:
    """Per-vertex weight [V] in [0, 1] of the region speech moves: 1 below the nose, 0 from
    the nose tip up, a smoothstep between (heights in the model's mean shape, y up).

    The levels come from the model's 68 landmarks -- the nose tip (30) and halfway between
    the nose's base (33) and the upper lip (51) -- so any model with the iBUG landmarks works.

    Raises:
      InputError: a model without the 68 landmarks.
    """
    marks = np.asarray(model.landmarks)
    if marks.shape != (68,):
        raise InputError(
            f"the mouth region needs a face model with the 68 iBUG landmarks, got {marks.shape}"
        )
    shape = np.asarray(model.mean_shape, np.float64)
    y = shape[:, 1]
    top = shape[marks[30], 1]
    full = 0.5 * (shape[marks[33], 1] + shape[marks[51], 1])
    if not top > full:
        raise InputError("the face model's landmarks do not have the nose above the mouth")
    t = np.clip((top - y) / (top - full), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def filled_hull(on: np.ndarray) -> np.ndarray:
    """[S, S] bool: the filled convex hull of the True pixels of `on` [S, S] (all False if
    none). The face mesh has holes at the eyes and the mouth, where the generator paints eyes
    and teeth that must be pasted too."""
    on = np.asarray(on, bool)
    hull = np.zeros(on.shape, np.uint8)
    points = cv2.findNonZero(on.astype(np.uint8))
    if points is not None:
        cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull > 0


def region_alpha(weights: np.ndarray, mask: np.ndarray, grow: float = 0.03) -> np.ndarray:
    """The soft paste mask [S, S] float32 in [0, 1] of a rendered weight image.

    Args:
      weights: [S, S] `speech_region_weights` drawn at the frame's pose (0 off the mesh).
      mask: [S, S] the render's face mask (nonzero on the mesh).
      grow: the region grows by this fraction of S (a jaw lower in the output than in the
        background stays covered) and is blurred over the same width.

    The mesh has holes at the eyes and the mouth: a hole takes the largest weight around it,
    so the open mouth (lips at 1) is pasted and the eyes (weight 0 around them) are not.
    """
    s = weights.shape[0]
    r = max(1, int(round(grow * s)))
    w = np.asarray(weights, np.float32)
    on = np.asarray(mask) > 0
    if not on.any():
        return np.zeros_like(w)
    holes = filled_hull(on) & ~on
    if holes.any():
        # Grey dilation until every hole pixel has a value from the mesh around it.
        filled, reach = w.copy(), on.copy()
        kernel = np.ones((3, 3), np.uint8)
        while (holes & ~reach).any():
            grown = cv2.dilate(filled, kernel)
            new = holes & ~reach & (cv2.dilate(reach.astype(np.uint8), kernel) > 0)
            if not new.any():
                break
            filled[new] = grown[new]
            reach |= new
        w = np.where(holes, filled, w)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    w = cv2.dilate(w, kernel)
    return np.clip(cv2.GaussianBlur(w, (0, 0), sigmaX=r / 2.0), 0.0, 1.0)


def paste_crop(
    frame: np.ndarray,
    crop: np.ndarray,
    mask: np.ndarray,
    params: np.ndarray,
    mode: str = "poisson",
    feather: int = 3,
) -> np.ndarray:
    """The frame with the crop's face blended in.

    Args:
      frame: [H, W, 3] uint8 RGB full frame.
      crop: [S, S, 3] uint8 RGB refined crop.
      mask: [S, S] where the crop is pasted: uint8 or bool, nonzero on the region (binary),
        or float in [0, 1] (a soft alpha, e.g. `region_alpha`).
      params: [5] crop transform at size S (`gan_pairs.scaled_transform` of the fit's).
      mode: "poisson" or "feather" (module docstring). Poisson clones the region where the
        alpha is above one half; feather blends with the alpha.
      feather: pixels (in the frame) the mask is eroded and blurred by.

    Returns:
      [H, W, 3] uint8; equal to `frame` where the face is absent.
    """
    if mode not in MODES:
        raise InputError(f"paste mode must be one of {MODES}, got {mode!r}")
    frame, crop, mask = np.asarray(frame), np.asarray(crop), np.asarray(mask)
    s = crop.shape[0]
    if frame.ndim != 3 or frame.shape[2] != 3 or crop.shape != (s, s, 3) or mask.shape != (s, s):
        raise InputError(
            f"paste_crop takes frame [H, W, 3], crop [S, S, 3] and mask [S, S]; got "
            f"{frame.shape}, {crop.shape}, {mask.shape}"
        )
    if frame.dtype != np.uint8 or crop.dtype != np.uint8:
        raise InputError("paste_crop takes uint8 frames and crops")
    h, w = frame.shape[:2]
    # Everything happens in the window the crop covers (plus room for the feathering): the
    # rest of the frame is left as it is.
    box = crop_box(params, s, (w, h), margin=2 * feather + 2)
    bx0, by0, bx1, by1 = box
    whole = frame
    frame = np.ascontiguousarray(frame[by0:by1, bx0:bx1])
    h, w = frame.shape[:2]
    if h == 0 or w == 0:
        return whole.copy()
    placed = uncrop(crop, params, (w, h), box)
    if np.issubdtype(mask.dtype, np.floating):
        alpha = uncrop(np.clip(mask, 0.0, 1.0).astype(np.float32), params, (w, h), box)
    else:
        region = uncrop((mask > 0).astype(np.uint8) * 255, params, (w, h), box) > 127
        alpha = region.astype(np.float32)
    if feather > 0:
        kernel = np.ones((2 * feather + 1, 2 * feather + 1), np.uint8)
        alpha = cv2.erode(alpha, kernel)
    region = alpha > 0.5
    out = whole.copy()
    if not (alpha > 0).any():
        return out
    if mode == "poisson" and region.any():
        ys, xs = np.nonzero(region)
        # seamlessClone places the source's mask bounding box centred at `center`; the
        # source is already at its place in window coordinates, so that is the box's centre.
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        H, W = whole.shape[:2]  # noqa: N806
        if bx0 + x0 > 0 and by0 + y0 > 0 and bx0 + x1 < W - 1 and by0 + y1 < H - 1:
            center = ((int(x0) + int(x1) + 1) // 2, (int(y0) + int(y1) + 1) // 2)
            m = region.astype(np.uint8) * 255
            out[by0:by1, bx0:bx1] = cv2.seamlessClone(placed, frame, m, center, cv2.NORMAL_CLONE)
            return out
        # The face touches the frame border, where seamless cloning is undefined: feather.
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=feather / 2.0)
    alpha = alpha[..., None]
    mixed = alpha * placed.astype(np.float32) + (1.0 - alpha) * frame.astype(np.float32)
    out[by0:by1, bx0:bx1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out
