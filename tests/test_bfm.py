"""Tests of the BFM_model_front.mat reader on a tiny model written in exactly that format.

The fixture is a 6 x 6 grid bent into a bump that faces +z, with random small bases. It is
written the way Deep3DFaceRecon's file is: MATLAB field names, xyz interleaved per vertex in
rows of 3V, 1-based `tri`, `point_buf` padded with F + 1, albedo in 0-255 units.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from talkingjax.errors import InputError
from talkingjax.face3d import bfm, coeffs
from talkingjax.face3d import model as face_model

N = 6  # grid side: V = 36 vertices, F = 50 triangles
K_ID, K_EXP, K_TEX = 5, 4, 3
MAX_FACES = 8  # point_buf width in the real file


def _grid_mesh():
    """[V, 3] vertices of a bump facing +z, and [F, 3] 0-based triangles CCW seen from +z."""
    xs = np.linspace(-1.0, 1.0, N)
    x, y = np.meshgrid(xs, xs)  # row i has y = xs[i]; column j has x = xs[j]
    z = 0.5 * np.exp(-(x**2 + y**2))
    verts = np.stack([x, y, z], axis=-1).reshape(-1, 3) + np.array([0.3, -0.2, 5.0])
    tris = []
    for i in range(N - 1):
        for j in range(N - 1):
            a, b, c, d = i * N + j, i * N + j + 1, (i + 1) * N + j, (i + 1) * N + j + 1
            # x grows with j and y with i, so a -> b -> d turns counter-clockwise seen from +z.
            tris += [(a, b, d), (a, d, c)]
    return verts, np.array(tris)


def _point_buf(tris, num_v):
    """0-based faces around each vertex, padded with F, written with plain loops."""
    out = np.full((num_v, MAX_FACES), len(tris))
    for v in range(num_v):
        faces = [f for f, t in enumerate(tris) if v in t]
        out[v, : len(faces)] = faces
    return out


def _bfm_fields(seed=0):
    """The fields of a BFM_model_front.mat (in the file's conventions) and the known mesh."""
    rng = np.random.default_rng(seed)
    verts, tris = _grid_mesh()
    v = len(verts)
    fields = {
        "meanshape": verts.reshape(1, -1),  # x0 y0 z0 x1 y1 z1 ...
        "idBase": rng.normal(scale=0.05, size=(3 * v, K_ID)),
        "exBase": rng.normal(scale=0.02, size=(3 * v, K_EXP)),
        "meantex": rng.uniform(60, 200, size=(1, 3 * v)),
        "texBase": rng.normal(scale=10.0, size=(3 * v, K_TEX)),
        "tri": (tris + 1).astype(np.float64),  # MATLAB stores them as doubles
        "point_buf": (_point_buf(tris, v) + 1).astype(np.float64),
        "keypoints": (rng.integers(0, v, size=(1, 68)) + 1).astype(np.float64),
        "skinmask": (rng.uniform(size=(1, v)) > 0.3).astype(np.float64),
        "frontmask2_idx": np.arange(1, v + 1, dtype=np.float64)[:, None],
    }
    return fields, verts, tris


def _write(path, fields):
    scipy.io.savemat(path, fields)
    return path


@pytest.fixture
def bfm_file(tmp_path):
    fields, verts, tris = _bfm_fields()
    return _write(tmp_path / "BFM_model_front.mat", fields), fields, verts, tris


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _normals_from_tri(verts, tris):
    """Reference vertex normals: every adjacent unit face normal summed, then normalised."""
    fn = _unit(
        np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    )
    acc = np.zeros_like(verts)
    for f, t in enumerate(tris):
        for v in t:
            acc[v] += fn[f]
    return _unit(acc)


def _normals_from_point_buf(verts, tris, point_buf):
    """The reference code's way: gather unit face normals by point_buf (F = a zero row)."""
    fn = _unit(
        np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    )
    fn = np.concatenate([fn, np.zeros((1, 3))])
    return _unit(fn[point_buf].sum(axis=1))


# -------------------------------------------------------------------------------------- loading


def test_load_converts_the_file_conventions(bfm_file):
    path, f, verts, tris = bfm_file
    m = bfm.load_bfm(path)
    v = len(verts)
    assert m.num_vertices == v and m.num_triangles == len(tris)
    assert m.sizes == (K_ID, K_EXP, K_TEX)
    assert coeffs.Layout.of(m) == coeffs.Layout(K_ID, K_EXP, K_TEX)
    centred = verts - verts.mean(axis=0)
    np.testing.assert_allclose(m.mean_shape, centred, atol=1e-6)
    np.testing.assert_allclose(np.asarray(m.mean_shape).mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        np.moveaxis(m.id_basis, 0, -1), f["idBase"].reshape(v, 3, K_ID), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.moveaxis(m.exp_basis, 0, -1), f["exBase"].reshape(v, 3, K_EXP), rtol=1e-6
    )
    # Vertex 1's y component is row 3 * 1 + 1 of the file's bases.
    np.testing.assert_allclose(m.id_basis[:, 1, 1], f["idBase"][4], rtol=1e-6)
    np.testing.assert_allclose(m.mean_albedo, f["meantex"].reshape(v, 3) / 255, rtol=1e-6)
    np.testing.assert_allclose(
        np.moveaxis(m.albedo_basis, 0, -1), f["texBase"].reshape(v, 3, K_TEX) / 255, rtol=1e-6
    )
    np.testing.assert_array_equal(m.triangles, tris)  # already CCW: not flipped
    np.testing.assert_array_equal(m.vertex_faces, _point_buf(tris, v))
    assert int(np.max(m.vertex_faces)) == len(tris)  # the file's F + 1 became F
    np.testing.assert_array_equal(m.landmarks, f["keypoints"].reshape(-1) - 1)
    np.testing.assert_array_equal(m.skin_mask, f["skinmask"].reshape(-1))
    assert m.mean_shape.dtype == np.float32 and m.triangles.dtype == np.int32


def test_without_recenter_keeps_the_mean_shape(bfm_file):
    path, _, verts, _ = bfm_file
    np.testing.assert_allclose(bfm.load_bfm(path, recenter=False).mean_shape, verts, rtol=1e-6)


def test_shape_and_albedo_match_the_plain_linear_model(bfm_file):
    path, f, verts, _ = bfm_file
    m = bfm.load_bfm(path)
    rng = np.random.default_rng(1)
    a, e, t = rng.normal(size=(2, K_ID)), rng.normal(size=(2, K_EXP)), rng.normal(size=(2, K_TEX))
    centroid = verts.mean(axis=0)
    for i in range(2):
        want = (f["meanshape"][0] + f["idBase"] @ a[i] + f["exBase"] @ e[i]).reshape(-1, 3)
        got = face_model.shape(m, a[i], e[i])
        np.testing.assert_allclose(got, want - centroid, atol=1e-5)
        tex = (f["meantex"][0] + f["texBase"] @ t[i]).reshape(-1, 3) / 255
        np.testing.assert_allclose(face_model.albedo(m, t[i]), tex, atol=1e-5)
    batched = face_model.shape(m, a, e)  # leading batch dims
    assert batched.shape == (2, len(verts), 3)
    np.testing.assert_allclose(batched[1], face_model.shape(m, a[1], e[1]), atol=1e-6)


def test_vertex_normals_match_numpy_references(bfm_file):
    path, f, _, tris = bfm_file
    m = bfm.load_bfm(path)
    verts = np.asarray(face_model.shape(m, np.full(K_ID, 0.5), np.full(K_EXP, -0.5)), np.float64)
    got = np.asarray(face_model.vertex_normals(m, verts))
    from_tri = _normals_from_tri(verts, tris)
    from_buf = _normals_from_point_buf(verts, tris, f["point_buf"].astype(int) - 1)
    np.testing.assert_allclose(from_buf, from_tri, atol=1e-12)  # the fixture is consistent
    np.testing.assert_allclose(got, from_tri, atol=1e-5)
    # The bump faces +z, so with CCW triangles every vertex normal does too.
    assert np.all(got[:, 2] > 0)


def test_clockwise_file_triangles_are_flipped(tmp_path):
    fields, verts, tris = _bfm_fields()
    fields["tri"] = fields["tri"][:, [0, 2, 1]]  # wound clockwise seen from +z
    m = bfm.load_bfm(_write(tmp_path / "cw.mat", fields))
    np.testing.assert_array_equal(m.triangles, tris)  # face order, hence point_buf, unchanged
    np.testing.assert_array_equal(m.vertex_faces, _point_buf(tris, len(verts)))
    assert np.all(np.asarray(face_model.vertex_normals(m, m.mean_shape))[:, 2] > 0)


def test_integer_index_arrays_and_missing_skinmask(tmp_path):
    fields, verts, tris = _bfm_fields()
    for k in ("tri", "point_buf", "keypoints"):
        fields[k] = fields[k].astype(np.int32)
    del fields["skinmask"]
    m = bfm.load_bfm(_write(tmp_path / "a.mat", fields))
    np.testing.assert_array_equal(m.triangles, tris)
    np.testing.assert_array_equal(m.skin_mask, np.ones(len(verts)))


def test_skinmask_of_another_size_is_ignored(tmp_path):
    fields, verts, _ = _bfm_fields()
    fields["skinmask"] = np.ones((1, len(verts) + 7))
    m = bfm.load_bfm(_write(tmp_path / "a.mat", fields))
    np.testing.assert_array_equal(m.skin_mask, np.ones(len(verts)))


# ----------------------------------------------------------------------------------- conversion


def test_convert_round_trips_through_model_load(bfm_file, tmp_path):
    path, *_ = bfm_file
    out = tmp_path / "bfm.npz"
    converted = bfm.convert_bfm(path, out)
    loaded = face_model.load(str(out))
    direct = bfm.load_bfm(path)
    for name in face_model._FIELDS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(direct, name), err_msg=name)
        np.testing.assert_array_equal(getattr(converted, name), getattr(direct, name))
    meta = face_model.metadata(str(out))
    assert meta["source"] == "BFM_model_front.mat"
    assert meta["recentered"] == "True" and meta["triangles_flipped"] == "False"
    assert sorted(os.listdir(tmp_path)) == ["BFM_model_front.mat", "bfm.npz"]  # no temp left


