"""Video reconstruction on rendered heads with known pose, its temporal filter against a NumPy
reference, and bad input."""

import jax
import numpy as np
import pytest
import synthetic_video

from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import default, fit
from talkingjax.video import reconstruct

FAST = reconstruct.VideoFitConfig(
    identity_steps=150, track_steps=20, refine_steps=80, color_steps=40, num_keyframes=6,
    num_color_frames=3, frame_bucket=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def clip():
    """A 20-frame rendered head, cropped like the tracker does (from its true landmarks)."""
    angles, trans = synthetic_video.head_motion(20, seed=3)
    frames, points = synthetic_video.render_heads(angles, trans, size=256)
    model = default.load_default()
    camera = camera_lib.Camera().scaled(128)
    verts = np.arange(468)
    params = [fit.crop_params(p, model, verts, camera, (256, 256)) for p in points]
    crops = np.stack(
        [fit.apply_crop(f, q, (128, 128)) for f, q in zip(frames, params, strict=True)]
    )
    lms = np.stack([fit.to_crop(p, q) for p, q in zip(points, params, strict=True)])
    lms = np.concatenate([lms, lms[:, :10]], axis=1)  # 478 points like MediaPipe's
    return model, crops, lms, angles


def test_fit_video_recovers_pose_and_landmarks(clip):
    model, crops, lms, angles = clip
    detected = np.ones(len(crops), bool)
    detected[7] = False  # a lost frame is flagged, still fitted
    result = reconstruct.fit_video(model, crops, lms, detected, config=FAST)
    assert result.pose.shape == (20, 6)
    report = result.report()
    assert report["lost_frames"] == [7]
    # Landmarks are exact here (projected vertices), so the fit must be far below 1 px.
    assert report["landmark_rmse_px_mean"] < 0.5, report
    np.testing.assert_allclose(result.pose[:, :3], angles, atol=0.03)
    assert np.all(result.photometric < 0.08)
    assert result.detailed_albedo.shape == (model.num_vertices, 3)
    assert 0 <= result.reference_frame < 20 and result.reference_frame != 7


def test_padding_to_buckets_does_not_change_the_fit(clip):
    model, crops, lms, _ = clip
    a = reconstruct.fit_video(model, crops[:13], lms[:13], config=FAST)
    b = reconstruct.fit_video(
        model, crops[:13], lms[:13], config=FAST.__class__(**{**FAST.__dict__, "frame_bucket": 16})
    )
    # Padding frames have zero weight; only their smoothness coupling to the last real frame
    # differs, which must not move the fit noticeably.
    np.testing.assert_allclose(a.pose, b.pose, atol=5e-3)


def test_smooth_pose_matches_numpy_gaussian():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(50, 6)).astype(np.float32)
    sigma = 2.0
    radius = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.concatenate([np.repeat(pose[:1], radius, 0), pose, np.repeat(pose[-1:], radius, 0)])
    want = np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(6)], axis=1)
    np.testing.assert_allclose(reconstruct.smooth_pose(pose, sigma), want, atol=1e-5)
    np.testing.assert_array_equal(reconstruct.smooth_pose(pose, 0), pose)


def test_reference_frame_is_neutral_and_frontal():
    coeffs = jax.tree.map(
        np.asarray, reconstruct.coeffs_lib.zeros(reconstruct.coeffs_lib.Layout(2, 2, 2), (4,))
    )
    coeffs = coeffs.replace(
        exp=np.array([[1.0, 0], [0.1, 0], [0.1, 0], [0.0, 0]]),
        angles=np.array([[0.3, 0, 0], [0.01, 0, 0], [0.2, 0, 0], [0.0, 0, 0]]),
    )
    assert reconstruct.reference_frame(coeffs, np.array([True, True, True, False])) == 1


def test_bad_inputs_are_named(clip):
    model, crops, lms, _ = clip
    with pytest.raises(InputError, match="crops must be"):
        reconstruct.fit_video(model, crops[:, :64], lms)
    with pytest.raises(InputError, match="landmarks must be"):
        reconstruct.fit_video(model, crops, lms[:, :100])
    bad = lms.copy()
    bad[3, 5, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        reconstruct.fit_video(model, crops, bad)
    with pytest.raises(InputError, match="no frames"):
        reconstruct.fit_video(model, crops[:0], lms[:0])


def test_detailed_albedo_reads_only_visible_vertices():
    import jax.numpy as jnp

    from talkingjax.face3d import coeffs as coeffs_lib
    from talkingjax.render import face, sh

    model = default.load_default()
    camera = camera_lib.Camera().scaled(96)
    c = coeffs_lib.zeros(coeffs_lib.Layout.of(model)).replace(angles=jnp.array([0.0, 0.9, 0.0]))
    image = np.full((96, 96, 3), 0.3, np.float32)
    got = reconstruct.detailed_albedo(model, c, image, camera)
    posed = face.pose_face(model, c)
    base = np.asarray(posed.albedo)
    read = 0.3 / np.asarray(sh.irradiance(posed.normals, c.gamma))
    is_read = np.all(np.isclose(got, np.clip(read, 0, 1), atol=1e-5), axis=1)
    kept = np.all(np.isclose(got, np.clip(base, 0, 1), atol=1e-6), axis=1)
    assert np.all(is_read | kept)
    # Turned 0.9 rad, the far cheek faces away or hides behind the nose: kept, not read.
    far = np.asarray(posed.normals)[:, 2] < 0.0
    assert far.sum() > 100 and not np.any(is_read[far] & ~kept[far])
    assert is_read.sum() > 0.3 * model.num_vertices
