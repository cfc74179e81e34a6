"""End-to-end generation (paper 000, Fig. 1): speech + a short video of a target -> a video of
the target saying that speech, moving the head the way the target does.

    from talkingjax import audio

    from talkingjax.generate import pipeline
    models = pipeline.Models.default()      # or Models(pose=..., expression=..., gan=...)
    target = pipeline.personalize("target.mp4", models)  # fits + pattern + fine-tunes, cached
    result = pipeline.generate(audio.load_audio("speech.wav"), target, models, "out.mp4")

Stages, each a library call the CLI (`python -m experiments.generate`) only strings together:

1. `personalize` (once per target video, cached by the video's content hash and the models):
   the video is tracked and fitted (`data.preprocess.preprocess_video`: 3DMM coefficients and
   crop transforms of every frame, plus a record with its speech), the motion encoder turns
   its head pose into the 16-d motion behaviour pattern (Sec. III), the audio-to-expression
   regressor is fine-tuned on its first 300 frames (paper 001 personalises it so), and the
   rendering-to-realistic GAN is fine-tuned on the same frames (Sec. IV-B3), coloured with
   the model's low-frequency albedo as the paper fine-tunes.
2. `generate`: head pose from the speech and the pattern (decoder D_m), expression from the
   speech (the fine-tuned regressor), background matching (Sec. IV-B2, `generate.background`:
   keyframes of the predicted pose matched to frames of the video, the background index
   interpolated between them, the pose adjusted to its background), rendering with the
   target's identity, albedo and lighting, the GAN over windows of three rendered frames,
   paste-back into the full background frames (`talkingjax.generate.paste`), and an mp4 with the
   speech as its audio track. Frames are made and written in chunks, so speech of any length
   (an hour and more) streams through with bounded memory.

The photo-only mode of the paper ("Ours-p", Sec. V) is `personalize_photo`: no personal head
motion (the photo's pose is kept), the general expression model, the pretrained GAN.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from talkingjax import audio
from talkingjax.errors import InputError
from talkingjax.generate import background, paste

DEFAULT_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "models")
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "talkingjax")
CLIP_ID = "target"
MIN_TARGET_SECONDS = 4.0  # the motion encoder needs at least this much pose
# Predictions run over the speech in pieces of this many seconds, overlapping by
# `_OVERLAP_SECONDS` and cross-faded there: an hour of speech never enters a model at once.
_PIECE_SECONDS = 60.0
_OVERLAP_SECONDS = 2.0


# ------------------------------------------------------------------------------ progress


class Progress:
    """Stage lines with their times, and a frame bar for the long stage (to stderr).

    `quiet=True` prints nothing (library use); `stage` is a context manager:

        with progress.stage("fit target video"):
            ...
    """

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.times: dict[str, float] = {}
        self._bar_last = -np.inf

    def _write(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    class _Stage:
        def __init__(self, progress: Progress, name: str):
            self.progress, self.name = progress, name

        def __enter__(self):
            self.start = time.perf_counter()
            self.progress._write(f"[{self.name}] ...\n")
            return self

        def __exit__(self, exc_type, exc, tb):
            seconds = time.perf_counter() - self.start
            self.progress.times[self.name] = self.progress.times.get(self.name, 0.0) + seconds
            if exc_type is None:
                self.progress._write(f"[{self.name}] done in {seconds:.1f} s\n")

    def stage(self, name: str) -> Progress._Stage:
        return Progress._Stage(self, name)

    def bar(self, name: str, done: int, total: int, start: float) -> None:
        """`name [#####.....] done/total frames elapsed s, eta s` (throttled off a tty)."""
        now = time.perf_counter()
        if not (self.tty or now - self._bar_last >= 5.0 or done == total):
            return
        self._bar_last = now
        elapsed = now - start
        eta = elapsed / done * (total - done) if done else float("nan")
        filled = int(30 * done / max(total, 1))
        line = (
            f"{name} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} frames "
            f"{elapsed:.0f} s, eta {eta:.0f} s"
        )
        self._write(("\r" + line + ("\n" if done == total else "")) if self.tty else line + "\n")


# -------------------------------------------------------------------------------- models


def _workdir_fingerprint(workdir: str) -> str:
    """Content hash of a workdir's config and latest checkpoint (what a cache depends on)."""
    h = hashlib.sha256()
    config = os.path.join(workdir, "config.json")
    ckpt = os.path.join(workdir, "checkpoints")
    if not os.path.isfile(config) or not os.path.isdir(ckpt):
        raise InputError(f"{workdir} is not a trained workdir (config.json, checkpoints/)")
    steps = [d for d in os.listdir(ckpt) if d.isdigit()]
    if not steps:
        raise InputError(f"{workdir} has no checkpoint")
    latest = os.path.join(ckpt, max(steps, key=int))
    for path in [config] + sorted(
        os.path.join(r, f) for r, _, fs in os.walk(latest) for f in fs
    ):  # fmt: skip
        h.update(os.path.relpath(path, workdir).encode())
        _hash_file(h, path)
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Models:
    """The three trained parts, as workdirs of the library's trainers.

    Attributes:
      pose: a `train_pose` workdir (paper 000's motion encoder E_m and decoder D_m).
      expression: a general `train_expression` workdir (fine-tuned per target).
      gan: a pretrained `train_gan` workdir (fine-tuned per target).
    """

    pose: str
    expression: str
    gan: str

    @classmethod
    def default(cls) -> Models:
        """The small models shipped in `talkingjax/assets/models` (see its README)."""
        return cls(*(os.path.join(DEFAULT_MODELS, n) for n in ("pose", "expression", "gan")))

    @classmethod
    def with_defaults(
        cls, pose: str | None = None, expression: str | None = None, gan: str | None = None
    ) -> Models:
        """The given workdirs, the shipped models for the parts not given."""
        default = cls.default()
        return cls(pose or default.pose, expression or default.expression, gan or default.gan)

    def fingerprint(self, *parts: str) -> str:
        """Hash of the named parts' contents (default all three)."""
        h = hashlib.sha256()
        for name in parts or ("pose", "expression", "gan"):
            h.update(_workdir_fingerprint(getattr(self, name)).encode())
        return h.hexdigest()[:16]


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
        return f"f{self.frames}-e{self.expression_steps}-g{self.gan_steps}"


