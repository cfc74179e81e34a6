"""The one head-pose table (talkingjax.evaluation.pose_table) on a tiny synthetic corpus.

A tiny paper-000 workdir (a few training steps) and fake predictors of the predictor
protocol; the peers' predictor is faked in `predict.peers.PREDICTORS`, so these tests do not
depend on it. The real-data variant's protocol tests: tests/test_pose_real.py.
"""

import json
import os
import shutil
import subprocess
import sys

import multihost
import numpy as np
import pytest

from talkingjax.data import sampling, synthetic
from talkingjax.errors import InputError
from talkingjax.evaluation import pose_table
from talkingjax.predict import peers as peer_predict
from talkingjax.train import checkpoint, head_motion

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = peer_predict.YI2022_NAME
AUDIO_ONLY = pose_table.AUDIO_ONLY.format(OURS)
BASE = pose_table.BASELINES  # real, replay, static reference mean, mean pose, random real


def _tiny_config(root):
    c = multihost.pose_config(str(root), pretrain=1, joint=1)
    c.data.window_seconds = 6.0
    # 12 s held-out videos: 6 s reference, 6 s (150 frames) predicted.
    c.eval.reference_seconds = 6.0
    c.eval.retrieval_window_seconds = 4.0
    c.eval.retrieval_stride_seconds = 2.0
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    synthetic.generate_corpus(root, num_videos=3, num_test_videos=3, seconds_per_video=12.0)
    return root


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    head_motion.train(_tiny_config(corpus), workdir)
    return workdir


class Oracle:
    """Protocol predictor that returns the real continuation of the video it is given."""

    name = "oracle"
    fps = 25.0
    has_pattern = False

    def __init__(self, test_clips):
        self.videos = sampling.prepare_videos(test_clips, self.fps)

    def predict(self, mfcc, reference_pose, frames, seed=0):
        ref = reference_pose.shape[0]
        for v in self.videos:
            if np.array_equal(v.pose[:ref], reference_pose):
                return v.pose[ref : ref + frames]
        raise AssertionError("reference pose of no held-out video")


class Still:
    """Protocol predictor holding the last reference pose (has a fake pattern encoder)."""

    name = "still"
    fps = 25.0
    has_pattern = True

    @classmethod
    def from_workdir(cls, workdir):
        return cls()

    def predict(self, mfcc, reference_pose, frames, seed=0):
        assert mfcc.ndim == 2 and mfcc.shape[1] == 13
        return np.repeat(reference_pose[-1:], frames, axis=0)

    def encode_patterns(self, poses, fps):
        return np.stack([p.std(axis=0) for p in poses])


@pytest.fixture(scope="module")
def table(trained):
    config = checkpoint.load_workdir_config(trained)
    train, test = head_motion.load_data(config, trained)
    predictors = [peer_predict.load_predictor(trained), Oracle(test)]
    return pose_table.evaluate_predictors(predictors, train, test, config.eval, seed=0)


def test_table_has_every_row_and_column(table):
    assert list(table["rows"]) == [OURS, AUDIO_ONLY, "oracle", *BASE]
    assert table["num_videos"] == 3 and table["classifier_window"] == 64
    assert table["skipped"] == [] and len(table["clips"]) == 3
    for name, row in table["rows"].items():
        assert list(row) == list(pose_table.COLUMNS)
        for col, value in row.items():
            if col == "retrieval" and name != OURS:
                assert value is None  # only pattern models retrieve
            else:
                assert value is not None and np.isfinite(value), (name, col)
    assert 0.0 <= table["rows"][OURS]["retrieval"] <= 1.0
    info = table["retrieval_info"][OURS]
    # One clip per synthetic video: the nearest other window, same video = hit.
    assert info["mode"] == "windows" and info["groups"] == [] and 0.0 < info["chance"] < 1.0
    for name, row in table["rows"].items():
        assert 0.0 < row["hs"] <= 1.0 and 0.0 <= row["classifier"] <= 1.0
        lo, hi = table["hs_interval"][name]
        assert lo <= row["hs"] + 1e-12 and row["hs"] <= hi + 1e-12
    assert table["hs_difference"]["of"] == OURS
    assert set(table["hs_difference"]["vs"]) == set(table["rows"]) - {OURS, pose_table.REAL}
    md = pose_table.markdown_table(table)
    for name in table["rows"]:
        assert f"| {name} |" in md
    assert "D-Rot (deg)" in md and "| - |" not in md.splitlines()[0]
    assert "chance" in md and "paired bootstrap" in md


