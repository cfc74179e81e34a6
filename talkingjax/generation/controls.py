"""What a user may change about a generated video, checked before any work, and the motion plan.

`Controls` are the knobs of `talkingjax.generation.generate` (another motion pattern, the
motion's scale, a still head, the pattern's seed, a given head pose instead of the predicted
one, the background blend, the paste mode and region, the GAN or none, the chunk size, the GAN's
self-ensemble); `check_controls` and `check_output` fail early on
values or paths generation cannot use, so the command line can check them before fitting.
`plan_motion` turns a predicted pose into the background plan (paper 000 Sec. IV-B2,
`talkingjax.generation.background`), or the still plan when the controls or a photo ask for no
head motion.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from talkingjax.errors import InputError
from talkingjax.generation import background, paste, warp
from talkingjax.generation.personalization import Target


@dataclasses.dataclass(frozen=True)
class Controls:
    """What `generate` may change about the motion.

    Attributes:
      pattern: use this motion pattern [k] instead of the target's (e.g. another video's,
        `--pose-style-from`).
      pose_scale: scales the predicted motion about its mean (1 = as predicted).
      still: no head motion: every frame over the target's most frontal frame, in its pose.
      seed: 0 = the pattern of the whole target video; others = of a random stretch of it
        (`motion_pattern`).
      pose: a given head pose [F, 6] (pitch, yaw, roll radians; tx, ty, tz, in the fit's
        crop camera, as `Target.pose`) used instead of the predicted one, F = the speech's
        frame count (e.g. a clip's own fitted pose, for self-reconstruction): background
        matching and the pose adjustment (`blend`) run on it as on a prediction; `pattern`,
        `seed` and `pose_scale` are then unused, and `still` may not be set.
      blend: weight of the background frame's angles in the rendered pose (`adjust_pose`).
        0 (the default, beyond the paper): the predicted angles, and the background frame's
        real head is turned to them (`talkingjax.generation.warp`), so the head a viewer sees
        follows the predicted, personalised motion; 1: the background frame's own angles
        (paper 000 Sec. IV-B2 and the 2020 code: the prediction only chooses and retimes the
        backgrounds). Chosen on two val-speaker targets, measured on the written mp4 (README
        "Head motion in the output video").
      turn_gain: (pitch, yaw, roll) how much farther than the rendered angles' difference from
        its background's the head is turned, face render included (`warp.overturn`,
        `warp.TURN_GAIN`, chosen on val: the tracker reads a warped out-of-plane turn at
        0.45-0.66 of the mesh's); (1, 1, 1) renders the adjusted angles exactly. Unused with
        `blend` 1. Measured on turns of 4-8 degrees (the read-back is linear there).
      retime_speed: background retiming limit, in target frames per output frame
        (`background.match`'s `max_speed`; 1 = the reference code's window, never faster
        than the target's real motion); 0 = no limit (the keyframes' matches may be anywhere
        in the target video, and the background index races between them).
      paste: "poisson" or "feather" (`talkingjax.generation.paste`).
      region: what of the refined crop is pasted: "mouth" (the default, beyond the paper: only
        the region speech moves, a soft mask following the mesh; eyes, skin and blinks stay
        the real frame's; chosen on the val speakers' self-reconstruction: as sharp as the real
        frames, README "Photoreal output") or "face" (paper 000: the whole face).
        `paste.REGIONS`.
      refine: False = no GAN: the rendered face over its background crop is pasted as it is
        (the pipeline's raw render, an evaluation row; the GAN is not even loaded).
      chunk: frames rendered, refined and written at a time.
      ensemble_shift: the generator's test-time self-ensemble (`predict.Refiner`; beyond the
        paper): -1 = one pass; 0 = mean with the mirrored pass; s > 0 = mirror and shifts by
        s px (18 passes: closer to the real frames in PSNR and SSIM, 18x the time).
    """

    pattern: np.ndarray | None = None
    pose_scale: float = 1.0
    still: bool = False
    seed: int = 0
    pose: np.ndarray | None = None
    blend: float = 0.0
    turn_gain: tuple[float, float, float] = warp.TURN_GAIN
    retime_speed: float = background.MAX_SPEED
    paste: str = "poisson"
    region: str = "mouth"
    refine: bool = True
    chunk: int = 100
    ensemble_shift: int = -1


def check_controls(controls: Controls) -> None:
    """Fails early (before any work) on controls `generate` cannot use."""
    if not np.isfinite(controls.pose_scale) or controls.pose_scale < 0:
        raise InputError(f"pose scale must be a finite number >= 0, got {controls.pose_scale}")
    gain = np.asarray(controls.turn_gain, np.float64)
    if gain.shape != (3,) or not np.isfinite(gain).all() or (gain < 0).any():
        raise InputError(
            f"turn gain must be 3 finite numbers >= 0 (pitch, yaw, roll), got {controls.turn_gain}"
        )
    if controls.paste not in paste.MODES:
        raise InputError(f"paste mode must be one of {paste.MODES}, got {controls.paste!r}")
    if not np.isfinite(controls.retime_speed) or controls.retime_speed < 0:
        raise InputError(f"retime speed must be a number >= 0, got {controls.retime_speed}")
    if controls.region not in paste.REGIONS:
        raise InputError(f"paste region must be one of {paste.REGIONS}, got {controls.region!r}")
    if controls.chunk < 1:
        raise InputError(f"chunk must be >= 1 frame, got {controls.chunk}")
    if controls.ensemble_shift < -1:
        raise InputError(
            f"GAN self-ensemble shift must be -1 (off), 0 (mirror) or more, got "
            f"{controls.ensemble_shift}"
        )
    if controls.pose is not None:
        pose = np.asarray(controls.pose)
        if pose.ndim != 2 or pose.shape[0] < 1 or pose.shape[1] != 6:
            raise InputError(f"a given pose must be [F >= 1, 6], got shape {pose.shape}")
        if not np.issubdtype(pose.dtype, np.number) or not np.isfinite(pose).all():
            raise InputError("a given pose must be finite numbers")
        if controls.still:
            raise InputError("a given pose and a still head exclude each other")


def turn_gain(values) -> tuple[float, float, float]:
    """`Controls.turn_gain` from 3 numbers or their strings (a command line's
    `--turn_gain=1.5,2,1`); `InputError` on anything else."""
    try:
        gain = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"turn gain must be 3 numbers (pitch, yaw, roll), got {values}") from None
    if len(gain) != 3:
        raise InputError(f"turn gain must be 3 numbers (pitch, yaw, roll), got {values}")
    return gain


def given_pose(controls: Controls, num_frames: int) -> np.ndarray:
    """`controls.pose` as float32 [num_frames, 6]; `InputError` if it has another length."""
    pose = np.asarray(controls.pose, np.float32)
    if pose.shape[0] != num_frames:
        raise InputError(
            f"the given pose has {pose.shape[0]} frames; the speech makes {num_frames}"
        )
    return pose


def check_output(path: str) -> None:
    """Fails early (before any work) if `path` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise InputError(f"output directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"output directory {folder} is not writable")
    if os.path.isdir(path):
        raise InputError(f"output path {path} is a directory")


def most_frontal(pose: np.ndarray) -> int:
    """Index of the frame of a pose clip [T, 6] whose head angles are smallest (L2)."""
    return int(np.argmin(np.sum(pose[:, :3] ** 2, axis=1)))


def plan_motion(
    target: Target, predicted: np.ndarray, controls: Controls
) -> background.BackgroundPlan:
    """Background matching of a predicted pose [F, 6] against the target's frames.

    With `controls.still`, or a one-frame (photo) target, every frame is over the target's
    most frontal frame, in its pose. Otherwise the adjusted angles' turn from the background
    frame's own is scaled by `controls.turn_gain` (`warp.overturn`).
    """
    if controls.still or target.num_frames == 1:
        f = predicted.shape[0]
        ref = most_frontal(target.pose)
        idx = np.full(f, ref, np.int64)
        return background.BackgroundPlan(
            1,
            np.array([0, f - 1]),
            np.array([ref, ref]),
            idx,
            np.repeat(target.pose[ref : ref + 1], f, 0),
        )
    speed = controls.retime_speed if controls.retime_speed > 0 else None
    plan = background.match(predicted, target.pose, blend=controls.blend, max_speed=speed)
    pose = plan.pose.copy()
    own = target.pose[plan.indices, :3]
    pose[:, :3] = warp.overturn(pose[:, :3], own, controls.turn_gain)
    return dataclasses.replace(plan, pose=pose)
