"""Tests of the peer-paper pose metrics (`pose_peers`) and the paper-003 pose classifier.

Every metric is checked against a plain loop / SciPy reference on random input, plus cases
whose answer is known by hand.
"""

import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from talkingjax import audio as audio_lib
from talkingjax.errors import InputError
from talkingjax.metrics import pose_classifier as pc
from talkingjax.metrics import pose_peers as pp

FPS = 25.0
SR = 16000


def _pose(rng, t, scale_deg=4.0, trans_scale=0.05):
    """Smooth random head pose [t, 6]."""
    angles = np.radians(rng.normal(size=(t, 3)).cumsum(axis=0) * scale_deg / np.sqrt(t))
    trans = rng.normal(scale=trans_scale, size=(t, 3)).cumsum(axis=0)
    return np.concatenate([angles, trans], axis=1)


def _posed_reference(pose, points):
    """Landmarks moved by each frame's pose, one frame and point at a time with SciPy."""
    out = np.zeros((pose.shape[0], points.shape[0], 3))
    for t in range(pose.shape[0]):
        # Lower-case "xyz" = extrinsic rotations about x, then y, then z: R = Rz Ry Rx.
        rot = Rotation.from_euler("xyz", pose[t, :3]).as_matrix()
        for n in range(points.shape[0]):
            out[t, n] = rot @ points[n] + pose[t, 3:]
    return out


def _width_reference(points):
    xs = [float(p[0]) for p in points]
    return max(xs) - min(xs)


# ----------------------------------------------------------------------------- D-L D-V D-Rot D-Pos


def test_rotation_matrices_match_scipy():
    angles = np.random.default_rng(0).uniform(-1.0, 1.0, size=(20, 3))
    expected = Rotation.from_euler("xyz", angles).as_matrix()
    np.testing.assert_allclose(pp.rotation_matrices(angles), expected, atol=1e-12)


def test_default_landmarks():
    pts = pp.default_landmarks()
    assert pts.shape == (68, 3)
    assert np.ptp(pts[:, 0]) == pytest.approx(1.369, abs=0.01)
    pts[0] = 99.0  # a copy: the cached set must stay intact
    assert pp.default_landmarks()[0, 0] != 99.0


def test_identical_poses_give_zero():
    p = _pose(np.random.default_rng(1), 50)
    assert pp.d_l(p, p.copy()) == 0.0
    assert pp.d_v(p, p.copy(), FPS) == {"per_frame": 0.0, "per_second": 0.0}
    assert pp.d_rot(p, p.copy()) == pytest.approx(0.0, abs=1e-5)
    assert pp.d_pos(p, p.copy()) == 0.0


def test_d_l_and_d_v_match_loop_reference():
    rng = np.random.default_rng(2)
    pred, true = _pose(rng, 30), _pose(rng, 30)
    points = rng.normal(size=(7, 3))
    width = _width_reference(points)
    a, b = _posed_reference(pred, points), _posed_reference(true, points)
    dist = [np.linalg.norm(a[t, n] - b[t, n]) for t in range(30) for n in range(7)]
    assert pp.d_l(pred, true, points=points) == pytest.approx(np.mean(dist) / width, rel=1e-10)
    vel = [
        np.linalg.norm((a[t + 1, n] - a[t, n]) - (b[t + 1, n] - b[t, n]))
        for t in range(29)
        for n in range(7)
    ]
    dv = pp.d_v(pred, true, FPS, points=points)
    assert dv["per_frame"] == pytest.approx(np.mean(vel) / width, rel=1e-10)
    assert dv["per_second"] == pytest.approx(np.mean(vel) / width * FPS, rel=1e-10)
    # An explicit face width replaces the landmarks' own.
    assert pp.d_l(pred, true, points=points, face_width=2.0) == pytest.approx(
        np.mean(dist) / 2.0, rel=1e-10
    )


def test_constant_translation_shift():
    rng = np.random.default_rng(3)
    true = _pose(rng, 40)
    shift = np.array([0.03, -0.04, 0.0])  # |shift| = 0.05
    pred = true.copy()
    pred[:, 3:] += shift
    width = np.ptp(pp.default_landmarks()[:, 0])
    # Every landmark moves by the shift; velocities are unchanged.
    assert pp.d_pos(pred, true) == pytest.approx(0.05 / width, rel=1e-10)
    assert pp.d_l(pred, true) == pytest.approx(0.05 / width, rel=1e-10)
    assert pp.d_v(pred, true, FPS)["per_frame"] == pytest.approx(0.0, abs=1e-12)
    assert pp.d_pos(pred, true, face_width=0.5) == pytest.approx(0.1, rel=1e-10)
    assert pp.d_rot(pred, true) == pytest.approx(0.0, abs=1e-5)


