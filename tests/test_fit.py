"""Analysis-by-synthesis fitting recovers a rendered synthetic face; the crop puts detected
landmarks where the model's mean face projects."""

import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import fit, synthetic
from talkingjax.render import face

CAM = camera_lib.Camera().scaled(64)


@pytest.fixture(scope="module")
def model():
    return synthetic.synthetic_model(1200, 2250, (6, 5, 4), seed=0)


def test_fit_recovers_a_rendered_face(model):
    rng = np.random.default_rng(0)
    layout = coeffs_lib.Layout.of(model)
    true = coeffs_lib.from_vector(
        jnp.asarray(0.5 * rng.normal(size=layout.dim), jnp.float32), layout
    )
    true = true.replace(
        angles=jnp.array([0.05, -0.25, 0.08]),
        trans=jnp.array([0.05, -0.1, 0.2]),
        gamma=0.2 * true.gamma,
    )
    image = np.asarray(face.render_face(model, true, CAM, background=0.3).image)
    lv = np.arange(0, model.num_vertices, 12)
    lm = np.asarray(camera_lib.project(CAM, face.pose_face(model, true).vertices[lv]))
    coeffs, hist = fit.fit_image(
        model, image, lm, lv, CAM, fit.FitConfig(landmark_steps=60, joint_steps=120)
    )
    assert hist["landmark"][-1] < 0.01 * hist["landmark"][0]
    assert hist["photometric"][-1] < 0.15 * hist["photometric"][0]
    np.testing.assert_allclose(
        np.asarray(coeffs.angles)[1:], np.asarray(true.angles)[1:], atol=0.05
    )
    np.testing.assert_allclose(np.asarray(coeffs.trans)[:2], np.asarray(true.trans)[:2], atol=0.05)
    fitted = np.asarray(face.render_face(model, coeffs, CAM, background=0.3).image)
    assert np.mean(np.abs(fitted - image)) < 0.02


def test_crop_to_model_places_landmarks_on_the_mean_face(model):
    lv = np.arange(0, model.num_vertices, 50)
    target = np.asarray(camera_lib.project(CAM, model.mean_shape[lv]))
    # A 300 x 200 "photo" in which the face is 2.5x larger and shifted.
    photo_lm = (target - 10.0) * 2.5 + np.array([40.0, 20.0])
    # A linear ramp photo: each pixel holds its own centre coordinates.
    cols, rows = np.meshgrid(np.arange(300) + 0.5, np.arange(200) + 0.5)
    photo = np.stack([cols, rows, np.zeros_like(cols)], axis=-1).astype(np.float32)
    crop, lm, params = fit.crop_to_model(photo, photo_lm, model, lv, CAM)
    assert crop.shape == (64, 64, 3)
    np.testing.assert_allclose(lm, target, atol=1e-3)
    np.testing.assert_allclose(params[:3], [300, 200, 0.4], rtol=1e-5)
    # Crop pixel centre (x + .5, y + .5) = scale * photo position + (tx, ty).
    s, tx, ty = params[2:]
    checked = 0
    for x, y in ((30, 22), (10, 50), (60, 5), (32, 32)):
        want = ((x + 0.5 - tx) / s, (y + 0.5 - ty) / s)
        if 2 < want[0] < 298 and 2 < want[1] < 198:
            np.testing.assert_allclose(crop[y, x, :2], want, atol=0.05)
            checked += 1
    assert checked >= 2


def test_bad_inputs_are_named(model):
    lv = np.arange(5)
    with pytest.raises(InputError, match="camera needs"):
        fit.fit_image(model, np.zeros((32, 32, 3)), np.zeros((5, 2)), lv, CAM)
    with pytest.raises(InputError, match="one per landmark vertex"):
        fit.fit_image(model, np.zeros((64, 64, 3)), np.zeros((4, 2)), lv, CAM)
    bad = np.zeros((64, 64, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit.fit_image(model, bad, np.zeros((5, 2)), lv, CAM)
