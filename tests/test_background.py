"""Tests of talkingjax.generation.background against hand-computed cases and NumPy/SciPy."""

import numpy as np
import pytest
import scipy.signal

from talkingjax.errors import InputError
from talkingjax.generation import background as bg

# ----------------------------------------------------------------------------- references


def _smooth_2020(x, window_len=7):
    """The 2020 code's `smooth(x, window_len, 'hanning')`, transcribed."""
    s = np.r_[x[window_len - 1 : 0 : -1], x, x[-2 : -window_len - 1 : -1]]
    w = np.hanning(window_len)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[window_len // 2 : -(window_len // 2)]


def _keyframes_ref(angle, max_fraction=0.1, merge=3):
    """Keyframes from SciPy's peak finder / prominences and plain Python loops (7 taps)."""
    n = len(angle)
    s = _smooth_2020(np.asarray(angle, np.float64))
    cands = []  # (frame, prominence)
    for sign in (1.0, -1.0):
        peaks, _ = scipy.signal.find_peaks(sign * s)
        proms = scipy.signal.peak_prominences(sign * s, peaks)[0]
        cands += list(zip(peaks.tolist(), proms.tolist(), strict=True))
    cands.sort(key=lambda c: (-c[1], c[0]))
    cands = sorted(cands[: int(np.floor(max_fraction * n))])
    kept = []
    for f, p in cands:
        if kept and f - kept[-1][0] < merge:
            if p > kept[-1][1]:
                kept[-1] = (f, p)
        else:
            kept.append((f, p))
    return sorted({0, n - 1} | {f for f, _ in kept})


def _match_ref(pred, ref, keys, search, changes):
    """Plain loops: L1 over angles, ties to the smallest jump then the earliest frame."""
    out = []
    for i, k in enumerate(keys):
        best = None
        for r in range(len(ref)):
            if i == 0:
                cost = sum(abs(ref[r][a] - pred[k][a]) for a in range(3))
                rank = (cost, r)
            else:
                prev = out[-1]
                if search is not None and abs(r - prev) > search:
                    continue
                if changes:
                    d = [pred[k][a] - pred[keys[i - 1]][a] for a in range(3)]
                    cost = sum(abs(ref[r][a] - ref[prev][a] - d[a]) for a in range(3))
                else:
                    cost = sum(abs(ref[r][a] - pred[k][a]) for a in range(3))
                rank = (cost, abs(r - prev), r)
            if best is None or rank < best[0]:
                best = (rank, r)
        out.append(best[1])
    return out


def _assign_2020(ids, matches, n):
    """The 2020 code's `assigns` loop, transcribed."""
    assigns = [0] * n
    for i in range(len(ids) - 1):
        span = ids[i + 1] - ids[i]
        assigns[ids[i]] = int(matches[i])
        for j in range(1, span):
            assigns[ids[i] + j] = int(
                round(float(j) / span * (matches[i + 1] - matches[i]) + matches[i])
            )
    assigns[ids[-1]] = int(matches[-1])
    return assigns


def _walk(rng, n, scale=0.05):
    """A smooth random head-pose sequence [n, 6] (angles in radians, then translation)."""
    steps = rng.normal(scale=scale, size=(n, 6))
    return np.cumsum(steps, axis=0) + rng.normal(size=6) * 0.1


# ----------------------------------------------------------------------------- keyframes


def test_smoothing_matches_2020_code():
    x = np.random.default_rng(0).normal(size=40)
    np.testing.assert_allclose(bg._hanning_smooth(x, 7), _smooth_2020(x), rtol=0, atol=1e-12)


def test_keyframes_of_sine_are_peaks_troughs_and_ends():
    t = np.arange(200)
    angle = 0.3 * np.sin(2 * np.pi * t / 40)  # peaks at 10 + 40k, troughs at 30 + 40k
    expected = [0, *range(10, 200, 20), 199]
    assert bg.keyframes(angle).tolist() == expected


def test_keyframes_of_sine_sampled_between_peaks_finds_plateaus():
    # Period 20 with a phase putting each peak halfway between two samples: the smoothed curve
    # may have two equal top samples, which must still count as one extremum.
    t = np.arange(100)
    angle = np.sin(2 * np.pi * (t + 0.5) / 20)
    keys = bg.keyframes(angle)
    interior = keys[1:-1]
    assert len(interior) == 10
    assert np.all(np.abs(angle[interior]) > 0.95)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [12, 57, 200])
