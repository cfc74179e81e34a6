"""Tests of talkingjax.metrics.pose against plain, independent NumPy/SciPy references."""

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
from scipy.spatial.transform import Rotation

from talkingjax.errors import InputError
from talkingjax.metrics import pose as pm


def _pose(rng, t, scale_deg=(4.0, 8.0, 3.0), offset_deg=(0.0, 0.0, 0.0)):
    """Random-walk-ish head pose [t, 6]: smooth angles (radians) plus translation."""
    steps = rng.normal(size=(t, 3)).cumsum(axis=0)
    steps = (steps - steps.mean(0)) / (steps.std(0) + 1e-9)
    angles = np.radians(steps * np.array(scale_deg) + np.array(offset_deg))
    trans = rng.normal(scale=0.1, size=(t, 3)).cumsum(axis=0)
    return np.concatenate([angles, trans], axis=1)


def _hs_reference(real, gen, num_bins):
    """Histogram W1 via scipy's weighted 1-D Wasserstein distance, bins counted in a loop."""
    out = {}
    for axis, name in enumerate(("pitch", "yaw", "roll")):
        x = [float(v) for v in real[:, axis]]
        y = [float(v) for v in gen[:, axis]]
        lo, hi = min(x + y), max(x + y)
        if hi == lo:
            out[name] = 1.0
            continue
        width = (hi - lo) / num_bins
        hx, hy = [0.0] * num_bins, [0.0] * num_bins
        for v in x:
            hx[min(int((v - lo) / width), num_bins - 1)] += 1.0
        for v in y:
            hy[min(int((v - lo) / width), num_bins - 1)] += 1.0
        centres = [lo + (i + 0.5) * width for i in range(num_bins)]
        w1 = scipy.stats.wasserstein_distance(centres, centres, hx, hy)
        out[name] = 1.0 - w1 / (hi - lo)
    out["overall"] = sum(out[n] for n in ("pitch", "yaw", "roll")) / 3
    return out


# ----------------------------------------------------------------------------- head_similarity


def test_hs_identical_sequences_score_one():
    p = _pose(np.random.default_rng(0), 300)
    hs = pm.head_similarity(p, p)
    assert set(hs) == {"pitch", "yaw", "roll", "overall"}
    for v in hs.values():
        assert v == pytest.approx(1.0)


def test_hs_identical_constant_sequences_score_one():
    p = np.zeros((50, 6))
    assert pm.head_similarity(p, p.copy()) == {
        "pitch": 1.0,
        "yaw": 1.0,
        "roll": 1.0,
        "overall": 1.0,
    }


def test_hs_two_different_constants_is_minimal():
    # All mass in the first bin vs all in the last: W1 = (num_bins - 1) / num_bins of the range.
    a, b = np.zeros((10, 3)), np.full((7, 3), 0.2)
    hs = pm.head_similarity(a, b, num_bins=10)
    assert hs["overall"] == pytest.approx(0.1)


def test_hs_decreases_with_distribution_shift():
    rng = np.random.default_rng(1)
    real = _pose(rng, 400)
    gen = _pose(rng, 400)
    scores = [
        pm.head_similarity(real, gen + np.radians(s) * np.r_[1, 1, 1, 0, 0, 0])["overall"]
        for s in (0.0, 3.0, 8.0, 20.0)
    ]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scores[-1] < 0.6


def test_hs_of_shifted_uniform_is_range_over_joint_range():
    # Uniform on [0, r] vs [d, d + r]: W1 = d, joint range r + d, so HS = r / (r + d).
    r, d = 0.2, 0.1
    a = np.linspace(0.0, r, 2001)[:, None].repeat(3, axis=1)
    hs = pm.head_similarity(a, a + d, num_bins=300)
    assert hs["overall"] == pytest.approx(r / (r + d), abs=1.0 / 300)


def test_hs_shift_on_one_axis_only_lowers_that_axis():
    rng = np.random.default_rng(2)
    real = _pose(rng, 500)
    gen = real.copy()
    gen[:, 1] += np.radians(6.0)
    hs = pm.head_similarity(real, gen)
    assert hs["pitch"] == pytest.approx(1.0) and hs["roll"] == pytest.approx(1.0)
    assert hs["yaw"] < 0.9
    assert hs["overall"] == pytest.approx((2.0 + hs["yaw"]) / 3)