def test_real_row_is_exact_and_the_oracle_scores_like_it(table):
    real, oracle = table["rows"][pose_table.REAL], table["rows"]["oracle"]
    assert real["hs"] == 1.0 and real["speed_ratio"] == 1.0
    for col in ("d_l", "d_v", "d_rot", "d_pos", "vel_err"):
        assert real[col] == 0.0
    assert real["diversity"] > 0.1 > table["rows"][pose_table.MEAN]["diversity"]
    for col in pose_table.COLUMNS:
        if col != "retrieval":
            assert oracle[col] == pytest.approx(real[col], abs=1e-6), col
    assert table["rows"][pose_table.RANDOM]["d_rot"] > 0.0
    assert table["hs_interval"][pose_table.REAL] == [1.0, 1.0]
    # Still heads do not move; the replayed reference moves like a real head.
    for still in (pose_table.STATIC, pose_table.MEAN):
        assert table["rows"][still]["speed"] == 0.0
        assert table["rows"][still]["diversity"] == pytest.approx(0.0, abs=1e-9)
    assert 0.3 < table["rows"][pose_table.REPLAY]["speed_ratio"] < 3.0
    # The audio-only decoder differs from the pattern-conditioned one.
    assert table["rows"][AUDIO_ONLY]["d_rot"] != table["rows"][OURS]["d_rot"]


def test_the_baseline_rows_are_what_they_say(trained):
    """Replay and static rows from the reference part, scored like any prediction."""
    config = checkpoint.load_workdir_config(trained)
    train, test = head_motion.load_data(config, trained)
    results = pose_table.evaluate_predictors([Still()], train, test, config.eval, seed=0)
    ref = int(round(config.eval.reference_seconds * 25.0))
    v = sampling.prepare_videos(test, 25.0)[0]
    true = v.pose[ref:].astype(np.float64)
    replayed = pose_table.replay(v.pose[:ref], true.shape[0])
    from talkingjax.metrics import pose as pose_metrics

    per_clip = results["videos"][0]
    assert per_clip["clip_id"] == v.clip_id
    assert (
        per_clip[pose_table.REPLAY]["hs"] == pose_metrics.head_similarity(true, replayed)["overall"]
    )
    static = np.broadcast_to(v.pose[:ref].astype(np.float64).mean(axis=0), true.shape)
    assert per_clip[pose_table.STATIC]["d_rot"] == pose_table.pose_peers.d_rot(static, true)
    assert "still, audio only" not in results["rows"]  # no paper-000 model inside


def test_onset_envelope_from_mfcc_marks_energy_rises():
    mfcc = np.zeros((300, 13), np.float32)
    mfcc[:, 0] = -36.0  # digital silence (log eps)
    mfcc[100:150, 0] = 2.0
    mfcc[200:250, 0] = 2.0
    env = pose_table.onset_envelope_from_mfcc(mfcc)
    assert env.shape == (300,) and np.flatnonzero(env).tolist() == [100, 200]
    # Frame 0 of a segment starting at 1 s lies at row 100 + 12 - 1 (PAD 0.12 s, centre 12.5 ms).
    assert pose_table._envelope_from(env, 1.0).shape == (300 - 111,)


