"""Paper 002 (Audio2Head, Wang et al., IJCAI 2021), Sec. 3.2: losses of the head pose predictor.

  Eq. 3  pose_ssim                  L_SSIM = 1 - SSIM of the 6 x T pose "image"
  Eq. 4  pose_predictor_objective   L_NH = L_GAN(N_H, D) + L_SSIM
         (GAN term: "The GAN loss is calculated by LSGAN" -> `lsgan_generator`,
          `lsgan_discriminator`)

Eq. 3 is used instead of L1 / L2 because audio -> head motion is one-to-many: an L2 fit
regresses to the mean (a still head), while SSIM only asks for matching mean, spread and
correlation of the sequence (Sec. 3.2; Sec. 5.4 shows the L1 variant's unnatural motion).

Scale: SSIM's constants assume a dynamic range. The official release normalises every pose
channel to [-1, 1] (dataset min / max) before the network; here `Audio2HeadPose` works on
pose / pose_scale (pose_scale = 0.1 rad / units by default, which maps this library's poses to
roughly [-2, 2]), and `models.audio2head.generator_and_discriminator_loss` applies Eq. 3 to
those normalised poses. The default constants are Wang et al.'s K1 = 0.01, K2 = 0.03 for a
dynamic range L = 2, i.e. C1 = (0.01 * 2)^2, C2 = (0.03 * 2)^2.
"""

from __future__ import annotations

import jax.numpy as jnp

# Wang et al. 2004: C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03; L = 2 for inputs in
# [-1, 1] (the official release's pose normalisation; see the module docstring).
DYNAMIC_RANGE = 2.0
C1 = (0.01 * DYNAMIC_RANGE) ** 2
C2 = (0.03 * DYNAMIC_RANGE) ** 2

# Eq. 4 adds the GAN term and L_SSIM without weights, i.e. both weights are 1.
LAMBDA_GAN = 1.0
LAMBDA_SSIM = 1.0


def _windows(x: jnp.ndarray, window: int | None) -> jnp.ndarray:
    """[..., T, D] -> [..., N, w, D]: all windows of w consecutive frames (stride 1).

    window=None (or >= T) is one window covering the whole sequence.
    """
    steps = x.shape[-2]
    if window is None or window >= steps:
        return x[..., None, :, :]
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    idx = jnp.arange(steps - window + 1)[:, None] + jnp.arange(window)[None, :]  # [N, w]
    return x[..., idx, :]


def pose_ssim(
    pred: jnp.ndarray,
    target: jnp.ndarray,
    window: int | None = None,
    c1: float = C1,
    c2: float = C2,
) -> jnp.ndarray:
    """Eq. 3: L_SSIM = 1 - SSIM between predicted and ground-truth pose images.

    A pose sequence [T, 6] is read as an image of size 6 x T. The paper defines mu, sigma and
    cov as the mean, standard deviation and covariance "of s_0:T", i.e. statistics over the
    whole image: that is the default (window=None), one SSIM per sequence. Wang et al.'s local
    form (SSIM averaged over windows) is available with `window`: each window spans all D rows
    (a 6-row image has no room for their 11 x 11 window) and `window` consecutive frames, with
    uniform weights (not their Gaussian), sliding by one frame without padding.

    Statistics are population moments (divide by the number of entries, not n - 1), computed
    two-pass (centred) so that float32 keeps small variances of large-offset poses.

    Args:
      pred, target: [..., T, D] (D = 6 pose channels), normalised to a dynamic range of ~2
        (see the module docstring; c1 and c2 assume it).
      window: None for the paper's whole-sequence statistics, or frames per local window.
      c1, c2: the stabilising constants of Eq. 3.

    Returns:
      scalar: mean over leading axes and windows of
      1 - (2 mu mu' + C1)(2 cov + C2) / ((mu^2 + mu'^2 + C1)(sigma^2 + sigma'^2 + C2)).
    """
    x = _windows(pred, window)
    y = _windows(target, window)
    mu_x = jnp.mean(x, axis=(-2, -1), keepdims=True)
    mu_y = jnp.mean(y, axis=(-2, -1), keepdims=True)
    dx, dy = x - mu_x, y - mu_y
    var_x = jnp.mean(dx * dx, axis=(-2, -1))
    var_y = jnp.mean(dy * dy, axis=(-2, -1))
    cov = jnp.mean(dx * dy, axis=(-2, -1))
    mu_x, mu_y = mu_x[..., 0, 0], mu_y[..., 0, 0]
    ssim = ((2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return jnp.mean(1.0 - ssim)


def lsgan_generator(fake_logits: jnp.ndarray) -> jnp.ndarray:
    """The generator's LSGAN term of Eq. 4 (Mao et al. 2017, targets a=0, b=c=1).

    Args:
      fake_logits: [B, T', 1] patch scores D(N_H(a)) of generated pose sequences.

    Returns:
      scalar mean((D(fake) - 1)^2) over all patches (pix2pix / CycleGAN convention: no 1/2).
    """
    return jnp.mean(jnp.square(fake_logits - 1.0))


def lsgan_discriminator(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """The discriminator's LSGAN objective (the max_D side of Eq. 4).

    Args:
      real_logits: [B, T', 1] patch scores of ground-truth pose sequences.
      fake_logits: [B, T', 1] patch scores of generated ones.

    Returns:
      scalar 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)). The 1/2 is pix2pix's, which
      halves the discriminator's step relative to the generator's.
    """
    return 0.5 * (jnp.mean(jnp.square(real_logits - 1.0)) + jnp.mean(jnp.square(fake_logits)))


def pose_predictor_objective(
    ssim: jnp.ndarray,
    gan: jnp.ndarray,
    lambda_ssim: float = LAMBDA_SSIM,
    lambda_gan: float = LAMBDA_GAN,
) -> jnp.ndarray:
    """Eq. 4, the generator side: L_NH = lambda_gan L_GAN + lambda_ssim L_SSIM.

    Args:
      ssim: scalar `pose_ssim` (Eq. 3).
      gan: scalar `lsgan_generator`.
      lambda_ssim, lambda_gan: the paper writes the plain sum (both 1) and gives no weights.

    Returns:
      scalar.
    """
    return lambda_gan * gan + lambda_ssim * ssim


p002_eq3 = pose_ssim
p002_eq4 = pose_predictor_objective
