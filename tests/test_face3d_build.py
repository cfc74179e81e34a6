"""Tests of the default face model: the MediaPipe topology, the build steps and the shipped asset.

Everything runs on tiny synthetic inputs (no real images or videos, no face detection); the
synthetic faces are made from the shipped model itself, whose first 468 vertices are the
MediaPipe mesh vertices.
"""

import os
import subprocess
import sys
import zipfile

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax.errors import InputError
from talkingjax.face3d import build_default as bd
from talkingjax.face3d import default, images, topology
from talkingjax.face3d import model as mm

NV = topology.NUM_VERTICES


@pytest.fixture(scope="module")
def shipped():
    return default.load_default()


@pytest.fixture(scope="module")
def mean0(shipped):
    return np.asarray(shipped.mean_shape[:NV], np.float64)


@pytest.fixture(scope="module")
def mesh(mean0):
    return topology.face_mesh(mean0, topology.mirror_permutation(mean0))


# ---------------------------------------------------------------------------------------------
# Topology


def test_tesselation_faces_form_a_disc_with_three_holes():
    faces = topology.faces_from_edges(topology.tesselation_edges())
    assert faces.shape == (852, 3)
    assert len(topology.edge_face_counts(faces)) == 1322  # every MediaPipe edge is used
    assert topology.is_manifold(faces)
    assert topology.euler_characteristic(faces, NV) == -2  # sphere minus 4 discs
    loops = topology.boundary_loops(faces)
    assert [len(lp) for lp in loops] == [36, 20, 16, 16]  # outline, mouth, two eyes
    regions = topology.region_vertices()
    assert set(loops[0]) == set(regions["face_oval"].tolist())
    assert {frozenset(loops[2]), frozenset(loops[3])} == {
        frozenset(regions["left_eye"].tolist()),
        frozenset(regions["right_eye"].tolist()),
    }


def test_three_cycle_around_a_valence_three_vertex_is_not_a_face():
    # Triangle 0-1-2 split into three around vertex 3, with a neighbour face on each side.
    edges = [(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)]
    edges += [(0, 4), (1, 4), (1, 5), (2, 5), (2, 6), (0, 6)]
    faces = {tuple(f) for f in topology.faces_from_edges(np.array(edges)).tolist()}
    assert faces == {(0, 1, 3), (1, 2, 3), (0, 2, 3), (0, 1, 4), (1, 2, 5), (0, 2, 6)}


def test_face_mesh_filled_oriented_and_symmetric(mesh, mean0):
    tris = mesh["triangles"]
    assert tris.shape == (898, 3)
    assert [len(f) for f in mesh["fill"].values()] == [14, 14, 18]
    assert topology.is_manifold(tris)
    assert topology.is_consistently_oriented(tris)
    assert topology.euler_characteristic(tris, NV) == 1  # a disc
    assert [len(lp) for lp in topology.boundary_loops(tris)] == [36]
    # Counter-clockwise seen from +z: the area-weighted normal points to the viewer.
    fn = np.cross(mean0[tris[:, 1]] - mean0[tris[:, 0]], mean0[tris[:, 2]] - mean0[tris[:, 0]])
    total = fn.sum(0) / np.linalg.norm(fn.sum(0))
    assert total[2] > 0.9
    assert (fn[:, 2] > 0).mean() > 0.95
    # Mirroring maps triangles to triangles.
    perm = topology.mirror_permutation(mean0)
    assert np.array_equal(perm[perm], np.arange(NV))
    keys = {tuple(sorted(t)) for t in tris.tolist()}
    assert all(tuple(sorted(perm[t])) in keys for t in tris.tolist())
    assert perm[topology.RIGHT_EYE_OUTER] == topology.LEFT_EYE_OUTER


