"""train.loop pieces every trainer shares: the optimizer with frozen parameter groups, the
averaged parameters, the checkpoints kept and the metrics file across a resume."""

import io
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from talkingjax.train import loop, parallel
from talkingjax.train.metric_writer import MetricWriter


def _params():
    return {"encoder": {"w": jnp.ones((3, 2))}, "head": {"w": jnp.ones(4), "b": jnp.zeros(2)}}


def test_frozen_groups_do_not_move_and_others_match_plain_adam():
    params = _params()
    grads = jax.tree.map(lambda x: jnp.full_like(x, 0.5), params)
    plain, frozen = (
        loop.make_optimizer(1e-2, 1.0),
        loop.make_optimizer(1e-2, 1.0, frozen=("encoder",)),
    )
    s_plain, s_frozen = plain.init(params), frozen.init(params)
    # One checkpoint structure for every phase: freezing adds no optimizer state.
    assert jax.tree.structure(s_plain) == jax.tree.structure(s_frozen)
    u_frozen, _ = frozen.update(grads, s_frozen, params)
    np.testing.assert_array_equal(np.asarray(u_frozen["encoder"]["w"]), 0.0)
    # Zeroing comes before clipping: the rest is plain Adam on the gradient without the encoder.
    only_head = {"encoder": jax.tree.map(jnp.zeros_like, grads["encoder"]), "head": grads["head"]}
    u_ref, _ = plain.update(only_head, s_plain, params)
    for a, b in zip(jax.tree.leaves(u_frozen), jax.tree.leaves(u_ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    new = optax.apply_updates(params, u_frozen)
    np.testing.assert_array_equal(np.asarray(new["encoder"]["w"]), 1.0)
    assert not np.allclose(np.asarray(new["head"]["w"]), 1.0)


def test_unknown_frozen_group_is_named():
    opt = loop.make_optimizer(1e-3, frozen=("decoder",))
    params = _params()
    with pytest.raises(ValueError, match=r"frozen groups \['decoder'\] not among"):
        opt.update(params, opt.init(params), params)


def _quadratic(params, batch_stats, batch, model, loss_cfg):
    del model, loss_cfg
    loss = jnp.mean((params["w"] - batch["x"]) ** 2)
    return loss, ({"loss": loss}, batch_stats)


def test_avg_params_is_the_mean_of_the_iterates_from_average_start():
    mesh = parallel.make_mesh()
    opt = loop.make_optimizer(0.1)
    state = loop.init_state({"params": {"w": jnp.zeros(3)}}, opt)
    update = parallel.data_parallel(loop.make_update(_quadratic, None, None, opt, 2), mesh)
    state = parallel.replicate(state, mesh)
    rng = np.random.default_rng(0)
    iterates, avgs = [], []
    for _ in range(5):
        x = rng.standard_normal((mesh.size * 2, 3)).astype(np.float32)
        state, _ = update(state, parallel.shard_batch({"x": x}, mesh))
        iterates.append(np.array(state.params["w"]))  # a copy: the next step donates it
        avgs.append(np.array(state.avg_params["w"]))
    # Before the start the average is the parameters; from it, the mean of the iterates since.
    np.testing.assert_array_equal(avgs[0], iterates[0])
    np.testing.assert_array_equal(avgs[1], iterates[1])
    for i in (2, 3, 4):
        np.testing.assert_allclose(avgs[i], np.mean(iterates[2 : i + 1], axis=0), rtol=1e-5)
    assert not np.allclose(avgs[4], iterates[4])


def _quadratic_run(workdir, steps, keep=3, stop_after=None):
    """`run_phases` on the quadratic above: one phase, a checkpoint every step."""
    config = ml_collections.ConfigDict(
        {"loss": {}, "train": {"batch_size": 8, "log_every": 1, "keep_checkpoints": keep,
                               "checkpoint_every": 1}}
    )  # fmt: skip
    opt = loop.make_optimizer(0.1)
    sample = lambda step, n: {"x": np.full((n, 3), float(step), np.float32)}  # noqa: E731
    phases = [loop.Phase("p", steps, _quadratic, opt, sample)]
    state = loop.init_state({"params": {"w": jnp.zeros(3)}}, opt)
    return loop.run_phases(str(workdir), config, None, phases, state, stop_after=stop_after)


def _logged_steps(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


def test_checkpoints_keep_the_newest_n(tmp_path):
    _quadratic_run(tmp_path, 5, keep=2)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4", "5"]


def test_resume_drops_the_metrics_logged_after_its_checkpoint(tmp_path):
    _quadratic_run(tmp_path, 5, stop_after=3)
    # A run killed after logging steps 3 and 4 (one line cut short) but saving only step 2.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "phase": "p", "loss": 1.0}) + "\n" + '{"step": 5, "lo')
    shutil.rmtree(tmp_path / "checkpoints" / "3")
    _quadratic_run(tmp_path, 5)
    assert _logged_steps(tmp_path) == [1, 2, 3, 4, 5]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "metrics.jsonl"]


def test_metric_writer_writes_only_on_process_zero(tmp_path, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    MetricWriter(str(tmp_path), 2, stream).write(1, {"loss": 0.5})
    assert not os.listdir(tmp_path) and stream.getvalue() == ""
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    MetricWriter(str(tmp_path), 2, stream).write(1, {"loss": 0.5})
    assert _logged_steps(tmp_path) == [1] and stream.getvalue().startswith("step 1/2 ")
