"""Trainer, checkpointing, evaluation and command-line tests on a tiny synthetic corpus.

Runs on the four faked CPU devices of conftest.py, so every update is really data-parallel.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import multihost
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from talkingjax.data import synthetic
from talkingjax.errors import InputError
from talkingjax.evaluation import head_motion as head_motion_eval
from talkingjax.evaluation import pose_table
from talkingjax.train import head_motion, loop, parallel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_config(root, pretrain=2, joint=3):
    return multihost.pose_config(str(root), pretrain, joint)


def _overrides(c):
    """The command-line form of the fields `_tiny_config` changes."""
    m, t = c.model, c.train
    return [
        "--config=experiments/configs/pose.py:tiny",
        f"--config.data.root={c.data.root}",
        f"--config.model.encoder_hidden={m.encoder_hidden}",
        f"--config.model.decoder_hidden={m.decoder_hidden}",
        f"--config.model.encoder_mlp={tuple(m.encoder_mlp)}",
        f"--config.model.window_features={m.window_features}",
        f"--config.model.head_features={tuple(m.head_features)}",
        f"--config.train.batch_size={t.batch_size}",
        f"--config.train.pretrain_steps={t.pretrain_steps}",
        f"--config.train.joint_steps={t.joint_steps}",
        f"--config.train.checkpoint_every={t.checkpoint_every}",
        f"--config.train.log_every={t.log_every}",
    ]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    synthetic.generate_corpus(root, num_videos=4, num_test_videos=2, seconds_per_video=20.0)
    return root


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    head_motion.train(_tiny_config(corpus), workdir)
    return workdir


def _run(args, **kw):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, **kw
    )


def _assert_one_line_error(proc, pattern):
    assert proc.returncode != 0
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1, proc.stderr
    assert pattern in err_lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _restore_params(workdir):
    mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    step = mngr.latest_step()
    tree = mngr.restore(step, args=ocp.args.StandardRestore())
    mngr.close()
    return step, tree


def test_training_runs_both_phases_and_writes_metrics(trained):
    lines = [json.loads(x) for x in open(os.path.join(trained, "metrics.jsonl"))]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5]
    assert [r["phase"] for r in lines] == ["pretrain"] * 2 + ["joint"] * 3
    assert {"loss", "recon", "smooth", "contra", "contra2"} <= set(lines[-1])
    assert all(np.isfinite(r["loss"]) for r in lines)
    step, tree = _restore_params(trained)
    assert step == 5 and int(tree["step"]) == 5


def test_joint_loss_recon_follows_config_reduction(corpus):
    """loss.recon_mean picks Eq. 3's reduction: the MSE is the sum / (12 T); absent = sum."""
    c = _tiny_config(corpus)
    model = head_motion.build_model(loop.model_config(c))
    clips, _ = head_motion.load_data(c, "")
    from talkingjax.data import sampling

    frames = head_motion.window_frames(c)
    sampler = sampling.TripletSampler(sampling.prepare_videos(clips, 25.0), frames, 25.0, 0)
    batch = sampler.sample(0, 4)
    mesh = parallel.make_mesh(1)
    opt = optax.sgd(0.0)
    recon = {}
    for mean in (None, False, True):
        cfg = c.loss.copy_and_resolve_references()
        if mean is None:
            del cfg["recon_mean"]  # a workdir written before the field existed
        else:
            cfg.recon_mean = mean
        update = loop.make_update(head_motion.joint_loss, model, cfg, opt)
        update = parallel.data_parallel(update, mesh)
        variables = head_motion.init_variables(c, model)  # the update donates its state
        state = parallel.replicate(loop.init_state(variables, opt), mesh)
        _, metrics = update(state, parallel.shard_batch(batch, mesh))
        recon[mean] = float(metrics["recon"])
    assert recon[None] == recon[False]
    np.testing.assert_allclose(recon[True] * 12 * frames, recon[False], rtol=1e-4)


