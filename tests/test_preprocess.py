"""Tests of video preprocessing: clip discovery, resumable atomic runs, the CLI, end to end.

Most tests replace tracking and fitting with small fakes (the "videos" are then wav files
named .mp4: ffmpeg reads them by content, so the real audio path runs); the end-to-end test
runs the real pipeline on a rendered head video with known pose.
"""

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.ndimage
import soundfile
import testdata

from talkingjax import audio
from talkingjax.data import coeff257, preprocess, records, sampling
from talkingjax.errors import InputError
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import default
from talkingjax.video import reconstruct, tracking

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 25.0
LAYOUT = coeffs_lib.Layout(4, 3, 2)


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


def _write_wav(path, seconds, seed=0, silence=False, hiss=0.0):
    """`testdata.write_wav`; or zeros (`silence`), or white noise of RMS `hiss` only."""
    testdata.write_wav(path, seconds, seed=seed)
    if silence or hiss:
        n = int(seconds * audio.SAMPLE_RATE)
        wave = hiss * np.random.default_rng(seed).standard_normal(n)
        soundfile.write(path, wave.astype(np.float32), audio.SAMPLE_RATE, format="WAV")
    return path


def _fake_pose(t, seed):
    k = np.arange(t)[:, None] / FPS
    pose = 0.1 * np.sin(2 * np.pi * (0.3 + 0.1 * seed) * k + np.arange(6))
    pose[:, 5] -= 1.5
    return pose.astype(np.float32)


class FakePipeline:
    """Tracking and fitting replaced by fakes; a "video" is a wav file (any name).

    Each fake video has T = floor(seconds * 25) frames and pose `_fake_pose(T, seed)`, the seed
    being the number in its clip name (or 0). `fail` maps file names to exceptions raised by
    the fit; `no_audio` names files whose probe reports no audio track.
    """

    def __init__(self, monkeypatch):
        self.fit_calls = []
        self.track_calls = []
        self.current = None  # the video being processed (the fit only sees its crops)
        self.fail: dict[str, Exception] = {}
        self.no_audio: set[str] = set()
        self.frames: dict[str, np.ndarray] = {}  # decoded frames by file name (default none)
        self.face_px: dict[str, float] = {}  # tracked face size by file name (default 100)
        self.other_face: set[str] = set()  # files where the detector also sees someone else
        self.fail_track: dict[str, Exception] = {}  # raised by tracking, after decoding
        monkeypatch.setattr(tracking, "probe_video", self.probe_video)
        monkeypatch.setattr(tracking, "read_frames", self.read_frames)
        monkeypatch.setattr(preprocess, "_open_face_detector", self.face_detector)
        monkeypatch.setattr(tracking, "track_video", self.track_video)
        monkeypatch.setattr(tracking, "crop_track", self.crop_track)
        monkeypatch.setattr(tracking, "crop_video", self.crop_video)
        monkeypatch.setattr(tracking, "landmarks_in_crop", self.landmarks_in_crop)
        monkeypatch.setattr(reconstruct, "fit_video", self.fit_video)

    def probe_video(self, path, min_size=128):
        try:
            frames = round(soundfile.info(path).duration * FPS)
        except RuntimeError:
            raise InputError(f"{path} is not a video") from None
        has_audio = os.path.basename(path) not in self.no_audio
        return tracking.VideoInfo(path, FPS, frames, 256, 256, has_audio)

    def read_frames(self, path, start=0, count=None):
        return iter(self.frames.get(os.path.basename(path), ()))

    @contextlib.contextmanager
    def face_detector(self):
        def detect(rgb):
            boxes = [[78, 78, 178, 178]]  # the tracked face (see track_video)
            if self.current in self.other_face:
                boxes.append([190, 10, 250, 70])
            return np.array(boxes, np.float64)

        yield detect

    def track_video(self, path, frames=None, **kw):
        self.current = os.path.basename(path)
        self.track_calls.append(self.current)
        for _ in frames if frames is not None else ():  # decoding passes the frame scan
            pass
        if self.current in self.fail_track:
            raise self.fail_track[self.current]
        t = self.probe_video(path).num_frames
        detected = np.ones(t, bool)
        detected[1] = False
        # A square face of `face_px` pixels centred in the 256 x 256 frame.
        half = self.face_px.get(self.current, 100.0) / 2
        landmarks = np.zeros((t, 478, 3), np.float32)
        landmarks[:, 0, :2], landmarks[:, 1, :2] = 128 - half, 128 + half
        landmarks[:, 2:, :2] = 128
        return tracking.Track(landmarks, detected, FPS, (256, 256))

    def crop_track(self, track, model, size=224):
        return np.tile(np.array([256, 256, 1.0, 0, 0], np.float32), (len(track.detected), 1))

    def crop_video(self, path, params, size):
        return np.full((len(params), size, size, 3), 7, np.uint8)

    def landmarks_in_crop(self, track, params):
        return np.zeros((len(params), 478, 2), np.float32)

    def fit_video(self, model, crops, landmarks, detected, camera=None, config=None):
        t = len(crops)
        self.fit_calls.append(self.current)
        if self.current in self.fail:
            raise self.fail[self.current]
        stem = os.path.splitext(self.current)[0]
        seed = int("".join(c for c in stem if c.isdigit()) or 0)
        pose = _fake_pose(t, seed)
        c = coeffs_lib.zeros(LAYOUT, (t,))
        c = coeffs_lib.FaceCoeffs(
            id=np.asarray(c.id),
            exp=np.tile(np.arange(3, dtype=np.float32), (t, 1)) + np.arange(t)[:, None],
            tex=np.asarray(c.tex),
            angles=pose[:, :3],
            gamma=np.asarray(c.gamma),
            trans=pose[:, 3:],
        )
        return reconstruct.VideoFit(
            coeffs=c,
            pose=pose,
            landmark_rmse_px=np.ones(t, np.float32),
            photometric=np.r_[np.nan, np.full(t - 1, 0.05)].astype(np.float32),
            detected=np.asarray(detected),
            detailed_albedo=None,
            reference_frame=0,
            crop_size=crops.shape[1],
        )


