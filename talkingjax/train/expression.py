"""Trainer of the audio-to-expression regressor (paper 000 Eq. 6-7; paper 001 Eq. 1-2).

Two phases on the shared loop (`talkingjax.train.loop`): a general phase on many speakers'
16-frame windows, then (when `finetune.clip_id` is set) a fine-tune on the first
`finetune.frames` frames of one target clip with a fresh Adam at a lower rate, as the 2020
code personalises the model on the first 300 frames of the target video.

    from talkingjax.train import expression
    expression.train(config, workdir)   # config: experiments/configs/expression.py

(`python -m experiments.train_expression` trains, then evaluates with
`talkingjax.evaluation.expression`; `talkingjax.predict.ExpressionPredictor` loads the run.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax import losses
from talkingjax.data import records, sampling, synthetic_expression
from talkingjax.errors import InputError
from talkingjax.models import ExpressionRegressor, build_expression_model
from talkingjax.train import loop, runner


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
    return loop.load_data(
        config, workdir, "synthetic_expression", synthetic_expression.generate_expression_corpus
    )


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


def build(config) -> ExpressionRegressor:
    """The regressor of `config.model`, BatchNorm averaging over the `data` mesh axis."""
    return build_expression_model(loop.model_config(config))


def init_variables(config, model: ExpressionRegressor) -> dict:
    """Initial variables from `fold_in(key(seed), 0)`."""
    w = config.data.window_frames
    return model.init(
        jax.random.fold_in(jax.random.key(config.seed), 0), jnp.zeros((1, w, 28, 12)), train=False
    )


def optimizer(config, lr: float | None = None, frozen: tuple[str, ...] = ()):
    """Adam at `lr` (default `train.lr`) with `train.b1` after `train.grad_clip`."""
    lr = config.train.lr if lr is None else lr
    return loop.make_optimizer(lr, config.train.grad_clip, config.train.b1, frozen)


def calibrate_head_bias(model, variables: dict, clip: sampling.ExpressionClip) -> dict:
    """The output layer's bias refitted so the mean prediction over `clip` equals its mean.

    Least squares for the bias alone, everything else fixed: the bias moves by the mean
    residual of one whole-clip pass (the way evaluation and inference run the LSTM). Why: a
    300-step fine-tune from a general model leaves the mean of its predictions over the
    tuning frames off the frames' own mean (measured up to 0.18 on a coefficient of the real
    video), an offset every later frame inherits. Idempotent: a second call moves nothing.

    Args:
      model: an `ExpressionRegressor`. variables: {"params", "batch_stats"}.
      clip: the tuning frames.

    Returns:
      The params with `head.bias` shifted.
    """
    out = model.apply(variables, jnp.asarray(clip.windows)[None], train=False)
    shift = [np.mean(clip.exp - np.asarray(out["exp"][0]), axis=0)]
    if "pose" in out:  # the pose outputs are the head's last 6, scaled by pose_scale
        shift.append(np.mean(clip.pose - np.asarray(out["pose"][0]), axis=0) / model.pose_scale)
    params = jax.tree.map(np.asarray, variables["params"])
    head = dict(params["head"], bias=params["head"]["bias"] + np.concatenate(shift))
    return dict(params, head=head)


def _calibrate_finish(model, clip: sampling.ExpressionClip):
    """`Phase.finish` of the fine-tune: `calibrate_head_bias` of the evaluated parameters."""

    def finish(state: loop.TrainState) -> loop.TrainState:
        variables = {"params": state.avg_params, "batch_stats": state.batch_stats}
        return state.replace(avg_params=calibrate_head_bias(model, variables, clip))

    return finish


def corpus_workdir(config, workdir: str) -> str:
    """Where the general-phase corpus lives: the `finetune.init_from` run's, else this one's."""
    return config.finetune.get("init_from", "") or workdir


def plan(config, workdir: str) -> tuple[list[loop.Phase], dict | None]:
    """The general phase and the optional fine-tune (`runner.Trainer.plan`).

    With `finetune.init_from` (another workdir of this trainer, same `model` config) the
    general phase is that run's: training starts from its latest parameters and is only the
    fine-tune, as paper 001 personalises one general model for each target.
    """
    fps, num_exp, window = config.model.fps, config.model.num_exp, config.data.window_frames
    target = target_clip(config)
    phases, source = [], None
    if config.finetune.init_from:
        if target is None:
            raise InputError("finetune.init_from needs a fine-tune target (finetune.clip_id)")
        source = runner.source_variables(TRAINER, config.finetune.init_from, config)
    else:
        train_clips, _ = load_data(config, workdir)
        general = sampling.prepare_expression_clips(train_clips, fps, num_exp)
        sampler = sampling.WindowSampler(general, window, config.seed)
        phases.append(
            loop.Phase("general", config.train.steps, loss_fn, optimizer(config), sampler.sample)
        )
    if target is not None:
        tune = sampling.prepare_expression_clips([target], fps, num_exp, config.finetune.frames)
        sampler = sampling.WindowSampler(tune, window, config.seed + 1)
        opt = optimizer(config, config.finetune.lr, config.finetune.frozen)
        average = config.finetune.average_from
        calibrate = config.finetune.get("calibrate_bias", False)
        phases.append(
            loop.Phase(
                "finetune", config.finetune.steps, loss_fn, opt, sampler.sample,
                average_from=None if average < 0 else average,
                finish=_calibrate_finish(build_expression_model(config.model), tune[0])
                if calibrate else None,
            )
        )  # fmt: skip
    return phases, source


TRAINER = runner.Trainer(
    resume_keys=("model", "data", "finetune", "seed"),
    build=build,
    plan=plan,
    init=init_variables,
    optimizer=optimizer,
)


# train(config, workdir, mesh=None, stop_after=None) -> TrainState: trains (or resumes)
# the general phase and the optional fine-tune (`runner.train` of this module's TRAINER).
train = functools.partial(runner.train, TRAINER)
