"""Video measures (`talkingjax.metrics.video`, `talkingjax.evaluation.video`) against known
answers: pure measures on arrays, then rendered heads that are tracked and fitted -- a moving
talking head whose mouth follows its speech, a frozen head that jumps by a known angle, and an
edited copy of the talking head (blurred frames, frames without the face, and frames with a
dark rim along the face hull, as a mismatched paste leaves)."""

import dataclasses
import functools
import os
import types

import cv2
import numpy as np
import pytest
import soundfile
import synthetic_video as sv
from scipy.spatial.transform import Rotation

from talkingjax import audio, geometry
from talkingjax.data import default_inputs, synthetic_expression
from talkingjax.errors import InputError
from talkingjax.evaluation import video as video_eval
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.metrics import video as vm

FPS = 25.0
T = 32  # 1.28 s: the speech must last >= 1 s; one fit bucket
SIZE = 256
JUMP_DEG = 8.0
# The measuring fit with fewer steps (rendered heads, exact enough).
FAST_FIT = dataclasses.replace(
    video_eval.FIT_CONFIG, identity_steps=150, track_steps=20, refine_steps=80, num_keyframes=6
)
ANALYZE = {"crop_size": 96, "fit_config": FAST_FIT, "max_image_frames": T}
pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


# ----------------------------------------------------------------------------- head motion


def test_euler_to_rotation_matches_the_jax_convention():
    angles = np.random.default_rng(0).uniform(-1, 1, (20, 3))
    np.testing.assert_allclose(
        vm.euler_to_rotation(angles), np.asarray(geometry.euler_to_rotation(angles)), atol=1e-6
    )


def _euler(rot: np.ndarray) -> np.ndarray:
    """(x, y, z) of R = Rz Ry Rx (scipy's intrinsic ZYX gives z, y, x)."""
    return Rotation.from_matrix(rot).as_euler("ZYX")[..., ::-1]


def test_step_angle_is_the_rotation_between_frames_about_any_axis():
    rng = np.random.default_rng(1)
    start = rng.uniform(-0.4, 0.4, 3)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    steps = np.array([0.01, 0.5, 3.0, 20.0])  # degrees, tiny to large
    rots = [vm.euler_to_rotation(start)]
    for s in steps:
        rots.append(rots[-1] @ Rotation.from_rotvec(np.radians(s) * axis).as_matrix())
    angles = _euler(np.stack(rots))
    np.testing.assert_allclose(vm.step_angles(angles), steps, rtol=1e-6, atol=1e-7)


def test_frozen_head_has_no_speed_jerk_or_step():
    angles = np.tile([0.1, -0.2, 0.05], (30, 1))
    assert vm.angular_speed(angles, FPS) == 0.0
    assert vm.max_step(angles) == 0.0
    assert vm.jerk(angles, FPS) == 0.0


def test_a_jump_gives_its_angle_as_the_max_step_and_its_share_of_the_speed():
    angles = np.zeros((30, 3))
    angles[12:, 1] = np.radians(JUMP_DEG)  # yaw jumps between frames 11 and 12
    assert vm.max_step(angles) == pytest.approx(JUMP_DEG)
    assert vm.angular_speed(angles, FPS) == pytest.approx(JUMP_DEG * FPS / 29)
    # A step touching a lost frame does not count.
    valid = np.ones(30, bool)
    valid[12] = False
    assert vm.max_step(angles, valid) == 0.0
    assert np.isnan(vm.max_step(angles, np.zeros(30, bool)))


def test_uniform_turn_speed_and_cubic_jerk():
    t = np.arange(50) / FPS
    turn = np.zeros((50, 3))
    turn[:, 0] = np.radians(12.0) * t  # 12 deg/s pitch
    assert vm.angular_speed(turn, FPS) == pytest.approx(12.0)
    assert vm.jerk(turn, FPS) == pytest.approx(0.0, abs=1e-6)
    cubic = np.zeros((50, 3))
    cubic[:, 2] = np.radians(5.0 * t**3)  # roll = 5 t^3 deg: third derivative 30 deg/s^3
    assert vm.jerk(cubic, FPS) == pytest.approx(30.0, rel=1e-6)
    assert vm.angle_std(turn)[0] == pytest.approx(np.degrees(turn[:, 0]).std())


