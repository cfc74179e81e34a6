"""Tests of the synthetic audio-to-expression corpus (talkingjax.data.synthetic_expression)."""

import dataclasses
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax import audio
from talkingjax.data import records, synthetic
from talkingjax.data import synthetic_expression as se
from talkingjax.errors import InputError
from talkingjax.face3d import default
from talkingjax.face3d import model as mm

FPS = 25.0
CM = 0.1  # model units


@pytest.fixture(scope="module")
def model():
    return default.load_default()


@pytest.fixture(scope="module")
def directions(model):
    return se.mouth_directions(model)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("expression_corpus")
    args = dict(num_videos=4, num_test_videos=2, seconds_per_video=6.0, fps=FPS, seed=0)
    return root, args, se.generate_expression_corpus(root, **args)


@pytest.fixture(scope="module")
def videos(model):
    """8 videos (4 speakers) of 15 s with their waveforms: enough frames for a ridge fit."""
    return list(se.expression_videos(8, 0, 15.0, FPS, seed=0, model=model))


def _vertices(model, exp):
    """Mean-identity vertices [..., V, 3] for expression coefficients [..., K_exp]."""
    exp = jnp.asarray(exp, jnp.float32)
    ids = jnp.zeros((*exp.shape[:-1], model.sizes[0]), jnp.float32)
    return np.asarray(mm.shape(model, ids, exp), np.float64)


def _mouth(model, vertices):
    """(inner-lip gap 62-66, corner distance 48-54) of vertices [..., V, 3]."""
    lm = np.asarray(model.landmarks)
    gap = vertices[..., lm[62], 1] - vertices[..., lm[66], 1]
    width = np.linalg.norm(vertices[..., lm[54], :] - vertices[..., lm[48], :], axis=-1)
    return gap, width


