"""Tests of the SH lighting against real spherical harmonics built from scipy's complex ones.

What the tests pin down about the reference's constants (a_l = pi, 2 pi / sqrt 3, 2 pi / sqrt 8):
they are NOT the Lambertian band factors A_l = pi, 2 pi / 3, pi / 4 of Ramamoorthi & Hanrahan,
but a_l = r_l A_l with r = (1, sqrt 3, sqrt 8). So `irradiance(n, gamma)` is the exact
Lambertian irradiance of the light whose real-SH coefficients are sign_k * r_l * gamma_k
(plus the ambient on the DC term), not of the light with coefficients gamma_k themselves.
"""

import math

import numpy as np
import pytest
import scipy.special

from talkingjax.render import sh

# (l, m) of the 9 columns of `sh_basis`, and the reference's sign for each (odd m negated).
LM = [(0, 0), (1, -1), (1, 0), (1, 1), (2, -2), (2, -1), (2, 0), (2, 1), (2, 2)]
SIGN = np.array([1, -1, 1, -1, 1, -1, 1, -1, 1], np.float64)
LAMBERT = np.array([math.pi, 2 * math.pi / 3, math.pi / 4])  # A_l, Ramamoorthi & Hanrahan
RATIO = np.array([1.0, math.sqrt(3.0), math.sqrt(8.0)])  # reference a_l / A_l
BAND = np.array([degree for degree, _ in LM])


def real_sh(dirs):
    """[N, 9] real SH Y_lm (standard orthonormal, no Condon-Shortley sign) at unit dirs [N, 3].

    From scipy's complex Y_l^m (which includes the Condon-Shortley phase):
    Y_lm = sqrt2 (-1)^m Re Y_l^m for m > 0, sqrt2 (-1)^m Im Y_l^|m| for m < 0.
    """
    x, y, z = dirs.T
    theta = np.arccos(np.clip(z, -1, 1))
    phi = np.mod(np.arctan2(y, x), 2 * np.pi)
    cols = []
    for degree, m in LM:
        c = scipy.special.sph_harm_y(degree, abs(m), theta, phi)
        if m > 0:
            cols.append(math.sqrt(2) * (-1) ** m * c.real)
        elif m < 0:
            cols.append(math.sqrt(2) * (-1) ** m * c.imag)
        else:
            cols.append(c.real)
    return np.stack(cols, axis=-1)


def _dirs(n, seed=0):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def test_real_sh_helper_matches_the_textbook_table():
    d = _dirs(50)
    x, y, z = d.T
    pi = math.pi
    table = np.stack(
        [
            np.full_like(x, 0.5 / math.sqrt(pi)),
            math.sqrt(3 / (4 * pi)) * y,
            math.sqrt(3 / (4 * pi)) * z,
            math.sqrt(3 / (4 * pi)) * x,
            0.5 * math.sqrt(15 / pi) * x * y,
            0.5 * math.sqrt(15 / pi) * y * z,
            0.25 * math.sqrt(5 / pi) * (3 * z * z - 1),
            0.5 * math.sqrt(15 / pi) * x * z,
            0.25 * math.sqrt(15 / pi) * (x * x - y * y),
        ],
        axis=-1,
    )
    np.testing.assert_allclose(real_sh(d), table, atol=1e-12)


def test_sh_basis_is_signed_scaled_real_sh():
    d = _dirs(200)
    want = SIGN * (RATIO * LAMBERT)[BAND] * real_sh(d)
    np.testing.assert_allclose(np.asarray(sh.sh_basis(d.astype(np.float32))), want, atol=2e-6)


def test_sh_basis_batch_dims():
    d = _dirs(12).reshape(3, 4, 3).astype(np.float32)
    out = np.asarray(sh.sh_basis(d))
    assert out.shape == (3, 4, 9)
    np.testing.assert_allclose(out.reshape(12, 9), np.asarray(sh.sh_basis(d.reshape(12, 3))))


def _hemisphere_quadrature(normal, n_u=16, n_phi=32):
    """Directions [Q, 3] and weights [Q] integrating f(w) max(n.w, 0) over the sphere.

    In a frame with `normal` as pole, dw = du dphi with u = cos(theta) in [0, 1]; the cosine
    factor is folded into the weights. Gauss-Legendre in u and the trapezoid rule in phi are
    exact here because the integrand is a low-degree polynomial on the sphere.
    """
    t1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(normal, t1)
    u, wu = np.polynomial.legendre.leggauss(n_u)
    u, wu = 0.5 * (u + 1), 0.5 * wu  # [-1, 1] -> [0, 1]
    phi = np.arange(n_phi) * 2 * np.pi / n_phi
    uu, pp = np.meshgrid(u, phi, indexing="ij")
    s = np.sqrt(1 - uu**2)
    dirs = (
        (s * np.cos(pp))[..., None] * t1 + (s * np.sin(pp))[..., None] * t2 + uu[..., None] * normal
    )
    weights = (wu[:, None] * uu) * (2 * np.pi / n_phi)
    return dirs.reshape(-1, 3), np.broadcast_to(weights, uu.shape).reshape(-1)


def test_quadrature_integrates_the_clamped_cosine():
    _, w = _hemisphere_quadrature(np.array([0.0, 0.0, 1.0]))
    assert w.sum() == pytest.approx(math.pi, rel=1e-12)  # integral of max(cos, 0) = pi


def test_irradiance_is_the_lambertian_integral_of_the_rescaled_light():
    gamma = np.random.default_rng(1).normal(scale=0.3, size=27)
    normals = _dirs(6, seed=2)
    got = np.asarray(sh.irradiance(normals.astype(np.float32), gamma.astype(np.float32)))
    # The light each channel sees: the ambient on DC, then the reference's per-band scaling.
    g = gamma.reshape(3, 9).copy()  # RGB-major
    g[:, 0] += sh.AMBIENT
    light = g * SIGN * RATIO[BAND]  # [3, 9] real-SH coefficients of L(w)
    want = np.empty((len(normals), 3))
    for i, n in enumerate(normals):
        dirs, w = _hemisphere_quadrature(n)
        radiance = real_sh(dirs) @ light.T  # [Q, 3]: L_c(w)
        want[i] = w @ radiance
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Reading gamma as plain SH light coefficients instead would be wrong in bands 1 and 2.
    naive = g * SIGN
    dirs, w = _hemisphere_quadrature(normals[0])
    assert not np.allclose(got[0], w @ (real_sh(dirs) @ naive.T), rtol=1e-3)


def test_zero_gamma_is_the_uniform_ambient_light():
    normals = _dirs(20).astype(np.float32)
    out = np.asarray(sh.irradiance(normals, np.zeros(27, np.float32)))
    # A constant light L0 Y00 gives pi * L0 * Y00 at every normal; here L0 = 0.8.
    np.testing.assert_allclose(out, sh.AMBIENT * math.pi * 0.5 / math.sqrt(math.pi), rtol=1e-6)


def test_gamma_is_rgb_major():
    gamma = np.zeros(27, np.float32)
    gamma[9 + 3] = 0.5  # green channel, function 3 (-a1 c1 nx)
    normals = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], np.float32)
    out = np.asarray(sh.irradiance(normals, gamma))
    base = sh.AMBIENT * math.sqrt(math.pi) / 2
    np.testing.assert_allclose(out[:, [0, 2]], base, rtol=1e-6)
    np.testing.assert_allclose(
        out[:, 1], base + np.array([-0.5, 0.5]) * math.sqrt(math.pi), rtol=1e-6
    )
