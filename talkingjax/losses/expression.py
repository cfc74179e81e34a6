"""Paper 000 Eq. 7 and paper 001 Eq. 2: losses of the audio-to-expression regressor.

Eq. 7 (paper 000): L = E_(s, beta)[(beta - phi1(s))^2]
                      + lambda_e1 E_s[sum_{t=0}^{T-1} (phi1(s)^(t+1) - phi1(s)^(t))^2]
Eq. 2 (paper 001): L = E_(s, beta)[(beta - phi1(s))^2] + lambda_1 E_(s, p)[(p - phi2(s))^2]
                      + lambda_2 E_s[sum_t (phi2(s)^(t+1) - phi2(s)^(t))^2]
                      + lambda_3 E_s[sum_t (phi1(s)^(t+1) - phi1(s)^(t))^2]
with lambda_e1 = lambda_3 = 1e-4, lambda_1 = 0.2, lambda_2 = 0.01.

Reductions, read from the equations and the text around them:
* The data terms are what the papers call "a mean squared error (MSE) loss": the mean over
  sequences (E), frames and coefficients. That is also what the 2020 reference code computes
  (`nn.MSELoss()` on [B, T, 64] and on [B, T, 6]), i.e. the scale the weights 0.2 / 0.01 / 1e-4
  were chosen for. (A squared norm over the 64 coefficients instead would weaken the continuity
  terms 64-fold relative to the data term and re-weight pose against expression.)
* The continuity terms are "the squared L2 norm of the gradient" summed over t as written: per
  sequence, the sum over the T - 1 consecutive-frame differences of the squared norm over the
  coefficients; then the mean over sequences (E_s). Again as the reference code
  (`torch.mean(torch.sum(diff * diff, dim=[1, 2]))`). The sum over t (not a mean) makes these
  terms grow with the window length; the papers train on 16-frame windows.
  Eq. 7 writes t = 0 .. T - 1 for frames numbered 1 .. T in Eq. 6: the T - 1 differences of a
  T-frame sequence.

Frame mask. Every loss takes an optional bool `mask` [B, T], False at padding frames. The MSE
is then the mean over valid frames (and coefficients); a difference counts only if both of its
frames are valid; the expectation over sequences is the mean over sequences with at least one
valid frame. Without a mask (or with an all-True one) these are exactly the formulas above.
A mask with no valid frame gives 0.
"""

from __future__ import annotations

import jax.numpy as jnp

# Paper 000 Sec. V (Eq. 7).
LAMBDA_E1 = 1e-4
# Paper 001 Eq. 2 / the 2020 code: lambda_pose, lambda_smooth (pose), lambda_smooth2 (expression).
LAMBDA_POSE = 0.2
LAMBDA_POSE_SMOOTH = 0.01
LAMBDA_EXP_SMOOTH = 1e-4


def _frame_mask(pred: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
    """Float [B, T] weights (1 = real frame)."""
    if mask is None:
        return jnp.ones(pred.shape[:2], pred.dtype)
    return mask.astype(pred.dtype)


def masked_mse(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray | None = None):
    """Mean over valid (sequence, frame) pairs and the coefficients of (target - pred)^2.

    Args:
      pred, target: [B, T, D].
      mask: optional bool [B, T].

    Returns:
      scalar; `jnp.mean((target - pred) ** 2)` without a mask.
    """
    m = _frame_mask(pred, mask)
    per_frame = jnp.sum(jnp.square(target - pred), axis=-1)  # [B, T]
    count = jnp.sum(m) * pred.shape[-1]
    return jnp.sum(per_frame * m) / jnp.maximum(count, 1.0)


def continuity(pred: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Inter-frame continuity: E_s[sum_t ||pred(t+1) - pred(t)||^2].

    Args:
      pred: [B, T, D] predicted sequence.
      mask: optional bool [B, T]; a difference counts if both its frames are valid.

    Returns:
      scalar: the mean over sequences (with a valid frame) of the squared differences summed
      over the T - 1 steps and the D coefficients.
    """
    m = _frame_mask(pred, mask)
    pair = m[:, 1:] * m[:, :-1]  # [B, T - 1]
    sq = jnp.sum(jnp.square(pred[:, 1:] - pred[:, :-1]), axis=-1)  # [B, T - 1]
    per_seq = jnp.sum(sq * pair, axis=1)  # [B]
    seqs = jnp.sum(jnp.max(m, axis=1))
    return jnp.sum(per_seq) / jnp.maximum(seqs, 1.0)


def expression_loss(
    pred_exp: jnp.ndarray,
    target_exp: jnp.ndarray,
    lambda_e1: float = LAMBDA_E1,
    mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Paper 000 Eq. 7: expression MSE + lambda_e1 * expression continuity.

    Args:
      pred_exp: [B, T, K] phi1(s), the predicted expression coefficients.
      target_exp: [B, T, K] beta.
      lambda_e1: continuity weight (paper: 1e-4).
      mask: optional bool [B, T], False at padding frames.

    Returns:
      scalar mean_{b,t,k}(beta - phi1)^2 + lambda_e1 * mean_b sum_t ||phi1(t+1) - phi1(t)||^2.
    """
    return masked_mse(pred_exp, target_exp, mask) + lambda_e1 * continuity(pred_exp, mask)


def joint_expression_pose_loss(
    pred_exp: jnp.ndarray,
    target_exp: jnp.ndarray,
    pred_pose: jnp.ndarray,
    target_pose: jnp.ndarray,
    w_pose: float = LAMBDA_POSE,
    w_pose_smooth: float = LAMBDA_POSE_SMOOTH,
    w_exp_smooth: float = LAMBDA_EXP_SMOOTH,
    mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Paper 001 Eq. 2: expression MSE + 0.2 pose MSE + 0.01 pose and 1e-4 expr. continuity.

    Args:
      pred_exp, target_exp: [B, T, K] phi1(s) and beta.
      pred_pose, target_pose: [B, T, 6] phi2(s) and p, raw units (radians, translation), as
        the reference compares them.
      w_pose, w_pose_smooth, w_exp_smooth: lambda_1, lambda_2, lambda_3.
      mask: optional bool [B, T], False at padding frames.

    Returns:
      scalar mean(beta - phi1)^2 + w_pose mean(p - phi2)^2
      + w_pose_smooth mean_b sum_t ||phi2(t+1) - phi2(t)||^2
      + w_exp_smooth mean_b sum_t ||phi1(t+1) - phi1(t)||^2 (MSE means over b, t, coefficient).
    """
    return (
        masked_mse(pred_exp, target_exp, mask)
        + w_pose * masked_mse(pred_pose, target_pose, mask)
        + w_pose_smooth * continuity(pred_pose, mask)
        + w_exp_smooth * continuity(pred_exp, mask)
    )