def test_data_parallel_update_matches_single_device(corpus):
    """Gradients averaged over 4 devices = gradients of the whole batch on one device."""
    assert jax.device_count() == 4
    c = _tiny_config(corpus)
    model = head_motion.build_model(loop.model_config(c))
    # SGD, not Adam: Adam maps the ~0 gradients of conv biases before BatchNorm (exactly 0 in
    # exact arithmetic) to +-lr by sign, which would compare float noise.
    opt = optax.sgd(0.1)
    clips, _ = head_motion.load_data(c, "")
    from talkingjax.data import sampling

    sampler = sampling.TripletSampler(
        sampling.prepare_videos(clips, 25.0), head_motion.window_frames(c), 25.0, 0
    )
    batch = sampler.sample(0, 8)
    results = []
    for n in (1, 4):
        mesh = parallel.make_mesh(n)
        update = parallel.data_parallel(
            loop.make_update(head_motion.joint_loss, model, c.loss, opt), mesh
        )
        state = parallel.replicate(loop.init_state(head_motion.init_variables(c, model), opt), mesh)
        state, metrics = update(state, parallel.shard_batch(batch, mesh))
        results.append((jax.device_get(state.params), jax.device_get(state.batch_stats), metrics))
    (p1, s1, m1), (p4, s4, m4) = results
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), p1, p4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), s1, s4)
    np.testing.assert_allclose(float(m1["loss"]), float(m4["loss"]), rtol=1e-4)


def test_batch_not_divisible_by_devices_is_rejected(corpus):
    batch = {"pose": np.zeros((6, 3, 4, 6), np.float32)}
    with pytest.raises(InputError, match="not divisible"):
        parallel.shard_batch(batch, parallel.make_mesh(4))


def test_changed_model_refuses_to_resume_and_keeps_checkpoints(trained, corpus):
    ckpt = os.path.join(trained, "checkpoints")
    before = {f: os.path.getmtime(os.path.join(ckpt, f)) for f in os.listdir(ckpt)}
    c = _tiny_config(corpus)
    c.model.decoder_hidden = 32
    with pytest.raises(InputError, match="different model"):
        head_motion.train(c, trained)
    after = {f: os.path.getmtime(os.path.join(ckpt, f)) for f in os.listdir(ckpt)}
    assert before == after


