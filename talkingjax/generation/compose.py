"""Generation proper: speech + a personalised target -> the output mp4 (paper 000, Fig. 1).

`generate` strings the steps together, one progress stage each:

1. predict pose and expression: head pose from the speech and the motion pattern (decoder
   D_m, moved to the target's rest orientation and scaled about it by `Controls.pose_scale`,
   `motion.about_rest`; or the given `Controls.pose`),
   expression from the speech with the target's fine-tuned regressor
   (`talkingjax.generation.motion`);
2. background matching (Sec. IV-B2): keyframes of the predicted pose matched to frames of the
   target video, the background index interpolated between them, the pose adjusted to its
   background (`talkingjax.generation.controls.plan_motion`);
3. render, refine, paste, write (`_Frames`, chunk by chunk): the background frame's real
   head turned to the rendered angles where they are not its own (`Controls.blend` < 1;
   `talkingjax.generation.warp`), rendering with the target's identity, albedo and lighting
   over the cropped background frame, the GAN over windows of
   three composed frames (Sec. IV-B3; none with `Controls.refine` False), paste-back into the
   full background frames (`talkingjax.generation.paste`: the whole face, or with
   `Controls.region` "mouth" only the region speech moves), and an mp4 with the speech as its
   audio track (`visualize.VideoWriter`). Frames are made and written in chunks, so speech of
   any length (an hour and more) streams through with bounded memory.
"""

from __future__ import annotations

import dataclasses

import cv2
import jax
import numpy as np

from talkingjax import audio, predict, visualize
from talkingjax.data import gan_pairs
from talkingjax.face3d import default
from talkingjax.face3d import fit as fit_lib
from talkingjax.generation import motion, paste, warp
from talkingjax.generation.controls import (
    Controls,
    check_controls,
    check_output,
    given_pose,
    most_frontal,
    plan_motion,
)
from talkingjax.generation.models import Models, gan_size
from talkingjax.generation.personalization import Target
from talkingjax.progress import Progress

FRAMES_STAGE = "render, refine, paste, write"


@dataclasses.dataclass
class Result:
    """What `generate` made.

    Attributes:
      path: the mp4.
      num_frames: frames written.
      fps: their rate.
      predicted_pose: [F, 6] pose from the speech (at the target's rest orientation, after
        `pose_scale`), or the given `Controls.pose`, before matching.
      pose: [F, 6] the pose rendered (adjusted to the backgrounds).
      exp: [F, K] expression rendered.
      background: [F] target frame behind each output frame.
      seconds: time per stage.
    """

    path: str
    num_frames: int
    fps: float
    predicted_pose: np.ndarray
    pose: np.ndarray
    exp: np.ndarray
    background: np.ndarray
    seconds: dict