def test_d_pos_matches_loop_reference():
    rng = np.random.default_rng(4)
    pred, true = _pose(rng, 25), _pose(rng, 25)
    dist = [np.linalg.norm(pred[t, 3:] - true[t, 3:]) for t in range(25)]
    assert pp.d_pos(pred, true, face_width=1.5) == pytest.approx(np.mean(dist) / 1.5, rel=1e-10)


def test_d_rot_against_scipy_and_by_hand():
    rng = np.random.default_rng(5)
    pred, true = _pose(rng, 20, scale_deg=20), _pose(rng, 20, scale_deg=20)
    rel = [
        (
            Rotation.from_euler("xyz", pred[t, :3]).inv() * Rotation.from_euler("xyz", true[t, :3])
        ).magnitude()
        for t in range(20)
    ]
    assert pp.d_rot(pred, true) == pytest.approx(np.degrees(np.mean(rel)), abs=1e-3)
    # Adding 7 degrees of yaw to a frontal head turns it by exactly 7 degrees.
    flat = np.zeros((10, 6))
    flat_yawed = flat.copy()
    flat_yawed[:, 1] = np.radians(7.0)
    assert pp.d_rot(flat_yawed, flat) == pytest.approx(7.0, abs=1e-4)


@pytest.mark.parametrize(
    "call",
    [
        lambda p, q: pp.d_l(p, q[:-1]),
        lambda p, q: pp.d_l(p[:, :3], q[:, :3]),
        lambda p, q: pp.d_v(p, q, 0.0),
        lambda p, q: pp.d_v(p[:1], q[:1], FPS),
        lambda p, q: pp.d_l(p, q, points=np.zeros((3, 2))),
        lambda p, q: pp.d_l(p, q, points=np.zeros((3, 3))),  # zero width
        lambda p, q: pp.d_pos(p, q, face_width=-1.0),
        lambda p, q: pp.d_rot(np.full_like(p, np.nan), q),
    ],
)
def test_aligned_metrics_reject_bad_input(call):
    rng = np.random.default_rng(6)
    with pytest.raises(InputError):
        call(_pose(rng, 10), _pose(rng, 10))


# ----------------------------------------------------------------------------- diversity


def test_pose_diversity_matches_loop_and_hand_values():
    rng = np.random.default_rng(7)
    p = _pose(rng, 60, scale_deg=10)
    stds = []
    for axis in range(3):
        deg = [float(np.degrees(v)) for v in p[:, axis]]
        mean = sum(deg) / len(deg)
        stds.append((sum((d - mean) ** 2 for d in deg) / len(deg)) ** 0.5)
    assert pp.pose_diversity(p) == pytest.approx(np.mean(stds), rel=1e-10)
    assert pp.pose_diversity(p[:, :3]) == pytest.approx(np.mean(stds), rel=1e-10)
    # A yaw sinusoid of amplitude A over whole periods: std A / sqrt(2), other axes 0.
    t = np.arange(100) / FPS
    sine = np.zeros((100, 6))
    sine[:, 1] = np.radians(6.0) * np.sin(2 * np.pi * 1.0 * t)
    assert pp.pose_diversity(sine) == pytest.approx(6.0 / np.sqrt(2) / 3, rel=1e-9)


def test_pose_diversity_of_identical_frames_is_zero():
    p = np.tile(np.array([0.1, -0.2, 0.05, 1.0, 2.0, 3.0]), (30, 1))
    assert pp.pose_diversity(p) == pytest.approx(0.0, abs=1e-12)


