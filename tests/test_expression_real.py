"""The expression regressor on a real-corpus layout: the `real` config variant, the fine-tune
counted in the target video's own frames (fps-correct), the held-out-speaker evaluation of a
records dataset placed by a speaker split (per clip, pooled, bootstrap over clips), and the
general phase started from another general run (`train.init_from`).

Tiny synthetic data only (a 4-video synthetic expression corpus written to tmp_path).
"""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import expression as expression_config
from experiments.configs import pose as pose_config
from talkingjax.data import records, sampling, synthetic_expression
from talkingjax.errors import InputError
from talkingjax.evaluation import expression as expression_eval
from talkingjax.face3d import default
from talkingjax.models import build_expression_model
from talkingjax.train import checkpoint, expression, runner


def _tiny(root, steps=2):
    c = expression_config.get_config("tiny")
    c.data.root = str(root)
    c.model.conv_channels = (4, 8, 8, 8, 8)
    c.model.fc = (16, 16)
    c.model.hidden = 16
    c.train.batch_size = 4
    c.train.steps = steps
    c.train.checkpoint_every = steps
    c.train.log_every = 1
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 synthetic speakers (one clip each, 6 s at 25 fps) and a speaker split of them."""
    root = tmp_path_factory.mktemp("expr_real_corpus")
    clips = synthetic_expression.generate_expression_corpus(
        root, num_videos=2, num_test_videos=2, seconds_per_video=6.0
    )
    parts = {"train": clips[:2], "val": clips[2:3], "test": clips[3:]}
    split = {
        "clips": {
            p: [{"clip_id": c.clip_id, "speaker_id": f"spk_{c.clip_id}"} for c in cs]
            for p, cs in parts.items()
        }
    }
    path = root / "split.json"
    path.write_text(json.dumps(split))
    return root, str(path), parts


@pytest.fixture(scope="module")
def general(corpus, tmp_path_factory):
    """A 2-step general run on the split's training speakers (centred, averaged, BatchNorm
    statistics re-estimated)."""
    root, split, _ = corpus
    c = _tiny(root)
    c.data.split_file = split
    c.data.eval_part = "val"
    c.data.center_clips = True
    c.train.average_from = 0  # the real config's SWA and BatchNorm re-estimation
    c.train.bn_batches = 2
    workdir = str(tmp_path_factory.mktemp("expr_real_runs") / "general")
    expression.train(c, workdir)
    return workdir


def test_real_variant_loads_and_fits_the_shipped_model():
    c = expression_config.get_config("real")
    tiny = expression_config.get_config("tiny")
    # The one default place of the preprocessed corpus (runs/corpus next to the repository).
    assert c.data.root == pose_config.REAL_CORPUS and c.data.split_file == pose_config.REAL_SPLIT
    assert c.data.split_file.endswith(os.path.join("experiments", "corpus", "split.json"))
    assert os.path.isfile(c.data.split_file)
    assert c.data.eval_part == "val"
    assert c.data.center_clips and c.train.average_from >= 0 and c.train.bn_batches > 0
    assert c.model.to_dict() == tiny.model.to_dict()
    # The general phase starts from the shipped synthetic model, whose model config it equals.
    assert c.train.init_from == expression_config.SYNTHETIC_EXPRESSION
    shipped = checkpoint.load_workdir_config(c.train.init_from)
    assert json.loads(shipped.model.to_json()) == json.loads(c.model.to_json())
    assert c.finetune.frames == 300 and c.finetune.steps == 300
    with pytest.raises(ValueError, match="unknown config variant"):
        expression_config.get_config("reel")


def test_tune_frames_and_heldout_start_known_answers():
    assert expression.tune_frames(300, 25.0, 25.0) == 300
    assert expression.heldout_start(300, 25.0, 25.0) == 300
    # 300 frames of a 30 fps video span 0..9.967 s: regressor frames 0..249 (0..9.96 s).
    assert expression.tune_frames(300, 30.0, 25.0) == 250
    assert expression.heldout_start(300, 30.0, 25.0) == 250
    assert expression.tune_frames(301, 30.0, 25.0) == 251  # frame 250 at 10.0 s = video 300
    assert expression.heldout_start(301, 30.0, 25.0) == 251  # 10.033 s -> first at 10.04 s
    assert expression.tune_frames(300, 15.0, 25.0) == 499  # 19.933 s: frames 0..498
    assert expression.heldout_start(300, 15.0, 25.0) == 500  # 20.0 s
    assert expression.tune_frames(1, 30.0, 25.0) == 1
    with pytest.raises(InputError, match="at least 1"):
        expression.tune_frames(0, 30.0, 25.0)


def test_a_30fps_target_tunes_on_exactly_its_first_video_frames(tmp_path):
    src = tmp_path / "src"
    synthetic_expression.generate_expression_corpus(
        src, num_videos=1, num_test_videos=1, seconds_per_video=12.0, fps=30.0
    )
    clips = records.load_dataset(src)
    # Every expression coefficient of video frame i is i: a regressor frame interpolated from
    # frames i and i + 1 lies in [i, i + 1], so its value says which video frames it used.
    ramped = [
        dataclasses.replace(c, exp=np.repeat(np.arange(c.num_frames, dtype=np.float32)[:, None],
                                             c.exp.shape[1], axis=1))
        for c in clips
    ]  # fmt: skip
    records.write_dataset(tmp_path / "ramp", ramped)
    target = [c for c in ramped if c.split == "test"][0]
    assert target.fps == 30.0 and target.num_frames == 360
    c = _tiny(tmp_path / "ramp")
    c.finetune.root = str(tmp_path / "ramp")
    c.finetune.clip_id = target.clip_id
    c.finetune.frames = 240  # 8 s of the 12 s video
    c.finetune.steps = 2
    phases, _ = expression.plan(c, str(tmp_path / "w"))
    tune = phases[-1]
    assert tune.name == "finetune"
    (tune_clip,) = tune.sample.__self__.clips
    assert tune_clip.exp.shape[0] == 200  # 8 s at 25 fps, not 240 regressor frames (9.6 s)
    # Regressor frame 199 (7.96 s) lies between video frames 238 and 239 (7.967 s): it uses the
    # last tuning frame, and no frame after it does.
    assert 238.0 < tune_clip.exp.max() <= 239.0
    batch = tune.sample(0, 8)
    assert batch["exp"].max() <= 239.0
    held, tune_mean = expression_eval.target_heldout(c, target)
    assert held.exp[0, 0] == pytest.approx(240.0)  # starts at video frame 240 (8.0 s)
    assert held.exp.shape[0] == 300 - 200  # the rest of the 12 s at 25 fps
    np.testing.assert_allclose(tune_mean, tune_clip.exp.mean(0), rtol=1e-6)
    c.finetune.heldout_frames = 60  # video frames 240..299: regressor frames 200..249
    held, _ = expression_eval.target_heldout(c, target)
    assert held.exp.shape[0] == 50 and held.exp[-1, 0] == pytest.approx(298.8)
    c.finetune.frames = 360
    with pytest.raises(InputError, match="no frames after"):
        expression_eval.target_heldout(c, target)


class _Oracle:
    """A predictor that knows each clip's truth: frame t's window carries t at [0, 0]."""

    def __init__(self, exp):
        self.exp = exp

    def predict_windows(self, windows):
        return {"exp": self.exp[np.asarray(windows[:, 0, 0]).astype(int)]}


def test_evaluate_clips_known_answers():
    face = default.load_default()
    rng = np.random.default_rng(0)
    k = face.sizes[1]
    clips, truth = [], []
    for i, t in enumerate((40, 60, 30)):
        exp = rng.normal(0, 0.5, (t, k)).astype(np.float32)
        windows = np.zeros((t, 28, 12), np.float32)
        windows[:, 0, 0] = np.arange(t)
        energy = rng.normal(size=t).astype(np.float32)
        clips.append(sampling.ExpressionClip(f"c{i}", windows, exp, np.zeros((t, 6)), energy))
        truth.append(exp)
    results = []
    for c in clips:  # one oracle per clip: evaluate each alone, then all pooled
        results.append(
            expression_eval.evaluate_clips(_Oracle(c.exp), [c], np.zeros(k), face, bootstrap=0)
        )
    for r, c in zip(results, clips, strict=True):
        assert r["ours"]["lmd_px"] == pytest.approx(0.0, abs=1e-5)
        assert r["ours"]["open_energy_corr"] == pytest.approx(r["truth_open_energy_corr"])
        assert r["shuffled_audio"]["lmd_px"] > 0.1
        assert r["mean_expression"]["mse"] == pytest.approx(float(np.mean(c.exp**2)), rel=1e-5)
        assert "lmd_diff_ci" not in r  # one clip: no interval
    # Pooled over clips: frame-weighted means of the per-clip LMDs, per-clip r kept.
    table = np.concatenate(truth)
    offsets = np.cumsum([0] + [c.exp.shape[0] for c in clips])[:-1]
    shifted = [
        dataclasses.replace(c, windows=c.windows + np.float32(o))
        for c, o in zip(clips, offsets, strict=True)
    ]
    pooled = expression_eval.evaluate_clips(_Oracle(table), shifted, np.zeros(k), face)
    assert pooled["clips"] == 3 and pooled["frames"] == 130
    frames = np.array([c.exp.shape[0] for c in clips])
    lmd = np.array([r["mean_expression"]["lmd_px"] for r in results])
    assert pooled["mean_expression"]["lmd_px"] == pytest.approx(
        float((lmd * frames).sum() / frames.sum()), rel=1e-5
    )
    assert [e["clip_id"] for e in pooled["per_clip"]] == ["c0", "c1", "c2"]
    assert pooled["truth_clip_mean_open_energy_corr"] == pytest.approx(
        np.mean([r["truth_open_energy_corr"] for r in results])
    )
    est, lo, hi = pooled["lmd_diff_ci"]["ours-mean_expression"]
    assert est == pytest.approx(-pooled["mean_expression"]["lmd_px"], rel=1e-5)
    assert lo <= est <= hi < 0  # the oracle beats the mean expression in every draw
    lo, hi = pooled["mean_expression"]["lmd_px_ci"]
    assert lmd.min() - 1e-6 <= lo <= hi <= lmd.max() + 1e-6


def test_bootstrap_pooled_matches_a_numpy_loop():
    sums = np.array([[10.0, 20.0, 30.0], [1.0, 2.0, 3.0]])
    counts = np.array([10.0, 10.0, 20.0])
    draws = expression_eval.bootstrap_pooled(sums, counts, resamples=50, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 3, size=(50, 3))
    for b in range(50):
        for m in range(2):
            want = sums[m, idx[b]].sum() / counts[idx[b]].sum()
            assert draws[b, m] == pytest.approx(want)


def test_evaluation_on_the_split_parts(corpus, general):
    _, _, parts = corpus
    val = expression_eval.evaluate_workdir(general, bootstrap=100)
    assert list(val) == ["heldout_val"]
    r = val["heldout_val"]
    assert [e["clip_id"] for e in r["per_clip"]] == [c.clip_id for c in parts["val"]]
    for m in expression_eval.METHODS:
        assert np.isfinite(r[m]["lmd_px"]) and np.isfinite(r[m]["open_energy_corr"])
    assert os.path.isfile(os.path.join(general, "eval", "metrics_val.json"))
    test = expression_eval.evaluate_workdir(general, part="test", bootstrap=100)
    assert [e["clip_id"] for e in test["heldout_test"]["per_clip"]] == [
        c.clip_id for c in parts["test"]
    ]
    assert os.path.isfile(os.path.join(general, "eval", "metrics_test.md"))
    # The training mean is of the training speakers only.
    train_mean = np.concatenate([c.exp for c in parts["train"]]).mean(0)
    clip = parts["test"][0]
    want = np.mean((np.broadcast_to(train_mean, clip.exp.shape) - clip.exp) ** 2)
    got = test["heldout_test"]["per_clip"][0]["mean_expression"]["mse"]
    assert got == pytest.approx(float(want), rel=1e-4)
    with pytest.raises(InputError, match="part must be"):
        expression_eval.evaluate_workdir(general, part="dev")


def test_general_phase_lists_the_clips_it_trained_on(corpus, general):
    root, _, parts = corpus
    used = json.loads(open(os.path.join(general, "train_clips.json")).read())
    assert used["root"] == str(root)
    assert [c["clip_id"] for c in used["clips"]] == [c.clip_id for c in parts["train"]]
    assert all(c["speech"] and c["seconds"] == 6.0 for c in used["clips"])


def test_general_phase_starts_from_another_general_run(corpus, general, tmp_path):
    root, split, _ = corpus
    _, source = runner.load_variables(expression.TRAINER, general)
    c = _tiny(root, steps=1)
    c.data.split_file = split
    c.train.init_from = general
    phases, variables = expression.plan(c, str(tmp_path / "from_general"))
    assert [p.name for p in phases] == ["general"]  # trained further on this run's data
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(source), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # BatchNorm stats too
    # A fine-tune of such a run starts from the fine-tune's source, not the general one's.
    c.finetune.init_from = general
    c.finetune.root = str(root)
    c.finetune.clip_id = records.load_dataset(root)[0].clip_id
    c.train.init_from = str(tmp_path / "no_such_run")
    phases, variables = expression.plan(c, str(tmp_path / "tuned"))
    assert [p.name for p in phases] == ["finetune"]
    c = _tiny(root, steps=1)
    c.train.init_from = general
    c.model.hidden = 8
    with pytest.raises(InputError, match="has model"):
        expression.train(c, str(tmp_path / "mismatch"))
    assert not os.path.exists(tmp_path / "mismatch" / "config.json")


def test_center_clips_keeps_the_motion_and_the_common_mean():
    rng = np.random.default_rng(1)
    clips = [
        sampling.ExpressionClip(
            f"c{i}", np.zeros((t, 28, 12), np.float32),
            rng.normal(3.0 * i, 1.0, (t, 4)).astype(np.float32),
            rng.normal(-i, 0.1, (t, 6)).astype(np.float32), np.zeros(t, np.float32),
        )
        for i, t in enumerate((20, 50))
    ]  # fmt: skip
    out = expression.center_clips(clips)
    all_exp = np.concatenate([c.exp for c in clips])
    for a, b in zip(clips, out, strict=True):
        np.testing.assert_allclose(b.exp.mean(0), all_exp.mean(0), atol=1e-5)
        np.testing.assert_allclose(np.diff(b.exp, axis=0), np.diff(a.exp, axis=0), atol=1e-5)
        np.testing.assert_allclose(
            b.pose.mean(0), np.concatenate([c.pose for c in clips]).mean(0), atol=1e-5
        )
    np.testing.assert_allclose(np.concatenate([c.exp for c in out]).mean(0), all_exp.mean(0),
                               atol=1e-5)  # fmt: skip


def test_recomputed_batch_stats_make_inference_equal_training_mode():
    c = _tiny("")
    model = build_expression_model(c.model)
    variables = expression.init_variables(c, model)
    windows = np.random.default_rng(0).normal(0, 3, (4, 16, 28, 12)).astype(np.float32)
    stats = expression.recompute_batch_stats(
        model, variables, lambda i, b: {"windows": windows}, batches=3, batch_size=4
    )
    # One batch: inference with its statistics normalises exactly as training mode does.
    train_out, _ = model.apply(variables, windows, train=True, mutable=["batch_stats"])
    eval_out = model.apply({"params": variables["params"], "batch_stats": stats}, windows)
    np.testing.assert_allclose(eval_out["exp"], train_out["exp"], rtol=1e-4, atol=1e-4)
    before = model.apply(variables, windows)  # the initial (0, 1) statistics do not
    assert not np.allclose(before["exp"], train_out["exp"], atol=1e-2)
