"""End-to-end generation (talkingjax.generation, experiments.generate) with the shipped models on
a target video the project renders itself: the output video, the personalisation cache, the
controls, the photo mode, streaming in pieces, and bad input.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from talkingjax import audio, generation, visualize
from talkingjax.data import default_inputs
from talkingjax.errors import InputError
from talkingjax.evaluation import generation as generation_eval
from talkingjax.generation import motion, warp
from talkingjax.video import tracking
from tests import testdata

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 25.0
TUNE = generation.TuneOptions(frames=40, expression_steps=2, gan_steps=2)


@pytest.fixture(scope="module")
def target_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("target") / "target.mp4")
    truth = default_inputs.make_target_video(path, seconds=4.4, size=128, seed=3)
    return path, truth


@pytest.fixture(scope="module")
def personalized(target_video, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    models = generation.Models.default()
    target = generation.personalize(target_video[0], models, cache, TUNE)
    return models, target, cache


def test_generate_writes_the_speech_length_video_over_matched_backgrounds(
    personalized, target_video, tmp_path
):
    models, target, _ = personalized
    truth = target_video[1]
    assert target.num_frames == len(truth.frames)
    # The fit recovers the rendered head pose (a few degrees at most).
    err = np.degrees(np.abs(target.pose[:, :3] - truth.pose[:, :3]))
    assert np.median(err) < 3.0
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 3.0))
    out, side = str(tmp_path / "out.mp4"), str(tmp_path / "side.mp4")
    result = generation.generate(wave, target, models, out, side_by_side=side)
    frames = audio.num_video_frames(3.0, FPS)
    assert result.num_frames == frames == 75
    streams = generation_eval.streams(out)
    assert int(streams["video"]["nb_frames"]) == frames
    assert (int(streams["video"]["width"]), int(streams["video"]["height"])) == (128, 128)
    assert abs(float(streams["audio"]["duration"]) - 3.0) < 1.5 / FPS
    assert int(generation_eval.streams(side)["video"]["width"]) == 256  # target | output
    # Every output frame sits on a frame of the target, in that frame's head position, turned
    # to the predicted angles (blend 0, the default), each turn scaled by the turn gain.
    assert result.background.min() >= 0 and result.background.max() < target.num_frames
    np.testing.assert_allclose(result.pose[:, 3:], target.pose[result.background, 3:], atol=1e-6)
    own = target.pose[result.background, :3]
    np.testing.assert_allclose(
        result.pose[:, :3],
        warp.overturn(result.predicted_pose[:, :3], own, warp.TURN_GAIN),
        atol=1e-6,
    )
    assert result.exp.shape == (frames, target.coeffs.exp.shape[-1])
    # Off the face the output is the background frame (the paste only touches the face).
    decoded = np.stack(list(tracking.read_frames(out)))
    back = np.stack(target.frames())[result.background]
    corner = np.abs(decoded[:, :24, :24].astype(int) - back[:, :24, :24].astype(int))
    assert corner.mean() < 4.0
    assert sorted(os.listdir(tmp_path)) == ["out.mp4", "s.wav", "side.mp4"]


def test_personalisation_is_cached_by_video_content(personalized, target_video, monkeypatch):
    models, target, cache = personalized
    from talkingjax.data import preprocess
    from talkingjax.train import expression, gan

    def fail(*args, **kwargs):
        raise AssertionError("the cached personalisation was recomputed")

    for module, name in ((preprocess, "preprocess_video"), (expression, "train"), (gan, "train")):
        monkeypatch.setattr(module, name, fail)
    again = generation.personalize(target_video[0], models, cache, TUNE)
    assert (again.gan, again.expression) == (target.gan, target.expression)
    np.testing.assert_array_equal(again.pattern, target.pattern)
    # Other tuning options are another personalisation (and would train).
    with pytest.raises(AssertionError, match="recomputed"):
        generation.personalize(target_video[0], models, cache, generation.TuneOptions(40, 3, 2))


def test_a_target_without_speech_keeps_the_general_expression_model(
    personalized, target_video, tmp_path
):
    models, _, cache = personalized
    silent = str(tmp_path / "silent.mp4")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", target_video[0], "-an", "-c:v", "copy", silent],
        check=True,
    )
    target = generation.personalize(silent, models, cache, generation.TuneOptions(40, 2, 0))
    assert target.expression == models.expression and target.pattern is not None


def test_pose_prediction_is_led_in_by_the_reversed_speech(personalized, tmp_path, monkeypatch):
    # The decoder sees LEAD_SECONDS of the speech backwards first; those frames are dropped, so
    # frame k is still the speech's frame k: the same as predicting the led-in speech without a
    # lead and dropping the lead's frames by hand.
    models, target, _ = personalized
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 3.0, seed=2))
    led = motion.predict_pose(models, wave, target.pattern, FPS, 75)
    lead = int(motion.LEAD_SECONDS * audio.SAMPLE_RATE)
    frames = int(round(motion.LEAD_SECONDS * FPS))
    monkeypatch.setattr(motion, "LEAD_SECONDS", 0.0)
    by_hand = np.concatenate([wave[:lead][::-1], wave])
    plain = motion.predict_pose(models, by_hand, target.pattern, FPS, 75 + frames)
    np.testing.assert_allclose(led, plain[frames:], atol=1e-5)
    assert led.shape == (75, 6)
    assert not np.allclose(led, motion.predict_pose(models, wave, target.pattern, FPS, 75)[:75])


def test_controls_change_the_motion(personalized, tmp_path):
    models, target, _ = personalized
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 6.0, seed=2))
    frames = audio.num_video_frames(6.0, FPS)
    still = generation.plan_motion(target, np.zeros((frames, 6)), generation.Controls(still=True))
    assert len(set(still.indices.tolist())) == 1
    base = generation.predict_pose(models, wave, target.pattern, FPS, frames)
    other = generation.motion_pattern(models, target.pose, FPS, seed=5)
    assert not np.allclose(other, target.pattern)
    moved = generation.predict_pose(models, wave, other, FPS, frames)
    assert np.abs(moved - base).mean() > 1e-4
    assert base.shape == (frames, 6) and np.isfinite(base).all()


def test_predictions_stream_in_cross_faded_pieces(personalized, monkeypatch):
    # _stitch reassembles pieces exactly when they agree, and fades where they do not.
    truth = np.sin(np.arange(400) / 9.0)[:, None]
    monkeypatch.setattr(motion, "_PIECE_SECONDS", 4.0)
    monkeypatch.setattr(motion, "_OVERLAP_SECONDS", 1.0)
    pieces = list(motion._pieces(400, FPS))
    assert pieces == [(0, 100), (75, 175), (150, 250), (225, 325), (300, 400)]
    np.testing.assert_allclose(motion._stitch(400, FPS, lambda a, b: truth[a:b]), truth)
    offset = motion._stitch(400, FPS, lambda a, b: truth[a:b] + a / 100)
    assert np.abs(np.diff(offset[:, 0])).max() < 0.2  # no jump at the piece boundaries
    # Long speech: the pose and expression predictions come in pieces of the right length.
    models, target, _ = personalized
    wave = 0.1 * np.sin(np.arange(int(11.3 * 16000)) / 7.0).astype(np.float32)
    frames = audio.num_video_frames(11.3, FPS)
    assert generation.predict_pose(models, wave, target.pattern, FPS, frames).shape == (frames, 6)
    exp = generation.predict_expression(target.expression, wave, FPS, frames)
    assert exp.shape == (frames, target.coeffs.exp.shape[-1]) and np.isfinite(exp).all()


def test_photo_mode_keeps_the_photo_pose(target_video, tmp_path):
    import cv2

    photo = str(tmp_path / "photo.png")
    cv2.imwrite(photo, target_video[1].frames[0][..., ::-1])
    models = generation.Models.default()
    target = generation.personalize_photo(photo, models)
    assert target.pattern is None and target.num_frames == 1
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    result = generation.generate(wave, target, models, str(tmp_path / "out.mp4"))
    assert result.num_frames == 30 and (result.background == 0).all()
    assert np.ptp(result.pose, axis=0).max() == 0
    # The GAN's self-ensemble (mirror) reaches the refiner: other pixels, same motion.
    mirrored = str(tmp_path / "mirrored.mp4")
    again = generation.generate(
        wave, target, models, mirrored, generation.Controls(ensemble_shift=0)
    )
    np.testing.assert_array_equal(again.pose, result.pose)
    one, two = (np.stack(list(tracking.read_frames(p))) for p in (result.path, mirrored))
    assert one.shape == two.shape and not np.array_equal(one, two)
    # Pasting the mouth region only: the eyes are the photo's own, the mouth is generated.
    mouth = str(tmp_path / "mouth.mp4")
    generation.generate(wave, target, models, mouth, generation.Controls(region="mouth"))
    three = np.stack(list(tracking.read_frames(mouth))).astype(float)
    points = target_video[1].landmarks[0]

    def around(frames, idx):  # 7 x 7 px around the mean of MediaPipe points `idx`
        x, y = points[idx].mean(0).round().astype(int)
        return frames[:, y - 3 : y + 4, x - 3 : x + 4]

    photo_frame = target_video[1].frames[0][None].astype(float)
    eye, lips = [33, 133], [13, 14]
    assert np.abs(around(three, eye) - around(photo_frame, eye)).mean() < 4  # + the codec
    np.testing.assert_allclose(around(three, lips), around(one.astype(float), lips), atol=12)


def test_bad_inputs_are_named_and_leave_nothing(personalized, tmp_path):
    models, target, cache = personalized
    text = tmp_path / "not_a_video.mp4"
    text.write_text("hello")
    with pytest.raises(InputError):
        generation.personalize(str(text), models, cache, TUNE)
    # A readable talking video without a face: named, and nothing is cached for it.
    faceless = str(tmp_path / "faceless.mp4")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 1, 1, 3), np.uint8).repeat(64, 1).repeat(64, 2)
    noise = 0.1 * rng.standard_normal(5 * 16000).astype(np.float32)
    visualize.write_video(faceless, np.repeat(frames, 25, 0), FPS, audio=noise)
    with pytest.raises(InputError, match="face"):
        generation.personalize(faceless, models, cache, TUNE)
    os.remove(faceless)
    assert not any(".tmp" in n for r, ds, fs in os.walk(cache) for n in ds + fs)
    wave = audio.load_audio(testdata.write_wav(str(tmp_path / "s.wav"), 1.2))
    with pytest.raises(InputError, match="does not exist"):
        generation.generate(wave, target, models, str(tmp_path / "no" / "out.mp4"))
    with pytest.raises(InputError, match="silent"):
        generation.generate(np.zeros(32000, np.float32), target, models, str(tmp_path / "o.mp4"))
    with pytest.raises(InputError, match="pose scale"):
        controls = generation.Controls(pose_scale=float("nan"))
        generation.generate(wave, target, models, str(tmp_path / "o.mp4"), controls)
    assert sorted(os.listdir(tmp_path)) == ["not_a_video.mp4", "s.wav"]


def test_cli_errors_are_one_line(tmp_path):
    speech = testdata.write_wav(str(tmp_path / "s.wav"), 1.2)
    cases = [
        ["--audio", str(tmp_path / "missing.wav"), "--video", speech],
        ["--audio", speech],
        ["--audio", speech, "--video", str(tmp_path / "missing.mp4")],
        ["--audio", speech, "--video", speech, "--gan_ensemble_shift", "-3"],
    ]
    for args in cases:
        out = str(tmp_path / "out.mp4")
        proc = subprocess.run(
            [sys.executable, "-m", "experiments.generate", *args, "--out", out],
            capture_output=True, text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
        assert len(lines) == 1, proc.stderr
        assert not os.path.exists(out)