def test_step_percentile_and_rest_jitter():
    # 200 steps of yaw: 198 of 0.1 deg, two of 5 deg. The 99th percentile interpolates between
    # the 198th and 199th sorted steps (NumPy's linear rule); the max is the jump.
    steps = np.full(200, 0.1)
    steps[[50, 150]] = 5.0
    angles = np.zeros((201, 3))
    angles[1:, 1] = np.radians(np.cumsum(steps))
    want = np.percentile(np.sort(steps), 99.0)
    assert vm.step_percentile(angles, 99.0) == pytest.approx(want, rel=1e-6)
    assert vm.step_percentile(angles, 100.0) == pytest.approx(vm.max_step(angles))
    # Jitter: a slow turn plus white noise of 0.5 deg on pitch. The turn is linear, so the
    # moving average leaves only the noise, shrunk by sqrt(1 - 1/5) (the average includes it).
    rng = np.random.default_rng(0)
    t = np.arange(4000)
    noisy = np.zeros((4000, 3))
    noisy[:, 0] = np.radians(0.01 * t + 0.5 * rng.standard_normal(4000))
    noisy[:, 2] = np.radians(0.02 * t)
    jitter = vm.rest_jitter(noisy)
    assert jitter[0] == pytest.approx(0.5 * np.sqrt(1 - 1 / 5), rel=0.05)
    assert jitter[1] == 0.0 and jitter[2] == pytest.approx(0.0, abs=1e-9)
    # Frames whose window holds a lost frame are left out; all lost: nan.
    jumped = noisy.copy()
    jumped[2000:2010, 0] += np.radians(30.0)  # a tracking slip over 10 lost frames
    valid = np.ones(4000, bool)
    valid[2000:2010] = False
    assert vm.rest_jitter(jumped)[0] > 1.2 * jitter[0]
    assert vm.rest_jitter(jumped, valid)[0] == pytest.approx(jitter[0], rel=0.02)
    every_third = np.arange(4000) % 3 != 0  # every 5-frame window holds a lost frame
    assert np.isnan(vm.rest_jitter(noisy, every_third)[0])


# ----------------------------------------------------------------------------- correlation


def test_a_time_shifted_copy_correlates_at_its_lag():
    a = np.random.default_rng(2).normal(size=(120, 3))
    lags, r = vm.lagged_correlation(a, np.roll(a, 4, axis=0), 10)  # b[t] = a[t - 4]
    assert vm.best_lag(lags, r) == (4, pytest.approx(1.0))
    lags, r = vm.lagged_correlation(a[:, 0], np.roll(a[:, 0], -3), 10)
    assert vm.best_lag(lags, r)[0] == -3
    assert r[lags == 0][0] == pytest.approx(vm.pearson(a[:, 0], np.roll(a[:, 0], -3)))
    assert vm.pearson(a[:, 0], 2.0 * a[:, 0] + 7.0) == pytest.approx(1.0)  # means removed
    assert vm.pearson(a[:, 0], -a[:, 0]) == pytest.approx(-1.0)
    assert vm.pearson(a[:, 0], np.ones(120)) == 0.0  # a constant signal


# ----------------------------------------------------------------------------- sharpness


def test_laplacian_variance_of_noise_and_of_a_sine():
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 10.0, (300, 300))  # gray levels
    assert vm.laplacian_variance(noise / 255.0) == pytest.approx(20 * 10.0**2, rel=0.03)
    k, amp = 0.7, 40.0
    wave = np.tile(amp * np.sin(k * np.arange(0, 2 * np.pi / k * 30, 1.0)), (20, 1))
    expected = amp**2 * (2 - 2 * np.cos(k)) ** 2 / 2
    assert vm.laplacian_variance(wave / 255.0) == pytest.approx(expected, rel=0.02)
    image = np.clip(128 + noise, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.5)
    assert vm.laplacian_variance(blurred) < 0.1 * vm.laplacian_variance(image)
    assert vm.laplacian_variance(np.full((10, 10, 3), 90, np.uint8)) == 0.0


def _face_points(box=(40.0, 30.0, 100.0, 90.0), gap=6.0) -> np.ndarray:
    """468 points in a cluster, with eye corners, brows and lips placed to make a known box."""
    x0, y0, x1, y1 = box
    p = np.tile([(x0 + x1) / 2, (y0 + y1) / 2], (468, 1))
    p[vm.EYE_OUTER_RIGHT] = (x0, 50.0)
    p[vm.EYE_OUTER_LEFT] = (x1, 50.0)
    p[vm.BROW_TOP_RIGHT] = (55.0, y0)
    p[vm.BROW_TOP_LEFT] = (85.0, y0 + 2)
    p[vm.LIP_LOWER_OUTER] = (70.0, y1)
    p[vm.LIP_UPPER_INNER] = (70.0, 70.0)
    p[vm.LIP_LOWER_INNER] = (70.0, 70.0 + gap)
    return p


