"""Generation with a given head pose, without the GAN, and pasting only the mouth region
(`generation.Controls.pose` / `refine` / `region`).

The target is a video the project renders itself (`default_inputs.make_target_video`),
personalised by hand from its ground truth instead of fitted (no fit, no fine-tune: the shipped
expression regressor and GAN), so the rendered pose can be checked against known values.
"""

import os

import numpy as np
import pytest

from talkingjax import audio, generation, predict
from talkingjax.data import default_inputs
from talkingjax.errors import InputError
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.video import tracking
from tests import testdata

SIZE = 128
# MediaPipe face-mesh points: eyes and brows (corners, brow tops), the nose's bridge and tip.
UPPER = [33, 133, 362, 263, 70, 105, 334, 300]
NOSE = [6, 168, 197, 195, 1, 4]


def made_target(path: str, seconds: float = 4.0, seed: int = 3):
    """(Target, DefaultTarget) of a rendered target video, personalised from its ground truth.

    The whole S x S frame is the fit's 224 px crop (scale 224 / S), so the video's camera
    (`Camera().scaled(S)`) is the fit's and the rendered pose is the target's fitted pose.
    """
    truth = default_inputs.make_target_video(path, seconds=seconds, size=SIZE, seed=seed)
    models = generation.Models.synthetic()  # a synthetic target: the synthetic-trained models
    n = truth.num_frames

    def const(x):
        return np.repeat(np.asarray(x, np.float32)[None], n, 0)

    pose = truth.pose.astype(np.float32)
    coeffs = coeffs_lib.FaceCoeffs(
        id=const(truth.id), exp=truth.exp.astype(np.float32), tex=const(truth.tex),
        angles=pose[:, :3], gamma=const(truth.gamma), trans=pose[:, 3:],
    )  # fmt: skip
    params = np.tile(np.array([SIZE, SIZE, 224 / SIZE, 0, 0], np.float32), (n, 1))
    target = generation.Target(
        path, truth.fps, coeffs, params, 224, pose, None, models.expression, models.gan
    )
    return target, truth


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return made_target(str(tmp_path_factory.mktemp("target") / "target.mp4"))


class BlackGAN:
    """A stand-in generator (`predict.Refiner`): every refined crop black."""

    size = SIZE

    def __call__(self, windows):
        return {"image": -np.ones((*windows.shape[:3], 3), np.float32)}


def _face_error(path: str, truth, frames: np.ndarray) -> float:
    """Mean absolute difference (gray levels) of a video's frames from the real frames `frames`
    of `truth`, over the box of the real face."""
    out = np.stack(list(tracking.read_frames(path))).astype(float)
    lm = truth.landmarks[frames]
    x0, y0 = np.floor(lm.min((0, 1))).astype(int)
    x1, y1 = np.ceil(lm.max((0, 1))).astype(int)
    real = truth.frames[frames].astype(float)
    return float(np.abs(out[:, y0:y1, x0:x1] - real[:, y0:y1, x0:x1]).mean())


def test_given_pose_replaces_the_prediction_and_reaches_the_pixels(target, tmp_path, monkeypatch):
    target, truth = target
    models = generation.Models.synthetic()

    def no_gan(*args, **kwargs):
        raise AssertionError("the GAN was loaded although refine=False")

    monkeypatch.setattr(predict.Refiner, "from_workdir", no_gan)
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    frames = np.arange(40, 70)  # the speech makes 30 frames
    given = target.pose[frames]
    # Background matching on the target's own poses finds the frames they came from, and the
    # paper's pose adjustment (blend 1) renders exactly the background frame's pose.
    plan = generation.plan_motion(target, given, generation.Controls(pose=given, blend=1.0))
    np.testing.assert_array_equal(plan.indices, frames)
    np.testing.assert_array_equal(plan.pose, target.pose[frames])
    # With blend 0 (and no turn gain) the given angles are rendered as given, at the
    # background's translation.
    out = str(tmp_path / "own.mp4")
    flat = (1.0, 1.0, 1.0)
    controls = generation.Controls(
        pose=given, refine=False, blend=0.0, region="face", turn_gain=flat
    )
    result = generation.generate(wave, target, models, out, controls)
    np.testing.assert_array_equal(result.predicted_pose, given)
    np.testing.assert_array_equal(result.pose[:, :3], given[:, :3])
    np.testing.assert_array_equal(result.pose[:, 3:], target.pose[result.background, 3:])
    # The pose reaches the pixels: the raw render at the real pose over the real frame nearly
    # is the real frame (only the predicted mouth differs); turned by 30 degrees it is not.
    turned = given.copy()
    turned[:, 1] += np.radians(30.0)
    other = str(tmp_path / "turned.mp4")
    again = generation.generate(
        wave,
        target,
        models,
        other,
        generation.Controls(pose=turned, refine=False, blend=0.0, region="face", turn_gain=flat),
    )
    np.testing.assert_allclose(again.pose[:, 1], turned[:, 1], atol=1e-6)
    own_error = _face_error(out, truth, result.background)
    turned_error = _face_error(other, truth, again.background)
    assert own_error < 8.0 and own_error < 0.6 * turned_error, (own_error, turned_error)