def test_sample_diversity():
    rng = np.random.default_rng(8)
    p = _pose(rng, 30, scale_deg=15)
    assert pp.sample_diversity([p, p.copy(), p.copy()]) == pytest.approx(0.0, abs=1e-5)
    samples = np.stack([_pose(rng, 30, scale_deg=15) for _ in range(3)])
    expected = []
    for i, j in itertools.combinations(range(3), 2):
        per_frame = [
            (
                Rotation.from_euler("xyz", samples[i, t, :3]).inv()
                * Rotation.from_euler("xyz", samples[j, t, :3])
            ).magnitude()
            for t in range(30)
        ]
        expected.append(np.degrees(np.mean(per_frame)))
    assert pp.sample_diversity(samples) == pytest.approx(np.mean(expected), abs=1e-3)
    with pytest.raises(InputError):
        pp.sample_diversity([p])
    with pytest.raises(InputError):
        pp.sample_diversity([p, p[:-1]])


# ----------------------------------------------------------------------------- beat alignment


def _clicks(times, seconds, noise=1e-6, seed=0):
    """A waveform of short 1 kHz bursts at `times` over faint noise (below the 80 dB floor)."""
    rng = np.random.default_rng(seed)
    wave = rng.normal(scale=noise, size=int(seconds * SR))
    n = int(0.02 * SR)
    k = np.arange(n)
    burst = 0.5 * np.sin(2 * np.pi * 1000 * k / SR) * np.exp(-k / (0.004 * SR))
    for t in times:
        i = int(round(t * SR))
        seg = wave[i : i + n]
        seg += burst[: seg.size]
    return wave


def _nodding(seconds, beat_period=0.4, first_beat=0.2):
    """Yaw sinusoid whose extremes (speed minima) fall every `beat_period` from `first_beat`."""
    t = np.arange(int(seconds * FPS)) / FPS
    pose = np.zeros((t.size, 6))
    pose[:, 1] = np.radians(5.0) * np.cos(np.pi * (t - first_beat) / beat_period)
    return pose


