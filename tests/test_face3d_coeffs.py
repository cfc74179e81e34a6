"""Tests of the coefficient layout, the FaceCoeffs pytree and coefficient .mat files."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from talkingjax.data import coeff257
from talkingjax.errors import InputError
from talkingjax.face3d import coeffs
from talkingjax.face3d import model as face_model

CUSTOM = coeffs.Layout(10, 7, 5)


def _vec(shape, layout=coeffs.BFM, seed=0):
    return np.random.default_rng(seed).normal(size=(*shape, layout.dim)).astype(np.float32)


# --------------------------------------------------------------------------------------- layout


def test_bfm_layout_is_the_257_layout():
    s = coeffs.BFM.slices
    assert coeffs.BFM.dim == coeff257.COEFF_DIM == 257
    assert s["id"] == coeff257.ID_SLICE
    assert s["exp"] == coeff257.EXP_SLICE
    assert s["tex"] == coeff257.TEX_SLICE
    assert s["angles"] == coeff257.ANGLE_SLICE
    assert s["gamma"] == coeff257.LIGHT_SLICE
    assert s["trans"] == coeff257.TRANS_SLICE


def test_custom_layout_keeps_the_order():
    assert CUSTOM.dim == 10 + 7 + 5 + 33
    s = CUSTOM.slices
    assert [s[f] for f in coeffs.FIELDS] == [
        slice(0, 10),
        slice(10, 17),
        slice(17, 22),
        slice(22, 25),
        slice(25, 52),
        slice(52, 55),
    ]


def test_layout_of_model():
    v = 4
    m = face_model.make_model(
        np.eye(4, 3),
        np.zeros((v, 3, 6)),
        np.zeros((v, 3, 2)),
        np.zeros((v, 3)),
        np.zeros((v, 3, 9)),
        [[0, 1, 2], [0, 2, 3]],
    )
    assert coeffs.Layout.of(m) == coeffs.Layout(6, 2, 9)


@pytest.mark.parametrize("bad", [-1, 2.0, "80", True])
def test_bad_layout_sizes(bad):
    with pytest.raises(InputError, match="layout"):
        coeffs.Layout(bad, 64, 80)


# ----------------------------------------------------------------------------- vector <-> parts


@pytest.mark.parametrize("layout", [coeffs.BFM, CUSTOM])
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_vector_round_trip(layout, batch):
    vec = _vec(batch, layout)
    c = coeffs.from_vector(vec, layout)
    assert c.batch_shape == batch
    for f, k in zip(coeffs.FIELDS, layout.sizes, strict=True):
        assert getattr(c, f).shape == (*batch, k)
        np.testing.assert_array_equal(getattr(c, f), vec[..., layout.slices[f]])
    np.testing.assert_array_equal(coeffs.to_vector(c), vec)
    assert coeffs.layout_of(c) == layout


def test_parts_are_the_257_slices():
    vec = _vec((3,))
    c = coeffs.from_vector(vec)
    np.testing.assert_array_equal(c.angles, vec[:, 224:227])
    np.testing.assert_array_equal(c.gamma, vec[:, 227:254])
    np.testing.assert_array_equal(c.trans, vec[:, 254:257])
    pose = coeff257.coeff_to_pose(vec)
    np.testing.assert_array_equal(np.concatenate([c.angles, c.trans], -1), pose)


def test_pytree_and_jit():
    vec = jnp.asarray(_vec((2,)))
    assert len(jax.tree_util.tree_leaves(coeffs.from_vector(vec))) == 6

    @jax.jit
    def scale_exp(v):
        c = coeffs.from_vector(v)
        return coeffs.to_vector(c.replace(exp=2 * c.exp))

    out = scale_exp(vec)
    np.testing.assert_allclose(out[:, 80:144], 2 * vec[:, 80:144])
    np.testing.assert_array_equal(out[:, :80], vec[:, :80])
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, coeffs.from_vector(vec))
    np.testing.assert_allclose(coeffs.to_vector(doubled), 2 * vec)


def test_zeros():
    z = coeffs.zeros(CUSTOM, batch_shape=(2, 3))
    assert z.batch_shape == (2, 3)
    assert coeffs.to_vector(z).shape == (2, 3, CUSTOM.dim)
    assert not np.any(coeffs.to_vector(z))
    assert coeffs.to_vector(coeffs.zeros()).shape == (257,)


# ----------------------------------------------------------------------------------- validation


def test_wrong_last_dimension_states_expected_and_got():
    with pytest.raises(InputError, match=r"expected 257 values per frame.*got 256"):
        coeffs.from_vector(np.zeros((5, 256)))
    with pytest.raises(InputError, match=r"clip.npy: expected 55 values.*got 257"):
        coeffs.check_vector(np.zeros((5, 257)), CUSTOM, name="clip.npy")
    with pytest.raises(InputError, match="expected 257"):
        coeffs.from_vector(np.zeros(()))


def test_nan_and_inf_are_rejected_with_frames():
    vec = _vec((6,))
    vec[2, 10] = np.nan
    vec[4, 250] = np.inf
    with pytest.raises(InputError, match=r"NaN/inf values at frames \[2, 4\]"):
        coeffs.check_vector(vec)
    with pytest.raises(InputError, match=r"frames \[2, 4\]"):
        coeffs.check(coeffs.from_vector(vec))
    np.testing.assert_array_equal(coeffs.check_vector(_vec((6,))), _vec((6,)))


def test_check_of_parts():
    c = coeffs.from_vector(_vec((4,)))
    assert coeffs.check(c, coeffs.BFM) is c
    with pytest.raises(InputError, match=r"expected \(id, exp, tex\) sizes \(10, 7, 5\)"):
        coeffs.check(c, CUSTOM)
    with pytest.raises(InputError, match=r"'gamma' must have 27 values per frame"):
        coeffs.check(c.replace(gamma=np.zeros((4, 9))))
    with pytest.raises(InputError, match=r"'exp' has shape \(3, 64\)"):
        coeffs.check(c.replace(exp=np.zeros((3, 64))))


# ------------------------------------------------------------------------------------ mat files


def _params(t, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            np.full(t, 512.0),
            np.full(t, 512.0),
            rng.uniform(0.3, 0.5, t),
            rng.uniform(100, 120, t),
            rng.uniform(100, 120, t),
        ]
    ).astype(np.float32)


@pytest.mark.parametrize("layout", [coeffs.BFM, CUSTOM])
def test_mat_round_trip_with_transform_params(tmp_path, layout):
    vec, params = _vec((9,), layout), _params(9)
    path = tmp_path / "c.mat"
    coeffs.write_mat(path, coeffs.from_vector(vec, layout), params)
    raw = scipy.io.loadmat(path)  # the on-disk format other tools read
    assert raw["coeff"].dtype == np.float32 and raw["coeff"].shape == (9, layout.dim)
    assert raw["transform_params"].shape == (9, 5)
    c, p = coeffs.read_mat(path, layout)
    np.testing.assert_array_equal(coeffs.to_vector(c), vec)
    np.testing.assert_array_equal(p, params)
    assert c.batch_shape == (9,) and c.exp.dtype == np.float32
    assert os.listdir(tmp_path) == ["c.mat"]  # no temp file left behind


def test_mat_without_transform_params_and_single_frame(tmp_path):
    vec = _vec(())
    coeffs.write_mat(tmp_path / "one.mat", coeffs.from_vector(vec))
    c, p = coeffs.read_mat(tmp_path / "one.mat")
    assert p is None
    np.testing.assert_array_equal(coeffs.to_vector(c), vec[None])


def test_read_mat_agrees_with_load_coeff(tmp_path):
    # A file written by another tool: float64, with a leading batch axis.
    vec = np.random.default_rng(3).normal(size=(1, 7, 257))
    path = tmp_path / "tool.mat"
    scipy.io.savemat(path, {"coeff": vec, "transform_params": _params(7)[None]})
    c, p = coeffs.read_mat(path)
    np.testing.assert_allclose(coeffs.to_vector(c), coeff257.load_coeff(path), rtol=1e-6)
    assert p.shape == (7, 5)


def test_read_mat_wrong_dimension_and_nan(tmp_path):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"coeff": _vec((5,))})
    with pytest.raises(InputError, match=r"must be \[frames, 55\].*got shape \(5, 257\)"):
        coeffs.read_mat(path, CUSTOM)
    bad = _vec((5,))
    bad[3, 0] = np.nan
    scipy.io.savemat(path, {"coeff": bad})
    with pytest.raises(InputError, match=r"NaN/inf values at frames \[3\]"):
        coeffs.read_mat(path)
    with pytest.raises(InputError, match="not found"):
        coeffs.read_mat(tmp_path / "missing.mat")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (np.zeros((4, 5)), r"must be \[5, 5\].*got shape \(4, 5\)"),
        (np.zeros((5, 6)), r"must be \[5, 5\].*got shape \(5, 6\)"),
        (np.full((5, 5), np.nan), r"'transform_params' has NaN/inf values at frames \[0, 1"),
    ],
)
def test_bad_transform_params(tmp_path, params, message):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"coeff": _vec((5,)), "transform_params": params})
    with pytest.raises(InputError, match=message):
        coeffs.read_mat(path)
    with pytest.raises(InputError, match=message):
        coeffs.write_mat(tmp_path / "b.mat", coeffs.from_vector(_vec((5,))), params)
    assert not os.path.exists(tmp_path / "b.mat")


def test_write_rejects_bad_coefficients_and_writes_nothing(tmp_path):
    vec = _vec((5,))
    vec[1, 3] = np.inf
    with pytest.raises(InputError, match=r"frames \[1\]"):
        coeffs.write_mat(tmp_path / "a.mat", coeffs.from_vector(vec))
    with pytest.raises(InputError, match=r"batch shape \[T\]"):
        coeffs.write_mat(tmp_path / "a.mat", coeffs.from_vector(_vec((2, 3))))
    with pytest.raises(InputError, match="does not exist"):
        coeffs.write_mat(tmp_path / "no" / "a.mat", coeffs.from_vector(_vec((2,))))
    assert os.listdir(tmp_path) == []


def test_write_failure_midway_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.mat"
    old = _vec((3,), seed=1)
    coeffs.write_mat(path, coeffs.from_vector(old))
    before = path.read_bytes()

    def broken_savemat(f, arrays, **kwargs):
        f.write(b"MATLAB 5.0 MAT-file, partial")  # some bytes reach the disk, then it fails
        raise OSError("disk full")

    monkeypatch.setattr(scipy.io, "savemat", broken_savemat)
    with pytest.raises(OSError, match="disk full"):
        coeffs.write_mat(path, coeffs.from_vector(_vec((3,), seed=2)))
    with pytest.raises(OSError, match="disk full"):
        coeffs.write_mat(tmp_path / "new.mat", coeffs.from_vector(_vec((3,), seed=2)))
    assert os.listdir(tmp_path) == ["c.mat"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    np.testing.assert_array_equal(coeffs.to_vector(coeffs.read_mat(path)[0]), old)