def test_refine_switches_the_gan(target, tmp_path, monkeypatch):
    target, truth = target
    models = generation.Models.synthetic()

    monkeypatch.setattr(predict.Refiner, "from_workdir", lambda *a, **k: BlackGAN())
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    given = target.pose[10:40]
    paths = {}
    for refine in (True, False):
        paths[refine] = str(tmp_path / f"refine_{refine}.mp4")
        controls = generation.Controls(
            pose=given, refine=refine, paste="feather", region="face", chunk=30
        )
        generation.generate(wave, target, models, paths[refine], controls)
    face = truth.landmarks[10:40].mean((0, 1)).astype(int)  # the face's centre
    centre = {
        k: np.stack(list(tracking.read_frames(p)))[:, face[1] - 4 : face[1] + 4,
                                                   face[0] - 4 : face[0] + 4].mean()
        for k, p in paths.items()
    }  # fmt: skip
    assert centre[True] < 30 < 80 < centre[False], centre


def test_mouth_region_keeps_the_real_eyes_and_replaces_the_mouth(target, tmp_path, monkeypatch):
    target, truth = target
    models = generation.Models.synthetic()

    monkeypatch.setattr(predict.Refiner, "from_workdir", lambda *a, **k: BlackGAN())
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    given = target.pose[10:40]
    out = {}
    for region in ("face", "mouth"):
        path = str(tmp_path / f"{region}.mp4")
        controls = generation.Controls(pose=given, region=region, paste="feather", chunk=30)
        generation.generate(wave, target, models, path, controls)
        out[region] = np.stack(list(tracking.read_frames(path))).astype(float)
    real = truth.frames[10:40].astype(float)

    def box(points, frames):  # mean gray level around the points' centre, over the frames
        centre = truth.landmarks[10:40][:, points].mean(1).round().astype(int)
        return np.mean(
            [
                f[y - 2 : y + 3, x - 2 : x + 3].mean()
                for f, (x, y) in zip(frames, centre, strict=True)
            ]
        )

    # MediaPipe mesh points (the default face model's first 468 vertices): eye corners 33 and
    # 133 (one eye), the inner lips 13 and 14.
    eyes, lips = [33, 133], [13, 14]
    # The whole face is replaced by the black GAN; the mouth region only below the nose.
    assert box(eyes, out["face"]) < 30 and box(lips, out["face"]) < 30
    assert box(lips, out["mouth"]) < 30
    assert abs(box(eyes, out["mouth"]) - box(eyes, real)) < 4  # the real eyes (+ the codec)
    assert box(eyes, real) > 60