def test_failed_conversion_writes_nothing(tmp_path):
    fields, *_ = _bfm_fields()
    del fields["tri"]
    src = _write(tmp_path / "bad.mat", fields)
    with pytest.raises(InputError, match="tri"):
        bfm.convert_bfm(src, tmp_path / "out.npz")
    assert sorted(os.listdir(tmp_path)) == ["bad.mat"]
    with pytest.raises(InputError, match="does not exist"):
        bfm.convert_bfm(_write(tmp_path / "good.mat", _bfm_fields()[0]), tmp_path / "no/out.npz")


def _convert_bfm(src, out):
    """`python -m experiments.convert_bfm` in a subprocess (the command line lives there)."""
    return subprocess.run(
        [sys.executable, "-m", "experiments.convert_bfm", f"--src={src}", f"--out={out}"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=120,
    )


def test_cli_converts_and_reports_errors_in_one_line(bfm_file, tmp_path):
    path, *_ = bfm_file
    out = tmp_path / "m.npz"
    proc = _convert_bfm(path, out)
    assert proc.returncode == 0
    assert "36 vertices, 50 triangles" in proc.stdout
    assert face_model.load(str(out)).num_vertices == 36
    proc = _convert_bfm(tmp_path / "missing.mat", out)
    assert proc.returncode == 2
    err = proc.stderr
    assert err.startswith("error: BFM file not found") and err.count("\n") == 1


def test_cli_module_entry_point(tmp_path):
    proc = _convert_bfm(tmp_path / "x.mat", "o.npz")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: BFM file not found: {tmp_path / 'x.mat'}"]


# ------------------------------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="BFM file not found"):
        bfm.load_bfm(tmp_path / "nope.mat")


@pytest.mark.parametrize("content", [b"", b"definitely not a MAT file " * 20])
def test_unreadable_file(tmp_path, content):
    path = tmp_path / "bad.mat"
    path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read"):
        bfm.load_bfm(path)


def test_truncated_file(bfm_file, tmp_path):
    path, *_ = bfm_file
    cut = tmp_path / "cut.mat"
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match="cannot read"):
        bfm.load_bfm(cut)


