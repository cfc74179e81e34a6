"""Paper 000, Sec. IV-B3, Eq. 8-10: the losses of the rendering-to-realistic GAN.

The paper numbers them:
  Eq. 8   o_t = A_t r_t + (1 - A_t) C_t, the output blend (`talkingjax.models.gan`,
          re-exported here as `attention_composite`, alias `p000_eq8`); not a loss.
  Eq. 9   L(G, D) = E[log D(r, g)] + E[log(1 - D(r, G(r)))] + lambda_1 E[||g - G(r)||_1]
                    + lambda_2 E[||A||_2] + lambda_3 E[sum_ij (A_{i+1,j} - A_ij)^2
                    + (A_{i,j+1} - A_ij)^2]                        (`gan_value`, `p000_eq9`)
          its terms: `gan_generator_loss`, `gan_discriminator_loss`, `l1_loss`,
          `attention_mean`, `attention_tv`; G's side `generator_objective` (`p000_eq9_generator`).
  Eq. 10  G* = argmin_G max_D L(G, D): both players' losses as one scalar for one optimiser,
          `generator_and_discriminator_loss` (`p000_eq10`).

Weights (Sec. V-B, training settings): lambda_1 = 100, lambda_2 = 2, lambda_3 = 1e-5.

Where the equation and the authors' 2020 code (pix2pix with GANimation's [47] attention loss)
differ, the defaults follow the code for the GAN and the L1 and attention-mean terms, and the
equation for the smoothness term:
  * adversarial: vanilla GAN with BCE-with-logits as pix2pix. G minimises the non-saturating
    -E[log D(r, G(r))] (pix2pix's practice; `non_saturating=False` gives Eq. 9's literal
    E[log(1 - D(r, G(r)))]); D minimises 0.5 (BCE(real, 1) + BCE(fake, 0)) = -0.5 x the GAN
    part of Eq. 9 (pix2pix halves D's loss; a constant factor Adam largely undoes).
  * L1: mean absolute error over pixels and channels (PyTorch `L1Loss`), as lambda_1 = 100
    presumes; Eq. 9's ||.||_1 would be a sum.
  * attention "||A||_2": the code (and GANimation's) takes mean(A) over pixels and batch; A is
    in [0, 1], so this is a mean L1 norm. It keeps A from saturating at 1 (where G would
    return the render unchanged).
  * attention smoothness: Eq. 9 literally, sum over pixels of squared differences to the
    next row and next column, mean over the batch (E_r). The 2020 and GANimation code use
    absolute differences (summed over the batch too); `squared=False` gives those.
Expectations are means over the batch (and over D's patches for the GAN terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from talkingjax.losses import adversarial
from talkingjax.models.gan import attention_composite

# Paper 000, experiments: the parameters of Eq. 9.
LAMBDA_L1 = 100.0
LAMBDA_ATTENTION = 2.0
LAMBDA_TV = 1e-5


def gan_generator_loss(fake_logits: jnp.ndarray, non_saturating: bool = True) -> jnp.ndarray:
    """Eq. 9, G's adversarial term.

    Args:
      fake_logits: [B, h, w, 1] D's logits on (r, G(r)).
      non_saturating: True (default, pix2pix / 2020 code): -E[log D(r, G(r))] =
        mean(softplus(-fake)), BCE against "real". False: Eq. 9 as written,
        E[log(1 - D(r, G(r)))] = -mean(softplus(fake)).

    Returns:
      scalar, to be minimised by G.
    """
    if non_saturating:
        return jnp.mean(jax.nn.softplus(-fake_logits))
    return -jnp.mean(jax.nn.softplus(fake_logits))


def gan_discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """Eq. 9, D's side: 0.5 (BCE(real, 1) + BCE(fake, 0)) as pix2pix.

    Args:
      real_logits: [B, h, w, 1] D's logits on (r, g).
      fake_logits: [B, h, w, 1] D's logits on (r, G(r)).

    Returns:
      scalar 0.5 (mean(softplus(-real)) + mean(softplus(fake))) = -0.5 (E[log D(r, g)]
      + E[log(1 - D(r, G(r)))]), to be minimised by D.
    """
    return 0.5 * (jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits)))


def l1_loss(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Eq. 9, E[||g - G(r)||_1] as a per-element mean.

    Args:
      pred: [B, H, W, 3] refined frames o = G(r).
      target: [B, H, W, 3] real frames g.

    Returns:
      scalar mean |g - o| over batch, pixels and channels.
    """
    return jnp.mean(jnp.abs(target - pred))


