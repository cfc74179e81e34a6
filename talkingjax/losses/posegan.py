"""Paper 003, Sec. 4.1, Eq. 3-6: the losses of PoseGAN (`talkingjax.models.posegan`).

  Eq. 3  pose_loss         L_pose = ||p - y_hat_0||^2 + sum_t ||y_t - y_hat_t||^2
         motion_loss       L_p-motion = sum_{t>=1} ||(y_t - y_{t-1}) - (y_hat_t - y_hat_{t-1})||^2
  Eq. 4  l2_loss           L_L2 = alpha L_pose + beta L_p-motion
  Eq. 5  cgan_value        L_GAN = E[log D(x, y)] + E[log(1 - D(x, G(x, p)))]; G minimises it
                           (`cgan_generator_loss`), D maximises it (`cgan_discriminator_loss`)
  Eq. 6  posegan_objective L_PoseGAN = lambda L_GAN + L_L2, the generator's objective
  generator_and_discriminator_loss: both networks' losses as one scalar, for one optimiser.

Weights (Sec. 4.3): alpha = 1 multiplies L_pose, beta = 10 multiplies L_p-motion (Eq. 4),
lambda = 0.01 multiplies L_GAN (Eq. 6).

Reductions follow the equations literally: the squared norms of Eq. 3 are summed over frames
and the 6 pose values of one sequence, and the batch is an expectation (mean over sequences).
`reduction="mean"` divides L_pose by T * 6 and L_p-motion by (T - 1) * 6, a per-element mean
squared error: the scale of the paper's Table 2 (L_pose ~ 0.9 for normalised poses), which
suggests the paper reports per-element means even though Eq. 3 writes sums. The two only
differ by constants, which move the balance against lambda L_GAN. In Eq. 5 an expectation is
a mean over all discriminator outputs (sequences and temporal patches); D outputs logits, D =
sigmoid(logit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from talkingjax.losses import adversarial

# Sec. 4.3.
ALPHA = 1.0
BETA = 10.0
LAMBDA = 0.01

_REDUCTIONS = ("sum", "mean")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {_REDUCTIONS}")


def pose_loss(
    pred: jnp.ndarray, target: jnp.ndarray, init_pose: jnp.ndarray, reduction: str = "sum"
) -> jnp.ndarray:
    """Eq. 3, first line: L_pose.

    Args:
      pred: [B, T, D] generated poses y_hat.
      target: [B, T, D] real poses y.
      init_pose: [B, D] the initial pose p given to the generator (in training p = y_0, so
        frame 0 is counted twice; at inference it ties the window to the previous one).
      reduction: "sum" (Eq. 3) or "mean" (divided by T * D, see the module docstring).

    Returns:
      scalar mean_b( ||p - y_hat_0||^2 + sum_t ||y_t - y_hat_t||^2 ).
    """
    _check_reduction(reduction)
    per_seq = jnp.sum(jnp.square(init_pose - pred[:, 0]), axis=-1) + jnp.sum(
        jnp.square(target - pred), axis=(-2, -1)
    )
    loss = jnp.mean(per_seq)
    if reduction == "mean":
        loss = loss / (pred.shape[-2] * pred.shape[-1])
    return loss


def motion_loss(pred: jnp.ndarray, target: jnp.ndarray, reduction: str = "sum") -> jnp.ndarray:
    """Eq. 3, second line: L_p-motion, the error of the frame-to-frame velocity.

    Args:
      pred: [B, T, D] generated poses y_hat (T >= 2).
      target: [B, T, D] real poses y.
      reduction: "sum" (Eq. 3) or "mean" (divided by (T - 1) * D).

    Returns:
      scalar mean_b sum_{t=1}^{T-1} ||(y_t - y_{t-1}) - (y_hat_t - y_hat_{t-1})||^2.
    """
    _check_reduction(reduction)
    err = jnp.diff(target, axis=-2) - jnp.diff(pred, axis=-2)
    loss = jnp.mean(jnp.sum(jnp.square(err), axis=(-2, -1)))
    if reduction == "mean":
        loss = loss / ((pred.shape[-2] - 1) * pred.shape[-1])
    return loss


def l2_loss(
    l_pose: jnp.ndarray, l_motion: jnp.ndarray, alpha: float = ALPHA, beta: float = BETA
) -> jnp.ndarray:
    """Eq. 4: L_L2 = alpha L_pose + beta L_p-motion (scalars in, scalar out)."""
    return alpha * l_pose + beta * l_motion


def cgan_value(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """Eq. 5: L_GAN = E[log D(x, y)] + E[log(1 - D(x, G(x, p)))].

    Args:
      real_logits: [B, ...] D's logits on real (audio, pose) pairs.
      fake_logits: [B, ...] D's logits on (audio, G(audio, p)).

    Returns:
      scalar mean(log sigmoid(real)) + mean(log(1 - sigmoid(fake))); D maximises it, G
      minimises it.
    """
    return jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def cgan_discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """Eq. 5, D's side: -L_GAN, to be minimised (binary cross-entropy, real = 1, fake = 0).

    Args:
      real_logits, fake_logits: [B, ...] as in `cgan_value`.

    Returns:
      scalar mean(softplus(-real)) + mean(softplus(fake)) = -cgan_value.
    """
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def cgan_generator_loss(fake_logits: jnp.ndarray, non_saturating: bool = False) -> jnp.ndarray:
    """Eq. 5, G's side: the part of L_GAN that depends on G, to be minimised.

    Args:
      fake_logits: [B, ...] D's logits on (audio, G(audio, p)).
      non_saturating: False (default) is the paper's minimax form, E[log(1 - D(x, G))]
        = -mean(softplus(fake)); it vanishes in gradient when D confidently rejects the fakes.
        True uses the common non-saturating substitute -E[log D(x, G)] = mean(softplus(-fake))
        (same fixed point, not what Eq. 5 writes).

    Returns:
      scalar. The real-pair term E[log D(x, y)] of Eq. 5 does not depend on G and is left
      out; it changes the value, not the gradient.
    """
    if non_saturating:
        return jnp.mean(jax.nn.softplus(-fake_logits))
    return -jnp.mean(jax.nn.softplus(fake_logits))


def posegan_objective(
    l_pose: jnp.ndarray,
    l_motion: jnp.ndarray,
    l_gan: jnp.ndarray,
    alpha: float = ALPHA,
    beta: float = BETA,
    lam: float = LAMBDA,
) -> jnp.ndarray:
    """Eq. 6: L_PoseGAN = lambda L_GAN + L_L2 = lambda L_GAN + alpha L_pose + beta L_p-motion.

    Args:
      l_pose, l_motion: scalars from `pose_loss`, `motion_loss` (Eq. 3).
      l_gan: scalar, G's side of Eq. 5 (`cgan_generator_loss`).
      alpha, beta, lam: 1, 10, 0.01 in the paper (Sec. 4.3).

    Returns:
      the generator's scalar objective.
    """
    return lam * l_gan + l2_loss(l_pose, l_motion, alpha, beta)


def generator_and_discriminator_loss(
    g_model: nn.Module,
    d_model: nn.Module,
    params: Mapping[str, Any],
    batch: Mapping[str, jnp.ndarray],
    alpha: float = ALPHA,
    beta: float = BETA,
    lam: float = LAMBDA,
    d_weight: float = 1.0,
    non_saturating: bool = False,
    reduction: str = "sum",
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Both PoseGAN losses as one scalar, for simultaneous updates with one optimiser.

    L = L_G(theta_g, stop_gradient(theta_d)) + d_weight * L_D(theta_d, stop_gradient(G(x, p))),
    with L_G = Eq. 6 and L_D = -L_GAN (Eq. 5). The stop-gradients make d L / d theta_g the
    gradient of the generator objective alone and d L / d theta_d that of the discriminator
    loss alone, so one Adam over {"generator", "discriminator"} gives each network its own
    update from the same batch. Taken literally, Eq. 6 has D maximise lambda L_GAN, i.e.
    d_weight = lambda; a constant factor on one network's loss is (up to Adam's epsilon)
    undone by Adam's per-parameter normalisation, so the usual weight 1 is the default.

    Args:
      g_model: a `PoseGANGenerator`; d_model: a `PoseGANDiscriminator`.
      params: {"generator": G's params tree, "discriminator": D's params tree} (the
        "params" collections of the two `init` results).
      batch: {"audio": [B, T, A], "pose": [B, T, 6]}; the initial pose is batch["pose"][:, 0]
        (Sec. 4.1.1: in training, the pose of the first frame).
      alpha, beta, lam: weights of Eq. 4 and 6 (paper: 1, 10, 0.01).
      d_weight: weight of the discriminator loss in the sum (see above).
      non_saturating: G's adversarial term, see `cgan_generator_loss`.
      reduction: of Eq. 3, see the module docstring.

    Returns:
      (L, metrics): metrics holds the scalars "generator" (Eq. 6), "discriminator" (-Eq. 5),
      "pose", "motion" (Eq. 3), "gan_generator" (G's side of Eq. 5), "gan_value" (Eq. 5) and
      "d_real", "d_fake" (mean D probability on real and generated sequences).
    """
    audio, real = batch["audio"], batch["pose"]
    init_pose = real[:, 0]
    g_vars = {"params": params["generator"]}

    fake = g_model.apply(g_vars, audio, init_pose, train=True)
    l_pose = pose_loss(fake, real, init_pose, reduction)
    l_motion = motion_loss(fake, real, reduction)

    # One scalar for both networks: see `talkingjax.losses.adversarial`.
    d_params = params["discriminator"]
    fake_logits_g = adversarial.generator_view(d_model, d_params, fake, audio, train=True)
    l_gan_g = cgan_generator_loss(fake_logits_g, non_saturating)
    l_gen = posegan_objective(l_pose, l_motion, l_gan_g, alpha, beta, lam)
    real_logits, fake_logits = adversarial.discriminator_view(
        d_model, d_params, (real, audio), (fake, audio), train=True
    )
    l_disc = cgan_discriminator_loss(real_logits, fake_logits)

    loss = l_gen + d_weight * l_disc
    metrics = {
        "loss": loss,
        "generator": l_gen,
        "discriminator": l_disc,
        "pose": l_pose,
        "motion": l_motion,
        "gan_generator": l_gan_g,
        "gan_value": -l_disc,
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
    }
    return loss, metrics


# Paper 003 equation aliases (paper 000 owns the bare `eqN` names).
p003_eq3 = pose_loss
p003_eq3_pose = pose_loss
p003_eq3_motion = motion_loss
p003_eq4 = l2_loss
p003_eq5 = cgan_value
p003_eq5_generator = cgan_generator_loss
p003_eq5_discriminator = cgan_discriminator_loss
p003_eq6 = posegan_objective
