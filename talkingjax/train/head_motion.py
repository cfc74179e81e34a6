"""Trainer of paper 000's head motion encoder E_m and decoder D_m (Sec. III-C, IV-A3).

Two phases as in the paper: (1) E_m alone with the pattern contrastive loss (Eq. 1), then
(2) E_m and D_m jointly with Eq. 2. Each phase gets a fresh Adam state (the paper trains them
as two runs). One train step is a data-parallel update: every device computes gradients on
its share of the triplets, `pmean` over the `data` axis averages them, and the replicated
state is updated identically everywhere.

    from talkingjax.train import head_motion
    head_motion.train_and_evaluate(config, workdir)   # config: experiments/configs/pose.py
"""

from __future__ import annotations

import math
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from talkingjax import losses
from talkingjax.data import records, sampling
from talkingjax.models import HeadMotionModel, build_model, rows_for_frames
from talkingjax.train import checkpoint, parallel
from talkingjax.train.metric_writer import MetricWriter

# Config fields that must not change when a workdir is resumed.
_RESUME_KEYS = ("model", "data", "seed")


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; checkpointed as one pytree."""

    step: jnp.ndarray  # int32 scalar: number of updates done
    params: Any
    batch_stats: Any
    opt_state: Any


def make_optimizer(lr: float, grad_clip: float) -> optax.GradientTransformation:
    """Adam (the paper's optimizer), optionally after global-norm clipping (grad_clip > 0)."""
    # Both phases use the same chain, so their states share one structure (one checkpoint).
    clip = optax.clip_by_global_norm(grad_clip) if grad_clip > 0 else optax.identity()
    return optax.chain(clip, optax.adam(lr))


def window_frames(config) -> int:
    return int(round(config.data.window_seconds * config.model.fps))


def init_state(model: HeadMotionModel, config, optimizer) -> TrainState:
    """Initial parameters from `fold_in(key(seed), 0)`, and the optimizer state."""
    frames = window_frames(config)
    rows = rows_for_frames(frames, model.decoder.rows_per_frame)
    variables = model.init(
        jax.random.fold_in(jax.random.key(config.seed), 0),
        jnp.zeros((1, frames, records.POSE_DIM)),
        jnp.zeros((1, rows, 13)),
    )
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
    )


def _encode_triplets(model, variables, pose):
    """[B, 3, T, 6] -> [B, 3, k]: one encoder call for all three clips."""
    b, n, t, d = pose.shape
    x = model.apply(variables, pose.reshape(b * n, t, d), method=HeadMotionModel.encode)
    return x.reshape(b, n, -1)


def pretrain_loss(params, batch_stats, batch, model, loss_cfg):
    """Phase 1 objective: Eq. 1 on the triplet's patterns."""
    x = _encode_triplets(model, {"params": params, "batch_stats": batch_stats}, batch["pose"])
    contra = losses.pattern_contrastive(x[:, 0], x[:, 1], x[:, 2], tau=loss_cfg.tau)
    return contra, ({"loss": contra, "contra": contra}, batch_stats)


def joint_loss(params, batch_stats, batch, model, loss_cfg):
    """Phase 2 objective: Eq. 2 = Eq. 3 + l1 Eq. 4 + l2 Eq. 1 + l3 Eq. 5.

    D_m decodes the anchor's audio with all three patterns in one call: index 0 is the
    reconstruction y_f of Eq. 3/4, indices 0-2 are the three predictions of Eq. 5.
    """
    variables = {"params": params, "batch_stats": batch_stats}
    pose = batch["pose"]
    x = _encode_triplets(model, variables, pose)
    y, updates = model.apply(
        variables,
        batch["mfcc"],
        x,
        train=True,
        method=HeadMotionModel.decode,
        mutable=["batch_stats"],
    )
    recon = losses.pose_reconstruction(y[:, 0], pose[:, 0])
    smooth = losses.pose_smoothness(y[:, 0])
    contra = losses.pattern_contrastive(x[:, 0], x[:, 1], x[:, 2], tau=loss_cfg.tau)
    contra2 = losses.pose_contrastive(y[:, 0], y[:, 1], y[:, 2], tau2=loss_cfg.tau2)
    total = losses.head_motion_objective(
        recon,
        smooth,
        contra,
        contra2,
        lambda_p1=loss_cfg.lambda_p1,
        lambda_p2=loss_cfg.lambda_p2,
        lambda_p3=loss_cfg.lambda_p3,
    )
    metrics = {
        "loss": total,
        "recon": recon,
        "smooth": smooth,
        "contra": contra,
        "contra2": contra2,
    }
    return total, (metrics, updates.get("batch_stats", batch_stats))


def make_update(loss_fn, model, loss_cfg, optimizer):
    """The per-device update `(state, local_batch) -> (state, metrics)` for `loss_fn`."""

    def update(state: TrainState, batch):
        # Differentiate a per-device (varying) copy of the replicated parameters: shard_map
        # would otherwise sum gradients of invariant inputs over devices by itself. Here each
        # device's gradient is of its own shard's mean loss, averaged explicitly below.
        params, stats = parallel.per_device((state.params, state.batch_stats))
        grad_fn = jax.grad(loss_fn, has_aux=True)
        grads, (metrics, batch_stats) = grad_fn(params, stats, batch, model, loss_cfg)
        grads = jax.lax.pmean(grads, parallel.DATA_AXIS)
        metrics = jax.lax.pmean(metrics, parallel.DATA_AXIS)
        # BatchNorm already averaged its statistics over the axis; pmean makes that explicit
        # to shard_map's replication check and is a no-op on equal values.
        batch_stats = jax.lax.pmean(batch_stats, parallel.DATA_AXIS)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        ), metrics

    return update


