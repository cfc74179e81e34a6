"""Pasting a face crop back into its frame, and the mp4 writer with a speech track."""

import os

import numpy as np
import pytest

from talkingjax import visualize
from talkingjax.errors import InputError
from talkingjax.evaluation import generation as generation_eval
from talkingjax.face3d import fit as fit_lib
from talkingjax.generation import paste


def _frame(h=120, w=160, seed=0):
    # Smooth content, so that resampling by the crop and back changes it little.
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.02, 0.08, 3)
    img = np.stack([np.sin(a * x + b * y), np.cos(b * x - c * y), np.sin(c * (x + y))], -1)
    return ((img + 1) * 127.5).astype(np.uint8)


PARAMS = np.array([160, 120, 0.8, -20.0, -10.0], np.float32)  # crop = 0.8 frame - (20, 10)
S = 64


def _disc(s=S, r=22):
    y, x = np.mgrid[0:s, 0:s]
    return (((x - s / 2) ** 2 + (y - s / 2) ** 2) < r * r).astype(np.uint8) * 255


def test_uncrop_inverts_apply_crop():
    frame = _frame()
    crop = fit_lib.apply_crop(frame, PARAMS, (S, S))
    back = paste.uncrop(crop, PARAMS, (160, 120))
    # The crop covers frame x in [25, 105), y in [12.5, 92.5): compare inside, off the edges.
    inner = (slice(20, 85), slice(32, 98))
    err = np.abs(back[inner].astype(int) - frame[inner].astype(int))
    assert err.mean() < 3 and err.max() < 25
    assert not back[:5].any() and not back[:, :15].any()  # outside the crop: zero


@pytest.mark.parametrize(
    "params", [(1080, 1920, 0.27, -127.4, 27.5), (640, 360, 1.94, -90.6, 53.9), (256, 256, 1, 0, 0)]
)
def test_uncrop_in_the_crops_window_equals_the_whole_frames_drawing(params):
    """`crop_box` holds everything `uncrop` draws; drawing only that window gives the same
    values (to OpenCV's 1/32-pixel fixed-point sampling)."""
    params = np.array(params, np.float32)
    w, h = int(params[0]), int(params[1])
    crop = np.random.default_rng(0).uniform(0.5, 1.0, (64, 64, 2)).astype(np.float32)
    whole = paste.uncrop(crop, params, (w, h))
    x0, y0, x1, y1 = paste.crop_box(params, 64, (w, h))
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    outside = whole.copy()
    outside[y0:y1, x0:x1] = 0
    assert not outside.any() and whole.any()
    window = paste.uncrop(crop, params, (w, h), (x0, y0, x1, y1))
    np.testing.assert_allclose(window, whole[y0:y1, x0:x1], atol=0.03)


