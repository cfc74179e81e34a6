"""Turning a real head to the rendered pose (`talkingjax.generation.warp`): the displacement the
mesh draws, its extension beyond the mesh, the frame resampled along it, and a head image turned
by it against the same head rendered at the new pose."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from talkingjax import visualize
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import synthetic
from talkingjax.generation import motion, warp
from talkingjax.render import face as face_render

S = 96
CAMERA = camera_lib.Camera().scaled(S)


@pytest.fixture(scope="module")
def model():
    return synthetic.synthetic_model(300, 560, (4, 3, 2), seed=1)


def _head(model, angles_deg):
    """FaceCoeffs [N] of one textured head (fixed identity, albedo, light) at N angle triples."""
    layout = coeffs_lib.Layout.of(model)
    vec = 0.3 * np.random.default_rng(0).normal(size=layout.dim).astype(np.float32)
    base = coeffs_lib.from_vector(jnp.asarray(vec), layout)
    base = base.replace(trans=jnp.zeros(3), exp=jnp.zeros_like(base.exp))
    angles = np.radians(np.asarray(angles_deg, np.float32))
    batch = jax.tree.map(lambda x: jnp.repeat(x[None], len(angles), 0), base)
    return batch.replace(angles=jnp.asarray(angles))


def test_flow_is_zero_at_the_same_pose_and_follows_a_turn(model):
    head = _head(model, [[0, 0, 0], [0, 8, 0]])
    flow, mask = visualize.render_motion(model, head, S, np.zeros((2, 3), np.float32))
    assert np.abs(flow[0]).max() < 1e-4 and mask[0].sum() > 100
    # Turned by 8 degrees of yaw, the visible points moved (by about a pixel at this size,
    # horizontally); nothing is drawn off the mesh.
    on = mask[1] > 0
    assert np.all(flow[1][~on] == 0)
    moved = np.abs(flow[1][on]).mean(0)
    assert moved[0] > 0.5 and moved[0] > 3 * moved[1], moved


def test_dense_flow_keeps_the_mesh_flow_and_fades_beyond_it():
    yy, xx = np.mgrid[0:S, 0:S]
    disk = (xx - S / 2) ** 2 + (yy - S / 2) ** 2 < (S / 5) ** 2
    flow = np.zeros((S, S, 2), np.float32)
    flow[disk] = (1.5, -0.5)
    field = warp.dense_flow(flow, disk.astype(np.float32))
    centre = field[S // 2 - 3 : S // 2 + 4, S // 2 - 3 : S // 2 + 4]
    np.testing.assert_allclose(centre, np.broadcast_to([1.5, -0.5], centre.shape), atol=1e-3)
    # Off the mesh the motion fades with the distance (as exp(-(d / (REACH S))^2)), and the
    # crop's border does not move.
    row = field[S // 2, :, 0]
    near = int(S / 2 + S / 5 + 2)
    far = int(S / 2 + S / 5 + warp.REACH * S)  # exp(-1) of the motion, before the border ramp
    assert 0.3 < row[near] / 1.5 < 1.0 and row[far] / 1.5 < 0.4 and row[far] < row[near]
    assert np.all(field[0] == 0) and np.all(field[:, -1] == 0)
    assert np.all(warp.dense_flow(np.zeros_like(flow), np.zeros((S, S))) == 0)


def test_warp_frame_moves_the_crop_region_of_the_frame_only():
    rng = np.random.default_rng(0)
    frame = (rng.uniform(0, 255, (200, 300, 3))).astype(np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(frame[::4, ::4], 4, 0), 4, 1)[:200, :300])
    # The crop: frame pixels [100, 200) x [50, 150) at scale 0.5 (S = 50).
    params = np.array([300, 200, 0.5, -50.0, -25.0], np.float32)
    flow = np.zeros((50, 50, 2), np.float32)
    flow[15:35, 15:35, 0] = 2.0  # 2 crop px = 4 frame px: every pixel shows the one 4 px right
    out = warp.warp_frame(frame, flow, params)
    inner = (slice(50 + 34, 50 + 66), slice(100 + 34, 100 + 66))  # crop [17, 33) in frame px
    np.testing.assert_array_equal(
        out[inner], frame[inner[0], slice(inner[1].start + 4, inner[1].stop + 4)]
    )
    outside = np.ones(frame.shape[:2], bool)
    outside[50:150, 100:200] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    np.testing.assert_array_equal(warp.warp_frame(frame, np.zeros_like(flow), params), frame)
    # A person mask keeps what is not the person (here the left half) where it is.
    person = np.ones(frame.shape[:2], np.float32)
    person[:, :150] = 0.0
    kept = warp.warp_frame(frame, flow, params, person)
    np.testing.assert_array_equal(kept[:, :150], frame[:, :150])
    np.testing.assert_array_equal(kept[:, 160:], out[:, 160:])


def _draw(model, coeffs):
    """[S, S, 3] image and [S, S] mask of the head with a fixed unlit per-vertex texture (what
    a turn moves; lighting that turns with the head is not the warp's to model)."""
    texture = np.random.default_rng(1).uniform(0.1, 0.9, (model.num_vertices, 3))
    vertices = face_render.pose_face(model, jax.tree.map(lambda x: x[0], coeffs)).vertices
    out = face_render.render_mesh(
        vertices, model.triangles, jnp.asarray(texture, jnp.float32), CAMERA, background=1.0
    )
    return np.asarray(out.image), np.asarray(out.mask)


def test_turned_head_image_matches_the_head_rendered_at_the_new_pose(model):
    params = np.array([[S, S, 1.0, 0.0, 0.0]], np.float32)
    before = _head(model, [[0, 0, 0]])
    image, mask = _draw(model, before)
    masks = mask[None]
    frame = (image * 255 + 0.5).astype(np.uint8)
    for turn in ([0, 8, 0], [6, 0, 0], [0, -5, 4]):
        after = _head(model, [turn])
        truth, truth_mask = (x[None] for x in _draw(model, after))
        turned = warp.turn_heads(model, after, np.zeros((1, 3)), [frame], params, S)[0]
        both = (masks[0] > 0) & (truth_mask[0] > 0)
        err_turned = np.abs(turned.astype(float) / 255 - truth[0])[both].mean()
        err_still = np.abs(frame.astype(float) / 255 - truth[0])[both].mean()
        assert err_turned < 0.5 * err_still, (turn, err_turned, err_still)
    # The frame's own angles: returned as it is.
    same = warp.turn_heads(model, before, np.zeros((1, 3)), [frame], params, S)[0]
    np.testing.assert_array_equal(same, frame)


def test_about_rest_moves_the_prediction_to_the_targets_rest_and_keeps_its_motion():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(50, 6)).astype(np.float32) * 0.05 + [0.3, -0.1, 0.0, 0.1, 0.2, 9.0]
    target = rng.normal(size=(80, 6)).astype(np.float32) * 0.05 + [-0.1, 0.05, 0.02, 0, 0, 9]
    out = motion.about_rest(pred, target)
    np.testing.assert_allclose(out[:, :3].mean(0), target[:, :3].mean(0), atol=1e-6)
    np.testing.assert_allclose(out - out.mean(0), pred - pred.mean(0), atol=1e-5)
    np.testing.assert_allclose(out[:, 3:].mean(0), pred[:, 3:].mean(0), atol=1e-6)
    half = motion.about_rest(pred, target, 0.5)
    np.testing.assert_allclose(half - half.mean(0), 0.5 * (pred - pred.mean(0)), atol=1e-5)
    still = motion.about_rest(pred, target, 0.0)
    np.testing.assert_allclose(still, np.repeat(still[:1], 50, 0), atol=1e-5)