def test_evaluation_writes_table_json_and_plot(trained):
    results = head_motion_eval.evaluate_workdir(trained)
    ours = "yi2022 (paper 000)"
    audio_only = pose_table.AUDIO_ONLY.format(ours)
    assert list(results["rows"]) == [ours, audio_only, *pose_table.BASELINES]
    for vals in results["rows"].values():
        assert 0.0 <= vals["hs"] <= 1.0 and vals["d_rot"] >= 0.0
    assert 0.0 <= results["rows"][ours]["retrieval"] <= 1.0
    out = os.path.join(trained, "eval")
    md = open(os.path.join(out, "pose_table.md")).read()
    assert f"| {ours} |" in md and f"| {audio_only} |" in md and "Retrieval" in md
    assert json.load(open(os.path.join(out, "pose_table.json")))["num_videos"] == 2
    with open(os.path.join(out, "pose_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # The random-real baseline is a real head: its rotation error is not trivial.
    assert results["rows"][pose_table.RANDOM]["d_rot"] > 0.5


def test_killed_training_resumes_bit_identical(corpus, tmp_path):
    """SIGKILL between checkpoints, rerun the same command: same parameters as no kill."""
    c = _tiny_config(corpus, pretrain=4, joint=36)
    c.train.checkpoint_every = 5
    args = ["experiments.train_pose", *_overrides(c), "--noeval"]
    ref_dir, killed_dir = str(tmp_path / "ref"), str(tmp_path / "killed")
    assert _run([*args, f"--workdir={ref_dir}"], timeout=600).returncode == 0

    proc = subprocess.Popen(
        [sys.executable, "-m", *args, f"--workdir={killed_dir}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = os.path.join(killed_dir, "checkpoints", "10")
    deadline = time.time() + 300
    while not os.path.isdir(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at, _ = _restore_params(killed_dir)
    assert 10 <= killed_at < 40, "the run must be killed before it finished"

    assert _run([*args, f"--workdir={killed_dir}"], timeout=600).returncode == 0
    (s_ref, ref), (s_res, res) = _restore_params(ref_dir), _restore_params(killed_dir)
    assert s_ref == s_res == 40
    jax.tree.map(np.testing.assert_array_equal, ref["params"], res["params"])
    jax.tree.map(np.testing.assert_array_equal, ref["opt_state"], res["opt_state"])
    steps = [json.loads(x)["step"] for x in open(os.path.join(killed_dir, "metrics.jsonl"))]
    assert steps[-1] == 40


def test_unknown_config_override_fails_cleanly(tmp_path):
    workdir = tmp_path / "w"
    proc = _run(
        [
            "experiments.train_pose",
            "--config=experiments/configs/pose.py:tiny",
            f"--workdir={workdir}",
            "--config.train.no_such_field=3",
        ]
    )
    _assert_one_line_error(proc, "no_such_field")
    assert not workdir.exists()


def test_missing_dataset_fails_cleanly_without_a_workdir(tmp_path):
    workdir = tmp_path / "w"
    proc = _run(
        [
            "experiments.train_pose",
            "--config=experiments/configs/pose.py:tiny",
            f"--workdir={workdir}",
            f"--config.data.root={tmp_path / 'nowhere'}",
        ]
    )
    _assert_one_line_error(proc, "no head-motion dataset")
    assert not workdir.exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "not found"),
        ("empty", "empty"),
        ("corrupt", "cannot read"),
        ("silent", "silent"),
        ("short", "at least 1.0 s"),
    ],
)
def test_predict_pose_rejects_bad_audio(trained, tmp_path, case, message):
    import soundfile

    path = tmp_path / "speech.wav"
    rng = np.random.default_rng(0)
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(rng.bytes(5000))
    elif case == "silent":
        soundfile.write(path, np.zeros(32000, np.float32), 16000)
    elif case == "short":
        soundfile.write(path, 0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
    ref = tmp_path / "ref.npy"
    np.save(ref, 0.05 * rng.standard_normal((250, 6)).astype(np.float32))
    out = tmp_path / "pose.npy"
    proc = _run(
        [
            "experiments.predict_pose",
            f"--workdir={trained}",
            f"--audio={path}",
            f"--reference={ref}",
            "--reference_fps=25",
            f"--out={out}",
        ]
    )
    _assert_one_line_error(proc, message)
    assert not out.exists() and not list(tmp_path.glob("pose.npy*"))


@pytest.mark.parametrize("case, message", [("short", "at least 4.0 s"), ("nan", "NaN")])
def test_predict_pose_rejects_bad_reference_and_writes_on_success(trained, tmp_path, case, message):
    import soundfile

    rng = np.random.default_rng(1)
    speech = tmp_path / "speech.wav"
    soundfile.write(speech, 0.1 * rng.standard_normal(16000 * 3).astype(np.float32), 16000)
    good = 0.05 * rng.standard_normal((250, 6)).astype(np.float32)
    bad = good[:90] if case == "short" else good.copy()
    if case == "nan":
        bad[17, 2] = np.nan
    ref, out = tmp_path / "ref.npy", tmp_path / "pose.npy"
    np.save(ref, bad)
    cmd = [
        "experiments.predict_pose",
        f"--workdir={trained}",
        f"--audio={speech}",
        f"--reference={ref}",
        "--reference_fps=25",
        "--fps=30",
        f"--out={out}",
    ]
    _assert_one_line_error(_run(cmd), message)
    assert not out.exists()
    np.save(ref, good)
    ok = _run(cmd)
    assert ok.returncode == 0, ok.stderr
    assert np.load(out).shape == (90, 6)


def test_eval_pose_on_a_non_workdir_fails_cleanly(tmp_path):
    proc = _run(["experiments.eval_pose", f"--workdir={tmp_path}"])
    _assert_one_line_error(proc, "not a training workdir")
    assert not (tmp_path / "eval").exists()
