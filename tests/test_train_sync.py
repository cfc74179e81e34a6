"""The AV-sync instrument end to end on tiny data: the run layout of the sampler and loss, the
trainer on synthetic clips whose mouth follows the speech energy (resume, export), the scorer
(arrays and mp4), and the instrument checks of issue 19 with their known answers:
in sync -> offset 0, audio shifted by k -> offset k, a still frame -> no confidence.

Runs on the four faked CPU devices of conftest.py.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import train_sync
from experiments.configs import sync as sync_config
from talkingjax.data import sync as sync_data
from talkingjax.errors import InputError
from talkingjax.evaluation import sync as sync_eval
from talkingjax.losses import sync as sync_losses
from talkingjax.metrics import sync as sync_metrics
from talkingjax.models.sync import TINY, SyncNet
from talkingjax.predict import SyncScorer
from talkingjax.predict import sync as sync_predict
from talkingjax.train import sync as sync_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synthetic_video as sv  # noqa: E402


def _tiny(steps=120):
    c = sync_config.get_config("tiny")
    c.train.steps = steps
    return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on synthetic clips, checked on val (chooses the threshold)."""
    workdir = str(tmp_path_factory.mktemp("sync") / "run")
    val = train_sync.train_and_evaluate(_tiny(), workdir)
    return workdir, val


# ------------------------------------------------------------------------------ run layout


def test_run_starts_match_brute_force():
    rng = np.random.default_rng(0)
    w = np.flatnonzero(rng.random(60) < 0.8)
    for run in (1, 3, 5):
        want = [t for t in w if all(t + i in set(w) for i in range(run))]
        np.testing.assert_array_equal(sync_data.run_starts(w, run), want)
    assert len(sync_data.run_starts(w[:2], 5)) == 0
    with pytest.raises(InputError):
        sync_data.run_starts(w, 0)


def _locate(clips, window):
    """(clip, first frame) of an unaugmented video window [48, 96, 5]."""
    frames = np.round(np.moveaxis(window, -1, 0) * 255)
    for c in clips:
        for t in range(c.num_frames - 4):
            if np.array_equal(c.mouths[t : t + 5], frames):
                return c, t
    raise AssertionError("window not found")


def test_run_sampler_candidates_equal_per_window_candidates():
    clips = [sync_data.synthetic_sync_clip(s, 3.0) for s in (1, 2)]
    k, run = 4, 3
    per_window = sync_data.SyncSampler(clips, 5, k, augment=False)
    runs = sync_data.SyncSampler(clips, 5, k, augment=False, run=run)
    b = runs.sample(3, 4)
    assert b["video"].shape == (4, run, 48, 96, 5) and b["audio"].shape == (4, run + 2 * k, 20, 13)
    assert runs.sample(3, 4)["audio"].tobytes() == b["audio"].tobytes()  # pure in the step
    # Every window r of a run: the gathered candidates are the per-window layout's.
    cand = np.asarray(sync_losses.run_candidates(jnp.asarray(b["audio"]), run, k))
    assert cand.shape == (4, run, 2 * k + 1, 20, 13)
    for g in range(4):
        clip, t0 = _locate(clips, b["video"][g, 0])
        for r in range(run):
            want = sync_data.audio_windows(clip.mfcc, [t0 + r], per_window.offsets)[0]
            np.testing.assert_array_equal(cand[g, r], want)
    spaced = sync_losses.run_candidates(jnp.asarray(b["audio"]), run, k, stride=2)
    np.testing.assert_array_equal(np.asarray(spaced), cand[:, :, ::2])


