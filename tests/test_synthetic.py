"""Tests of the synthetic head-motion corpus (talkingjax.data.synthetic)."""

import subprocess
import sys

import numpy as np
import pytest

from talkingjax import audio
from talkingjax.data import records, synthetic
from talkingjax.errors import InputError

FPS = 25.0
DEG = np.pi / 180.0


def _corpus(root, seed, **kwargs):
    args = dict(num_videos=4, num_test_videos=2, seconds_per_video=8.0, fps=FPS, seed=seed)
    args.update(kwargs)
    return synthetic.generate_corpus(root, **args)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, _corpus(root, seed=0)


def _videos(seed, count, seconds=20.0, style=None):
    """`count` videos of distinct speakers; each its own style unless `style` is given."""
    videos = []
    for child in np.random.SeedSequence(seed).spawn(count):
        rng = np.random.default_rng(child)
        speaker = synthetic.sample_speaker(rng)
        video_style = synthetic.sample_style(rng) if style is None else style
        videos.append(synthetic.synthesize_video(speaker, video_style, rng, seconds, FPS))
    return videos


def _features(prosody):
    """Audio features that can express the generator's style-specific smoothing linearly:
    the prosody and low-passed copies of it at several time constants."""
    p = prosody.astype(np.float64)
    bank = [p] + [synthetic.lowpass(p, tau, FPS) for tau in (0.08, 0.16, 0.32, 0.64)]
    return np.concatenate(bank, axis=1)


def _ridge_r2(x_fit, y_fit, x_eval, y_eval, lam=1e-2):
    """R^2 (mean over the 6 pose axes) of a ridge regression with unpenalized intercept."""
    mx, my = x_fit.mean(0), y_fit.mean(0)
    xc = x_fit - mx
    w = np.linalg.solve(xc.T @ xc + lam * len(xc) * np.eye(xc.shape[1]), xc.T @ (y_fit - my))
    pred = (x_eval - mx) @ w + my
    sse = ((y_eval - pred) ** 2).sum(0)
    sst = ((y_eval - y_eval.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - sse / sst))


# ----------------------------------------------------------------------------- format


def test_corpus_round_trip(corpus):
    root, clips = corpus
    loaded = records.load_dataset(root)
    assert [c.clip_id for c in loaded] == [c.clip_id for c in clips]
    assert len(records.load_dataset(root, split="train")) == 4
    assert len(records.load_dataset(root, split="test")) == 2
    for clip, orig in zip(loaded, clips, strict=True):
        assert clip.fps == FPS
        assert clip.num_frames == audio.num_video_frames(8.0, FPS) == 200
        assert clip.pose.shape == (200, 6) and clip.pose.dtype == np.float32
        assert clip.mfcc.shape[1] == audio.NUM_CEPSTRA
        assert clip.num_frames <= audio.frames_in_features(clip.mfcc.shape[0], FPS)
        assert clip.style.shape == (synthetic.STYLE_DIM,)
        assert np.isfinite(clip.pose).all() and np.isfinite(clip.mfcc).all()
        np.testing.assert_array_equal(clip.pose, orig.pose)
        np.testing.assert_array_equal(clip.style, orig.style)
        angles = clip.pose[:, :3] / DEG
        assert np.abs(angles).max() < 35.0
        assert 0.3 < angles.std(0).max() < 15.0  # the head moves, within talking-head ranges
        assert np.abs(clip.pose[:, 3:]).max() < 0.8
        # The stored style is the one that made the pose: its rest pose is near the mean pose.
        style = synthetic.MotionStyle.from_vector(clip.style)
        assert np.all(np.abs(clip.pose.mean(0)[:3] - style.rest[:3]) < 3.0 * style.amplitude[:3])


def test_test_split_has_unseen_speakers_and_styles(corpus):
    _, clips = corpus
    train = [c for c in clips if c.split == "train"]
    test = [c for c in clips if c.split == "test"]
    train_voices = {c.speaker_id.split("_r")[0] for c in train}
    assert not {c.speaker_id.split("_r")[0] for c in test} & train_voices
    # Speakers are reused across videos with different styles, so voice does not give style.
    assert len({c.speaker_id for c in train}) == 2
    styles = np.stack([c.style for c in clips])
    assert len({tuple(s) for s in styles}) == len(clips)


def test_deterministic_for_a_seed(corpus, tmp_path):
    _, clips = corpus
    again = _corpus(tmp_path / "again", seed=0)
    for a, b in zip(clips, again, strict=True):
        np.testing.assert_array_equal(a.pose, b.pose)
        np.testing.assert_array_equal(a.mfcc, b.mfcc)
        np.testing.assert_array_equal(a.style, b.style)
        assert a.speaker_id == b.speaker_id
    other = _corpus(tmp_path / "other", seed=1, num_test_videos=0)
    for a, b in zip(clips, other, strict=False):
        assert not np.array_equal(a.style, b.style)
        assert a.pose.shape != b.pose.shape or not np.allclose(a.pose, b.pose)


def test_style_vector_round_trip():
    style = synthetic.sample_style(np.random.default_rng(3))
    v = style.to_vector()
    assert v.shape == (synthetic.STYLE_DIM,) and v.dtype == np.float32
    np.testing.assert_array_equal(synthetic.MotionStyle.from_vector(v).to_vector(), v)
    with pytest.raises(InputError):
        synthetic.MotionStyle.from_vector(v[:-1])


def test_sentences_asset():
    sentences = synthetic.load_sentences()
    assert 80 <= len(sentences) <= 120
    assert len(set(sentences)) == len(sentences)
    assert all(6 <= len(s.split()) <= 20 for s in sentences)


