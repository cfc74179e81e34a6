"""Personalisation: a target video (or photo) -> a `Target` the generator can speak through.

`personalize` runs once per target video, every stage cached (`talkingjax.generation.cache`) by
the video's content hash and what the stage depends on:

1. fit (`fit_target`): the video is tracked and fitted (`data.preprocess.preprocess_video`:
   3DMM coefficients and crop transforms of every frame, plus a record with its speech);
2. motion pattern: the motion encoder turns the fitted head pose into the 16-d motion
   behaviour pattern (paper 000 Sec. III; `talkingjax.generation.motion`);
3. expression fine-tune: the audio-to-expression regressor is fine-tuned on the first 300
   frames (paper 001 personalises it so; `train.expression` with a `finetune` config); a
   target video without speech keeps the general model;
4. GAN fine-tune: the rendering-to-realistic GAN is fine-tuned on the same frames
   (Sec. IV-B3; `train.gan`), rendered with the model's low-frequency albedo as the paper
   fine-tunes.

The photo-only mode of the paper ("Ours-p", Sec. V) is `personalize_photo`: no personal head
motion (the photo's pose is kept), the general expression model, the pretrained GAN.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil

import jax
import numpy as np

from talkingjax.data import gan_pairs, preprocess
from talkingjax.errors import InputError
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import default, images
from talkingjax.generation import cache as cache_lib
from talkingjax.generation import motion
from talkingjax.generation.models import Models, gan_size
from talkingjax.progress import Progress
from talkingjax.train import checkpoint
from talkingjax.train import expression as expression_trainer
from talkingjax.train import gan as gan_trainer
from talkingjax.video import reconstruct, tracking

CLIP_ID = "target"

# A target video's face must be usable in most of its frames, or the fit and the GAN
# fine-tune learn from bad frames and the output pastes over them: the screening of
# `preprocess` (face too small in over half of the tracked frames, a median; several faces;
# a cut) and tracking's face lost in over 20% of the frames (`tracking.check_lost`) reject a
# target, and so does a face turned away (`preprocess.face_yaws` over 35 degrees, a head
# turned about 45 degrees or more) in over half of its frames: the paper's targets are
# near-frontal talking heads. The corpus keeps its turned clips (`ScreenConfig` default).
TARGET_SCREEN = preprocess.ScreenConfig(max_yaw_deg=35.0, max_turned_fraction=0.5)
# A photo must show one face: another one at least half its size (as `ScreenConfig`'s
# `other_face_min_ratio` judges video frames) makes it ambiguous which one should speak.
PHOTO_MAX_FACES = 4  # faces looked for in a photo (enough to count "several")
PHOTO_OTHER_FACE_MIN_RATIO = 0.5


@dataclasses.dataclass(frozen=True)
class TuneOptions:
    """How `personalize` adapts the models to a target.

    Attributes:
      frames: the first this many frames of the video are the tuning frames (paper: 300).
      expression_steps: fine-tune steps of the expression regressor (0 = use it untuned).
      gan_steps: fine-tune steps of the GAN; None = the GAN config's (60 epochs in the paper
        config); 0 = the pretrained generator untuned.
    """

    frames: int = 300
    expression_steps: int = 300
    gan_steps: int | None = None

    def key(self) -> str:
        # "v": `frames` counts the video's own frames for both fine-tunes (before, the
        # expression fine-tune counted them at 25 fps): older cached fine-tunes are not reused.
        return f"f{self.frames}v-e{self.expression_steps}-g{self.gan_steps}"


@dataclasses.dataclass
class Target:
    """A personalised target: its fitted frames, motion pattern and tuned models.

    Attributes:
      video: the target video (or photo) path.
      fps: its frame rate.
      coeffs: `FaceCoeffs` [T] of its frames (identity, albedo and light constant).
      params: [T, 5] crop transforms of the fit's `crop_size` crops.
      crop_size: side of the fitted crops.
      pose: [T, 6] its fitted head pose.
      pattern: [k] motion behaviour pattern, or None (photo mode: no personal motion).
      expression: workdir of the (fine-tuned) expression regressor.
      gan: workdir of the (fine-tuned) generator.
      albedo: [V, 3] per-vertex albedo to render with, or None for the model's low-frequency
        albedo (what the fine-tuned generator was trained on).
      cache: the cache directory of this target ("" for none).
    """

    video: str
    fps: float
    coeffs: object
    params: np.ndarray
    crop_size: int
    pose: np.ndarray
    pattern: np.ndarray | None
    expression: str
    gan: str
    albedo: np.ndarray | None = None
    cache: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.pose.shape[0])

    def frames(self) -> list[np.ndarray]:
        """The target's RGB uint8 frames [H, W, 3] (a photo is one frame)."""
        if self.fps == 0:
            image = images.read_image(self.video)
            return [np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)]
        out = list(tracking.read_frames(self.video, count=self.num_frames))
        if len(out) < self.num_frames:
            raise InputError(f"{self.video}: fewer frames decoded than were fitted")
        return out


