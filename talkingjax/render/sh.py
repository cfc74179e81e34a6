"""Lambertian lighting with 3 bands of real spherical harmonics (27 coefficients).

Radiance of a Lambertian surface under distant light L = sum_k L_k Y_k is, per colour channel,

    colour = albedo * sum_k A_l(k) L_k Y_k(n)

with Y_k the 9 real SH functions of degree <= 2 at the unit normal n and A_l the Lambertian
kernel's band factors (pi, 2 pi / 3, pi / 4; Ramamoorthi & Hanrahan 2001). The reference folds
factors and SH normalisation into one constant per function, with its own order and signs
(reference-facts.md), and its band-1 and band-2 constants (2 pi / sqrt 3, 2 pi / sqrt 8) are
sqrt 3 and sqrt 8 times the Lambertian ones. `sh_basis` reproduces the reference exactly, so
257-d coefficients from other tools light the same; the price is that gamma is *not* the SH
expansion of the light but that expansion with bands 1 and 2 divided by sqrt 3 and sqrt 8 (and
signs per the order). `tests/test_sh.py` checks both statements against closed-form real SH and
a numerical integral. The reference also adds 0.8 to the DC coefficient of every channel, so an
all-zero gamma is a uniform, moderately bright light rather than black.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

NUM_SH = 9
NUM_LIGHT = 3 * NUM_SH
AMBIENT = 0.8

_A0, _A1, _A2 = math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)
_C0 = 1 / math.sqrt(4 * math.pi)
_C1 = math.sqrt(3.0) / math.sqrt(4 * math.pi)
_C2 = 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi)


def sh_basis(normals: jax.Array) -> jax.Array:
    """The reference's 9 lighting functions at unit normals.

    Args:
      normals: [..., 3] unit vectors (nx, ny, nz).

    Returns:
      [..., 9]: [a0c0, -a1c1 ny, a1c1 nz, -a1c1 nx, a2c2 nx ny, -a2c2 ny nz,
      a2c2 / (2 sqrt 3) (3 nz^2 - 1), -a2c2 nx nz, a2c2 / 2 (nx^2 - ny^2)].
    """
    nx, ny, nz = normals[..., 0], normals[..., 1], normals[..., 2]
    b1, b2 = _A1 * _C1, _A2 * _C2
    return jnp.stack(
        [
            jnp.full_like(nx, _A0 * _C0),
            -b1 * ny,
            b1 * nz,
            -b1 * nx,
            b2 * nx * ny,
            -b2 * ny * nz,
            b2 * 0.5 / math.sqrt(3.0) * (3 * nz * nz - 1),
            -b2 * nx * nz,
            b2 * 0.5 * (nx * nx - ny * ny),
        ],
        axis=-1,
    )


def light_matrix(gamma: jax.Array) -> jax.Array:
    """27 lighting coefficients [..., 27] (RGB-major) -> [..., 3, 9] with the 0.8 ambient added."""
    # jnp.asarray: `.at` exists only on JAX arrays, and gamma often comes from numpy files.
    gamma = jnp.asarray(gamma).reshape(*jnp.shape(gamma)[:-1], 3, NUM_SH)
    return gamma.at[..., 0].add(AMBIENT)


def irradiance(normals: jax.Array, gamma: jax.Array) -> jax.Array:
    """Per-channel shading [..., N, 3] at unit normals [..., N, 3] under gamma [..., 27]."""
    return jnp.einsum("...nk,...ck->...nc", sh_basis(normals), light_matrix(gamma))


def shade(albedo: jax.Array, normals: jax.Array, gamma: jax.Array) -> jax.Array:
    """Lambertian colour [..., N, 3] = albedo * irradiance(normals, gamma)."""
    return albedo * irradiance(normals, gamma)