class _Frames:
    """Renders, refines (unless `refiner` is None) and pastes output frames chunk by chunk."""

    def __init__(self, target: Target, refiner, face_model, controls: Controls):
        self.target, self.refiner, self.model = target, refiner, face_model
        self.controls = controls
        self.size = refiner.size if refiner is not None else gan_size(target.gan)
        self.params = gan_pairs.scaled_transform(target.params, target.crop_size, self.size)
        self.history: list[np.ndarray] = []  # the last two composed frames (window t-2, t-1)
        self.weights = (
            paste.speech_region_weights(face_model) if controls.region == "mouth" else None
        )
        self.people = warp.PersonMasks()  # of the target's frames, each made once

    def close(self) -> None:
        self.people.close()

    def chunk(
        self, exp: np.ndarray, pose: np.ndarray, idx: np.ndarray, frames: list[np.ndarray]
    ) -> np.ndarray:
        """Output frames [N, H, W, 3] uint8 of N consecutive frames."""
        s = self.size
        base = jax.tree.map(lambda x: np.asarray(x)[0], self.target.coeffs)
        n = len(idx)
        coeffs = type(base)(
            id=np.repeat(base.id[None], n, 0),
            exp=exp.astype(np.float32),
            tex=np.repeat(base.tex[None], n, 0),
            angles=pose[:, :3].astype(np.float32),
            gamma=np.repeat(base.gamma[None], n, 0),
            trans=pose[:, 3:].astype(np.float32),
        )
        drawn = None
        if self.weights is None:
            render, mask = gan_pairs.render_frames(self.model, coeffs, s, self.target.albedo)
        else:  # the speech region's weights drawn in the same pass
            images, masks, drawn = visualize.render_fit_weighted(
                self.model, coeffs, s, self.weights, self.target.albedo
            )
            render, mask = gan_pairs.to_uint8(images), gan_pairs.to_uint8(masks)
        # The background frames, their real heads turned to the rendered angles (`warp`; as
        # they are when the angles are theirs, blend 1).
        own = jax.tree.map(lambda x: np.asarray(x)[idx], self.target.coeffs)
        backs = warp.turn_heads(
            self.model,
            own.replace(angles=coeffs.angles),
            own.angles,
            [frames[i] for i in idx],
            self.params[idx],
            s,
            person_of=lambda k: self.people(int(idx[k]), frames[idx[k]]),
        )
        back = np.stack(
            [fit_lib.apply_crop(f, self.params[i], (s, s)) for f, i in zip(backs, idx, strict=True)]
        )
        composed = gan_pairs.compose(render, mask, back)  # [N, S, S, 3] in [0, 1]
        if self.refiner is None:  # no GAN: the raw render over its background crop
            crops = np.clip(composed * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            crops = self._refine(composed * 2.0 - 1.0)
        if drawn is None:
            where = [paste.filled_hull(m > 127).astype(np.uint8) * 255 for m in mask]
        else:
            where = [paste.region_alpha(w, m) for w, m in zip(drawn, mask, strict=True)]
        return np.stack(
            [
                paste.paste_crop(
                    backs[k], crops[k], where[k], self.params[i], mode=self.controls.paste
                )
                for k, i in enumerate(idx)
            ]
        )

    def _refine(self, composed: np.ndarray) -> np.ndarray:
        """Refined crops [N, S, S, 3] uint8 of composed frames [N, S, S, 3] in [-1, 1]: the GAN
        over windows of three consecutive composed frames (carried across chunks)."""
        n = composed.shape[0]
        seq = self.history + list(composed)
        if not self.history:  # the first frame repeats, as at the start of training clips
            seq = [composed[0], composed[0]] + seq
        windows = np.stack([np.concatenate(seq[k : k + 3], axis=-1) for k in range(n)]).astype(
            np.float32
        )
        self.history = seq[-2:]
        refined = self.refiner(windows)["image"]
        return np.clip((refined + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def generate(
    wave: np.ndarray,
    target: Target,
    models: Models,
    out_path: str,
    controls: Controls = Controls(),  # noqa: B008 (a frozen dataclass)
    progress: Progress | None = None,
    face_model=None,
    side_by_side: str | None = None,
) -> Result:
    """Writes `out_path`: the target saying `wave`, with the target's head motion.

    Args:
      wave: 16 kHz mono speech (`audio.load_audio`), any length.
      target: from `personalize` (or `personalize_photo`).
      models: the pose model (the expression and GAN models are the target's).
      out_path: the mp4 to write; its audio track is `wave`, its length the speech's.
      controls: pattern, pose scale, still, seed, given pose, background blend, paste mode,
        GAN or none (`Controls`).
      progress: where stage lines and the frame bar go (default: nowhere); its `times`
        are the returned `Result.seconds`.
      side_by_side: also write this mp4: the target video (looped) | the output.

    Raises:
      InputError: bad speech, bad controls (a given pose of another length than the
        speech's), an unwritable output. Nothing is left at the output paths when anything
        fails.
    """
    progress = progress or Progress(quiet=True)
    check_controls(controls)
    for path in filter(None, (out_path, side_by_side)):
        check_output(path)
    wave = audio.check_audio(np.asarray(wave, np.float32))
    face_model = face_model or default.load_default()
    fps = target.fps or 25.0
    num_frames = audio.num_video_frames(wave.size / audio.SAMPLE_RATE, fps)

    with progress.stage("predict pose and expression"):
        if controls.pose is not None:
            predicted = given_pose(controls, num_frames)
        elif controls.still or target.pattern is None:
            predicted = np.repeat(target.pose[most_frontal(target.pose)][None], num_frames, 0)
        else:
            pattern = controls.pattern
            if pattern is None:
                pattern = (
                    motion.motion_pattern(models, target.pose, fps, controls.seed)
                    if controls.seed
                    else target.pattern
                )
            predicted = motion.predict_pose(models, wave, pattern, fps, num_frames)
            predicted = motion.about_rest(predicted, target.pose, controls.pose_scale)
        exp = motion.predict_expression(target.expression, wave, fps, num_frames)
    with progress.stage("background matching"):
        plan = plan_motion(target, predicted, controls)

    with progress.stage(FRAMES_STAGE):
        refiner = (
            predict.Refiner.from_workdir(target.gan, ensemble_shift=controls.ensemble_shift)
            if controls.refine
            else None
        )
        maker = _Frames(target, refiner, face_model, controls)
        # The target is short (10-15 s): its frames are decoded once and kept.
        frames = target.frames()
        writers = [visualize.VideoWriter(out_path, fps, wave)]
        if side_by_side:
            writers.append(visualize.VideoWriter(side_by_side, fps, wave))
        bar = progress.bar("frames", num_frames, unit="frames", every=5.0)
        try:
            for a in range(0, num_frames, controls.chunk):
                b = min(a + controls.chunk, num_frames)
                out = maker.chunk(exp[a:b], plan.pose[a:b], plan.indices[a:b], frames)
                writers[0].write(out)
                if side_by_side:
                    left = np.stack([frames[t % len(frames)] for t in range(a, b)])
                    writers[1].write(_side_by_side(left, out))
                bar.advance(b - a)
            for w in writers:
                w.close()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        finally:
            maker.close()
    return Result(
        out_path, num_frames, fps, predicted, plan.pose, exp, plan.indices, dict(progress.times)
    )


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """[N, H, W1 + W2, 3]: `left` resized to the height of `right`, then `right`."""
    h = right.shape[1]
    if left.shape[1] != h:
        w = int(round(left.shape[2] * h / left.shape[1]))
        left = np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA) for x in left])
    return np.concatenate([left, right], axis=2)
