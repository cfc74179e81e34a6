"""The two views of a discriminator that let one scalar train both GAN networks.

Every GAN of the library (Audio2Head's and PoseGAN's pose discriminators, paper 000's
rendering-to-realistic GAN) is trained by the shared loop with one loss and one optimizer:

    L = L_G(theta_g, sg(theta_d)) + L_D(theta_d, sg(G(x)))        sg = jax.lax.stop_gradient

The generator's term sees D's parameters as constants and D's term sees the generated sample
as a constant, so dL/dtheta_g = dL_G/dtheta_g and dL/dtheta_d = dL_D/dtheta_d: one Adam step
on {"generator", "discriminator"} is a simultaneous update of both (rather than pix2pix's
alternating D-then-G steps). `generator_view` and `discriminator_view` are those two views.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def generator_view(d_model, d_params, *inputs, **kwargs) -> jnp.ndarray:
    """D's logits on `inputs` for the generator's loss: D's parameters held constant."""
    return d_model.apply({"params": jax.lax.stop_gradient(d_params)}, *inputs, **kwargs)


def discriminator_view(
    d_model, d_params, real_inputs: tuple, fake_inputs: tuple, **kwargs
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(real logits, fake logits) for D's loss, in one call; the fake inputs held constant.

    Real and fake go through D as one batch (concatenated input by input), which equals two
    calls for a D whose normalisation is per sample (instance / layer norm, or none).
    `None` inputs (an unconditional D's missing condition) stay None.
    """
    fake_inputs = jax.lax.stop_gradient(fake_inputs)
    both = [
        None if r is None else jnp.concatenate([r, f], axis=0)
        for r, f in zip(real_inputs, fake_inputs, strict=True)
    ]
    logits = d_model.apply({"params": d_params}, *both, **kwargs)
    real_logits, fake_logits = jnp.split(logits, 2, axis=0)
    return real_logits, fake_logits