@pytest.mark.parametrize("mode", paste.MODES)
def test_paste_changes_only_the_face(mode):
    frame = _frame()
    # A checkerboard face: Poisson cloning keeps its gradients, feathering its colours.
    y, x = np.mgrid[0:S, 0:S]
    board = ((x // 4 + y // 4) % 2 * 200 + 20).astype(np.uint8)
    face = np.repeat(board[..., None], 3, axis=-1)
    out = paste.paste_crop(frame, face, _disc(), PARAMS, mode=mode)
    # The disc's centre: crop (32, 32) -> frame ((32 + 20) / 0.8, (32 + 10) / 0.8) = (65, 52.5).
    centre, want = out[46:60, 58:72].astype(float), paste.uncrop(face, PARAMS, (160, 120))
    want = want[46:60, 58:72].astype(float)
    if mode == "feather":
        np.testing.assert_allclose(centre, want, atol=2)
    else:  # up to the smooth membrane that matches the seam: compare the gradients
        dx = lambda a: np.diff(a, axis=1)  # noqa: E731
        assert np.abs(dx(centre) - dx(want)).mean() < 0.25 * np.abs(dx(want)).mean()
    # Far from the disc (radius 22 / 0.8 = 27.5 frame pixels), the frame is untouched.
    y, x = np.mgrid[0:120, 0:160]
    far = (x - 65) ** 2 + (y - 52.5) ** 2 > 40**2
    np.testing.assert_array_equal(out[far], frame[far])


def test_pasting_the_frames_own_crop_keeps_the_frame():
    frame = _frame(seed=3)
    crop = fit_lib.apply_crop(frame, PARAMS, (S, S))
    for mode in paste.MODES:
        out = paste.paste_crop(frame, crop, _disc(), PARAMS, mode=mode)
        assert np.abs(out.astype(int) - frame.astype(int)).mean() < 1.5


def test_speech_region_weights_cover_the_mouth_and_jaw_not_the_eyes():
    from talkingjax.face3d import default

    model = default.load_default()
    w = paste.speech_region_weights(model)
    marks = np.asarray(model.landmarks)
    assert w.shape == (model.num_vertices,) and w.min() >= 0 and w.max() <= 1
    np.testing.assert_array_equal(w[marks[48:68]], 1.0)  # the lips
    np.testing.assert_array_equal(w[marks[5:12]], 1.0)  # the lower jaw and chin
    np.testing.assert_array_equal(w[marks[17:31]], 0.0)  # brows, eyes, nose down to its tip
    np.testing.assert_array_equal(w[marks[36:48]], 0.0)
    # It only grows downwards: weight is a non-increasing function of the height.
    y = np.asarray(model.mean_shape)[:, 1]
    order = np.argsort(y)
    assert np.all(np.diff(w[order]) <= 1e-6)
    with pytest.raises(InputError, match="68"):
        paste.speech_region_weights(model.replace(landmarks=model.landmarks[:10]))


def test_region_alpha_fills_the_mouth_hole_not_the_eye_holes():
    s = 64
    y, x = np.mgrid[0:s, 0:s]
    face = ((x - 32) ** 2 / 26**2 + (y - 32) ** 2 / 30**2) < 1
    eyes = ((x - 22) ** 2 + (y - 22) ** 2 < 16) | ((x - 42) ** 2 + (y - 22) ** 2 < 16)
    mouth = ((x - 32) ** 2 / 8**2 + (y - 46) ** 2 / 3**2) < 1
    mesh = face & ~eyes & ~mouth
    weights = np.where(mesh, np.clip((y - 30) / 8.0, 0, 1), 0).astype(np.float32)
    alpha = paste.region_alpha(weights, mesh.astype(np.uint8) * 255, grow=0.0)
    assert alpha[46, 32] > 0.95  # the open mouth is pasted
    assert alpha[22, 22] < 0.05 and alpha[22, 42] < 0.05  # the eyes are not
    assert alpha[5, 32] < 0.05 and alpha[56, 32] > 0.9  # forehead no, chin yes
    grown = paste.region_alpha(weights, mesh.astype(np.uint8) * 255, grow=0.1)
    assert grown[63, 32] > alpha[63, 32]  # it grows past the jaw
    assert np.all(paste.region_alpha(weights, np.zeros((s, s), np.uint8)) == 0)


def test_a_soft_mask_blends_by_its_alpha():
    frame = _frame(seed=1)
    crop = np.full((S, S, 3), 200, np.uint8)
    alpha = np.zeros((S, S), np.float32)
    alpha[:, :] = 0.5
    out = paste.paste_crop(frame, crop, alpha, PARAMS, mode="feather", feather=0)
    # Inside the crop's footprint the output is the mean of frame and crop.
    inner = (slice(30, 80), slice(40, 90))
    want = 0.5 * frame[inner].astype(float) + 0.5 * 200
    np.testing.assert_allclose(out[inner].astype(float), want, atol=1.0)
    # A binary mask given as floats pastes as the same mask in uint8 does (up to the
    # resampled rim).
    disc = _disc()
    for mode in paste.MODES:
        a = paste.paste_crop(frame, crop, disc, PARAMS, mode=mode)
        b = paste.paste_crop(frame, crop, (disc > 0).astype(np.float32), PARAMS, mode=mode)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 0.5


def test_paste_rejects_bad_input():
    frame = _frame()
    with pytest.raises(InputError, match="mode"):
        paste.paste_crop(frame, np.zeros((S, S, 3), np.uint8), _disc(), PARAMS, mode="x")
    with pytest.raises(InputError, match="takes frame"):
        paste.paste_crop(frame, np.zeros((S, S + 1, 3), np.uint8), _disc(), PARAMS)
    with pytest.raises(InputError, match="uint8"):
        paste.paste_crop(frame, np.zeros((S, S, 3), np.float32), _disc(), PARAMS)


def test_write_video_muxes_the_speech(tmp_path):
    fps, seconds = 25.0, 1.2
    frames = np.stack([_frame(seed=i)[:, :, :] for i in range(int(seconds * fps))])
    t = np.arange(int(seconds * 16000)) / 16000
    speech = 0.3 * np.sin(2 * np.pi * 220 * t)
    path = str(tmp_path / "out.mp4")
    visualize.write_video(path, frames, fps, audio=speech)
    streams = generation_eval.streams(path)
    assert int(streams["video"]["nb_frames"]) == 30
    assert abs(float(streams["audio"]["duration"]) - seconds) < 0.05
    assert os.listdir(tmp_path) == ["out.mp4"]
    # A failing encode (a frame rate ffmpeg refuses) leaves nothing behind.
    bad = str(tmp_path / "bad.mp4")
    with pytest.raises(OSError, match="ffmpeg"):
        visualize.write_video(bad, frames, 0.0, audio=speech)
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_video_writer_streams_chunks_and_leaves_nothing_when_aborted(tmp_path):
    frames = np.stack([_frame(seed=i) for i in range(12)])
    path = str(tmp_path / "stream.mp4")
    with visualize.VideoWriter(path, 25.0) as writer:
        for i in range(0, 12, 5):  # chunks of 5, 5, 2
            writer.write(frames[i : i + 5])
    assert int(generation_eval.streams(path)["video"]["nb_frames"]) == 12
    # An exception mid-stream: the temp file is removed and nothing appears at the path.
    with pytest.raises(RuntimeError), visualize.VideoWriter(str(tmp_path / "x.mp4"), 25.0) as w:
        w.write(frames[:3])
        raise RuntimeError("stop")
    with pytest.raises(ValueError, match="frame size"):
        with visualize.VideoWriter(str(tmp_path / "y.mp4"), 25.0) as w:
            w.write(frames[:2])
            w.write(frames[:2, :8])
    assert os.listdir(tmp_path) == ["stream.mp4"]
