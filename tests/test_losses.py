"""Tests of paper 000 Eq. 1-5 (talkingjax.losses) against plain NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax import geometry, losses
from talkingjax.losses import head_motion as hm

# ----------------------------------------------------------------------------- references


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ref_rotation(angles):
    """R = Rz(z) @ Ry(y) @ Rx(x) (reference-facts.md: x applied first, column vectors)."""
    x, y, z = (float(v) for v in angles)
    return _rz(z) @ _ry(y) @ _rx(x)


def _ref_contrastive(a, p, n, margin):
    total = 0.0
    for i in range(a.shape[0]):
        d_pos = np.linalg.norm((a[i] - p[i]).ravel())
        d_neg = np.linalg.norm((a[i] - n[i]).ravel())
        total += d_pos**2 + max(margin - d_neg, 0.0) ** 2
    return total / a.shape[0]


def _ref_reconstruction(pred, target):
    """Sum over frames, 9 matrix entries and 3 translations; mean over sequences."""
    per_seq = []
    for ps, ts in zip(
        pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:]), strict=True
    ):
        total = 0.0
        for p, t in zip(ps, ts, strict=True):
            total += np.sum((_ref_rotation(p[:3]) - _ref_rotation(t[:3])) ** 2)
            total += np.sum((p[3:] - t[3:]) ** 2)
        per_seq.append(total)
    return float(np.mean(per_seq))


def _ref_reconstruction_mse(pred, target):
    """Footnote 2's mean square error: mean over sequences, frames and the 12 values (9 matrix
    entries, 3 translations), element by element."""
    errors = []
    for p, t in zip(pred.reshape(-1, 6), target.reshape(-1, 6), strict=True):
        errors.extend(((_ref_rotation(p[:3]) - _ref_rotation(t[:3])) ** 2).ravel())
        errors.extend((p[3:] - t[3:]) ** 2)
    assert len(errors) == pred.reshape(-1, 6).shape[0] * 12
    return float(np.mean(errors))


def _ref_smoothness(pred):
    b, t, _ = pred.shape
    first = [np.sum((pred[i, j + 1] - pred[i, j]) ** 2) for i in range(b) for j in range(t - 1)]
    second = [
        np.sum((2 * pred[i, j] - pred[i, j - 1] - pred[i, j + 1]) ** 2)
        for i in range(b)
        for j in range(1, t - 1)
    ]
    return float(np.mean(first) + np.mean(second))


def _pose(rng, shape):
    angles = rng.uniform(-0.6, 0.6, size=(*shape, 3))
    trans = rng.normal(scale=0.3, size=(*shape, 3))
    return np.concatenate([angles, trans], axis=-1).astype(np.float32)


# ----------------------------------------------------------------------------- geometry


def test_euler_to_rotation_is_rz_ry_rx_product():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-np.pi, np.pi, size=(4, 5, 3))
    got = np.asarray(geometry.euler_to_rotation(jnp.asarray(angles, jnp.float32)))
    assert got.shape == (4, 5, 3, 3)
    for idx in np.ndindex(4, 5):
        np.testing.assert_allclose(got[idx], _ref_rotation(angles[idx]), atol=1e-6)
    eye = np.broadcast_to(np.eye(3), got.shape)
    np.testing.assert_allclose(got @ np.swapaxes(got, -1, -2), eye, atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(got), 1.0, atol=1e-5)


def test_euler_axes_order():
    # A pure pitch (x) rotation leaves the x axis fixed, yaw (y) the y axis, roll (z) the z axis.
    for axis in range(3):
        angles = np.zeros(3, np.float32)
        angles[axis] = 0.7
        r = np.asarray(geometry.euler_to_rotation(jnp.asarray(angles)))
        e = np.eye(3)[axis]
        np.testing.assert_allclose(r @ e, e, atol=1e-6)
    # x is applied first: R v = Rz(Ry(Rx v)).
    a = np.array([0.3, -0.5, 1.1])
    v = np.array([0.2, -1.0, 0.4])
    r = np.asarray(geometry.euler_to_rotation(jnp.asarray(a, jnp.float32)))
    np.testing.assert_allclose(r @ v, _rz(a[2]) @ (_ry(a[1]) @ (_rx(a[0]) @ v)), atol=1e-6)


# ----------------------------------------------------------------------------- equations


def test_equation_aliases():
    assert losses.eq1 is losses.pattern_contrastive
    assert losses.eq2 is losses.head_motion_objective
    assert losses.eq3 is losses.pose_reconstruction
    assert losses.eq4 is losses.pose_smoothness
    assert losses.eq5 is losses.pose_contrastive


def test_paper_constants():
    assert hm.TAU == 2.0 and hm.TAU2 == 2.0
    assert (hm.LAMBDA_P1, hm.LAMBDA_P2, hm.LAMBDA_P3) == (5.0, 1.0, 1.0)


def test_eq1_pattern_contrastive():
    rng = np.random.default_rng(1)
    # Mix of negatives inside and outside the margin.
    x1 = rng.normal(size=(8, 16)).astype(np.float32)
    x2 = (x1 + 0.3 * rng.normal(size=(8, 16))).astype(np.float32)
    x3 = (x1 + rng.normal(size=(8, 16)) * np.linspace(0.05, 1.0, 8)[:, None]).astype(np.float32)
    d_neg = np.linalg.norm(x1 - x3, axis=-1)
    assert (d_neg < 2).any() and (d_neg > 2).any()
    got = float(losses.eq1(x1, x2, x3))
    np.testing.assert_allclose(got, _ref_contrastive(x1, x2, x3, 2.0), rtol=1e-5)
    got = float(losses.eq1(x1, x2, x3, tau=0.7))
    np.testing.assert_allclose(got, _ref_contrastive(x1, x2, x3, 0.7), rtol=1e-5)


def test_eq1_hinge_far_negative_leaves_only_positive_term():
    rng = np.random.default_rng(2)
    x1 = rng.normal(size=(5, 16)).astype(np.float32)
    x2 = (x1 + 0.1 * rng.normal(size=(5, 16))).astype(np.float32)
    x3 = x1 + 10.0  # ||x1 - x3|| = 40 >> tau
    want = np.mean(np.sum((x1 - x2) ** 2, axis=-1))
    np.testing.assert_allclose(float(losses.eq1(x1, x2, x3)), want, rtol=1e-5)
    # ... and the negative gets no gradient.
    g3 = jax.grad(losses.eq1, argnums=2)(x1, x2, x3)
    np.testing.assert_array_equal(np.asarray(g3), 0.0)


def test_eq1_identical_triplet_gives_margin_squared():
    x = np.ones((3, 16), np.float32)
    np.testing.assert_allclose(float(losses.eq1(x, x, x)), 4.0, rtol=1e-5)


@pytest.mark.parametrize("fn", [losses.eq1, losses.eq5])
def test_contrastive_gradients_finite_when_anchor_equals_negative(fn):
    rng = np.random.default_rng(3)
    shape = (4, 16) if fn is losses.eq1 else (4, 10, 6)
    a = rng.normal(size=shape).astype(np.float32)
    p = (a + 0.1).astype(np.float32)
    grads = jax.grad(fn, argnums=(0, 1, 2))(a, p, a.copy())
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
    # Also when all three coincide.
    grads = jax.grad(fn, argnums=(0, 1, 2))(a, a.copy(), a.copy())
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))


def test_eq1_gradient_matches_analytic():
    rng = np.random.default_rng(4)
    b = 6
    x1 = rng.normal(size=(b, 16))
    x2 = x1 + 0.2 * rng.normal(size=(b, 16))
    x3 = x1 + 0.2 * rng.normal(size=(b, 16))  # all inside the margin
    g1, g2, g3 = jax.grad(losses.eq1, argnums=(0, 1, 2))(
        *(jnp.asarray(v, jnp.float32) for v in (x1, x2, x3))
    )
    d = np.linalg.norm(x1 - x3, axis=-1, keepdims=True)
    hinge = np.maximum(2.0 - d, 0.0)
    want1 = (2 * (x1 - x2) - 2 * hinge * (x1 - x3) / d) / b
    want2 = -2 * (x1 - x2) / b
    want3 = 2 * hinge * (x1 - x3) / d / b
    np.testing.assert_allclose(np.asarray(g1), want1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g2), want2, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g3), want3, rtol=1e-4, atol=1e-6)


def test_eq3_pose_reconstruction():
    rng = np.random.default_rng(5)
    pred, target = _pose(rng, (3, 11)), _pose(rng, (3, 11))
    got = float(losses.eq3(pred, target))
    np.testing.assert_allclose(got, _ref_reconstruction(pred, target), rtol=1e-5)
    assert abs(float(losses.eq3(target, target))) < 1e-10


def test_eq3_compares_rotations_not_angles():
    # Angles 2*pi apart are the same rotation: no rotation loss, only translation.
    rng = np.random.default_rng(6)
    target = _pose(rng, (2, 7))
    pred = target.copy()
    pred[..., 1] += 2 * np.pi
    pred[..., 3:] += 0.5
    # Summed over 7 frames x 3 translations of 0.5^2 each.
    np.testing.assert_allclose(float(losses.eq3(pred, target)), 7 * 3 * 0.25, rtol=1e-4)


def test_eq3_mean_reduction_is_the_mse_of_footnote_2():
    rng = np.random.default_rng(11)
    pred, target = _pose(rng, (3, 11)), _pose(rng, (3, 11))
    got = float(losses.eq3(pred, target, mean=True))
    np.testing.assert_allclose(got, _ref_reconstruction_mse(pred, target), rtol=1e-5)
    # The two reductions differ by the constant 12 T (T = 11 frames), whatever the batch.
    np.testing.assert_allclose(float(losses.eq3(pred, target)), 12 * 11 * got, rtol=1e-5)
    # Leading axes are all averaged: [2, 3, T, 6] = the mean over the 6 sequences.
    pred4, target4 = _pose(rng, (2, 3, 5)), _pose(rng, (2, 3, 5))
    np.testing.assert_allclose(
        float(losses.eq3(pred4, target4, mean=True)),
        _ref_reconstruction_mse(pred4, target4),
        rtol=1e-5,
    )
    assert float(losses.eq3(target, target, mean=True)) == 0.0


def test_eq3_mean_reduction_compares_rotations_not_angles():
    rng = np.random.default_rng(12)
    target = _pose(rng, (2, 7))
    pred = target.copy()
    pred[..., 1] += 2 * np.pi
    pred[..., 3:] += 0.5
    # Only the 3 translations of the 12 values differ, by 0.5 each.
    np.testing.assert_allclose(float(losses.eq3(pred, target, mean=True)), 3 * 0.25 / 12, rtol=1e-4)


def test_pose_squared_error_entries():
    rng = np.random.default_rng(13)
    pred, target = _pose(rng, (2, 4)), _pose(rng, (2, 4))
    err = np.asarray(hm.pose_squared_error(pred, target))
    assert err.shape == (2, 4, 12)
    for b in range(2):
        for t in range(4):
            rot = (_ref_rotation(pred[b, t, :3]) - _ref_rotation(target[b, t, :3])) ** 2
            np.testing.assert_allclose(err[b, t, :9], rot.ravel(), rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(
                err[b, t, 9:], (pred[b, t, 3:] - target[b, t, 3:]) ** 2, rtol=1e-4, atol=1e-7
            )


def test_eq4_pose_smoothness():
    rng = np.random.default_rng(7)
    pred = rng.normal(size=(3, 9, 6)).astype(np.float32)
    np.testing.assert_allclose(float(losses.eq4(pred)), _ref_smoothness(pred), rtol=1e-5)
    # A constant-velocity (linear) sequence has no second-difference term.
    t = np.arange(9, dtype=np.float32)[None, :, None]
    lin = t * np.array([0.1, 0.0, 0.0, 0.0, 0.2, 0.0], np.float32)
    np.testing.assert_allclose(float(losses.eq4(lin)), 0.01 + 0.04, rtol=1e-5)
    assert float(losses.eq4(np.ones((2, 5, 6), np.float32))) == 0.0


def test_eq5_pose_contrastive():
    rng = np.random.default_rng(8)
    y1 = rng.normal(scale=0.1, size=(4, 12, 6)).astype(np.float32)
    y2 = (y1 + 0.05 * rng.normal(size=y1.shape)).astype(np.float32)
    y3 = (y1 + rng.normal(size=y1.shape) * np.array([0.01, 0.1, 0.5, 1.0])[:, None, None]).astype(
        np.float32
    )
    d_neg = np.linalg.norm((y1 - y3).reshape(4, -1), axis=-1)
    assert (d_neg < 2).any() and (d_neg > 2).any()
    got = float(losses.eq5(y1, y2, y3))
    np.testing.assert_allclose(got, _ref_contrastive(y1, y2, y3, 2.0), rtol=1e-5)
    np.testing.assert_allclose(
        float(losses.eq5(y1, y2, y3, tau2=5.0)), _ref_contrastive(y1, y2, y3, 5.0), rtol=1e-5
    )


def test_eq5_hinge_far_negative():
    rng = np.random.default_rng(9)
    y1 = rng.normal(size=(2, 12, 6)).astype(np.float32)
    y2 = y1 + 0.01
    y3 = y1 - 3.0
    want = np.mean(np.sum(((y1 - y2) ** 2).reshape(2, -1), axis=-1))
    np.testing.assert_allclose(float(losses.eq5(y1, y2, y3)), want, rtol=1e-4)


def test_eq2_objective_combines_terms():
    rng = np.random.default_rng(10)
    yr, yf = _pose(rng, (2, 10)), _pose(rng, (2, 10))
    y2, y3 = _pose(rng, (2, 10)), _pose(rng, (2, 10))
    x1, x2, x3 = (rng.normal(size=(2, 16)).astype(np.float32) for _ in range(3))
    recon, smooth = losses.eq3(yf, yr), losses.eq4(yf)
    contra, contra2 = losses.eq1(x1, x2, x3), losses.eq5(yf, y2, y3)
    want = (
        _ref_reconstruction(yf, yr)
        + 5.0 * _ref_smoothness(yf)
        + 1.0 * _ref_contrastive(x1, x2, x3, 2.0)
        + 1.0 * _ref_contrastive(yf, y2, y3, 2.0)
    )
    np.testing.assert_allclose(float(losses.eq2(recon, smooth, contra, contra2)), want, rtol=1e-5)
    got = float(losses.eq2(1.0, 2.0, 3.0, 4.0, lambda_p1=0.5, lambda_p2=2.0, lambda_p3=3.0))
    assert got == pytest.approx(1.0 + 0.5 * 2.0 + 2.0 * 3.0 + 3.0 * 4.0)
