"""A synthetic audio-to-expression corpus: mouth motion driven by the speech, no download.

Why. The audio-to-expression regressor (paper 000 Sec. IV-A2, paper 001) learns per-frame 3DMM
expression coefficients from the speech around each frame. Real training data are expression
coefficients reconstructed from talking videos; to test the regressor end to end (and to run
the embedded default job) without them, this module adds expression ground truth to the
synthetic head-motion corpus (`talkingjax.data.synthetic`: espeak-ng speech, head pose), in the
expression basis of a face model (by default the shipped `talkingjax.face3d.default` model), so
the coefficients drive a real face and can be rendered.

Unlike head motion (one-to-many, weakly tied to speech) the mouth is *mostly determined* by the
sound, as in real speech: the jaw opens with loudness, the lips round for low-F2 vowels (/u/,
/o/) and spread for high-F2 ones (/i/, /e/). The generative model makes that explicit.

1. Mouth directions (`mouth_directions`). Three smooth vertex displacement fields [V, 3] are
   designed on the model's mean face, from its mouth landmarks (dlib order: corners 48/54,
   inner-lip centres 62/66):
   - "open": everything below the lip line (a sigmoid in y, 1 mm wide) moves down and a
     little back, (0, -1, -0.3), fading beside the mouth (Gaussian in |x| beyond
     the corners, over 1.5 mouth half-widths): the jaw and lower lip drop;
   - "round": within a Gaussian around the mouth (sigma half a mouth half-width, 1.3 cm on the
     default model; flatter in depth) points move toward the vertical mid-line, in proportion
     to their offset from it, and forward (+z);
   - "spread": the same neighbourhood moves away from the mid-line and a little back.
   Each field is projected on the expression basis by weighted ridge least squares: vertices
   above the nose tip weigh 10x (the field is zero there, and the fit should keep the eyes and
   brows still rather than trade them for a closer mouth), ridge 0.05 on the coefficients
   (~N(0, 1) units, so the fit prefers the large, well-estimated components). For "round" and
   "spread" the fit is constrained to leave the inner-lip gap unchanged, so the opening is
   "open"'s alone. Each direction is then scaled so that 1.0 is a measurable change of the
   *fitted* shape: "open" 1.0 widens the inner-lip gap (62-66) by 1 cm, "round" 1.0 narrows
   the corner distance (48-54) by 1 cm and "spread" 1.0 widens it by 1 cm (model units are
   10 cm, as in the BFM). On the default model (8 expression components): "open" 1.0 also
   widens the mouth by 2.6 mm and moves the eye landmarks by <= 1.2 mm; "round"/"spread" 1.0
   move them by <= 1.8 mm (its basis, learned from two talking videos, couples a little eye
   motion to every mouth component). "round" and "spread" come out nearly opposite: the
   basis has one narrow/wide axis without opening.
2. Speech features (`mouth_drive`), from 25 ms Hann frames every 10 ms:
   - envelope: the energy in 300-3000 Hz, in dB, mapped linearly onto [0, 1] over the 35 dB
     below the clip's 95th percentile, so pauses (the corpus's noise floor is 45-50 dB below
     that) are exactly 0 and a speaker's level does not matter, while louder
     utterances open wider. (Band energy rather than full-band RMS: the RMS of low, strongly
     voiced voices is dominated by F0 harmonics, which the pre-emphasised MFCC energy barely
     sees: a linear fit from MFCC windows pooled over voices explained ~0 of the RMS envelope
     of the espeak variant "m7", against 0.5-0.9 for the other voices.)
   - formant proxy: the power-weighted mean log-frequency (spectral centroid, in octaves) of
     the same band, z-scored over the clip's speech (weighted by the envelope), soft-limited
     to +-2.5 and multiplied by the envelope (so consonant noise and pauses give ~0). For
     espeak vowels its order is /u/ < /o/ < /a/ < /e/ < /i/: low = rounded, high = spread.
   Both are smoothed with a Gaussian (sigma = the style's `smoothing`, zero phase), averaged over
   each frame's interval and read at the frame centre (k + 0.5) / fps *plus* the style's `lead`:
   articulators move ahead of the sound they make (anticipatory coarticulation), and the
   40-80 ms lead stays well inside the 280 ms MFCC window of a frame.
3. Expression (`expression_from_speech`), per frame:
     exp = rest + open_gain * env^gamma * d_open + round_gain * max(-f, 0) * d_round
               + spread_gain * max(f, 0) * d_spread + noise,
   with an `ExpressionStyle` per speaker: open_gain 0.6-1.1 (cm at full envelope), gamma
   1-1.6, round_gain 0.25-0.5 and spread_gain 0.15-0.35 (cm per unit of formant proxy), lead
   40-80 ms, smoothing 25-50 ms, a constant resting expression (coefficients ~N(0, 0.15^2):
   each person's mouth at rest differs a little) and smooth coefficient noise (std 0.02-0.04,
   low-passed at 0.1 s). Speakers thus differ in how wide they open, how much they round or
   spread, their timing and their resting face; given the audio and the style the expression
   is a deterministic, smooth function of the sound, up to the small noise.

`generate_expression_corpus` takes the videos of `synthetic.corpus_videos` (the same speech,
head pose, splits and ids as `synthetic.generate_corpus` for the seed), draws each *speaker's*
style from the seed and the speaker id (two videos of one speaker share it), and writes clips
with `exp` [T, K_exp] (`records`). Measured (tests/test_synthetic_expression.py and the
default 24 + 6 videos of 30 s, which take ~13 s to generate): the inner-lip gap correlates
0.96-0.99 with the envelope, is within 0.5 mm of the resting gap in pauses and peaks at
1-1.4 cm; a ridge regression from a frame's 280 ms MFCC window predicts the expression of
held-out frames with R^2 0.76-0.85 (0.64 for unseen test speakers), ~0 when time-shuffled.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Iterator

import numpy as np
import scipy.ndimage

from talkingjax import audio
from talkingjax.data import records, synthetic
from talkingjax.errors import InputError

DIRECTION_NAMES = ("open", "round", "spread")
CM = 0.1  # model units per centimetre (BFM / default model: 1 unit = 10 cm)

# dlib 68-landmark indices (the model's `landmarks` order).
_CORNERS = (48, 54)
_INNER_UPPER, _INNER_LOWER = 62, 66
_NOSE_TIP = 30

# Direction design (model units, or relative to the mouth half-width where noted).
_LIP_LINE_WIDTH = 0.01  # sigmoid width of the moving/still boundary of "open" (1 mm)
_JAW_BACK = 0.3  # "open" moves the jaw back by this much per unit down
_JAW_FADE = 1.5  # ... fading (Gaussian) beyond the corners over this many half-widths
_MOUTH_SIGMA = 0.5  # neighbourhood of "round"/"spread", in half-widths
_ROUND_FORWARD = 0.5  # lips forward (+z) per unit of inward motion at the corners
_SPREAD_BACK = 0.2
_UPPER_FACE_WEIGHT = 10.0
_RIDGE = 0.05

# Speech analysis (16 kHz, 10 ms rows as `synthetic.prosody`).
_WIN = 400
_NFFT = 512
_ENVELOPE_RANGE_DB = 35.0
_ENVELOPE_REF_PERCENTILE = 95.0
_FORMANT_BAND = (300.0, 3000.0)
_FORMANT_LIMIT = 2.5
_NOISE_TAU = 0.1  # s, low-pass time constant of the coefficient noise
_SEED_TAG = 0x5E7  # separates this module's random streams from the head-motion corpus's


# ----------------------------------------------------------------------------- directions


@dataclasses.dataclass(frozen=True)
class MouthGeometry:
    """Landmark vertices and sizes of a model's mean mouth (model units)."""

    corners: tuple[int, int]  # vertex indices of the mouth corners (dlib 48, 54)
    inner_upper: int  # inner-lip centres (dlib 62, 66)
    inner_lower: int
    centre: np.ndarray  # (3,) mean of the corners and inner-lip centres
    half_width: float  # half the corner distance
    lip_line: float  # y between the inner-lip centres
    nose_tip_y: float


