"""Synthetic morphable models of any size, for tests and benchmarks.

`synthetic_model` builds a face-shaped height field (an ellipsoidal cap with a nose) over a
Delaunay triangulation of an elliptic disc, with random smooth linear bases. With the defaults it
has exactly the BFM's sizes (35,709 vertices, 70,789 triangles, 80/64/80 coefficients) and the
BFM's scale, so renderer speed on it is speed on the BFM without needing the licence-gated file.
A Delaunay triangulation of n points with h of them on the convex hull has 2n - 2 - h triangles;
placing exactly h points on the rim fixes the triangle count.
"""

from __future__ import annotations

import numpy as np
import scipy.spatial

from talkingjax.face3d import model as model_lib

BFM_VERTICES = 35709
BFM_TRIANGLES = 70789
BFM_SIZES = (80, 64, 80)


def face_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A face-like depth map z(x, y) in BFM units (about 10 cm per unit)."""
    cap = 0.55 * np.sqrt(np.clip(1.0 - (x / 0.85) ** 2 - (y / 1.1) ** 2, 0.0, 1.0))
    nose = 0.25 * np.exp(-(x**2) / 0.012 - (y + 0.05) ** 2 / 0.08)
    return cap + nose


def synthetic_mesh(
    num_vertices: int = BFM_VERTICES, num_triangles: int = BFM_TRIANGLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A face-shaped mesh with exactly the requested counts.

    Args:
      num_vertices: n >= 4.
      num_triangles: F with n - 2 <= ... ; the rim gets h = 2n - 2 - F points, which must be
        between 3 and n - 1.
      seed: jitter of the interior points.

    Returns:
      vertices [n, 3] float32 (y up, facing +z) and triangles [F, 3] int32, counter-clockwise
      seen from the front.
    """
    rim = 2 * num_vertices - 2 - num_triangles
    if not 3 <= rim < num_vertices:
        raise ValueError(
            f"cannot make {num_triangles} triangles from {num_vertices} vertices "
            f"(needs {rim} rim points, between 3 and n - 1)"
        )
    rng = np.random.default_rng(seed)
    a, b = 0.8, 1.05
    t = np.linspace(0.0, 2 * np.pi, rim, endpoint=False)
    boundary = np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
    # Interior: a jittered grid inside a slightly smaller ellipse, thinned to the exact count.
    inner = num_vertices - rim
    side = int(np.ceil(np.sqrt(inner * 4 / np.pi))) + 2
    while True:
        gx, gy = np.meshgrid(np.linspace(-a, a, side), np.linspace(-b, b, side))
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        cell = 2 * a / (side - 1)
        pts = pts + rng.uniform(-0.3, 0.3, pts.shape) * cell
        keep = (pts[:, 0] / (a - cell)) ** 2 + (pts[:, 1] / (b - cell)) ** 2 < 1.0
        pts = pts[keep]
        if len(pts) >= inner:
            break
        side += 1
    pts = pts[np.sort(rng.choice(len(pts), inner, replace=False))]
    xy = np.concatenate([boundary, pts])
    tris = scipy.spatial.Delaunay(xy).simplices.astype(np.int64)
    if len(tris) != num_triangles:  # only if rim points were not all on the hull
        raise RuntimeError(f"triangulation has {len(tris)} triangles, wanted {num_triangles}")
    d1, d2 = xy[tris[:, 1]] - xy[tris[:, 0]], xy[tris[:, 2]] - xy[tris[:, 0]]
    clockwise = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] < 0
    tris[clockwise] = tris[clockwise][:, ::-1]
    verts = np.concatenate([xy, face_height(xy[:, 0], xy[:, 1])[:, None]], axis=1)
    verts -= verts.mean(axis=0)
    return verts.astype(np.float32), tris.astype(np.int32)


def _smooth_basis(verts: np.ndarray, size: int, scale: float, rng) -> np.ndarray:
    """[V, 3, size] random smooth deformations (low-frequency cosines of the position)."""
    freq = rng.normal(size=(size, 3, 3)) * 2.0
    phase = rng.uniform(0, 2 * np.pi, (size, 3))
    waves = np.cos(np.einsum("vd,kcd->vck", verts, freq) + phase.T[None])
    return (scale * waves / np.sqrt(size)).astype(np.float32)


def synthetic_model(
    num_vertices: int = BFM_VERTICES,
    num_triangles: int = BFM_TRIANGLES,
    sizes: tuple[int, int, int] = BFM_SIZES,
    seed: int = 0,
) -> model_lib.MorphableModel:
    """A `MorphableModel` on `synthetic_mesh` with random smooth bases of the given sizes."""
    rng = np.random.default_rng(seed)
    verts, tris = synthetic_mesh(num_vertices, num_triangles, seed)
    id_basis = _smooth_basis(verts, sizes[0], 0.05, rng)
    exp_basis = _smooth_basis(verts, sizes[1], 0.03, rng)
    albedo_basis = _smooth_basis(verts, sizes[2], 0.1, rng)
    # A skin-like albedo with a darker band where a mouth would be, so renders are readable.
    mouth = np.exp(-(verts[:, 0] ** 2) / 0.05 - (verts[:, 1] + 0.45) ** 2 / 0.004)
    mean_albedo = np.array([0.75, 0.55, 0.45]) * (1 - 0.5 * mouth[:, None])
    return model_lib.make_model(
        mean_shape=verts,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=mean_albedo,
        albedo_basis=albedo_basis,
        triangles=tris,
        name="synthetic model",
    )