def _ridge_r2(x_fit, y_fit, x_eval, y_eval, lam=0.3):
    """Variance-weighted R^2 (all outputs pooled) of a ridge fit on standardized inputs."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    x_fit, x_eval = (x_fit - mu) / sd, (x_eval - mu) / sd
    my = y_fit.mean(0)
    w = np.linalg.solve(
        x_fit.T @ x_fit + lam * len(x_fit) * np.eye(x_fit.shape[1]), x_fit.T @ (y_fit - my)
    )
    pred = x_eval @ w + my
    return float(1.0 - ((y_eval - pred) ** 2).sum() / ((y_eval - y_eval.mean(0)) ** 2).sum())


# ----------------------------------------------------------------------------- directions


def test_directions_have_their_geometric_effect(model, directions):
    k_exp = model.sizes[1]
    assert set(directions) == set(se.DIRECTION_NAMES)
    for d in directions.values():
        assert d.shape == (k_exp,) and d.dtype == np.float32 and np.isfinite(d).all()
    lm = np.asarray(model.landmarks)
    rest = _vertices(model, np.zeros(k_exp))
    rest_gap, rest_width = _mouth(model, rest)
    eyes = list(lm[36:48])
    for name in se.DIRECTION_NAMES:
        for amount in (0.5, 1.0):
            v = _vertices(model, amount * directions[name])
            gap, width = _mouth(model, v)
            eye_move = np.linalg.norm(v[eyes] - rest[eyes], axis=-1).max()
            print(
                f"{name} {amount}: gap {100 * (gap - rest_gap):+.1f} mm, width "
                f"{100 * (width - rest_width):+.1f} mm, eyes {100 * eye_move:.2f} mm"
            )
            if name == "open":
                # 1 cm of inner-lip opening per unit, linear; the eyes stay (< 1.5 mm per cm).
                assert gap - rest_gap == pytest.approx(amount * CM, rel=1e-3)
                assert eye_move < 0.15 * amount * CM
                # The jaw drops: the chin goes down by about as much as the lip gap opens.
                assert v[lm[8], 1] - rest[lm[8], 1] < -0.5 * amount * CM
            else:
                sign = -1.0 if name == "round" else 1.0
                assert width - rest_width == pytest.approx(sign * amount * CM, rel=0.02)
                assert abs(gap - rest_gap) < 1e-4  # the opening is "open"'s alone
                assert eye_move < 0.25 * amount * CM
    # Rounding pushes the lips forward, spreading pulls them back.
    lips = [lm[51], lm[57]]
    forward = {
        name: (_vertices(model, directions[name])[lips, 2] - rest[lips, 2]).mean()
        for name in ("round", "spread")
    }
    assert forward["round"] > 0.0 > forward["spread"]


def test_direction_errors(model):
    no_landmarks = model.replace(landmarks=jnp.zeros(0, jnp.int32))
    with pytest.raises(InputError, match="68 landmarks"):
        se.mouth_directions(no_landmarks)
    no_expression = model.replace(exp_basis=jnp.zeros((0, *model.exp_basis.shape[1:])))
    with pytest.raises(InputError, match="no expression basis"):
        se.mouth_directions(no_expression)


# ----------------------------------------------------------------------------- speech


def test_mouth_drive_envelope_and_formants():
    # Pause, a rounded vowel, pause, a spread vowel, pause.
    pause = np.zeros(8000, np.float32)
    oo = synthetic._trim_silence(synthetic.synthesize_speech("who who who", "en-us"))
    ee = synthetic._trim_silence(synthetic.synthesize_speech("he he he", "en-us"))
    wave = np.concatenate([pause, oo, pause, ee, pause])
    wave += np.random.default_rng(0).normal(0.0, 1e-3, wave.size).astype(np.float32)
    drive = se.mouth_drive(wave, FPS, lead=0.0, smoothing=0.03)
    assert drive.shape == (audio.num_video_frames(wave.size / 16000, FPS), 2)
    assert drive.dtype == np.float32 and np.isfinite(drive).all()
    t = (np.arange(drive.shape[0]) + 0.5) / FPS
    s_oo, s_ee = 0.5, 1.0 + oo.size / 16000

    def part(start, length):
        return (t > start + 0.1) & (t < start + length - 0.1)

    silent = t < 0.35
    env, formant = drive[:, 0], drive[:, 1]
    assert np.all(env[silent] == 0.0) and np.all(formant[silent] == 0.0)
    assert 0.0 <= env.min() and env.max() <= 1.0
    assert env[part(s_oo, oo.size / 16000)].mean() > 0.3
    assert formant[part(s_oo, oo.size / 16000)].mean() < -0.3  # /u/: low formants, rounding
    assert formant[part(s_ee, ee.size / 16000)].mean() > 0.3  # /i/: high F2, spreading
    # The lead reads the sound ahead: the mouth moves before the sound starts.
    onset = np.argmax(env > 0.1)
    assert se.mouth_drive(wave, FPS, lead=0.08)[onset - 2, 0] > 0.1


# ----------------------------------------------------------------------------- corpus


def test_corpus_format_and_round_trip(corpus, model, tmp_path):
    root, args, clips = corpus
    loaded = records.load_dataset(root)
    assert [c.split for c in loaded] == ["train"] * 4 + ["test"] * 2
    k_exp = model.sizes[1]
    for clip, orig in zip(loaded, clips, strict=True):
        assert clip.exp.shape == (clip.num_frames, k_exp) == (150, k_exp)
        assert clip.exp.dtype == np.float32 and np.isfinite(clip.exp).all()
        np.testing.assert_array_equal(clip.exp, orig.exp)
        gap, _ = _mouth(model, _vertices(model, clip.exp))
        assert gap.min() > 0.0  # the lips never pass through each other
        assert 0.6 * CM < gap.max() < 2.0 * CM  # speech opens the mouth ~1 cm
    # Speech, head pose and ids are the head-motion corpus's for the same seed.
    plain = synthetic.generate_corpus(tmp_path / "plain", **args)
    for clip, base in zip(clips, plain, strict=True):
        assert (clip.clip_id, clip.speaker_id, clip.split) == (
            base.clip_id,
            base.speaker_id,
            base.split,
        )
        np.testing.assert_array_equal(clip.pose, base.pose)
        np.testing.assert_array_equal(clip.mfcc, base.mfcc)
        np.testing.assert_array_equal(clip.style, base.style)


def test_deterministic_for_a_seed(corpus, tmp_path):
    _, args, clips = corpus
    again = se.generate_expression_corpus(tmp_path / "again", **args)
    for a, b in zip(clips, again, strict=True):
        np.testing.assert_array_equal(a.exp, b.exp)
    other = se.generate_expression_corpus(tmp_path / "other", **{**args, "seed": 1})
    for a, b in zip(clips, other, strict=True):
        assert not np.allclose(a.exp, b.exp)


def test_opening_follows_the_envelope_and_rests_in_silence(videos, model):
    for v in videos:
        t_len = v.exp.shape[0]
        gap, _ = _mouth(model, _vertices(model, v.exp))
        rest_gap, _ = _mouth(model, _vertices(model, v.style.rest))
        # Envelope smoothed and led by a generic amount (not the speaker's own values).
        env = se.mouth_drive(v.video.wave, FPS, t_len, lead=0.06, smoothing=0.04)[:, 0]
        own = se.mouth_drive(v.video.wave, FPS, t_len, v.style.lead, v.style.smoothing)[:, 0]
        r_generic, r_own = np.corrcoef(gap, env)[0, 1], np.corrcoef(gap, own)[0, 1]
        silent = env < 0.01
        print(
            f"{v.video.video_id}: corr {r_generic:.3f} (own lead/smoothing {r_own:.3f}); "
            f"{silent.sum()} silent frames, max |gap - rest| "
            f"{100 * np.abs(gap[silent] - rest_gap).max():.2f} mm"
        )
        assert r_generic > 0.9 and r_own > 0.95
        assert silent.sum() >= 5
        assert np.abs(gap[silent] - rest_gap).max() < 0.1 * CM  # < 1 mm from the resting mouth
        assert gap.max() - rest_gap > 0.5 * CM


def test_speakers_differ(videos, model, directions):
    by_speaker = {}
    for v in videos:
        by_speaker.setdefault(v.video.speaker.speaker_id, []).append(v.style)
    assert len(by_speaker) == 4
    for styles in by_speaker.values():  # one style per person, for all their videos
        assert len(styles) == 2
        np.testing.assert_array_equal(styles[0].rest, styles[1].rest)
        assert styles[0].open_gain == styles[1].open_gain
    rests = np.stack([s[0].rest for s in by_speaker.values()])
    assert np.linalg.norm(rests[:, None] - rests[None], axis=-1)[np.triu_indices(4, 1)].min() > 0.1
    # The same speech spoken by two speakers: their mouths move clearly differently.
    wave = videos[0].video.wave
    t_len = videos[0].exp.shape[0]
    styles = [s[0] for s in by_speaker.values()]
    exps = [
        se.expression_from_speech(wave, FPS, t_len, directions, s, np.random.default_rng(0))
        for s in styles
    ]
    gaps = [_mouth(model, _vertices(model, e))[0] for e in exps]
    for i in range(len(exps)):
        for j in range(i + 1, len(exps)):
            assert np.abs(exps[i] - exps[j]).mean() > 0.1
            assert np.abs(gaps[i] - gaps[j]).mean() > 0.03 * CM
    # ... and the same speaker's style with other noise gives nearly the same expression.
    redraw = se.expression_from_speech(
        wave, FPS, t_len, directions, styles[0], np.random.default_rng(1)
    )
    assert np.abs(redraw - exps[0]).mean() < 0.5 * np.abs(exps[1] - exps[0]).mean()


def test_expression_is_learnable_from_mfcc_windows(videos):
    # One linear map from each frame's 280 ms MFCC window to its expression, pooled over
    # speakers, fitted on alternate 1 s blocks and scored on the others.
    x = np.concatenate(
        [
            audio.frame_windows(audio.speech_features(v.video.wave), FPS, v.exp.shape[0])
            .reshape(v.exp.shape[0], -1)
            .astype(np.float64)
            for v in videos
        ]
    )
    y = np.concatenate([v.exp.astype(np.float64) for v in videos])
    frame = np.concatenate([np.arange(v.exp.shape[0]) for v in videos])
    fit = (frame // int(FPS)) % 2 == 0
    r2 = _ridge_r2(x[fit], y[fit], x[~fit], y[~fit])
    perm = np.random.default_rng(0).permutation(fit.sum())
    r2_shuffled = _ridge_r2(x[fit], y[fit][perm], x[~fit], y[~fit])
    print(f"held-out R^2 {r2:.3f}, time-shuffled {r2_shuffled:.3f}")
    assert r2 > 0.5
    assert r2_shuffled < 0.1


# ----------------------------------------------------------------------------- errors / CLI


def test_bad_arguments_are_input_errors(tmp_path, directions):
    with pytest.raises(InputError):
        se.generate_expression_corpus(tmp_path, 0, 0)
    with pytest.raises(InputError):
        se.generate_expression_corpus(tmp_path, 1, 0, seconds_per_video=2.0)
    assert not (tmp_path / "manifest.json").exists()
    style = se.sample_expression_style(np.random.default_rng(0), 3)
    with pytest.raises(InputError, match="coefficients"):
        se.expression_from_speech(
            np.zeros(16000, np.float32), FPS, 25, directions, style, np.random.default_rng(0)
        )
    with pytest.raises(InputError):
        dataclasses.replace(style, rest=np.full(3, np.nan))


def test_command_line(tmp_path, model):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "experiments.make_synthetic_expression",
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
    assert all(c.exp.shape == (125, model.sizes[1]) for c in clips)