def test_orient_consistently_and_front():
    # A 3 x 3 grid of quads in the z = 0 plane, with random triangle orders.
    rng = np.random.default_rng(0)
    xs = np.arange(4.0)
    verts = np.stack([*np.meshgrid(xs, xs), np.zeros((4, 4))], -1).reshape(-1, 3)
    tris = []
    for i in range(3):
        for j in range(3):
            a, b, c, d = 4 * i + j, 4 * i + j + 1, 4 * i + j + 5, 4 * i + j + 4
            tris += [(a, b, c), (a, c, d)]
    tris = np.array([rng.permutation(t) for t in tris])
    oriented = topology.orient_consistently(tris)
    assert topology.is_consistently_oriented(oriented)
    assert {tuple(sorted(t)) for t in oriented.tolist()} == {tuple(sorted(t)) for t in tris}
    front = topology.orient_front(oriented, verts)
    fn = np.cross(verts[front[:, 1]] - verts[front[:, 0]], verts[front[:, 2]] - verts[front[:, 0]])
    assert np.all(fn[:, 2] > 0)
    flipped = topology.orient_front(front, verts * np.array([-1.0, 1.0, 1.0]))  # mirrored
    np.testing.assert_array_equal(flipped, front[:, ::-1])


def test_subdivision_operator(mesh, mean0):
    tris = mesh["triangles"]
    s, new, edges = topology.subdivide(tris, NV)
    assert s.shape == (NV + len(edges), NV) and new.shape == (4 * len(tris), 3)
    v = s @ mean0
    np.testing.assert_array_equal(v[:NV], mean0)  # original vertices kept, first
    np.testing.assert_allclose(v[NV:], 0.5 * (mean0[edges[:, 0]] + mean0[edges[:, 1]]))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(NV, 3)), rng.normal(size=(NV, 3))
    np.testing.assert_allclose(s @ (2 * x - 3 * y), 2 * (s @ x) - 3 * (s @ y), atol=1e-12)
    assert topology.is_manifold(new) and topology.is_consistently_oriented(new)
    assert topology.euler_characteristic(new) == topology.euler_characteristic(tris, NV)
    # Children keep their parent's orientation (normals parallel on this smooth surface).
    fn = np.cross(v[new[:, 1]] - v[new[:, 0]], v[new[:, 2]] - v[new[:, 0]])
    parent = np.cross(mean0[tris[:, 1]] - mean0[tris[:, 0]], mean0[tris[:, 2]] - mean0[tris[:, 0]])
    assert np.all(np.einsum("fc,fc->f", fn, np.repeat(parent, 4, axis=0)) > 0)
    # Two levels = the product of the two operators; the mirror extends to the new vertices.
    s2, tris2, par = topology.subdivide_times(tris, NV, 2)
    assert s2.shape[0] == 7257 and len(tris2) == 16 * len(tris) and par.max() == len(tris) - 1
    perm2 = topology.mirror_subdivided(topology.mirror_permutation(mean0), tris, 2)
    sym = mean0 * 0.5 + bd.mirror_shapes(mean0, topology.mirror_permutation(mean0)) * 0.5
    np.testing.assert_allclose(bd.mirror_shapes(s2 @ sym, perm2), s2 @ sym, atol=1e-12)


def test_landmarks_68_follow_the_dlib_layout(mean0):
    lm = mean0[list(topology.LANDMARKS_68)]
    assert len(set(topology.LANDMARKS_68)) == 68
    x, y = lm[:, 0], lm[:, 1]
    assert x[0] < 0 < x[16] and np.argmin(y[:17]) == 8  # jaw from the image left, chin lowest
    assert x[17] < x[21] < x[22] < x[26]  # brows
    assert np.argmax(lm[27:36, 2]) + 27 == 30  # the nose tip sticks out most
    assert x[36] < x[39] < x[42] < x[45]  # eye corners, left to right in the image
    assert y[37] > y[41] and y[44] > y[46]  # upper lids above lower lids
    assert x[48] < x[51] < x[54] and y[51] > y[57]  # mouth corners, upper over lower lip
    assert y[27] > y[30] > y[33] > y[51] > y[8]