def phase_steps(config, sampler: sampling.TripletSampler) -> tuple[int, int]:
    """(pretrain, joint) step counts: explicit steps, or epochs of non-overlapping windows."""
    per_epoch = sampler.windows_per_epoch() / config.train.batch_size
    pre = config.train.pretrain_steps
    joint = config.train.joint_steps
    pre = pre if pre >= 0 else math.ceil(config.train.pretrain_epochs * per_epoch)
    joint = joint if joint >= 0 else math.ceil(config.train.joint_epochs * per_epoch)
    return int(pre), int(joint)


def load_data(config, workdir: str) -> tuple[list[records.Clip], list[records.Clip]]:
    """(train, test) clips of `config.data.root`, or of the synthetic corpus in the workdir."""
    root = config.data.root
    if not root:
        from talkingjax.data import synthetic

        root = os.path.join(workdir, "synthetic")
        if not os.path.exists(os.path.join(root, "manifest.json")):
            synthetic.generate_corpus(
                root,
                num_videos=config.data.synthetic_videos,
                num_test_videos=config.data.synthetic_test_videos,
                seconds_per_video=config.data.synthetic_seconds,
                fps=config.model.fps,
                seed=config.seed,
            )
    clips = records.load_dataset(root)
    return ([c for c in clips if c.split == "train"], [c for c in clips if c.split == "test"])


def model_config(config) -> ml_collections.ConfigDict:
    """`config.model` with the mesh axis BatchNorm averages over during training."""
    cfg = ml_collections.ConfigDict(config.model.to_dict())
    cfg.bn_axis_name = parallel.DATA_AXIS
    return cfg


def train(config, workdir: str, mesh=None, stop_after: int | None = None) -> TrainState:
    """Trains (or resumes) both phases; returns the final state.

    Args:
      config: see experiments/configs/pose.py.
      workdir: checkpoints, config.json and metrics.jsonl go here; an existing run resumes.
      mesh: defaults to all devices on one `data` axis.
      stop_after: stop once this many steps are done (for tests and benchmarks).
    """
    # Checked before anything is written; recorded only once the data loaded, so bad input
    # leaves no half-made workdir behind.
    checkpoint.check_workdir_config(workdir, config.to_json(), _RESUME_KEYS)
    mesh = mesh or parallel.make_mesh()
    train_clips, _ = load_data(config, workdir)
    fps = config.model.fps
    sampler = sampling.TripletSampler(
        sampling.prepare_videos(train_clips, fps), window_frames(config), fps, seed=config.seed
    )
    checkpoint.write_workdir_config(workdir, config.to_json())
    pre_steps, joint_steps = phase_steps(config, sampler)
    total = pre_steps + joint_steps
    model = build_model(model_config(config))
    opt = {
        "pretrain": make_optimizer(config.train.pretrain_lr, config.train.grad_clip),
        "joint": make_optimizer(config.train.joint_lr, config.train.grad_clip),
    }
    updates = {
        "pretrain": parallel.data_parallel(
            make_update(pretrain_loss, model, config.loss, opt["pretrain"]), mesh
        ),
        "joint": parallel.data_parallel(
            make_update(joint_loss, model, config.loss, opt["joint"]), mesh
        ),
    }
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints, config.train.checkpoint_every)
    state, step = checkpoint.restore_or(mngr, init_state(model, config, opt["pretrain"]))
    state = parallel.replicate(state, mesh)
    writer = MetricWriter(workdir, total)
    end = total if stop_after is None else min(total, stop_after)
    while step < end:
        phase = "pretrain" if step < pre_steps else "joint"
        if step == pre_steps:  # phase 2 starts with a fresh Adam, as a separate run would
            state = state.replace(
                opt_state=parallel.replicate(opt["joint"].init(state.params), mesh)
            )
        batch = parallel.shard_batch(sampler.sample(step, config.train.batch_size), mesh)
        state, metrics = updates[phase](state, batch)
        step += 1
        saving = mngr.should_save(step) or step == end
        # Checked before every save, so a diverged run never overwrites a good checkpoint.
        if saving or step % config.train.log_every == 0:
            metrics = jax.device_get(metrics)
            if not all(np.isfinite(v) for v in metrics.values()):
                raise FloatingPointError(f"non-finite loss at step {step}: {metrics}")
            writer.write(step, {"phase": phase, **metrics})
        if saving:
            checkpoint.save(mngr, step, state, force=True)
    mngr.wait_until_finished()
    mngr.close()
    return state


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if the workdir has checkpoints), then evaluates on the test split.

    Returns the evaluation results (also written to `<workdir>/eval/`).
    """
    from talkingjax import evaluate

    train(config, workdir)
    return evaluate.evaluate_workdir(workdir)
