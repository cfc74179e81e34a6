"""The AV-sync instrument's pieces against NumPy references and known answers (issue 19)."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax import audio
from talkingjax.data import sync as sync_data
from talkingjax.errors import InputError
from talkingjax.losses import sync as sync_losses
from talkingjax.metrics import sync as sync_metrics
from talkingjax.models.sync import TINY, SyncNet

# ------------------------------------------------------------------------------ time


def _reference_indices(num_frames: int, fps: Fraction) -> list[int]:
    """Exact: for every 25-fps centre time inside the clip, the frame whose interval holds it."""
    out = []
    j = 0
    while Fraction(2 * j + 1, 50) < num_frames / fps:
        centre = Fraction(2 * j + 1, 50)
        out.append(next(i for i in range(num_frames) if i / fps <= centre < (i + 1) / fps))
        j += 1
    return out


@pytest.mark.parametrize("fps", [Fraction(30), Fraction(15), Fraction(25), Fraction(2997, 100)])
def test_resample_indices_match_exact_reference(fps):
    n = 97
    got = sync_data.resample_indices(n, float(fps))
    assert got.tolist() == _reference_indices(n, fps)


def test_resample_indices_known_values():
    # 30 -> 25 fps drops every 6th frame (ties go to the later frame); 15 -> 25 repeats.
    assert sync_data.resample_indices(12, 30.0).tolist() == [0, 1, 3, 4, 5, 6, 7, 9, 10, 11]
    assert sync_data.resample_indices(6, 15.0).tolist() == [0, 0, 1, 2, 2, 3, 3, 4, 5, 5]
    assert sync_data.resample_indices(7, 25.0).tolist() == list(range(7))
    with pytest.raises(InputError):
        sync_data.resample_indices(7, 0.0)


def test_audio_window_rows_cover_the_video_window():
    # Row r of speech_features is the 10 ms step starting at r / 100 - 0.12 s (the padding).
    rows = 400
    times = np.arange(rows) / 100.0 - audio.PAD_SECONDS
    mfcc = np.repeat(times[:, None], 13, axis=1).astype(np.float32)
    t = np.array([3, 10, 40])
    win = sync_data.audio_windows(mfcc, t, [0])[:, 0]  # [3, 20, 13]
    # The 20 steps cover [t / 25, (t + 5) / 25), the video window's interval.
    np.testing.assert_allclose(win[:, 0, 0], t / 25, atol=1e-6)
    np.testing.assert_allclose(win[:, -1, 0] + 0.01, (t + 5) / 25, atol=1e-6)
    # Offset d shifts the window by d frames = 4 d rows (d > 0: later audio).
    for d in (-3, 1, 5):
        shifted = sync_data.audio_windows(mfcc, t, [d])[:, 0]
        np.testing.assert_allclose(shifted[:, :, 0], win[:, :, 0] + d / 25, atol=1e-6)
        assert np.all(sync_data.audio_window_start(t, d) == sync_data.audio_window_start(t) + 4 * d)
    assert sync_data.audio_window_start(0) == 12
    with pytest.raises(InputError):
        sync_data.audio_windows(mfcc, [0], [-4])  # starts before row 0


def test_audio_window_centres_a_real_click():
    # A 5 ms click at the centre time of video window t0 peaks mid-window in the real MFCC.
    t0 = 30
    wave = np.random.default_rng(0).normal(0, 1e-3, 3 * audio.SAMPLE_RATE).astype(np.float32)
    centre = (t0 + 2.5) / 25
    k = int(centre * audio.SAMPLE_RATE)
    wave[k : k + 80] = 0.8
    mfcc = audio.speech_features(wave)
    energy = sync_data.audio_windows(mfcc, [t0], [0])[0, 0, :, 0]
    w = np.exp(energy - energy.max())
    position = float(np.sum(w * np.arange(20)) / np.sum(w))
    assert abs(position - 9.5) <= 1.5  # centre of the 20 rows, +- 15 ms


def test_audio_scan_layout():
    mfcc = np.random.default_rng(1).normal(size=(120, 13)).astype(np.float32)
    k, num = 4, 20
    wins, present = sync_data.audio_scan(mfcc, num, k)
    assert wins.shape == (num + 2 * k, 20, 13) and present.shape == (num + 2 * k,)
    for i in range(num + 2 * k):
        p = i - k
        start = 4 * p + 12
        assert present[i] == (start >= 0 and start + 20 <= 120)
        if present[i]:
            np.testing.assert_array_equal(wins[i], mfcc[start : start + 20])
        else:
            assert not wins[i].any()


# ------------------------------------------------------------------------------ mouth crops


def _face(cx, cy, angle, eye_dist=80.0, size=224):
    """A gray image with a dark elliptic mouth at (cx, cy), rotated by angle, and landmarks."""
    cos, sin = np.cos(angle), np.sin(angle)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    u = (xs - cx) * cos + (ys - cy) * sin  # along the mouth
    v = -(xs - cx) * sin + (ys - cy) * cos
    mouth = (u / 24.0) ** 2 + (v / 7.0) ** 2 <= 1.0
    img = np.full((size, size), 200, np.uint8)
    img[mouth] = 20
    rgb = np.repeat(img[..., None], 3, axis=-1)

    def at(du, dv):  # a point in the face's rotated frame
        return (cx + du * cos - dv * sin, cy + du * sin + dv * cos)

    lm = np.tile(np.array([cx, cy], np.float32), (478, 1))
    lm[33] = at(-eye_dist / 2, -60)  # subject's right outer eye corner (image left)
    lm[263] = at(eye_dist / 2, -60)
    lm[61], lm[291] = at(-24, 0), at(24, 0)
    lm[0], lm[17] = at(0, -7), at(0, 7)
    return rgb, lm


@pytest.mark.parametrize("angle_deg", [0.0, 20.0, -35.0])
def test_mouth_crop_lands_centred_and_level(angle_deg):
    angle = np.deg2rad(angle_deg)
    rgb, lm = _face(101.3, 140.7, angle)
    frames = np.stack([rgb] * 3)
    boxes = sync_data.mouth_boxes(np.stack([lm] * 3), fps=25.0)
    np.testing.assert_allclose(boxes[:, 0], 101.3, atol=1e-3)
    np.testing.assert_allclose(boxes[:, 2], 80.0 * sync_data.MOUTH_WIDTH_EYES, rtol=1e-5)
    np.testing.assert_allclose(boxes[:, 3], angle, atol=1e-5)
    crops = sync_data.mouth_crops(frames, boxes)
    assert crops.shape == (3, 48, 96) and crops.dtype == np.uint8
    dark = (200.0 - crops[1].astype(np.float64)) / 180.0  # 1 inside the mouth, 0 outside
    ys, xs = np.mgrid[0:48, 0:96] + 0.5
    m = dark.sum()
    mx, my = (dark * xs).sum() / m, (dark * ys).sum() / m
    assert abs(mx - 48.0) < 0.3 and abs(my - 24.0) < 0.3
    # Level: the mouth's long axis is horizontal; its half-length is 24 px * 96 / 112.
    cov = np.cov(np.stack([xs.ravel(), ys.ravel()]), aweights=dark.ravel())
    assert abs(cov[0, 1]) < 0.05 * cov[0, 0]
    half = np.sqrt(4 * cov[0, 0])  # an ellipse's half-axis = 2 sd
    assert abs(half - 24.0 * 96 / 112) < 1.0


def test_mouth_boxes_smooth_over_time_and_reject_bad_input():
    rng = np.random.default_rng(2)
    _, lm = _face(100.0, 140.0, 0.0)
    lms = np.stack([lm + rng.normal(0, 2.0, lm.shape) for _ in range(50)])
    raw = sync_data.mouth_boxes(lms, 25.0, centre_sigma_s=0.0, scale_sigma_s=0.0)
    smooth = sync_data.mouth_boxes(lms, 25.0)
    assert np.std(np.diff(smooth[:, 2])) < 0.2 * np.std(np.diff(raw[:, 2]))
    assert np.std(np.diff(smooth[:, 0])) < np.std(np.diff(raw[:, 0]))
    with pytest.raises(InputError):
        sync_data.mouth_boxes(lms[:, :68], 25.0)


# ------------------------------------------------------------------------------ clips, sampler


def _synthetic_clip(clip_id, seconds=4.0, fps=25.0, lag=0, seed=0):
    """Mouth brightness follows a random 'openness' o(k) at 25 fps; the MFCC energy column
    follows o delayed by `lag` frames (lag > 0: the audio lags the video)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 25)
    o = rng.uniform(0.0, 1.0, n + 40)
    mouths = np.repeat((o[:n] * 255).astype(np.uint8)[:, None, None], 48, 1)
    mouths = np.repeat(mouths, 96, 2)
    rows = int(round((seconds + 0.32) * 100))
    mfcc = rng.normal(0, 0.01, (rows, 13)).astype(np.float32)
    # Frame k's 4 rows start at row 4 k + 12 (time k / 25 s); the sound of frame k comes lag
    # frames later.
    for k in range(n):
        r = 4 * (k + lag) + 12
        if 0 <= r and r + 4 <= rows:
            mfcc[r : r + 4, 0] = o[k]
    return sync_data.SyncClip(clip_id, mouths, mfcc, np.ones(n, bool))