def test_run_matching_loss_matches_the_per_window_loss():
    rng = np.random.default_rng(1)
    g, r, k, d = 2, 3, 4, 6
    v = jnp.asarray(rng.normal(size=(g, r, d)), jnp.float32)
    a = jnp.asarray(rng.normal(size=(g, r + 2 * k, d)), jnp.float32)
    for stride in (1, 2, 4):
        loss, acc = sync_losses.run_matching_loss(v, a, k, stride, temperature=0.5)
        idx = np.arange(r)[:, None] + stride * np.arange(2 * k // stride + 1)
        cand = np.asarray(a)[:, idx].reshape(g * r, -1, d)
        vv = np.asarray(v).reshape(g * r, d)
        target = jnp.full((g * r,), k // stride, jnp.int32)
        want = sync_losses.multiway_matching_loss(vv, cand, target, 0.5)
        np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)
        assert float(acc) == pytest.approx(
            float(sync_losses.offset_accuracy(vv, cand, target)), abs=1e-6
        )
    with pytest.raises(ValueError):
        sync_losses.run_candidates(a, r, 3, stride=2)


# ------------------------------------------------------------------------------ manipulations


def _oracle(clip, k=15):
    """The protocol with hand-made embeddings (mouth darkness vs energy), as in test_sync."""
    num = clip.num_frames - 4
    v = 1.0 - sync_data.video_windows(clip.mouths, np.arange(num)).mean(axis=(1, 2))
    wins, present = sync_data.audio_scan(clip.mfcc, num, k)
    a = wins[..., 0].reshape(len(wins), 5, 4).mean(axis=-1)
    v = v - v.mean(axis=1, keepdims=True)
    a = a - a.mean(axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-9
    a[~present] = np.nan
    return sync_metrics.av_sync(sync_metrics.distance_matrix(v, a, k))


@pytest.mark.parametrize("k", [-6, -3, 3, 6])
def test_shifted_audio_scores_the_shift_and_matches_a_lagged_clip(k):
    clip = sync_data.synthetic_sync_clip(3, 6.0)
    assert _oracle(clip).offset == 0
    shifted = sync_data.shifted_clip(clip, k)
    assert shifted.mfcc.shape == clip.mfcc.shape
    assert _oracle(shifted).offset == k
    # Shifting rows is what generating the clip with the audio lagging by k frames gives.
    lagged = sync_data.synthetic_sync_clip(3, 6.0, lag=k)
    inner = slice(12 + 4 * abs(k), len(clip.mfcc) - 4 * abs(k) - 40)
    np.testing.assert_array_equal(shifted.mfcc[inner, 0], lagged.mfcc[inner, 0])
    back = sync_data.shift_audio(shifted.mfcc, -k)
    np.testing.assert_array_equal(back[inner], clip.mfcc[inner])


def test_still_clip_repeats_the_first_detected_mouth():
    clip = sync_data.synthetic_sync_clip(4, 3.0)
    detected = clip.detected.copy()
    detected[:3] = False
    clip = sync_data.SyncClip("c", clip.mouths, clip.mfcc, detected)
    still = sync_data.still_clip(clip)
    assert still.num_frames == clip.num_frames and still.detected.all()
    assert (still.mouths == clip.mouths[3]).all()
    np.testing.assert_array_equal(still.mfcc, clip.mfcc)
    assert _oracle(still).confidence < 0.05 * _oracle(clip).confidence


def test_threshold_rule():
    rows = [{"confidence": c, "still": {"confidence": s}} for c, s in ((0.2, 0.01), (0.08, 0.02))]
    t = sync_eval.choose_threshold(rows)
    assert t["separated"] and t["no_confidence"] == pytest.approx(np.sqrt(0.02 * 0.08))
    rows.append({"confidence": 0.005, "still": {"confidence": 0.03}})
    t = sync_eval.choose_threshold(rows)
    assert not t["separated"] and t["no_confidence"] == pytest.approx(np.sqrt(0.02 * 0.08))


# ------------------------------------------------------------------------------ trained


def test_tiny_model_passes_the_instrument_checks(trained, tmp_path):
    workdir, val = trained
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert lines[-1]["offset_accuracy"] > 0.9
    s = val["summary"]
    assert s["in_sync_within_1"] == s["clips"] == 4
    assert s["shifted_within_1"] == s["shifted_cases"] == 16
    assert s["still_below_threshold"] == 4 and s["in_sync_above_threshold"] == 4
    assert s["other_audio_below_threshold"] == s["other_audio_cases"] == 4
    assert val["threshold"]["separated"]
    info = json.load(open(os.path.join(workdir, "instrument.json")))
    assert info["no_confidence"] == pytest.approx(val["threshold"]["no_confidence"])
    # Held-out clips judged with the val threshold: the three checks pass.
    test = sync_eval.evaluate_workdir(workdir, "test")
    s = test["summary"]
    assert s["in_sync_within_1"] == 4 and s["shifted_within_1"] == 16
    assert s["still_below_threshold"] == 4 and s["in_sync_above_threshold"] == 4
    assert os.path.isfile(os.path.join(workdir, "eval", "sync_test.md"))
    assert json.load(open(os.path.join(workdir, "train_clips.json")))["clips"][0]["windows"] > 0
    # Exported (params only), the model scores the same; bf16 nearly so.
    scorer = SyncScorer.from_workdir(workdir)
    clip = sync_data.synthetic_sync_clip(999, 6.0, lag=2)
    want = scorer.score_clip(clip)
    assert want.offset == 2
    for dtype, tol in (("float32", 1e-5), ("bfloat16", 0.05)):
        out = str(tmp_path / dtype)
        sync_predict.export(workdir, out, dtype=dtype)
        again = SyncScorer.from_exported(out)
        assert again.no_confidence == pytest.approx(scorer.no_confidence)
        got = again.score_clip(clip)
        assert got.offset == want.offset
        np.testing.assert_allclose(got.curve, want.curve, rtol=tol, atol=tol)
    with pytest.raises(InputError):
        SyncScorer.from_exported(str(tmp_path))


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    # The curriculum: a spaced phase (candidates every 5 offsets), then all offsets; the run
    # is stopped inside the second phase and resumed.
    c = _tiny(steps=2)
    c.train.spaced_steps, c.train.spaced_stride = 2, 5
    c.train.checkpoint_every = c.train.log_every = 1
    c.data.synthetic_clips = 2
    whole = sync_train.train(c, str(tmp_path / "whole"))
    lines = [json.loads(x) for x in open(tmp_path / "whole" / "metrics.jsonl")]
    assert [x["phase"] for x in lines] == ["spaced"] * 2 + ["all"] * 2
    sync_train.train(c, str(tmp_path / "resumed"), stop_after=3)
    resumed = sync_train.train(c, str(tmp_path / "resumed"))
    assert int(resumed.step) == 4
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    c.train.spaced_stride = 2  # 5 % 2 != 0: offset 0 would not be a candidate
    with pytest.raises(InputError, match="multiple of the stride"):
        sync_train.train(c, str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad" / "config.json")


def test_real_data_config_needs_its_corpus(tmp_path):
    c = _tiny()
    c.data.root = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not a directory"):
        sync_train.train(c, str(tmp_path / "w"))
    (tmp_path / "empty").mkdir()
    c.data.root = str(tmp_path / "empty")
    with pytest.raises(InputError, match="none of the train speakers"):
        sync_train.train(c, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w" / "config.json")


# ------------------------------------------------------------------------------ scorer inputs


def _untrained_scorer():
    model = SyncNet(**TINY)
    c = _tiny()
    c.model.video_features, c.model.audio_features = TINY["video_features"], TINY["audio_features"]
    params = sync_train.init_variables(c, model)["params"]
    return SyncScorer(model, params)


def test_score_arrays_on_frames_with_landmarks():
    from test_sync import _face

    rng = np.random.default_rng(2)
    n, fps = 60, 30.0
    rgb, lm = _face(112.0, 150.0, 0.0)
    frames = np.stack([rgb] * n)
    frames[::2, 140:160] = 60  # something moves in the mouth region
    wave = rng.normal(0, 0.1, int(n / fps * 16000)).astype(np.float32)
    scorer = _untrained_scorer()
    score = scorer.score_arrays(frames, np.stack([lm] * n), wave, fps)
    assert score.curve.shape == (31,) and np.isfinite(score.curve).all()
    assert -15 <= score.offset <= 15 and score.confidence >= 0
    # Frames where the face was lost are left out; none found at all is an error.
    lost = np.ones(n, bool)
    lost[10:20] = False
    partial = scorer.score_arrays(frames, np.stack([lm] * n), wave, fps, lost)
    assert partial.num_windows < score.num_windows
    with pytest.raises(InputError, match="no 5-frame window"):
        scorer.score_arrays(frames, np.stack([lm] * n), wave, fps, np.zeros(n, bool))
    with pytest.raises(InputError, match="silent"):
        scorer.score_arrays(frames, np.stack([lm] * n), np.zeros_like(wave), fps)


def test_score_mp4_and_its_errors(tmp_path):
    scorer = _untrained_scorer()
    gray = np.full((25, 160, 160, 3), 128, np.uint8)
    sv.write_video(tmp_path / "silent.mp4", gray, 25.0, audio=False)
    with pytest.raises(InputError, match="no audio track"):
        scorer.score(str(tmp_path / "silent.mp4"))
    sv.write_video(tmp_path / "noface.mp4", gray, 25.0, audio=True)
    with pytest.raises(InputError, match="no face found"):
        scorer.score(str(tmp_path / "noface.mp4"))
    truth = sv.write_head_video(tmp_path / "head.mp4", num_frames=30, size=256)
    score = scorer.score(str(tmp_path / "head.mp4"))
    # 30 frames: only windows 12-15 have audio at every offset (the curve averages those).
    assert score.num_windows == 4 and len(truth.frames) == 30
    assert np.isfinite(score.curve).all()


def test_cli_bad_input_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.eval_sync", "--part=test"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: give exactly one of")


def test_shifted_and_still_videos(tmp_path):
    import soundfile

    rng = np.random.default_rng(5)
    wave = rng.normal(0, 0.2, 32000).astype(np.float32)  # 2 s of noise: a sharp correlation
    soundfile.write(tmp_path / "noise.wav", wave, 16000)
    frames = rng.integers(0, 255, (50, 64, 128, 3), dtype=np.uint8).repeat(2, 1)
    sv.write_video(tmp_path / "v.mp4", frames, 25.0, audio=str(tmp_path / "noise.wav"))
    from talkingjax import audio
    from talkingjax.video import tracking

    ref = audio.load_audio(tmp_path / "v.mp4")
    for k in (-3, 4):
        out = sync_eval.shifted_video(str(tmp_path / "v.mp4"), k, 25.0, str(tmp_path / f"{k}.mp4"))
        info = tracking.probe_video(out)
        assert info.fps == 25.0 and info.num_frames == 50
        got = audio.load_audio(out)
        lags = np.arange(-8, 9) * 640  # whole 25-fps frames
        mid = slice(8000, 24000)
        corr = [np.dot(ref[mid], got[mid.start + lag : mid.stop + lag]) for lag in lags]
        assert lags[int(np.argmax(corr))] == 640 * k
    still = sync_eval.still_video(str(tmp_path / "v.mp4"), 25.0, 50, str(tmp_path / "s.mp4"))
    info = tracking.probe_video(still)
    assert info.num_frames == 50 and info.has_audio
    decoded = np.stack(list(tracking.read_frames(still)))
    assert np.abs(decoded.astype(int) - decoded[:1]).max() <= 2  # one picture throughout
    assert len(audio.load_audio(still)) == pytest.approx(len(ref), abs=1600)