def _fit_stage(video: str, out: str, face_model) -> None:
    name = os.path.splitext(os.path.basename(video))[0]
    preprocess.preprocess_video(
        video, out, CLIP_ID, name, name, "train", face_model, screen_config=TARGET_SCREEN
    )
    preprocess.rebuild_manifest(out, fresh=[CLIP_ID])  # the trainers read clips through it


def _read_fit(fit_dir: str, face_model):
    """(coeffs [T], params [T, 5], crop size, fps) of a `_fit_stage` directory."""
    with open(os.path.join(fit_dir, "reports", f"{CLIP_ID}.json")) as f:
        report = json.load(f)
    coeffs, params = coeffs_lib.read_mat(
        os.path.join(fit_dir, "coeffs", f"{CLIP_ID}.mat"), coeffs_lib.Layout.of(face_model)
    )
    return coeffs, params, int(report.get("crop_size", 224)), float(report["fps"])


def fit_target(video: str, cache: str = cache_lib.DEFAULT_CACHE, face_model=None) -> str:
    """Tracks and fits a target video once (cached by content); returns the fit directory."""
    face_model = face_model or default.load_default()
    root = os.path.join(cache, cache_lib.file_hash(video))
    os.makedirs(root, exist_ok=True)
    try:
        return cache_lib.cached(
            os.path.join(root, "fit"), lambda d: _fit_stage(video, d, face_model)
        )
    except BaseException:
        with contextlib.suppress(OSError):  # a rejected video leaves no trace in the cache
            os.rmdir(root)  # only if empty: an earlier stage of this video stays
        raise


def pattern_of_video(
    video: str, models: Models, cache: str = cache_lib.DEFAULT_CACHE, face_model=None
) -> np.ndarray:
    """The motion pattern [k] of another video (a `--pose-style-from` clip); fit cached."""
    face_model = face_model or default.load_default()
    coeffs, _, _, fps = _read_fit(fit_target(video, cache, face_model), face_model)
    return motion.motion_pattern(models, motion.pose_of(coeffs), fps)


def _has_speech(fit_dir: str) -> bool:
    """Whether the fitted target has speech (`fit_target` files a silent video under the
    manifest's `silent_clips`, which the expression fine-tune cannot read)."""
    with open(os.path.join(fit_dir, "manifest.json")) as f:
        return any(c.get("clip_id") == CLIP_ID for c in json.load(f).get("clips", []))


def _tune_expression(models: Models, fit_dir: str, options: TuneOptions, out: str) -> None:
    config = checkpoint.load_workdir_config(models.expression)
    config.finetune.root = fit_dir
    config.finetune.clip_id = CLIP_ID
    config.finetune.init_from = os.path.abspath(models.expression)
    config.finetune.frames = options.frames
    config.finetune.steps = options.expression_steps
    config.finetune.average_from = options.expression_steps // 2
    config.finetune.heldout_frames = 0
    expression_trainer.train(config, out)


def _tune_gan(models: Models, fit_dir: str, options: TuneOptions, out: str) -> None:
    config = checkpoint.load_workdir_config(models.gan)
    size = gan_size(models.gan)
    # The paper fine-tunes on renders coloured with the model's low-frequency albedo.
    clip = gan_pairs.video_pairs(fit_dir, CLIP_ID, size, max_frames=options.frames, albedo="model")
    pairs = os.path.join(out, "pairs")
    gan_pairs.save(pairs, [clip], size)
    config.train.steps = 0
    config.finetune.root = pairs
    config.finetune.clip_id = CLIP_ID
    config.finetune.init_from = os.path.abspath(models.gan)
    config.finetune.frames = options.frames
    if options.gan_steps is not None:
        config.finetune.steps = options.gan_steps
        config.finetune.average_from = options.gan_steps // 2
    gan_trainer.train(config, os.path.join(out, "run"))
    shutil.rmtree(pairs)  # only training reads them; the run keeps its own config