def _oracle_scores(clip: sync_data.SyncClip, k: int = 15):
    """The protocol with hand-made embeddings: 5 frame brightnesses vs 5 per-frame energies."""
    num = clip.num_frames - sync_data.FRAMES + 1
    t = np.arange(num)
    v = sync_data.video_windows(clip.mouths, t).mean(axis=(1, 2))  # [W, 5]
    wins, present = sync_data.audio_scan(clip.mfcc, num, k)
    a = wins[..., 0].reshape(len(wins), 5, 4).mean(axis=-1)  # [W + 2K, 5]
    a[~present] = np.nan
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return sync_metrics.av_sync(sync_metrics.distance_matrix(v, a, k))


@pytest.mark.parametrize("lag", [0, 3, -5, 12])
def test_offset_sign_on_a_synthetic_clip(lag):
    score = _oracle_scores(_synthetic_clip("a", lag=lag))
    assert score.offset == lag
    assert score.confidence > 0.1


def test_still_frame_has_no_confidence():
    clip = _synthetic_clip("a")
    moving = _oracle_scores(clip)
    still = sync_data.SyncClip("s", np.repeat(clip.mouths[:1], clip.num_frames, 0), clip.mfcc,
                               clip.detected)  # fmt: skip
    frozen = _oracle_scores(still)
    assert frozen.confidence < 0.1 * moving.confidence


