"""Trainer of the audio-to-expression regressor (paper 000 Eq. 6-7; paper 001 Eq. 1-2).

Two phases on the shared loop (`talkingjax.train.loop`): a general phase on many speakers'
16-frame windows, then (when `finetune.clip_id` is set) a fine-tune on the first
`finetune.frames` frames of one target clip with a fresh Adam at a lower rate, as the 2020
code personalises the model on the first 300 frames of the target video.

Frame counts of the target are the target video's own frames: the regressor runs at
`model.fps` (25), so a clip at another rate is resampled to it, and the fine-tune takes the
regressor frames that lie within the first `finetune.frames` video frames (`tune_frames`; 250
regressor frames for 300 frames of a 30 fps video), the held-out part starts at the first
regressor frame at or after video frame `finetune.frames` (`heldout_start`). Before, the count
was of regressor frames, so on a 30 fps video the fine-tune saw 20 % past its tuning part.

`train.init_from` (optional) starts the general phase from another general run's parameters
(e.g. the synthetic-trained model, then trained on real speakers: the `real` config). Options
of the general phase for real speakers (all off by default): `data.center_clips` trains on each
clip's motion around the common mean (`center_clips`), `train.average_from` averages the
parameters (SWA) and `train.bn_batches` re-estimates the BatchNorm statistics for the averaged
parameters at the end (`recompute_batch_stats`). In one workdir holding both phases the
fine-tune continues from the last general iterate; from `finetune.init_from` it starts from
the evaluated (averaged) parameters.

    from talkingjax.train import expression
    expression.train(config, workdir)   # config: experiments/configs/expression.py

(`python -m experiments.train_expression` trains, then evaluates with
`talkingjax.evaluation.expression`; `talkingjax.predict.ExpressionPredictor` loads the run.)
"""

from __future__ import annotations

import dataclasses
import functools
import math

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


def tune_frames(video_frames: int, clip_fps: float, model_fps: float) -> int:
    """Regressor frames within the first `video_frames` frames of a clip at `clip_fps`.

    Regressor frame j (at time j / model_fps) is interpolated from the video frames around
    it (`records.resample_pose`); it uses only frames 0..n-1 when j / model_fps <= (n - 1) /
    clip_fps, so the count is floor((n - 1) model_fps / clip_fps) + 1 (n at equal rates; 250
    for n = 300 at 30 fps into 25). At least 1 for n >= 1.
    """
    if video_frames < 1:
        raise InputError(f"finetune.frames must be at least 1, got {video_frames}")
    return int(math.floor((video_frames - 1) * model_fps / clip_fps + 1e-6)) + 1


def heldout_start(video_frames: int, clip_fps: float, model_fps: float) -> int:
    """The first regressor frame at or after video frame `video_frames` (its time or later):
    ceil(n model_fps / clip_fps); n at equal rates, at most one frame past `tune_frames`."""
    return int(math.ceil(video_frames * model_fps / clip_fps - 1e-6))


def center_clips(clips: list[sampling.ExpressionClip]) -> list[sampling.ExpressionClip]:
    """Each clip's expression and pose moved so its mean is the mean over all frames.

    Real speakers differ by a constant expression offset (rest mouth shape, fit drift) and
    rest pose that their speech cannot predict; a general model trained on the raw targets
    learns to recognise the training speakers' offsets from their voices, which does not
    carry over to new speakers. Centred, the targets keep only the frame-to-frame motion
    around one common mean (the frame-weighted mean of all clips, so predictions stay in the
    coefficients' space and the training mean is unchanged). The per-target fine-tune's bias
    refit (`calibrate_head_bias`) puts a target's own mean back.
    """
    exp_mean = np.concatenate([c.exp for c in clips]).mean(axis=0)
    pose_mean = np.concatenate([c.pose for c in clips]).mean(axis=0)
    return [
        dataclasses.replace(
            c, exp=(c.exp - c.exp.mean(0) + exp_mean).astype(np.float32),
            pose=(c.pose - c.pose.mean(0) + pose_mean).astype(np.float32),
        )
        for c in clips
    ]  # fmt: skip


def build(config) -> ExpressionRegressor:
    """The regressor of `config.model`, BatchNorm averaging over the `data` mesh axis."""
    return build_expression_model(loop.model_config(config))


def init_variables(config, model: ExpressionRegressor) -> dict:
    """Initial variables from `fold_in(key(seed), 0)` (one compiled program: run eagerly, the
    initialisation compiled every small op on its own, 15 s of a tiny run's start)."""
    w = config.data.window_frames
    init = jax.jit(functools.partial(model.init, train=False))
    return init(jax.random.fold_in(jax.random.key(config.seed), 0), jnp.zeros((1, w, 28, 12)))


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