def mouth_geometry(model) -> MouthGeometry:
    """The mouth landmarks of `model` (needs the 68 dlib-order landmarks)."""
    lm = np.asarray(model.landmarks)
    if lm.size < 68:
        raise InputError(f"the face model needs 68 landmarks for mouth directions, has {lm.size}")
    mean = np.asarray(model.mean_shape, np.float64)
    cl, cr = mean[lm[_CORNERS[0]]], mean[lm[_CORNERS[1]]]
    up, lo = mean[lm[_INNER_UPPER]], mean[lm[_INNER_LOWER]]
    return MouthGeometry(
        corners=(int(lm[_CORNERS[0]]), int(lm[_CORNERS[1]])),
        inner_upper=int(lm[_INNER_UPPER]),
        inner_lower=int(lm[_INNER_LOWER]),
        centre=(cl + cr + up + lo) / 4.0,
        half_width=0.5 * float(np.linalg.norm(cr - cl)),
        lip_line=0.5 * float(up[1] + lo[1]),
        nose_tip_y=float(mean[lm[_NOSE_TIP], 1]),
    )


def displacement_fields(model) -> dict[str, np.ndarray]:
    """The designed (not yet projected) displacement fields [V, 3] of each mouth direction."""
    g = mouth_geometry(model)
    v = np.asarray(model.mean_shape, np.float64)
    x, y, z = (v[:, i] - g.centre[i] for i in range(3))
    ones = np.ones_like(x)
    # Open: below the lip line (sigmoid) and not far beside the mouth (the jaw's sides, near
    # its pivot, move less): down and a little back.
    below = 1.0 / (1.0 + np.exp(-np.clip((g.lip_line - v[:, 1]) / _LIP_LINE_WIDTH, -50, 50)))
    beside = np.maximum(np.abs(x) - g.half_width, 0.0) / (_JAW_FADE * g.half_width)
    jaw = below * np.exp(-0.5 * beside**2)
    open_field = np.stack([0 * x, -ones, -_JAW_BACK * ones], axis=1) * jaw[:, None]
    # Round / spread: a Gaussian neighbourhood of the mouth, flatter in depth (lips and the
    # skin around them move together, the back of the face does not).
    r2 = (x**2 + (y / 0.8) ** 2 + 0.5 * z**2) / (_MOUTH_SIGMA * g.half_width) ** 2
    near = np.exp(-0.5 * r2)
    inward = -x / g.half_width
    round_field = np.stack([inward, 0 * x, _ROUND_FORWARD * ones], axis=1) * near[:, None]
    spread_field = np.stack([-inward, 0 * x, -_SPREAD_BACK * ones], axis=1) * near[:, None]
    return {"open": open_field, "round": round_field, "spread": spread_field}