def test_the_real_head_turns_to_the_rendered_pose(target, tmp_path):
    """blend 0 (the default): the background frame's real head is turned to the rendered angles
    (`generation.warp`), so the eyes and brows of the output -- real pixels, above the pasted
    mouth region -- leave the background frame's, and the tracked nose moves sideways; blend 1
    (the paper) keeps the background's head as it is."""
    target, truth = target
    models = generation.Models.synthetic()
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    turned = target.pose[40:70].copy()
    turned[:, 1] += np.radians(12.0)  # yaw
    real = tracking.track_video(target.video).landmarks[:, NOSE, :2].mean(1)  # [T, 2] px
    change, moved = {}, {}
    for blend in (0.0, 1.0):
        path = str(tmp_path / f"blend{blend:g}.mp4")
        controls = generation.Controls(pose=turned, blend=blend, refine=False, region="mouth")
        result = generation.generate(wave, target, models, path, controls)
        turn = np.degrees(np.abs(result.pose - target.pose[result.background])[:, 1])
        assert (turn.mean() > 6.0) if blend == 0.0 else np.all(turn < 1e-4)
        out = np.stack(list(tracking.read_frames(path))).astype(float)
        back = truth.frames[result.background].astype(float)
        upper = []  # the eyes and brows: from the brows' top to the eyes' bottom
        for o, b, marks in zip(out, back, truth.landmarks[result.background], strict=True):
            (x0, y0), (x1, y1) = marks[UPPER].min(0).astype(int), marks[UPPER].max(0).astype(int)
            upper.append(np.abs(o - b)[y0 - 2 : y1 + 3, x0 - 2 : x1 + 3].mean())
        change[blend] = float(np.mean(upper))
        track = tracking.track_video(path)
        moved[blend] = float(
            np.abs(track.landmarks[:, NOSE, 0].mean(1) - real[result.background, 0]).mean()
        )
    # Measured: 11.4 against 4.4 gray levels (the codec, twice); 1.5 against 0.1 px.
    assert change[1.0] < 6.0 and change[0.0] > 2.0 * change[1.0], change  # gray levels
    assert moved[0.0] > 1.0 and moved[0.0] > 4 * moved[1.0], moved  # px


def test_bad_given_poses_are_refused_before_any_work(target, tmp_path):
    target, _ = target
    models = generation.Models.synthetic()
    for pose, match in (
        (np.zeros((5, 5)), "shape"),
        (np.full((5, 6), np.nan), "finite"),
        (np.zeros((0, 6)), "shape"),
    ):
        with pytest.raises(InputError, match=match):
            generation.check_controls(generation.Controls(pose=pose))
    with pytest.raises(InputError, match="still"):
        generation.check_controls(generation.Controls(pose=np.zeros((5, 6)), still=True))
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    out = str(tmp_path / "out.mp4")
    with pytest.raises(InputError, match="29 frames; the speech makes 30"):
        controls = generation.Controls(pose=target.pose[:29])
        generation.generate(wave, target, models, out, controls)
    assert sorted(os.listdir(tmp_path)) == ["s.wav"]


def test_turn_gain_scales_the_turn_from_each_background(target):
    """`Controls.turn_gain` scales, per axis, how far the rendered angles are from their
    background frame's own (`warp.overturn`); translation and the matching stay as they are."""
    target, _ = target
    given = target.pose.copy()
    given[:, :2] += np.radians([-4.0, 8.0])  # pitch, yaw: a turn no frame of the target has
    plain = generation.plan_motion(
        target, given, generation.Controls(pose=given, turn_gain=(1, 1, 1))
    )
    gain = (1.5, 2.0, 0.0)
    more = generation.plan_motion(target, given, generation.Controls(pose=given, turn_gain=gain))
    np.testing.assert_array_equal(more.indices, plain.indices)
    np.testing.assert_array_equal(more.pose[:, 3:], plain.pose[:, 3:])
    own = target.pose[plain.indices, :3]
    np.testing.assert_allclose(
        more.pose[:, :3] - own, (plain.pose[:, :3] - own) * np.array(gain), atol=1e-6
    )
    assert np.abs(plain.pose[:, :2] - own[:, :2]).max() > 0.01  # the given pose does turn


def test_bad_turn_gains_are_refused():
    assert generation.turn_gain(["1.5", "2", "1"]) == (1.5, 2.0, 1.0)
    for values, match in ((["1", "x", "1"], "3 numbers"), (["1", "2"], "3 numbers")):
        with pytest.raises(InputError, match=match):
            generation.turn_gain(values)
    for gain in ((1.0, -1.0, 1.0), (1.0, float("nan"), 1.0), (1.0, 1.0)):
        with pytest.raises(InputError, match="turn gain"):
            generation.check_controls(generation.Controls(turn_gain=gain))