def test_face_box_region_and_mouth_opening():
    p = _face_points()
    assert vm.face_box(p) == (40, 30, 100, 90)
    frame = np.arange(200 * 200 * 3, dtype=np.uint32).reshape(200, 200, 3).astype(np.uint8)
    region = vm.face_region(frame, p, min_side=32)
    np.testing.assert_array_equal(region, frame[30:90, 40:100])
    assert vm.face_region(frame, p).shape == (64, 64, 3)  # 60 x 60 enlarged to CPBD's block
    lm = np.stack([_face_points(gap=g) for g in (0.0, 6.0, 12.0)])
    np.testing.assert_allclose(vm.mouth_opening(lm), [0.0, 0.1, 0.2])  # eyes 60 px apart


# ----------------------------------------------------------------------------- seam


def _circle(radius=60.0, centre=(100.0, 100.0), n=180) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)], axis=1)


def test_seam_profile_of_a_ramp_and_of_a_step_at_the_boundary():
    pts = _circle()
    slope = 0.5  # gray levels per pixel
    ramp = np.tile(slope * np.arange(200.0), (200, 1))
    band, rings = vm.seam_profile(ramp / 255.0, pts, width=4.0)
    # |g . n| = slope |cos(angle)|, whose mean around a circle is 2 / pi: no seam.
    assert band == pytest.approx(slope * 2 / np.pi, rel=0.03)
    assert rings == pytest.approx(slope * 2 / np.pi, rel=0.03)
    assert vm.seam_contrast(band, rings) == pytest.approx(1.0, abs=0.03)
    # A step of h across the hull adds h / (2 width) to the band and nothing to the rings.
    h = 40.0
    inside = np.zeros((200, 200), np.uint8)
    cv2.fillConvexPoly(inside, np.round(vm.hull(pts) * 16 - 8).astype(np.int32), 1, shift=4)
    seam_band, seam_rings = vm.seam_profile((ramp + h * inside) / 255.0, pts, width=4.0)
    assert seam_band - band == pytest.approx(h / 8.0, rel=0.15)
    assert seam_rings == pytest.approx(rings, rel=0.02)
    assert vm.seam_contrast(seam_band, seam_rings) > 2.0
    assert vm.seam_width(pts) == pytest.approx(0.05 * np.sqrt(np.pi) * 60.0, rel=0.01)


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError):
        vm.angular_speed(np.zeros((5, 2)), FPS)
    with pytest.raises(InputError):
        vm.max_step(np.zeros((5, 3)), valid=np.ones(4, bool))
    with pytest.raises(InputError):
        vm.face_box(np.zeros((10, 2)))
    with pytest.raises(InputError):
        vm.pearson(np.zeros(4), np.zeros(5))
    with pytest.raises(InputError):
        vm.seam_profile(np.zeros((50, 50)), _circle(10, (25, 25)), width=0.0)


# ----------------------------------------------------------------------------- videos


def _envelope(num: int, shift: int = 0) -> np.ndarray:
    """A mouth/loudness envelope in [0, 1] per frame (two incommensurate rhythms)."""
    t = (np.arange(num) - shift) / FPS
    return 0.5 + 0.3 * np.sin(2 * np.pi * 1.1 * t) + 0.2 * np.sin(2 * np.pi * 2.3 * t + 1.0)


def _speech(num: int, shift: int = 0) -> np.ndarray:
    """16 kHz noise whose loudness follows `_envelope` (delayed by `shift` frames)."""
    n = int(num / FPS * audio.SAMPLE_RATE)
    env = np.interp(np.arange(n) / audio.SAMPLE_RATE * FPS - 0.5, np.arange(num),
                    _envelope(num, shift))  # fmt: skip
    noise = np.random.default_rng(5).normal(size=n)
    return (0.3 * (0.02 + env**2) * noise / 3).astype(np.float32)


def _motion(num: int) -> tuple[np.ndarray, np.ndarray]:
    """A lively head motion (a few degrees at 1-3 Hz): (angles, trans) [T, 3]."""
    t = np.arange(num)[:, None] / FPS
    angles = np.array([0.08, 0.15, 0.05]) * np.sin(2 * np.pi * np.array([1.3, 0.9, 1.7]) * t + 1)
    angles += np.array([0.03, 0.05, 0.0]) * np.sin(2 * np.pi * 2.7 * t)
    trans = np.zeros((num, 3))
    trans[:, 2] = sv.DISTANCE
    return angles.astype(np.float32), trans.astype(np.float32)


