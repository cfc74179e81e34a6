"""Paper 000's head motion on real-corpus records: the `real` config variant, `init_from`,
pose-only triplets from records without speech, and the held-out protocol's measures
(bootstrap interval, replay row, angular speed, retrieval across clips).

Everything runs on a tiny hand-made records dataset with a split file in tmp_path (no corpus,
no ../shared); the model is a few units wide and trains a step or two.
"""

import json
import os

import numpy as np
import pytest

from experiments.configs import audio2head as a2h_config
from experiments.configs import pose as pose_config
from experiments.configs import posegan as posegan_config
from talkingjax.data import records, sampling
from talkingjax.errors import InputError
from talkingjax.evaluation import pose_table
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.train import checkpoint, head_motion, runner

FPS = 25.0
# clip id -> (speaker, part, seconds, has speech)
CLIPS = {
    "a1": ("spk_a", "train", 5.0, True),
    "a2": ("spk_a", "train", 4.4, True),
    "b1": ("spk_b", "train", 5.0, True),
    "c1": ("spk_c", "train", 4.8, True),
    "d1": ("spk_d", "train", 6.0, False),
    "e1": ("spk_e", "train", 5.0, False),
    "f1": ("spk_f", "val", 6.0, True),
    "f2": ("spk_f", "val", 4.2, False),
    "g1": ("spk_g", "val", 5.2, True),
    "h1": ("spk_h", "test", 5.0, True),
    "h2": ("spk_h", "test", 4.0, True),
}


