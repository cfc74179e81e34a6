"""Bad targets (issue 21): a target video whose face is small, hidden or turned away in most
frames, a photo with no face or two faces -> one `InputError` naming the frames (or the face
count), and nothing left in the personalisation cache."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import soundfile

from talkingjax import generation, visualize
from talkingjax.data import default_inputs
from talkingjax.errors import InputError
from tests import synthetic_video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 25.0
TUNE = generation.TuneOptions(frames=40, expression_steps=2, gan_steps=2)
GOOD = 22  # the first 22 of the 110 frames are a usable face; 22-109 are bad


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("target") / "target.mp4")
    return default_inputs.make_target_video(path, seconds=4.4, size=128, seed=3)


@pytest.fixture(scope="module")
def models():
    return generation.Models.default()


def _write(tmp_path, name, frames, wave) -> str:
    path = str(tmp_path / f"{name}.mp4")
    visualize.write_video(path, frames, FPS, audio=wave)
    return path


def _rejected(video, models, tmp_path) -> str:
    """personalize's InputError message; asserts the cache and the folder stay clean."""
    cache = tmp_path / "cache"
    cache.mkdir()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InputError) as err:
        generation.personalize(video, models, str(cache), TUNE)
    assert os.listdir(cache) == []  # no fit, no hash directory, no .tmp leftovers
    assert sorted(os.listdir(tmp_path)) == before
    message = str(err.value)
    assert "\n" not in message and video in message
    return message


def test_small_face_in_most_frames(target, models, tmp_path):
    frames = target.frames.copy()
    for i in range(GOOD, len(frames)):  # shrunk to 38 px (the face ~20 px) on a flat wall
        frame = cv2.resize(frames[i][:8, :8], (128, 128))
        frame[45:83, 45:83] = cv2.resize(frames[i], (38, 38), interpolation=cv2.INTER_AREA)
        frames[i] = frame
    message = _rejected(_write(tmp_path, "small", frames, target.wave), models, tmp_path)
    assert "face too small" in message and "in frames 22-109 (88 of 110)" in message


def test_hidden_face_in_most_frames(target, models, tmp_path):
    frames = target.frames.copy()
    for i in range(GOOD, len(frames)):  # a black box over the face
        (x0, y0), (x1, y1) = target.landmarks[i].min(0) - 4, target.landmarks[i].max(0) + 4
        frames[i, max(int(y0), 0) : int(y1), max(int(x0), 0) : int(x1)] = 0
    video = _write(tmp_path, "hidden", frames, target.wave)
    message = _rejected(video, models, tmp_path)
    assert "face lost in frames 22-109 (88 of 110)" in message
    # The command line prints that one line, nothing else (no MediaPipe log line), exit 2.
    speech = str(tmp_path / "s.wav")
    soundfile.write(speech, target.wave, 16000)
    out = tmp_path / "out"
    out.mkdir()
    cli = subprocess.run(
        [sys.executable, "-m", "experiments.generate", f"--audio={speech}", f"--video={video}",
         f"--out={out / 'o.mp4'}", f"--cache={tmp_path / 'cli_cache'}", "--quiet"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert cli.returncode == 2
    assert cli.stderr.splitlines() == [f"error: {message}"], cli.stderr
    assert os.listdir(out) == []


def test_face_turned_away_in_most_frames(target, models, tmp_path):
    angles, trans = synthetic_video.head_motion(len(target.frames), FPS)
    angles = angles.copy()
    angles[GOOD:, 1] = np.radians(85)  # a profile from frame 22 on
    frames, _ = synthetic_video.render_heads(angles, trans, 128)
    message = _rejected(_write(tmp_path, "turned", frames, target.wave), models, tmp_path)
    assert "face turned away" in message and "in frames 22-109 (88 of 110)" in message


def test_no_face_at_all(models, tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 1, 1, 3), np.uint8).repeat(128, 1).repeat(128, 2)
    wave = 0.1 * rng.standard_normal(5 * 16000).astype(np.float32)
    message = _rejected(_write(tmp_path, "wall", np.repeat(frames, 25, 0), wave), models, tmp_path)
    assert "no face found" in message and "frames 0-124" in message


def test_photo_with_no_face_or_two_faces(target, models, tmp_path):
    noise = str(tmp_path / "noise.png")
    cv2.imwrite(noise, np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8))
    with pytest.raises(InputError, match="no face found in .*noise.png; the photo needs one"):
        generation.personalize_photo(noise, models)
    _, trans = synthetic_video.head_motion(1, FPS)
    other, _ = synthetic_video.render_heads(np.zeros((1, 3)), trans, 128)
    two = str(tmp_path / "two.png")
    cv2.imwrite(two, np.concatenate([target.frames[0], other[0]], 1)[..., ::-1])
    with pytest.raises(InputError, match="two.png shows 2 faces; the photo needs one face"):
        generation.personalize_photo(two, models)
    # A second face under half the size of the first does not count.
    small = cv2.resize(other[0], (40, 40), interpolation=cv2.INTER_AREA)
    pad = np.zeros((128, 48, 3), np.uint8)
    pad[44:84, 4:44] = small
    one = str(tmp_path / "one.png")
    cv2.imwrite(one, np.concatenate([target.frames[0], pad], 1)[..., ::-1])
    generation.personalization._check_one_face(one)
    assert sorted(os.listdir(tmp_path)) == ["noise.png", "one.png", "two.png"]