def test_keyframes_match_scipy_reference(seed, n):
    angle = np.cumsum(np.random.default_rng(seed).normal(size=n))
    for frac, merge in ((0.1, 3), (0.3, 3), (0.5, 5), (1.0, 1)):
        got = bg.keyframes(angle, max_fraction=frac, merge=merge).tolist()
        assert got == _keyframes_ref(angle, frac, merge), (frac, merge)


def test_keyframes_merge_keeps_more_prominent():
    # taps=1: no smoothing, so extrema and prominences are read off the samples.
    y = np.zeros(30)
    y[[2, 4]] = 3.0, 0.5  # max 2 (prom 3), min 3 (prom 0.5), max 4 (prom 0.5)
    assert bg.keyframes(y, taps=1, merge=1).tolist() == [0, 2, 3, 4, 29]
    assert bg.keyframes(y, taps=1).tolist() == [0, 2, 29]
    y = np.zeros(30)
    y[[1, 3]] = 0.5, 3.0  # the later, larger turn wins over the earlier wiggle
    assert bg.keyframes(y, taps=1).tolist() == [0, 3, 29]
    y = np.zeros(30)
    y[[5, 8]] = 1.0, 2.0  # 3 frames apart: not merged (min at 6 or 7 is a plateau at 6)
    assert bg.keyframes(y, taps=1, max_fraction=0.1).tolist() == [0, 5, 8, 29]


def test_keyframes_thinning_limit_and_most_prominent():
    y = np.zeros(20)
    y[[1, 3, 5, 7]] = 1.0, 5.0, 2.0, 4.0
    # prominences: max 1:1, 3:5, 5:2, 7:4; min 2:1, 4:4, 6:4 -> limit 2 keeps 3 and 4.
    assert bg.keyframes(y, taps=1, merge=1).tolist() == [0, 3, 4, 19]
    assert bg.keyframes(y, taps=1, merge=1, max_fraction=0.15).tolist() == [0, 3, 4, 6, 19]
    assert bg.keyframes(y, taps=1, merge=1, max_fraction=0.0).tolist() == [0, 19]
    rng = np.random.default_rng(1)
    for n in (30, 100, 301):
        keys = bg.keyframes(np.cumsum(rng.normal(size=n)))
        assert len(keys) - 2 <= n // 10
        assert keys[0] == 0 and keys[-1] == n - 1 and np.all(np.diff(keys) > 0)


def test_keyframes_short_and_flat():
    assert bg.keyframes(np.array([0.3])).tolist() == [0]
    assert bg.keyframes(np.array([0.3, -0.1])).tolist() == [0, 1]
    assert bg.keyframes(np.zeros(3)).tolist() == [0, 2]
    assert bg.keyframes(np.full(50, 0.2)).tolist() == [0, 49]
    assert bg.keyframes(np.array([0.0, 1.0, 0.0]), max_fraction=1.0, taps=1).tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- axis


def test_choose_axis_largest_std_ties_to_yaw():
    rng = np.random.default_rng(2)
    pose = np.zeros((50, 6))
    pose[:, 3:] = rng.normal(size=(50, 3)) * 10  # translation never drives the choice
    for axis in range(3):
        p = pose.copy()
        p[:, :3] = rng.normal(size=(50, 3)) * 0.01
        p[:, axis] *= 20
        assert bg.choose_axis(p) == axis
    assert bg.choose_axis(pose) == 1
    p = pose.copy()
    p[:, 0] = p[:, 2] = np.sin(np.arange(50))
    assert bg.choose_axis(p) == 0