def _exp_basis(model) -> np.ndarray:
    """[K_exp, V, 3] float64."""
    return np.asarray(model.exp_basis, np.float64)


def mouth_measures(model, exp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inner-lip gap, corner distance) [...] in model units of the mean identity with `exp`.

    Args:
      model: the face model.
      exp: [..., K_exp] expression coefficients.
    """
    g = mouth_geometry(model)
    idx = [g.inner_upper, g.inner_lower, *g.corners]
    pts = np.asarray(model.mean_shape, np.float64)[idx] + np.tensordot(
        np.asarray(exp, np.float64), _exp_basis(model)[:, idx], axes=1
    )
    gap = pts[..., 0, 1] - pts[..., 1, 1]
    width = np.linalg.norm(pts[..., 3, :] - pts[..., 2, :], axis=-1)
    return gap, width


def mouth_directions(model) -> dict[str, np.ndarray]:
    """Expression-coefficient directions [K_exp] (float32) for "open", "round" and "spread".

    Amount 1.0 of "open" widens the inner-lip gap by 1 cm; of "round" narrows the corner
    distance by 1 cm, of "spread" widens it by 1 cm; "round"/"spread" keep the gap (see the
    module docstring for the fields and the fit).

    Raises:
      InputError: the model lacks the 68 landmarks, or its expression basis cannot produce the
        deformation (no expression components, or none that moves the mouth that way).
    """
    g = mouth_geometry(model)
    basis = _exp_basis(model)
    k = basis.shape[0]
    if k == 0:
        raise InputError("the face model has no expression basis")
    b = basis.reshape(k, -1).T  # [3V, K]
    upper = np.asarray(model.mean_shape)[:, 1] > g.nose_tip_y
    weight = np.repeat(np.where(upper, _UPPER_FACE_WEIGHT, 1.0), 3)
    normal = b.T @ (b * weight[:, None]) + _RIDGE * np.eye(k)
    gap_row = basis[:, g.inner_upper, 1] - basis[:, g.inner_lower, 1]  # d gap / d coefficient
    out = {}
    for name, field in displacement_fields(model).items():
        c = np.linalg.solve(normal, b.T @ (weight * field.reshape(-1)))
        if name != "open":
            # Minimum of the same objective subject to gap_row . c = 0 (Lagrange multiplier).
            n_inv_a = np.linalg.solve(normal, gap_row)
            c = c - n_inv_a * (gap_row @ c) / max(float(gap_row @ n_inv_a), 1e-12)
        out[name] = (c * _unit_scale(model, c, name)).astype(np.float32)
    return out


def _mouth_change(model, exp: np.ndarray, name: str) -> float:
    """How much `exp` does what direction `name` is for (model units, from the mean face):
    widen the inner-lip gap ("open"), narrow ("round") or widen ("spread") the mouth corners."""
    gap, width = mouth_measures(model, np.stack([np.zeros_like(exp), exp]))
    if name == "open":
        return float(gap[1] - gap[0])
    return float(width[0] - width[1] if name == "round" else width[1] - width[0])


def _unit_scale(model, c: np.ndarray, name: str) -> float:
    """Scale s with s * c changing the mouth by 1 cm (`_mouth_change`).

    The gap is linear in c; the corner distance is a norm, nearly but not exactly linear, so
    s is found by bisection on [0, 4 s_linear].
    """
    linear = _mouth_change(model, c, name)
    if linear < 1e-6 or _mouth_change(model, 4.0 * CM / linear * c, name) < CM:
        raise InputError(f"the face model's expression basis cannot {name} the mouth")
    lo, hi = 0.0, 4.0 * CM / linear
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _mouth_change(model, mid * c, name) < CM else (lo, mid)
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- speech


def _rows(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms row (centred at 10 ms i): envelope in [0, 1] and formant proxy (see module)."""
    frames = synthetic._frames(np.asarray(wave, np.float64), _WIN)
    power = np.square(np.abs(np.fft.rfft(frames * np.hanning(_WIN), _NFFT)))
    freqs = np.fft.rfftfreq(_NFFT, 1.0 / audio.SAMPLE_RATE)
    band = (freqs >= _FORMANT_BAND[0]) & (freqs <= _FORMANT_BAND[1])
    p = power[:, band] + 1e-12
    energy_db = 10.0 * np.log10(p.sum(axis=1))
    ref = np.percentile(energy_db, _ENVELOPE_REF_PERCENTILE)
    envelope = np.clip((energy_db - (ref - _ENVELOPE_RANGE_DB)) / _ENVELOPE_RANGE_DB, 0.0, 1.0)
    centroid = (p @ np.log2(freqs[band])) / p.sum(axis=1)  # octaves
    # z-scored over speech, weighted by the envelope: pauses carry no formants.
    w = envelope / max(float(envelope.sum()), 1e-9)
    mean = float(w @ centroid)
    std = max(math.sqrt(float(w @ np.square(centroid - mean))), 1e-3)
    z = (centroid - mean) / std
    formant = _FORMANT_LIMIT * np.tanh(z / _FORMANT_LIMIT) * envelope
    return envelope, formant