def test_usable_windows_respect_detection_and_audio():
    clip = _synthetic_clip("a", seconds=4.0)
    detected = clip.detected.copy()
    detected[50] = False
    clip = sync_data.SyncClip("a", clip.mouths, clip.mfcc, detected)
    t = clip.usable_windows(max_offset=15)
    assert not set(range(46, 51)) & set(t.tolist())
    rows = clip.mfcc.shape[0]
    for x in t:
        assert sync_data.audio_window_start(x, -15) >= 0
        assert sync_data.audio_window_start(x, 15) + 20 <= rows
        assert x + 5 <= clip.num_frames
    # 12 is the first frame with audio 15 frames earlier: 4 (12 - 15) + 12 = 0.
    assert t.min() == 12
    assert clip.usable_windows(0).min() == 0


def test_sync_clip_and_load_from_preprocessed_files(tmp_path):
    rng = np.random.default_rng(3)
    n, fps = 36, 30.0
    rgb, lm = _face(112.0, 150.0, 0.1)
    frames = np.stack([rgb] * n)
    lms = np.stack([lm] * n)
    detected = np.ones(n, bool)
    mfcc = rng.normal(size=(152, 13)).astype(np.float32)
    (tmp_path / "clips").mkdir()
    (tmp_path / "crops").mkdir()
    np.savez(tmp_path / "clips" / "c1.npz", pose=np.zeros((n - 2, 6)), mfcc=mfcc, fps=fps)
    np.savez(tmp_path / "crops" / "c1.npz", crops=frames, landmarks=lms, detected=detected)
    clip = sync_data.load_sync_clip(tmp_path, "c1")
    idx = sync_data.resample_indices(n - 2, fps)
    assert clip.mouths.shape == (len(idx), 48, 96) and clip.mouths.dtype == np.uint8
    np.testing.assert_array_equal(clip.mfcc, mfcc)
    assert clip.detected.all()
    # The mouth (dark) is in the middle of every crop.
    assert clip.mouths[:, 18:30, 36:60].mean() < 60 and clip.mouths[:, :6].mean() > 150
    with pytest.raises(InputError):
        sync_data.load_sync_clip(tmp_path, "missing")


