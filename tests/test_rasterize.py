"""The JAX rasterizer against an independent NumPy z-buffer, and its gradients against
finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_raster

from talkingjax.face3d import camera as camera_lib
from talkingjax.render import rasterize as raster

H, W = 40, 56


def _random_triangles(rng, n, w_low, w_high, spread=1.0):
    """n independent triangles in homogeneous pixel coordinates."""
    uv = rng.uniform(-0.2 * W * spread, 1.2 * W * spread, (n * 3, 2))
    w = rng.uniform(w_low, w_high, (n * 3, 1))
    pos = np.concatenate([uv * np.abs(w), w], axis=1).astype(np.float32)
    return pos, np.arange(n * 3, dtype=np.int32).reshape(n, 3)


def _sphere(n_lat=24, n_lon=32, radius=1.0, center=(0.0, 0.0, 0.0)):
    """A closed UV sphere with outward (counter-clockwise from outside) triangles."""
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack(
        [
            np.sin(lat)[:, None] * np.cos(lon)[None],
            np.cos(lat)[:, None] * np.ones_like(lon)[None],
            np.sin(lat)[:, None] * np.sin(lon)[None],
        ],
        axis=-1,
    ).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + np.asarray(center)
    tris = []
    idx = lambda i, j: 1 + i * n_lon + j % n_lon  # noqa: E731
    for j in range(n_lon):
        tris.append([0, idx(0, j + 1), idx(0, j)])
        tris.append([len(verts) - 1, idx(n_lat - 2, j), idx(n_lat - 2, j + 1)])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j), idx(i + 1, j + 1)
            tris += [[a, b, d], [a, d, c]]
    return verts.astype(np.float32), np.asarray(tris, np.int32)


def _check_against_reference(pos, tris, near=1e-3, max_mismatch=0):
    got = np.asarray(raster.rasterize(pos, tris, H, W, near=near))
    want, want_depth = reference_raster.rasterize(pos, tris, H, W, near=near)
    mismatch = np.sum(got != want)
    assert mismatch <= max_mismatch, f"{mismatch} of {got.size} pixels differ"
    bary, depth = raster.barycentrics(jnp.asarray(pos), tris, jnp.asarray(got))
    drawn = got >= 0
    np.testing.assert_allclose(np.asarray(depth)[drawn], want_depth[drawn], rtol=1e-4)
    assert np.all(np.asarray(depth)[~drawn] == 0)
    return got, np.asarray(bary)


def test_random_overlapping_triangles_match_reference():
    rng = np.random.default_rng(0)
    pos, tris = _random_triangles(rng, 80, 2.0, 8.0)
    got, bary = _check_against_reference(pos, tris)
    assert 0.3 < np.mean(got >= 0) < 1.0  # the scene is neither empty nor trivially full
    drawn = got >= 0
    np.testing.assert_allclose(bary.sum(-1)[drawn], 1.0, atol=1e-5)
    assert np.all(bary[drawn] >= -1e-5)


def test_vertices_behind_camera_match_clipping_reference():
    rng = np.random.default_rng(1)
    uv = rng.uniform(-40, 100, (150, 2))
    w = rng.uniform(-4.0, 6.0, (150, 1))
    pos = np.concatenate([uv * w, w], axis=1).astype(np.float32)  # some w < 0: behind
    tris = np.arange(150, dtype=np.int32).reshape(50, 3)
    assert np.any(np.isin(np.sum(pos[tris][..., 2] < 0.5, axis=1), (1, 2)))
    got, _ = _check_against_reference(pos, tris, near=0.5)
    assert np.any(got >= 0)


def test_triangle_crossing_the_camera_plane_is_drawn_only_in_front():
    # One big triangle with a vertex behind the camera: its visible part is unbounded in the
    # projection, which a naive projected-bounding-box rasterizer gets wrong.
    pos = np.array([[20.0, 20.0, 2.0], [40.0, 10.0, 4.0], [-30.0, 35.0, -1.0]], np.float32)
    pos[:, :2] *= np.abs(pos[:, 2:])
    _check_against_reference(pos, np.array([[0, 1, 2]], np.int32), near=0.1)


def test_degenerate_and_culled_triangles_draw_nothing():
    pos = np.array(
        [
            [10, 10, 1], [30, 10, 1], [50, 10, 1],  # collinear
            [20, 20, 1], [20, 20, 1], [20, 20, 1],  # a point
            [10, 10, -1], [30, 10, -2], [10, 30, -1],  # all behind the camera
        ],
        np.float32,
    )  # fmt: skip
    pos[:, :2] *= np.abs(pos[:, 2:])
    tris = np.arange(9, dtype=np.int32).reshape(3, 3)
    frag = raster.render_fragments(pos, tris, H, W)
    assert np.all(np.asarray(frag.triangle) == -1)
    assert np.all(np.isfinite(np.asarray(frag.bary)))


def test_sphere_mask_depth_and_backface_culling():
    verts, tris = _sphere(center=(0.0, 0.0, 0.0))
    cam = camera_lib.Camera(focal=60.0, cx=W / 2, cy=H / 2, width=W, height=H, distance=4.0)
    pos = np.asarray(camera_lib.to_homogeneous(cam, jnp.asarray(verts)))
    got, _ = _check_against_reference(pos, tris)
    culled = np.asarray(raster.rasterize(pos, tris, H, W, cull_backfaces=True))
    # A closed convex mesh looks the same with back faces culled...
    np.testing.assert_array_equal(culled >= 0, got >= 0)
    # ...and a flipped one shows nothing but its (now front-facing) inside.
    inside = np.asarray(raster.rasterize(pos, tris[:, ::-1], H, W, cull_backfaces=True))
    assert np.all(inside[got >= 0] != got[got >= 0])


def test_chunk_size_batch_and_grouping_do_not_change_the_result():
    rng = np.random.default_rng(2)
    frames = [_random_triangles(rng, 40, 1.0, 5.0)[0] for _ in range(3)]
    tris = np.arange(120, dtype=np.int32).reshape(40, 3)
    batch = np.stack(frames)
    one_by_one = np.stack([np.asarray(raster.rasterize(p, tris, H, W)) for p in frames])
    for kwargs in ({}, {"chunk_size": 64}, {"frames_per_pass": 2}, {"frames_per_pass": None}):
        got = np.asarray(raster.rasterize(batch, tris, H, W, **kwargs))
        np.testing.assert_array_equal(got, one_by_one, err_msg=str(kwargs))
    # Extra leading dims are batch dims too.
    got = np.asarray(raster.rasterize(batch[None], tris, H, W))
    np.testing.assert_array_equal(got[0], one_by_one)


def test_barycentrics_are_perspective_correct():
    # The barycentric mix of the camera-space vertices must lie on the pixel centre's ray.
    verts, tris = _sphere(center=(0.1, -0.2, 0.0))
    cam = camera_lib.Camera(focal=60.0, cx=W / 2, cy=H / 2, width=W, height=H, distance=3.0)
    pos = camera_lib.to_homogeneous(cam, jnp.asarray(verts))
    frag = raster.render_fragments(pos, tris, H, W)
    point = raster.interpolate(pos, tris, frag.triangle, frag.bary)  # (u w, v w, w)
    drawn = np.asarray(frag.mask) > 0
    uv = np.asarray(point[..., :2] / jnp.where(point[..., 2:] == 0, 1.0, point[..., 2:]))
    rows, cols = np.nonzero(drawn)
    np.testing.assert_allclose(uv[drawn][:, 0], cols + 0.5, atol=2e-3)
    np.testing.assert_allclose(uv[drawn][:, 1], rows + 0.5, atol=2e-3)
    np.testing.assert_allclose(
        np.asarray(point[..., 2])[drawn], np.asarray(frag.depth)[drawn], rtol=1e-5
    )


def test_interpolate_batched_and_shared_attributes_agree():
    verts, tris = _sphere()
    cam = camera_lib.Camera(focal=60.0, cx=W / 2, cy=H / 2, width=W, height=H, distance=4.0)
    pos = camera_lib.to_homogeneous(cam, jnp.stack([jnp.asarray(verts), jnp.asarray(verts) * 0.8]))
    frag = raster.render_fragments(pos, tris, H, W)
    colors = jnp.asarray(np.random.default_rng(3).uniform(size=(len(verts), 3)), jnp.float32)
    shared = raster.interpolate(colors, tris, frag.triangle, frag.bary)
    per_frame = raster.interpolate(jnp.stack([colors, colors]), tris, frag.triangle, frag.bary)
    np.testing.assert_allclose(np.asarray(shared), np.asarray(per_frame), rtol=1e-6)
    assert np.all(np.asarray(shared)[np.asarray(frag.mask) == 0] == 0)


@pytest.mark.parametrize("what", ["positions", "colors"])
def test_gradients_match_finite_differences(what):
    verts, tris = _sphere(n_lat=10, n_lon=12)
    cam = camera_lib.Camera(focal=50.0, cx=W / 2, cy=H / 2, width=W, height=H, distance=4.0)
    rng = np.random.default_rng(4)
    colors = rng.uniform(size=(len(verts), 3))
    weights = rng.normal(size=(H, W, 3))
    with jax.enable_x64(True):
        verts64 = jnp.asarray(verts, jnp.float64)
        colors64 = jnp.asarray(colors)
        # Visibility is fixed at the unperturbed mesh: the loss is a smooth function of the
        # vertices for that visibility, which is what the barycentric gradient is the gradient of.
        triangle = raster.rasterize(camera_lib.to_homogeneous(cam, verts64), tris, H, W)

        def loss(v, c):
            pos = camera_lib.to_homogeneous(cam, v)
            bary, _ = raster.barycentrics(pos, tris, triangle)
            return jnp.sum(raster.interpolate(c, tris, triangle, bary) * weights)

        argnum = 0 if what == "positions" else 1
        grad = np.asarray(jax.grad(loss, argnums=argnum)(verts64, colors64))
        base = (verts64, colors64)
        eps = 1e-6
        for idx in [(3, 0), (7, 1), (20, 2), (40, 0), (55, 1)]:
            up = list(base)
            dn = list(base)
            up[argnum] = base[argnum].at[idx].add(eps)
            dn[argnum] = base[argnum].at[idx].add(-eps)
            fd = (loss(*up) - loss(*dn)) / (2 * eps)
            np.testing.assert_allclose(grad[idx], float(fd), rtol=1e-5, atol=1e-7)
        assert np.any(grad != 0)


def test_default_chunk_size_is_a_power_of_two_and_covers_a_face():
    size = raster.default_chunk_size(70789, 224, 224)
    assert size & (size - 1) == 0 and size >= 70789
