"""Video probing/decoding, MediaPipe face tracking on rendered heads, gap policy and crops."""

import subprocess
import types

import cv2
import numpy as np
import pytest
import scipy.ndimage
import synthetic_video as sv

from talkingjax.errors import InputError
from talkingjax.face3d import camera, default, fit, topology
from talkingjax.video import tracking

FPS = 25.0
pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A 30-frame rendered head clip with audio: (path, ground truth)."""
    path = tmp_path_factory.mktemp("video") / "head.mp4"
    return path, sv.write_head_video(path, num_frames=30, fps=FPS, size=256, audio=True)


@pytest.fixture(scope="module")
def track(head):
    return tracking.track_video(head[0])


@pytest.fixture(scope="module")
def model():
    return default.load_default()


def _gray_video(path, size=(160, 160), frames=10, fps=FPS, vf=None):
    w, h = size
    data = np.full((frames, h, w, 3), 128, np.uint8)
    cmd = ["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
    cmd += ["-vf", vf, "-vsync", "vfr"] if vf else []
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, input=data.tobytes(), check=True)
    return path


def _sample(image, xy):
    """Bilinear samples [N, 3] of an image at continuous pixel positions xy [N, 2]."""
    coords = [xy[:, 1] - 0.5, xy[:, 0] - 0.5]  # pixel centres at +0.5
    return np.stack(
        [scipy.ndimage.map_coordinates(image[..., c].astype(np.float64), coords, order=1)
         for c in range(3)], axis=-1,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# probe_video / read_frames


def test_probe_synthetic_video(head, tmp_path):
    path, truth = head
    info = tracking.probe_video(path)
    assert info == tracking.VideoInfo(str(path), 25.0, 30, 256, 256, True)
    sv.write_video(tmp_path / "silent.mp4", truth.frames[:5], FPS, audio=False)
    assert not tracking.probe_video(tmp_path / "silent.mp4").has_audio


def test_read_frames_decodes_all_and_ranges(head):
    path, truth = head
    frames = np.stack(list(tracking.read_frames(path)))
    assert frames.shape == (30, 256, 256, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - truth.frames).mean() < 3  # H.264 at crf 12
    part = np.stack(list(tracking.read_frames(path, start=7, count=4)))
    np.testing.assert_array_equal(part, frames[7:11])
    assert len(list(tracking.read_frames(path, start=28))) == 2
    assert list(tracking.read_frames(path, count=0)) == []
    gen = tracking.read_frames(path)
    next(gen)
    gen.close()  # stops ffmpeg without reading the rest


def test_probe_rejects_unusable_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        tracking.probe_video(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(InputError, match="cannot read video .*notes.mp4"):
        tracking.probe_video(text)
    with pytest.raises(InputError, match="64x64; the short side must be at least 128"):
        tracking.probe_video(_gray_video(tmp_path / "tiny.mp4", size=(64, 64)))
    # A timestamp jump of 0.2 s after frame 10: the average rate is off the nominal one.
    vfr = _gray_video(tmp_path / "vfr.mp4", frames=30, vf="setpts=PTS+gte(N\\,10)*0.2/TB")
    with pytest.raises(InputError, match="variable frame rate"):
        tracking.probe_video(vfr)
    # A one-frame jump in 300 (the 0.06 s are rounded to the 1/25 s time base): the rates
    # agree within 1 %, but the timestamps drift.
    drift = _gray_video(tmp_path / "drift.mp4", frames=300, vf="setpts=PTS+gte(N\\,150)*0.06/TB")
    with pytest.raises(InputError, match="irregular frame timestamps"):
        tracking.probe_video(drift)
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.zeros((200, 200, 3), np.uint8))
    with pytest.raises(InputError, match="image"):
        tracking.probe_video(image)


# ------------------------------------------------------------------------------------------
# Tracking with MediaPipe


def test_track_recovers_projected_vertices(head, track):
    _, truth = head
    assert track.landmarks.shape == (30, tracking.NUM_POINTS, 3)
    assert track.landmarks.dtype == np.float32
    assert track.detected.all() and track.lost_frames().size == 0
    assert track.fps == 25.0 and track.frame_size == (256, 256)
    err = np.linalg.norm(track.landmarks[:, :468, :2] - truth.landmarks, axis=-1)
    assert np.sqrt(np.mean(err**2, axis=1)).max() < 4.0, "per-frame RMSE in pixels"
    # z: smaller = closer; the nose tip (1) is in front of the face outline (234, 454).
    z = track.landmarks[:, :, 2]
    assert np.all(z[:, 1] < z[:, 234]) and np.all(z[:, 1] < z[:, 454])


def test_short_gap_is_interpolated_and_flagged(head):
    path, truth = head
    frames = list(tracking.read_frames(path))
    blank = np.full_like(frames[0], 128)
    frames = frames[:10] + [blank] * 3 + frames[10:]
    tr = tracking.track_video(path, frames=frames)
    np.testing.assert_array_equal(tr.lost_frames(), [10, 11, 12])
    np.testing.assert_allclose(
        tr.landmarks[11], 0.5 * (tr.landmarks[9] + tr.landmarks[13]), atol=1e-3
    )
    err = np.linalg.norm(tr.landmarks[13:, :468, :2] - truth.landmarks[10:], axis=-1)
    assert err.mean() < 4.0  # found again after the gap


def test_long_gap_rejects_the_clip(head):
    path, _ = head
    frames = list(tracking.read_frames(path))
    blank = np.full_like(frames[0], 128)
    frames = frames[:10] + [blank] * 12 + frames[10:]
    with pytest.raises(InputError, match=r"face lost in frames 10-21 \(12 of 42\)"):
        tracking.track_video(path, frames=frames)


def test_video_without_face(tmp_path):
    path = _gray_video(tmp_path / "empty.mp4")
    with pytest.raises(InputError, match="no face found in .*empty.mp4"):
        tracking.track_video(path)


@pytest.mark.parametrize("big_on_right", [True, False])
def test_two_faces_track_the_larger(tmp_path, big_on_right):
    # A large face and a smaller one side by side in a 512 x 256 frame.
    angles, trans = sv.head_motion(8, FPS, seed=1)
    big, big_lm = sv.render_heads(angles, trans, 256)
    small, _ = sv.render_heads(-angles, trans, 256)
    frames = np.empty((8, 256, 512, 3), np.uint8)
    big_x, small_x = (256, 0) if big_on_right else (0, 256)
    for t in range(8):
        frames[t, :, big_x : big_x + 256] = big[t]
        side = (sv.background(256) * 255).astype(np.uint8)
        side[48:208, 48:208] = cv2.resize(small[t], (160, 160), interpolation=cv2.INTER_AREA)
        frames[t, :, small_x : small_x + 256] = side
    path = tmp_path / "two.mp4"
    sv.write_video(path, frames, FPS)
    tr = tracking.track_video(path)
    assert tr.detected.all()
    err = np.linalg.norm(tr.landmarks[:, :468, :2] - (big_lm + [big_x, 0]), axis=-1)
    assert err.mean(1).max() < 4.0
    # Both faces are visible to MediaPipe: the larger one was chosen, not the only one found.
    with tracking.face_mesh(static=True, max_faces=3, refine=True) as mesh:
        assert len(tracking.detect_faces(mesh, frames[0])) == 2


# ------------------------------------------------------------------------------------------
# Pure policies


def _square(cx, cy, half, n=20):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + half * np.cos(a), cy + half * np.sin(a), np.zeros(n)], axis=1)


def test_choose_face():
    small, large = _square(50, 50, 10), _square(150, 50, 30)
    assert tracking.choose_face([], None) is None
    assert tracking.choose_face([small, large], None) == 1  # largest first
    assert tracking.choose_face([large, small], None) == 0
    # Then the one consistent with the previous face, even if another is larger.
    assert tracking.choose_face([large, _square(52, 49, 10)], small) == 1
    # Only someone else, far away: lost, not a switch.
    assert tracking.choose_face([large], small) is None
    # Overlapping candidates: the larger overlap wins over a nearer centre of a tiny face.
    prev = _square(100, 100, 30)
    assert tracking.choose_face([_square(100, 100, 3), _square(105, 100, 28)], prev) == 1


def test_fill_gaps_policy():
    t = np.arange(20, dtype=np.float32)
    values = np.stack([t, -2 * t], axis=1)[:, None, :]  # [T, 1, 2], linear in t
    detected = np.ones(20, bool)
    detected[[0, 1]] = False  # start: nearest
    detected[5:8] = False  # short interior: linear
    detected[10:16] = False  # long interior (6 > 5): nearest
    detected[19] = False  # end: nearest
    garbage = np.where(detected[:, None, None], values, 1e6)
    out = tracking.fill_gaps(garbage, detected, max_gap=5)
    assert out.dtype == np.float32 and out.shape == values.shape
    np.testing.assert_array_equal(out[detected], values[detected])
    np.testing.assert_array_equal(out[[0, 1]], values[[2, 2]])
    np.testing.assert_allclose(out[5:8], values[5:8], atol=1e-5)
    np.testing.assert_array_equal(out[10:16], values[[9, 9, 9, 16, 16, 16]])
    np.testing.assert_array_equal(out[19], values[18])
    with pytest.raises(ValueError):
        tracking.fill_gaps(values, np.zeros(20, bool))


def test_lost_ranges_and_check_lost():
    detected = np.ones(120, bool)
    detected[10:25] = detected[80:92] = False
    assert tracking.lost_ranges(detected) == [(10, 24), (80, 91)]
    assert tracking.format_ranges([(3, 3), (5, 9)]) == "3, 5-9"
    assert tracking.format_ranges([(i, i) for i in range(10)], limit=2) == "0, 1, ... (8 more)"
    with pytest.raises(
        InputError, match=r"clip.mp4: face lost in frames 10-24, 80-91 \(27 of 120\)"
    ):
        tracking.check_lost(detected, 25.0, max_lost_fraction=0.2, path="clip.mp4")
    tracking.check_lost(detected, 25.0, max_lost_fraction=0.25)  # 22.5 % lost: fine
    # A 2.4 s gap is rejected even though only 3 % of the frames are lost.
    detected = np.ones(2000, bool)
    detected[500:560] = False
    with pytest.raises(InputError, match="500-559"):
        tracking.check_lost(detected, 25.0)
    tracking.check_lost(detected, 25.0, max_gap_seconds=3.0)
    tracking.check_lost(np.ones(5, bool), 25.0)


# ------------------------------------------------------------------------------------------
# Crops


def test_correspondence(model):
    points, verts = tracking.correspondence(model)
    np.testing.assert_array_equal(points, np.arange(468))
    np.testing.assert_array_equal(verts, np.arange(468))
    bfm = types.SimpleNamespace(num_vertices=35709, landmarks=np.arange(68) * 7)
    points, verts = tracking.correspondence(bfm)
    np.testing.assert_array_equal(points, topology.LANDMARKS_68)
    np.testing.assert_array_equal(verts, bfm.landmarks)


def _jittery_track(truth, seed=0):
    """The ground-truth landmarks with per-frame random shifts (+-3 px) and scalings (+-3 %)."""
    rng = np.random.default_rng(seed)
    lm = truth.landmarks.astype(np.float64)
    lm = np.concatenate([lm, lm[:, :10]], axis=1)  # stand-ins for the iris points
    centre = lm.mean(1, keepdims=True)
    scale = 1 + rng.uniform(-0.03, 0.03, (len(lm), 1, 1))
    lm = centre + scale * (lm - centre) + rng.uniform(-3, 3, (len(lm), 1, 2))
    lm = np.concatenate([lm, np.zeros_like(lm[..., :1])], axis=-1).astype(np.float32)
    return tracking.Track(lm, np.ones(len(lm), bool), FPS, (256, 256))


def test_crop_track_is_smooth(head, model):
    _, truth = head
    tr = _jittery_track(truth)
    raw = tracking.crop_track(tr, model, 224, smooth_sigma_s=0.0)
    cam = camera.Camera().scaled(224)
    want = fit.crop_params(tr.landmarks[5, :468, :2], model, np.arange(468), cam, (256, 256))
    np.testing.assert_allclose(raw[5], want, rtol=1e-5)
    smooth = tracking.crop_track(tr, model, 224)
    assert smooth.shape == (30, 5) and smooth.dtype == np.float32
    np.testing.assert_array_equal(smooth[:, :2], 256)

    def centre(p):
        return (112 - p[:, 3:5]) / p[:, 2:3]

    def roughness(x):
        return np.abs(np.diff(x, 2, axis=0)).mean()

    assert roughness(np.log(smooth[:, 2])) < 0.2 * roughness(np.log(raw[:, 2]))
    assert roughness(centre(smooth)) < 0.2 * roughness(centre(raw))
    # Smoothing does not move the crop on average.
    assert np.abs(centre(smooth).mean(0) - centre(raw).mean(0)).max() < 1.0
    # A still face keeps its exact crop.
    still = tracking.Track(np.repeat(tr.landmarks[:1], 30, 0), tr.detected, FPS, (256, 256))
    p = tracking.crop_track(still, model, 224)
    np.testing.assert_allclose(p, np.repeat(p[:1], 30, 0), rtol=1e-5)


def test_crop_video_matches_landmarks_in_crop(head, track, model):
    path, _ = head
    params = tracking.crop_track(track, model, 224)
    crops = tracking.crop_video(path, params, 224)
    assert crops.shape == (30, 224, 224, 3) and crops.dtype == np.uint8
    points = tracking.landmarks_in_crop(track, params)
    assert points.shape == (30, 478, 2) and points.dtype == np.float32
    # The face is centred in the crop, as the model's mean face with the default camera.
    mean_face = np.asarray(camera.project(camera.Camera(), model.mean_shape[:468]))
    assert np.abs(points[:, :468].mean((0, 1)) - mean_face.mean(0)).max() < 5
    frames = list(tracking.read_frames(path))
    for t in (0, 17, 29):
        inside = track.landmarks[t, :468, :2]
        in_frame = _sample(frames[t], inside)
        in_crop = _sample(crops[t], points[t, :468])
        assert np.abs(in_crop - in_frame).mean() < 3.0
        nose = 1  # MediaPipe's nose tip
        assert np.abs(in_crop[nose] - in_frame[nose]).max() < 6.0
    with pytest.raises(InputError, match="30 frames; the crop params are for 31"):
        tracking.crop_video(path, np.concatenate([params, params[:1]]), 224)
    with pytest.raises(InputError, match="frames"):
        tracking.landmarks_in_crop(track, params[:5])