# ---------------------------------------------------------------------------------------------
# Alignment, PCA, expressions


def _random_rotation(rng, scale=1.0):
    a = rng.normal(size=3) * scale
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    u, _, vt = np.linalg.svd(np.eye(3) + k + k @ k / 2)
    return u @ vt


def test_similarity_fit_recovers_transform():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    rot = _random_rotation(rng)
    dst = 2.5 * src @ rot.T + np.array([1.0, -2.0, 3.0])
    s, r, t = bd.similarity_fit(src, dst)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(bd.apply_similarity(src, s, r, t), dst, atol=1e-10)


def test_generalised_procrustes_removes_similarities(mean0):
    rng = np.random.default_rng(3)
    shapes = []
    for _ in range(6):
        noisy = mean0 + 0.002 * rng.normal(size=mean0.shape)
        shapes.append(
            rng.uniform(50, 200) * noisy @ _random_rotation(rng, 0.3).T + rng.normal(size=3) * 40
        )
    aligned, mean = bd.generalised_procrustes(np.stack(shapes), reference=mean0)
    # Expressed in the reference's frame: the aligned shapes sit on the reference.
    assert np.abs(aligned - mean0).max() < 0.02
    assert np.abs(mean - mean0).max() < 0.01


def test_pca_recovers_basis_and_scale():
    rng = np.random.default_rng(4)
    dirs, _ = np.linalg.qr(rng.normal(size=(40, 3)))
    stds = np.array([3.0, 2.0, 0.5])
    z = rng.normal(size=(4000, 3))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T))).T  # exactly white
    mean = rng.normal(size=40)
    data = mean + (z * stds) @ dirs.T
    p = bd.pca(data, max_components=10, variance=0.999)
    assert p.basis.shape == (40, 3)
    np.testing.assert_allclose(p.mean, mean, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(p.basis, axis=0), stds, rtol=1e-6)
    np.testing.assert_allclose(np.abs(p.basis.T @ dirs), np.diag(stds), atol=1e-6)
    # Fewest components reaching the variance fraction, and the cap.
    frac = np.cumsum(stds**2) / np.sum(stds**2)
    assert bd.pca(data, 10, frac[0] - 1e-3).basis.shape[1] == 1
    assert bd.pca(data, 10, frac[1] - 1e-3).basis.shape[1] == 2
    assert bd.pca(data, 1, 0.999).basis.shape[1] == 1
    assert bd.pca(data, 10, 0.999).explained == pytest.approx(1.0)


def test_remove_expressions_recovers_coefficients():
    rng = np.random.default_rng(5)
    exp = np.linalg.qr(rng.normal(size=(60, 2)))[0] * 3.0
    ident = rng.normal(size=(200, 60)) * 0.05
    coeffs = rng.normal(size=(200, 2))
    clean, fitted = bd.remove_expressions(5.0 + ident + coeffs @ exp.T, exp)
    # Coefficients are relative to the data's own mean expression.
    np.testing.assert_allclose(fitted, coeffs - coeffs.mean(0), atol=0.08)
    unit = exp / np.linalg.norm(exp, axis=0)
    left = (clean - clean.mean(0)) @ unit  # what is left along the expressions: noise only
    assert np.abs(left).max() < 0.25 and np.abs(coeffs @ exp.T @ unit).max() > 5


# ---------------------------------------------------------------------------------------------
# Albedo