@pytest.fixture
def fake(monkeypatch):
    return FakePipeline(monkeypatch)


MODEL = object()  # the fakes never look at the model


def _run(inputs, out, **kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("progress", False)
    return preprocess.preprocess(inputs, out, **kw)


def _videos(root, names_seconds):
    for i, (name, seconds) in enumerate(names_seconds.items()):
        _write_wav(os.path.join(root, name), seconds, seed=i)
    return root


# --------------------------------------------------------------------------------- discovery


def test_discover_folder_recursive_ids_and_speakers(tmp_path):
    root = tmp_path / "in"
    for rel in [
        "top.mp4",
        "spk1/take1.mp4",
        "spk1/take2.MOV",
        "spk2/day1/x.mkv",
        "spk1/notes.txt",
        ".hidden.mp4",
        ".cache/y.mp4",
    ]:
        _touch(os.path.join(root, rel))
    specs = preprocess.discover(root, "folder", split="test")
    got = {s.clip_id: (s.video_id, s.speaker_id, s.split) for s in specs}
    assert got == {
        "top": ("top", "top", "test"),
        "spk1__take1": ("spk1__take1", "spk1", "test"),
        "spk1__take2": ("spk1__take2", "spk1", "test"),
        "spk2__day1__x": ("spk2__day1__x", "spk2__day1", "test"),
    }
    assert [s.clip_id for s in specs] == sorted(got)
    assert specs[0].video_path.endswith(os.path.join("spk1", "take1.mp4"))


def test_discover_folder_single_file_and_errors(tmp_path):
    one = _touch(tmp_path / "talk.webm")
    (spec,) = preprocess.discover(one, "folder")
    assert (spec.clip_id, spec.video_id, spec.speaker_id, spec.split) == (
        "talk",
        "talk",
        "talk",
        "train",
    )
    with pytest.raises(InputError, match="input not found"):
        preprocess.discover(tmp_path / "nope", "folder")
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match="no videos"):
        preprocess.discover(tmp_path / "empty", "folder")
    _touch(tmp_path / "dup" / "a.mp4")
    _touch(tmp_path / "dup" / "a.mov")
    with pytest.raises(InputError, match="both be clip 'a'"):
        preprocess.discover(tmp_path / "dup", "folder")
    with pytest.raises(InputError, match="unknown layout"):
        preprocess.discover(tmp_path / "dup", "vox")


def _lrw(root):
    for word in ("ABOUT", "ZERO"):
        for split in ("train", "val", "test"):
            for k in (1, 2):
                _touch(os.path.join(root, "lipread_mp4", word, split, f"{word}_{k:05d}.mp4"))
                _touch(os.path.join(root, "lipread_mp4", word, split, f"{word}_{k:05d}.txt"))
    _touch(os.path.join(root, "lipread_mp4", "README.mp4"))  # not in a WORD/split dir
    return root


def test_discover_lrw(tmp_path):
    root = _lrw(tmp_path / "lrw")
    specs = preprocess.discover(root, "lrw")
    assert len(specs) == 12
    s = {x.clip_id: x for x in specs}["ABOUT__val__ABOUT_00002"]
    assert (s.video_id, s.speaker_id, s.split) == ("ABOUT__val__ABOUT_00002", "ABOUT", "val")
    assert s.video_path.endswith(os.path.join("ABOUT", "val", "ABOUT_00002.mp4"))
    # The lipread_mp4 directory itself works as well; splits can be chosen.
    only = preprocess.discover(root / "lipread_mp4", "lrw", splits=["test"])
    assert [x.clip_id for x in only] == [
        "ABOUT__test__ABOUT_00001",
        "ABOUT__test__ABOUT_00002",
        "ZERO__test__ZERO_00001",
        "ZERO__test__ZERO_00002",
    ]
    with pytest.raises(InputError, match="unknown LRW split"):
        preprocess.discover(root, "lrw", splits=["dev"])
    (tmp_path / "flat").mkdir()
    _touch(tmp_path / "flat" / "ABOUT_00001.mp4")
    with pytest.raises(InputError, match="no LRW clips"):
        preprocess.discover(tmp_path / "flat", "lrw")


# ------------------------------------------------------------------------ runs (with fakes)


