"""The audio-to-expression trainer on a tiny synthetic expression corpus: general phase,
fine-tune on a target clip's first frames, evaluation with baselines, bad input.

Runs on the four faked CPU devices of conftest.py, so every update is really data-parallel.
"""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import train_expression
from experiments.configs import expression as expression_config
from talkingjax.data import records, sampling, synthetic_expression
from talkingjax.errors import InputError
from talkingjax.evaluation import expression as expression_eval
from talkingjax.models import build_expression_model
from talkingjax.train import expression, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(root, steps=4, tune=0, clip_id=""):
    c = expression_config.get_config("tiny")
    c.data.root = str(root)
    c.model.conv_channels = (4, 8, 8, 8, 8)
    c.model.fc = (16, 16)
    c.model.hidden = 16
    c.train.batch_size = 8
    c.train.steps = steps
    c.train.checkpoint_every = 2
    c.train.log_every = 1
    c.finetune.root = str(root) if clip_id else ""
    c.finetune.clip_id = clip_id
    c.finetune.frames = 100
    c.finetune.steps = tune
    return c


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("expr_corpus")
    synthetic_expression.generate_expression_corpus(
        root, num_videos=3, num_test_videos=1, seconds_per_video=8.0
    )
    return root


def test_general_and_finetune_phases_train_and_evaluate(corpus, tmp_path):
    clips = records.load_dataset(corpus)
    target = [c for c in clips if c.split == "test"][0].clip_id
    workdir = str(tmp_path / "run")
    results = train_expression.train_and_evaluate(
        _tiny(corpus, steps=4, tune=2, clip_id=target), workdir
    )
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [x["phase"] for x in lines] == ["general"] * 4 + ["finetune"] * 2
    assert all(np.isfinite(x["loss"]) for x in lines)
    for name in ("test_split", "target_heldout"):
        r = results[name]
        for method in ("ours", "mean_expression", "shuffled_audio"):
            assert np.isfinite(r[method]["lmd_px"]) and np.isfinite(r[method]["mse"])
    assert results["target_heldout"]["frames"] > 0
    assert os.path.exists(os.path.join(workdir, "eval", "metrics.md"))
    # Rerunning a finished workdir trains nothing more and evaluates the same.
    again = train_expression.train_and_evaluate(
        _tiny(corpus, steps=4, tune=2, clip_id=target), workdir
    )
    assert again["test_split"]["ours"]["mse"] == pytest.approx(results["test_split"]["ours"]["mse"])