def test_workdirs_with_a_peer_write_one_table(trained, tmp_path, monkeypatch):
    peer = tmp_path / "peer"
    peer.mkdir()
    config = checkpoint.load_workdir_config(trained)
    config.trainer = "peers"
    (peer / "config.json").write_text(config.to_json())
    monkeypatch.setitem(peer_predict.PREDICTORS, "peers", Still)
    out = tmp_path / "out"
    results = pose_table.evaluate_workdirs([trained, str(peer)], str(out))
    assert list(results["rows"]) == [OURS, AUDIO_ONLY, "still", *BASE]
    assert 0.0 <= results["rows"]["still"]["retrieval"] <= 1.0
    saved = json.loads((out / "pose_table.json").read_text())
    assert saved["rows"]["still"]["d_rot"] == results["rows"]["still"]["d_rot"]
    assert "| still |" in (out / "pose_table.md").read_text()
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_mismatched_data_configs_are_refused(trained, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    config = checkpoint.load_workdir_config(trained)
    config.data.root = str(tmp_path / "elsewhere")
    (other / "config.json").write_text(config.to_json())
    with pytest.raises(InputError, match="data.root"):
        pose_table.evaluate_workdirs([trained, str(other)], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_cli_with_two_workdirs_writes_the_table(trained, tmp_path):
    second = str(tmp_path / "second")
    shutil.copytree(trained, second, ignore=shutil.ignore_patterns("eval"))
    out = tmp_path / "table"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.eval_pose",
            f"--workdir={trained}",
            f"--workdir={second}",
            f"--out={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    md = (out / "pose_table.md").read_text()
    assert f"| {OURS} |" in md and f"| {OURS} (2) |" in md
    assert f"| {pose_table.AUDIO_ONLY.format(OURS + ' (2)')} |" in md
    assert md in proc.stdout
    assert not (tmp_path / "second" / "eval").exists()  # only --out is written


class Jittery:
    """Protocol predictor: the reference's last pose plus seeded white noise."""

    name = "jittery"
    fps = 25.0
    has_pattern = False

    def predict(self, mfcc, reference_pose, frames, seed=0):
        rng = np.random.default_rng(seed)
        return reference_pose[-1] + 0.05 * rng.normal(size=(frames, 6))


def test_smoothed_predictor_is_the_gaussian_filter_of_the_inner_prediction():
    import scipy.ndimage

    inner = Jittery()
    smoothed = pose_table.SmoothedPredictor(inner, 2.0)
    assert smoothed.name == "jittery, gaussian sigma 2" and smoothed.fps == 25.0
    assert not smoothed.has_pattern and not hasattr(smoothed, "predictor")
    ref = np.zeros((10, 6))
    raw = inner.predict(None, ref, 40, seed=3)
    want = scipy.ndimage.gaussian_filter1d(raw, 2.0, axis=0, mode="nearest")
    got = smoothed.predict(None, ref, 40, seed=3)
    assert got.shape == (40, 6)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.abs(np.diff(got, axis=0)).mean() < 0.5 * np.abs(np.diff(raw, axis=0)).mean()
    with pytest.raises(InputError, match="sigma"):
        pose_table.SmoothedPredictor(inner, 0.0)


def test_smoothed_rows_are_named_after_unique_rows_and_slow_the_head(corpus):
    config = _tiny_config(corpus)
    train, test = head_motion.load_data(config, "")
    base = [Jittery(), Jittery()]
    smoothed = pose_table.smoothed_predictors(base, [1.0, 3.0])
    assert [p.name for p in smoothed] == [
        "jittery, gaussian sigma 1",
        "jittery, gaussian sigma 3",
        "jittery (2), gaussian sigma 1",
        "jittery (2), gaussian sigma 3",
    ]
    rows = pose_table.evaluate_predictors(base[:1] + smoothed[:2], train, test, config.eval)["rows"]
    speeds = [rows[n]["speed"] for n in ("jittery", *(p.name for p in smoothed[:2]))]
    assert speeds[0] > speeds[1] > speeds[2] > 0


def test_cli_smooth_sigma_adds_a_smoothed_row(trained, tmp_path):
    out = tmp_path / "smoothed"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.eval_pose",
            f"--workdir={trained}",
            "--smooth_sigma=2",
            f"--out={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "pose_table.json").read_text())["rows"]
    assert list(rows)[:3] == [OURS, AUDIO_ONLY, f"{OURS}, gaussian sigma 2"]
    assert rows[f"{OURS}, gaussian sigma 2"]["speed"] < rows[OURS]["speed"]
    assert (out / "pose_curves.png").exists()
