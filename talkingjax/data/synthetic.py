"""A synthetic head-motion corpus that needs nothing downloaded.

Why synthetic. Paper 000 trains its head-motion encoder/decoder on a purpose-built corpus of
real talking videos. To test the models end to end without that corpus, this module builds
videos whose head motion follows the structure the paper relies on (Sec. III): speech and head
motion are only *weakly* correlated because the mapping is one-to-many -- the way prosody is
coupled to head-pose axes changes between speakers/videos and, less, between utterances
(Yehia et al.) -- while within one short video one motion behaviour pattern holds.

Generative model of one video (one speaker, one `MotionStyle`):

1. Speech. espeak-ng speaks sentences from a bundled list (`assets/sentences.txt`) with the
   speaker's voice, rate and pitch (each utterance a little higher/lower, faster/slower,
   louder/softer); utterances are joined by 0.2-0.6 s pauses, a faint noise floor is added
   (as in any recording) and the audio is cut to the requested duration.
2. Prosody. Per video frame: F0 (YIN, semitones, z-scored over voiced frames, 0 when
   unvoiced), energy (RMS dB) and onset strength (log-mel spectral flux), see `prosody`.
3. Motion. Utterance u draws its own coupling C_u = style.coupling + variation * noise; the
   drive is C_u @ prosody (each prosody channel first scaled to unit variance *after*
   smoothing), low-passed by a critically damped 2nd-order filter with the style's time
   constant, plus an idle rhythm (sway/nod at the style's frequency, continuing through
   pauses) and a little smooth noise: pose = rest + amplitude * (drive + rhythm + noise),
   soft-limited to a range of motion (+-35 deg).

Why audio alone cannot fit it: every coupling row is a random direction (random signs), so
the coupling averaged over styles is ~0 -- the same prosody pushes one style's head up and
another's down -- and the rest pose, amplitudes and rhythm are independent of the voice.
Speakers are reused across videos with *different* styles, so even the voice does not reveal
the style. Given the style, the pose is a smoothed linear function of prosody up to the rhythm,
the per-utterance coupling variation and the noise, i.e. mostly predictable from audio.
(tests/test_synthetic.py measures both: a linear fit from prosody pooled over videos explains
R^2 ~0.03 of the pose, one fitted per video ~0.8 on held-out frames.)

Pose convention (`records`): [T, 6] float32, Euler angles pitch, yaw, roll (radians) then
translation x, y, z (Deep3DFaceRecon units). Style vector layout: see `MotionStyle.to_vector`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.signal

from talkingjax import audio
from talkingjax.data import records
from talkingjax.errors import InputError

SAMPLE_RATE = audio.SAMPLE_RATE
POSE_DIM = records.POSE_DIM
PROSODY_NAMES = ("f0", "energy", "onset")
PROSODY_DIM = len(PROSODY_NAMES)
# rest 6 | amplitude 6 | coupling 6x3 row-major | rhythm_hz 1 | rhythm_amp 6 | smoothness 1 |
# variation 1
STYLE_DIM = 6 + 6 + POSE_DIM * PROSODY_DIM + 1 + 6 + 1 + 1

SENTENCES_PATH = os.path.join(os.path.dirname(__file__), "assets", "sentences.txt")

# espeak-ng base voices (all English, different accents) and voice variants (+m1, +f3, ...).
VOICES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-029",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
)
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")

_DEG = math.pi / 180.0
# Typical per-axis std of the pose around rest, before the style's scalings (radians / units).
_BASE_AMPLITUDE = np.array([3.5 * _DEG, 4.0 * _DEG, 2.0 * _DEG, 0.04, 0.04, 0.08])
# Soft range of motion: angles and translations are squashed with L * tanh(x / L).
_POSE_LIMIT = np.array([35.0 * _DEG, 35.0 * _DEG, 35.0 * _DEG, 0.5, 0.5, 0.8])
_PROSODY_WEIGHT = np.array([0.4, 1.0, 1.0])  # f0, energy, onset (see sample_style)
_NOISE = 0.04  # std of the smooth pose noise, in drive units (the drive has unit std)

# Prosody analysis (16 kHz, 10 ms hop like the MFCC rows).
_HOP = 160
_WIN = 400
_YIN_LEN = 1024
_F0_MIN, _F0_MAX = 60.0, 400.0
_YIN_THRESHOLD = 0.15  # first CMND dip below this is the period (de Cheveigne & Kawahara)
_VOICED_MAX_CMND = 0.3  # frames whose best CMND dip stays above this are unvoiced
_VOICED_MIN_DB = 35.0  # ... as are frames more than 35 dB below the loudest frame
_ENERGY_RANGE_DB = 50.0
_PROSODY_LIMIT = 2.0  # soft limit (in std) of each normalized prosody feature
_MEL_RANGE_DB = 80.0
_ONSET_LAG = 2  # rows (20 ms) between compared spectra in the spectral flux


# ----------------------------------------------------------------------------- styles


@dataclasses.dataclass(frozen=True, eq=False)
class MotionStyle:
    """The true motion behaviour pattern of a synthetic video.

    Attributes:
      rest: (6,) resting pose (radians / translation units); the pose oscillates around it.
      amplitude: (6,) per-axis scale of the motion (pose units per unit of drive).
      coupling: (6, 3) maps normalized prosody [f0, energy, onset] to the drive of each axis.
        Rows are unit vectors with random signs, so over styles the mean coupling is ~0.
      rhythm_hz: frequency of the idle sway/nod (Hz).
      rhythm_amp: (6,) peak of the idle rhythm per axis, in drive units.
      smoothness: time constant (s) of the critically damped low-pass on the drive.
      variation: std of the per-utterance perturbation of each coupling row, relative to the
        row's unit norm (the within-video, utterance-to-utterance one-to-many part).
    """

    rest: np.ndarray
    amplitude: np.ndarray
    coupling: np.ndarray
    rhythm_hz: float
    rhythm_amp: np.ndarray
    smoothness: float
    variation: float

    def __post_init__(self):
        for name, shape in (
            ("rest", (6,)),
            ("amplitude", (6,)),
            ("coupling", (6, 3)),
            ("rhythm_amp", (6,)),
        ):
            value = np.asarray(getattr(self, name), np.float64)
            if value.shape != shape:
                raise InputError(f"MotionStyle.{name} must have shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)

    def to_vector(self) -> np.ndarray:
        """float32 [STYLE_DIM]: rest(6) amplitude(6) coupling(18, row-major: axis, prosody)
        rhythm_hz(1) rhythm_amp(6) smoothness(1) variation(1)."""
        parts = [
            self.rest,
            self.amplitude,
            np.ravel(self.coupling),
            [self.rhythm_hz],
            self.rhythm_amp,
            [self.smoothness],
            [self.variation],
        ]
        return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts]).astype(np.float32)

    @classmethod
    def from_vector(cls, v) -> MotionStyle:
        v = np.asarray(v, np.float64)
        if v.shape != (STYLE_DIM,) or not np.all(np.isfinite(v)):
            raise InputError(f"a motion style vector is finite [{STYLE_DIM}], got shape {v.shape}")
        c = POSE_DIM * PROSODY_DIM
        return cls(
            rest=v[0:6],
            amplitude=v[6:12],
            coupling=v[12 : 12 + c].reshape(6, 3),
            rhythm_hz=float(v[12 + c]),
            rhythm_amp=v[13 + c : 19 + c],
            smoothness=float(v[19 + c]),
            variation=float(v[20 + c]),
        )


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def sample_style(rng: np.random.Generator) -> MotionStyle:
    """Draws a motion style; styles differ clearly in rest pose, scale and dominant axes."""
    # Rest pose: a few degrees of habitual head tilt/turn and an off-centre position.
    rest_angles = np.clip(rng.normal(0.0, [5.0, 6.0, 3.0]), [-10, -12, -6], [10, 12, 6]) * _DEG
    rest_trans = rng.uniform([-0.15, -0.15, -0.3], [0.15, 0.15, 0.3])
    # Amplitude: an overall liveliness (0.5x-2x), per-axis variety and one dominant angle axis
    # (some people mostly nod, others mostly turn or tilt).
    scale = _log_uniform(rng, 0.5, 2.0) * _log_uniform(rng, 0.75, 1.33, POSE_DIM)
    dominance = np.full(POSE_DIM, 0.85)
    dominance[rng.integers(3)] = 1.5
    amplitude = _BASE_AMPLITUDE * scale * dominance
    # Coupling: random directions, tilted towards a style-specific emphasis of the prosody
    # features (F0-driven vs loudness-driven vs onset-driven movers, as in Yehia et al.). F0
    # gets 0.4 weight: the 13 MFCCs the decoder hears carry little of the F0 contour (a model
    # from MFCC windows recovers R^2 ~0.15 of it vs ~0.95 of energy), and a style that moved
    # mostly with F0 could not be learned from MFCC even with the style known.
    emphasis = (rng.dirichlet(np.ones(PROSODY_DIM)) + 0.2) * _PROSODY_WEIGHT
    coupling = rng.standard_normal((POSE_DIM, PROSODY_DIM)) * emphasis
    coupling /= np.linalg.norm(coupling, axis=1, keepdims=True)
    return MotionStyle(
        rest=np.concatenate([rest_angles, rest_trans]),
        amplitude=amplitude,
        coupling=coupling,
        rhythm_hz=float(rng.uniform(0.3, 1.5)),
        rhythm_amp=rng.uniform(0.05, 0.45, POSE_DIM),
        smoothness=float(_log_uniform(rng, 0.08, 0.4)),
        variation=float(rng.uniform(0.15, 0.35)),
    )


# ----------------------------------------------------------------------------- speech


@dataclasses.dataclass(frozen=True)
class Speaker:
    """An espeak-ng speaker: voice (base+variant), rate (words/min), pitch (0-99), level."""

    voice: str
    rate: int
    pitch: int
    gain_db: float = 0.0

    @property
    def speaker_id(self) -> str:
        return f"{self.voice}_r{self.rate}_p{self.pitch}"


def sample_speaker(rng: np.random.Generator) -> Speaker:
    base = VOICES[rng.integers(len(VOICES))]
    variant = VARIANTS[rng.integers(len(VARIANTS))]
    return Speaker(
        voice=f"{base}+{variant}" if variant else base,
        rate=int(rng.integers(130, 196)),
        pitch=int(rng.integers(25, 76)),
        gain_db=float(rng.uniform(-10.0, -4.0)),  # headroom for the per-utterance +-4 dB
    )


def load_sentences(path: str = SENTENCES_PATH) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def synthesize_speech(
    text: str,
    voice: str = "en-us",
    rate: int = 160,
    pitch: int = 50,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Speaks `text` with espeak-ng; returns float32 mono audio at `sample_rate`."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InputError(
            "espeak-ng is not installed (apt-get install espeak-ng); the synthetic "
            "corpus needs it to generate speech"
        )
    if not text.strip():
        raise InputError("cannot synthesize empty text")
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speech.wav")
        # Text goes through stdin so that text starting with '-' is never read as an option.
        cmd = [exe, "-v", voice, "-s", str(rate), "-p", str(pitch)]
        cmd += ["-b", "1", "--stdin", "-w", path]  # -b 1: the text is UTF-8
        proc = subprocess.run(cmd, input=text.encode(), capture_output=True, check=False)
        if proc.returncode != 0 or not os.path.isfile(path):
            msg = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[0]
            raise InputError(f"espeak-ng failed for voice {voice!r}: {msg}")
        wave, sr = soundfile.read(path, dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sr != sample_rate:
        g = math.gcd(int(sr), int(sample_rate))
        wave = scipy.signal.resample_poly(wave, sample_rate // g, int(sr) // g)
    return wave.astype(np.float32)


def _trim_silence(wave: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wave) > threshold)
    return wave[loud[0] : loud[-1] + 1] if loud.size else wave


def compose_speech(
    sentences: Sequence[str], speaker: Speaker, rng: np.random.Generator, seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Joins randomly ordered sentences spoken by `speaker` with pauses, `seconds` long.

    Each utterance gets its own pitch, rate and loudness offset around the speaker's, as people
    speak some sentences higher, faster or louder: slow prosody changes that espeak's
    sentence-internal prosody lacks, and to which head motion is coupled.

    Returns:
      (wave float32 [round(seconds * 16000)], start sample of each utterance).
    """
    target = int(round(seconds * SAMPLE_RATE))
    order = rng.permutation(len(sentences))
    pieces = [np.zeros(int(rng.uniform(0.1, 0.3) * SAMPLE_RATE), np.float32)]
    starts, n, i = [], pieces[0].size, 0
    while n < target:
        text = sentences[order[i % len(order)]]
        i += 1
        rate = int(np.clip(speaker.rate + rng.integers(-15, 16), 80, 400))
        pitch = int(np.clip(speaker.pitch + rng.integers(-4, 5), 0, 99))
        speech = _trim_silence(synthesize_speech(text, speaker.voice, rate, pitch))
        speech *= np.float32(10.0 ** (rng.uniform(-4.0, 4.0) / 20.0))
        pause = np.zeros(int(rng.uniform(0.2, 0.6) * SAMPLE_RATE), np.float32)
        starts.append(n)
        pieces += [speech, pause]
        n += speech.size + pause.size
    wave = np.concatenate(pieces)[:target] * np.float32(10.0 ** (speaker.gain_db / 20.0))
    # A faint noise floor (~ -60 dB re full scale): real recordings are never digitally silent,
    # and exact zeros would give the MFCC energy column log(eps) outliers.
    wave = wave + rng.normal(0.0, 1e-3, wave.size).astype(np.float32)
    return wave.astype(np.float32), np.asarray(starts, np.int64)