def test_run_writes_loadable_dataset(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 5.0, "spk/b2.mp4": 4.6})
    out = tmp_path / "out"
    run = _run(src, out, save_crops=True)
    assert run.totals | {"seconds": 0} == {
        "clips": 2,
        "ok": 2,
        "done": 0,
        "skipped": 0,
        "not_run": 0,
        "internal_errors": 0,
        "manifest_clips": 2,
        "manifest_short_clips": 0,
        "manifest_silent_clips": 0,
        "skip_kinds": {},
        "seconds": 0,
    }
    clips = {c.clip_id: c for c in records.load_dataset(out)}
    assert set(clips) == {"a1", "spk__b2"}
    b = clips["spk__b2"]
    assert (b.video_id, b.speaker_id, b.split, b.fps) == ("spk__b2", "spk", "train", FPS)
    # Pose and MFCC are trimmed to each other exactly as the coefficient import does.
    feats = audio.speech_features(audio.load_audio(src / "spk" / "b2.mp4"))
    want_pose, want_mfcc = coeff257.align_to_audio(
        _fake_pose(115, 2), feats, FPS, "x", "y", min_seconds=0
    )
    np.testing.assert_array_equal(b.pose, want_pose)
    np.testing.assert_array_equal(b.mfcc, want_mfcc)
    assert audio.frames_in_features(len(b.mfcc), FPS) == b.num_frames
    with np.load(out / "clips" / "spk__b2.npz") as z:
        assert z["exp"].shape == (b.num_frames, 3)
        assert str(z["speaker_id"]) == "spk"
    coeffs, params = coeffs_lib.read_mat(out / "coeffs" / "spk__b2.mat", LAYOUT)
    assert coeffs.batch_shape == (115,) and params.shape == (115, 5)
    with np.load(out / "crops" / "a1.npz") as z:
        assert z["crops"].shape == (125, 224, 224, 3) and z["crops"].dtype == np.uint8
    rep = json.loads((out / "reports" / "a1.json").read_text())
    assert rep["status"] == "ok" and rep["head_motion"] is True
    assert rep["tracking"]["lost_frames"] == 1 and rep["tracking"]["lost_frame_indices"] == [1]
    assert rep["fit"]["photometric_mae_mean"] == pytest.approx(0.05)
    assert {"probe", "audio", "track", "crop", "fit", "write", "total"} <= set(rep["timings"])
    report = json.loads((out / "report.json").read_text())
    assert [c["status"] for c in report["clips"]] == ["ok", "ok"]
    # Nothing temporary is left behind.
    leftovers = [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]
    assert leftovers == []


def test_resume_skips_finished_and_redoes_interrupted(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2, "b2.mp4": 4.2, "c3.mp4": 4.2})
    out = tmp_path / "out"
    _run(src, out)
    assert len(fake.fit_calls) == 3
    first = (out / "clips" / "a1.npz").stat().st_mtime_ns

    run = _run(src, out)
    assert len(fake.fit_calls) == 3  # no work repeated
    assert [r.status for r in run.results] == ["done"] * 3
    assert run.totals["manifest_clips"] == 3
    assert (out / "clips" / "a1.npz").stat().st_mtime_ns == first

    # An interrupted b2: its record is gone, temporary files and an old .mat are left.
    os.remove(out / "clips" / "b2.npz")
    (out / "clips" / "b2.npz.deadbeef.tmp").write_bytes(b"partial")
    (out / "coeffs" / "b2.mat.cafe0123.tmp").write_bytes(b"partial")
    run = _run(src, out)
    assert len(fake.fit_calls) == 4
    assert [r.status for r in run.results] == ["done", "ok", "done"]
    assert sorted(os.listdir(out / "clips")) == ["a1.npz", "b2.npz", "c3.npz"]
    assert sorted(os.listdir(out / "coeffs")) == ["a1.mat", "b2.mat", "c3.mat"]
    assert len(records.load_dataset(out)) == 3


def test_failing_clip_leaves_no_outputs_and_run_goes_on(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2, "b2.mp4": 4.2, "c3.mp4": 4.2})
    out = tmp_path / "out"
    # An earlier attempt at b2 was interrupted after writing its coefficients.
    os.makedirs(out / "coeffs")
    (out / "coeffs" / "b2.mat").write_bytes(b"old")
    fake.fail["b2.mp4"] = InputError("b2.mp4: no face found")
    fake.fail["c3.mp4"] = RuntimeError("boom")
    run = _run(src, out)
    assert [(r.clip_id, r.status) for r in run.results] == [
        ("a1", "ok"),
        ("b2", "skipped"),
        ("c3", "skipped"),
    ]
    assert run.results[1].reason == "b2.mp4: no face found"
    assert run.results[2].reason == "internal error: RuntimeError: boom"
    assert run.totals["internal_errors"] == 1
    for name in ("b2", "c3"):
        assert not (out / "clips" / f"{name}.npz").exists()
        assert not (out / "coeffs" / f"{name}.mat").exists()
    rep = json.loads((out / "reports" / "c3.json").read_text())
    assert rep["status"] == "skipped" and "RuntimeError: boom" in rep["traceback"]
    report = json.loads((out / "report.json").read_text())
    assert report["clips"][1] == {
        "clip_id": "b2",
        "status": "skipped",
        "reason": "b2.mp4: no face found",
        "kind": "no face",
        "timings": report["clips"][1]["timings"],
    }
    assert [c.clip_id for c in records.load_dataset(out)] == ["a1"]

    # Without retry_failed the failures are not rerun; by default they are.
    calls = len(fake.fit_calls)
    run = _run(src, out, retry_failed=False)
    assert len(fake.fit_calls) == calls
    assert run.results[1].reason.startswith("failed in an earlier run: b2.mp4: no face found")
    fake.fail.clear()
    run = _run(src, out)
    assert [r.status for r in run.results] == ["done", "ok", "ok"]
    assert len(records.load_dataset(out)) == 3


