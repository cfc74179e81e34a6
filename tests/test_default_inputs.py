"""Tests of the embedded default demo's inputs (talkingjax.data.default_inputs).

Clips are 4 s at 128^2 (one render compile), so the whole file stays fast; the 12 s 256^2
default is the same code with bigger numbers.
"""

import json
import os

import numpy as np
import pytest

from talkingjax import audio
from talkingjax.data import default_inputs as di
from talkingjax.errors import InputError
from talkingjax.evaluation import expression as expression_eval
from talkingjax.face3d import default
from talkingjax.video import tracking

SIZE = 128
SECONDS = 4.0
FPS = 25.0
pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """The seed-0 clip: (path, ground truth)."""
    path = tmp_path_factory.mktemp("target") / "target.mp4"
    return path, di.make_target_video(path, seconds=SECONDS, size=SIZE, fps=FPS, seed=0)


def _listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


# ----------------------------------------------------------------------------- the video


def test_video_decodes_with_its_speech(target):
    path, truth = target
    t = int(SECONDS * FPS)
    info = tracking.probe_video(path)
    assert info == tracking.VideoInfo(str(path), FPS, t, SIZE, SIZE, True)
    frames = np.stack(list(tracking.read_frames(path)))
    assert frames.shape == truth.frames.shape == (t, SIZE, SIZE, 3)
    assert np.abs(frames.astype(int) - truth.frames).mean() < 3  # near-lossless H.264
    # The AAC track holds the speech and lasts as long as the video (within a frame).
    assert truth.wave.shape == (t * audio.SAMPLE_RATE // int(FPS),)
    track = audio.load_audio(path)
    assert abs(track.size / audio.SAMPLE_RATE - t / FPS) <= 1 / FPS
    n = min(track.size, truth.wave.size)
    assert np.corrcoef(np.abs(track[:n]), np.abs(truth.wave[:n]))[0, 1] > 0.8
    assert _listing(path.parent) == ["target.mp4"]  # no temporary file left


def test_ground_truth_shapes_and_framing(target):
    _, truth = target
    t, model = truth.num_frames, default.load_default()
    k_id, k_exp, k_tex = model.sizes
    assert truth.pose.shape == truth.corpus_pose.shape == (t, 6)
    assert truth.exp.shape == (t, k_exp) and truth.landmarks.shape == (t, 468, 2)
    assert (truth.id.shape, truth.tex.shape, truth.gamma.shape) == ((k_id,), (k_tex,), (27,))
    assert truth.frames.dtype == np.uint8 and truth.fps == FPS
    # The returned pose is the corpus pose through the documented camera mapping.
    np.testing.assert_allclose(truth.pose, di.rendered_pose(truth.corpus_pose), atol=1e-6)
    np.testing.assert_allclose(truth.pose[:, 5].mean(), di.DISTANCE, atol=0.5)
    # Well framed: the face spans ~50-60 % of the width and stays inside the frame.
    width = np.ptp(truth.landmarks[..., 0], axis=1) / SIZE
    assert 0.4 < width.min() and width.max() < 0.65, (width.min(), width.max())
    assert truth.landmarks.min() > 0 and truth.landmarks.max() < SIZE


def test_mediapipe_finds_the_rendered_landmarks(target):
    path, truth = target
    frames = list(tracking.read_frames(path))
    with tracking.face_mesh(static=True) as mesh:
        for i in (0, 33, 66, 99):
            faces = tracking.detect_faces(mesh, frames[i])
            assert len(faces) == 1, f"frame {i}"
            found = tracking.to_pixels(faces[0], SIZE, SIZE)[:468, :2]
            rmse = np.sqrt(np.mean(np.sum((found - truth.landmarks[i]) ** 2, axis=-1)))
            assert rmse < 0.02 * SIZE, f"frame {i}: {rmse:.2f} px"


def test_head_moves_and_mouth_follows_the_speech(target):
    _, truth = target
    assert np.all(np.degrees(truth.pose[:, :3].std(axis=0)) > 1.0), truth.pose[:, :3].std(0)
    assert np.all(truth.pose[:, 3:].std(axis=0) > 1e-3)
    opening = expression_eval.mouth_opening(default.load_default(), truth.exp)
    # The log energy of each frame's window, as the expression evaluation measures it.
    mfcc = audio.speech_features(truth.wave)
    energy = audio.frame_windows(mfcc, FPS, truth.num_frames)[:, audio.WINDOW_ROWS // 2, 0]
    assert np.corrcoef(opening, energy)[0, 1] > 0.3  # 0.58 here: clearly positive


def test_background_moves_only_partly(target):
    _, truth = target
    frames = truth.frames.astype(int)
    # The wall's top corners never change; the neck and shoulders at the bottom do.
    corners = frames[:, :6, list(range(6)) + list(range(SIZE - 6, SIZE))]
    assert np.all(corners == corners[:1])
    bottom = frames[:, int(0.85 * SIZE) :]
    assert np.abs(bottom - bottom.mean(axis=0)).mean() > 0.5
    assert frames.std(axis=(1, 2)).min() > 10  # textured, not a flat backdrop


def test_deterministic_in_seed(target, tmp_path):
    _, truth = target
    again = di.make_target_video(tmp_path / "a.mp4", SECONDS, SIZE, FPS, seed=0)
    np.testing.assert_array_equal(again.frames, truth.frames)
    for name in ("pose", "exp", "wave", "id", "tex", "gamma"):
        np.testing.assert_array_equal(getattr(again, name), getattr(truth, name), err_msg=name)
    other = di.make_target_video(tmp_path / "b.mp4", SECONDS, SIZE, FPS, seed=1)
    assert np.abs(other.id - truth.id).max() > 0.1 and np.abs(other.tex - truth.tex).max() > 0.1
    assert other.speaker != truth.speaker
    assert np.abs(other.frames.astype(int) - truth.frames).mean() > 10


# ----------------------------------------------------------------------------- speech


def test_speech_is_another_voice_saying_other_sentences(tmp_path, target):
    _, truth = target
    path = tmp_path / "speech.wav"
    wave = di.make_speech(path, seconds=SECONDS, seed=1, avoid_voice=truth.speaker.voice)
    assert wave.dtype == np.float32 and wave.shape == (int(SECONDS * audio.SAMPLE_RATE),)
    np.testing.assert_array_equal(audio.load_audio(path), wave)
    assert di.speech_speaker(1, truth.speaker.voice).voice != truth.speaker.voice
    assert np.sqrt(np.mean(wave**2)) > 0.01  # speech, not silence
    assert set(di._sentences(0)).isdisjoint(di._sentences(1))
    again = di.make_speech(tmp_path / "again.wav", SECONDS, 1, truth.speaker.voice)
    np.testing.assert_array_equal(again, wave)
    assert _listing(tmp_path) == ["again.wav", "speech.wav"]


def test_default_inputs_are_made_once_per_seed(tmp_path, monkeypatch):
    # The default job's settings, shrunk so the test is fast.
    monkeypatch.setattr(di, "TARGET_SECONDS", SECONDS)
    monkeypatch.setattr(di, "TARGET_SIZE", SIZE)
    monkeypatch.setattr(di, "SPEECH_SECONDS", SECONDS)
    out = tmp_path / "inputs"
    paths = di.make_default_inputs(out, seed=0)
    assert paths == {"target": str(out / di.TARGET_NAME), "speech": str(out / di.SPEECH_NAME)}
    assert _listing(out) == sorted([di.TARGET_NAME, di.SPEECH_NAME, di.STAMP_NAME])
    assert json.loads((out / di.STAMP_NAME).read_text())["seed"] == 0
    assert tracking.probe_video(paths["target"]).num_frames == SECONDS * FPS
    assert audio.load_audio(paths["speech"]).size == SECONDS * audio.SAMPLE_RATE
    mtimes = {k: os.stat(p).st_mtime_ns for k, p in paths.items()}

    def fail(*args, **kwargs):
        raise AssertionError("regenerated")

    with monkeypatch.context() as m:
        m.setattr(di, "make_target_video", fail)
        m.setattr(di, "make_speech", fail)
        assert di.make_default_inputs(out, seed=0) == paths  # the stamp matches: nothing redone
        with pytest.raises(AssertionError, match="regenerated"):
            di.make_default_inputs(out, seed=1)  # another seed is made again
    assert not (out / di.STAMP_NAME).exists()  # ... and the old stamp no longer claims the files
    assert {k: os.stat(p).st_mtime_ns for k, p in paths.items()} == mtimes


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seconds=3.9), r"seconds must be in \[4, 120\], got 3.9"),
        (dict(seconds=121.0), r"seconds must be in \[4, 120\]"),
        (dict(seconds=float("nan")), "seconds must be a number"),
        (dict(size=120), r"size must be a multiple of 16 in \[128, 1024\], got 120"),
        (dict(size=136), "size must be a multiple of 16"),
        (dict(size=96), "size must be a multiple of 16"),
        (dict(fps=0.0), r"fps must be in \[1, 120\]"),
        (dict(seed=-1), "seed must be an int >= 0, got -1"),
    ],
)
def test_bad_arguments_raise_and_leave_nothing(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        di.make_target_video(tmp_path / "t.mp4", **kwargs)
    if "seconds" in kwargs or "seed" in kwargs:
        with pytest.raises(InputError, match=message):
            di.make_speech(tmp_path / "s.wav", **kwargs)
    assert _listing(tmp_path) == []


def test_unwritable_paths_raise_and_leave_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="does not exist"):
        di.make_target_video(tmp_path / "missing" / "t.mp4")
    with pytest.raises(InputError, match="does not exist"):
        di.make_speech(tmp_path / "file" / "s.wav")
    with pytest.raises(InputError, match="is a directory"):
        di.make_target_video(tmp_path)
    with pytest.raises(InputError, match="cannot create"):
        di.make_default_inputs(tmp_path / "file" / "inputs")
    assert _listing(tmp_path) == ["file"]


def test_the_embedded_default_is_the_vendored_real_footage(tmp_path):
    paths = di.real_default_inputs()
    info = tracking.probe_video(paths["target"])
    assert (info.num_frames, info.fps, info.width, info.height) == (300, 25.0, 256, 256)
    wave = audio.load_audio(paths["speech"])
    assert wave.size == 8 * audio.SAMPLE_RATE and np.abs(wave).max() > 0.1  # speech, not silence
    folder = os.path.dirname(paths["target"])
    readme = open(os.path.join(folder, "README.md")).read()
    assert "public domain" in readme and "105" in readme  # why it may be redistributed
    with pytest.raises(InputError, match="missing"):
        di.real_default_inputs(str(tmp_path))
