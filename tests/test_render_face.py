"""Face rendering from coefficients: geometry against an independent rasterizer, shading
against a NumPy computation, gradients against finite differences, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_raster

from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import synthetic
from talkingjax.render import face, sh

CAM = camera_lib.Camera().scaled(64)


@pytest.fixture(scope="module")
def model():
    return synthetic.synthetic_model(300, 560, (4, 3, 2), seed=1)


def _coeffs(model, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    layout = coeffs_lib.Layout.of(model)
    vec = scale * rng.normal(size=layout.dim).astype(np.float32)
    c = coeffs_lib.from_vector(jnp.asarray(vec), layout)
    return c.replace(angles=c.angles * 0.5, trans=c.trans * 0.3)


def _numpy_pose(model, c):
    """Posed vertices and lit colours in plain NumPy (float64)."""
    m = jax.tree.map(lambda x: np.asarray(x, np.float64), model)
    c = jax.tree.map(lambda x: np.asarray(x, np.float64), c)
    verts = m.mean_shape + np.tensordot(c.id, m.id_basis, 1) + np.tensordot(c.exp, m.exp_basis, 1)
    ax, ay, az = c.angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rot = rz @ ry @ rx
    tris = np.asarray(model.triangles)
    fn = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, tris[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True)
    n = vn @ rot.T
    nx, ny, nz = n.T
    a0, a1, a2 = np.pi, 2 * np.pi / np.sqrt(3), 2 * np.pi / np.sqrt(8)
    c0, c1, c2 = (
        1 / np.sqrt(4 * np.pi),
        np.sqrt(3) / np.sqrt(4 * np.pi),
        3 * np.sqrt(5) / np.sqrt(12 * np.pi),
    )
    basis = np.stack(
        [
            np.full_like(nx, a0 * c0), -a1 * c1 * ny, a1 * c1 * nz, -a1 * c1 * nx,
            a2 * c2 * nx * ny, -a2 * c2 * ny * nz, a2 * c2 * 0.5 / np.sqrt(3) * (3 * nz**2 - 1),
            -a2 * c2 * nx * nz, a2 * c2 * 0.5 * (nx**2 - ny**2),
        ],
        axis=1,
    )  # fmt: skip
    gamma = c.gamma.reshape(3, 9).copy()
    gamma[:, 0] += 0.8
    albedo = m.mean_albedo + np.tensordot(c.tex, m.albedo_basis, 1)
    colors = albedo * (basis @ gamma.T)
    return verts @ rot.T + c.trans, colors


def test_geometry_matches_reference_rasterizer(model):
    c = _coeffs(model)
    out = face.render_face(model, c, CAM)
    verts, _ = _numpy_pose(model, c)
    depth = CAM.distance - verts[:, 2]
    pos_h = np.stack(
        [CAM.cx * depth + CAM.focal * verts[:, 0], CAM.cy * depth - CAM.focal * verts[:, 1], depth],
        axis=1,
    )
    want, want_depth = reference_raster.rasterize(
        pos_h, np.asarray(model.triangles), CAM.height, CAM.width, near=CAM.near
    )
    got = np.asarray(out.triangle)
    assert np.mean(got != want) < 2e-3  # float32 vs float64 at pixel centres on edges
    both = (got == want) & (want >= 0)
    np.testing.assert_allclose(np.asarray(out.depth)[both], want_depth[both], rtol=1e-4)
    assert 0.1 < np.mean(want >= 0) < 0.9


def test_shading_matches_numpy(model):
    c = _coeffs(model, seed=2)
    out = face.render_face(model, c, CAM, background=0.25)
    _, colors = _numpy_pose(model, c)
    tri = np.asarray(out.triangle)
    bary = np.asarray(out.bary, np.float64)
    drawn = tri >= 0
    verts = np.asarray(model.triangles)[np.maximum(tri, 0)]
    want = np.einsum("hwk,hwkc->hwc", bary, colors[verts])
    np.testing.assert_allclose(np.asarray(out.image)[drawn], want[drawn], atol=2e-5)
    np.testing.assert_allclose(np.asarray(out.image)[~drawn], 0.25)


def test_batch_matches_single_frames(model):
    cs = [_coeffs(model, seed=s) for s in range(3)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *cs)
    out = face.render_face(model, batch, CAM)
    for i, c in enumerate(cs):
        single = face.render_face(model, c, CAM)
        np.testing.assert_array_equal(np.asarray(out.triangle[i]), np.asarray(single.triangle))
        np.testing.assert_allclose(np.asarray(out.image[i]), np.asarray(single.image), atol=1e-5)


@pytest.mark.parametrize("field", ["id", "exp", "tex", "angles", "gamma", "trans"])
def test_coefficient_gradients_match_finite_differences(model, field):
    weights = np.random.default_rng(5).normal(size=(CAM.height, CAM.width, 3))
    with jax.enable_x64(True):
        m64 = jax.tree.map(
            lambda x: jnp.asarray(x, jnp.float64) if x.dtype == jnp.float32 else x, model
        )
        c64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), _coeffs(model, seed=3))

        def loss(value):
            out = face.render_face(m64, c64.replace(**{field: value}), CAM)
            return jnp.sum(out.image * weights)

        x = getattr(c64, field)
        grad = np.asarray(jax.grad(loss)(x))
        eps = 1e-6
        for i in range(min(x.shape[-1], 4)):
            fd = (loss(x.at[i].add(eps)) - loss(x.at[i].add(-eps))) / (2 * eps)
            np.testing.assert_allclose(grad[i], float(fd), rtol=2e-4, atol=1e-6)
        assert np.any(np.abs(grad) > 1e-3)


def test_landmarks_project_like_the_camera(model):
    c = _coeffs(model)
    posed = face.pose_face(model, c)
    uv = np.asarray(camera_lib.project(CAM, posed.vertices))
    verts, _ = _numpy_pose(model, c)
    depth = CAM.distance - verts[:, 2]
    np.testing.assert_allclose(uv[:, 0], CAM.cx + CAM.focal * verts[:, 0] / depth, rtol=1e-4)
    np.testing.assert_allclose(uv[:, 1], CAM.cy - CAM.focal * verts[:, 1] / depth, rtol=1e-4)


def test_wrong_coefficient_sizes_are_named(model):
    c = _coeffs(model)
    with pytest.raises(InputError, match="coefficient 'exp' has shape"):
        face.render_face(model, c.replace(exp=jnp.zeros(7)), CAM)
    with pytest.raises(InputError, match="'gamma'"):
        face.render_face(model, c.replace(gamma=jnp.zeros(9)), CAM)
    with pytest.raises(InputError, match="coefficient 'trans' has NaN"):
        face.render_face(model, c.replace(trans=jnp.array([0.0, jnp.nan, 0.0])), CAM)


def test_zero_lighting_is_the_ambient_term(model):
    c = coeffs_lib.zeros(coeffs_lib.Layout.of(model))
    irr = np.asarray(sh.irradiance(jnp.array([[0.0, 0.0, 1.0]]), c.gamma))
    np.testing.assert_allclose(irr, 0.8 * np.pi / np.sqrt(4 * np.pi) * np.ones((1, 3)), rtol=1e-6)


def test_default_model_face_matches_reference_rasterizer():
    # The shipped face mesh, turned so that the nose occludes a cheek and the far side folds
    # away: visibility, mask and depth against the independent NumPy rasterizer.
    from talkingjax.face3d import default

    model = default.load_default()
    cam = camera_lib.Camera().scaled(112)
    c = coeffs_lib.zeros(coeffs_lib.Layout.of(model)).replace(angles=jnp.array([0.2, 0.6, 0.1]))
    out = face.render_face(model, c, cam)
    posed = np.asarray(face.pose_face(model, c).vertices, np.float64)
    pos_h = np.asarray(camera_lib.to_homogeneous(cam, posed))
    want, want_depth = reference_raster.rasterize(
        pos_h, np.asarray(model.triangles), cam.height, cam.width, near=cam.near
    )
    got = np.asarray(out.triangle)
    assert np.mean(got != want) < 1e-3
    np.testing.assert_array_equal(np.asarray(out.mask) > 0, want >= 0)
    both = (got == want) & (want >= 0)
    np.testing.assert_allclose(np.asarray(out.depth)[both], want_depth[both], rtol=1e-5)
    assert np.mean(want >= 0) > 0.2


def test_render_fit_compiles_once_and_draws_vertex_weights(model):
    from talkingjax import visualize

    frames = [_coeffs(model, seed=s) for s in range(5)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *frames)
    images, masks = visualize.render_fit(model, batch, 64, batch=4)  # 4 + 1 (padded) frames
    before = visualize._render_batch._cache_size()
    first3 = jax.tree.map(lambda x: x[:3], batch)
    again, _ = visualize.render_fit(model, first3, 64, batch=4)  # another length, same program
    assert visualize._render_batch._cache_size() == before
    np.testing.assert_allclose(again, images[:3], atol=1e-6)
    for k, c in enumerate(frames):  # each frame as rendered alone
        one = face.render_face(model, c, CAM, background=1.0)
        np.testing.assert_allclose(images[k], one.image, atol=1e-5)
        np.testing.assert_array_equal(masks[k], one.mask)
    # A per-vertex weight drawn at the same poses in the same pass: the renders as above, the
    # weight on the mesh, 0 off it (a weight of 1 everywhere draws the mask).
    weights = np.linspace(0.0, 1.0, model.num_vertices, dtype=np.float32)
    same, same_masks, drawn = visualize.render_fit_weighted(model, batch, 64, weights, batch=4)
    np.testing.assert_allclose(same, images, atol=1e-6)
    np.testing.assert_array_equal(same_masks, masks)
    assert drawn.shape == masks.shape
    assert np.all(drawn[masks == 0] == 0) and drawn.max() <= 1.0 + 1e-6
    _, _, ones = visualize.render_fit_weighted(model, batch, 64, np.ones_like(weights))
    np.testing.assert_allclose(ones, masks, atol=1e-5)