# ----------------------------------------------------------------------------- matching


@pytest.mark.parametrize("changes", [False, True])
def test_match_recovers_reference_frames(changes):
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(40, 6))
    keys = np.array([0, 5, 9, 14, 20])
    chosen = np.array([7, 31, 2, 2, 18])
    pred = rng.normal(size=(21, 6))
    pred[keys] = ref[chosen]
    pred[keys, 3:] += 5.0  # translation plays no part in the cost
    got = bg.match_keyframes(pred, ref, keys, changes=changes)
    assert got.tolist() == chosen.tolist()


def test_match_changes_vs_absolute_hand_case():
    ref = np.zeros((6, 6))
    ref[:, 1] = np.arange(6) / 10  # yaw 0.0 ... 0.5
    pred = np.zeros((2, 6))
    pred[:, 1] = 0.06, 0.34
    # anchor: 0.06 is nearest to 0.1 (frame 1); absolute: 0.34 -> frame 3;
    # changes: the head turns by 0.28 -> 0.1 + 0.28 = 0.38 -> frame 4.
    assert bg.match_keyframes(pred, ref, [0, 1], changes=False).tolist() == [1, 3]
    assert bg.match_keyframes(pred, ref, [0, 1], changes=True).tolist() == [1, 4]


def test_match_changes_ignores_constant_offset():
    rng = np.random.default_rng(4)
    ref = _walk(rng, 60)
    ref[0, :3] += 10.0  # a distinctive first frame, so the absolute anchor survives the offset
    keys = np.array([0, 3, 8, 12])
    chosen = np.array([0, 25, 40, 33])
    pred = np.zeros((13, 6))
    pred[keys] = ref[chosen]
    pred[keys, :3] += 0.3  # the predicted head is 0.3 rad off the reference in every angle
    assert bg.match_keyframes(pred, ref, keys, changes=True).tolist() == chosen.tolist()
    assert bg.match_keyframes(pred, ref, keys, changes=False).tolist() != chosen.tolist()


