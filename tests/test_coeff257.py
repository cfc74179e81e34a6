"""Tests of the 257-d coefficient loader and its conversion into head-motion records."""

import os

import numpy as np
import pytest
import scipy.io
import testdata

from talkingjax import audio
from talkingjax.data import coeff257, records
from talkingjax.errors import InputError


def _coeff(t, seed=0):
    """Random [t, 257] coefficients with recognisable angle and translation columns."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(t, 257))
    c[:, 224:227] = np.radians(rng.normal(scale=5.0, size=(t, 3)))
    c[:, 254:257] = rng.normal(scale=0.2, size=(t, 3)) + np.array([0.0, 0.0, 0.5])
    return c


def _write_mat(path, coeff, **extra):
    scipy.io.savemat(path, {"coeff": coeff, **extra})
    return path


_write_wav = testdata.write_wav


# ------------------------------------------------------------------------------ load_coeff_pose


def test_load_coeff_pose_takes_angles_then_translation(tmp_path):
    c = _coeff(40)
    pose = coeff257.load_coeff_pose(_write_mat(tmp_path / "a.mat", c))
    assert pose.dtype == np.float32 and pose.shape == (40, 6)
    np.testing.assert_allclose(pose[:, :3], c[:, 224:227], rtol=1e-6)
    np.testing.assert_allclose(pose[:, 3:], c[:, 254:257], rtol=1e-6)


def test_leading_singleton_axis_is_squeezed(tmp_path):
    c = _coeff(12)
    pose = coeff257.load_coeff_pose(_write_mat(tmp_path / "a.mat", c[None]))
    np.testing.assert_allclose(pose, coeff257.coeff_to_pose(c))


def test_float32_coeff_is_accepted(tmp_path):
    c = _coeff(12).astype(np.float32)
    pose = coeff257.load_coeff_pose(_write_mat(tmp_path / "a.mat", c))
    np.testing.assert_array_equal(pose, np.concatenate([c[:, 224:227], c[:, 254:257]], axis=1))


def test_transposed_coeff_is_rejected_with_hint(tmp_path):
    path = _write_mat(tmp_path / "a.mat", _coeff(30).T)
    with pytest.raises(InputError, match="transposed"):
        coeff257.load_coeff_pose(path)


@pytest.mark.parametrize("shape", [(30, 256), (2, 30, 257), (30, 257, 1), (1, 1, 30, 257)])
def test_wrong_shapes_are_rejected(tmp_path, shape):
    path = _write_mat(tmp_path / "a.mat", np.zeros(shape))
    with pytest.raises(InputError, match="257"):
        coeff257.load_coeff_pose(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        coeff257.load_coeff_pose(tmp_path / "nope.mat")


@pytest.mark.parametrize("content", [b"", b"this is not a mat file " * 20])
def test_unreadable_file(tmp_path, content):
    path = tmp_path / "bad.mat"
    path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read"):
        coeff257.load_coeff_pose(path)


def test_truncated_file(tmp_path):
    good = _write_mat(tmp_path / "good.mat", _coeff(50))
    path = tmp_path / "cut.mat"
    path.write_bytes(good.read_bytes()[:400])
    with pytest.raises(InputError, match="cannot read"):
        coeff257.load_coeff_pose(path)


def test_matlab_v73_file_gets_a_specific_message(tmp_path):
    # The 128-byte header of a v7.3 (HDF5) MAT file: text, subsystem offset, version 0x0200.
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    path = tmp_path / "v73.mat"
    path.write_bytes(header + b"\x00" * 512)
    with pytest.raises(InputError, match="v7.3"):
        coeff257.load_coeff_pose(path)


def test_missing_coeff_key_lists_what_is_there(tmp_path):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"exp": np.zeros((5, 64)), "angle": np.zeros((5, 3))})
    with pytest.raises(InputError, match=r"no 'coeff'.*angle.*exp"):
        coeff257.load_coeff_pose(path)


def test_nan_frames_are_reported(tmp_path):
    c = _coeff(20)
    c[7, 3] = np.nan
    c[11, 250] = np.inf
    with pytest.raises(InputError, match=r"frames \[7, 11\]"):
        coeff257.load_coeff_pose(_write_mat(tmp_path / "a.mat", c))


def test_non_numeric_and_empty_coeff(tmp_path):
    path = _write_mat(tmp_path / "s.mat", "not numbers")
    with pytest.raises(InputError, match="numeric"):
        coeff257.load_coeff_pose(path)
    path = _write_mat(tmp_path / "e.mat", np.zeros((0, 257)))
    with pytest.raises(InputError):
        coeff257.load_coeff_pose(path)


# ------------------------------------------------------------------------------ clip_from_coeff


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_clip_from_coeff_aligns_pose_and_mfcc(tmp_path, fps):
    seconds = 6.0
    c = _coeff(int(seconds * fps) + 3)  # a few frames more than the audio covers
    mat = _write_mat(tmp_path / "talk.mat", c)
    wav = _write_wav(tmp_path / "talk.wav", seconds)
    clip = coeff257.clip_from_coeff(mat, wav, fps, video_id="v1", speaker_id="s1", split="test")
    assert isinstance(clip, records.Clip)
    assert (clip.clip_id, clip.video_id, clip.speaker_id, clip.split) == (
        "talk",
        "v1",
        "s1",
        "test",
    )
    assert clip.fps == fps
    feats = audio.speech_features(audio.load_audio(wav))
    n = audio.frames_in_features(len(feats), fps)
    assert clip.num_frames == n <= c.shape[0]
    np.testing.assert_allclose(clip.pose, coeff257.coeff_to_pose(c)[:n])
    # The stored rows are exactly those the frames use: nothing more, nothing less.
    assert audio.frames_in_features(len(clip.mfcc), fps) == clip.num_frames
    np.testing.assert_array_equal(clip.mfcc, feats[: len(clip.mfcc)])
    assert audio.frame_windows(clip.mfcc, fps).shape == (n, audio.WINDOW_ROWS, 13)


def test_clip_from_coeff_trims_audio_to_shorter_pose(tmp_path):
    fps = 25.0
    c = _coeff(140)  # 5.6 s of pose, 6 s of audio
    clip = coeff257.clip_from_coeff(
        _write_mat(tmp_path / "a.mat", c),
        _write_wav(tmp_path / "a.wav", 6.0),
        fps,
        "v",
        "s",
        clip_id="custom",
    )
    assert clip.clip_id == "custom"
    assert clip.num_frames == 140
    assert audio.frames_in_features(len(clip.mfcc), fps) == 140


def test_clip_from_coeff_rejects_length_mismatch(tmp_path):
    mat = _write_mat(tmp_path / "a.mat", _coeff(250))  # 10 s at 25 fps
    wav = _write_wav(tmp_path / "a.wav", 5.0)
    with pytest.raises(InputError, match="wrong file pairing or wrong fps"):
        coeff257.clip_from_coeff(mat, wav, 25.0, "v", "s")


def test_clip_from_coeff_rejects_short_clip(tmp_path):
    mat = _write_mat(tmp_path / "a.mat", _coeff(75))  # 3 s < records.MIN_CLIP_SECONDS
    wav = _write_wav(tmp_path / "a.wav", 3.0)
    with pytest.raises(InputError, match="at least"):
        coeff257.clip_from_coeff(mat, wav, 25.0, "v", "s")


def test_clip_from_coeff_bad_fps(tmp_path):
    with pytest.raises(InputError, match="fps"):
        coeff257.clip_from_coeff(tmp_path / "a.mat", tmp_path / "a.wav", 0.0, "v", "s")


# ------------------------------------------------------------------------- coeff_dir_to_dataset


def test_coeff_dir_to_dataset_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(["spkA_01", "spkA_02", "spkB_01"]):
        _write_mat(src / f"{name}.mat", _coeff(125, seed=i))
        _write_wav(src / f"{name}.wav", 5.0, seed=i)
    out = tmp_path / "ds"
    clips = coeff257.coeff_dir_to_dataset(src, out, 25.0, speaker_of=lambda n: n.split("_")[0])
    assert [c.clip_id for c in clips] == ["spkA_01", "spkA_02", "spkB_01"]
    loaded = records.load_dataset(out)
    assert [c.speaker_id for c in loaded] == ["spkA", "spkA", "spkB"]
    assert [c.video_id for c in loaded] == ["spkA_01", "spkA_02", "spkB_01"]
    for a, b in zip(clips, loaded, strict=True):
        np.testing.assert_array_equal(a.pose, b.pose)
        np.testing.assert_array_equal(a.mfcc, b.mfcc)


def test_coeff_dir_to_dataset_missing_audio_writes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write_mat(src / "a.mat", _coeff(125))
    _write_wav(src / "a.wav", 5.0)
    _write_mat(src / "b.mat", _coeff(125))
    out = tmp_path / "ds"
    with pytest.raises(InputError, match=r"no audio.*\['b'\]"):
        coeff257.coeff_dir_to_dataset(src, out, 25.0)
    assert not os.path.exists(out)


def test_coeff_dir_to_dataset_empty_or_missing_dir(tmp_path):
    with pytest.raises(InputError, match="no .mat"):
        coeff257.coeff_dir_to_dataset(tmp_path, tmp_path / "ds", 25.0)
    with pytest.raises(InputError, match="not found"):
        coeff257.coeff_dir_to_dataset(tmp_path / "nope", tmp_path / "ds", 25.0)