def test_no_audio_track_is_a_skip_reason_without_silent_clips(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2})
    _write_wav(src / "b2.mp4", 4.2, silence=True)
    fake.no_audio.add("a1.mp4")
    run = _run(src, tmp_path / "out", silent_clips=False)
    assert [(r.status, r.kind) for r in run.results] == [
        ("skipped", "no audio track"),
        ("skipped", "silent audio"),
    ]
    assert "no audio track" in run.results[0].reason
    assert run.results[1].reason.endswith("audio is silent")
    assert fake.fit_calls == []  # rejected before the expensive stages
    assert run.totals["skip_kinds"] == {"no audio track": 1, "silent audio": 1}


def test_videos_without_audio_become_records_without_speech(tmp_path, fake):
    """No audio track / silent audio: fitted, a record with pose + exp and no MFCC rows."""
    src = _videos(tmp_path / "in", {"a1.mp4": 4.4, "c3.mp4": 2.0, "d4.mp4": 4.2})
    _write_wav(src / "b2.mp4", 5.0, silence=True)
    fake.no_audio |= {"a1.mp4", "c3.mp4"}
    out = tmp_path / "out"
    run = _run(src, out)
    got = {r.clip_id: (r.status, r.audio, r.head_motion, r.record_frames) for r in run.results}
    assert got == {
        "a1": ("ok", "silent (no audio track)", True, 110),  # every video frame
        "b2": ("ok", "silent (audio is silent)", True, 125),
        "c3": ("ok", "silent (no audio track)", False, 50),
        "d4": ("ok", "speech", True, got["d4"][3]),
    }
    assert "record without speech" in run.results[0].reason
    assert run.totals["manifest_silent_clips"] == 3 and run.totals["manifest_clips"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["clip_id"] for e in manifest["clips"]] == ["d4"]
    assert [e["clip_id"] for e in manifest["silent_clips"]] == ["a1", "b2", "c3"]
    assert all(e["has_audio"] is False for e in manifest["silent_clips"])
    assert manifest["short_clips"] == []
    # Records without speech are read only on request, and only those long enough.
    assert [c.clip_id for c in records.load_dataset(out)] == ["d4"]
    clips = {c.clip_id: c for c in records.load_dataset(out, silent=True)}
    assert list(clips) == ["d4", "a1", "b2"]
    a1 = clips["a1"]
    assert not a1.has_audio and clips["d4"].has_audio
    assert a1.mfcc.shape == (0, 13) and a1.exp.shape == (110, 3)
    np.testing.assert_array_equal(a1.pose, _fake_pose(110, 1))
    rep = json.loads((out / "reports" / "b2.json").read_text())
    assert rep["audio"] == "silent (audio is silent)" and rep["record_frames"] == 125
    # The manifest is rebuilt from the files alone just the same.
    os.remove(out / "manifest.json")
    assert preprocess.rebuild_manifest(out)[2] == manifest["silent_clips"]
    # Consumers of speech refuse them with a clear message.
    with pytest.raises(InputError, match="a1 has no speech.*triplet sampling needs the audio"):
        sampling.prepare_videos([a1], FPS)
    with pytest.raises(InputError, match="expression training needs the audio"):
        sampling.prepare_expression_clips([a1], FPS, 3)
    with pytest.raises(InputError, match="pose window sampling needs the audio"):
        sampling.PoseWindowSampler([a1], FPS, 25, seed=0)


# ------------------------------------------------------------------------------- screening


def _textured(size, seed, t):
    """A smooth random texture [size, size, 3] uint8 drifting with time t (pixels, < 100)."""
    rng = np.random.default_rng(seed)
    base = scipy.ndimage.gaussian_filter(rng.uniform(0, 255, (size, size + 100, 3)), (6, 6, 0))
    base = np.clip((base - base.mean()) / base.std() / 3 + 0.5, 0, 1) * 255  # contrasted
    tint = np.array([[1.0, 0.6, 0.3], [0.3, 0.7, 1.0]])[seed % 2]  # scenes differ in colour
    return (base[:, t : t + size] * tint).astype(np.uint8)


def _cut_frames(n, cut, size=64):
    """n frames of a slowly drifting texture; from frame `cut` on, another scene."""
    return np.stack([_textured(size, 0 if t < cut else 1, t) for t in range(n)])


def test_find_cuts_known_answer():
    cfg = preprocess.ScreenConfig()
    diff = np.full(60, 0.01)
    hist = np.full(60, 0.02)
    diff[29], hist[29] = 0.3, 0.5  # frames 29 -> 30 change scene
    np.testing.assert_array_equal(preprocess.find_cuts(diff, hist, 25.0, cfg), [30])
    # The same jump in the histogram alone (a light switched on) or in the thumbnails alone
    # (a fast motion that keeps the colours) is not a cut.
    assert preprocess.find_cuts(diff, np.full(60, 0.02), 25.0, cfg).size == 0
    d2 = diff.copy()
    d2[29] = 0.01
    assert preprocess.find_cuts(d2, hist, 25.0, cfg).size == 0
    # A large difference within a run of large differences (shaking camera) is not a jump.
    shaky = np.full(60, 0.1)
    shaky[29] = 0.3
    assert preprocess.find_cuts(shaky, hist, 25.0, cfg).size == 0
    assert preprocess.find_cuts(np.zeros(0), np.zeros(0), 25.0, cfg).size == 0


