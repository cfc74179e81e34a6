"""Real multi-process data parallelism: two processes on localhost with 2 faked CPU devices
each, joined by `jax.distributed` over gloo (`tests/multihost.py`), train as one process with
4 devices does; a kill of both and a restart resumes from the shared checkpoint; only
process 0 writes the workdir's files.

Equality: both runs split the global batch the same way over 4 devices and average the
gradients with one all-reduce, but the in-process and the gloo all-reduce add the 4 partial
gradients in different orders, so gradients agree to float32 rounding (~1e-7 relative), not
bit for bit. The logged loss and gradient norm of every step then agree to rtol 1e-4
(measured: <= 3e-5 after 8 steps), and every parameter to 1% of how far training moved it
(measured: <= 0.4%) -- except a bias feeding a normalisation (BatchNorm subtracts it again):
its gradient is 0 up to rounding noise, which Adam normalises into steps of up to its
learning rate with either sign. Those may differ by at most 2 x lr per step, and are the only
leaves allowed to (at most an eighth of them); the normalisation's running mean averages
them, so the model state gets the same absolute bound.
"""

import json
import os
import signal
import time

import jax
import multihost
import numpy as np
import pytest

from experiments.configs import pose as pose_configs
from talkingjax.data import gan_pairs, synthetic, synthetic_expression
from talkingjax.train import checkpoint, expression, gan, head_motion, loop


def _noise_pairs(clips=2, frames=8, size=64):
    """(render, real) pairs of smooth noise with a disc for the face: what one training step
    reads, without rendering faces (9 s on one core for the smallest synthetic set)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(np.uint8) * 255
    out = []
    for i in range(clips):
        coarse = rng.integers(0, 256, (frames, size // 8, size // 8, 3), np.uint8)
        real = coarse.repeat(8, axis=1).repeat(8, axis=2)
        render = np.where(disc[None, :, :, None] > 0, real[:, ::-1], 255).astype(np.uint8)
        mask = np.broadcast_to(disc, (frames, size, size)).copy()
        out.append(gan_pairs.PairClip(f"noise_{i}", f"id{i}", 25.0, real, render, mask))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("multihost_data")
    corpus = str(base / "pose")
    synthetic.generate_corpus(corpus, num_videos=4, num_test_videos=2, seconds_per_video=20.0)
    pairs = str(base / "pairs")
    gan_pairs.save(pairs, _noise_pairs(), 64)
    expr = str(base / "expression")
    synthetic_expression.generate_expression_corpus(
        expr, num_videos=2, num_test_videos=1, seconds_per_video=6.0
    )
    return {"pose": corpus, "pairs": pairs, "expression": expr}


def _state(trainer, workdir):
    """The workdir's latest TrainState, restored onto this process's first device."""
    c = checkpoint.load_workdir_config(workdir)
    model = trainer.build(c)
    target = jax.eval_shape(lambda: loop.init_state(trainer.init(c, model), trainer.optimizer(c)))
    return checkpoint.load(workdir, target)


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _assert_same_run(trainer, ref_dir, mp_dir, lr, steps):
    """Same steps, logged losses and gradient norms, parameters and model state (module
    docstring for the tolerances)."""
    ref, got = _state(trainer, ref_dir), _state(trainer, mp_dir)
    assert int(ref.step) == int(got.step) == steps
    c = checkpoint.load_workdir_config(ref_dir)
    init = trainer.init(c, trainer.build(c))["params"]
    far = {}
    for (path, a), b, a0 in zip(
        jax.tree_util.tree_leaves_with_path(ref.params),
        jax.tree.leaves(got.params),
        jax.tree.leaves(init),
        strict=True,
    ):
        a, b, a0 = (np.asarray(x, np.float64) for x in (a, b, a0))
        # Against how far training moved the leaf: 1% of that (measured: <= 0.4% after 8 steps).
        diff, moved = np.abs(a - b).max(), np.abs(a - a0).max()
        if diff > 1e-2 * moved + 1e-7:
            far[jax.tree_util.keystr(path)] = (float(diff), float(moved))
    assert all(k.endswith("['bias']") and d <= 2 * lr * steps for k, (d, _) in far.items()), far
    assert len(far) <= len(jax.tree.leaves(ref.params)) // 8, far
    # A normalisation's running mean also averages those biases: within their bound.
    for a, b in zip(
        jax.tree.leaves(ref.batch_stats), jax.tree.leaves(got.batch_stats), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=2 * lr * steps)
    lines_ref, lines_got = _metrics(ref_dir), _metrics(mp_dir)
    assert [r["step"] for r in lines_got] == [r["step"] for r in lines_ref]
    for r, g in zip(lines_ref, lines_got, strict=True):
        for key in ("loss", "grad_norm"):
            np.testing.assert_allclose(g[key], r[key], rtol=1e-4, err_msg=f"step {r['step']}")


def _assert_only_process_0_wrote(audit, workdir_name):
    """Process 1 wrote nothing in the workdir but its part of Orbax's checkpoints; process 0
    wrote the workdir's own files."""
    others = {p for p in multihost.written(audit, 1) if p.startswith(workdir_name)}
    assert others and all(p.startswith(f"{workdir_name}/checkpoints") for p in others), others
    mine = multihost.written(audit, 0)
    for name in ("config.json", "metrics.jsonl", "train_clips.json"):
        assert any(p.startswith(f"{workdir_name}/{name}") for p in mine), (name, mine)