# -------------------------------------------------------------------------------- caching


def file_hash(path: str) -> str:
    """SHA-256 (first 16 hex digits) of a file's content."""
    h = hashlib.sha256()
    try:
        _hash_file(h, path)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    return h.hexdigest()[:16]


def _hash_file(h, path: str) -> None:
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)


def _cached(path: str, build: Callable[[str], None]) -> str:
    """`path` if it exists, else `build(tmp)` into a temporary sibling renamed to `path`.

    A directory at `path` is therefore always complete: an interrupted build leaves only its
    temporary directory, which the next attempt removes.
    """
    if os.path.exists(path):
        return path
    tmp = f"{path}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        build(tmp)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# -------------------------------------------------------------------------------- targets


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
        from talkingjax.face3d import build_default
        from talkingjax.video import tracking

        if self.fps == 0:
            image = build_default.read_image(self.video)
            return [np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)]
        out = list(tracking.read_frames(self.video, count=self.num_frames))
        if len(out) < self.num_frames:
            raise InputError(f"{self.video}: fewer frames decoded than were fitted")
        return out


def _fit_stage(video: str, out: str, face_model) -> None:
    from talkingjax.data import preprocess

    name = os.path.splitext(os.path.basename(video))[0]
    preprocess.preprocess_video(video, out, CLIP_ID, name, name, "train", face_model)
    preprocess.rebuild_manifest(out, fresh=[CLIP_ID])  # the trainers read clips through it


def _read_fit(fit_dir: str, face_model):
    """(coeffs [T], params [T, 5], crop size, fps) of a `_fit_stage` directory."""
    from talkingjax.face3d import coeffs as coeffs_lib

    with open(os.path.join(fit_dir, "reports", f"{CLIP_ID}.json")) as f:
        report = json.load(f)
    coeffs, params = coeffs_lib.read_mat(
        os.path.join(fit_dir, "coeffs", f"{CLIP_ID}.mat"), coeffs_lib.Layout.of(face_model)
    )
    return coeffs, params, int(report.get("crop_size", 224)), float(report["fps"])