def attention_mean(attention: jnp.ndarray) -> jnp.ndarray:
    """Eq. 9, the anti-saturation term E[||A||_2], as the 2020 code's mean(A).

    Args:
      attention: [B, H, W, 1] attention masks in [0, 1].

    Returns:
      scalar mean(A) over batch and pixels.
    """
    return jnp.mean(attention)


def attention_tv(attention: jnp.ndarray, squared: bool = True) -> jnp.ndarray:
    """Eq. 9, the smoothness term: total variation of A, summed over pixels.

    Args:
      attention: [B, H, W, 1] attention masks.
      squared: True (Eq. 9): sum_{i,j} (A_{i+1,j} - A_ij)^2 + (A_{i,j+1} - A_ij)^2 over the
        H - 1 row and W - 1 column differences that exist; False: absolute differences (the
        2020 / GANimation code).

    Returns:
      scalar: that sum per sample, averaged over the batch.
    """
    rows = jnp.diff(attention, axis=1)
    cols = jnp.diff(attention, axis=2)
    f = jnp.square if squared else jnp.abs
    per_sample = jnp.sum(f(rows), axis=(1, 2, 3)) + jnp.sum(f(cols), axis=(1, 2, 3))
    return jnp.mean(per_sample)


def generator_objective(
    l_gan: jnp.ndarray,
    l_l1: jnp.ndarray,
    l_att: jnp.ndarray,
    l_tv: jnp.ndarray,
    lambda_l1: float = LAMBDA_L1,
    lambda_att: float = LAMBDA_ATTENTION,
    lambda_tv: float = LAMBDA_TV,
) -> jnp.ndarray:
    """Eq. 9, the terms that depend on G: L_GAN^G + 100 L1 + 2 mean(A) + 1e-5 TV(A).

    Args:
      l_gan, l_l1, l_att, l_tv: scalars from `gan_generator_loss`, `l1_loss`,
        `attention_mean`, `attention_tv`.
      lambda_l1, lambda_att, lambda_tv: lambda_1..3 of Eq. 9 (paper: 100, 2, 1e-5).

    Returns:
      G's scalar objective.
    """
    return l_gan + lambda_l1 * l_l1 + lambda_att * l_att + lambda_tv * l_tv


def gan_value(
    real_logits: jnp.ndarray,
    fake_logits: jnp.ndarray,
    l_l1: jnp.ndarray,
    l_att: jnp.ndarray,
    l_tv: jnp.ndarray,
    lambda_l1: float = LAMBDA_L1,
    lambda_att: float = LAMBDA_ATTENTION,
    lambda_tv: float = LAMBDA_TV,
) -> jnp.ndarray:
    """Eq. 9 as written: L(G, D), which G minimises and D maximises (Eq. 10).

    Args:
      real_logits, fake_logits: [B, h, w, 1] D's logits on (r, g) and (r, G(r)).
      l_l1, l_att, l_tv: scalars as in `generator_objective`.
      lambda_l1, lambda_att, lambda_tv: lambda_1..3.

    Returns:
      scalar E[log D(r, g)] + E[log(1 - D(r, G(r)))] + lambda_1 L1 + lambda_2 mean(A)
      + lambda_3 TV(A) (the reductions of the module docstring).
    """
    adversarial = jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(
        jax.nn.log_sigmoid(-fake_logits)
    )
    return adversarial + lambda_l1 * l_l1 + lambda_att * l_att + lambda_tv * l_tv