def recompute_batch_stats(
    model: ExpressionRegressor, variables: dict, sample, batches: int, batch_size: int
) -> dict:
    """BatchNorm running statistics of `variables["params"]` re-estimated on training data.

    The mean over `batches` batches (`sample(i, batch_size)`, i = 0..batches-1) of each batch's
    own statistics in training mode, as the averaged weights of SWA need (PyTorch's
    `swa_utils.update_bn`): the running statistics left by training are an exponential average
    over the last ~10 batches of the last iterate, not of the averaged weights; on the real
    corpus (speakers recorded very differently) they moved the held-out error by up to 20 %
    between checkpoints 200 steps apart, and recomputed ones did not (README).

    Args:
      model: the regressor without a mesh axis (`build_expression_model(config.model)`).
      variables: {"params", "batch_stats"}. sample: a `WindowSampler.sample`.

    Returns:
      The new "batch_stats" (same structure).
    """
    from talkingjax.models.expression import AudioEncoder

    keep = AudioEncoder.bn_momentum  # running = keep * running + (1 - keep) * batch
    zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])

    @jax.jit
    def batch_stats(params, windows):
        _, upd = model.apply(
            {"params": params, "batch_stats": zeros}, windows, train=True, mutable=["batch_stats"]
        )
        return jax.tree.map(lambda x: x / (1.0 - keep), upd["batch_stats"])

    total = None
    for i in range(batches):
        stats = batch_stats(variables["params"], jnp.asarray(sample(i, batch_size)["windows"]))
        total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    return jax.tree.map(lambda x: np.asarray(x / batches), total)


def _batch_stats_finish(model, sample, batches: int, batch_size: int):
    """`Phase.finish` of the general phase: `recompute_batch_stats` for the evaluated params."""

    def finish(state: loop.TrainState) -> loop.TrainState:
        variables = {"params": state.avg_params, "batch_stats": state.batch_stats}
        stats = recompute_batch_stats(model, variables, sample, batches, batch_size)
        return state.replace(batch_stats=stats)

    return finish


def corpus_workdir(config, workdir: str) -> str:
    """Where the general-phase corpus lives: the `finetune.init_from` run's, else this one's."""
    return config.finetune.get("init_from", "") or workdir


def plan(config, workdir: str) -> tuple[list[loop.Phase], dict | None]:
    """The general phase and the optional fine-tune (`runner.Trainer.plan`).

    With `finetune.init_from` (another workdir of this trainer, same `model` config) the
    general phase is that run's: training starts from its latest parameters and is only the
    fine-tune, as paper 001 personalises one general model for each target. Otherwise
    `train.init_from` (same `model` config) gives the general phase's starting parameters
    (BatchNorm statistics too); the fine-tune's `finetune.init_from` wins over it, so a
    fine-tune of a run made with `train.init_from` starts from that run.
    """
    fps, num_exp, window = config.model.fps, config.model.num_exp, config.data.window_frames
    target = target_clip(config)
    phases, source = [], None
    if config.finetune.init_from:
        if target is None:
            raise InputError("finetune.init_from needs a fine-tune target (finetune.clip_id)")
        source = runner.source_variables(TRAINER, config.finetune.init_from, config)
    else:
        if config.train.get("init_from", ""):
            source = runner.source_variables(TRAINER, config.train.init_from, config)
        train_clips, _ = load_data(config, workdir)
        loop.write_train_clips(workdir, config.data.root, loop.clip_entries(train_clips))
        general = sampling.prepare_expression_clips(train_clips, fps, num_exp)
        if config.data.get("center_clips", False):
            general = center_clips(general)
        sampler = sampling.WindowSampler(general, window, config.seed)
        average = config.train.get("average_from", -1)
        bn_batches = config.train.get("bn_batches", 0)
        finish = None
        if bn_batches > 0:
            bn_sampler = sampling.WindowSampler(general, window, config.seed + 2)
            finish = _batch_stats_finish(
                build_expression_model(config.model),
                bn_sampler.sample,
                bn_batches,
                config.train.batch_size * 4,
            )
        phases.append(
            loop.Phase(
                "general", config.train.steps, loss_fn, optimizer(config), sampler.sample,
                average_from=None if average < 0 else average, finish=finish,
            )
        )  # fmt: skip
    if target is not None:
        first = tune_frames(config.finetune.frames, target.fps, fps)
        tune = sampling.prepare_expression_clips([target], fps, num_exp, first)
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