def test_frame_scan_finds_the_cut_of_an_encoded_video(tmp_path):
    """A synthetic H.264 video with a cut at frame 20: decoded, scanned, the cut found."""
    import synthetic_video

    path = tmp_path / "cut.mp4"
    synthetic_video.write_video(path, _cut_frames(40, 20), FPS)
    cfg = preprocess.ScreenConfig(face_samples_per_second=0)
    scan = preprocess.FrameScan(FPS, cfg)
    assert sum(1 for _ in scan.frames(tracking.read_frames(str(path)))) == 40
    assert scan.num_frames == 40 and len(scan.diff) == 39
    np.testing.assert_array_equal(preprocess.find_cuts(scan.diff, scan.hist_dist, FPS, cfg), [20])
    # The same drift without the cut: nothing.
    synthetic_video.write_video(path, _cut_frames(40, 99), FPS)
    scan = preprocess.FrameScan(FPS, cfg)
    list(scan.frames(tracking.read_frames(str(path))))
    assert preprocess.find_cuts(scan.diff, scan.hist_dist, FPS, cfg).size == 0


def test_face_sizes_and_other_faces():
    lm = np.zeros((3, 4, 2))
    lm[:, 1] = [40, 90]  # a 40 x 90 box from (0, 0): size 60
    np.testing.assert_allclose(preprocess.face_sizes(lm, [True, False, True]), [60.0, np.nan, 60.0])
    own = [0, 0, 40, 90]
    samples = [
        (0, np.array([own, [100, 0, 130, 30]])),  # another face, 30 >= 0.5 * 60
        (1, np.array([own, [100, 0, 130, 30]])),  # not judged: the tracked face was lost
        (2, np.array([[2, 2, 38, 88], [100, 0, 110, 10]])),  # own box (IoU) + a tiny face
    ]
    hits, judged = preprocess.other_face_frames(samples, lm, [True, False, True], 0.5)
    assert hits == [0] and judged == 2
    # Sizes are compared with the detector's box of the tracked face when it has one.
    small_own = [(0, np.array([[10, 10, 30, 30], [100, 0, 120, 20]]))]
    assert preprocess.other_face_frames(small_own, lm[:1], [True], 0.9)[0] == [0]


def test_screening_rejects_before_the_fit(tmp_path, fake):
    """Too short, face too small, several faces, a cut: skipped with reason and kind."""
    src = _videos(
        tmp_path / "in",
        {"a1.mp4": 4.2, "b2.mp4": 0.6, "c3.mp4": 4.2, "d4.mp4": 4.2, "e5.mp4": 4.2},
    )
    fake.face_px["c3.mp4"] = 30.0
    fake.other_face.add("d4.mp4")
    fake.frames["d4.mp4"] = _cut_frames(60, 99, size=32)  # sampled for faces, no cut
    fake.frames["e5.mp4"] = _cut_frames(40, 25, size=64)
    out = tmp_path / "out"
    run = _run(src, out)
    got = {r.clip_id: (r.status, r.kind) for r in run.results}
    assert got == {
        "a1": ("ok", None),
        "b2": ("skipped", "too short"),
        "c3": ("skipped", "face too small"),
        "d4": ("skipped", "several faces"),
        "e5": ("skipped", "cut"),
    }
    reasons = {r.clip_id: r.reason for r in run.results}
    assert "too short: 15 frames (0.60 s), at least 1 s needed" in reasons["b2"]
    assert "face too small: 30 px" in reasons["c3"]
    assert "several faces" in reasons["d4"] and "in 5 of 5 sampled frames" in reasons["d4"]
    assert "a cut (scene change) at frame 25 (1.00 s)" in reasons["e5"]
    assert fake.fit_calls == ["a1.mp4"]
    assert "b2.mp4" not in fake.track_calls  # too short: rejected at the probe
    rep = json.loads((out / "reports" / "e5.json").read_text())
    assert rep["kind"] == "cut" and rep["screen"]["cuts"] == [25]
    assert json.loads((out / "reports" / "c3.json").read_text())["screen"][
        "face_size_px_median"
    ] == pytest.approx(30.0)
    ok = json.loads((out / "reports" / "a1.json").read_text())
    assert ok["screen"]["version"] == preprocess.SCREEN_VERSION and ok["audio"] == "speech"
    assert ok["screen"]["face_size_px_median"] == pytest.approx(100.0)
    assert run.totals["skip_kinds"] == {
        "cut": 1,
        "face too small": 1,
        "several faces": 1,
        "too short": 1,
    }
    assert "skipped: cut 1, face too small 1" in run.summary()
    for name in ("b2", "c3", "d4", "e5"):
        assert not (out / "coeffs" / f"{name}.mat").exists()


def test_cut_that_loses_the_face_is_reported_as_a_cut(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2, "b2.mp4": 4.2})
    for name in ("a1.mp4", "b2.mp4"):
        fake.fail_track[name] = InputError(f"{src / name}: face lost in frames 25-39 (15 of 40)")
    fake.frames["a1.mp4"] = _cut_frames(40, 25, size=64)
    run = _run(src, tmp_path / "out")
    assert [r.kind for r in run.results] == ["cut", "face lost"]
    assert run.results[0].reason == (
        f"{src / 'a1.mp4'}: a cut (scene change) at frame 25 (1.00 s) "
        "(face lost in frames 25-39 (15 of 40))"
    )