@functools.cache
def _render(angles: bytes, mouth: bytes):
    """Rendered frames and landmarks of the default face with these angles and mouth opening."""
    angles = np.frombuffer(angles, np.float32).reshape(-1, 3)
    mouth = np.frombuffer(mouth, np.float32)
    model = sv._model()
    c = coeffs_lib.zeros(coeffs_lib.Layout.of(model), (len(angles),))
    gamma = np.zeros((len(angles), 27), np.float32)
    gamma[:, 1] = 0.2
    trans = np.zeros((len(angles), 3), np.float32)
    trans[:, 2] = sv.DISTANCE
    opening = synthetic_expression.mouth_directions(model)["open"]
    c = c.replace(angles=angles, trans=trans, gamma=gamma, exp=mouth[:, None] * opening[None])
    return default_inputs.render_faces(c, SIZE, sv.background(SIZE), model)


def _write(path, frames, speech=None):
    wav = None
    if speech is not None:
        wav = str(path) + ".wav"
        soundfile.write(wav, speech, audio.SAMPLE_RATE)
    sv.write_video(path, frames, FPS, audio=wav or False)
    return str(path)


@pytest.fixture(scope="module")
def talking(tmp_path_factory):
    """A moving talking head (mouth follows the speech): (path, frames, landmarks, angles)."""
    angles, _ = _motion(T)
    mouth = (1.2 * _envelope(T)).astype(np.float32)
    frames, points = _render(angles.tobytes(), mouth.tobytes())
    path = _write(tmp_path_factory.mktemp("v") / "talking.mp4", frames, _speech(T))
    return path, frames, points, angles


@pytest.fixture(scope="module")
def talking_analysis(talking):
    return video_eval.analyze_video(talking[0], **ANALYZE)


BLURRED, LOST, SEAMED = range(0, 16), range(20, 24), [*range(16, 20), *range(24, T)]


@pytest.fixture(scope="module")
def edited(talking, tmp_path_factory):
    """The talking head edited: frames 0-15 blurred, 16-31 with a dark rim along the face hull
    (a paste seam), 20-23 without the face; its analysis."""
    _, frames, points, _ = talking
    video = frames.astype(np.int16)
    for i in BLURRED:
        video[i] = cv2.GaussianBlur(frames[i], (0, 0), 1.5)
    for i in SEAMED:  # a dark 2-pixel rim along the hull: the halo of a mismatched blend
        rim = np.zeros(frames.shape[1:3], np.uint8)
        cv2.polylines(rim, [np.round(vm.hull(points[i]) - 0.5).astype(np.int32)], True, 1, 2)
        video[i] = np.where(rim[..., None] > 0, 40, video[i])
    video[list(LOST)] = np.round(sv.background(SIZE) * 255)
    path = _write(tmp_path_factory.mktemp("v") / "edited.mp4", np.clip(video, 0, 255))
    return video_eval.analyze_video(path, **ANALYZE)


def test_talking_head_video_is_written(talking):
    path, frames, _, _ = talking
    assert frames.shape == (T, SIZE, SIZE, 3)
    assert audio.load_audio(path).size >= audio.SAMPLE_RATE


def test_tracked_motion_and_pose_lag_of_a_talking_head(talking, talking_analysis):
    _, _, _, angles = talking
    a = talking_analysis
    assert a.num_frames == T and a.detected.all()
    np.testing.assert_array_equal(a.image_frames, np.arange(T))
    truth_speed = vm.angular_speed(angles, FPS)  # 56 deg/s
    assert vm.angular_speed(a.pose, FPS) == pytest.approx(truth_speed, rel=0.25)
    assert vm.max_step(a.pose) == pytest.approx(vm.max_step(angles), rel=0.3)
    # The pipeline "predicted" the motion 3 frames early: the video lags it by 3 frames.
    report = video_eval.compare(a, a, predicted_pose=angles[3:], rendered_pose=angles)
    assert report["pose_lag_frames"] == 3
    assert report["pose_r_mean_at_lag"] > 0.9
    assert report["pose_rendered_lag_frames"] == 0
    assert min(report["pose_rendered_r_pitch_yaw_roll"]) > 0.9
    # Slope of the tracked on the rendered angles (1 = read as far as rendered): the in-plane
    # roll at its size, the out-of-plane turns smaller (measured 0.67, 0.83, 1.02).
    pitch, yaw, roll = report["pose_rendered_slope_pitch_yaw_roll"]
    assert 0.5 < pitch < 0.95 and 0.5 < yaw < 0.95 and 0.9 < roll < 1.1
    assert report["angular_speed_ratio"] == pytest.approx(1.0)
    assert report["seam_ratio"] == pytest.approx(1.0)