@pytest.mark.parametrize("changes", [False, True])
def test_match_search_window(changes):
    ref = np.zeros((10, 6))
    ref[:, 0] = np.arange(10) / 10
    pred = np.zeros((2, 6))
    pred[1, 0] = 0.9
    assert bg.match_keyframes(pred, ref, [0, 1], changes=changes).tolist() == [0, 9]
    assert bg.match_keyframes(pred, ref, [0, 1], search=3, changes=changes).tolist() == [0, 3]
    assert bg.match_keyframes(pred, ref, [0, 1], search=0, changes=changes).tolist() == [0, 0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("search", [None, 0, 2, 7])
@pytest.mark.parametrize("changes", [False, True])
def test_match_against_loop_reference(seed, search, changes):
    rng = np.random.default_rng(seed)
    ref = _walk(rng, 30)
    pred = _walk(rng, 25)
    keys = np.sort(rng.choice(25, size=8, replace=False))
    got = bg.match_keyframes(pred, ref, keys, search=search, changes=changes)
    assert got.tolist() == _match_ref(pred.tolist(), ref.tolist(), keys.tolist(), search, changes)
    if search is not None:
        assert np.all(np.abs(np.diff(got)) <= search)


def test_match_speed_limit_caps_the_retiming_speed():
    # The reference head sweeps slowly left then right (period 10 s at 25 fps); the predicted
    # head turns fast. Unlimited, the interpolated background races through the video between
    # keyframes; capped at 1 frame per frame it never plays the reference faster than real time.
    t = np.arange(250)
    ref = np.zeros((250, 6))
    ref[:, 1] = 0.3 * np.sin(2 * np.pi * t / 250)
    pred = np.zeros((100, 6))
    pred[:, 1] = 0.3 * np.sin(2 * np.pi * np.arange(100) / 20)  # 5x faster
    free = bg.match(pred, ref, max_speed=None)
    capped = bg.match(pred, ref)  # MAX_SPEED = 1, the 2020 code's window
    assert np.abs(np.diff(free.indices)).max() > 5
    assert np.abs(np.diff(capped.indices)).max() <= 2  # 1 + rounding
    gaps = np.diff(capped.keys)
    assert np.all(np.abs(np.diff(capped.matches)) <= np.ceil(bg.MAX_SPEED * gaps))
    half = bg.match(pred, ref, max_speed=0.5)
    assert np.all(np.abs(np.diff(half.matches)) <= np.ceil(0.5 * np.diff(half.keys)))
    # The rendered head (blend 1: the background's) then turns no faster than the reference.
    ref_speed = np.abs(np.diff(ref[:, 1])).max()
    assert np.abs(np.diff(capped.pose[:, 1])).max() <= 2 * ref_speed + 1e-12
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(InputError, match="max_speed"):
            bg.match_keyframes(pred, ref, capped.keys, max_speed=bad)


def test_match_ties_prefer_smallest_jump():
    ref = np.zeros((9, 6))
    ref[:, 2] = [0.0, 0.5, 0.1, 0.5, 0.5, 0.2, 0.5, 0.0, 0.3]
    pred = np.zeros((2, 6))
    pred[:, 2] = 0.3, 0.5  # anchor frame 8; frames 1, 3, 4, 6 all fit -> closest is 6
    assert bg.match_keyframes(pred, ref, [0, 1], changes=False).tolist() == [8, 6]


# ----------------------------------------------------------------------------- interpolation


def test_background_indices_hand_case():
    got = bg.background_indices(np.array([0, 4, 8]), np.array([10, 14, 6]), 9)
    assert got.tolist() == [10, 11, 12, 13, 14, 12, 10, 8, 6]


@pytest.mark.parametrize("seed", range(5))
def test_background_indices_match_2020_loop(seed):
    rng = np.random.default_rng(seed)
    n = 80
    keys = np.r_[0, np.sort(rng.choice(np.arange(1, n - 1), size=9, replace=False)), n - 1]
    matches = rng.integers(0, 300, size=keys.size)
    got = bg.background_indices(keys, matches, n)
    assert got.tolist() == _assign_2020(keys.tolist(), matches.tolist(), n)
    assert got[keys].tolist() == matches.tolist()
    for a, b, ma, mb in zip(keys[:-1], keys[1:], matches[:-1], matches[1:], strict=True):
        exact = ma + (np.arange(a, b + 1) - a) / (b - a) * (mb - ma)
        assert np.all(np.abs(got[a : b + 1] - exact) <= 0.5)


def test_background_indices_hold_outside_keys():
    assert bg.background_indices([2, 4], [5, 7], 7).tolist() == [5, 5, 5, 6, 7, 7, 7]
    assert bg.background_indices([3], [9], 5).tolist() == [9] * 5


# ----------------------------------------------------------------------------- pose


def test_adjust_pose_blend():
    rng = np.random.default_rng(5)
    pred = rng.normal(size=(12, 6))
    ref = rng.normal(size=(30, 6))
    idx = rng.integers(0, 30, size=12)
    p0 = bg.adjust_pose(pred, ref, idx, blend=0.0)
    np.testing.assert_array_equal(p0[:, :3], pred[:, :3])
    np.testing.assert_array_equal(p0[:, 3:], ref[idx, 3:])
    np.testing.assert_array_equal(bg.adjust_pose(pred, ref, idx), ref[idx])
    p = bg.adjust_pose(pred, ref, idx, blend=0.25)
    np.testing.assert_allclose(p[:, :3], 0.75 * pred[:, :3] + 0.25 * ref[idx, :3], atol=1e-12)
    np.testing.assert_array_equal(p[:, 3:], ref[idx, 3:])
    assert bg.adjust_pose(pred.astype(np.float32), ref.astype(np.float32), idx).dtype == np.float32


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("changes", [False, True])
def test_match_retimes_a_reversed_reference(changes):
    rng = np.random.default_rng(6)
    t = np.arange(120)
    ref = _walk(rng, 120, scale=0.01)
    ref[:, 1] += 0.4 * np.sin(2 * np.pi * t / 30)  # a clear yaw swing drives the keyframes
    pred = ref[::-1].copy()
    plan = bg.match(pred, ref, changes=changes)
    assert plan.axis == 1
    assert plan.keys[0] == 0 and plan.keys[-1] == 119 and len(plan.keys) > 4
    assert plan.matches.tolist() == (119 - plan.keys).tolist()
    assert plan.indices.tolist() == (119 - t).tolist()
    np.testing.assert_array_equal(plan.pose, pred)


def test_match_plan_is_consistent():
    rng = np.random.default_rng(7)
    pred, ref = _walk(rng, 90), _walk(rng, 50)
    plan = bg.match(pred, ref, search=4, blend=0.5, axis=2)
    assert plan.axis == 2
    np.testing.assert_array_equal(plan.keys, bg.keyframes(pred[:, 2]))
    np.testing.assert_array_equal(plan.indices[plan.keys], plan.matches)
    assert np.all(np.abs(np.diff(plan.matches)) <= 4)
    np.testing.assert_allclose(plan.pose, bg.adjust_pose(pred, ref, plan.indices, blend=0.5))
    with pytest.raises(AttributeError):
        plan.axis = 0  # frozen


# ----------------------------------------------------------------------------- bad input

_P = np.zeros((5, 6))
_NAN = np.where(np.eye(5, 6) > 0, np.nan, 0.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: bg.keyframes(np.zeros((4, 2))),
        lambda: bg.keyframes(np.zeros(0)),
        lambda: bg.keyframes(np.array([0.0, np.nan, 1.0])),
        lambda: bg.keyframes(np.zeros(10), max_fraction=1.5),
        lambda: bg.keyframes(np.zeros(10), merge=0),
        lambda: bg.keyframes(np.zeros(10), taps=6),
        lambda: bg.choose_axis(np.zeros((5, 3))),
        lambda: bg.choose_axis(np.zeros((0, 6))),
        lambda: bg.choose_axis(_NAN),
        lambda: bg.match_keyframes(_P, np.zeros((4, 5)), [0, 4]),
        lambda: bg.match_keyframes(_P, _NAN, [0, 4]),
        lambda: bg.match_keyframes(_P, _P, []),
        lambda: bg.match_keyframes(_P, _P, [0, 5]),
        lambda: bg.match_keyframes(_P, _P, [3, 1]),
        lambda: bg.match_keyframes(_P, _P, [0.5, 2]),
        lambda: bg.match_keyframes(_P, _P, [0, 4], search=-1),
        lambda: bg.background_indices([0, 4], [1], 5),
        lambda: bg.background_indices([0, 4], [1, -2], 5),
        lambda: bg.background_indices([0, 5], [1, 2], 5),
        lambda: bg.background_indices([0, 4], [1, 2], 0),
        lambda: bg.adjust_pose(_P, _P, [0, 1]),
        lambda: bg.adjust_pose(_P, _P, [0, 1, 2, 3, 5]),
        lambda: bg.adjust_pose(_P, _P, [0, 1, 2, 3, 4], blend=1.5),
        lambda: bg.adjust_pose(_P, _P, [0, 1, 2, 3, np.nan]),
        lambda: bg.match(_P, np.zeros((0, 6))),
        lambda: bg.match(_P, _P, axis=3),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(InputError):
        call()