def test_sample_bilinear_and_frame():
    h, w = 6, 8
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    image = np.stack([cols * 2.0 + rows, rows * 1.0], -1)
    u, v = np.array([0.5, 3.25, 7.5]), np.array([0.5, 2.75, 5.5])  # pixel-centre convention
    vals, inside = images.sample_bilinear(image, u, v)
    np.testing.assert_allclose(vals[:, 0], (u - 0.5) * 2 + (v - 0.5))
    np.testing.assert_allclose(vals[:, 1], v - 0.5)
    assert inside.all()
    assert not images.sample_bilinear(image, np.array([-2.0]), np.array([1.0]))[1][0]
    p = images.to_model_frame(np.array([[0.25, 0.5, -0.1]]), width=200, height=100)
    np.testing.assert_allclose(p, [[50.0, -50.0, 20.0]])


def _sphere_lights(rng, basis, n):
    lights = []
    for _ in range(n):
        light = np.zeros(9)
        light[1:] = rng.normal(0, 0.1, 8)
        f = basis.mean(0)
        light[0] = (1 - f[1:] @ light[1:]) / f[0]  # mean irradiance 1, the fitted gauge
        lights.append(light)
    return np.array(lights)


def test_fit_gray_light_recovers_light():
    rng = np.random.default_rng(6)
    normals = rng.normal(size=(500, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    basis = bd._sh_np(normals)
    light = _sphere_lights(rng, basis, 1)[0]
    albedo = rng.uniform(0.2, 0.8, (500, 3))
    got = bd.fit_gray_light(albedo * (basis @ light)[:, None], albedo, np.ones(500), basis, 1e-12)
    np.testing.assert_allclose(got, light, atol=1e-8)
    gamma = bd.light_to_gamma(got)
    from talkingjax.render import sh

    irr = np.asarray(sh.irradiance(jnp.asarray(normals), jnp.asarray(gamma, jnp.float32)))
    np.testing.assert_allclose(irr, np.repeat((basis @ light)[:, None], 3, 1), atol=1e-5)


def test_delight_recovers_albedo_and_lights():
    rng = np.random.default_rng(7)
    normals = rng.normal(size=(800, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    albedo = 0.5 + 0.2 * np.sin(5 * normals[:, :1] + np.arange(3)) * np.cos(4 * normals[:, 1:2])
    basis = bd._sh_np(normals)
    lights = _sphere_lights(rng, basis, 6)
    colors = albedo[None] * (lights @ basis.T)[..., None]
    albedos, gammas, mean = bd.delight(
        colors,
        np.ones((6, 800)),
        np.broadcast_to(normals, (6, 800, 3)),
        iterations=500,
        ridge=1e-10,
        min_irradiance=0.01,
    )
    assert np.abs(mean - albedo).max() < 2e-3
    assert np.abs(albedos - albedo).max() < 2e-3
    np.testing.assert_allclose(gammas[:, :9], lights - [0.8, *[0] * 8], atol=2e-3)
    np.testing.assert_array_equal(gammas[:, :9], gammas[:, 9:18])  # gray light


def test_inpaint_fills_unseen_vertices():
    tris = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4]])
    values = np.array([[1.0], [1.0], [0.0], [1.0], [1.0]])
    out = bd.inpaint(values, np.array([1, 1, 0, 1, 1.0]), tris)
    np.testing.assert_allclose(out, 1.0)


# ---------------------------------------------------------------------------------------------
# Builder pipeline on synthetic landmarks and images


def _synthetic_inputs(shipped, n_portraits=6, n_videos=2, frames=10, seed=8):
    rng = np.random.default_rng(seed)
    kid, kexp, _ = shipped.sizes

    def face(id_c, exp_c):
        v = mm.shape(shipped, jnp.asarray(id_c, jnp.float32), jnp.asarray(exp_c, jnp.float32))
        return np.asarray(v[:NV], np.float64)

    def to_pixels(v, size):
        rot = _random_rotation(rng, 0.08)
        return 40.0 * v @ rot.T + np.array([size / 2, -size / 2, 0.0]) + rng.normal(size=3)

    portraits = []
    for i in range(n_portraits):
        id_c = rng.normal(size=kid)
        size = 96
        yy, xx = np.mgrid[0:size, 0:size] / size
        image = np.stack([0.6 + 0.2 * xx, 0.45 + 0.1 * yy, 0.4 + 0.05 * xx * yy], -1)
        image = np.clip(image + 0.02 * rng.normal(size=image.shape), 0, 1).astype(np.float32)
        points = to_pixels(face(id_c, np.zeros(kexp)), size)
        portraits.append(images.Portrait(f"p{i}.png", image, points))
    videos = []
    for _ in range(n_videos):
        id_c = rng.normal(size=kid)
        exp_c = rng.normal(size=(frames, kexp)) * (np.arange(kexp) < 3)  # 3 expressions used
        videos.append(np.stack([to_pixels(face(id_c, e), 256) for e in exp_c]))
    return portraits, videos


SMALL = bd.BuildConfig(levels=1, id_max=4, exp_max=3, tex_max=3, delight_iterations=2)


@pytest.fixture(scope="module")
def synthetic_build(shipped):
    portraits, videos = _synthetic_inputs(shipped)
    return bd.build_model(portraits, videos, SMALL), (portraits, videos)


def test_build_model_on_synthetic_inputs(synthetic_build, shipped):
    built, _ = synthetic_build
    model = built.model
    assert model.num_vertices == 1833 and model.num_triangles == 4 * 898
    kid, kexp, ktex = model.sizes
    assert 1 <= kid <= 4 and 1 <= kexp <= 3 and 1 <= ktex <= 3
    ms = np.asarray(model.mean_shape)
    eye = np.linalg.norm(ms[topology.LEFT_EYE_OUTER] - ms[topology.RIGHT_EYE_OUTER])
    assert eye == pytest.approx(0.9, abs=1e-5)
    np.testing.assert_allclose(ms.mean(0), 0.0, atol=1e-6)
    albedo = np.asarray(model.mean_albedo)
    assert albedo.min() >= 0 and albedo.max() <= 1
    assert list(np.asarray(model.landmarks)) == list(topology.LANDMARKS_68)
    assert 0.5 < np.asarray(model.skin_mask).mean() < 1.0
    assert built.metadata["portraits_used"] == "6"
    # The expression basis spans the generating expressions (the shipped model's first 3).
    got = np.asarray(mm.shape(model, jnp.zeros(kid), jnp.eye(kexp)) - model.mean_shape)[:, :NV]
    true = np.asarray(mm.shape(shipped, jnp.zeros(shipped.sizes[0]), jnp.eye(shipped.sizes[1])))
    true = (true - np.asarray(shipped.mean_shape))[:3, :NV]
    q, _ = np.linalg.qr(true.reshape(3, -1).T)
    g = got.reshape(kexp, -1).T
    inside = np.linalg.norm(q.T @ g, axis=0) / np.linalg.norm(g, axis=0)
    assert inside[0] > 0.95


def test_build_is_deterministic_and_written_atomically(synthetic_build, tmp_path):
    built, (portraits, videos) = synthetic_build
    again = bd.build_model(portraits, videos, SMALL)
    for field in mm._FIELDS:
        np.testing.assert_array_equal(
            np.asarray(getattr(built.model, field)), np.asarray(getattr(again.model, field))
        )
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    bd.write_model(built, str(a))
    bd.write_model(again, str(b))
    assert a.read_bytes() == b.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz"]  # no temp files left
    loaded = mm.load(str(a))
    np.testing.assert_array_equal(np.asarray(loaded.mean_shape), np.asarray(built.model.mean_shape))
    assert mm.metadata(str(a))["id_components"] == built.metadata["id_components"]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zipfile.ZipFile(a).infolist())