def _clip(clip_id, speaker, seconds, speech, seed):
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * FPS))
    # A smooth random walk (unique per clip, so a window identifies its clip).
    pose = 0.02 * np.cumsum(rng.standard_normal((frames, 6)), axis=0) / np.sqrt(frames)
    pose += 0.05 * rng.standard_normal(6)
    mfcc = rng.standard_normal((4 * frames + 28, 13)) if speech else np.zeros((0, 13))
    return records.Clip(
        clip_id=clip_id,
        video_id=f"folder_{clip_id}",  # the split's speaker id replaces it
        speaker_id="speech" if speech else "silent",
        fps=FPS,
        pose=pose.astype(np.float32),
        mfcc=mfcc.astype(np.float32),
        has_audio=speech,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_records")
    clips = [_clip(k, s, sec, sp, i) for i, (k, (s, _, sec, sp)) in enumerate(CLIPS.items())]
    records.write_dataset(root, clips)
    parts = {"train": [], "val": [], "test": []}
    for k, (speaker, part, seconds, speech) in CLIPS.items():
        parts[part].append(
            {
                "clip_id": k,
                "speaker_id": speaker,
                "audio": "speech" if speech else "silent",
                "seconds": seconds,
            }
        )
    (root / "split.json").write_text(json.dumps({"clips": parts}))
    return root


def _config(root, window=2.0):
    c = pose_config.get_config("real")
    c.data.root = str(root)
    c.data.split_file = str(root / "split.json")
    c.data.window_seconds = window
    c.train.init_from = ""
    c.model.encoder_hidden = 8
    c.model.decoder_hidden = 8
    c.model.encoder_mlp = (8,)
    c.model.window_features = 8
    c.model.head_features = (8,)
    c.train.batch_size = 4
    c.train.pretrain_steps = 1
    c.train.joint_steps = 1
    c.train.checkpoint_every = 1
    c.train.log_every = 1
    c.eval.reference_seconds = 2.0
    c.eval.retrieval_window_seconds = 2.0
    c.eval.retrieval_stride_seconds = 1.0
    c.eval.bootstrap_samples = 50
    return c


@pytest.fixture(scope="module")
def source(dataset, tmp_path_factory):
    """A trained tiny real-variant workdir (one pretrain + one joint step)."""
    workdir = str(tmp_path_factory.mktemp("source"))
    head_motion.train(_config(dataset), workdir)
    return workdir


# ------------------------------------------------------------------------------ the config


def test_real_variant_keeps_eq3_summed_as_measured_on_val():
    """docs/figures/pose_reductions_val.md: the paper's MSE reduction of Eq. 3 lost on val, so
    every variant keeps the sum (and `real` its lambda_p1 = 1000, 1.67 on the MSE scale)."""
    for arg in (None, "tiny", "real"):
        assert pose_config.get_config(arg).loss.recon_mean is False
    assert pose_config.get_config("real").loss.lambda_p1 == 1000.0
    # The shipped default was trained before the field existed: the trainer reads it as a sum.
    shipped_dir = os.path.join(os.path.dirname(os.path.dirname(pose_config.SYNTHETIC_POSE)), "pose")
    shipped = checkpoint.load_workdir_config(shipped_dir)
    assert not head_motion.recon_mean(shipped.loss)


def test_real_variant_config_loads_for_ours_and_the_peers():
    c = pose_config.get_config("real")
    assert c.data.root == pose_config.REAL_CORPUS and c.data.root.endswith("runs/corpus")
    assert c.data.split_file.endswith("experiments/corpus/split.json")
    assert c.data.eval_part == "val" and c.data.silent
    assert c.data.window_seconds < 12.0 and c.eval.reference_seconds < 12.0
    assert c.eval.retrieval_window_seconds == c.eval.reference_seconds
    assert c.train.init_from == pose_config.SYNTHETIC_POSE
    # The tiny model: the shipped synthetic model's config, so init_from fits (matmul_dtype,
    # a compute setting the shipped config predates, defaults to float32).
    shipped = json.loads(open(f"{pose_config.SYNTHETIC_POSE}/config.json").read())["model"]
    assert json.loads(c.model.to_json()) == {**shipped, "matmul_dtype": "float32"}
    for peer in (a2h_config, posegan_config):
        p = peer.get_config("real")
        assert p.data.root == c.data.root and p.data.split_file == c.data.split_file
        assert p.eval.to_dict() == c.eval.to_dict()
        assert p.model.window == peer.get_config("tiny").model.window
    with pytest.raises(ValueError, match="unknown config variant"):
        pose_config.get_config("reel")


# ------------------------------------------------------------------------------- sampling


def test_pretrain_triplets_include_silent_records_joint_only_speech(dataset):
    c = _config(dataset)
    train, held_out = head_motion.load_data(c, "")
    assert {x.clip_id for x in train} == {k for k, v in CLIPS.items() if v[1] == "train"}
    assert {x.clip_id for x in held_out} == {"f1", "f2", "g1"}  # eval_part "val"
    pretrain, joint = head_motion.samplers(c, train)
    assert {v.clip_id for v in pretrain.videos} == {"a1", "a2", "b1", "c1", "d1", "e1"}
    assert {v.clip_id for v in joint.videos} == {"a1", "a2", "b1", "c1"}
    assert {v.video_id for v in joint.videos} == {"spk_a", "spk_b", "spk_c"}

    # Which clip a window comes from (every clip's random walk is unique).
    def source_of(window):
        for v in pretrain.videos:
            for s in range(v.pose.shape[0] - window.shape[0] + 1):
                if np.array_equal(v.pose[s : s + window.shape[0]], window):
                    return v
        raise AssertionError("window of no clip")

    seen = set()
    for step in range(12):
        batch = pretrain.sample(step, 4)
        assert set(batch) == {"pose"} and batch["pose"].shape == (4, 3, 50, 6)
        for y1, y2, y3 in batch["pose"]:
            a, p, n = source_of(y1), source_of(y2), source_of(y3)
            assert a.video_id == p.video_id != n.video_id
            seen |= {a.clip_id, n.clip_id}
        j = joint.sample(step, 4)
        assert j["mfcc"].shape == (4, 49 * 4 + 28, 13)
        assert all(source_of(y).has_audio for y in j["pose"].reshape(-1, 50, 6))
    assert seen & {"d1", "e1"}, "records without speech never drawn in the pretrain phase"
    # A pure function of (seed, step).
    np.testing.assert_array_equal(pretrain.sample(7, 4)["pose"], pretrain.sample(7, 4)["pose"])
    # Triplets with audio refuse records without speech.
    with pytest.raises(InputError, match="pose_only"):
        sampling.TripletSampler(pretrain.videos, 50, FPS, 0)


# ------------------------------------------------------------------ training and init_from


def test_one_step_real_variant_training_writes_both_phases(source):
    lines = [json.loads(x) for x in open(f"{source}/metrics.jsonl")]
    assert [r["phase"] for r in lines] == ["pretrain", "joint"]
    assert "recon" in lines[1] and np.isfinite(lines[1]["loss"])
    config = json.loads(open(f"{source}/config.json").read())
    assert config["data"]["split_file"].endswith("split.json") and config["data"]["silent"]
    # The clips trained on, as the shipped model's README lists them: the train part's records,
    # silent ones included (the encoder phase), none of val/test.
    used = json.loads(open(f"{source}/train_clips.json").read())
    assert used["root"] == config["data"]["root"]
    expected = {k: v for k, v in CLIPS.items() if v[1] == "train"}
    assert {c["clip_id"]: (c["speaker_id"], c["speech"]) for c in used["clips"]} == {
        k: (v[0], v[3]) for k, v in expected.items()
    }
    assert all(abs(c["seconds"] - expected[c["clip_id"]][2]) < 0.05 for c in used["clips"])


def test_init_from_restores_the_source_and_refuses_another_model(dataset, source, tmp_path):
    _, want = runner.load_variables(head_motion.TRAINER, source)
    c = _config(dataset)
    c.seed = 5  # a fresh init would differ
    c.train.init_from = source
    c.model.matmul_dtype = "bfloat16"  # a compute setting: the float32 source still fits
    state = head_motion.train(c, str(tmp_path / "w"), stop_after=0)
    got = _leaves(state.params) + _leaves(state.batch_stats)
    ref = _leaves(want["params"]) + _leaves(want["batch_stats"])
    assert len(got) == len(ref) > 0
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = head_motion.train(_with_seed(_config(dataset), 5), str(tmp_path / "f"), stop_after=0)
    assert not np.allclose(_leaves(fresh.params)[0], _leaves(want["params"])[0])

    c.model.decoder_hidden = 12
    with pytest.raises(InputError, match="init_from"):
        head_motion.train(c, str(tmp_path / "w2"), stop_after=0)


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _with_seed(c, seed):
    c.seed = seed
    return c


def test_real_workdir_evaluates_on_the_val_part_with_every_row(source, tmp_path):
    results = pose_table.evaluate_workdirs([source], str(tmp_path / "eval"), part="val")
    name = "yi2022 (paper 000)"
    rows = [name, pose_table.AUDIO_ONLY.format(name), *pose_table.BASELINES]
    assert list(results["rows"]) == rows
    assert results["clips"] == ["f1", "g1"] and results["part"] == "val"
    assert {s["clip_id"] for s in results["skipped"]} == {"f2"}
    info = results["retrieval_info"][name]
    # spk_f has two held-out clips: queries are its windows, candidates the other clip's.
    assert info["mode"] == "across clips" and info["groups"] == ["spk_f"]
    assert info["queries"] == 5 + 3  # 2 s windows, 1 s stride: 6 s and 4.2 s clips
    assert 0.0 < info["chance"] < 1.0
    assert results["rows"][pose_table.REAL]["speed_ratio"] == 1.0
    md = (tmp_path / "eval" / "pose_table.md").read_text()
    assert "chance" in md and "Skipped: f2 (no speech" in md
    with pytest.raises(InputError, match="part"):
        pose_table.evaluate_workdirs([source], str(tmp_path / "e2"), part="nope")


# ------------------------------------------------------------------- the protocol's measures


def test_bootstrap_interval_matches_a_numpy_reference():
    values = np.random.default_rng(3).normal(0.8, 0.05, size=11)
    index = pose_table.bootstrap_indices(11, 1000, seed=0)
    assert index.shape == (1000, 11) and index.min() >= 0 and index.max() <= 10
    rng = np.random.default_rng(0)
    draws = rng.integers(0, 11, size=(1000, 11))
    np.testing.assert_array_equal(index, draws)
    means = np.array([values[row].mean() for row in draws])
    lo, hi = np.percentile(means, [2.5, 97.5])
    got = pose_table.bootstrap_interval(values, index, 0.95)
    np.testing.assert_allclose(got, [lo, hi], rtol=0, atol=1e-12)
    assert lo < values.mean() < hi
    # One value repeated: no spread.
    assert pose_table.bootstrap_interval(np.full(11, 0.5), index) == [0.5, 0.5]


def test_replay_mirrors_the_reference_without_a_jump():
    ref = np.arange(4, dtype=np.float64)[:, None] * np.ones((1, 6))
    out = pose_table.replay(ref, 11)
    assert out[:, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert np.abs(np.diff(out[:, 0])).max() == 1.0
    assert pose_table.replay(ref[:1], 3).shape == (3, 6)


def test_angular_speed_known_answer():
    t = np.arange(101) / FPS
    pose = np.zeros((101, 6))
    pose[:, 0] = np.radians(3.0) * t  # 3 deg/s pitch
    pose[:, 1] = np.radians(4.0) * t  # 4 deg/s yaw -> 5 deg/s
    pose[:, 3] = 7.0 * t  # translation does not count
    assert pose_table.angular_speed(pose, FPS) == pytest.approx(5.0, rel=1e-9)
    half = pose.copy()
    half[:, :3] *= 0.5
    ratio = pose_table.angular_speed(half, FPS) / pose_table.angular_speed(pose, FPS)
    assert ratio == pytest.approx(0.5, rel=1e-9)
    with pytest.raises(InputError):
        pose_table.angular_speed(pose[:1], FPS)


class _Offsets:
    """A pattern 'encoder': the mean pose of a window (retrieval by rest pose)."""

    fps = FPS

    def encode_patterns(self, poses, fps):
        return np.stack([p.mean(axis=0) for p in poses])


def _video(clip_id, speaker, offset, frames=100):
    pose = np.full((frames, 6), float(offset), np.float32)
    return sampling.Video(speaker, pose, np.zeros((0, 13)), None, clip_id, False)


def test_retrieval_across_clips_and_its_chance_level():
    videos = [
        _video("a1", "a", 0.0),
        _video("a2", "a", 0.1),
        _video("b1", "b", 0.05),  # between a's clips: a1 is nearer b1 than a2
        _video("c1", "c", 5.0),
    ]
    info = pose_table.pattern_retrieval(_Offsets(), videos, window=50, stride=50)
    assert info["mode"] == "across clips" and info["groups"] == ["a"]
    assert info["queries"] == 4  # 2 windows of each of a's clips
    assert info["accuracy"] == 0.0  # b1 is always nearer than a's other clip
    # Candidates of a query: the 6 windows of the other 3 clips, 2 of the same speaker.
    assert info["chance"] == pytest.approx(2 / 6)
    videos[2] = _video("b1", "b", 3.0)
    assert pose_table.pattern_retrieval(_Offsets(), videos, 50, 50)["accuracy"] == 1.0
    # One clip per source: nearest other window of any clip (the synthetic corpus's case).
    single = [_video("x", "x", 0.0), _video("y", "y", 1.0)]
    info = pose_table.pattern_retrieval(_Offsets(), single, 50, 50)
    assert info["mode"] == "windows" and info["accuracy"] == 1.0
    assert info["chance"] == pytest.approx(1 / 3)


def test_short_reference_patterns_for_models_trained_on_short_windows(source):
    predictor = HeadMotionPredictor.from_workdir(source)
    assert predictor.min_pattern_seconds == 2.0
    assert predictor.encode_pattern(np.zeros((50, 6)), FPS).shape == (16,)
    with pytest.raises(InputError, match=r"at least 2\.0 s"):
        predictor.encode_pattern(np.zeros((49, 6)), FPS)