def test_matlab_v73_file(tmp_path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    path = tmp_path / "v73.mat"
    path.write_bytes(header + b"\x00" * 512)
    with pytest.raises(InputError, match="v7.3"):
        bfm.load_bfm(path)


@pytest.mark.parametrize("name", bfm.REQUIRED_FIELDS)
def test_missing_field_is_named(tmp_path, name):
    fields, *_ = _bfm_fields()
    del fields[name]
    with pytest.raises(InputError, match=rf"missing field\(s\) \['{name}'\]"):
        bfm.load_bfm(_write(tmp_path / "a.mat", fields))


def _bad(fields, name, value):
    fields = dict(fields)
    fields[name] = value
    return fields


_V, _F = N * N, 2 * (N - 1) ** 2
_SHAPE_CASES = [
    ("meanshape", np.zeros((1, 3 * _V - 1)), r"'meanshape' must be \[1, 3V\].*\(1, 107\)"),
    ("meanshape", np.zeros((3, _V)), r"'meanshape' must be \[1, 3V\].*\(3, 36\)"),
    ("idBase", np.zeros((3 * _V - 3, K_ID)), r"'idBase' must be \[108, K\].*\(105, 5\)"),
    ("exBase", np.zeros((_V, 3 * K_EXP)), r"'exBase' must be \[108, K\].*\(36, 12\)"),
    ("texBase", np.zeros(3 * _V), r"'texBase' must be \[108, K\].*\(1, 108\)"),
    ("meantex", np.zeros((1, 3 * _V + 3)), r"'meantex' must have shape \[1, 108\].*\(1, 111\)"),
    ("tri", np.ones((_F, 4)), r"'tri' must be \[F, 3\].*\(50, 4\)"),
    ("point_buf", np.ones((_V - 1, 8)), r"'point_buf' must be \[36, M\].*\(35, 8\)"),
    ("keypoints", np.ones((2, 68)), r"'keypoints' must be \[1, L\].*\(2, 68\)"),
]


@pytest.mark.parametrize(("name", "value", "message"), _SHAPE_CASES)
def test_wrong_shapes_name_field_expected_and_got(tmp_path, name, value, message):
    fields, *_ = _bfm_fields()
    with pytest.raises(InputError, match=message):
        bfm.load_bfm(_write(tmp_path / "a.mat", _bad(fields, name, value)))


def _index_cases():
    fields, verts, tris = _bfm_fields()
    v, f = len(verts), len(tris)
    tri_hi = fields["tri"].copy()
    tri_hi[3, 1] = v + 1
    tri_zero = fields["tri"] - 1  # a 0-based file
    pb_hi = fields["point_buf"].copy()
    pb_hi[0, -1] = f + 2  # F + 1 is the padding; F + 2 is out of range
    kp = fields["keypoints"].copy()
    kp[0, 5] = v + 1
    tri_frac = fields["tri"].copy()
    tri_frac[0, 0] = 1.5
    return [
        ("tri", tri_hi, rf"'tri' indices must be in \[1, {v}\], got min 1, max {v + 1}"),
        ("tri", tri_zero, r"'tri' indices must be in .*min 0.*must be 1-based"),
        ("point_buf", pb_hi, rf"'point_buf' indices must be in \[1, {f + 1}\].*max {f + 2}"),
        ("keypoints", kp, rf"'keypoints' indices must be in \[1, {v}\]"),
        ("tri", tri_frac, r"'tri' must hold integer indices"),
    ]


@pytest.mark.parametrize(("name", "value", "message"), _index_cases())
def test_bad_indices(tmp_path, name, value, message):
    fields, *_ = _bfm_fields()
    with pytest.raises(InputError, match=message):
        bfm.load_bfm(_write(tmp_path / "a.mat", _bad(fields, name, value)))


@pytest.mark.parametrize("name", ["meanshape", "idBase", "exBase", "meantex", "texBase"])
def test_nan_values_are_named(tmp_path, name):
    fields, *_ = _bfm_fields()
    value = fields[name].copy()
    value.flat[7] = np.nan
    with pytest.raises(InputError, match=f"'{name}' has NaN/inf"):
        bfm.load_bfm(_write(tmp_path / "a.mat", _bad(fields, name, value)))


def test_nan_index_and_non_numeric_field(tmp_path):
    fields, *_ = _bfm_fields()
    tri = fields["tri"].copy()
    tri[2, 2] = np.nan
    with pytest.raises(InputError, match="'tri' must hold integer indices"):
        bfm.load_bfm(_write(tmp_path / "a.mat", _bad(fields, "tri", tri)))
    with pytest.raises(InputError, match="'idBase' must be numeric"):
        bfm.load_bfm(_write(tmp_path / "b.mat", _bad(fields, "idBase", "oops")))
