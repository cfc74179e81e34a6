"""Trainer of the audio-to-expression regressor (paper 000 Eq. 6-7; paper 001 Eq. 1-2).

Two phases on the shared loop (`talkingjax.train.loop`): a general phase on many speakers'
16-frame windows, then (when `finetune.clip_id` is set) a fine-tune on the first
`finetune.frames` frames of one target clip with a fresh Adam at a lower rate, as the 2020
code personalises the model on the first 300 frames of the target video.

    from talkingjax.train import expression
    expression.train_and_evaluate(config, workdir)   # config: experiments/configs/expression.py
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections

from talkingjax import losses
from talkingjax.data import records, sampling
from talkingjax.errors import InputError
from talkingjax.models import build_expression_model
from talkingjax.train import checkpoint, loop, parallel

_RESUME_KEYS = ("model", "data", "finetune", "seed")


def model_config(config) -> ml_collections.ConfigDict:
    """`config.model` with the mesh axis BatchNorm averages over during training."""
    cfg = ml_collections.ConfigDict(config.model.to_dict())
    cfg.bn_axis_name = parallel.DATA_AXIS
    return cfg


def loss_fn(params, batch_stats, batch, model, loss_cfg):
    """Eq. 7 of paper 000 or Eq. 2 of paper 001 on a batch of windows."""
    out, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        batch["windows"],
        train=True,
        mutable=["batch_stats"],
    )
    if loss_cfg.kind == "eq7":
        total = losses.expression_loss(out["exp"], batch["exp"], lambda_e1=loss_cfg.lambda_e1)
        metrics = {"loss": total}
    elif loss_cfg.kind == "p001_eq2":
        total = losses.joint_expression_pose_loss(
            out["exp"],
            batch["exp"],
            out["pose"],
            batch["pose"],
            w_pose=loss_cfg.w_pose,
            w_pose_smooth=loss_cfg.w_pose_smooth,
            w_exp_smooth=loss_cfg.w_exp_smooth,
        )
        metrics = {"loss": total, "pose_mse": jnp.mean((out["pose"] - batch["pose"]) ** 2)}
    else:
        raise InputError(f"unknown loss.kind {loss_cfg.kind!r}; expected 'eq7' or 'p001_eq2'")
    metrics["exp_mse"] = jnp.mean((out["exp"] - batch["exp"]) ** 2)
    return total, (metrics, updates.get("batch_stats", batch_stats))


def load_data(config, workdir: str) -> tuple[list[records.Clip], list[records.Clip]]:
    """(train, test) clips of `config.data.root`, or of the synthetic expression corpus."""
    root = config.data.root
    if not root:
        from talkingjax.data import synthetic_expression

        root = os.path.join(workdir, "synthetic_expression")
        if not os.path.exists(os.path.join(root, "manifest.json")):
            synthetic_expression.generate_expression_corpus(
                root,
                num_videos=config.data.synthetic_videos,
                num_test_videos=config.data.synthetic_test_videos,
                seconds_per_video=config.data.synthetic_seconds,
                fps=config.model.fps,
                seed=config.seed,
            )
    clips = records.load_dataset(root)
    return [c for c in clips if c.split == "train"], [c for c in clips if c.split == "test"]


def target_clip(config) -> records.Clip | None:
    """The fine-tuning target (`finetune.root` / `finetune.clip_id`), or None."""
    if not config.finetune.clip_id:
        return None
    clips = records.load_dataset(config.finetune.root or config.data.root)
    for clip in clips:
        if clip.clip_id == config.finetune.clip_id:
            return clip
    raise InputError(
        f"fine-tune clip {config.finetune.clip_id!r} not in {config.finetune.root}; "
        f"it has {sorted(c.clip_id for c in clips)[:10]}"
    )


def init_state(model, config, optimizer) -> loop.TrainState:
    """Initial parameters from `fold_in(key(seed), 0)`, and the optimizer state."""
    w = config.data.window_frames
    variables = model.init(
        jax.random.fold_in(jax.random.key(config.seed), 0), jnp.zeros((1, w, 28, 12)), train=False
    )
    return loop.init_state(variables, optimizer)


def train(config, workdir: str, mesh=None, stop_after: int | None = None) -> loop.TrainState:
    """Trains (or resumes) the general phase and the optional fine-tune; returns the state."""
    checkpoint.check_workdir_config(workdir, config.to_json(), _RESUME_KEYS)
    fps, num_exp = config.model.fps, config.model.num_exp
    train_clips, _ = load_data(config, workdir)
    general = sampling.WindowSampler(
        sampling.prepare_expression_clips(train_clips, fps, num_exp),
        config.data.window_frames,
        config.seed,
    )
    target = target_clip(config)
    checkpoint.write_workdir_config(workdir, config.to_json())
    model = build_expression_model(model_config(config))
    opt = loop.make_optimizer(config.train.lr, config.train.grad_clip, config.train.b1)
    phases = [loop.Phase("general", config.train.steps, loss_fn, opt, general.sample)]
    if target is not None:
        tune = sampling.WindowSampler(
            sampling.prepare_expression_clips([target], fps, num_exp, config.finetune.frames),
            config.data.window_frames,
            config.seed + 1,
        )
        tune_opt = loop.make_optimizer(config.finetune.lr, config.train.grad_clip, config.train.b1)
        phases.append(loop.Phase("finetune", config.finetune.steps, loss_fn, tune_opt, tune.sample))
    state = init_state(model, config, opt)
    return loop.run_phases(workdir, config, model, phases, state, mesh, stop_after)


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if possible), then evaluates; results also go to `<workdir>/eval/`."""
    from talkingjax import evaluate_expression

    train(config, workdir)
    return evaluate_expression.evaluate_workdir(workdir)