def test_landmark_steps():
    lm = np.zeros((4, 3, 2))
    lm[:, 1] = [10.0, 10.0]  # face size 10
    lm[2:] += 2.0  # all points move by (2, 2) between frames 1 and 2
    steps = preprocess.landmark_steps(lm, [True, True, True, True])
    np.testing.assert_allclose(steps, [0, np.hypot(2, 2) / 10, 0])
    np.testing.assert_allclose(preprocess.landmark_steps(lm, [True, False, True, True]), 0)
    assert preprocess.landmark_steps(lm[:1], [True]).size == 0


def test_skip_kinds_of_known_reasons():
    kinds = {
        "x.mp4: audio is 0.90 s long, at least 1.0 s needed": "too short",
        "x.mp4 has irregular frame timestamps (frame 109 is +40 ms off a constant 25.000 fps); "
        "re-encode it": "irregular frame rate",
        "x.mp4 has a variable frame rate (nominal 30.000 fps, average 22.131 fps)": (
            "irregular frame rate"
        ),
        "x.mov: face lost in frames 318-437 (120 of 681); accepted are": "face lost",
        "no face found in x.mp4": "no face",
        "x.mp4: no audio track (the records need the speech)": "no audio track",
        "x.mp4: audio is silent": "silent audio",
        "x.mp4 is not a video (no video stream)": "unreadable",
        "internal error: RuntimeError: boom": "internal error",
        "x.mp4: 100 pose frames (4.00 s at 25.0 fps) but the audio x.mp4 covers": (
            "audio and video lengths differ"
        ),
        "something new": "other",
    }
    assert {r: preprocess.skip_kind(r) for r in kinds} == kinds


def test_recheck_screens_finished_clips_without_refitting(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2, "b2.mp4": 4.2})
    out = tmp_path / "out"
    _run(src, out, save_crops=True)
    # As if made before the screening existed: reports without a "screen" section.
    for name in ("a1", "b2"):
        path = out / "reports" / f"{name}.json"
        rep = json.loads(path.read_text())
        del rep["screen"], rep["audio"]
        path.write_text(json.dumps(rep))
    fake.frames["b2.mp4"] = _cut_frames(40, 25, size=64)  # b2 turns out to have a cut
    run = _run(src, out)  # without recheck: finished clips are taken as they are
    assert [r.status for r in run.results] == ["done", "done"]
    assert not preprocess.is_screened(out, "a1")
    run = _run(src, out, recheck=True)
    assert [(r.status, r.kind) for r in run.results] == [("done", None), ("skipped", "cut")]
    assert run.results[0].reason == "rechecked: passes the screening"
    assert fake.fit_calls == ["a1.mp4", "b2.mp4"]  # no refit
    assert preprocess.is_screened(out, "a1")
    assert json.loads((out / "reports" / "a1.json").read_text())["audio"] == "speech"
    for kind in ("clips", "coeffs", "crops"):
        assert not list((out / kind).glob("b2.*")), kind
    rep = json.loads((out / "reports" / "b2.json").read_text())
    assert rep["status"] == "skipped" and rep["rechecked"] is True and rep["kind"] == "cut"
    assert [c.clip_id for c in records.load_dataset(out)] == ["a1"]
    # Screened clips are not rechecked again; the rejected one stays rejected.
    tracked = len(fake.track_calls)
    run = _run(src, out, recheck=True)
    assert [r.status for r in run.results] == ["done", "skipped"]
    assert len(fake.track_calls) == tracked + 1  # b2 retried (retry_failed), a1 not


def test_short_clips_are_written_but_not_head_motion_records(tmp_path, fake):
    """LRW-like 1.2 s clips: coefficients and a record, listed under short_clips."""
    src = _videos(tmp_path / "in", {"long1.mp4": 4.3, "short2.mp4": 1.2})
    out = tmp_path / "out"
    run = _run(src, out)
    by_id = {r.clip_id: r for r in run.results}
    assert by_id["short2"].status == "ok" and by_id["short2"].head_motion is False
    assert "shorter than 4 s" in by_id["short2"].reason
    assert by_id["long1"].head_motion is True
    assert (out / "coeffs" / "short2.mat").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["clip_id"] for e in manifest["clips"]] == ["long1"]
    assert [e["clip_id"] for e in manifest["short_clips"]] == ["short2"]
    assert manifest["short_clips"][0]["num_frames"] == 30
    assert [c.clip_id for c in records.load_dataset(out)] == ["long1"]
    entry = json.loads((out / "report.json").read_text())["clips"][1]
    assert entry["head_motion"] is False and "shorter than 4 s" in entry["note"]
    with np.load(out / "clips" / "short2.npz") as z:
        assert z["pose"].shape == (30, 6)
        assert audio.frames_in_features(len(z["mfcc"]), FPS) == 30


def test_manifest_is_rebuilt_from_clip_files(tmp_path, fake):
    out = tmp_path / "out"
    _run(_videos(tmp_path / "in1", {"a1.mp4": 4.2}), out)
    _run(_videos(tmp_path / "in2", {"b2.mp4": 4.2}), out)  # another input, same dataset
    assert [c.clip_id for c in records.load_dataset(out)] == ["a1", "b2"]
    os.remove(out / "manifest.json")  # e.g. killed before the end of a run
    entries, short, silent = preprocess.rebuild_manifest(out)
    assert [e["clip_id"] for e in entries] == ["a1", "b2"] and short == silent == []
    assert [c.clip_id for c in records.load_dataset(out)] == ["a1", "b2"]