def test_sampler_is_a_pure_function_of_step():
    clips = [_synthetic_clip("a", 3.0, seed=4), _synthetic_clip("b", 5.0, seed=5)]
    k = 3
    sampler = sync_data.SyncSampler(clips, seed=7, max_offset=k)
    b1, b2 = sampler.sample(11, 6), sampler.sample(11, 6)
    for key in ("video", "audio"):
        np.testing.assert_array_equal(b1[key], b2[key])
    assert b1["video"].shape == (6, 48, 96, 5) and b1["audio"].shape == (6, 2 * k + 1, 20, 13)
    assert b1["video"].dtype == np.float32 and 0.0 <= b1["video"].min() <= b1["video"].max() <= 1
    other = sync_data.SyncSampler(clips, seed=7, max_offset=k).sample(12, 6)
    assert not np.array_equal(other["audio"], b1["audio"])
    # Without augmentation, candidate d + 1 is candidate d four rows later.
    plain = sync_data.SyncSampler(clips, seed=7, max_offset=k, augment=False).sample(11, 6)
    np.testing.assert_array_equal(plain["audio"][:, k + 1, :16], plain["audio"][:, k, 4:])
    assert sampler.windows_per_epoch() == sum(len(c.usable_windows(k)) for c in clips)


# ------------------------------------------------------------------------------ loss


def _reference_loss(v, a, target, temperature):
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    total = 0.0
    for b in range(v.shape[0]):
        logits = np.array([v[b] @ a[b, o] for o in range(a.shape[1])]) / temperature
        m = logits.max()
        total += -(logits[target[b]] - m - np.log(np.sum(np.exp(logits - m))))
    return total / v.shape[0]


def test_multiway_matching_loss_matches_numpy():
    rng = np.random.default_rng(8)
    v = rng.normal(size=(5, 8))
    a = rng.normal(size=(5, 7, 8))
    target = np.array([3, 0, 6, 3, 2])
    got = sync_losses.multiway_matching_loss(
        jnp.asarray(v), jnp.asarray(a), jnp.asarray(target), 0.1
    )
    np.testing.assert_allclose(float(got), _reference_loss(v, a, target, 0.1), rtol=1e-5)
    centre = sync_losses.multiway_matching_loss(jnp.asarray(v), jnp.asarray(a), temperature=0.5)
    np.testing.assert_allclose(float(centre), _reference_loss(v, a, [3] * 5, 0.5), rtol=1e-5)
    # A perfect match (the true candidate is the video embedding) has a small loss.
    a[:, 3] = v
    assert float(sync_losses.multiway_matching_loss(jnp.asarray(v), jnp.asarray(a))) < 0.5
    acc = sync_losses.offset_accuracy(jnp.asarray(v), jnp.asarray(a))
    assert float(acc) == 1.0


# ------------------------------------------------------------------------------ metric