@pytest.mark.parametrize("num_bins", [7, 50, 100])
def test_hs_matches_reference_and_is_symmetric(num_bins):
    rng = np.random.default_rng(3)
    real = _pose(rng, 300)
    gen = _pose(rng, 217, scale_deg=(6.0, 3.0, 2.0), offset_deg=(2.0, -3.0, 1.0))  # T differs
    hs = pm.head_similarity(real, gen, num_bins=num_bins)
    ref = _hs_reference(real, gen, num_bins)
    for k in ref:
        assert hs[k] == pytest.approx(ref[k], abs=1e-9)
        assert 0.0 < hs[k] <= 1.0
    swapped = pm.head_similarity(gen, real, num_bins=num_bins)
    for k in hs:
        assert swapped[k] == pytest.approx(hs[k], abs=1e-12)


def test_hs_close_to_sample_wasserstein_within_a_bin():
    rng = np.random.default_rng(4)
    real = _pose(rng, 600)
    gen = _pose(rng, 450, offset_deg=(1.0, 2.0, -1.0))
    num_bins = 200
    hs = pm.head_similarity(real, gen, num_bins=num_bins)
    for axis, name in enumerate(pm.AXES):
        x, y = real[:, axis], gen[:, axis]
        span = max(x.max(), y.max()) - min(x.min(), y.min())
        sample = 1.0 - scipy.stats.wasserstein_distance(x, y) / span
        assert abs(hs[name] - sample) <= 1.0 / num_bins


def test_hs_static_head_at_mean_pose_scores_high():
    # Pins the documented blind spot: HS sees the angle distribution, not motion.
    rng = np.random.default_rng(12)
    real = np.radians(rng.normal(scale=[4.0, 8.0, 3.0], size=(1000, 3)))
    static = np.tile(real.mean(axis=0), (1000, 1))
    assert 0.8 < pm.head_similarity(real, static)["overall"] < 0.92


def test_hs_accepts_angles_only():
    rng = np.random.default_rng(5)
    a, b = _pose(rng, 100), _pose(rng, 120)
    assert pm.head_similarity(a, b) == pm.head_similarity(a[:, :3], b[:, :3])


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 5)), np.zeros(10), np.zeros((0, 6)), np.full((4, 6), np.nan)],
)
def test_hs_rejects_bad_input(bad):
    with pytest.raises(InputError):
        pm.head_similarity(np.zeros((10, 6)), bad)


def test_hs_rejects_bad_num_bins():
    with pytest.raises(InputError):
        pm.head_similarity(np.zeros((10, 6)), np.zeros((10, 6)), num_bins=0)


# -------------------------------------------------------------------------- frame-aligned errors


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rotation_error_about_one_axis(axis):
    true = np.zeros((5, 6))
    pred = true.copy()
    pred[:, axis] = np.radians(10.0)
    assert pm.rotation_error_deg(pred, true) == pytest.approx(10.0, abs=1e-4)


def test_rotation_error_matches_scipy_reference():
    rng = np.random.default_rng(6)
    true = _pose(rng, 64, scale_deg=(15.0, 25.0, 10.0))
    pred = true + np.concatenate(
        [np.radians(rng.normal(scale=5.0, size=(64, 3))), rng.normal(size=(64, 3))], axis=1
    )
    # R = Rz Ry Rx on column vectors = scipy's extrinsic "xyz" with angles (x, y, z).
    rp = Rotation.from_euler("xyz", pred[:, :3])
    rt = Rotation.from_euler("xyz", true[:, :3])
    ref = np.degrees((rp.inv() * rt).magnitude()).mean()
    assert pm.rotation_error_deg(pred, true) == pytest.approx(ref, abs=1e-3)
    assert pm.rotation_error_deg(true, pred) == pytest.approx(ref, abs=1e-3)


def test_rotation_error_is_accurate_for_small_angles():
    true = np.tile(np.radians([[5.0, -12.0, 3.0, 0, 0, 0]]), (4, 1))
    pred = true.copy()
    pred[:, 1] += np.radians(0.01)
    # Near identity the arccos form would be off by ~0.02 deg in float32; atan2 is not.
    assert pm.rotation_error_deg(pred, true) == pytest.approx(0.01, abs=5e-4)
    assert pm.rotation_error_deg(true, true) == pytest.approx(0.0, abs=1e-4)


