"""Face motion from speech: the motion pattern, head pose and expression, predicted in pieces.

- `motion_pattern`: a pose clip [T, 6] -> the 16-d motion behaviour pattern of the motion
  encoder E_m (paper 000 Sec. III); another seed encodes another stretch of the clip.
- `predict_pose`: speech + pattern -> head pose [F, 6] at the video's frame rate (decoder D_m).
- `about_rest`: a predicted pose moved to the target's rest orientation and scaled about it.
- `predict_expression`: speech -> expression coefficients [F, K] (the audio-to-expression
  regressor, general or fine-tuned by `talkingjax.generation.personalization`).

Both predictions run over the speech in pieces of `_PIECE_SECONDS`, overlapping by
`_OVERLAP_SECONDS` and linearly cross-faded there (`_stitch`): an hour of speech never enters
a model at once, and each piece's restarted recurrent state is hidden by the fade. The
restored predictors (`talkingjax.predict`) are kept per workdir and process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np

from talkingjax import audio, predict
from talkingjax.data import records
from talkingjax.generation.models import Models
from talkingjax.models.expression import expression_windows

MIN_TARGET_SECONDS = 4.0  # the motion encoder needs at least this much pose
# Predictions run over the speech in pieces of this many seconds, overlapping by
# `_OVERLAP_SECONDS` and cross-faded there: an hour of speech never enters a model at once.
_PIECE_SECONDS = 60.0
# Speech played backwards before the speech itself, so the pose decoder's recurrent state has
# settled by the first frame (`predict_pose`).
LEAD_SECONDS = 1.0
_OVERLAP_SECONDS = 2.0


@functools.lru_cache(maxsize=4)
def _pose_predictor(workdir: str) -> predict.HeadMotionPredictor:
    """One restored head-motion model per workdir and process (pattern and pose both use it)."""
    return predict.HeadMotionPredictor.from_workdir(workdir)


@functools.lru_cache(maxsize=4)
def _expression_predictor(workdir: str) -> predict.ExpressionPredictor:
    return predict.ExpressionPredictor.from_workdir(workdir)


def pose_of(coeffs) -> np.ndarray:
    """[T, 6] head pose (pitch, yaw, roll radians; tx, ty, tz) of `FaceCoeffs` [T]."""
    return np.concatenate([np.asarray(coeffs.angles), np.asarray(coeffs.trans)], -1).astype(
        np.float32
    )


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


def _stitch(num_frames: int, fps: float, piece: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Predictions `piece(start, end)` over `_pieces`, linearly cross-faded where they overlap
    (each piece starts its recurrent state afresh; the fade hides the restart)."""
    out = None
    for start, end in _pieces(num_frames, fps):
        y = np.asarray(piece(start, end), np.float32)
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


def _fit_length(x: np.ndarray, num_frames: int) -> np.ndarray:
    """Trims, or repeats the last row (resampling can end a frame short), to num_frames."""
    if x.shape[0] < num_frames:
        x = np.concatenate([x, np.repeat(x[-1:], num_frames - x.shape[0], 0)])
    return x[:num_frames]


def predict_pose(
    models: Models, wave: np.ndarray, pattern: np.ndarray, fps: float, num_frames: int
) -> np.ndarray:
    """[num_frames, 6] head pose at `fps` for 16 kHz speech and a pattern (decoder D_m).

    The decoder's LSTM starts from a zero state, and its first frames jump to where the speech
    takes it (7.4 degrees between frames 0 and 1 on the real acceptance pair, settled after
    ~5 frames): the speech is led in by `LEAD_SECONDS` of itself played backwards (speech-like
    input, continuous with the first sample), whose frames are predicted and dropped.
    """
    predictor = _pose_predictor(models.pose)
    lead = min(int(LEAD_SECONDS * audio.SAMPLE_RATE), wave.size)
    lead_frames = int(round(lead / audio.SAMPLE_RATE * fps))
    wave = np.concatenate([wave[:lead][::-1], wave])
    num_frames += lead_frames
    feats = audio.speech_features(wave)
    model_frames = audio.frames_in_features(feats.shape[0], predictor.fps)
    row_starts = audio.window_starts(model_frames, predictor.fps)

    def piece(start: int, end: int) -> np.ndarray:
        rows = feats[row_starts[start] - row_starts[0] :]
        return predictor.predict_from_features(rows, pattern, end - start)

    pose = _stitch(model_frames, predictor.fps, piece)
    pose = records.resample_pose(pose, predictor.fps, fps)
    return _fit_length(pose, num_frames)[lead_frames:]


def about_rest(predicted: np.ndarray, target_pose: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """A predicted pose [F, 6] moved to the target's rest orientation and scaled about it.

    The head angles keep the prediction's motion about its mean, scaled by `scale`
    (`Controls.pose_scale`), around the mean angles of the target video's pose [T, 6]; the
    translation is scaled about its own mean (the background's replaces it,
    `background.adjust_pose`). Beyond the paper: the decoder's mean orientation can sit
    degrees away from the target's (on the embedded default 10.6 degrees of pitch), and a head
    turned to the rendered pose (`talkingjax.generation.warp`) must stay near the pose its
    real frames show; the motion, what the pattern personalises, is the prediction's.
    """
    predicted = np.asarray(predicted, np.float32)
    mean = predicted.mean(axis=0)
    rest = mean.copy()
    rest[:3] = np.asarray(target_pose, np.float32)[:, :3].mean(axis=0)
    return (rest + scale * (predicted - mean)).astype(np.float32)


def predict_expression(workdir: str, wave: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """[num_frames, K] expression coefficients at `fps` for 16 kHz speech."""
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