def fit_target(video: str, cache: str = DEFAULT_CACHE, face_model=None) -> str:
    """Tracks and fits a target video once (cached by content); returns the fit directory."""
    from talkingjax.face3d import default

    face_model = face_model or default.load_default()
    root = os.path.join(cache, file_hash(video))
    os.makedirs(root, exist_ok=True)
    return _cached(os.path.join(root, "fit"), lambda d: _fit_stage(video, d, face_model))


def pattern_of_video(
    video: str, models: Models, cache: str = DEFAULT_CACHE, face_model=None
) -> np.ndarray:
    """The motion pattern [k] of another video (a `--pose-style-from` clip); fit cached."""
    from talkingjax.face3d import default

    face_model = face_model or default.load_default()
    coeffs, _, _, fps = _read_fit(fit_target(video, cache, face_model), face_model)
    return motion_pattern(models, _pose_of(coeffs), fps)


def _pose_of(coeffs) -> np.ndarray:
    return np.concatenate([np.asarray(coeffs.angles), np.asarray(coeffs.trans)], -1).astype(
        np.float32
    )


@functools.lru_cache(maxsize=4)
def _pose_predictor(workdir: str):
    """One restored head-motion model per workdir and process (pattern and pose both use it)."""
    from talkingjax.predict import head_motion as head_motion_predict

    return head_motion_predict.HeadMotionPredictor.from_workdir(workdir)


@functools.lru_cache(maxsize=4)
def _expression_predictor(workdir: str):
    from talkingjax.evaluation import expression as expression_eval

    return expression_eval.ExpressionPredictor.from_workdir(workdir)


def motion_pattern(
    models: Models, pose: np.ndarray, fps: float, seed: int = 0
) -> np.ndarray:  # fmt: skip
    """The motion behaviour pattern [k] of a pose clip [T, 6].

    seed 0 encodes the whole clip. Another seed encodes a random stretch of at least 60 % of
    it (and at least `MIN_TARGET_SECONDS`): a pattern of the same person's motion seen
    through another window, i.e. another plausible motion for the same speech -- the
    one-to-many mapping the pattern resolves (paper 000 Sec. III).
    """
    predictor = _pose_predictor(models.pose)
    if seed:
        rng = np.random.default_rng(seed)
        n = pose.shape[0]
        length = min(n, max(int(0.6 * n), int(np.ceil(MIN_TARGET_SECONDS * fps))))
        start = int(rng.integers(0, n - length + 1))
        pose = pose[start : start + length]
    return predictor.encode_pattern(pose, fps)


def _tune_expression(models: Models, fit_dir: str, options: TuneOptions, out: str) -> None:
    from talkingjax.train import checkpoint
    from talkingjax.train import expression as trainer

    config = checkpoint.load_workdir_config(models.expression)
    config.finetune.root = fit_dir
    config.finetune.clip_id = CLIP_ID
    config.finetune.init_from = os.path.abspath(models.expression)
    config.finetune.frames = options.frames
    config.finetune.steps = options.expression_steps
    config.finetune.average_from = options.expression_steps // 2
    config.finetune.heldout_frames = 0
    trainer.train(config, out)


def _tune_gan(models: Models, fit_dir: str, options: TuneOptions, out: str) -> None:
    from talkingjax.data import gan_pairs
    from talkingjax.train import checkpoint
    from talkingjax.train import gan as trainer

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
    trainer.train(config, os.path.join(out, "run"))
    shutil.rmtree(pairs)  # only training reads them; the run keeps its own config