def test_pose_sigma_smooths_the_record_but_not_the_coefficients(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2})
    out = tmp_path / "out"
    _run(src, out, pose_sigma=2.0)
    (clip,) = records.load_dataset(out)
    raw = _fake_pose(105, 1)
    want = reconstruct.smooth_pose(raw, 2.0)[: clip.num_frames]
    np.testing.assert_allclose(clip.pose, want, atol=1e-6)
    coeffs, _ = coeffs_lib.read_mat(out / "coeffs" / "a1.mat", LAYOUT)
    np.testing.assert_allclose(coeffs.angles, raw[:, :3], atol=1e-6)


def test_bad_arguments(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2})
    with pytest.raises(InputError, match="unknown layout"):
        _run(src, tmp_path / "out", layout="vox")
    with pytest.raises(InputError, match="only for the coeff layout"):
        _run(src, tmp_path / "out", fps=25.0)
    with pytest.raises(InputError, match="workers"):
        _run(src, tmp_path / "out", workers=0)
    with pytest.raises(InputError, match="face model not found"):
        _run(src, tmp_path / "out", model=str(tmp_path / "nope.npz"))
    assert not (tmp_path / "out").exists()


def test_report_json_has_no_nan():
    got = preprocess._jsonable({"a": np.float32(np.nan), "b": np.arange(2), "c": (np.inf, 1.5)})
    assert json.dumps(got, allow_nan=False) == '{"a": null, "b": [0, 1], "c": [null, 1.5]}'


def test_progress_line(tmp_path, fake):
    stream = io.StringIO()
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2, "b2.mp4": 4.2})
    fake.fail["b2.mp4"] = InputError("nope")
    _run(src, tmp_path / "out", progress=stream)
    last = stream.getvalue().strip().splitlines()[-1]
    assert "2/2" in last and "failed 1" in last and "eta 0:00" in last


# ------------------------------------------------------------------------ coefficient import


