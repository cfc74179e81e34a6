"""Tests of video preprocessing: clip discovery, resumable atomic runs, the CLI, end to end.

Most tests replace tracking and fitting with small fakes (the "videos" are then wav files
named .mp4: ffmpeg reads them by content, so the real audio path runs); the end-to-end test
runs the real pipeline on a rendered head video with known pose.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import soundfile
import testdata

from talkingjax import audio
from talkingjax.data import coeff257, preprocess, records
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


_write_wav = testdata.write_wav


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
        self.current = None  # the video being processed (the fit only sees its crops)
        self.fail: dict[str, Exception] = {}
        self.no_audio: set[str] = set()
        monkeypatch.setattr(tracking, "probe_video", self.probe_video)
        monkeypatch.setattr(tracking, "read_frames", lambda path, start=0, count=None: iter(()))
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

    def track_video(self, path, frames=None, **kw):
        self.current = os.path.basename(path)
        t = self.probe_video(path).num_frames
        detected = np.ones(t, bool)
        detected[1] = False
        return tracking.Track(np.zeros((t, 478, 3), np.float32), detected, FPS, (256, 256))

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


def test_no_audio_track_is_a_skip_reason(tmp_path, fake):
    src = _videos(tmp_path / "in", {"a1.mp4": 4.2})
    fake.no_audio.add("a1.mp4")
    run = _run(src, tmp_path / "out")
    assert run.results[0].status == "skipped"
    assert "no audio track" in run.results[0].reason
    assert fake.fit_calls == []  # rejected before the expensive stages


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
    entries, short = preprocess.rebuild_manifest(out)
    assert [e["clip_id"] for e in entries] == ["a1", "b2"] and short == []
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
