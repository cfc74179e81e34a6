"""Tests of talkingjax.audio: the reference MFCC, the frame mapping, loading and validation.

The MFCC reference below is written from the python_speech_features recipe with plain loops
(framing, filterbank, DCT-II) and shares no code with the library.
"""

import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile

from talkingjax import audio
from talkingjax.errors import InputError

SR = 16_000

# ----------------------------------------------------------------------------- reference MFCC


def _ref_hz2mel(hz):
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _ref_mel2hz(mel):
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _ref_filterbank(nfilt=26, nfft=512, sr=SR, lowfreq=0.0, highfreq=8000.0):
    lo_mel, hi_mel = _ref_hz2mel(lowfreq), _ref_hz2mel(highfreq)
    mel_points = [lo_mel + (hi_mel - lo_mel) * i / (nfilt + 1) for i in range(nfilt + 2)]
    bins = [int(math.floor((nfft + 1) * _ref_mel2hz(m) / sr)) for m in mel_points]
    fbank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(bins[j], bins[j + 1]):
            fbank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(bins[j + 1], bins[j + 2]):
            fbank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fbank


def _ref_mfcc(
    signal,
    sr=SR,
    winlen=400,
    winstep=160,
    nfft=512,
    nfilt=26,
    numcep=13,
    preemph=0.97,
    ceplifter=22,
):
    """python_speech_features.mfcc(signal, 16000) with appendEnergy, in plain loops."""
    signal = [float(v) for v in signal]
    # Pre-emphasis on the whole signal.
    emph = [signal[0]] + [signal[i] - preemph * signal[i - 1] for i in range(1, len(signal))]
    n = len(emph)
    num_frames = 1 if n <= winlen else 1 + int(math.ceil((n - winlen) / winstep))
    total = (num_frames - 1) * winstep + winlen
    emph = emph + [0.0] * (total - n)
    fbank = _ref_filterbank(nfilt, nfft, sr)
    eps = np.finfo(float).eps
    out = np.zeros((num_frames, numcep))
    for f in range(num_frames):
        frame = np.array(emph[f * winstep : f * winstep + winlen])  # rectangular window
        power = np.abs(np.fft.rfft(frame, nfft)) ** 2 / nfft
        energy = float(power.sum())
        if energy == 0.0:
            energy = eps
        logmel = []
        for j in range(nfilt):
            e = float(np.dot(power, fbank[j]))
            logmel.append(math.log(e if e != 0.0 else eps))
        for k in range(numcep):
            s = sum(
                logmel[m] * math.cos(math.pi * k * (2 * m + 1) / (2 * nfilt)) for m in range(nfilt)
            )
            scale = math.sqrt(1.0 / nfilt) if k == 0 else math.sqrt(2.0 / nfilt)
            lift = 1.0 + (ceplifter / 2.0) * math.sin(math.pi * k / ceplifter)
            out[f, k] = s * scale * lift
        out[f, 0] = math.log(energy)
    return out