def test_build_model_rejects_too_few_inputs(synthetic_build):
    _, (portraits, videos) = synthetic_build
    with pytest.raises(InputError, match="at least 3 portraits"):
        bd.build_model(portraits[:2], videos, SMALL)
    with pytest.raises(InputError, match="video"):
        bd.build_model(portraits, [], SMALL)


def test_bad_input_directories(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no face images"):
        images.detect_portraits(str(empty))
    with pytest.raises(InputError, match="not found"):
        images.detect_portraits(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image"):
        images.detect_portraits(str(broken))
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "gray.png"), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(InputError, match="no face found in any"):
        images.detect_portraits(str(blank))
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.build_default_face"]
        + [f"--faces={empty}", f"--videos={empty}"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no videos")


# ---------------------------------------------------------------------------------------------
# The shipped asset


def test_shipped_model_sizes_units_and_orientation(shipped):
    kid, kexp, ktex = shipped.sizes
    assert 1 <= kid <= 60 and 1 <= kexp <= 32 and 1 <= ktex <= 40
    assert shipped.num_vertices == 7257 and shipped.num_triangles == 16 * 898
    assert os.path.getsize(default.ASSET) < 6e6
    ms = np.asarray(shipped.mean_shape)
    eye = np.linalg.norm(ms[topology.LEFT_EYE_OUTER] - ms[topology.RIGHT_EYE_OUTER])
    assert eye == pytest.approx(0.9, abs=1e-4)  # 1 unit = 10 cm
    np.testing.assert_allclose(ms.mean(0), 0.0, atol=1e-5)
    width, height, _ = np.ptp(ms, axis=0)
    assert 1.1 < width < 1.7 and 1.3 < height < 2.0  # ~14 cm wide, ~16 cm tall
    normals = np.asarray(mm.vertex_normals(shipped, shipped.mean_shape))
    assert (normals[:, 2] > 0).mean() > 0.97
    assert normals[topology.LANDMARKS_68[30], 2] > 0.9  # nose tip faces the camera
    tris = np.asarray(shipped.triangles)
    fn = np.cross(ms[tris[:, 1]] - ms[tris[:, 0]], ms[tris[:, 2]] - ms[tris[:, 0]])
    assert fn.sum(0)[2] / np.linalg.norm(fn.sum(0)) > 0.9
    lm = ms[list(topology.LANDMARKS_68)]
    assert lm[30, 2] > lm[0, 2] + 0.3  # nose in front of the cheeks (+z toward the viewer)
    assert lm[19, 1] > lm[30, 1] > lm[8, 1]  # y up


def test_shipped_model_is_symmetric_with_plausible_albedo(shipped):
    ms = np.asarray(shipped.mean_shape)
    perm = topology.mirror_permutation(ms[:NV])
    # The asset's triangles are the topology module's, twice subdivided.
    tris0 = topology.face_mesh(ms[:NV], perm)["triangles"]
    s2, tris2, _ = topology.subdivide_times(tris0, NV, 2)
    np.testing.assert_array_equal(np.asarray(shipped.triangles), tris2)
    np.testing.assert_allclose(s2 @ ms[:NV] - (s2 @ ms[:NV]).mean(0), ms, atol=1e-5)
    perm2 = topology.mirror_subdivided(perm, tris0, 2)
    assert np.abs(bd.mirror_shapes(ms, perm2) - ms).max() < 1e-5
    albedo_mirror = np.asarray(shipped.mean_albedo)[perm2]
    np.testing.assert_allclose(albedo_mirror, np.asarray(shipped.mean_albedo), atol=1e-5)
    albedo = np.asarray(shipped.mean_albedo)
    skin = np.asarray(shipped.skin_mask) > 0.5
    assert 0.6 < skin.mean() < 0.95
    assert albedo.min() >= 0.0 and albedo.max() <= 1.0
    med = np.median(albedo[skin], axis=0)
    assert np.all((med > 0.25) & (med < 0.85)) and med[0] > med[1] > med[2]  # skin-toned
    meta = default.default_metadata()
    assert meta["scale_anchor"].startswith("mean outer-eye-corner distance")
    assert int(meta["id_components"]) == shipped.sizes[0]
