"""Paper 004 (Live Speech Portraits), Eq. 9 and Eq. 11: the APC and head-pose losses.

Reductions are explicit in every docstring. Eq. 9 is a sum over frames (and, |.| being the L1
norm of a feature vector, over its dimensions) per sequence; sequences are averaged. Eq. 11
is the negative log-density of one 12-d diagonal Gaussian, i.e. a sum over the 12 dimensions
per frame; the paper does not say how frames are combined, so frames and sequences are
averaged (the per-frame loss the equation writes, in expectation). The authors' code averages
over the 12 dimensions as well, which is this value divided by 12 (the same optimum).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_pose_nll(
    mean: jnp.ndarray,
    log_std: jnp.ndarray,
    target: jnp.ndarray,
    mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Eq. 11: -ln N(x_t | mu_t, sigma_t) of the head-motion states.

    Args:
      mean, log_std: [B, T, 12] predicted Gaussian (`LSPPoseModel`, which outputs log sigma;
        the paper's network outputs -log sigma for stability, the same parameterisation).
      target: [B, T, 12] states x_t = (pose, velocity) (`talkingjax.models.lsp.pose_to_states`).
      mask: optional [B, T] weights (1 = frame counts), e.g. to skip padding or frames
        without a full 255-frame history.

    Returns:
      scalar: per frame sum_d [0.5 ln(2 pi) + ln sigma_d + 0.5 ((x_d - mu_d) / sigma_d)^2],
      then the mean over the B x T frames (the weighted mean under `mask`).
    """
    z = (target - mean) * jnp.exp(-log_std)
    per_frame = jnp.sum(_HALF_LOG_2PI + log_std + 0.5 * jnp.square(z), axis=-1)
    if mask is None:
        return jnp.mean(per_frame)
    mask = mask.astype(per_frame.dtype)
    return jnp.sum(per_frame * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def apc_l1(
    prediction: jnp.ndarray,
    frames: jnp.ndarray,
    shift: int = 3,
    lengths: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Eq. 9: sum_(i=1)^(T-n) |x_(i+n) - y_i|, the APC objective (n = 3, Sec. 4.2.1).

    Args:
      prediction: [B, T, D] y_t from `talkingjax.models.lsp.APC`.
      frames: [B, T, D] the input surface features x_t (log-mel).
      shift: n, how far ahead y_t predicts.
      lengths: optional int [B] valid frames per sequence; a pair counts when i + n < length.

    Returns:
      scalar: the L1 error summed over the T - n predicted frames and the D features of each
      sequence, averaged over the B sequences.
    """
    diff = jnp.abs(frames[:, shift:] - prediction[:, : prediction.shape[1] - shift])
    per_frame = jnp.sum(diff, axis=-1)  # [B, T - n]
    if lengths is not None:
        valid = jnp.arange(per_frame.shape[1])[None] + shift < lengths[:, None]
        per_frame = jnp.where(valid, per_frame, 0.0)
    return jnp.mean(jnp.sum(per_frame, axis=-1))


p004_eq9 = apc_l1
p004_eq11 = gaussian_pose_nll