def test_mouth_follows_the_speech_at_its_lag(talking_analysis):
    a = talking_analysis
    assert vm.pearson(a.mouth_opening, _envelope(T)) > 0.8
    report = video_eval.compare(a, a)  # speech: the video's own audio track
    assert report["mouth_energy_r"] > 0.6 and abs(report["mouth_energy_lag_frames"]) <= 1
    assert report["mouth_energy_r_target"] == report["mouth_energy_r"]
    late = video_eval.compare(a, a, speech=_speech(T, shift=3))  # speech 3 frames late
    assert late["mouth_energy_lag_frames"] in (-4, -3, -2)


def test_sync_scorer_is_optional_and_called_on_both_videos(talking_analysis):
    calls = []

    class FakeScorer:
        def score(self, path):
            calls.append(path)
            return types.SimpleNamespace(offset=2, confidence=1.5)  # a SyncScore's fields

    a = talking_analysis
    assert "av_offset" not in video_eval.compare(a, a)
    report = video_eval.compare(a, a, sync_scorer=FakeScorer())
    assert (report["av_offset"], report["av_confidence"]) == (2, 1.5)
    assert report["av_offset_target"] == 2 and calls == [a.path, a.path]


def test_frozen_head_then_a_jump(tmp_path):
    still = np.zeros((2, 3), np.float32)
    still[1, 1] = np.radians(JUMP_DEG)
    frames, _ = _render(still.tobytes(), np.zeros(2, np.float32).tobytes())
    video = np.concatenate([np.repeat(frames[:1], 16, 0), np.repeat(frames[1:], T - 16, 0)])
    a = video_eval.analyze_video(_write(tmp_path / "jump.mp4", video), **ANALYZE)
    steps = vm.step_angles(a.pose)
    # The jump from frame 15 to 16 reads as one step (MediaPipe adds ~1 deg the frame after).
    assert steps[15] == pytest.approx(JUMP_DEG, abs=1.0), steps
    assert vm.max_step(a.pose) == pytest.approx(JUMP_DEG, abs=1.0)
    # Frozen stretches (after the tracker's first frame): nearly no motion.
    frozen = np.ones(T, bool)
    frozen[[0, 15, 16, 17]] = False
    assert vm.angular_speed(a.pose, FPS, frozen) < 3.0  # the talking head: ~48 deg/s
    assert vm.max_step(a.pose, frozen) < 0.6


def test_blur_seam_and_lost_frames_of_an_edited_copy(talking_analysis, edited):
    report = video_eval.compare(edited, talking_analysis)
    assert (report["lost_frames"], report["lost_frames_target"]) == (len(LOST), 0)
    assert report["lost_fraction"] == pytest.approx(len(LOST) / T)
    assert not edited.detected[list(LOST)].any()
    assert report["mouth_energy_r"] is None  # no audio track
    measured = {f: k for k, f in enumerate(edited.image_frames)}
    assert not set(measured) & set(LOST)

    def mean(values, analysis, frames):
        at = {f: k for k, f in enumerate(analysis.image_frames)}
        return np.mean([values[at[f]] for f in frames])

    blurred, sharp = list(BLURRED), talking_analysis
    assert mean(edited.cpbd, edited, blurred) < 0.8 * mean(sharp.cpbd, sharp, blurred)
    assert mean(edited.laplacian, edited, blurred) < 0.3 * mean(sharp.laplacian, sharp, blurred)
    pasted = [f for f in SEAMED if f in measured]
    seam, real = edited.seam_contrast(), talking_analysis.seam_contrast()
    assert mean(seam, edited, pasted) > 2.0 * mean(real, sharp, pasted)  # measured 2.8x


def test_pose_curves_plot_is_written_whole_with_gaps(tmp_path):
    from talkingjax import visualize

    t = np.arange(100) / FPS
    tracked = np.zeros((100, 6))
    tracked[:, 1] = np.radians(3.0) * np.sin(2 * np.pi * t)
    tracked[40:45] = np.nan  # lost frames
    path = str(tmp_path / "curves.png")
    visualize.plot_pose_curves(path, {"predicted": tracked * 0.5, "tracked": tracked}, FPS, "x")
    image = cv2.imread(path)
    assert image is not None and image.shape == (650, 900, 3)
    assert image.std() > 10  # curves and text, not a blank canvas
    assert os.listdir(tmp_path) == ["curves.png"]
