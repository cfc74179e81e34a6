"""Turning the real head of a background frame to the rendered pose (beyond paper 000 Sec. IV-B2).

Background matching (`talkingjax.generation.background`) borrows, for every output frame, a
real frame of the target video whose head has (nearly) the predicted orientation. Paper 000
then renders the face at the background frame's own pose (`blend` 1), so the head a viewer
sees moves exactly as the retimed target video does: the predicted, personalised motion only
chooses and times the backgrounds (on the embedded default the tracked output follows the
prediction with r = 0.32). Rendering the face at another pose than its background's
(`blend` < 1) turns the face against its own hair, ears and neck.

Here the background frame itself is turned instead: the frame's fitted mesh (its identity,
expression and translation) is drawn at the rendered pose with, per vertex, where that vertex
sat at the frame's own pose (`visualize.render_motion`); that displacement field is extended
beyond the mesh (`dense_flow`: the head's affine motion, fading with the distance from the face,
so hair and ears move with the head and the body hardly), kept to the person
(`talkingjax.video.tracking.person_mask`, MediaPipe's selfie segmentation: the background behind
the head stays straight), and the frame is resampled along it (`warp_frame`). The eyes, skin,
hair and blinks stay the real frame's, now at the rendered pose, and the face rendered at that
pose sits on a head that agrees with it.

Sizes: S the crop side of the generator, [H, W] the target video's frames; flows are (dx, dy)
in pixels, pointing from where a point is in the output to where it was in the frame.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from talkingjax import visualize
from talkingjax.generation import paste
from talkingjax.video import tracking

# How far beyond the face mesh the head's motion reaches, as a fraction of the crop side: the
# motion fades as exp(-(d / (REACH S))^2) with the distance d from the mesh (hair and ears
# keep most of it, the shoulders little); the person mask keeps the background still.
REACH = 0.2
# Smoothing of the extended field (fraction of S): joins the mesh's flow to the extension.
SMOOTH = 0.01
# Width of the mesh's rim whose motion the head beyond the mesh follows (fraction of S).
EDGE = 0.04
# Angles (radians) below which a frame is left as it is (0.01 degree).
STILL = np.radians(0.01)
# How much farther than asked a background frame's head is turned, per axis (pitch, yaw, roll)
# (`overturn`): the tracker reads a warped turn back at a fraction of the mesh's turn, the more
# out of the image plane the smaller (`experiments.warp_readback`: the head's outline, which a
# real turn reshapes, stays where it was); the gain makes the turn a viewer sees the one asked
# for. 1 / the read-back slope on the two val-speaker targets (0.66 / 0.45 / 0.98); on their
# written mp4s the tracked output's slope on the prediction went from 0.66-0.87 / 0.41-0.50 to
# 0.86-1.01 / 0.91-0.93 and its per-axis r from >= 0.61 to >= 0.87, sharpness and seam
# unchanged (README "Head motion in the output video").
TURN_GAIN = (1.5, 2.2, 1.0)


def overturn(angles, angles_from, gain=TURN_GAIN) -> np.ndarray:
    """[N, 3] `angles_from + gain * (angles - angles_from)`: the turn from the background
    frames' own angles `angles_from` [N, 3] to the rendered `angles` [N, 3] (radians), scaled
    per axis by `gain` (3 numbers, `TURN_GAIN`); a gain of 1 returns `angles` bit for bit."""
    angles = np.asarray(angles)
    g = np.asarray(gain, np.float64)
    if np.all(g == 1.0):
        return angles.copy()
    angles_from = np.asarray(angles_from, angles.dtype)
    return (angles_from + g * (angles - angles_from)).astype(angles.dtype)


def _affine_fit(flow: np.ndarray, on: np.ndarray) -> np.ndarray:
    """[S, S, 2] the least-squares affine field a x + b y + c of `flow` over the pixels `on`."""
    s = flow.shape[0]
    ys, xs = np.nonzero(on)
    design = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, flow[ys, xs].astype(np.float64), rcond=None)
    gy, gx = np.mgrid[0:s, 0:s]
    grid = np.stack([gx, gy, np.ones_like(gx)], axis=-1).astype(np.float64)
    return (grid @ coef).astype(np.float32)


def dense_flow(flow: np.ndarray, mask: np.ndarray, reach: float = REACH) -> np.ndarray:
    """The head's displacement field over the whole crop.

    Args:
      flow: [S, S, 2] the mesh's displacement (`visualize.render_motion`), 0 off the mesh.
      mask: [S, S] nonzero where the mesh is drawn.
      reach: the motion's fading distance beyond the mesh, a fraction of S (`REACH`).

    Returns:
      [S, S, 2] float32: the mesh's flow on the mesh; off it (eye and mouth holes, hair, ears,
      neck) the affine motion of the mesh, faded with the distance from it; smoothed over
      `SMOOTH` S and zero at the crop's border. All zero when no mesh is drawn.
    """
    flow = np.asarray(flow, np.float32)
    on = np.asarray(mask) > 0.5
    s = flow.shape[0]
    if on.sum() < 3:
        return np.zeros_like(flow)
    dist = cv2.distanceTransform((~on).astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.exp(-((dist / (reach * s)) ** 2))[..., None]
    # Beyond the mesh the head moves as its outline does: the affine motion of the mesh's rim
    # (a band EDGE S wide inside its boundary), not of the whole face. A turning head's
    # outline (cheeks, ears, hair) hardly moves while its nose does; moving the outline with
    # the nose would read as a shift of the head, not a turn.
    inside = cv2.distanceTransform(on.astype(np.uint8), cv2.DIST_L2, 5)
    rim = on & (inside < max(EDGE * s, 1.5))
    field = np.where(on[..., None], flow, _affine_fit(flow, rim if rim.sum() >= 3 else on) * fade)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=max(SMOOTH * s, 0.5))
    edge = np.arange(s, dtype=np.float32)
    edge = np.clip(np.minimum(edge, s - 1 - edge) / max(reach * s * 0.5, 1.0), 0.0, 1.0)
    return (field * np.minimum(edge[:, None], edge[None, :])[..., None]).astype(np.float32)


def warp_frame(
    frame: np.ndarray,
    flow: np.ndarray,
    params: np.ndarray,
    person: np.ndarray | None = None,
    mesh: np.ndarray | None = None,
) -> np.ndarray:
    """A full frame resampled along a crop's displacement field.

    Args:
      frame: [H, W, 3] uint8.
      flow: [S, S, 2] (`dense_flow`) in pixels of the S x S crop `params` cuts.
      params: [5] the crop transform at size S (`gan_pairs.scaled_transform`).
      person: optional [H, W] in [0, 1], where the frame shows the person
        (`tracking.person_mask`): the field is scaled by it, so the background behind the
        head stays where it is.
      mesh: optional [S, S] the face mesh's mask in the crop: the face always moves, even
        where the person mask missed it (a face the segmenter does not take for a person).

    Returns:
      [H, W, 3] uint8; the frame itself outside the crop (and where the field is zero).
    """
    frame = np.asarray(frame)
    h, w = frame.shape[:2]
    scale = float(params[2])
    # The field is zero outside the crop: it is drawn in the crop's window of the frame only.
    bx, by, bx1, by1 = paste.crop_box(params, flow.shape[0], (w, h))
    box = (bx, by, bx1, by1)
    field = paste.uncrop(np.ascontiguousarray(flow / scale, np.float32), params, (w, h), box)
    if person is not None:
        person = np.asarray(person, np.float32)[by:by1, bx:bx1]
        if mesh is not None:
            face = cv2.GaussianBlur((np.asarray(mesh) > 0.5).astype(np.float32), (0, 0), 1.5)
            drawn = paste.uncrop(face, params, (w, h), box)
            person = np.maximum(person, np.clip(2.0 * drawn, 0, 1))
        field *= person[..., None]
    moving = np.abs(field).max(axis=-1) > 1e-3 if field.size else np.zeros((0, 0), bool)
    if not moving.any():
        return frame.copy()
    ys, xs = np.nonzero(moving)
    y0, y1 = max(int(ys.min()) - 1, 0), min(int(ys.max()) + 2, by1 - by)
    x0, x1 = max(int(xs.min()) - 1, 0), min(int(xs.max()) + 2, bx1 - bx)
    gy, gx = np.mgrid[by + y0 : by + y1, bx + x0 : bx + x1].astype(np.float32)
    part = cv2.remap(
        frame,
        gx + field[y0:y1, x0:x1, 0],
        gy + field[y0:y1, x0:x1, 1],
        interpolation=cv2.INTER_LANCZOS4,  # keeps 0.95 of the sharpness at half-pixel shifts
        borderMode=cv2.BORDER_REPLICATE,
    )
    out = frame.copy()
    out[by + y0 : by + y1, bx + x0 : bx + x1] = part
    return out


class PersonMasks:
    """Person masks of a target's frames (`tracking.person_mask`) by frame index, each made
    once; the segmenter starts on first use. A context manager (closes the segmenter)."""

    def __init__(self):
        self.masks: dict[int, np.ndarray] = {}
        self.segmenter = None

    def __call__(self, i: int, frame: np.ndarray) -> np.ndarray:
        """[H, W] float32 mask of target frame i (`frame`, its pixels)."""
        if i not in self.masks:
            if self.segmenter is None:
                self.segmenter = tracking.person_segmenter()
            self.masks[i] = tracking.person_mask(self.segmenter, frame)
        return self.masks[i]

    def close(self) -> None:
        if self.segmenter is not None:
            self.segmenter.close()
            self.segmenter = None

    def __enter__(self) -> PersonMasks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def turn_heads(
    model,
    coeffs,
    angles_from: np.ndarray,
    frames: list[np.ndarray],
    params: np.ndarray,
    size: int,
    person_of: Callable[[int], np.ndarray] | None = None,
    reach: float = REACH,
) -> list[np.ndarray]:
    """Background frames with their heads turned to the rendered pose.

    Args:
      model: the fitted face model.
      coeffs: `FaceCoeffs` [N] of the background frames (their fitted identity, expression and
        translation) with the angles to turn to.
      angles_from: [N, 3] radians, the frames' fitted angles.
      frames: N full frames [H, W, 3] uint8.
      params: [N, 5] their crop transforms at size `size`.
      size: S, the side the motion is drawn at (the generator's crop).
      person_of: optional; `person_of(k)` is the person mask [H, W] of frame k
        (`warp_frame`'s `person`), asked only for the frames that turn.
      reach: `dense_flow`'s.

    Returns:
      N frames [H, W, 3] uint8; a frame whose angles hardly change (`STILL`) is returned as
      it is.
    """
    angles_from = np.asarray(angles_from, np.float32)
    moved = np.abs(np.asarray(coeffs.angles) - angles_from).max(axis=1) > STILL
    if not moved.any():
        return list(frames)
    flow, masks = visualize.render_motion(model, coeffs, size, angles_from)
    out = list(frames)
    for k in np.flatnonzero(moved):
        person = person_of(int(k)) if person_of is not None else None
        field = dense_flow(flow[k], masks[k], reach)
        out[k] = warp_frame(frames[k], field, params[k], person, masks[k])
    return out
