"""Tests of talkingjax.predict.head_motion.HeadMotionPredictor with a fresh tiny model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import pose as pose_config
from talkingjax import audio
from talkingjax.data import records
from talkingjax.errors import InputError
from talkingjax.models import HeadMotionModel, build_model, rows_for_frames
from talkingjax.predict.head_motion import HeadMotionPredictor

SR = audio.SAMPLE_RATE


@pytest.fixture(scope="module")
def tiny():
    model = build_model(pose_config.get_config("tiny").model)
    variables = jax.jit(model.init)(
        jax.random.key(0), jnp.zeros((1, 10, 6)), jnp.zeros((1, rows_for_frames(8, 4), 13))
    )
    return model, variables


@pytest.fixture(scope="module")
def predictor(tiny):
    """Shared across tests (compiled functions are reused); see `fresh_predictor`."""
    model, variables = tiny
    return HeadMotionPredictor(model, variables, fps=25.0)


@pytest.fixture
def fresh_predictor(tiny):
    """A predictor with empty compilation caches."""
    model, variables = tiny
    return HeadMotionPredictor(model, variables, fps=25.0)


def _wave(seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.1 * t)
    return (0.2 * env * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.normal(size=t.size)).astype(
        np.float32
    )


def _pose_clip(frames, seed=0):
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(scale=0.01, size=(frames, 6)), axis=0)
    return walk.astype(np.float32)


def _pattern(seed=1):
    return np.random.default_rng(seed).normal(size=16).astype(np.float32)


# ----------------------------------------------------------------------------- encode_pattern


def test_encode_pattern_30fps_clip(tiny, predictor):
    model, variables = tiny
    clip = _pose_clip(150)  # 5 s at 30 fps
    x = predictor.encode_pattern(clip, fps=30.0)
    assert x.shape == (16,)
    assert np.all(np.isfinite(x))
    # Equals the encoder applied directly to the clip resampled to 25 fps (no bucket padding).
    at25 = records.resample_pose(clip, 30.0, 25.0)
    assert at25.shape == (125, 6)
    want = model.apply(variables, at25[None], method=HeadMotionModel.encode)[0]
    np.testing.assert_allclose(x, np.asarray(want), rtol=1e-5, atol=1e-5)


def test_encode_patterns_batch_of_different_lengths(predictor):
    clips = [_pose_clip(110, seed=1), _pose_clip(260, seed=2)]
    xs = predictor.encode_patterns(clips, fps=25.0)
    assert xs.shape == (2, 16)
    for clip, x in zip(clips, xs, strict=True):
        np.testing.assert_allclose(x, predictor.encode_pattern(clip, 25.0), rtol=1e-5, atol=1e-5)


def test_encode_pattern_rejects_short_clip(predictor):
    with pytest.raises(InputError, match=r"at least 4\.0 s"):
        predictor.encode_pattern(_pose_clip(119), fps=30.0)  # 3.97 s


def test_encode_pattern_rejects_nan(predictor):
    clip = _pose_clip(150)
    clip[17, 2] = np.nan
    with pytest.raises(InputError, match=r"NaN.*\[17\]"):
        predictor.encode_pattern(clip, fps=30.0)


# ----------------------------------------------------------------------------- predict_pose


@pytest.mark.parametrize("seconds", [1.0, 2.37, 4.013])
@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_predict_pose_length(predictor, seconds, fps):
    wave = _wave(seconds)
    pose = predictor.predict_pose(wave, _pattern(), fps=fps)
    assert pose.shape == (audio.num_video_frames(wave.size / SR, fps), 6)
    assert np.all(np.isfinite(pose))


def test_predict_pose_several_patterns(predictor):
    wave = _wave(2.5)
    patterns = np.stack([_pattern(1), _pattern(2), _pattern(3)])
    poses = predictor.predict_pose(wave, patterns)
    assert poses.shape == (3, 62, 6)
    np.testing.assert_allclose(poses[1], predictor.predict_pose(wave, patterns[1]), atol=1e-5)
    poses30 = predictor.predict_pose(wave, patterns, fps=30.0)
    assert poses30.shape == (3, 75, 6)


def test_predict_pose_equals_unpadded_model_apply(tiny, predictor):
    model, variables = tiny
    wave = _wave(3.3, seed=4)
    pattern = _pattern(5)
    frames = audio.num_video_frames(3.3, 25.0)
    got = predictor.predict_pose(wave, pattern)
    assert got.shape == (frames, 6)
    feats = audio.speech_features(wave)
    assert audio.window_starts(1, 25.0)[0] == 0
    rows = feats[: rows_for_frames(frames, 4)][None]
    want = model.apply(variables, rows, pattern[None], method=HeadMotionModel.decode)[0]
    assert want.shape == (frames, 6)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)


def test_predict_pose_30fps_is_time_resampled(predictor):
    wave = _wave(2.0, seed=6)
    pattern = _pattern(7)
    at25 = predictor.predict_pose(wave, pattern)
    at30 = predictor.predict_pose(wave, pattern, fps=30.0)
    assert at25.shape == (50, 6) and at30.shape == (60, 6)
    t30 = np.arange(60) / 30.0
    inside = t30 <= 49 / 25.0
    for j in range(6):
        want = np.interp(t30[inside], np.arange(50) / 25.0, at25[:, j])
        np.testing.assert_allclose(at30[inside, j], want, rtol=1e-5, atol=1e-5)


def test_same_bucket_does_not_recompile(fresh_predictor):
    predictor = fresh_predictor
    decode = predictor._decode
    assert hasattr(decode, "_cache_size"), "jax.jit objects expose _cache_size in jax 0.10"
    assert decode._cache_size() == 0
    predictor.predict_pose(_wave(3.1, seed=8), _pattern())
    assert decode._cache_size() == 1
    predictor.predict_pose(_wave(7.45, seed=9), _pattern(), fps=30.0)  # same 10 s bucket
    predictor.predict_pose(_wave(9.99, seed=10), _pattern())
    assert decode._cache_size() == 1
    predictor.predict_pose(_wave(10.5, seed=11), _pattern())  # next bucket
    assert decode._cache_size() == 2
    # Encoding is bucketed the same way (clip lengths in frames at the model fps).
    encode = predictor._encode
    predictor.encode_pattern(_pose_clip(120), fps=25.0)
    predictor.encode_pattern(_pose_clip(290), fps=30.0)
    assert encode._cache_size() == 1


def test_predict_pose_rejects_bad_audio(predictor):
    with pytest.raises(InputError, match="at least"):
        predictor.predict_pose(_wave(0.5), _pattern())
    bad = _wave(2.0)
    bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        predictor.predict_pose(bad, _pattern())
    with pytest.raises(InputError, match="silent"):
        predictor.predict_pose(np.zeros(2 * SR, np.float32), _pattern())
