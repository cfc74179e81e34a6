"""Tests of paper 000 Eq. 7 and paper 001 Eq. 2 (talkingjax.losses) against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax import losses
from talkingjax.losses import expression as ex

# ----------------------------------------------------------------------------- references


def _ref_mse(pred, target, mask=None):
    """Mean of the squared error over valid (b, t) and all coefficients (loops)."""
    b, t, d = pred.shape
    total, count = 0.0, 0
    for i in range(b):
        for j in range(t):
            if mask is not None and not mask[i, j]:
                continue
            for k in range(d):
                total += (float(target[i, j, k]) - float(pred[i, j, k])) ** 2
                count += 1
    return total / max(count, 1)


def _ref_continuity(pred, mask=None):
    """Mean over sequences (with a valid frame) of sum_t ||x(t+1) - x(t)||^2 (loops)."""
    b, t, _ = pred.shape
    per_seq = []
    for i in range(b):
        valid = [mask is None or bool(mask[i, j]) for j in range(t)]
        if not any(valid):
            continue
        s = 0.0
        for j in range(t - 1):
            if valid[j] and valid[j + 1]:
                s += float(np.sum((pred[i, j + 1].astype(np.float64) - pred[i, j]) ** 2))
        per_seq.append(s)
    return float(np.mean(per_seq)) if per_seq else 0.0


def _ref_eq7(pred, target, lam, mask=None):
    return _ref_mse(pred, target, mask) + lam * _ref_continuity(pred, mask)


def _ref_p001_eq2(pe, te, pp, tp, mask=None, w=(0.2, 0.01, 1e-4)):
    return (
        _ref_mse(pe, te, mask)
        + w[0] * _ref_mse(pp, tp, mask)
        + w[1] * _ref_continuity(pp, mask)
        + w[2] * _ref_continuity(pe, mask)
    )


def _data(seed, b=3, t=7, k=5):
    rng = np.random.default_rng(seed)
    pe, te = (rng.normal(size=(b, t, k)).astype(np.float32) for _ in range(2))
    pp, tp = (0.1 * rng.normal(size=(b, t, 6)).astype(np.float32) for _ in range(2))
    return pe, te, pp, tp


def _mask():
    # A full sequence, one with trailing padding, one with a hole and a single valid frame at
    # the end (differences across the hole are excluded).
    return np.array(
        [
            [1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 0, 1, 1, 0, 1],
        ],
        bool,
    )


# ----------------------------------------------------------------------------- tests


def test_aliases_and_constants():
    assert losses.eq7 is losses.expression_loss
    assert losses.p001_eq2 is losses.joint_expression_pose_loss
    assert losses.eq2 is losses.head_motion_objective  # paper 000's Eq. 2 is unchanged
    assert ex.LAMBDA_E1 == 1e-4
    assert (ex.LAMBDA_POSE, ex.LAMBDA_POSE_SMOOTH, ex.LAMBDA_EXP_SMOOTH) == (0.2, 0.01, 1e-4)


def test_eq7_matches_reference():
    pe, te, _, _ = _data(0)
    got = float(losses.eq7(pe, te))
    np.testing.assert_allclose(got, _ref_eq7(pe, te, 1e-4), rtol=1e-5)
    # A large lambda makes the continuity term visible in the comparison.
    got = float(losses.eq7(pe, te, lambda_e1=0.3))
    np.testing.assert_allclose(got, _ref_eq7(pe, te, 0.3), rtol=1e-5)


def test_eq7_reductions_literal():
    # The MSE is jnp.mean; the continuity sums over t and coefficients, mean over sequences.
    pe, te, _, _ = _data(1, b=4, t=16, k=64)
    np.testing.assert_allclose(float(ex.masked_mse(pe, te)), np.mean((pe - te) ** 2), rtol=1e-5)
    want = np.mean(np.sum((pe[:, 1:] - pe[:, :-1]) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(float(ex.continuity(pe)), want, rtol=1e-5)
    # A linear ramp of slope v per frame: T - 1 steps of ||v||^2 each.
    t = np.arange(16, dtype=np.float32)[None, :, None]
    ramp = np.broadcast_to(t * np.float32(0.1), (2, 16, 3))
    np.testing.assert_allclose(float(ex.continuity(ramp)), 15 * 3 * 0.01, rtol=1e-5)
    # A perfect constant prediction has zero loss.
    const = np.ones((2, 5, 4), np.float32)
    assert float(losses.eq7(const, const)) == 0.0


def test_p001_eq2_matches_reference():
    pe, te, pp, tp = _data(2)
    got = float(losses.p001_eq2(pe, te, pp, tp))
    np.testing.assert_allclose(got, _ref_p001_eq2(pe, te, pp, tp), rtol=1e-5)
    w = (0.7, 0.3, 0.2)
    got = float(losses.p001_eq2(pe, te, pp, tp, w_pose=w[0], w_pose_smooth=w[1], w_exp_smooth=w[2]))
    np.testing.assert_allclose(got, _ref_p001_eq2(pe, te, pp, tp, w=w), rtol=1e-5)


def test_p001_eq2_reduces_to_eq7_without_pose_terms():
    pe, te, pp, tp = _data(3)
    a = losses.p001_eq2(pe, te, pp, tp, w_pose=0.0, w_pose_smooth=0.0, w_exp_smooth=1e-4)
    np.testing.assert_allclose(float(a), float(losses.eq7(pe, te)), rtol=1e-6)


def test_mask_matches_reference():
    pe, te, pp, tp = _data(4)
    mask = _mask()
    got = float(losses.eq7(pe, te, lambda_e1=0.5, mask=mask))
    np.testing.assert_allclose(got, _ref_eq7(pe, te, 0.5, mask), rtol=1e-5)
    got = float(losses.p001_eq2(pe, te, pp, tp, w_pose_smooth=0.3, w_exp_smooth=0.2, mask=mask))
    want = _ref_p001_eq2(pe, te, pp, tp, mask, w=(0.2, 0.3, 0.2))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_mask_ignores_padding_values():
    pe, te, pp, tp = _data(5)
    mask = _mask()
    base = float(losses.p001_eq2(pe, te, pp, tp, mask=mask))
    rng = np.random.default_rng(6)
    junk = lambda a: np.where(mask[..., None], a, rng.normal(size=a.shape) * 100).astype(a.dtype)  # noqa: E731
    got = float(losses.p001_eq2(junk(pe), junk(te), junk(pp), junk(tp), mask=mask))
    np.testing.assert_allclose(got, base, rtol=1e-6)
    # ... and gives them no gradient.
    g = jax.grad(lambda p: losses.eq7(p, te, lambda_e1=1.0, mask=mask))(jnp.asarray(pe))
    assert np.all(np.asarray(g)[~mask] == 0.0)


def test_full_mask_equals_no_mask_and_empty_mask_is_zero():
    pe, te, pp, tp = _data(7)
    full = np.ones(pe.shape[:2], bool)
    np.testing.assert_allclose(
        float(losses.p001_eq2(pe, te, pp, tp, mask=full)),
        float(losses.p001_eq2(pe, te, pp, tp)),
        rtol=1e-6,
    )
    empty = np.zeros(pe.shape[:2], bool)
    assert float(losses.p001_eq2(pe, te, pp, tp, mask=empty)) == 0.0


def test_mask_equals_unpadded_batch_of_equal_lengths():
    # Padding every sequence to a longer T with a mask gives the loss of the unpadded batch.
    pe, te, pp, tp = _data(8, b=2, t=6)
    pad = lambda a: np.concatenate([a, np.full((2, 3, a.shape[-1]), 9.0, np.float32)], 1)  # noqa: E731
    mask = np.concatenate([np.ones((2, 6), bool), np.zeros((2, 3), bool)], 1)
    got = losses.p001_eq2(pad(pe), pad(te), pad(pp), pad(tp), mask=mask)
    np.testing.assert_allclose(float(got), float(losses.p001_eq2(pe, te, pp, tp)), rtol=1e-6)


@pytest.mark.parametrize("lam", [1e-4, 1.0])
def test_eq7_gradient_matches_analytic(lam):
    pe, te, _, _ = _data(9, b=2, t=5, k=3)
    g = np.asarray(jax.grad(lambda p: losses.eq7(p, te, lambda_e1=lam))(jnp.asarray(pe)))
    b, t, k = pe.shape
    want = 2 * (pe - te) / (b * t * k)
    d = pe[:, 1:] - pe[:, :-1]  # [B, T-1, K]
    cont = np.zeros_like(pe)
    cont[:, 1:] += 2 * d
    cont[:, :-1] -= 2 * d
    want = want + lam * cont / b
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-7)