def test_two_processes_train_pose_as_one_and_resume_after_a_kill(data, tmp_path):
    total = 8  # joint steps only: the pretraining phase would be a second program to compile
    c = multihost.pose_config(data["pose"], pretrain=0, joint=total)
    ref_dir = str(tmp_path / "ref")
    head_motion.train(c, ref_dir)  # one process, conftest's 4 devices

    workdir, audit = tmp_path / "run", str(tmp_path / "audit")
    flags = multihost.config_flags(c, pose_configs.get_config("tiny"))
    command = ["-m", "experiments.train_pose", "--config=experiments/configs/pose.py:tiny",
               *flags, "--noeval", f"--workdir={workdir}"]  # fmt: skip
    procs = multihost.launch(command, audit, watch=str(tmp_path))
    first = workdir / "checkpoints" / "2"
    deadline = time.time() + 300
    while not first.is_dir() and all(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.02)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    killed_at = checkpoint.latest_step(str(workdir))
    assert 2 <= killed_at < total, "both processes must be killed before the run finished"
    _assert_only_process_0_wrote(audit, "run")

    procs = multihost.launch(command, str(tmp_path / "audit_resumed"), watch=str(tmp_path))
    multihost.wait(procs, str(tmp_path / "audit_resumed"))
    _assert_same_run(head_motion.TRAINER, ref_dir, str(workdir), c.train.joint_lr, total)
    _assert_only_process_0_wrote(str(tmp_path / "audit_resumed"), "run")


def test_two_processes_train_a_gan_and_an_expression_step_as_one(data, tmp_path):
    gan_c = multihost.gan_config(data["pairs"])
    expr_c = multihost.expression_config(data["expression"])
    ref = tmp_path / "ref"
    gan.train(gan_c, str(ref / "gan"))
    expression.train(expr_c, str(ref / "expression"))

    out, audit = tmp_path / "run", str(tmp_path / "audit")
    job = ["job", "gan_expression", str(out), data["pairs"], data["expression"]]
    multihost.wait(multihost.launch(job, audit, watch=str(tmp_path)), audit)
    _assert_same_run(gan.TRAINER, str(ref / "gan"), str(out / "gan"), gan_c.train.lr, 1)
    _assert_same_run(
        expression.TRAINER, str(ref / "expression"), str(out / "expression"), expr_c.train.lr, 1
    )
    _assert_only_process_0_wrote(audit, "run/gan")
    _assert_only_process_0_wrote(audit, "run/expression")
