"""Audio front-end: loading, the reference MFCC, and the MFCC-row <-> video-frame mapping.

The reference implementations (paper 000 and its 2020 predecessor) compute MFCCs the way
`python_speech_features.mfcc` does: 16 kHz mono, 25 ms rectangular window, 10 ms hop,
pre-emphasis 0.97, 512-point FFT, 26 mel filters, 13 cepstra, lifter 22, and coefficient 0
replaced by the log frame energy. `mfcc` reproduces that exactly (tested against a loop-based
NumPy reference), so models trained here see the same features as the papers' models.

Frame mapping. The reference pads 0.12 s of zeros on both ends of the audio and gives video
frame k (25 fps) the 28-row window `mfcc[4k : 4k + 28]`, i.e. 280 ms centred on the middle of
the frame's interval [k/25, (k+1)/25). `window_starts` states that by *time*: the window of
frame k at any fps is centred on (k + 0.5) / fps. At 25 fps this is exactly the reference's
4 rows per frame.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import scipy.fft

from talkingjax.errors import InputError

SAMPLE_RATE = 16_000
ROWS_PER_SECOND = 100  # 10 ms hop
NUM_CEPSTRA = 13
WINDOW_ROWS = 28  # 280 ms of MFCC rows per video frame
PAD_SECONDS = 0.12  # zeros on both ends, as in the reference
# Extra zeros on the right so that every frame of floor(duration * fps) has a full window.
_PAD_RIGHT_EXTRA_SECONDS = 0.08
MIN_SECONDS = 1.0
_SILENCE_RMS = 1e-4

_FRAME_LEN = 400  # 25 ms
_FRAME_STEP = 160  # 10 ms
_NFFT = 512
_NUM_FILTERS = 26
_PREEMPH = 0.97
_LIFTER = 22

_AUDIO_EXTS_SOUNDFILE = {".wav", ".flac", ".ogg", ".mp3"}


def _decode_with_ffmpeg(path: str) -> np.ndarray:
    """Decodes any container ffmpeg reads (mp4, mkv, m4a, ...) to 16 kHz mono float32."""
    if shutil.which("ffmpeg") is None:
        raise InputError(f"cannot read {path}: decoding this format needs ffmpeg, not installed")
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-vn", "-ac", "1"]
    cmd += ["-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[0]
        raise InputError(f"cannot read audio from {path}: {first}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def _resample(wave: np.ndarray, sr: int) -> np.ndarray:
    if sr == SAMPLE_RATE:
        return wave
    import librosa  # imported lazily: it pulls numba, which is slow to import

    return librosa.resample(wave, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")


def load_audio(path: str | os.PathLike, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Loads speech from an audio file or the audio track of a video.

    Args:
      path: wav/flac/ogg/mp3 file, or any video/audio container ffmpeg can decode.
      min_seconds: shorter audio is rejected.

    Returns:
      float32 [num_samples] at `SAMPLE_RATE`, mono.

    Raises:
      InputError: missing, empty, undecodable, too short, non-finite or silent audio.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"audio file not found: {path}")
    if os.path.getsize(path) == 0:
        raise InputError(f"audio file is empty: {path}")
    ext = os.path.splitext(path)[1].lower()
    wave = None
    if ext in _AUDIO_EXTS_SOUNDFILE:
        import soundfile

        try:
            data, sr = soundfile.read(path, dtype="float32", always_2d=True)
            # Checked before resampling, which would fail on NaNs with its own error.
            wave = _resample(check_audio(data.mean(axis=1), path, min_seconds=0.0), sr)
        except (RuntimeError, soundfile.LibsndfileError):
            wave = None  # fall through to ffmpeg, which reads more variants
    if wave is None:
        wave = _decode_with_ffmpeg(path)
    return check_audio(wave.astype(np.float32), name=path, min_seconds=min_seconds)


def check_audio(wave: np.ndarray, name: str = "audio", min_seconds: float = MIN_SECONDS):
    """Validates a 16 kHz mono waveform; returns it unchanged or raises `InputError`."""
    if wave.ndim != 1:
        raise InputError(f"{name}: expected mono audio, got shape {wave.shape}")
    if wave.size == 0:
        raise InputError(f"{name}: contains no audio samples")
    if not np.all(np.isfinite(wave)):
        raise InputError(f"{name}: audio contains NaN or infinite samples")
    seconds = wave.size / SAMPLE_RATE
    if seconds < min_seconds:
        raise InputError(f"{name}: audio is {seconds:.2f} s long, at least {min_seconds} s needed")
    if float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) < _SILENCE_RMS:
        raise InputError(f"{name}: audio is silent")
    return wave


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(num_filters: int = _NUM_FILTERS, nfft: int = _NFFT, sr: int = SAMPLE_RATE):
    """Triangular mel filters [num_filters, nfft // 2 + 1] (python_speech_features layout)."""
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), num_filters + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mel_points) / sr).astype(int)
    bank = np.zeros((num_filters, nfft // 2 + 1))
    for j in range(num_filters):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        bank[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        bank[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return bank


_FILTERBANK = mel_filterbank()
_LIFT = 1.0 + (_LIFTER / 2.0) * np.sin(np.pi * np.arange(NUM_CEPSTRA) / _LIFTER)


def mfcc(wave: np.ndarray) -> np.ndarray:
    """Reference MFCC of 16 kHz audio.

    Args:
      wave: float [num_samples] at 16 kHz.

    Returns:
      float32 [num_rows, 13], num_rows = 1 + ceil((num_samples - 400) / 160); row i covers
      samples [160 i, 160 i + 400). Column 0 is the log frame energy.
    """
    wave = np.asarray(wave, dtype=np.float64)
    emph = np.append(wave[:1], wave[1:] - _PREEMPH * wave[:-1])
    n = emph.size
    rows = 1 if n <= _FRAME_LEN else 1 + int(np.ceil((n - _FRAME_LEN) / _FRAME_STEP))
    padded = np.zeros((rows - 1) * _FRAME_STEP + _FRAME_LEN)
    padded[:n] = emph
    frames = np.lib.stride_tricks.sliding_window_view(padded, _FRAME_LEN)[::_FRAME_STEP]
    power = np.square(np.abs(np.fft.rfft(frames, _NFFT))) / _NFFT
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    fbank = power @ _FILTERBANK.T
    fbank = np.where(fbank == 0, np.finfo(float).eps, fbank)
    cep = scipy.fft.dct(np.log(fbank), type=2, axis=1, norm="ortho")[:, :NUM_CEPSTRA]
    cep = cep * _LIFT
    cep[:, 0] = np.log(energy)
    return cep.astype(np.float32)


def speech_features(wave: np.ndarray) -> np.ndarray:
    """MFCC rows of `wave` padded as the frame mapping expects (what data records store).

    The audio gets `PAD_SECONDS` of zeros on the left (as the reference) and a little more on
    the right, so every one of `num_video_frames(duration, fps)` frames has a full window.
    """
    left = int(round(PAD_SECONDS * SAMPLE_RATE))
    right = int(round((PAD_SECONDS + _PAD_RIGHT_EXTRA_SECONDS) * SAMPLE_RATE))
    return mfcc(np.pad(np.asarray(wave, dtype=np.float32), (left, right)))


def num_video_frames(num_seconds: float, fps: float) -> int:
    """Number of whole video frames in `num_seconds` of audio."""
    return int(np.floor(num_seconds * fps + 1e-6))


def window_starts(num_frames: int, fps: float) -> np.ndarray:
    """First MFCC row (in `speech_features` rows) of each frame's 28-row window.

    The window of frame k spans 280 ms centred on (k + 0.5) / fps; at 25 fps the start is 4k.
    """
    centre = (np.arange(num_frames) + 0.5) / fps
    start_seconds = centre - WINDOW_ROWS / (2 * ROWS_PER_SECOND) + PAD_SECONDS
    # Above 25 fps the first window would start up to 10 ms before the padding; clamp it.
    return np.maximum(np.round(start_seconds * ROWS_PER_SECOND), 0).astype(np.int64)


def frames_in_features(num_rows: int, fps: float) -> int:
    """How many video frames have a full window in `num_rows` padded MFCC rows."""
    # Start from the closed-form estimate and step down past any rounding at the edge.
    n = max(int(np.ceil((num_rows - WINDOW_ROWS) * fps / ROWS_PER_SECOND)) + 2, 0)
    while n > 0 and window_starts(n, fps)[-1] + WINDOW_ROWS > num_rows:
        n -= 1
    while window_starts(n + 1, fps)[-1] + WINDOW_ROWS <= num_rows:
        n += 1
    return n


def frame_windows(features: np.ndarray, fps: float, num_frames: int | None = None):
    """Gathers each video frame's 280 ms MFCC window.

    Args:
      features: [num_rows, 13] from `speech_features`.
      fps: video frame rate (any; the mapping is by time).
      num_frames: defaults to all frames with a full window.

    Returns:
      [num_frames, 28, 13] windows.
    """
    if num_frames is None:
        num_frames = frames_in_features(features.shape[0], fps)
    starts = window_starts(num_frames, fps)
    if num_frames and starts[-1] + WINDOW_ROWS > features.shape[0]:
        raise InputError(f"{num_frames} frames at {fps} fps need more audio than given")
    return features[starts[:, None] + np.arange(WINDOW_ROWS)[None, :]]