def mouth_drive(
    wave: np.ndarray,
    fps: float,
    num_frames: int | None = None,
    lead: float = 0.0,
    smoothing: float = 0.0,
) -> np.ndarray:
    """Speech features that drive the mouth, per video frame: [num_frames, 2] float32.

    Columns: envelope in [0, 1] (0 in silence) and the formant proxy (~z units, < 0 for
    rounded vowels, > 0 for spread ones, ~0 in silence).

    Args:
      wave: 16 kHz mono speech.
      fps: video frame rate; frame k is read at (k + 0.5) / fps + lead.
      num_frames: defaults to the whole frames in `wave`.
      lead: seconds the mouth moves ahead of the sound (> 0: the articulators lead).
      smoothing: std (s) of the zero-phase Gaussian smoothing of the 10 ms rows.
    """
    wave = np.asarray(wave)
    if num_frames is None:
        num_frames = audio.num_video_frames(wave.size / audio.SAMPLE_RATE, fps)
    rows = np.stack(_rows(wave), axis=1)
    sigma_rows = smoothing * audio.ROWS_PER_SECOND
    if sigma_rows > 0:
        rows = scipy.ndimage.gaussian_filter1d(rows, sigma_rows, axis=0, mode="nearest")
    # Average over the frame's interval (what a camera integrates), then read at the centre.
    width = max(int(round(audio.ROWS_PER_SECOND / fps)), 1)
    rows = scipy.ndimage.uniform_filter1d(rows, width, axis=0, mode="nearest")
    t_rows = np.arange(rows.shape[0]) / audio.ROWS_PER_SECOND
    t_frames = (np.arange(num_frames) + 0.5) / fps + lead
    cols = [np.interp(t_frames, t_rows, rows[:, j]) for j in range(rows.shape[1])]
    return np.stack(cols, axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- styles


@dataclasses.dataclass(frozen=True, eq=False)
class ExpressionStyle:
    """How one speaker's mouth follows their speech (see the module docstring).

    Attributes:
      open_gain: "open" amount (cm of inner-lip gap) at full envelope.
      open_gamma: exponent on the envelope (> 1: only the louder parts open wide).
      round_gain: "round" amount (cm of mouth narrowing) per unit of (negative) formant proxy.
      spread_gain: "spread" amount per unit of (positive) formant proxy.
      lead: seconds the mouth moves ahead of the sound.
      smoothing: std (s) of the Gaussian smoothing of the articulation.
      rest: (K_exp,) constant resting expression.
      noise: std of the smooth coefficient noise.
    """

    open_gain: float
    open_gamma: float
    round_gain: float
    spread_gain: float
    lead: float
    smoothing: float
    rest: np.ndarray
    noise: float

    def __post_init__(self):
        rest = np.asarray(self.rest, np.float64)
        if rest.ndim != 1 or not np.all(np.isfinite(rest)):
            raise InputError(f"ExpressionStyle.rest must be a finite [K_exp], got {rest.shape}")
        object.__setattr__(self, "rest", rest)


def sample_expression_style(rng: np.random.Generator, num_exp: int) -> ExpressionStyle:
    """Draws a speaker's expression style for a model with `num_exp` expression components."""
    return ExpressionStyle(
        open_gain=float(rng.uniform(0.6, 1.1)),
        open_gamma=float(rng.uniform(1.0, 1.6)),
        round_gain=float(rng.uniform(0.25, 0.5)),
        spread_gain=float(rng.uniform(0.15, 0.35)),
        lead=float(rng.uniform(0.04, 0.08)),
        smoothing=float(rng.uniform(0.025, 0.05)),
        rest=rng.normal(0.0, 0.15, num_exp),
        noise=float(rng.uniform(0.02, 0.04)),
    )


def speaker_style(seed: int, speaker_id: str, num_exp: int) -> ExpressionStyle:
    """The expression style of a speaker in the corpus of `seed` (same for all their videos)."""
    key = zlib.crc32(speaker_id.encode())  # stable across runs, unlike hash()
    return sample_expression_style(np.random.default_rng([_SEED_TAG, seed, key]), num_exp)


def expression_from_speech(
    wave: np.ndarray,
    fps: float,
    num_frames: int,
    directions: dict[str, np.ndarray],
    style: ExpressionStyle,
    rng: np.random.Generator,
) -> np.ndarray:
    """Expression coefficients [num_frames, K_exp] float32 driven by the speech `wave`.

    Args:
      wave: 16 kHz mono speech.
      fps: frame rate; frame k is centred at (k + 0.5) / fps.
      num_frames: number of frames.
      directions: `mouth_directions(model)`.
      style: the speaker's `ExpressionStyle` (its `rest` has K_exp entries).
      rng: draws the noise; the result is deterministic given (wave, style, rng state).
    """
    d = {name: np.asarray(directions[name], np.float64) for name in DIRECTION_NAMES}
    k = d["open"].shape[0]
    if style.rest.shape != (k,):
        raise InputError(f"style.rest has {style.rest.shape[0]} coefficients, directions {k}")
    drive = mouth_drive(wave, fps, num_frames, style.lead, style.smoothing).astype(np.float64)
    # (Smoothing can leave -1e-17 where the envelope is 0; a fractional power of that is NaN.)
    envelope, formant = np.maximum(drive[:, 0], 0.0), drive[:, 1]
    amounts = {
        "open": style.open_gain * envelope**style.open_gamma,
        "round": style.round_gain * np.maximum(-formant, 0.0),
        "spread": style.spread_gain * np.maximum(formant, 0.0),
    }
    exp = style.rest + sum(amounts[n][:, None] * d[n][None, :] for n in DIRECTION_NAMES)
    noise = synthetic.lowpass(rng.standard_normal((num_frames, k)), _NOISE_TAU, fps)
    noise *= style.noise / np.maximum(noise.std(axis=0), 1e-9)
    return (exp + noise).astype(np.float32)


# ----------------------------------------------------------------------------- corpus


@dataclasses.dataclass(frozen=True, eq=False)
class ExpressionVideo:
    """A synthetic video (speech, head pose) with its expression ground truth."""

    video: synthetic.SyntheticVideo
    style: ExpressionStyle
    exp: np.ndarray  # float32 [T, K_exp]

    def to_clip(self) -> records.Clip:
        return dataclasses.replace(self.video.to_clip(), exp=self.exp)


def expression_videos(
    num_videos: int,
    num_test_videos: int = 0,
    seconds_per_video: float = 30.0,
    fps: float = 25.0,
    seed: int = 0,
    model=None,
) -> Iterator[ExpressionVideo]:
    """The videos of `generate_expression_corpus`, one at a time (arguments as there)."""
    if model is None:
        from talkingjax.face3d import default

        model = default.load_default()
    directions = mouth_directions(model)
    num_exp = directions["open"].shape[0]
    videos = synthetic.corpus_videos(num_videos, num_test_videos, seconds_per_video, fps, seed)

    def generate():
        for video in videos:
            style = speaker_style(seed, video.speaker.speaker_id, num_exp)
            key = zlib.crc32(video.video_id.encode())
            rng = np.random.default_rng([_SEED_TAG, seed, key, 1])
            exp = expression_from_speech(
                video.wave, fps, video.pose.shape[0], directions, style, rng
            )
            yield ExpressionVideo(video=video, style=style, exp=exp)

    return generate()


def generate_expression_corpus(
    root: str | os.PathLike,
    num_videos: int,
    num_test_videos: int = 0,
    seconds_per_video: float = 30.0,
    fps: float = 25.0,
    seed: int = 0,
    model=None,
) -> list[records.Clip]:
    """Generates and writes (`records.write_dataset`) a synthetic audio-to-expression corpus.

    Args:
      root: dataset directory to write.
      num_videos, num_test_videos, seconds_per_video, fps, seed: as
        `synthetic.generate_corpus` (the same speech, head pose, splits and clip ids).
      model: face model whose expression basis the coefficients use (None: the default model).

    Returns:
      The written clips (train first), each with `exp` [T, K_exp].
    """
    videos = expression_videos(num_videos, num_test_videos, seconds_per_video, fps, seed, model)
    clips = [v.to_clip() for v in videos]
    records.write_dataset(root, clips)
    return clips