def personalize(
    video: str,
    models: Models,
    cache: str = cache_lib.DEFAULT_CACHE,
    options: TuneOptions = TuneOptions(),
    progress: Progress | None = None,
    face_model=None,
) -> Target:
    """Fits a target video and adapts the models to it; every stage is cached.

    The cache key of each stage is the video's content hash and what the stage depends on
    (the models' contents, the tuning options), so a second speech for the same video reuses
    all of it, and a changed model only redoes what depends on it.

    Raises:
      InputError: an unreadable video, no trackable face, under 4 s. A video without speech
        keeps the general expression model (nothing to fine-tune it on).
    """
    progress = progress or Progress(quiet=True)
    face_model = face_model or default.load_default()
    with progress.stage("fit target video"):
        fit_dir = fit_target(video, cache, face_model)
        coeffs, params, crop_size, fps = _read_fit(fit_dir, face_model)
    pose = motion.pose_of(coeffs)
    if pose.shape[0] < motion.MIN_TARGET_SECONDS * fps:
        raise InputError(
            f"{video} is {pose.shape[0] / fps:.1f} s long; the target video needs at least "
            f"{motion.MIN_TARGET_SECONDS:.0f} s (10-15 s as in the paper)"
        )
    root = os.path.dirname(fit_dir)
    with progress.stage("motion pattern"):
        pattern = motion.motion_pattern(models, pose, fps)
    expression = models.expression
    if options.expression_steps > 0 and not _has_speech(fit_dir):
        progress.write(
            f"{video} has no speech: the general expression model is used (the fine-tune "
            "learns the target's mouth from its own speech)\n"
        )
    elif options.expression_steps > 0:
        with progress.stage("fine-tune expression"):
            key = f"expression-{models.fingerprint('expression')}-{options.key()}"
            expression = cache_lib.cached(
                os.path.join(root, key), lambda d: _tune_expression(models, fit_dir, options, d)
            )
    gan = models.gan
    if options.gan_steps != 0:
        with progress.stage("fine-tune GAN"):
            key = f"gan-{models.fingerprint('gan')}-{options.key()}"
            gan = os.path.join(
                cache_lib.cached(
                    os.path.join(root, key), lambda d: _tune_gan(models, fit_dir, options, d)
                ),
                "run",
            )
    return Target(video, fps, coeffs, params, crop_size, pose, pattern, expression, gan, cache=root)


def personalize_photo(photo: str, models: Models, face_model=None) -> Target:
    """The paper's photo-only input ("Ours-p"): one portrait, no personal head motion.

    The photo is fitted (with its detailed albedo, as the pretrained generator's pairs are
    coloured), the general expression regressor and the pretrained GAN are used untuned.
    """
    face_model = face_model or default.load_default()
    _check_one_face(photo)
    portrait = images.detect_portrait(photo)
    coeffs, albedo, params = reconstruct.fit_portrait(face_model, portrait.image, portrait.points)
    batched = jax.tree.map(lambda x: np.asarray(x)[None], coeffs)
    return Target(
        photo, 0.0, batched, np.asarray(params)[None], 224, motion.pose_of(batched), None,
        models.expression, models.gan, albedo=albedo,
    )  # fmt: skip


def _check_one_face(photo: str) -> None:
    """InputError unless the photo shows exactly one face (`PHOTO_OTHER_FACE_MIN_RATIO`)."""
    rgb = np.clip(images.read_image(photo) * 255 + 0.5, 0, 255).astype(np.uint8)
    with tracking.face_mesh(static=True, max_faces=PHOTO_MAX_FACES) as mesh:
        faces = tracking.detect_faces(mesh, rgb)
    if not faces:
        raise InputError(f"no face found in {photo}; the photo needs one face")
    sizes = preprocess.face_sizes(np.stack([f[:, :2] for f in faces]), np.ones(len(faces), bool))
    count = int(np.sum(sizes >= PHOTO_OTHER_FACE_MIN_RATIO * sizes.max()))
    if count > 1:
        more = "or more " if count == PHOTO_MAX_FACES else ""
        raise InputError(
            f"{photo} shows {count} {more}faces; the photo needs one face (crop it to the one "
            "who should speak)"
        )