def personalize(
    video: str,
    models: Models,
    cache: str = DEFAULT_CACHE,
    options: TuneOptions = TuneOptions(),
    progress: Progress | None = None,
    face_model=None,
) -> Target:
    """Fits a target video and adapts the models to it; every stage is cached.

    The cache key of each stage is the video's content hash and what the stage depends on
    (the models' contents, the tuning options), so a second speech for the same video reuses
    all of it, and a changed model only redoes what depends on it.

    Raises:
      InputError: an unreadable video, no trackable face, no audio track, under 4 s.
    """
    from talkingjax.face3d import default

    progress = progress or Progress(quiet=True)
    face_model = face_model or default.load_default()
    with progress.stage("fit target video"):
        fit_dir = fit_target(video, cache, face_model)
        coeffs, params, crop_size, fps = _read_fit(fit_dir, face_model)
    pose = _pose_of(coeffs)
    if pose.shape[0] < MIN_TARGET_SECONDS * fps:
        raise InputError(
            f"{video} is {pose.shape[0] / fps:.1f} s long; the target video needs at least "
            f"{MIN_TARGET_SECONDS:.0f} s (10-15 s as in the paper)"
        )
    root = os.path.dirname(fit_dir)
    with progress.stage("motion pattern"):
        pattern = motion_pattern(models, pose, fps)
    expression = models.expression
    if options.expression_steps > 0:
        with progress.stage("fine-tune expression"):
            key = f"expression-{models.fingerprint('expression')}-{options.key()}"
            expression = _cached(
                os.path.join(root, key), lambda d: _tune_expression(models, fit_dir, options, d)
            )
    gan = models.gan
    if options.gan_steps != 0:
        with progress.stage("fine-tune GAN"):
            key = f"gan-{models.fingerprint('gan')}-{options.key()}"
            gan = os.path.join(
                _cached(os.path.join(root, key), lambda d: _tune_gan(models, fit_dir, options, d)),
                "run",
            )
    return Target(video, fps, coeffs, params, crop_size, pose, pattern, expression, gan, cache=root)


def personalize_photo(photo: str, models: Models, face_model=None) -> Target:
    """The paper's photo-only input ("Ours-p"): one portrait, no personal head motion.

    The photo is fitted (with its detailed albedo, as the pretrained generator's pairs are
    coloured), the general expression regressor and the pretrained GAN are used untuned.
    """
    import jax

    from talkingjax.face3d import build_default, default
    from talkingjax.video import reconstruct

    face_model = face_model or default.load_default()
    portrait = build_default.detect_portrait(photo)
    coeffs, albedo, params = reconstruct.fit_portrait(face_model, portrait.image, portrait.points)
    batched = jax.tree.map(lambda x: np.asarray(x)[None], coeffs)
    return Target(
        photo, 0.0, batched, np.asarray(params)[None], 224, _pose_of(batched), None,
        models.expression, models.gan, albedo=albedo,
    )  # fmt: skip


def gan_size(workdir: str) -> int:
    """Side in pixels of the frames a `train_gan` workdir's generator refines."""
    from talkingjax.train import checkpoint

    return int(checkpoint.load_workdir_config(workdir).model.size)


# ------------------------------------------------------------------------------ prediction


def _pieces(num_frames: int, fps: float) -> Iterator[tuple[int, int]]:
    """Overlapping [start, end) frame ranges covering num_frames (one range if short)."""
    piece = int(_PIECE_SECONDS * fps)
    step = piece - int(_OVERLAP_SECONDS * fps)
    start = 0
    while True:
        end = min(start + piece, num_frames)
        yield start, end
        if end == num_frames:
            return
        start += step


