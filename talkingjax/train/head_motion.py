"""Trainer of paper 000's head motion encoder E_m and decoder D_m (Sec. III-C, IV-A3).

Two phases as in the paper: (1) E_m alone with the pattern contrastive loss (Eq. 1), then
(2) E_m and D_m jointly with Eq. 2. Each phase gets a fresh Adam state (the paper trains them
as two runs). One train step is a data-parallel update: every device computes gradients on
its share of the triplets, `pmean` over the `data` axis averages them, and the replicated
state is updated identically everywhere.

Data of the phases: phase 1 reads poses only, so with `config.data.silent` its triplets come
from every training clip, records without speech included (more speakers for Eq. 1); phase 2
needs the anchor's audio and samples the clips with speech only. Both are pure functions of
(seed, step).

Starting point: `config.train.init_from` = another head-motion workdir (e.g. the shipped
synthetic model, `talkingjax/assets/models/synthetic/pose`) starts both phases from its
parameters and BatchNorm statistics instead of a fresh initialisation (pretraining on the
synthetic corpus, then training on real poses); its `model` config must equal this one's
(`runner.source_variables`). "" = from scratch.

    from talkingjax.train import head_motion
    head_motion.train(config, workdir)   # config: experiments/configs/pose.py

(`python -m experiments.train_pose` trains, then evaluates with
`talkingjax.evaluation.head_motion`; `talkingjax.predict.HeadMotionPredictor` loads the run.)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from talkingjax import losses
from talkingjax.data import records, sampling, synthetic
from talkingjax.errors import InputError
from talkingjax.models import HeadMotionModel, build_model, rows_for_frames
from talkingjax.train import loop, runner


def window_frames(config) -> int:
    return int(round(config.data.window_seconds * config.model.fps))


def build(config) -> HeadMotionModel:
    """E_m + D_m of `config.model`, BatchNorm averaging over the `data` mesh axis."""
    return build_model(loop.model_config(config))


def init_variables(config, model: HeadMotionModel) -> dict:
    """Initial variables from `fold_in(key(seed), 0)` (one compiled program, bit-identical to
    running `model.init` eagerly, which compiled every small op on its own: 4-7 s of a tiny
    run's start on one CPU core)."""
    frames = window_frames(config)
    rows = rows_for_frames(frames, model.decoder.rows_per_frame)
    init = jax.jit(model.init)
    return init(
        jax.random.fold_in(jax.random.key(config.seed), 0),
        jnp.zeros((1, frames, records.POSE_DIM)),
        jnp.zeros((1, rows, 13)),
    )


def optimizer(config, lr: float | None = None):
    """Adam at `lr` (default `train.joint_lr`) after `train.grad_clip`; both phases'."""
    return loop.make_optimizer(config.train.joint_lr if lr is None else lr, config.train.grad_clip)


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


def recon_mean(loss_cfg) -> bool:
    """Eq. 3's reduction: `loss.recon_mean` (True = the paper's mean square error, False =
    summed over frames and values; `losses.pose_reconstruction`). Workdirs written before the
    field existed trained with the sum."""
    return bool(loss_cfg.get("recon_mean", False))


def joint_loss(params, batch_stats, batch, model, loss_cfg):
    """Phase 2 objective: Eq. 2 = Eq. 3 + l1 Eq. 4 + l2 Eq. 1 + l3 Eq. 5.

    Eq. 3's reduction is `recon_mean(loss_cfg)`.

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
    recon = losses.pose_reconstruction(y[:, 0], pose[:, 0], mean=recon_mean(loss_cfg))
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
    return loop.load_data(config, workdir, "synthetic", synthetic.generate_corpus)


def samplers(
    config, train_clips: list[records.Clip]
) -> tuple[sampling.TripletSampler, sampling.TripletSampler]:
    """(pretrain, joint) triplet samplers of the training clips (module docstring).

    The pretrain sampler is pose-only over all clips (records without speech included); the
    joint sampler has the anchor's audio and uses the clips with speech only. Without records
    without speech both draw the same pose windows (one seed, the same clips).
    """
    fps, window = config.model.fps, window_frames(config)
    speech = [c for c in train_clips if c.has_audio]
    if not speech:
        raise InputError("no training clip has speech; the joint phase needs the audio")
    joint = sampling.TripletSampler(
        sampling.prepare_videos(speech, fps), window, fps, seed=config.seed
    )
    if len(speech) == len(train_clips):
        pretrain = sampling.TripletSampler(joint.videos, window, fps, config.seed, pose_only=True)
    else:
        videos = sampling.prepare_videos(train_clips, fps, pose_only=True)
        pretrain = sampling.TripletSampler(videos, window, fps, config.seed, pose_only=True)
    return pretrain, joint


def initial_variables(config) -> dict | None:
    """The variables of `config.train.init_from` (a head-motion workdir with the same model
    config), or None (start from `init_variables`)."""
    source = config.train.get("init_from", "")
    if not source:
        return None
    return runner.source_variables(TRAINER, source, config)


def plan(config, workdir: str) -> tuple[list[loop.Phase], dict | None]:
    """The two phases (`runner.Trainer.plan`): encoder pretraining, then joint training;
    the variables of `train.init_from` (or None)."""
    train_clips, _ = load_data(config, workdir)
    loop.write_train_clips(workdir, config.data.root, loop.clip_entries(train_clips))
    pretrain, joint = samplers(config, train_clips)
    pre_steps, joint_steps = phase_steps(config, joint)
    phases = [
        loop.Phase("pretrain", pre_steps, pretrain_loss,
                   optimizer(config, config.train.pretrain_lr), pretrain.sample),
        loop.Phase("joint", joint_steps, joint_loss,
                   optimizer(config, config.train.joint_lr), joint.sample),
    ]  # fmt: skip
    return phases, initial_variables(config)


TRAINER = runner.Trainer(
    resume_keys=("model", "data", "seed"),
    build=build,
    plan=plan,
    init=init_variables,
    optimizer=optimizer,
)


# train(config, workdir, mesh=None, stop_after=None) -> TrainState: trains (or resumes)
# both phases (`runner.train` of this module's TRAINER).
train = functools.partial(runner.train, TRAINER)
