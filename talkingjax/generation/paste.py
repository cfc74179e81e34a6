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

Both work in frame pixels; the mask is the renderer's face mask at crop resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkingjax.errors import InputError

MODES = ("poisson", "feather")


def _crop_affine(params: np.ndarray) -> np.ndarray:
    """The 2x3 frame -> crop map of `apply_crop` (pixel centres at integers for OpenCV)."""
    scale, tx, ty = (float(x) for x in np.asarray(params)[2:5])
    offset = 0.5 * (scale - 1)
    return np.array([[scale, 0.0, tx + offset], [0.0, scale, ty + offset]])


def uncrop(crop: np.ndarray, params: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """The crop drawn at its place in a frame of (width, height); zero outside it.

    Args:
      crop: [S, S, C] or [S, S] (any dtype OpenCV warps).
      params: [5] the crop transform (w0, h0, scale, tx, ty) at the crop's size S.
      frame_size: (width, height) of the frame.
    """
    return cv2.warpAffine(
        np.ascontiguousarray(crop),
        _crop_affine(params),
        tuple(int(x) for x in frame_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


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
      mask: [S, S] uint8 or bool, nonzero where the crop shows the face.
      params: [5] crop transform at size S (`gan_pairs.scaled_transform` of the fit's).
      mode: "poisson" or "feather" (module docstring).
      feather: pixels (in the frame) the mask is eroded and blurred by.

    Returns:
      [H, W, 3] uint8; equal to `frame` where the face is absent.
    """
    if mode not in MODES:
        raise InputError(f"paste mode must be one of {MODES}, got {mode!r}")
    frame, crop = np.asarray(frame), np.asarray(crop)
    s = crop.shape[0]
    if frame.ndim != 3 or frame.shape[2] != 3 or crop.shape != (s, s, 3) or mask.shape != (s, s):
        raise InputError(
            f"paste_crop takes frame [H, W, 3], crop [S, S, 3] and mask [S, S]; got "
            f"{frame.shape}, {crop.shape}, {mask.shape}"
        )
    if frame.dtype != np.uint8 or crop.dtype != np.uint8:
        raise InputError("paste_crop takes uint8 frames and crops")
    h, w = frame.shape[:2]
    placed = uncrop(crop, params, (w, h))
    region = uncrop((np.asarray(mask) > 0).astype(np.uint8) * 255, params, (w, h)) > 127
    if feather > 0:
        kernel = np.ones((2 * feather + 1, 2 * feather + 1), np.uint8)
        region = cv2.erode(region.astype(np.uint8), kernel) > 0
    if not region.any():
        return frame.copy()
    if mode == "poisson":
        ys, xs = np.nonzero(region)
        # seamlessClone places the source's mask bounding box centred at `center`; the
        # source is already at its place in frame coordinates, so that is the box's centre.
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        if x0 > 0 and y0 > 0 and x1 < w - 1 and y1 < h - 1:
            center = ((int(x0) + int(x1) + 1) // 2, (int(y0) + int(y1) + 1) // 2)
            m = region.astype(np.uint8) * 255
            return cv2.seamlessClone(placed, frame, m, center, cv2.NORMAL_CLONE)
        # The face touches the frame border, where seamless cloning is undefined: feather.
    alpha = region.astype(np.float32)
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=feather / 2.0)
    alpha = alpha[..., None]
    out = alpha * placed.astype(np.float32) + (1.0 - alpha) * frame.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
