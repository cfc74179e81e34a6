"""The morphable-model container: validation, file round trip and bad files, and its pure
functions against plain NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax import geometry
from talkingjax.errors import InputError
from talkingjax.face3d import model as model_lib
from talkingjax.face3d import synthetic


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    verts, tris = synthetic.synthetic_mesh(60, 100, seed=0)
    v = len(verts)
    return {
        "mean_shape": verts,
        "id_basis": rng.normal(size=(v, 3, 4)).astype(np.float32),
        "exp_basis": rng.normal(size=(v, 3, 3)).astype(np.float32),
        "mean_albedo": rng.uniform(size=(v, 3)).astype(np.float32),
        "albedo_basis": rng.normal(size=(v, 3, 2)).astype(np.float32),
        "triangles": tris,
        "landmarks": np.array([0, 5, 9]),
    }


def test_shape_and_albedo_match_numpy(arrays):
    m = model_lib.make_model(**arrays)
    assert m.sizes == (4, 3, 2)
    ids, exps, tex = np.ones(4) * 0.3, np.arange(3) * 0.1, np.array([0.5, -0.5])
    want = arrays["mean_shape"] + arrays["id_basis"] @ ids + arrays["exp_basis"] @ exps
    np.testing.assert_allclose(
        model_lib.shape(m, jnp.asarray(ids), jnp.asarray(exps)), want, rtol=1e-5, atol=1e-5
    )
    batch = model_lib.shape(
        m, jnp.stack([jnp.asarray(ids)] * 2), jnp.stack([jnp.asarray(exps)] * 2)
    )
    np.testing.assert_allclose(batch[1], want, rtol=1e-5, atol=1e-5)
    want_alb = arrays["mean_albedo"] + arrays["albedo_basis"] @ tex
    np.testing.assert_allclose(
        model_lib.albedo(m, jnp.asarray(tex)), want_alb, rtol=1e-5, atol=1e-6
    )


def test_vertex_faces_and_normals(arrays):
    tris = arrays["triangles"]
    vf = model_lib.vertex_faces_from_triangles(tris, 60)
    for v in range(60):
        listed = sorted(f for f in vf[v] if f < len(tris))
        assert listed == sorted(np.nonzero(np.any(tris == v, axis=1))[0].tolist())
    m = model_lib.make_model(**arrays)
    n = np.asarray(model_lib.vertex_normals(m, m.mean_shape))
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, rtol=1e-5)
    assert np.mean(n[:, 2] > 0) > 0.9  # counter-clockwise from the front: normals toward +z


def test_rigid_transform_uses_the_shared_rotation(arrays):
    angles, trans = jnp.array([0.1, -0.4, 0.3]), jnp.array([0.5, 0.0, -1.0])
    verts = jnp.asarray(arrays["mean_shape"])
    rot = np.asarray(geometry.euler_to_rotation(angles))
    np.testing.assert_allclose(
        model_lib.rigid_transform(verts, angles, trans),
        np.asarray(verts) @ rot.T + np.asarray(trans),
        rtol=1e-5,
        atol=1e-6,
    )


def test_save_load_round_trip_keeps_file_layout(arrays, tmp_path):
    m = model_lib.make_model(**arrays)
    path = str(tmp_path / "m.npz")
    model_lib.save(m, path, source="test")
    with np.load(path) as f:
        np.testing.assert_array_equal(f["id_basis"], arrays["id_basis"])  # [V, 3, K] on disk
    back = model_lib.load(path)
    for field in ("mean_shape", "id_basis", "exp_basis", "albedo_basis", "triangles", "landmarks"):
        np.testing.assert_array_equal(
            np.asarray(getattr(back, field)), np.asarray(getattr(m, field))
        )
    assert model_lib.metadata(path) == {"source": "test"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mean_shape": np.zeros((60, 2))}, "mean shape must be"),
        ({"id_basis": np.zeros((59, 3, 4))}, "identity basis must be"),
        ({"mean_albedo": np.full((60, 3), np.nan)}, "mean albedo has NaN"),
        ({"triangles": np.array([[0, 1, 60]])}, "triangles out of range"),
        ({"triangles": np.array([[0.5, 1, 2]])}, "triangles must be integers"),
        ({"landmarks": np.array([-1])}, "landmarks out of range"),
    ],
)
def test_make_model_names_the_problem(arrays, change, message):
    with pytest.raises(InputError, match=message):
        model_lib.make_model(**{**arrays, **change})


def test_bad_model_files(arrays, tmp_path):
    with pytest.raises(InputError, match="face model not found"):
        model_lib.load(str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="cannot read face model"):
        model_lib.load(str(bad))
    partial = tmp_path / "partial.npz"
    np.savez(partial, mean_shape=arrays["mean_shape"])
    with pytest.raises(InputError, match="lacks arrays"):
        model_lib.load(str(partial))
