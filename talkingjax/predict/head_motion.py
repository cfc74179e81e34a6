"""The trained head motion model (paper 000's E_m + D_m) as calls: pattern of a pose clip,
pose for any speech.

Both calls are jit-compiled. Inputs are padded up to length buckets (masked inside the
models, so results equal the unpadded ones) and compiled functions are cached per bucket:
a new audio length reuses a compiled function instead of recompiling.

    predictor = HeadMotionPredictor.from_workdir(workdir)
    x = predictor.encode_pattern(reference_pose, fps=30)          # [k]
    pose = predictor.predict_pose(audio.load_audio("speech.wav"), x, fps=30)   # [F, 6]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax import audio
from talkingjax.data import records
from talkingjax.errors import InputError
from talkingjax.models import HeadMotionModel, build_model, rows_for_frames
from talkingjax.train import head_motion as trainer
from talkingjax.train import runner

BUCKET_SECONDS = 10.0


def _bucket(n: int, size: int) -> int:
    return max(size, -(-n // size) * size)


def min_pattern_seconds_of(config) -> float:
    """The shortest reference clip a trained model encodes: `records.MIN_CLIP_SECONDS`, or
    less when it trained on shorter windows (`data.window_seconds`) or is evaluated with a
    shorter reference part (`eval.reference_seconds`), e.g. the real-data variant's 3 s."""
    seconds = [records.MIN_CLIP_SECONDS, float(config.data.window_seconds)]
    if "eval" in config and "reference_seconds" in config.eval:
        seconds.append(float(config.eval.reference_seconds))
    return min(seconds)


class HeadMotionPredictor:
    """A trained E_m + D_m with bucketed, jit-compiled encode and predict calls."""

    def __init__(
        self,
        model: HeadMotionModel,
        variables,
        fps: float,
        bucket_seconds: float = BUCKET_SECONDS,
        min_pattern_seconds: float = records.MIN_CLIP_SECONDS,
    ):
        self.model = model
        # The shortest pose clip `encode_patterns` takes (a model trained on short windows
        # takes patterns of them: `min_pattern_seconds_of`).
        self.min_pattern_seconds = float(min_pattern_seconds)
        self.variables = variables
        self.fps = fps
        self.stride = model.decoder.rows_per_frame
        self.bucket_frames = int(round(bucket_seconds * fps))
        self.pattern_dim = model.encoder.pattern_dim
        self._encode = jax.jit(functools.partial(model.apply, method=HeadMotionModel.encode))
        self._decode = jax.jit(functools.partial(model.apply, method=HeadMotionModel.decode))

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> HeadMotionPredictor:
        """Loads the latest (or given) checkpoint of a `train_pose` workdir."""
        config, variables = runner.load_variables(trainer.TRAINER, workdir, step)
        return cls(
            build_model(config.model),
            variables,
            config.model.fps,
            min_pattern_seconds=min_pattern_seconds_of(config),
        )

    def encode_patterns(self, poses: list[np.ndarray], fps: float) -> np.ndarray:
        """Motion behaviour patterns of pose clips.

        Args:
          poses: list of [T_i, 6] clips (any lengths of at least `min_pattern_seconds`, 4 s
            unless the model was trained on shorter windows; no NaNs).
          fps: frame rate of the clips (resampled to the model's by time).

        Returns:
          [N, k] patterns.
        """
        clips = [
            records.resample_pose(
                records.check_pose(p, fps, min_seconds=self.min_pattern_seconds), fps, self.fps
            )
            for p in poses
        ]
        length = _bucket(max(c.shape[0] for c in clips), self.bucket_frames)
        batch = np.zeros((len(clips), length, records.POSE_DIM), np.float32)
        for i, c in enumerate(clips):
            batch[i, : c.shape[0]] = c
        lengths = np.array([c.shape[0] for c in clips], np.int32)
        return np.asarray(self._encode(self.variables, batch, lengths))

    def encode_pattern(self, pose: np.ndarray, fps: float) -> np.ndarray:
        """Pattern [k] of one [T, 6] pose clip at `fps`."""
        return self.encode_patterns([pose], fps)[0]

    def predict_from_features(
        self, features: np.ndarray, patterns: np.ndarray, num_frames: int | None = None
    ) -> np.ndarray:
        """Pose at the model fps from `speech_features` rows.

        Args:
          features: [R, 13] rows from `audio.speech_features` (or a slice starting at the
            first window row of some frame).
          patterns: [k] or [P, k].
          num_frames: frames to predict; defaults to all with a full window.

        Returns:
          [F, 6] for one pattern, [P, F, 6] for several.
        """
        patterns = np.asarray(patterns, np.float32)
        single = patterns.ndim == 1
        patterns = patterns.reshape(-1, self.pattern_dim)
        row0 = int(audio.window_starts(1, self.fps)[0])
        features = features[row0:]
        available = (features.shape[0] - audio.WINDOW_ROWS) // self.stride + 1
        frames = available if num_frames is None else num_frames
        if frames < 1 or frames > available:
            raise InputError(f"audio covers {max(available, 0)} frames, {frames} requested")
        padded_frames = _bucket(frames, self.bucket_frames)
        rows = np.zeros(
            (1, rows_for_frames(padded_frames, self.stride), audio.NUM_CEPSTRA), np.float32
        )
        used = min(features.shape[0], rows.shape[1])
        rows[0, :used] = features[:used]
        pose = self._decode(
            self.variables,
            jnp.asarray(rows),
            jnp.asarray(patterns[None]),
            num_frames=jnp.array([frames], jnp.int32),
        )
        pose = np.asarray(pose[0, :, :frames])
        return pose[0] if single else pose

    def predict_pose(
        self, wave: np.ndarray, pattern: np.ndarray, fps: float | None = None
    ) -> np.ndarray:
        """Pose for 16 kHz speech and a pattern, at `fps` (default: the model's).

        Returns:
          [floor(duration * fps), 6] (or [P, ..., 6] for [P, k] patterns).
        """
        wave = audio.check_audio(np.asarray(wave, np.float32))
        fps = fps or self.fps
        seconds = wave.size / audio.SAMPLE_RATE
        model_frames = audio.num_video_frames(seconds, self.fps)
        pose = self.predict_from_features(audio.speech_features(wave), pattern, model_frames)
        if fps == self.fps:
            return pose
        out_frames = audio.num_video_frames(seconds, fps)
        resample = lambda p: records.resample_pose(p, self.fps, fps)  # noqa: E731
        out = resample(pose) if pose.ndim == 2 else np.stack([resample(p) for p in pose])
        # Interpolation can end one frame short of the audio; hold the last pose.
        pad = out_frames - out.shape[-2]
        if pad > 0:
            out = np.concatenate([out, np.repeat(out[..., -1:, :], pad, axis=-2)], axis=-2)
        return out[..., :out_frames, :]