def test_translation_error_matches_loop():
    rng = np.random.default_rng(7)
    pred, true = rng.normal(size=(30, 6)), rng.normal(size=(30, 6))
    ref = (
        sum(np.sqrt(sum((pred[t, j] - true[t, j]) ** 2 for j in range(3, 6))) for t in range(30))
        / 30
    )
    assert pm.translation_error(pred, true) == pytest.approx(ref)


def test_velocity_error_matches_loop_and_ignores_offsets():
    rng = np.random.default_rng(8)
    pred, true = _pose(rng, 40), _pose(rng, 40)
    fps = 30.0
    ang = tran = 0.0
    for t in range(39):
        va = [(pred[t + 1, j] - pred[t, j] - true[t + 1, j] + true[t, j]) * fps for j in range(6)]
        ang += np.degrees(np.sqrt(sum(v * v for v in va[:3])))
        tran += np.sqrt(sum(v * v for v in va[3:]))
    out = pm.velocity_error(pred, true, fps)
    assert out["angular_deg_per_s"] == pytest.approx(ang / 39)
    assert out["translation_per_s"] == pytest.approx(tran / 39)
    # A constant offset changes positions, not velocities.
    shifted = pm.velocity_error(pred + 0.3, true, fps)
    assert shifted["angular_deg_per_s"] == pytest.approx(ang / 39)


def test_velocity_error_units():
    true = np.zeros((26, 6))
    pred = true.copy()
    pred[:, 1] = np.radians(np.arange(26))  # yaw turning 1 degree per frame
    out = pm.velocity_error(pred, true, fps=25.0)
    assert out["angular_deg_per_s"] == pytest.approx(25.0)
    assert out["translation_per_s"] == 0.0


def test_aligned_metrics_reject_mismatch():
    a, b = np.zeros((10, 6)), np.zeros((11, 6))
    for fn in (pm.rotation_error_deg, pm.translation_error):
        with pytest.raises(InputError):
            fn(a, b)
    with pytest.raises(InputError):
        pm.velocity_error(a, b, 25.0)
    with pytest.raises(InputError):
        pm.velocity_error(a[:1], a[:1], 25.0)  # one frame has no velocity
    with pytest.raises(InputError):
        pm.velocity_error(a, a, 0.0)
    with pytest.raises(InputError):
        pm.rotation_error_deg(a[:, :3], a[:, :3])


# ---------------------------------------------------------------------------- retrieval_accuracy


def _retrieval_reference(x, labels):
    d = scipy.spatial.distance.cdist(x, x)
    hits = 0
    for i in range(len(x)):
        best, best_d = None, np.inf
        for j in range(len(x)):
            if j != i and d[i, j] < best_d:
                best, best_d = j, d[i, j]
        hits += labels[best] == labels[i]
    return hits / len(x)


def test_retrieval_clusters_are_perfect():
    rng = np.random.default_rng(9)
    centres = rng.normal(scale=10.0, size=(5, 16))
    labels = np.repeat(np.arange(5), 8)
    x = centres[labels] + rng.normal(scale=0.1, size=(40, 16))
    assert pm.retrieval_accuracy(x, labels) == 1.0
    assert pm.retrieval_accuracy(x, [f"spk{i}" for i in labels]) == 1.0


def test_retrieval_shuffled_labels_are_near_chance():
    rng = np.random.default_rng(10)
    centres = rng.normal(scale=10.0, size=(5, 16))
    labels = np.repeat(np.arange(5), 20)
    x = centres[labels] + rng.normal(scale=0.1, size=(100, 16))
    acc = pm.retrieval_accuracy(x, rng.permutation(labels))
    assert acc < 0.4  # chance is 19 / 99 ~ 0.19


def test_retrieval_matches_reference_across_chunks():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, 16))  # 600 * 600 * 16 > the chunk budget: several chunks
    labels = rng.integers(0, 4, size=600)
    assert pm.retrieval_accuracy(x, labels) == pytest.approx(_retrieval_reference(x, labels))


def test_retrieval_singleton_label_is_a_miss():
    x = np.array([[0.0], [0.1], [5.0]])
    assert pm.retrieval_accuracy(x, [0, 0, 1]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "x, labels",
    [
        (np.zeros((1, 4)), [0]),
        (np.zeros((3, 4)), [0, 1]),
        (np.zeros(3), [0, 1, 2]),
        (np.full((3, 2), np.nan), [0, 0, 1]),
    ],
)
def test_retrieval_rejects_bad_input(x, labels):
    with pytest.raises(InputError):
        pm.retrieval_accuracy(x, labels)
