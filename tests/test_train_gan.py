"""The rendering-to-realistic GAN trainer on tiny synthetic pairs: pretrain + fine-tune phases,
init_from, held-out evaluation with the raw-render baseline and the strip, the memory
variant, and bad input.

Runs on the four faked CPU devices of conftest.py, so every update is really data-parallel.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.configs import gan as gan_config
from talkingjax.data import gan_pairs
from talkingjax.errors import InputError
from talkingjax.evaluation import gan as gan_eval
from talkingjax.predict import Refiner
from talkingjax.train import gan, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gan_pairs"))
    clips = gan_pairs.synthetic_pairs(num_identities=3, frames=12, size=64, seed=1)
    test = gan_pairs.synthetic_pairs(num_identities=1, frames=12, size=64, seed=2, split="test")
    gan_pairs.save(root, clips + test, 64)
    return root


def _tiny(pairs, steps=2, tune=0, memory=False):
    c = gan_config.get_config("tiny")
    c.data.root = pairs
    c.train.steps = steps
    c.train.checkpoint_every = 2
    c.train.log_every = 1
    c.finetune.root = pairs if tune else ""
    c.finetune.clip_id = "synthetic_1_002" if tune else ""
    c.finetune.steps = tune
    c.model.memory.enabled = memory
    return c


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("gan_run"))
    c = _tiny(pairs, steps=2, tune=2)
    c.finetune.average_from = 1  # the evaluated generator: the mean of the last fine-tune step's
    state = gan.train(c, workdir)  # and the one before's parameters
    return workdir, state


def test_several_pair_directories_join_by_commas(pairs, tmp_path):
    other = str(tmp_path / "other")  # the same clip ids again (e.g. a video made with each albedo)
    gan_pairs.save(other, gan_pairs.load(pairs, split="train")[:1], 64)
    c = _tiny(f"{pairs},{other}")
    clips = gan.pretrain_clips(c, str(tmp_path / "run"))
    assert [x.clip_id for x in clips] == [x.clip_id for x in gan_pairs.load(pairs, "train")] + [
        "synthetic_1_000"
    ]
    c.finetune.clip_id = "synthetic_2_000"  # the test split of the first directory
    assert gan.target_clip(c).split == "test"
    c.data.root = f"{other},{pairs}"
    c.finetune.clip_id = "nobody"
    with pytest.raises(InputError, match="nobody"):
        gan.target_clip(c)


def test_finetune_average_is_the_evaluated_generator(trained):
    workdir, state = trained
    _, variables = runner.load_variables(gan.TRAINER, workdir)
    jax.tree.map(np.testing.assert_array_equal, variables["params"], state.avg_params)
    differ = jax.tree.leaves(
        jax.tree.map(lambda a, p: not np.array_equal(a, p), state.avg_params, state.params)
    )
    assert any(differ), "averaging from fine-tune step 1 must leave avg_params != params"


def test_phases_train_and_evaluate_held_out_frames(trained):
    trained, _ = trained
    lines = [json.loads(x) for x in open(os.path.join(trained, "metrics.jsonl"))]
    assert [x["phase"] for x in lines] == ["pretrain"] * 2 + ["finetune"] * 2
    assert all(np.isfinite(x["loss"]) for x in lines)
    # The pretraining clips are listed (what a shipped model's README must list).
    listed = json.loads(open(os.path.join(trained, "train_clips.json")).read())
    train = gan_pairs.load(listed["root"], split="train")
    assert [c["clip_id"] for c in listed["clips"]] == [c.clip_id for c in train]
    assert all(c["frames"] == 12 and c["albedo"] == ["detailed"] for c in listed["clips"])
    results = gan_eval.evaluate_workdir(trained)
    r = results["clips"]["synthetic_1_002"]
    # The held-out frames are those after finetune.frames (8 of 12).
    assert r["first_frame"] == 8 and r["frames"] == 4
    for kind in ("refined", "raw_render"):
        assert set(r[kind]) == {"psnr", "ssim", "l1", "cpbd"}
        assert np.isfinite(list(r[kind].values())).all()
    assert r["psnr_gain_db"] == pytest.approx(r["refined"]["psnr"] - r["raw_render"]["psnr"])
    assert 0 <= r["attention"]["face"] <= 1
    strip = results["files"]["strip"]
    import cv2

    image = cv2.imread(strip)
    assert image.shape == (2 * 64, 3 * 64, 3)  # eval.strip_frames rows of render|refined|real
    assert json.load(open(results["files"]["json"]))["mean"]["psnr_gain_db"] == pytest.approx(
        results["mean"]["psnr_gain_db"]
    )


def test_an_exported_run_predicts_and_fine_tunes_like_its_workdir(trained, pairs, tmp_path):
    from talkingjax.generation import cache

    out = str(tmp_path / "exported")
    config = runner.export(gan.TRAINER, trained[0], out, dtype="float16")
    assert config.exported_step == 4 and sorted(os.listdir(out)) == [
        "config.json", runner.EXPORT_FILE,
    ]  # fmt: skip
    _, full = runner.load_variables(gan.TRAINER, trained[0])
    _, slim = runner.load_variables(gan.TRAINER, out)
    close = jax.tree.map(
        lambda a, b: a.dtype == np.float32 and np.allclose(a, b, atol=2e-3, rtol=2e-3),
        slim["params"], full["params"],
    )  # fmt: skip
    assert all(jax.tree.leaves(close))
    window = gan_pairs.window(gan_pairs.load(pairs, "test")[0], 5)[None]
    a = Refiner.from_workdir(trained[0])(window)["image"]
    b = Refiner.from_workdir(out)(window)["image"]
    np.testing.assert_allclose(a, b, atol=0.02)
    assert len(cache.workdir_fingerprint(out)) == 16
    c = _tiny(pairs, steps=0, tune=1)
    c.finetune.init_from = out  # a fine-tune starts from the exported variables
    gan.train(c, str(tmp_path / "tuned"))
    with pytest.raises(InputError, match="step"):
        runner.load_variables(gan.TRAINER, out, step=2)


def test_refiner_raw_render_baseline_is_its_input(trained, pairs):
    refine = Refiner.from_workdir(trained[0], batch=3)
    clip = gan_pairs.load(pairs)[0]
    windows = np.stack([gan_pairs.window(clip, t) for t in range(5)])
    out = refine(windows)
    assert out["image"].shape == (5, 64, 64, 3) and out["attention"].shape == (5, 64, 64, 1)
    # Eq. 8 holds on the output.
    a = out["attention"]
    want = a * windows[..., 6:] + (1 - a) * out["color"]
    np.testing.assert_allclose(out["image"], want, atol=1e-5)
    with pytest.raises(InputError, match="takes"):
        refine(windows[..., :6])


def test_self_ensemble_refiner_and_its_evaluation(trained, pairs, tmp_path):
    refine = Refiner.from_workdir(trained[0], batch=3)
    mirrored = refine.with_ensemble(0)
    assert (refine.passes, mirrored.passes, refine.with_ensemble(2).passes) == (1, 2, 18)
    clip = gan_pairs.load(pairs)[0]
    windows = np.stack([gan_pairs.window(clip, t) for t in range(4)])
    one, flipped = refine(windows), refine(windows[:, :, ::-1].copy())
    for k in ("image", "color", "attention"):
        want = (one[k] + flipped[k][:, :, ::-1]) / 2
        np.testing.assert_allclose(mirrored(windows)[k], want, atol=1e-5)
    results = gan_eval.evaluate_workdir(trained[0], out_dir=str(tmp_path), ensemble_shift=1)
    r = results["clips"]["synthetic_1_002"]
    assert r["self_ensemble"] == {"shift": 1, "passes": 18}
    assert r["psnr_gain_db_self_ensemble"] == pytest.approx(
        r["refined_self_ensemble"]["psnr"] - r["raw_render"]["psnr"]
    )
    assert r["refined_self_ensemble"]["psnr"] != r["refined"]["psnr"]
    assert "refined_self_ensemble" in results["mean"]
    import cv2

    # render | refined | refined (self-ensemble) | real
    assert cv2.imread(results["files"]["strip"]).shape == (2 * 64, 4 * 64, 3)


def test_init_from_finetunes_only_and_checks_the_model(trained, pairs, tmp_path):
    c = _tiny(pairs, tune=2)
    c.finetune.init_from = trained[0]
    c.model.dropout = 0.0  # shapes no parameter: a fine-tune may drop the pretraining's dropout
    workdir = str(tmp_path / "tuned")
    gan.train(c, workdir)
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [x["phase"] for x in lines] == ["finetune"] * 2
    c.model.d_features = (8, 8)
    bad = str(tmp_path / "bad")
    with pytest.raises(InputError, match="init_from"):
        gan.train(c, bad)
    assert not os.path.exists(os.path.join(bad, "config.json"))


def test_memory_variant_trains_writes_memory_and_retrieves(pairs, tmp_path):
    workdir = str(tmp_path / "memory")
    state = gan.train(_tiny(pairs, steps=2, memory=True), workdir)
    memory = state.batch_stats["memory"]
    # 2 steps x batch 4 written (global batch, gathered over the devices), replicated.
    assert int(np.sum(np.any(np.asarray(memory.keys) != 0, axis=1))) >= 4
    assert {"arcface", "triplet"} <= set(
        json.loads(open(os.path.join(workdir, "metrics.jsonl")).readline())
    )
    refine = Refiner.from_workdir(workdir)
    clip = gan_pairs.load(pairs)[0]
    windows = np.stack([gan_pairs.window(clip, t) for t in range(3)])
    ids = refine.identity_features(windows)
    assert ids.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(ids, axis=1), 1.0, atol=1e-5)
    out = refine(windows)
    np.testing.assert_allclose(out["image"], refine(windows, identity=ids)["image"], atol=1e-6)
    # External identity features (e.g. another network's) change the output.
    other = refine(windows, identity=np.roll(ids, 1, axis=1))
    assert not np.allclose(out["image"], other["image"])
    with pytest.raises(InputError, match="identity features"):
        refine(windows, identity=ids[:, :4])


def _identity_encoder_gradients(pairs, lambdas_arcface: tuple[float, ...]) -> list[float]:
    """Largest |d loss / d identity-encoder parameter| of one memory-variant batch, per ArcFace
    weight (one compiled program: the weight is an argument, not a constant)."""
    import types

    from jax.sharding import PartitionSpec as P

    from talkingjax.train import parallel

    c = _tiny(pairs, memory=True)
    nets = gan.build(c.model)
    variables = gan.init_variables(nets, c.model, jax.random.key(0))
    # Away from the initialisation, where the identity MLP's zero-initialised output layer
    # makes G blind to the identity feature (and the test vacuous).
    leaves, tree = jax.tree.flatten(variables["params"]["generator"])
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    variables["params"]["generator"] = jax.tree.unflatten(tree, noisy)
    clips = gan_pairs.load(pairs, split="train")
    batch = gan_pairs.PairSampler(clips, seed=0).sample(0, 2)
    batch["seed"] = np.arange(2, dtype=np.int32)

    def grads(params, batch_stats, batch, lam):
        cfg = types.SimpleNamespace(**{**c.loss.to_dict(), "lambda_arcface": lam})
        return jax.grad(lambda p: gan.loss_fn(p, batch_stats, batch, nets, cfg)[0])(params)

    mesh = parallel.make_mesh(1)
    step = jax.jit(
        jax.shard_map(
            grads, mesh=mesh, in_specs=(P(), P(), P(parallel.DATA_AXIS), P()), out_specs=P()
        )
    )
    replicated = parallel.replicate(variables, mesh)
    sharded = parallel.shard_batch(batch, mesh)
    out = []
    for lam in lambdas_arcface:
        g = step(replicated["params"], replicated["batch_stats"], sharded, np.float32(lam))
        out.append(max(float(np.abs(x).max()) for x in jax.tree.leaves(g["identity_encoder"])))
    return out


def test_memory_variant_identity_encoder_is_trained_by_arcface_only(pairs):
    # Without the ArcFace term, nothing of G's loss (L1, attention, TV, adversarial) reaches
    # the encoder of the real frame: it cannot carry the frame into G during training.
    without, with_arcface = _identity_encoder_gradients(pairs, (0.0, 1.0))
    assert without == 0.0 and with_arcface > 0.0


def test_bad_input_leaves_no_workdir(pairs, tmp_path):
    c = _tiny(pairs, tune=2)
    c.finetune.clip_id = "nobody"
    workdir = str(tmp_path / "w")
    with pytest.raises(InputError, match="nobody"):
        gan.train(c, workdir)
    assert not os.path.exists(os.path.join(workdir, "config.json"))
    c = _tiny(pairs)
    c.model.size = 32  # the pairs are 64^2
    c.model.g_features = (8, 16, 32)
    with pytest.raises(InputError, match="model.size"):
        gan.train(c, str(tmp_path / "v"))
    c = _tiny(pairs)
    c.model.size = 40  # not a multiple of 2**4
    with pytest.raises(InputError, match="multiples"):
        gan.train(c, str(tmp_path / "u"))


def test_cli_bad_input_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.make_gan_pairs", f"--out={tmp_path / 'p'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: nothing to do")
    assert not os.path.exists(tmp_path / "p")