def generator_and_discriminator_loss(
    g_model: nn.Module,
    d_model: nn.Module,
    params: Mapping[str, Any],
    batch: Mapping[str, jnp.ndarray],
    rngs: Mapping[str, jax.Array] | None = None,
    lambda_l1: float = LAMBDA_L1,
    lambda_att: float = LAMBDA_ATTENTION,
    lambda_tv: float = LAMBDA_TV,
    d_weight: float = 1.0,
    non_saturating: bool = True,
    squared_tv: bool = True,
    identity: jnp.ndarray | None = None,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Eq. 10: both players' losses as one scalar, for simultaneous updates with one optimiser.

    L = L_G(theta_g, stop_gradient(theta_d)) + d_weight * L_D(theta_d, stop_gradient(o)),
    with L_G = `generator_objective` and L_D = `gan_discriminator_loss`. The stop-gradients
    make d L / d theta_g the gradient of G's objective alone and d L / d theta_d that of D's
    loss alone, so one Adam over {"generator", "discriminator"} updates both from the same
    batch (pix2pix alternates D then G steps on each batch; here both see the same G output).

    Args:
      g_model: an `AttentionUNetGenerator`; d_model: a `PatchDiscriminator`.
      params: {"generator": G's params tree, "discriminator": D's params tree}.
      batch: {"render": [B, H, W, 9] rendered windows r in [-1, 1], "real": [B, H, W, 3] real
        frames g in [-1, 1]}.
      rngs: {"dropout": key} runs G in training mode (dropout on); None runs it
        deterministically.
      lambda_l1, lambda_att, lambda_tv: lambda_1..3 of Eq. 9 (paper: 100, 2, 1e-5).
      d_weight: weight of D's loss in the sum.
      non_saturating: G's adversarial term, see `gan_generator_loss`.
      squared_tv: see `attention_tv`.
      identity: [B, D] identity features for a generator with AdaIN (paper 001's
        memory-augmented variant), passed to G as `identity=`; None for paper 000's G.

    Returns:
      (L, metrics): metrics holds the scalars "loss", "generator", "discriminator", "gan_generator",
      "l1", "attention_mean", "attention_tv", "d_real", "d_fake" (mean D probabilities).
    """
    render, real = batch["render"], batch["real"]
    train = rngs is not None and "dropout" in rngs
    extra = {} if identity is None else {"identity": identity}
    out = g_model.apply(
        {"params": params["generator"]},
        render,
        train=train,
        rngs=dict(rngs) if train else None,
        **extra,
    )
    fake, attention = out["image"], out["attention"]

    # One scalar for both networks: see `talkingjax.losses.adversarial`.
    fake_logits_g = adversarial.generator_view(
        d_model, params["discriminator"], render, fake, train=True
    )
    l_gan_g = gan_generator_loss(fake_logits_g, non_saturating)
    l_l1 = l1_loss(fake, real)
    l_att = attention_mean(attention)
    l_tv = attention_tv(attention, squared_tv)
    l_gen = generator_objective(l_gan_g, l_l1, l_att, l_tv, lambda_l1, lambda_att, lambda_tv)
    real_logits, fake_logits = adversarial.discriminator_view(
        d_model, params["discriminator"], (render, real), (render, fake), train=True
    )
    l_disc = gan_discriminator_loss(real_logits, fake_logits)

    loss = l_gen + d_weight * l_disc
    metrics = {
        "loss": loss,
        "generator": l_gen,
        "discriminator": l_disc,
        "gan_generator": l_gan_g,
        "l1": l_l1,
        "attention_mean": l_att,
        "attention_tv": l_tv,
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
    }
    return loss, metrics


# Paper 000 equation aliases (the package exports them as the bare `eq8`..`eq10`).
p000_eq8 = attention_composite
p000_eq9 = gan_value
p000_eq9_generator = generator_objective
p000_eq9_discriminator = gan_discriminator_loss
p000_eq10 = generator_and_discriminator_loss