# ----------------------------------------------------------------------------- prosody


def _frames(x: np.ndarray, length: int) -> np.ndarray:
    """Frames of `length` centred on samples 0, _HOP, 2 _HOP, ... (one per 10 ms)."""
    n = 1 + x.size // _HOP
    xp = np.pad(x, (length // 2, length))
    return np.lib.stride_tricks.sliding_window_view(xp, length)[::_HOP][:n]


def _yin_f0(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized YIN: (f0 Hz, best CMND value) per 10 ms row."""
    frames = _frames(wave, _YIN_LEN)
    tau_min, tau_max = int(SAMPLE_RATE / _F0_MAX), int(SAMPLE_RATE / _F0_MIN)
    w = _YIN_LEN - tau_max - 1  # integration window; x[j + tau] stays inside the frame
    # r[tau] = sum_{j < w} x[j] x[j + tau] by FFT (no wrap-around: j + tau < _YIN_LEN).
    spec_a = np.fft.rfft(frames[:, :w], _YIN_LEN)
    spec_b = np.fft.rfft(frames, _YIN_LEN)
    r = np.fft.irfft(np.conj(spec_a) * spec_b, _YIN_LEN)[:, : tau_max + 1]
    cum = np.cumsum(np.pad(np.square(frames), ((0, 0), (1, 0))), axis=1)
    taus = np.arange(tau_max + 1)
    d = cum[:, w : w + 1] + (cum[:, taus + w] - cum[:, taus]) - 2.0 * r
    cmnd = d[:, 1:] * taus[1:] / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-12)
    seg = cmnd[:, tau_min - 1 :]  # lags tau_min .. tau_max
    # The period is the first local minimum below the threshold, else the global minimum.
    local_min = np.ones_like(seg, dtype=bool)
    local_min[:, :-1] = seg[:, :-1] <= seg[:, 1:]
    cand = local_min & (seg < _YIN_THRESHOLD)
    idx = np.where(cand.any(axis=1), cand.argmax(axis=1), seg.argmin(axis=1))
    rows = np.arange(seg.shape[0])
    # Parabolic interpolation of the dip for sub-sample lag precision.
    lo, hi = np.maximum(idx - 1, 0), np.minimum(idx + 1, seg.shape[1] - 1)
    a, b, c = seg[rows, lo], seg[rows, idx], seg[rows, hi]
    denom = a - 2.0 * b + c
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    lag = idx + tau_min + np.clip(shift, -1.0, 1.0)
    return SAMPLE_RATE / lag, b


def _to_video_frames(rows: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Averages 10 ms rows over each frame's interval, sampled at frame centres (k + 0.5)/fps."""
    width = max(int(round(audio.ROWS_PER_SECOND / fps)), 1)
    smooth = _box(rows, width)
    t_rows = np.arange(rows.shape[0]) * _HOP / SAMPLE_RATE
    t_frames = (np.arange(num_frames) + 0.5) / fps
    return np.stack(
        [np.interp(t_frames, t_rows, smooth[:, j]) for j in range(rows.shape[1])], axis=1
    )


def _box(x: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.stack(
        [
            np.convolve(
                np.pad(x[:, j], (width // 2, (width - 1) // 2), mode="edge"), kernel, mode="valid"
            )
            for j in range(x.shape[1])
        ],
        axis=1,
    )


def _zscore(x: np.ndarray, mask: np.ndarray | None = None, min_std: float = 1e-3):
    ref = x if mask is None else x[mask]
    if ref.size < 2:
        return np.zeros_like(x)
    return (x - ref.mean()) / max(float(ref.std()), min_std)


def prosody(wave: np.ndarray, fps: float, num_frames: int | None = None) -> np.ndarray:
    """Per-video-frame prosody [num_frames, 3] = (f0, energy, onset), each z-normalized.

    F0 is in semitones, z-scored over voiced frames and 0 where unvoiced; energy is frame RMS
    in dB (floored 50 dB below the loudest frame), z-scored over speech frames; onset is the
    log-mel spectral flux, z-scored. Features are computed on 10 ms rows, averaged over each
    frame and read at frame centres (k + 0.5) / fps, the same times the MFCC windows are
    centred on, then soft-limited to +-2 (2 tanh(x / 2)). Normalization uses the whole `wave`
    (one speaker), so the speaker's level and mean pitch do not leak into the motion.
    """
    wave = np.asarray(wave, np.float64)
    if num_frames is None:
        num_frames = audio.num_video_frames(wave.size / SAMPLE_RATE, fps)
    win = _frames(wave, _WIN) * np.hanning(_WIN)
    energy_db = 10.0 * np.log10(np.mean(np.square(_frames(wave, _WIN)), axis=1) + 1e-12)
    energy_db = np.maximum(energy_db, energy_db.max() - _ENERGY_RANGE_DB)

    f0, best = _yin_f0(wave)
    voiced = (best < _VOICED_MAX_CMND) & (energy_db > energy_db.max() - _VOICED_MIN_DB)
    semitones = 12.0 * np.log2(np.maximum(f0, 1.0))
    f0_z = np.where(voiced, _zscore(semitones, voiced, min_std=1.0), 0.0)

    power = np.square(np.abs(np.fft.rfft(win, 512)))
    mel_db = 10.0 * np.log10(power @ audio.mel_filterbank().T + 1e-12)
    mel_db = np.maximum(mel_db, mel_db.max() - _MEL_RANGE_DB)
    flux = np.zeros(mel_db.shape[0])
    flux[_ONSET_LAG:] = np.maximum(mel_db[_ONSET_LAG:] - mel_db[:-_ONSET_LAG], 0.0).mean(axis=1)

    active = energy_db > energy_db.max() - _VOICED_MIN_DB
    rows = np.stack([f0_z, energy_db, flux], axis=1)
    out = _to_video_frames(rows, fps, num_frames)
    frame_active = _to_video_frames(active[:, None].astype(np.float64), fps, num_frames)[:, 0]
    # Energy is scaled by its spread over *speech* frames, so loudness changes within speech
    # matter and not just speech vs silence; the soft limit keeps pauses and onset spikes
    # (which would be -5..-8 and +5 std) from dominating the motion.
    out[:, 1] = _zscore(out[:, 1], frame_active > 0.5)
    out[:, 2] = _zscore(out[:, 2])
    return (_PROSODY_LIMIT * np.tanh(out / _PROSODY_LIMIT)).astype(np.float32)


# ----------------------------------------------------------------------------- motion


def lowpass(x: np.ndarray, tau: float, fps: float) -> np.ndarray:
    """Critically damped 2nd-order low-pass (two equal one-pole stages) along axis 0.

    Starts from 0 (the mean of the normalized inputs): the head starts near its rest pose.
    """
    a = math.exp(-1.0 / (fps * max(tau, 1e-6)))
    y = np.asarray(x, np.float64)
    for _ in range(2):
        y = scipy.signal.lfilter([1.0 - a], [1.0, -a], y, axis=0)
    return y


def motion_from_prosody(
    prosody_frames: np.ndarray,
    style: MotionStyle,
    rng: np.random.Generator,
    fps: float,
    utterance_starts: Sequence[int] = (0,),
) -> np.ndarray:
    """Head pose [T, 6] float32 driven by prosody [T, 3] in the given style.

    Args:
      prosody_frames: output of `prosody`.
      style: the motion style.
      rng: draws the per-utterance couplings, the rhythm phases and the noise; the result is
        a deterministic function of (prosody, style, rng state).
      fps: frame rate.
      utterance_starts: first frame of each utterance; a pause belongs to the utterance
        before it (frames before the first start belong to the first utterance).
    """
    p = np.asarray(prosody_frames, np.float64)
    t_len = p.shape[0]
    starts = np.unique(np.clip(np.asarray(utterance_starts, np.int64), 0, max(t_len - 1, 0)))
    starts = starts if starts.size else np.zeros(1, np.int64)
    seg = np.maximum(np.searchsorted(starts, np.arange(t_len), side="right") - 1, 0)
    # Utterance-to-utterance variation of the coupling: within a video the mapping wanders
    # around the style's coupling (each row perturbed by ~`variation` of its unit norm).
    noise = rng.standard_normal((starts.size, POSE_DIM, PROSODY_DIM))
    couplings = style.coupling[None] + style.variation / math.sqrt(PROSODY_DIM) * noise
    # Scale each prosody channel so that after smoothing it has unit std whatever the time
    # constant: a slow style then moves as much as a fast one, just more smoothly.
    gain = 1.0 / np.maximum(lowpass(p, style.smoothness, fps).std(axis=0), 0.05)
    drive = lowpass(np.einsum("tij,tj->ti", couplings[seg], p * gain), style.smoothness, fps)
    # Idle rhythm: one quasi-periodic sway (phase diffuses ~1 rad per 10 s) shared by all axes
    # with per-axis phase offsets; it goes on through pauses and is not predictable from audio.
    walk = np.cumsum(rng.normal(0.0, math.sqrt(1.0 / (10.0 * fps)), t_len))
    phase = 2.0 * math.pi * style.rhythm_hz * np.arange(t_len) / fps + walk
    offsets = rng.uniform(0.0, 2.0 * math.pi, POSE_DIM)
    rhythm = style.rhythm_amp * np.sin(phase[:, None] + offsets)
    jitter = lowpass(rng.standard_normal((t_len, POSE_DIM)), style.smoothness, fps)
    jitter *= _NOISE / np.maximum(jitter.std(axis=0), 1e-9)
    pose = style.rest + style.amplitude * (drive + rhythm + jitter)
    return (_POSE_LIMIT * np.tanh(pose / _POSE_LIMIT)).astype(np.float32)


# ----------------------------------------------------------------------------- videos


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticVideo:
    """One synthetic video with everything that produced it (the corpus keeps `to_clip()`)."""

    video_id: str
    speaker: Speaker
    style: MotionStyle
    fps: float
    wave: np.ndarray  # float32 [samples] at 16 kHz
    prosody: np.ndarray  # float32 [T, 3]
    pose: np.ndarray  # float32 [T, 6]
    utterance_starts: np.ndarray  # int [U], first frame of each utterance
    split: str = "train"

    def to_clip(self) -> records.Clip:
        return records.Clip(
            clip_id=self.video_id,
            video_id=self.video_id,
            speaker_id=self.speaker.speaker_id,
            fps=self.fps,
            pose=self.pose,
            mfcc=audio.speech_features(self.wave),
            split=self.split,
            style=self.style.to_vector(),
        )


def video_from_speech(
    wave: np.ndarray,
    utterance_start_samples: Sequence[int],
    speaker: Speaker,
    style: MotionStyle,
    rng: np.random.Generator,
    fps: float = 25.0,
    video_id: str = "video",
    split: str = "train",
) -> SyntheticVideo:
    """Moves a head to given speech in a given style (the pose length matches the MFCC)."""
    num_frames = audio.num_video_frames(wave.size / SAMPLE_RATE, fps)
    pros = prosody(wave, fps, num_frames)
    starts = np.floor(np.asarray(utterance_start_samples) / SAMPLE_RATE * fps).astype(np.int64)
    pose = motion_from_prosody(pros, style, rng, fps, starts)
    return SyntheticVideo(
        video_id=video_id,
        speaker=speaker,
        style=style,
        fps=float(fps),
        wave=wave,
        prosody=pros,
        pose=pose,
        utterance_starts=starts,
        split=split,
    )


def synthesize_video(
    speaker: Speaker,
    style: MotionStyle,
    rng: np.random.Generator,
    seconds: float = 30.0,
    fps: float = 25.0,
    video_id: str = "video",
    split: str = "train",
    sentences: Sequence[str] | None = None,
) -> SyntheticVideo:
    """One video: `speaker` reads random sentences for `seconds`, the head moves in `style`."""
    sentences = load_sentences() if sentences is None else sentences
    wave, starts = compose_speech(sentences, speaker, rng, seconds)
    return video_from_speech(wave, starts, speaker, style, rng, fps, video_id, split)


def same_speech_different_styles(
    styles: Sequence[MotionStyle],
    seconds: float = 10.0,
    fps: float = 25.0,
    seed: int = 0,
    speaker: Speaker | None = None,
) -> list[SyntheticVideo]:
    """The same speech moved in each of `styles`, with identical motion randomness.

    Only the style differs between the returned videos, so any pose difference is the style's:
    the demonstration that one speech maps to many head motions.
    """
    rng = np.random.default_rng(seed)
    speaker = sample_speaker(rng) if speaker is None else speaker
    wave, starts = compose_speech(load_sentences(), speaker, rng, seconds)
    motion_seed = int(rng.integers(2**31))
    return [
        video_from_speech(
            wave,
            starts,
            speaker,
            style,
            np.random.default_rng(motion_seed),
            fps,
            video_id=f"same_speech_{i:02d}",
        )
        for i, style in enumerate(styles)
    ]


def _speaker_pool(rng: np.random.Generator, count: int, taken: set[str]) -> list[Speaker]:
    """`count` speakers whose voices (accent + variant) are not in `taken` (updated).

    Once all voices are taken (over 100 speakers), a new rate/pitch of a taken voice is enough.
    """
    pool: list[Speaker] = []
    while len(pool) < count:
        spk = sample_speaker(rng)
        key = spk.voice if len(taken) < len(VOICES) * len(VARIANTS) else spk.speaker_id
        if key not in taken and spk.speaker_id not in taken:
            taken.add(key)
            pool.append(spk)
    return pool


def corpus_videos(
    num_videos: int,
    num_test_videos: int = 0,
    seconds_per_video: float = 30.0,
    fps: float = 25.0,
    seed: int = 0,
) -> Iterator[SyntheticVideo]:
    """The videos of the synthetic corpus, one at a time (what `generate_corpus` writes).

    Arguments as `generate_corpus`; they are validated at the call, before any video is made.
    Videos are produced lazily so that derived corpora (e.g. `synthetic_expression`, which
    needs each video's waveform) can use them without holding every waveform in memory.

    Yields:
      The `SyntheticVideo`s, train first.
    """
    if num_videos < 0 or num_test_videos < 0 or num_videos + num_test_videos == 0:
        raise InputError(f"need at least one video, got {num_videos} + {num_test_videos}")
    if audio.num_video_frames(seconds_per_video, fps) / fps < records.MIN_CLIP_SECONDS:
        raise InputError(
            f"videos must be at least {records.MIN_CLIP_SECONDS} s long, got {seconds_per_video} s"
        )
    return _corpus_videos(num_videos, num_test_videos, seconds_per_video, fps, seed)


def _corpus_videos(
    num_videos: int, num_test_videos: int, seconds_per_video: float, fps: float, seed: int
) -> Iterator[SyntheticVideo]:
    sentences = load_sentences()
    speaker_rng, video_seeds = np.random.SeedSequence(seed).spawn(2)
    speaker_rng = np.random.default_rng(speaker_rng)
    taken: set[str] = set()
    plan = []
    for split, count in (("train", num_videos), ("test", num_test_videos)):
        pool = _speaker_pool(speaker_rng, math.ceil(count / 2), taken)
        plan += [(split, i, pool[i % len(pool)]) for i in range(count)]
    for (split, i, speaker), child in zip(plan, video_seeds.spawn(len(plan)), strict=True):
        rng = np.random.default_rng(child)
        yield synthesize_video(
            speaker,
            sample_style(rng),
            rng,
            seconds_per_video,
            fps,
            video_id=f"{split}_{i:04d}",
            split=split,
            sentences=sentences,
        )


def generate_corpus(
    root: str | os.PathLike,
    num_videos: int,
    num_test_videos: int = 0,
    seconds_per_video: float = 30.0,
    fps: float = 25.0,
    seed: int = 0,
) -> list[records.Clip]:
    """Generates and writes (`records.write_dataset`) a synthetic corpus.

    Args:
      root: dataset directory to write.
      num_videos: number of "train" videos.
      num_test_videos: number of extra "test" videos, with speakers (voices) and styles not in
        train.
      seconds_per_video: duration of each video (one clip per video).
      fps: pose frame rate.
      seed: everything (speech, styles, motion) is a deterministic function of it.

    Each speaker reads about two videos, each with its own style: one person, several motion
    patterns (paper Sec. III), and the voice cannot identify the style.

    Returns:
      The written clips, train first.
    """
    videos = corpus_videos(num_videos, num_test_videos, seconds_per_video, fps, seed)
    clips = [video.to_clip() for video in videos]
    records.write_dataset(root, clips)
    return clips