def _speechlike(seconds, seed=0):
    """A deterministic, non-silent test signal: chirp + harmonics + noise, amplitude ~0.3."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = 120 + 60 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(h * phase) / h for h in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wave = 0.2 * wave + 0.02 * rng.normal(size=t.size)
    return wave.astype(np.float32)


# ----------------------------------------------------------------------------- mfcc


@pytest.mark.parametrize("num_samples", [250, 400, 401, 559, 560, 561, 4321])
def test_mfcc_matches_loop_reference(num_samples):
    wave = _speechlike(1.0, seed=num_samples)[:num_samples]
    got = audio.mfcc(wave)
    want = _ref_mfcc(wave)
    assert got.shape == want.shape == (want.shape[0], 13)
    expected_rows = 1 if num_samples <= 400 else 1 + math.ceil((num_samples - 400) / 160)
    assert got.shape[0] == expected_rows
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_mfcc_with_silent_frames_uses_eps_floor():
    wave = _speechlike(0.5, seed=3)
    wave[1000:3000] = 0.0  # several whole frames of exact zeros
    got = audio.mfcc(wave)
    want = _ref_mfcc(wave)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # A frame inside the zero run: energy and every filter output hit the eps floor.
    row = 10  # samples [1600, 2000) after pre-emphasis are exactly zero
    np.testing.assert_allclose(got[row, 0], np.log(np.finfo(float).eps), rtol=1e-6)
    assert np.all(np.isfinite(got))


def test_mfcc_is_not_normalised_or_scale_invariant():
    # No normalisation: scaling the waveform by 10 shifts c0 (log energy) by log(100).
    wave = _speechlike(0.5, seed=4)
    a, b = audio.mfcc(wave), audio.mfcc(10.0 * wave)
    np.testing.assert_allclose(b[:, 0] - a[:, 0], np.log(100.0), atol=1e-3)


# ----------------------------------------------------------------------------- frame mapping


def test_window_starts_25fps_is_four_rows_per_frame():
    starts = audio.window_starts(500, 25.0)
    np.testing.assert_array_equal(starts, 4 * np.arange(500))
    assert audio.WINDOW_ROWS == 28


def test_frame_windows_25fps_equals_reference_construction():
    """Reference: pad 0.12 s of zeros on both ends, mfcc, frame k gets rows [4k, 4k + 28)."""
    wave = _speechlike(3.3, seed=1)
    pad = int(0.12 * SR)
    ref_rows = audio.mfcc(np.pad(wave, (pad, pad)))
    windows = audio.frame_windows(audio.speech_features(wave), 25.0)
    assert windows.shape[1:] == (28, 13)
    complete = [k for k in range(windows.shape[0]) if 4 * k + 28 <= ref_rows.shape[0]]
    assert len(complete) >= audio.num_video_frames(3.3, 25.0) - 1
    for k in complete:
        np.testing.assert_allclose(windows[k], ref_rows[4 * k : 4 * k + 28], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fps", [30.0, 29.97, 24.0, 50.0])
def test_window_starts_centred_on_frame_by_time(fps):
    n = 1000
    starts = audio.window_starts(n, fps)
    assert np.all(np.diff(starts) >= 0)
    # Row r of `speech_features` starts at r * 10 ms in the padded signal, i.e. at
    # r * 10 ms - 0.12 s in the original; 28 rows span 280 ms, so the centre is +140 ms.
    centre = starts * 0.01 + 0.14 - audio.PAD_SECONDS
    want = (np.arange(n) + 0.5) / fps
    assert np.max(np.abs(centre - want)) <= 0.010 + 1e-9


def test_window_starts_30fps_first_frames():
    # Frame 0 of a 30 fps video is centred at 16.7 ms: the window cannot start before row 0.
    starts = audio.window_starts(4, 30.0)
    assert starts[0] == 0
    np.testing.assert_array_equal(starts[1:], [3, 6, 10])


@pytest.mark.parametrize("seconds", [1.0, 2.5, 7.0, 12.04])
@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_frames_in_features_covers_audio(seconds, fps):
    wave = _speechlike(seconds, seed=2)
    feats = audio.speech_features(wave)
    n = audio.frames_in_features(feats.shape[0], fps)
    want = audio.num_video_frames(seconds, fps)
    assert want == int(np.floor(seconds * fps + 1e-6))
    # Every frame of the audio has a full window (plus at most a frame or two of padding).
    assert want <= n <= want + 2
    starts = audio.window_starts(n, fps)
    assert starts[-1] + audio.WINDOW_ROWS <= feats.shape[0]
    # ... and n is maximal: one more frame would not fit.
    assert audio.window_starts(n + 1, fps)[-1] + audio.WINDOW_ROWS > feats.shape[0]
    windows = audio.frame_windows(feats, fps)
    assert windows.shape == (n, 28, 13)
    np.testing.assert_array_equal(windows[-1], feats[starts[-1] : starts[-1] + 28])


def test_frame_windows_rejects_too_many_frames():
    feats = audio.speech_features(_speechlike(1.0))
    n = audio.frames_in_features(feats.shape[0], 25.0)
    with pytest.raises(InputError, match="need more audio"):
        audio.frame_windows(feats, 25.0, num_frames=n + 1)


# ----------------------------------------------------------------------------- load_audio

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


def _peak_hz(wave, sr=SR):
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return np.argmax(spec) * sr / wave.size


def _tone(seconds, hz=440.0, sr=SR, amp=0.3):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_load_wav_float_roundtrip(tmp_path):
    wave = _speechlike(1.5)
    path = tmp_path / "a.wav"
    soundfile.write(path, wave, SR, subtype="FLOAT")
    got = audio.load_audio(path)
    assert got.dtype == np.float32 and got.ndim == 1
    np.testing.assert_array_equal(got, wave)


def test_load_wav_int16(tmp_path):
    wave = _speechlike(1.5)
    path = tmp_path / "a.wav"
    soundfile.write(str(path), wave, SR, subtype="PCM_16")
    got = audio.load_audio(str(path))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, wave, atol=1.0 / 32768 + 1e-7)


def test_load_wav_stereo_is_mixed_to_mono(tmp_path):
    left, right = _tone(1.5, 440.0), _tone(1.5, 1000.0, amp=0.1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    got = audio.load_audio(path)
    assert got.shape == left.shape
    np.testing.assert_allclose(got, 0.5 * (left + right), atol=1e-6)


def test_load_wav_44k_is_resampled_to_16k(tmp_path):
    path = tmp_path / "hi.wav"
    soundfile.write(path, _tone(2.0, 440.0, sr=44_100), 44_100, subtype="PCM_16")
    got = audio.load_audio(path)
    assert abs(got.size - 2 * SR) <= 2
    assert abs(_peak_hz(got) - 440.0) < 2.0
    assert 0.25 < np.max(np.abs(got[1000:-1000])) < 0.35


def test_load_flac(tmp_path):
    wave = _speechlike(1.5)
    path = tmp_path / "a.flac"
    soundfile.write(path, wave, SR, subtype="PCM_16")
    got = audio.load_audio(path)
    np.testing.assert_allclose(got, wave, atol=1.0 / 32768 + 1e-7)


@needs_ffmpeg
def test_load_mp3(tmp_path):
    src = tmp_path / "in.wav"
    soundfile.write(src, _tone(2.0, 440.0, sr=44_100), 44_100)
    mp3 = tmp_path / "a.mp3"
    _ffmpeg("-i", str(src), "-b:a", "128k", str(mp3))
    got = audio.load_audio(mp3)
    assert abs(got.size / SR - 2.0) < 0.06
    assert abs(_peak_hz(got) - 440.0) < 2.0


@needs_ffmpeg
def test_load_audio_track_of_mp4(tmp_path):
    src = tmp_path / "in.wav"
    soundfile.write(src, _tone(2.0, 440.0), SR)
    mp4 = tmp_path / "v.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=64x64:d=2",
        "-i",
        str(src),
        "-shortest",
        "-pix_fmt",
        "yuv420p",
        str(mp4),
    )
    got = audio.load_audio(mp4)
    assert got.dtype == np.float32 and got.ndim == 1
    # AAC adds up to one frame (1024 samples at the source rate) of padding.
    assert abs(got.size / SR - 2.0) < 0.08
    assert abs(_peak_hz(got) - 440.0) < 2.0


@needs_ffmpeg
def test_load_video_without_audio_track_raises(tmp_path):
    mp4 = tmp_path / "silent_video.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=2", "-pix_fmt", "yuv420p", str(mp4))
    with pytest.raises(InputError, match="cannot read audio"):
        audio.load_audio(mp4)


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError, match="not found"):
        audio.load_audio(tmp_path / "nope.wav")


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        audio.load_audio(path)


def test_corrupt_file_raises(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"cannot read .*corrupt\.wav"):
        audio.load_audio(path)


def test_silent_audio_raises(tmp_path):
    path = tmp_path / "zeros.wav"
    soundfile.write(path, np.zeros(2 * SR, np.float32), SR)
    with pytest.raises(InputError, match="silent"):
        audio.load_audio(path)


def test_short_audio_raises(tmp_path):
    path = tmp_path / "short.wav"
    soundfile.write(path, _speechlike(0.5), SR)
    with pytest.raises(InputError, match=r"0\.50 s long, at least 1\.0 s"):
        audio.load_audio(path)
    # The minimum is configurable.
    assert audio.load_audio(path, min_seconds=0.25).size == SR // 2


def test_nan_samples_raise(tmp_path):
    wave = _speechlike(1.5)
    wave[100] = np.nan
    with pytest.raises(InputError, match="NaN"):
        audio.check_audio(wave)
    inf = _speechlike(1.5)
    inf[5] = np.inf
    with pytest.raises(InputError, match="infinite"):
        audio.check_audio(inf)
    path = tmp_path / "nan.wav"
    soundfile.write(path, wave, SR, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        audio.load_audio(path)


def test_check_audio_rejects_non_mono_and_passes_good_audio():
    with pytest.raises(InputError, match="mono"):
        audio.check_audio(np.zeros((SR, 2), np.float32))
    with pytest.raises(InputError, match="no audio samples"):
        audio.check_audio(np.zeros(0, np.float32))
    wave = _speechlike(1.0)
    assert audio.check_audio(wave) is wave


def test_nan_samples_in_44k_file_raise_input_error(tmp_path):
    wave = _tone(2.0, sr=44_100)
    wave[100] = np.nan
    path = tmp_path / "nan44.wav"
    soundfile.write(path, wave, 44_100, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        audio.load_audio(path)


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0, 100.0, 120.0])
def test_frames_in_features_is_maximal(fps):
    for rows in range(28, 400):
        n = audio.frames_in_features(rows, fps)
        assert audio.window_starts(n, fps)[-1] + audio.WINDOW_ROWS <= rows
        assert audio.window_starts(n + 1, fps)[-1] + audio.WINDOW_ROWS > rows, (rows, n)