def test_person_masks_are_made_once_per_frame_and_closed():
    frame = np.zeros((64, 64, 3), np.uint8)
    with warp.PersonMasks() as people:
        first = people(3, frame)
        assert first.shape == (64, 64) and first.dtype == np.float32
        assert people(3, np.full_like(frame, 255)) is first  # by index, not recomputed
        assert people.segmenter is not None
    assert people.segmenter is None


def test_warp_readback_slope_and_r():
    from talkingjax.metrics import video as video_metrics

    want = np.stack([np.sin(np.arange(50) / 5.0 + k) for k in range(3)], 1)
    read = want * [0.5, 1.0, 2.0] + [0.1, -0.2, 0.0]
    out = video_metrics.readback(want, read)
    assert [out[a]["slope"] for a in ("pitch", "yaw", "roll")] == [0.5, 1.0, 2.0]
    assert all(out[a]["r"] == 1.0 for a in out)


def test_overturn_scales_the_turn_per_axis_and_leaves_gain_one_exact():
    rng = np.random.default_rng(1)
    to, start = (
        rng.normal(size=(7, 3)).astype(np.float32),
        rng.normal(size=(7, 3)).astype(np.float32),
    )
    np.testing.assert_array_equal(warp.overturn(to, start, (1.0, 1.0, 1.0)), to)
    out = warp.overturn(to, start, (2.0, 0.5, 0.0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], start[:, 0] + 2 * (to[:, 0] - start[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], (start[:, 1] + to[:, 1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[:, 2], start[:, 2])