def test_prosody_follows_the_speech():
    rng = np.random.default_rng(0)
    speaker = synthetic.Speaker("en-gb", 160, 50, -6.0)
    wave, starts = synthetic.compose_speech(synthetic.load_sentences(), speaker, rng, 10.0)
    assert wave.shape == (160_000,) and wave.dtype == np.float32
    p = synthetic.prosody(wave, FPS)
    assert p.shape == (250, 3) and np.isfinite(p).all()
    # Frame k is read at (k + 0.5) / fps; frames in the leading pause are silent and unvoiced.
    first_speech = int(starts[0] / synthetic.SAMPLE_RATE * FPS)
    assert first_speech >= 2
    assert np.all(p[: first_speech - 1, 0] == 0.0)
    assert p[: first_speech - 1, 1].max() < -1.0
    voiced = p[:, 0] != 0.0
    assert 0.3 < voiced.mean() < 0.95
    assert p[voiced, 1].mean() > p[~voiced, 1].mean() + 0.5  # voiced frames are louder


# ----------------------------------------------------------------------------- one-to-many


def _angle_difference(pose_a, pose_b, remove_mean=False):
    """Mean |difference| of the angle trajectories relative to their mean std."""
    a, b = pose_a[:, :3] / DEG, pose_b[:, :3] / DEG
    scale = 0.5 * (a.std(0) + b.std(0)).mean()
    if remove_mean:
        a, b = a - a.mean(0), b - b.mean(0)
    return np.abs(a - b).mean() / scale


def test_same_speech_different_styles_gives_different_pose():
    rng = np.random.default_rng(7)
    styles = [synthetic.sample_style(rng) for _ in range(4)]
    videos = synthetic.same_speech_different_styles(styles + styles[:1], seconds=12.0, seed=3)
    for v in videos[1:]:
        np.testing.assert_array_equal(v.wave, videos[0].wave)
        np.testing.assert_array_equal(v.prosody, videos[0].prosody)
    # Same speech, same style, same motion randomness: the same pose.
    np.testing.assert_array_equal(videos[4].pose, videos[0].pose)
    # Same speech and style, other motion randomness (rhythm phase, per-utterance coupling,
    # noise): a similar pose. This sets the scale of "clearly different" below.
    speech = videos[0].wave
    starts = videos[0].utterance_starts * synthetic.SAMPLE_RATE // int(FPS)
    redraw = synthetic.video_from_speech(
        speech, starts, videos[0].speaker, styles[0], np.random.default_rng(99), FPS
    )
    same_style = _angle_difference(videos[0].pose, redraw.pose)
    # Same speech, different styles: clearly different pose, also after removing the mean
    # pose (the dynamics differ, not just the rest offset).
    for i in range(4):
        for j in range(i + 1, 4):
            assert _angle_difference(videos[i].pose, videos[j].pose) > max(2 * same_style, 0.8)
            assert _angle_difference(videos[i].pose, videos[j].pose, remove_mean=True) > 0.45


def test_one_to_many_audio_alone_fits_badly_style_known_fits_well():
    videos = _videos(seed=5, count=12)
    feats = [_features(v.prosody) for v in videos]
    poses = [v.pose.astype(np.float64) for v in videos]
    x, y = np.concatenate(feats), np.concatenate(poses)
    # Audio alone, one mapping for all videos, scored on its own training data (generous).
    pooled = _ridge_r2(x, y, x, y)
    # ... even when told each video's mean pose (rest), the coupling direction is unknown.
    y_centred = np.concatenate([p - p.mean(0) for p in poses])
    pooled_rest_known = _ridge_r2(x, y_centred, x, y_centred)
    # Style known: one mapping per video, fitted on its first half, scored on the second half.
    per_video = [
        _ridge_r2(f[: len(f) // 2], p[: len(p) // 2], f[len(f) // 2 :], p[len(p) // 2 :])
        for f, p in zip(feats, poses, strict=True)
    ]
    print(
        f"R^2 pooled {pooled:.3f}, rest known {pooled_rest_known:.3f}, "
        f"per video {np.mean(per_video):.3f} (min {np.min(per_video):.3f})"
    )
    assert pooled < 0.2
    assert pooled_rest_known < 0.3
    assert np.mean(per_video) > 0.6
    assert np.median(per_video) > 0.6


def test_pooled_fit_works_when_all_videos_share_a_style():
    # Control for the test above: with one shared style the same pooled regression fits well,
    # so its low R^2 there comes from the styles, not from a regression unable to fit.
    style = synthetic.sample_style(np.random.default_rng(11))
    videos = _videos(seed=6, count=4, seconds=15.0, style=style)
    x = np.concatenate([_features(v.prosody) for v in videos])
    y = np.concatenate([v.pose.astype(np.float64) for v in videos])
    r2 = _ridge_r2(x, y, x, y)
    print(f"R^2 pooled, shared style {r2:.3f}")
    assert r2 > 0.6


# ----------------------------------------------------------------------------- errors / CLI


def test_missing_espeak_is_an_input_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="espeak-ng is not installed"):
        synthetic.synthesize_speech("Hello there.")
    with pytest.raises(InputError, match="espeak-ng is not installed"):
        _corpus(tmp_path / "corpus", seed=0)
    assert not (tmp_path / "corpus" / "manifest.json").exists()


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        synthetic.synthesize_speech("Hello.", voice="nosuchvoice")
    with pytest.raises(InputError):
        synthetic.generate_corpus(tmp_path, 0, 0)
    with pytest.raises(InputError):
        synthetic.generate_corpus(tmp_path, 1, 0, seconds_per_video=2.0)


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "experiments.make_synthetic",
        f"--out={out}",
        "--videos=2",
        "--test_videos=1",
        "--seconds=5",
        "--seed=4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    clips = records.load_dataset(out)
    assert [c.split for c in clips] == ["train", "train", "test"]