def test_finetune_from_a_general_run_with_frozen_groups(corpus, tmp_path):
    clips = records.load_dataset(corpus)
    target = [c for c in clips if c.split == "test"][0].clip_id
    general = str(tmp_path / "general")
    expression.train(_tiny(corpus, steps=3), general)
    _, source = runner.load_variables(expression.TRAINER, general)
    c = _tiny(corpus, steps=3, tune=2, clip_id=target)
    c.finetune.init_from = general
    c.finetune.frozen = ("encoder", "lstm")
    tuned = str(tmp_path / "tuned")
    state = expression.train(c, tuned)
    lines = [json.loads(x) for x in open(os.path.join(tuned, "metrics.jsonl"))]
    assert [x["phase"] for x in lines] == ["finetune"] * 2  # no general phase of its own
    assert int(state.step) == 2
    for group in ("encoder", "lstm"):  # frozen: exactly the general run's parameters
        for a, b in zip(
            jax.tree.leaves(state.params[group]),
            jax.tree.leaves(source["params"][group]),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    head = state.params["head"]["kernel"]
    assert not np.allclose(np.asarray(head), np.asarray(source["params"]["head"]["kernel"]))
    # The evaluated head bias was refitted (finetune.calibrate_bias): the mean prediction over
    # the tuning frames equals their mean, which the general run's prediction does not.
    config, variables = runner.load_variables(expression.TRAINER, tuned)
    model = build_expression_model(config.model)
    clip = [x for x in clips if x.clip_id == target]
    tune = sampling.prepare_expression_clips(clip, 25.0, config.model.num_exp, 100)[0]
    out = model.apply(variables, tune.windows[None], train=False)
    np.testing.assert_allclose(np.mean(out["exp"][0], 0), tune.exp.mean(0), atol=1e-4)
    np.testing.assert_allclose(np.mean(out["pose"][0], 0), tune.pose.mean(0), atol=1e-5)
    before = model.apply(source, tune.windows[None], train=False)
    assert not np.allclose(np.mean(before["exp"][0], 0), tune.exp.mean(0), atol=1e-2)
    again = expression.calibrate_head_bias(model, variables, tune)  # idempotent
    np.testing.assert_allclose(
        again["head"]["bias"], variables["params"]["head"]["bias"], rtol=0, atol=1e-4
    )
    # The evaluation reads the general run's corpus; none is generated in the fine-tune workdir.
    results = expression_eval.evaluate_workdir(tuned)
    assert results["target_heldout"]["frames"] > 0


def test_a_run_trained_on_four_devices_loads_on_one(corpus, tmp_path):
    workdir = str(tmp_path / "four")
    expression.train(_tiny(corpus, steps=1), workdir)  # conftest: 4 faked devices
    code = (
        "import jax; from talkingjax.train import expression as t, runner; "
        f"c, v = runner.load_variables(t.TRAINER, {workdir!r}); "
        "print(jax.device_count(), len(v['params']))"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1", "3"]


def test_finetune_init_from_mismatches_are_named(corpus, tmp_path):
    general = str(tmp_path / "general")
    expression.train(_tiny(corpus, steps=1), general)
    c = _tiny(corpus)
    c.finetune.init_from = general
    with pytest.raises(InputError, match="needs a fine-tune target"):
        expression.train(c, str(tmp_path / "a"))
    target = records.load_dataset(corpus)[0].clip_id
    c = _tiny(corpus, tune=1, clip_id=target)
    c.finetune.init_from = general
    c.model.hidden = 8
    with pytest.raises(InputError, match="has model"):
        expression.train(c, str(tmp_path / "b"))
    assert not os.path.exists(os.path.join(tmp_path, "b", "checkpoints"))


def test_eq7_variant_without_pose_trains(corpus, tmp_path):
    c = _tiny(corpus, steps=2)
    c.model.with_pose = False
    c.loss.kind = "eq7"
    state = expression.train(c, str(tmp_path / "eq7"))
    assert int(state.step) == 2


def test_expression_size_mismatch_is_named(corpus, tmp_path):
    c = _tiny(corpus)
    c.model.num_exp = 5
    with pytest.raises(InputError, match="expression coefficients; the model predicts 5"):
        expression.train(c, str(tmp_path / "bad"))
    assert not os.path.exists(os.path.join(tmp_path, "bad", "checkpoints"))


def test_records_without_expression_are_rejected(tmp_path, corpus):
    clips = records.load_dataset(corpus)
    bare = [dataclasses.replace(c, exp=None) for c in clips]
    records.write_dataset(tmp_path / "bare", bare)
    with pytest.raises(InputError, match="has no expression coefficients"):
        expression.train(_tiny(tmp_path / "bare"), str(tmp_path / "w"))


def test_mouth_metrics_on_known_expressions():
    from talkingjax.face3d import default

    model = default.load_default()
    directions = synthetic_expression.mouth_directions(model)
    exp = np.stack([np.zeros(model.sizes[1]), directions["open"]]).astype(np.float32)
    gap = expression_eval.mouth_opening(model, exp)
    assert gap[1] - gap[0] == pytest.approx(0.1, abs=0.01)  # 1 cm, in 10 cm units
    pts = expression_eval.mouth_points(model, exp)
    assert pts.shape == (2, 20, 2) and np.linalg.norm(pts[1] - pts[0], axis=-1).max() > 3


def test_cli_bad_config_field_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train_expression", "--workdir", str(tmp_path / "w"),
         "--config=experiments/configs/expression.py:tiny", "--config.train.nosuch=1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: bad flag")