def _coeff_pairs(src, names, seconds=5.0):
    os.makedirs(src, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        c = rng.normal(size=(int(seconds * FPS), 257)) * 0.1
        scipy.io.savemat(src / f"{name}.mat", {"coeff": c})
        _write_wav(str(src / f"{name}.wav"), seconds, seed=i)
    return src


def test_coeff_layout_imports_mat_and_wav_pairs(tmp_path):
    src = _coeff_pairs(tmp_path / "src", ["v1", "v2"])
    out = tmp_path / "out"
    run = preprocess.preprocess(src, out, layout="coeff", fps=FPS, split="test")
    assert run.totals["ok"] == 2 and run.totals["manifest_clips"] == 2
    clips = records.load_dataset(out, split="test")
    assert [c.clip_id for c in clips] == ["v1", "v2"]
    np.testing.assert_allclose(clips[0].pose, coeff257.load_coeff_pose(src / "v1.mat")[:125])
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "coeff" and len(report["clips"]) == 2
    with pytest.raises(InputError, match="frame rate"):
        preprocess.preprocess(src, out, layout="coeff")


# -------------------------------------------------------------------------------- the CLI


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.preprocess", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def _assert_one_line_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1, proc.stderr
    assert pattern in err_lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_text_file_as_video(tmp_path):
    bad = tmp_path / "talk.mp4"
    bad.write_text("this is not a video\n" * 50)
    proc = _cli(f"--input={bad}", f"--out={tmp_path / 'out'}")
    _assert_one_line_error(proc, "none of the 1 clip(s) could be processed")
    assert "talk:" in proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["clips"][0]["status"] == "skipped"
    assert (tmp_path / "out" / "reports" / "talk.json").exists()


def test_cli_bad_inputs(tmp_path):
    _assert_one_line_error(
        _cli(f"--input={tmp_path / 'missing'}", f"--out={tmp_path / 'o'}"), "input not found"
    )
    _assert_one_line_error(
        _cli(f"--input={tmp_path}", f"--out={tmp_path / 'o'}", "--layout=vox"), "bad flag"
    )


def test_cli_coeff_layout(tmp_path):
    src = _coeff_pairs(tmp_path / "src", ["v1"])
    proc = _cli(f"--input={src}", f"--out={tmp_path / 'out'}", "--layout=coeff", "--fps=25")
    assert proc.returncode == 0, proc.stderr
    assert "1 clip(s): 1 processed" in proc.stdout
    assert len(records.load_dataset(tmp_path / "out")) == 1
    _assert_one_line_error(
        _cli(f"--input={src}", f"--out={tmp_path / 'o2'}", "--layout=coeff"), "frame rate"
    )


def test_parallel_workers_collect_failures(tmp_path):
    """Two spawned workers with the real probe: each broken video becomes a skip reason."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_text("not a video")
    (src / "b.mp4").write_bytes(b"\x00" * 100)
    (src / "c.mp4").write_text("neither")
    run = preprocess.preprocess(src, tmp_path / "out", workers=2, progress=False)
    assert [(r.clip_id, r.status) for r in run.results] == [
        ("a", "skipped"),
        ("b", "skipped"),
        ("c", "skipped"),
    ]
    assert all(r.reason and not r.internal for r in run.results), run.results
    assert run.totals["skipped"] == 3


# ------------------------------------------------------------------------------ end to end


def test_end_to_end_rendered_head_video(tmp_path):
    """The real pipeline on a 4.5 s rendered head with known pose (sine audio)."""
    import synthetic_video

    (tmp_path / "in").mkdir()
    truth = synthetic_video.write_head_video(tmp_path / "in" / "head.mp4", num_frames=113)
    out = tmp_path / "out"
    run = preprocess.preprocess(tmp_path / "in", out, progress=False)
    assert run.totals["ok"] == 1, run.results
    (clip,) = records.load_dataset(out)
    assert clip.clip_id == "head" and clip.num_frames >= 100
    n = clip.num_frames
    for axis in range(3):  # pitch, yaw, roll
        r = np.corrcoef(clip.pose[:, axis], truth.angles[:n, axis])[0, 1]
        assert r > 0.9, (axis, r)
    assert np.abs(clip.pose[:, 1] - truth.angles[:n, 1]).max() < 0.1  # yaw, radians
    layout = coeffs_lib.Layout.of(default.load_default())
    coeffs, params = coeffs_lib.read_mat(out / "coeffs" / "head.mat", layout)
    assert coeffs.batch_shape == (113,) and params.shape == (113, 5)
    rep = json.loads((out / "reports" / "head.json").read_text())
    assert rep["fit"]["landmark_rmse_px_mean"] < 3.0
    assert rep["tracking"]["lost_frames"] == 0


def test_end_to_end_two_faces_are_rejected_before_the_fit(tmp_path, monkeypatch):
    """Real tracking and face detection: a second face 0.6x the size -> "several faces"."""
    import cv2
    import synthetic_video as sv

    angles, trans = sv.head_motion(30, FPS, seed=1)
    big, _ = sv.render_heads(angles, trans, 256)
    small, _ = sv.render_heads(-angles, trans, 256)
    frames = np.empty((30, 256, 512, 3), np.uint8)
    for t in range(30):
        frames[t, :, 256:] = big[t]
        side = (sv.background(256) * 255).astype(np.uint8)
        side[48:208, 48:208] = cv2.resize(small[t], (160, 160), interpolation=cv2.INTER_AREA)
        frames[t, :, :256] = side
    (tmp_path / "in").mkdir()
    sv.write_video(tmp_path / "in" / "two.mp4", frames, FPS, audio=True)

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit must not run")

    monkeypatch.setattr(reconstruct, "fit_video", no_fit)
    run = preprocess.preprocess(tmp_path / "in", tmp_path / "out", progress=False)
    (result,) = run.results
    assert (result.status, result.kind) == ("skipped", "several faces"), result
    assert "in 3 of 3 sampled frames" in result.reason


def test_a_hiss_is_silent_audio(tmp_path, fake):
    """-60 dBFS of noise (what a "silent" phone track holds) is no speech; -40 dBFS is."""
    src = tmp_path / "in"
    _write_wav(src / "a1.mp4", 4.2, hiss=0.001)
    _write_wav(src / "b2.mp4", 4.2, hiss=0.01)
    run = _run(src, tmp_path / "out")
    assert [r.audio for r in run.results] == ["silent (audio is silent)", "speech"]
    run = _run(src, tmp_path / "out2", silent_clips=False)
    assert run.results[0].kind == "silent audio"
    assert run.results[0].reason.endswith("audio is silent (its loud parts are at -60 dBFS)")
    assert preprocess.speech_level(np.full(16000, 0.5)) == pytest.approx(0.5)
    # 20 frames of 100 ms: the 95th percentile is 5 % of the way from the 19th to the 20th.
    two_loud = np.r_[np.zeros(18 * 1600), np.full(2 * 1600, 0.3)]
    assert preprocess.speech_level(two_loud) == pytest.approx(0.3)
    one_loud = np.r_[np.zeros(19 * 1600), np.full(1600, 0.3)]
    assert preprocess.speech_level(one_loud) == pytest.approx(0.05 * 0.3)


def test_records_without_speech_round_trip(tmp_path):
    """records.write_dataset / load_dataset with a record without speech (has_audio False)."""
    pose = _fake_pose(125, 0)
    speech = records.Clip("s", "s", "p", FPS, pose, np.zeros((520, 13), np.float32))
    silent = records.Clip("q", "q", "p", FPS, pose, np.zeros((0, 13), np.float32), has_audio=False)
    records.write_dataset(tmp_path, [speech, silent])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["clip_id"] for e in manifest["clips"]] == ["s"]
    assert manifest["silent_clips"] == [records.manifest_entry(silent)]
    assert manifest["silent_clips"][0]["has_audio"] is False
    with np.load(tmp_path / "clips" / "s.npz") as z:
        assert "has_audio" not in z.files  # files with speech are as before
    assert [c.clip_id for c in records.load_dataset(tmp_path)] == ["s"]
    got = records.load_dataset(tmp_path, silent=True)
    assert [(c.clip_id, c.has_audio) for c in got] == [("s", True), ("q", False)]
    assert records.require_audio(got[0], "x") is got[0]
    # A record claiming no speech but holding MFCC rows is refused.
    records.save_clip(tmp_path / "clips" / "q.npz", dataclasses.replace(silent, mfcc=speech.mfcc))
    with pytest.raises(InputError, match="without speech has mfcc rows"):
        records.load_dataset(tmp_path, silent=True)