def _stitch(num_frames: int, fps: float, predict: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Predictions of `predict(start, end)` over `_pieces`, linearly cross-faded where they
    overlap (each piece starts its recurrent state afresh; the fade hides the restart)."""
    out = None
    for start, end in _pieces(num_frames, fps):
        y = np.asarray(predict(start, end), np.float32)
        if out is None:
            out = np.zeros((num_frames, *y.shape[1:]), np.float32)
            out[start:end] = y
            done = end
            continue
        overlap = done - start
        w = np.linspace(0.0, 1.0, overlap + 2)[1:-1].reshape(-1, *([1] * (y.ndim - 1)))
        out[start:done] = (1 - w) * out[start:done] + w * y[:overlap]
        out[done:end] = y[overlap:]
        done = end
    return out


def predict_pose(
    models: Models, wave: np.ndarray, pattern: np.ndarray, fps: float, num_frames: int
) -> np.ndarray:
    """[num_frames, 6] head pose at `fps` for 16 kHz speech and a pattern (decoder D_m)."""
    from talkingjax.data import records

    predictor = _pose_predictor(models.pose)
    feats = audio.speech_features(wave)
    model_frames = audio.frames_in_features(feats.shape[0], predictor.fps)
    row_starts = audio.window_starts(model_frames, predictor.fps)

    def piece(start: int, end: int) -> np.ndarray:
        rows = feats[row_starts[start] - row_starts[0] :]
        return predictor.predict_from_features(rows, pattern, end - start)

    pose = _stitch(model_frames, predictor.fps, piece)
    pose = records.resample_pose(pose, predictor.fps, fps)
    return _fit_length(pose, num_frames)


def _fit_length(x: np.ndarray, num_frames: int) -> np.ndarray:
    """Trims, or repeats the last row (resampling can end a frame short), to num_frames."""
    if x.shape[0] < num_frames:
        x = np.concatenate([x, np.repeat(x[-1:], num_frames - x.shape[0], 0)])
    return x[:num_frames]


def predict_expression(workdir: str, wave: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """[num_frames, K] expression coefficients at `fps` for 16 kHz speech."""
    from talkingjax.data import records
    from talkingjax.models.expression import expression_windows

    predictor = _expression_predictor(workdir)
    feats = audio.speech_features(wave)
    model_frames = audio.frames_in_features(feats.shape[0], predictor.fps)
    windows = expression_windows(feats, predictor.fps, model_frames)
    exp = _stitch(
        model_frames,
        predictor.fps,
        lambda a, b: predictor.predict_windows(windows[a:b])["exp"],
    )
    return _fit_length(records.resample_pose(exp, predictor.fps, fps), num_frames)


# ------------------------------------------------------------------------------ generation


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
      blend: weight of the background frame's angles in the final pose (`adjust_pose`).
      paste: "poisson" or "feather" (`talkingjax.generate.paste`).
      chunk: frames rendered, refined and written at a time.
      ensemble_shift: the generator's test-time self-ensemble (`gan.Refiner`; beyond the
        paper): -1 = one pass; 0 = mean with the mirrored pass; s > 0 = mirror and shifts by
        s px (18 passes: closer to the real frames in PSNR and SSIM, 18x the time).
    """

    pattern: np.ndarray | None = None
    pose_scale: float = 1.0
    still: bool = False
    seed: int = 0
    blend: float = 1.0
    paste: str = "poisson"
    chunk: int = 100
    ensemble_shift: int = -1


@dataclasses.dataclass
class Result:
    """What `generate` made.

    Attributes:
      path: the mp4.
      num_frames: frames written.
      fps: their rate.
      predicted_pose: [F, 6] pose from the speech (after `pose_scale`), before matching.
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


def check_controls(controls: Controls) -> None:
    """Fails early (before any work) on controls `generate` cannot use."""
    if not np.isfinite(controls.pose_scale) or controls.pose_scale < 0:
        raise InputError(f"pose scale must be a finite number >= 0, got {controls.pose_scale}")
    if controls.paste not in paste.MODES:
        raise InputError(f"paste mode must be one of {paste.MODES}, got {controls.paste!r}")
    if controls.chunk < 1:
        raise InputError(f"chunk must be >= 1 frame, got {controls.chunk}")
    if controls.ensemble_shift < -1:
        raise InputError(
            f"GAN self-ensemble shift must be -1 (off), 0 (mirror) or more, got "
            f"{controls.ensemble_shift}"
        )


def check_output(path: str) -> None:
    """Fails early (before any work) if `path` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise InputError(f"output directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"output directory {folder} is not writable")
    if os.path.isdir(path):
        raise InputError(f"output path {path} is a directory")


def _most_frontal(pose: np.ndarray) -> int:
    return int(np.argmin(np.sum(pose[:, :3] ** 2, axis=1)))


def plan_motion(
    target: Target, predicted: np.ndarray, controls: Controls
) -> background.BackgroundPlan:
    """Background matching of a predicted pose [F, 6] against the target's frames."""
    if controls.still or target.num_frames == 1:
        f = predicted.shape[0]
        ref = _most_frontal(target.pose)
        idx = np.full(f, ref, np.int64)
        return background.BackgroundPlan(
            1,
            np.array([0, f - 1]),
            np.array([ref, ref]),
            idx,
            np.repeat(target.pose[ref : ref + 1], f, 0),
        )
    return background.match(predicted, target.pose, blend=controls.blend)


def _hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a face mask: the face mesh has holes at the eyes and the
    mouth, where the generator paints eyes and teeth that must be pasted too."""
    points = cv2.findNonZero((mask > 127).astype(np.uint8))
    out = np.zeros_like(mask)
    if points is not None:
        cv2.fillConvexPoly(out, cv2.convexHull(points), 255)
    return out


class _Frames:
    """Renders, refines and pastes output frames chunk by chunk."""

    def __init__(self, target: Target, refiner, face_model, controls: Controls):
        from talkingjax.data import gan_pairs

        self.target, self.refiner, self.model = target, refiner, face_model
        self.controls = controls
        self.size = refiner.size
        self.params = gan_pairs.scaled_transform(target.params, target.crop_size, self.size)
        self.history: list[np.ndarray] = []  # the last two composed frames (window t-2, t-1)

    def chunk(
        self, exp: np.ndarray, pose: np.ndarray, idx: np.ndarray, frames: list[np.ndarray]
    ) -> np.ndarray:
        """Output frames [N, H, W, 3] uint8 of N consecutive frames."""
        import jax

        from talkingjax.data import gan_pairs
        from talkingjax.face3d import fit as fit_lib

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
        render, mask = gan_pairs.render_frames(self.model, coeffs, s, self.target.albedo)
        back = np.stack([fit_lib.apply_crop(frames[i], self.params[i], (s, s)) for i in idx])
        composed = gan_pairs.compose(render, mask, back) * 2.0 - 1.0  # [N, S, S, 3]
        seq = self.history + list(composed)
        if not self.history:  # the first frame repeats, as at the start of training clips
            seq = [composed[0], composed[0]] + seq
        windows = np.stack([np.concatenate(seq[k : k + 3], axis=-1) for k in range(n)]).astype(
            np.float32
        )
        self.history = seq[-2:]
        refined = self.refiner(windows)["image"]
        crops = np.clip((refined + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return np.stack(
            [
                paste.paste_crop(
                    frames[i], crops[k], _hull(mask[k]), self.params[i], mode=self.controls.paste
                )
                for k, i in enumerate(idx)
            ]
        )


def generate(
    wave: np.ndarray,
    target: Target,
    models: Models,
    out_path: str,
    controls: Controls = Controls(),
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
      controls: pattern, pose scale, still, seed, background blend, paste mode.
      side_by_side: also write this mp4: the target video (looped) | the output.

    Raises:
      InputError: bad speech, bad controls, an unwritable output. Nothing is left at the
        output paths when anything fails.
    """
    from talkingjax import visualize
    from talkingjax.face3d import default
    from talkingjax.train import gan as gan_trainer

    progress = progress or Progress(quiet=True)
    check_controls(controls)
    for path in filter(None, (out_path, side_by_side)):
        check_output(path)
    wave = audio.check_audio(np.asarray(wave, np.float32))
    face_model = face_model or default.load_default()
    fps = target.fps or 25.0
    num_frames = audio.num_video_frames(wave.size / audio.SAMPLE_RATE, fps)

    with progress.stage("predict pose and expression"):
        if controls.still or target.pattern is None:
            predicted = np.repeat(target.pose[_most_frontal(target.pose)][None], num_frames, 0)
        else:
            pattern = controls.pattern
            if pattern is None:
                pattern = (
                    motion_pattern(models, target.pose, fps, controls.seed)
                    if controls.seed
                    else target.pattern
                )
            predicted = predict_pose(models, wave, pattern, fps, num_frames)
            mean = predicted.mean(axis=0)
            predicted = (mean + controls.pose_scale * (predicted - mean)).astype(np.float32)
        exp = predict_expression(target.expression, wave, fps, num_frames)
    with progress.stage("background matching"):
        plan = plan_motion(target, predicted, controls)

    with progress.stage("render, refine, paste, write"):
        refiner = gan_trainer.Refiner.from_workdir(
            target.gan, ensemble_shift=controls.ensemble_shift
        )
        maker = _Frames(target, refiner, face_model, controls)
        # The target is short (10-15 s): its frames are decoded once and kept.
        frames = target.frames()
        writers = [visualize.VideoWriter(out_path, fps, wave)]
        if side_by_side:
            writers.append(visualize.VideoWriter(side_by_side, fps, wave))
        start = time.perf_counter()
        try:
            for a in range(0, num_frames, controls.chunk):
                b = min(a + controls.chunk, num_frames)
                out = maker.chunk(exp[a:b], plan.pose[a:b], plan.indices[a:b], frames)
                writers[0].write(out)
                if side_by_side:
                    left = np.stack([frames[t % len(frames)] for t in range(a, b)])
                    writers[1].write(_side_by_side(left, out))
                progress.bar("frames", b, num_frames, start)
            for w in writers:
                w.close()
        except BaseException:
            for w in writers:
                w.abort()
            raise
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