def _envelope_reference(wave, sr, num_mels=40):
    """Onset envelope with an explicit DFT, one frame at a time."""
    hop = int(round(sr / 100))
    n_fft = 512
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n_fft // 2 + 1), np.arange(n_fft)) / n_fft)
    bank = audio_lib.mel_filterbank(num_mels, n_fft, sr)
    rows = []
    for f in range(1 + wave.size // hop):
        seg = padded[f * hop : f * hop + n_fft] * window
        power = np.abs(dft @ seg) ** 2
        rows.append(10 * np.log10(np.maximum(bank @ power, 1e-10)))
    db = np.array(rows)
    db = np.maximum(db, db.max() - 80)
    env = [0.0]
    for f in range(1, db.shape[0]):
        env.append(float(np.mean([max(0.0, d) for d in db[f] - db[f - 1]])))
    return np.array(env)


def _onsets_reference(env, rate):
    env = env / env.max()
    half_max, half_avg, wait = round(0.03 * rate), round(0.10 * rate), round(0.03 * rate)
    picked = []
    for n in range(env.size):
        window_max = max(env[max(0, n - half_max) : n + half_max + 1])
        around = env[max(0, n - half_avg) : n + half_avg + 1]
        if env[n] >= window_max and env[n] >= sum(around) / len(around) + 0.07:
            if not picked or n - picked[-1] > wait:
                picked.append(n)
    return np.array(picked) / rate


def _beats_reference(pose, fps, halfwindow):
    a = pose[:, :3]
    speed = []
    for t in range(a.shape[0]):
        lo, hi = max(t - 1, 0), min(t + 1, a.shape[0] - 1)
        speed.append(np.linalg.norm((a[hi] - a[lo]) / (hi - lo)))
    order = max(1, round(halfwindow * fps))
    beats = []
    for t in range(1, len(speed) - 1):
        others = [speed[s] for s in range(max(0, t - order), min(len(speed), t + order + 1))]
        others.remove(speed[t])
        if all(speed[t] < o for o in others):
            beats.append(t)
    return np.array(beats, dtype=np.int64)


def _score_reference(outer, inner, sigma):
    if len(outer) == 0:
        return 0.0
    total = 0.0
    for b in outer:
        d = min(abs(b - a) for a in inner)
        total += np.exp(-(d**2) / (2 * sigma**2))
    return total / len(outer)


def test_onset_envelope_matches_dft_reference():
    rng = np.random.default_rng(9)
    wave = rng.normal(scale=0.1, size=int(0.3 * SR)) * np.linspace(0, 1, int(0.3 * SR))
    np.testing.assert_allclose(
        pp.onset_envelope(wave, SR), _envelope_reference(wave, SR), atol=1e-8
    )


def test_onset_times_match_loop_reference():
    rng = np.random.default_rng(10)
    env = np.abs(rng.normal(size=400)) ** 3
    np.testing.assert_allclose(pp.onset_times(env, 100.0), _onsets_reference(env, 100.0))
    assert pp.onset_times(np.zeros(50)).size == 0


def test_clicks_are_found_at_their_times():
    times = np.arange(0.4, 5.0, 0.4)
    onsets = pp.onset_times(pp.onset_envelope(_clicks(times, 5.2), SR))
    assert onsets.size == times.size
    np.testing.assert_allclose(onsets, times, atol=0.02)


def test_kinematic_beats_match_loop_and_fall_on_nod_extremes():
    rng = np.random.default_rng(11)
    p = _pose(rng, 200, scale_deg=20)
    for halfwindow in (0.04, 1 / 6, 0.5):
        np.testing.assert_array_equal(
            pp.kinematic_beats(p, FPS, halfwindow=halfwindow), _beats_reference(p, FPS, halfwindow)
        )
    beats = pp.kinematic_beats(_nodding(4.0), FPS)
    np.testing.assert_allclose(beats / FPS, np.arange(0.2, 3.9, 0.4), atol=1e-9)


def test_beat_alignment_score_matches_loop():
    rng = np.random.default_rng(12)
    m, a = np.sort(rng.uniform(0, 10, 15)), np.sort(rng.uniform(0, 10, 20))
    for sigma in (0.05, 0.12, 0.5):
        assert pp.beat_alignment_score(m, a, sigma) == pytest.approx(_score_reference(m, a, sigma))
        assert pp.beat_alignment_score(m, a, sigma, average_over="audio") == pytest.approx(
            _score_reference(a, m, sigma)
        )
    assert pp.beat_alignment_score([], a) == 0.0
    with pytest.raises(InputError):
        pp.beat_alignment_score(m, [])
    with pytest.raises(InputError):
        pp.beat_alignment_score(m, a, average_over="both")


def test_beats_on_onsets_score_about_one_and_others_lower():
    seconds = 8.0
    pose = _nodding(seconds)
    on_beat = _clicks(np.arange(0.2, seconds - 0.1, 0.4), seconds)
    aligned = pp.beat_alignment(pose, on_beat, FPS)
    assert aligned > 0.95
    assert pp.beat_alignment(pose, on_beat, FPS, average_over="audio") > 0.95
    # Onsets half a period off: every beat is 0.2 s from the nearest onset (give or take the
    # 10 ms by which the envelope's frames can place an onset early).
    off_beat = _clicks(np.arange(0.4, seconds - 0.1, 0.4), seconds)
    expected = np.exp(-(0.2**2) / (2 * pp.DEFAULT_BEAT_SIGMA**2))
    assert pp.beat_alignment(pose, off_beat, FPS) == pytest.approx(expected, abs=0.04)
    # Random head motion against the same onsets.
    rng = np.random.default_rng(13)
    scores = [
        pp.beat_alignment(_pose(rng, pose.shape[0], scale_deg=20), on_beat, FPS) for _ in range(5)
    ]
    assert np.mean(scores) < aligned - 0.1


def test_beat_alignment_inputs_agree_and_edge_cases():
    seconds = 4.0
    pose = _nodding(seconds)
    wave = _clicks(np.arange(0.2, seconds - 0.1, 0.4), seconds)
    env = pp.onset_envelope(wave, SR)
    onsets = pp.onset_times(env)
    from_wave = pp.beat_alignment(pose, wave, FPS)
    assert pp.beat_alignment(pose, env, FPS, audio_kind="envelope", sample_rate=100.0) == from_wave
    assert pp.beat_alignment(pose, onsets, FPS, audio_kind="onsets") == from_wave
    # Onsets after the clip's last frame are dropped (they would count in Bailando's variant).
    longer = np.concatenate([onsets, [seconds + 1.0, seconds + 2.0]])
    assert pp.beat_alignment(
        pose, longer, FPS, audio_kind="onsets", average_over="audio"
    ) == pytest.approx(
        pp.beat_alignment(pose, onsets, FPS, audio_kind="onsets", average_over="audio")
    )
    # A static head has no beats.
    assert pp.beat_alignment(np.zeros_like(pose), wave, FPS) == 0.0
    with pytest.raises(InputError):
        pp.beat_alignment(pose, np.zeros(int(seconds * SR)), FPS)  # silence: no onsets
    with pytest.raises(InputError):
        pp.beat_alignment(pose, wave, FPS, audio_kind="mfcc")
    with pytest.raises(InputError):
        pp.beat_alignment(pose[:2], wave, FPS)
    with pytest.raises(InputError):
        pp.onset_envelope(np.full(100, np.nan), SR)


# ----------------------------------------------------------------------------- pose classifier

WINDOW = 64


def _speaker(rng, seconds, freqs, amps_deg):
    """Head motion of a synthetic speaker: per-axis oscillations plus slow drift and jitter."""
    t = np.arange(int(seconds * FPS)) / FPS
    pose = np.zeros((t.size, 6))
    for axis, (f, a) in enumerate(zip(freqs, amps_deg, strict=True)):
        drift = rng.normal(size=t.size).cumsum() * 0.05
        pose[:, axis] = np.radians(
            a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
            + drift
            + rng.normal(size=t.size) * 0.2
        )
    pose[:, 3:] = rng.normal(scale=0.01, size=(t.size, 3)).cumsum(axis=0)
    return pose


SPEAKERS = {"slow": ((0.4, 0.3, 0.5), (3.0, 5.0, 2.0)), "fast": ((1.5, 1.2, 1.8), (2.0, 3.0, 1.0))}


def _windows(seed, seconds, stride):
    rng = np.random.default_rng(seed)
    return {
        name: pc.pose_windows(_speaker(rng, seconds, *spec), WINDOW, stride)
        for name, spec in SPEAKERS.items()
    }


@pytest.fixture(scope="module")
def trained():
    return pc.train_pose_classifier(_windows(0, 60.0, 16), seed=0, steps=300)


def test_pose_windows_match_loop():
    pose = _pose(np.random.default_rng(14), 50)
    w = pc.pose_windows(pose, 16, 5)
    starts = list(range(0, 50 - 16 + 1, 5))
    assert w.shape == (len(starts), 16, 6)
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(w[i], pose[s : s + 16])
    assert pc.pose_windows(pose, 16).shape == (3, 16, 6)  # stride defaults to the window
    for bad in (dict(window=51), dict(window=0), dict(window=8, stride=0), dict(window=2.5)):
        with pytest.raises(InputError):
            pc.pose_windows(pose, **bad)


def test_classifier_separates_speakers(trained):
    held_out = _windows(1, 30.0, 32)
    assert trained.labels == ("slow", "fast")
    assert trained.accuracy(held_out) > 0.9
    proba = trained.predict_proba(held_out["slow"])
    assert proba.shape == (held_out["slow"].shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # Right speaker: high confidence; the other speaker's motion: low.
    assert pc.classifier_score(trained, held_out["slow"], "slow") > 0.9
    assert pc.classifier_score(trained, held_out["fast"], "slow") < 0.1
    assert pc.classifier_score(trained, held_out["slow"], "fast") < 0.1
    # A motionless head at any pose carries no motion pattern: no confident "slow".
    static = np.zeros((4, WINDOW, 6))
    assert pc.classifier_score(trained, static, "slow") < 0.9


def test_classifier_is_deterministic_for_a_seed(trained):
    probe = _windows(2, 10.0, 32)["fast"]
    again = pc.train_pose_classifier(_windows(0, 60.0, 16), seed=0, steps=300)
    np.testing.assert_array_equal(again.predict_proba(probe), trained.predict_proba(probe))
    other = pc.train_pose_classifier(_windows(0, 60.0, 16), seed=1, steps=300)
    assert not np.array_equal(other.predict_proba(probe), trained.predict_proba(probe))


def test_classifier_rejects_bad_input(trained):
    windows = _windows(3, 10.0, 32)
    with pytest.raises(InputError):
        pc.classifier_score(trained, windows["slow"], "nobody")
    with pytest.raises(InputError):
        trained.predict_proba(windows["slow"][:, :32])  # the classifier takes 64 frames
    with pytest.raises(InputError):
        trained.predict_proba(np.full((2, WINDOW, 6), np.nan))
    with pytest.raises(InputError):
        pc.train_pose_classifier({"slow": windows["slow"]}, steps=1)
    with pytest.raises(InputError):
        pc.train_pose_classifier({"a": windows["slow"], "b": windows["fast"][:, :32]}, steps=1)
