"""Paper 000, Eq. 1-5: the losses of the head motion encoder E_m and decoder D_m.

Reductions are explicit in every docstring and follow the equations literally: an expectation
over samples (E_(a, y)) is a mean over the batch; E_t (Eq. 4 only) is a mean over frames; a
squared sequence difference (Eq. 3, 5) is summed over the whole T x D sequence, as ||.|| is the
Euclidean norm of the whole vector (a 16-d pattern in Eq. 1, a flattened T x 6 sequence in
Eq. 5). This keeps the margins tau = tau2 = 2 meaningful and puts Eq. 3 and Eq. 5 on one scale,
which the weights of Eq. 2 (5, 1, 1) assume.
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


def pose_reconstruction(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Eq. 3: L_recon(E_m, D_m), angles compared as rotation matrices.

    Args:
      pred, target: [..., T, 6] Euler angles (rad, x/y/z) + translation.

    Returns:
      scalar: mean over the leading (batch) axes of the squared error summed over frames, the
      9 rotation-matrix entries and the 3 translation values. Matrices avoid Euler wrap-around
      and weight the axes by how much they actually move the head.
    """
    rot = jnp.square(euler_to_rotation(pred[..., :3]) - euler_to_rotation(target[..., :3]))
    trans = jnp.square(pred[..., 3:] - target[..., 3:])
    return jnp.mean(jnp.sum(rot, axis=(-3, -2, -1)) + jnp.sum(trans, axis=(-2, -1)))


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
      scalar mean_b( ||y1 - y2||^2 + max(tau2 - ||y1 - y3||, 0)^2 ), norms over T x 6.
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