def test_distance_matrix_matches_loop():
    rng = np.random.default_rng(9)
    k, num = 3, 10
    v = rng.normal(size=(num, 4))
    a = rng.normal(size=(num + 2 * k, 4))
    a[0] = np.nan
    d = sync_metrics.distance_matrix(v, a, k)
    assert d.shape == (num, 2 * k + 1)
    for t in range(num):
        for off in range(-k, k + 1):
            want = np.linalg.norm(v[t] - a[t + off + k])
            np.testing.assert_allclose(d[t, off + k], want, equal_nan=True)
    assert np.isnan(d[0, 0]) and np.isfinite(d[1, 0])
    with pytest.raises(InputError):
        sync_metrics.distance_matrix(v, a[:-1], k)


def test_av_sync_on_a_hand_made_matrix():
    k = 4
    offsets = np.arange(-k, k + 1)
    base = 1.0 + 0.1 * np.abs(offsets - 2)  # minimum at d = 2
    dists = np.stack([base + 0.01 * w for w in range(6)])
    dists[0, -1] = np.nan  # a missing audio window is left out
    score = sync_metrics.av_sync(dists)
    assert score.offset == 2
    curve = base + 0.025
    curve[-1] = base[-1] + 0.03  # windows 1..5 only
    np.testing.assert_allclose(score.curve, curve)
    np.testing.assert_allclose(score.confidence, np.median(curve) - curve[k + 2])
    np.testing.assert_allclose(score.min_distance, curve[k + 2])
    assert score.num_windows == 6 and score.to_dict()["av_offset"] == 2
    # Exact ties go to the smaller |d|: a flat curve has offset 0 and confidence 0.
    flat = sync_metrics.av_sync(np.ones((3, 2 * k + 1)))
    assert flat.offset == 0 and flat.confidence == 0.0
    with pytest.raises(InputError):
        sync_metrics.av_sync(np.full((2, 3), np.nan))


# ------------------------------------------------------------------------------ model


def test_tiny_model_shapes_normalisation_and_independence():
    model = SyncNet(**TINY)
    rng = np.random.default_rng(10)
    video = jnp.asarray(rng.uniform(size=(3, 48, 96, 5)), jnp.float32)
    mfcc = jnp.asarray(rng.normal(0, 10, size=(3, 7, 20, 13)), jnp.float32)
    # Random parameters of the right shapes without compiling Flax's initialisers (JAX's
    # normal sampler alone takes seconds to compile per shape on a loaded CPU).
    shapes = jax.eval_shape(model.init, jax.random.key(0), video, mfcc)
    params = jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(np.float32), shapes)
    v, a = jax.jit(model.apply)(params, video, mfcc)
    assert v.shape == (3, 16) and a.shape == (3, 7, 16)
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, rtol=1e-5)
    # Methods, and no batch dependence (GroupNorm, no batch statistics).
    v1 = model.apply(params, video[1:2], method=SyncNet.encode_video)
    a1 = model.apply(params, mfcc[1, 2], method=SyncNet.encode_audio)
    np.testing.assert_allclose(v1[0], v[1], atol=1e-5)
    np.testing.assert_allclose(a1, a[1, 2], atol=1e-5)
    assert set(params["params"]) == {"video", "audio"}


def test_complete_rows_average_every_offset_over_the_same_windows():
    k = 2
    d = np.ones((6, 2 * k + 1))
    d[:, k] = 0.5  # the true offset 0
    d[4:, -1] = 0.6
    d[0, 0], d[0, -1] = np.nan, 0.0  # a partial window reads a low value at +2
    d[1:4, -1] = np.nan
    assert sync_metrics.av_sync(d).offset == 2  # +2's mean is over 3 windows: (0 + 1.2) / 3
    kept = sync_metrics.complete_rows(d)
    np.testing.assert_array_equal(kept, d[4:])
    assert sync_metrics.av_sync(kept).offset == 0
    partial = np.where(np.eye(3, 2 * k + 1, dtype=bool), np.nan, 1.0)
    np.testing.assert_array_equal(sync_metrics.complete_rows(partial), partial)
