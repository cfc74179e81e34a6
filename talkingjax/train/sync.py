"""Trainer of the AV-sync instrument (issue 19): SyncNet-style encoders, multi-way loss.

The model (`talkingjax.models.sync.SyncNet`) maps 5 mouth crops and 0.2 s of MFCC rows to
embeddings; the loss (`talkingjax.losses.sync.run_matching_loss`, Chung et al. 2019's N-way
matching) asks each video window to pick its own audio among the same clip's audio at offsets
-K..K. Batches are runs of R consecutive windows (`talkingjax.data.sync.SyncSampler(run=R)`),
so the R windows share their R + 2K audio encodings.

Curriculum, two phases with a fresh Adam each (warm-up + cosine decay):

- "spaced" (`train.spaced_steps`, may be 0): candidates every `train.spaced_stride` offsets
  only (-15, -10, ..., 15 at stride 5: non-overlapping audio, the easiest version of the
  task). On the real corpus the all-offsets loss sat at chance for the first 600-800 steps
  (the embeddings collapse); the spaced task left chance at once (/work/sync_plan.md).
- "all" (`train.steps`): every offset -K..K, so the minimum is sharp at one frame.

Data: the "train" speakers' speech clips of the committed split (`data.split`) found in the
preprocessed corpus `data.root` (`clips/` + `crops/`, `experiments.preprocess --save_crops`),
or, without `data.root`, synthetic clips whose mouth follows the speech energy
(`data.sync.synthetic_sync_clip`; the tiny config, tests). The ids actually used are written
to `<workdir>/train_clips.json` (the shipped model's README lists them).

    from talkingjax.train import sync
    sync.train(config, workdir)          # config: experiments/configs/sync.py

(`python -m experiments.train_sync` trains, then runs the instrument checks on the val
speakers; `talkingjax.predict.SyncScorer` loads the run.)
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import optax

from talkingjax.data import sync as sync_data
from talkingjax.errors import InputError
from talkingjax.losses import sync as sync_losses
from talkingjax.models.sync import SyncNet
from talkingjax.train import loop, runner

CLIPS_FILE = loop.TRAIN_CLIPS_FILE


def build(config) -> SyncNet:
    """`SyncNet(**config.model)`."""
    m = config.model
    if min(len(m.video_features), len(m.audio_features)) < 1 or m.embed_dim < 1:
        raise InputError(f"model config {m.to_dict()} needs encoder stages and embed_dim >= 1")
    return SyncNet(tuple(m.video_features), tuple(m.audio_features), int(m.embed_dim))


def init_variables(config, model: SyncNet) -> dict:
    """Initial parameters from `fold_in(key(seed), 0)`."""
    video = jnp.zeros((1, *sync_data.MOUTH, sync_data.FRAMES), jnp.float32)
    mfcc = jnp.zeros((1, 1, sync_data.AUDIO_ROWS, 13), jnp.float32)
    return model.init(jax.random.fold_in(jax.random.key(config.seed), 0), video, mfcc)


def schedule(lr: float, steps: int, warmup: int, final_fraction: float) -> optax.Schedule:
    """Linear warm-up over `warmup` steps to `lr`, then cosine decay to `final_fraction` lr."""
    warmup = max(0, min(int(warmup), int(steps) - 1))
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, max(int(steps), warmup + 1), end_value=lr * final_fraction
    )


def optimizer(config, steps: int | None = None) -> optax.GradientTransformation:
    """Adam on a warm-up + cosine schedule of `steps` (default `train.steps`).

    Always a schedule, so every phase's optimizer state has one structure (a checkpoint).
    """
    t = config.train
    return loop.make_optimizer(
        schedule(t.lr, t.steps if steps is None else steps, t.warmup_steps, t.final_lr_fraction),
        t.grad_clip,
    )


def make_loss_fn(max_offset: int, stride: int):
    """The loss of runs of windows with candidates every `stride` offsets (a `Phase` loss)."""

    def loss_fn(params, batch_stats, batch, model, loss_cfg):
        v, a = model.apply({"params": params}, batch["video"], batch["audio"])
        loss, acc = sync_losses.run_matching_loss(
            v, a, max_offset, stride, temperature=loss_cfg.temperature
        )
        return loss, ({"loss": loss, "offset_accuracy": acc}, batch_stats)

    return loss_fn


def train_clips(config) -> list[sync_data.SyncClip]:
    """The training clips: the split's train speakers' speech clips, or synthetic clips."""
    d = config.data
    if not d.root:
        return [
            sync_data.synthetic_sync_clip(config.seed * 1000 + i, d.synthetic_seconds)
            for i in range(d.synthetic_clips)
        ]
    if not os.path.isdir(d.root):
        raise InputError(f"data.root {d.root} is not a directory")
    clips, _ = sync_data.load_split_clips(d.root, d.split, "train")
    if not clips:
        raise InputError(f"{d.root} holds none of the train speakers' speech clips of {d.split}")
    return clips


def plan(config, workdir: str) -> tuple[list[loop.Phase], None]:
    """The "spaced" and "all" phases on the training clips (`runner.Trainer.plan`)."""
    d, t = config.data, config.train
    k, stride = int(d.max_offset), int(t.spaced_stride)
    if k < 1 or stride < 1 or k % stride:
        raise InputError(f"data.max_offset {k} must be a positive multiple of the stride {stride}")
    if t.steps < 1 or t.spaced_steps < 0:
        raise InputError(f"train.steps {t.steps} must be >= 1, spaced_steps {t.spaced_steps} >= 0")
    clips = train_clips(config)
    sampler = sync_data.SyncSampler(
        clips,
        config.seed,
        k,
        augment=d.augment,
        max_windows_per_clip=d.max_windows_per_clip or None,
        run=d.run,
    )
    average = t.average_from if t.average_from >= 0 else None
    phases = []
    if t.spaced_steps:
        phases.append(
            loop.Phase("spaced", t.spaced_steps, make_loss_fn(k, stride),
                       optimizer(config, t.spaced_steps), sampler.sample)
        )  # fmt: skip
    phases.append(
        loop.Phase("all", t.steps, make_loss_fn(k, 1), optimizer(config), sampler.sample,
                   average_from=average)
    )  # fmt: skip
    used = [
        {
            "clip_id": c.clip_id,
            "frames_25fps": c.num_frames,
            "windows": int(len(c.usable_windows(k))),
            "examples": int(len(w)),  # runs of data.run windows (or windows)
        }
        for c, w in zip(sampler.clips, sampler.windows, strict=True)
    ]
    loop.write_train_clips(workdir, d.root, used)
    return phases, None


TRAINER = runner.Trainer(
    resume_keys=("model", "data", "loss", "seed"),
    build=build,
    plan=plan,
    init=init_variables,
    optimizer=optimizer,
)

# train(config, workdir, mesh=None, stop_after=None) -> TrainState: trains (or resumes) the
# phases (`runner.train` of this module's TRAINER).
train = functools.partial(runner.train, TRAINER)
