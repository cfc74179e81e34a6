"""Paper 000, Eq. 1-5: the losses of the head motion encoder E_m and decoder D_m.

Reductions are explicit in every docstring. An expectation over samples (E_(a, y), E_(x1, x2,
x3)) is a mean over the batch in every equation. Per equation:
  * Eq. 1 and Eq. 5 write a Euclidean norm ||.|| (of a 16-d pattern in Eq. 1, of a whole
    predicted T x 6 sequence in Eq. 5): squared distances are summed over the flattened
    vector, and the margins tau = tau2 = 2 are distances in those units. The paper says nothing
    else about Eq. 5, so it stays a norm under both Eq. 3 reductions; an MSE there would divide
    the squared distance by T * 6 (300 at the real variant's 50 frames) and make tau2 = 2 an
    RMS gap of 2 per value (2 rad for an angle) that no prediction reaches (the hinge would
    never close).
  * Eq. 3 writes E[(y_r - D_m(a, E_m(y_r)))^2], and footnote 2 says the rotation part is the
    "mean square error between elements in two rotation matrices". `pose_reconstruction` has
    two reductions of the per-frame squared errors of the 9 rotation-matrix entries and the 3
    translation values (`pose_squared_error`): `mean=True`, the paper's text, the mean over
    batch, frames and the 12 values (MSE); `mean=False` (the library's first reading, kept
    selectable: `config.loss.recon_mean`), summed over frames and the 12 values, mean over
    the batch. The two differ by the constant 12 T, so only Eq. 3's weight against Eq. 1, 4
    and 5 changes (the rotation/translation balance is the same); with the sum, Eq. 3 grows
    with the window and lambda_p1 must grow with it. The configs keep the sum: with Eq. 1 and
    Eq. 5 norms at weight 1 the MSE lets them outweigh Eq. 3 and lost 0.06-0.08 val HS on
    real poses (docs/figures/pose_reductions_val.md).
  * Eq. 4 writes E_t(.)^2: a mean over frames (and batch) of the squared norm over the 6 pose
    values (y_f is the predicted [angles, translation] vector, not rotation matrices). Reading
    its square as a mean over the 6 values instead is the constant factor 1/6, i.e. lambda_p1
    / 6 here.
"""

from __future__ import annotations

import jax.numpy as jnp

from talkingjax.geometry import euler_to_rotation

# Eq. 2 weights and the margins of Eq. 1 and Eq. 5 (paper 000, Sec. V-B / supplementary).
LAMBDA_P1 = 5.0
LAMBDA_P2 = 1.0
LAMBDA_P3 = 1.0
TAU = 2.0
TAU2 = 2.0


def _contrastive(anchor, positive, negative, margin):
    """Mean over the batch of ||a - p||^2 + max(margin - ||a - n||, 0)^2 (last axes flattened)."""
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    d_pos = jnp.sum(jnp.square(flat(anchor) - flat(positive)), axis=-1)
    # sqrt(0) has an infinite gradient; a tiny floor keeps identical vectors differentiable.
    d_neg = jnp.sqrt(jnp.sum(jnp.square(flat(anchor) - flat(negative)), axis=-1) + 1e-12)
    return jnp.mean(d_pos + jnp.square(jnp.maximum(margin - d_neg, 0.0)))


def pattern_contrastive(
    x1: jnp.ndarray, x2: jnp.ndarray, x3: jnp.ndarray, tau: float = TAU
) -> jnp.ndarray:
    """Eq. 1: L_contra(E_m).

    Args:
      x1, x2: [B, k] patterns of two clips of the same video.
      x3: [B, k] pattern of a clip of another video.
      tau: margin.

    Returns:
      scalar mean_b( ||x1 - x2||^2 + max(tau - ||x1 - x3||, 0)^2 ).
    """
    return _contrastive(x1, x2, x3, tau)


def pose_squared_error(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Per-frame squared errors of Eq. 3, angles compared as rotation matrices (footnote 2).

    Args:
      pred, target: [..., T, 6] Euler angles (rad, x/y/z) + translation.

    Returns:
      [..., T, 12]: squared differences of the 9 rotation-matrix entries (row-major), then of
      the 3 translation values. Matrices avoid Euler wrap-around and weight the axes by how
      much they actually move the head.
    """
    rot = jnp.square(euler_to_rotation(pred[..., :3]) - euler_to_rotation(target[..., :3]))
    trans = jnp.square(pred[..., 3:] - target[..., 3:])
    return jnp.concatenate([rot.reshape(*rot.shape[:-2], 9), trans], axis=-1)


def pose_reconstruction(pred: jnp.ndarray, target: jnp.ndarray, mean: bool = False) -> jnp.ndarray:
    """Eq. 3: L_recon(E_m, D_m) of `pose_squared_error` (module docstring: reductions).

    Args:
      pred, target: [..., T, 6] Euler angles (rad, x/y/z) + translation.
      mean: True: the paper's text (footnote 2), the mean square error over the leading
        (batch) axes, the T frames and the 12 values. False: summed over frames and the 12
        values, mean over the leading axes (= 12 T times the mean).

    Returns:
      scalar.
    """
    err = pose_squared_error(pred, target)
    if mean:
        return jnp.mean(err)
    return jnp.mean(jnp.sum(err, axis=(-2, -1)))


def pose_smoothness(pred: jnp.ndarray) -> jnp.ndarray:
    """Eq. 4: L_smooth on a predicted sequence y_f.

    Args:
      pred: [B, T, 6] predicted poses (T >= 3).

    Returns:
      scalar mean_{b,t} ||y(t+1) - y(t)||^2 + mean_{b,t} ||2 y(t) - y(t-1) - y(t+1)||^2,
      squared norms over the 6 pose values.
    """
    first = pred[:, 1:] - pred[:, :-1]
    second = 2.0 * pred[:, 1:-1] - pred[:, :-2] - pred[:, 2:]
    return jnp.mean(jnp.sum(jnp.square(first), -1)) + jnp.mean(jnp.sum(jnp.square(second), -1))


def pose_contrastive(
    y1: jnp.ndarray, y2: jnp.ndarray, y3: jnp.ndarray, tau2: float = TAU2
) -> jnp.ndarray:
    """Eq. 5: L_contra2(E_m, D_m), the same audio decoded with three patterns.

    Args:
      y1, y2: [B, T, 6] D_m(a, x1), D_m(a, x2): x1, x2 from two clips of one video.
      y3: [B, T, 6] D_m(a, x3): x3 from another video.
      tau2: margin.

    Returns:
      scalar mean_b( ||y1 - y2||^2 + max(tau2 - ||y1 - y3||, 0)^2 ), norms over T x 6 (the
      paper's Euclidean norm, under either reduction of Eq. 3: module docstring).
    """
    return _contrastive(y1, y2, y3, tau2)


def head_motion_objective(
    recon,
    smooth,
    contra,
    contra2,
    lambda_p1: float = LAMBDA_P1,
    lambda_p2: float = LAMBDA_P2,
    lambda_p3: float = LAMBDA_P3,
):
    """Eq. 2: L = L_recon + lambda_p1 L_smooth + lambda_p2 L_contra + lambda_p3 L_contra2."""
    return recon + lambda_p1 * smooth + lambda_p2 * contra + lambda_p3 * contra2
