"""Trainer of the rendering-to-realistic GAN (paper 000 Sec. IV-B3, Eq. 8-10).

Two phases on the shared loop (`talkingjax.train.loop`), as the paper trains it:

  "pretrain"  many identities: the pairs under `data.root` (`talkingjax.data.gan_pairs`), or
              a synthetic pairs set generated once into `<workdir>/pairs`;
  "finetune"  one target (`finetune.root` / `finetune.clip_id`): its first `finetune.frames`
              frames for `finetune.epochs` epochs, with a fresh Adam (the paper: 300 frames,
              60 epochs at lr 1e-4). `finetune.init_from` starts from another run's
              parameters (a pretrained workdir), so one pretraining serves every target.

One update trains both networks from the same batch: the loss is Eq. 10's L_G(G, sg(D)) +
L_D(D, sg(G(x))) over the tree {"generator", "discriminator"}
(`talkingjax.losses.gan.generator_and_discriminator_loss`), under one Adam (b1 = 0.5), data-
parallel like every trainer of the library. G's dropout draws from per-example seeds that are
a function of the step, so a resumed run is bit-identical to an uninterrupted one.

    from talkingjax.train import gan
    gan.train(config, workdir)   # config: experiments/configs/gan.py

(`python -m experiments.train_gan` trains, then evaluates with `talkingjax.evaluation.gan`;
`talkingjax.predict.Refiner` turns the run into a function of rendered windows.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp

from talkingjax.data import gan_pairs, sampling
from talkingjax.errors import InputError
from talkingjax.losses import gan as gan_losses
from talkingjax.losses import memory as memory_losses
from talkingjax.models import gan as gan_models
from talkingjax.models import memory as memory_models
from talkingjax.train import loop, parallel, runner, storage


@dataclasses.dataclass(frozen=True)
class Nets:
    """The networks of one run: G and D, plus paper 001's encoders in the memory variant."""

    generator: gan_models.AttentionUNetGenerator
    discriminator: gan_models.PatchDiscriminator
    key_encoder: memory_models.SpatialKeyEncoder | None = None
    identity_encoder: memory_models.IdentityEncoder | None = None

    @property
    def memory(self) -> bool:
        return self.key_encoder is not None


def build(model_cfg) -> Nets:
    """The networks of `config.model`; raises `InputError` if G cannot take `model.size`.

    `model.memory.enabled` switches to paper 001's memory-augmented variant: G's decoder
    norms become AdaIN driven by an identity feature, which a project-trained
    `IdentityEncoder` computes from the real frame during training (or the caller supplies);
    a `SpatialKeyEncoder` learns keys of the rendered window for the memory.
    """
    mem = model_cfg.memory
    g = gan_models.AttentionUNetGenerator(
        features=model_cfg.g_features,
        dropout=model_cfg.dropout,
        dropout_blocks=model_cfg.dropout_blocks,
        norm=model_cfg.norm,
        adain=bool(mem.enabled),
    )
    d = gan_models.PatchDiscriminator(features=model_cfg.d_features, norm=model_cfg.norm)
    g.check_size(model_cfg.size, model_cfg.size)
    if not mem.enabled:
        return Nets(g, d)
    return Nets(
        g,
        d,
        memory_models.SpatialKeyEncoder(mem.key_dim, mem.key_features),
        memory_models.IdentityEncoder(mem.identity_dim, mem.identity_features),
    )


def loss_fn(params, batch_stats, batch, model: Nets, loss_cfg):
    """Eq. 10 on a batch: {"render" [B, S, S, 9], "real" [B, S, S, 3], "seed" [B],
    "identity" [B]}; in the memory variant plus the encoders' losses and the memory update."""
    # One dropout key per device shard; the seeds differ between shards and steps.
    rngs = {"dropout": jax.random.key(batch["seed"][0])}
    weights = dict(
        lambda_l1=loss_cfg.lambda_l1,
        lambda_att=loss_cfg.lambda_att,
        lambda_tv=loss_cfg.lambda_tv,
        d_weight=loss_cfg.d_weight,
    )
    if not model.memory:
        loss, metrics = gan_losses.generator_and_discriminator_loss(
            model.generator, model.discriminator, params, batch, rngs, **weights
        )
        return loss, (metrics, batch_stats)
    return _memory_loss(params, batch_stats, batch, model, loss_cfg, rngs, weights)


def _memory_loss(params, batch_stats, batch, model: Nets, loss_cfg, rngs, weights):
    """Paper 001 Sec. 3.4: G(r, s) with s from the identity encoder (ArcFace loss on the
    identity labels; -1 = an identity outside the classes, no ArcFace term), the key
    encoder's threshold triplet loss against the memory, then the memory update.

    G reads s through `stop_gradient`: the identity encoder is trained by the ArcFace loss
    only, as the paper's frozen face-recognition encoder is not trained at all. Were G's
    reconstruction loss to reach it, the encoder of the REAL frame could learn to pass the
    frame itself (colours, pose, mouth) to G in its 512-d feature during training -- a
    shortcut that does not exist at test time, where s is the memory's retrieved value.
    """
    mem = batch_stats["memory"]
    s = model.identity_encoder.apply({"params": params["identity_encoder"]}, batch["real"])
    gd_params = {k: params[k] for k in ("generator", "discriminator")}
    loss, metrics = gan_losses.generator_and_discriminator_loss(
        model.generator, model.discriminator, gd_params, batch, rngs,
        identity=jax.lax.stop_gradient(s), **weights,
    )  # fmt: skip
    l_arc = memory_losses.arcface_loss(s, params["arcface"], batch["identity"])
    q = model.key_encoder.apply({"params": params["key_encoder"]}, batch["render"])
    top_k = min(int(loss_cfg.top_k), mem.num_slots)
    l_tri = memory_losses.threshold_triplet_loss(
        q, mem, s, top_k, loss_cfg.triplet_margin, loss_cfg.identity_threshold
    )
    # Every device writes the whole global batch, so the memory stays replicated (footnote 5:
    # the memory is updated apart from the gradient step).
    gather = functools.partial(jax.lax.all_gather, axis_name=parallel.DATA_AXIS, tiled=True)
    mem = memory_models.update(mem, gather(q), gather(s), loss_cfg.identity_threshold)
    loss = loss + loss_cfg.lambda_arcface * l_arc + loss_cfg.lambda_triplet * l_tri
    metrics = {**metrics, "loss": loss, "arcface": l_arc, "triplet": l_tri}
    return loss, (metrics, {"memory": mem})


def init_variables(model: Nets, model_cfg, key) -> dict:
    """{"params": {"generator", "discriminator", ...}, "batch_stats": {...}} at model.size."""
    kg, kd, kk, ki, ka = jax.random.split(key, 5)
    size = model_cfg.size
    x = jnp.zeros((1, size, size, 3 * gan_models.WINDOW))
    y = jnp.zeros((1, size, size, gan_models.FRAME_CHANNELS))
    if not model.memory:
        g = model.generator.init(kg, x)["params"]
        d = model.discriminator.init(kd, x, y)["params"]
        return {"params": {"generator": g, "discriminator": d}, "batch_stats": {}}
    mem = model_cfg.memory
    s = jnp.zeros((1, mem.identity_dim))
    params = {
        "generator": model.generator.init(kg, x, identity=s)["params"],
        "discriminator": model.discriminator.init(kd, x, y)["params"],
        "key_encoder": model.key_encoder.init(kk, x)["params"],
        "identity_encoder": model.identity_encoder.init(ki, y)["params"],
        "arcface": jax.random.normal(ka, (mem.identity_classes, mem.identity_dim)),
    }
    memory = memory_models.init_memory(mem.slots, mem.key_dim, mem.identity_dim)
    return {"params": params, "batch_stats": {"memory": memory}}


def optimizer(config, lr: float | None = None):
    """Adam at `lr` (default `train.lr`) with `train.b1` after `train.grad_clip`."""
    lr = config.train.lr if lr is None else lr
    return loop.make_optimizer(lr, config.train.grad_clip, config.train.b1)


def _init(config, nets: Nets) -> dict:
    """`init_variables` from `fold_in(key(seed), 0)` (`runner.Trainer.init`)."""
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    # One compiled program: run eagerly, the GEMM layers' many small ops take ~25 s to init.
    return jax.jit(lambda k: init_variables(nets, config.model, k))(key)


def pretrain_clips(config, workdir: str) -> list[gan_pairs.PairClip]:
    """The pretraining pairs: the train split of `data.root` (one pairs directory, or several
    joined by commas: `gan_pairs.load`), or synthetic pairs made once."""
    root = config.data.root
    if not root:
        d = config.data
        settings = dict(
            identities=d.synthetic_identities,
            frames=d.synthetic_frames,
            size=config.model.size,
            seed=config.seed,
        )
        root = storage.local_data_dir(workdir, "pairs", settings)
        if not os.path.exists(os.path.join(root, "manifest.json")):
            clips = gan_pairs.synthetic_pairs(
                d.synthetic_identities, d.synthetic_frames, config.model.size, seed=config.seed
            )
            gan_pairs.save(root, clips, config.model.size)
    return gan_pairs.load(root, split="train")


def target_clip(config) -> gan_pairs.PairClip | None:
    """The fine-tuning target (`finetune.root` / `finetune.clip_id`), or None."""
    if not config.finetune.clip_id:
        return None
    root = config.finetune.root or config.data.root
    for clip in gan_pairs.load(root):
        if clip.clip_id == config.finetune.clip_id:
            return clip
    raise InputError(f"fine-tune clip {config.finetune.clip_id!r} is not in {root}")


def _check_size(clips, config, what: str) -> None:
    for clip in clips:
        if clip.size != config.model.size:
            raise InputError(
                f"{what} pairs are {clip.size}^2 but model.size is {config.model.size}; make "
                f"the pairs at that size or set model.size={clip.size}"
            )


def pair_entries(clips: list[gan_pairs.PairClip]) -> list[dict]:
    """One `loop.write_train_clips` entry per clip id (a clip made with both albedos counts
    once): clip and speaker ids, frames used, seconds, albedos."""
    entries: dict[str, dict] = {}
    for c in clips:
        e = entries.setdefault(
            c.clip_id,
            {"clip_id": c.clip_id, "speaker_id": c.identity, "frames": c.num_frames,
             "seconds": round(c.num_frames / c.fps, 2) if c.fps else 0.0, "albedo": []},
        )  # fmt: skip
        e["albedo"].append(c.albedo)
    return list(entries.values())


def finetune_steps(config, frames: int) -> int:
    """`finetune.steps`, or `finetune.epochs` passes over `frames` frames at the batch size."""
    if config.finetune.steps > 0:
        return int(config.finetune.steps)
    return int(math.ceil(config.finetune.epochs * frames / config.train.batch_size))


def plan(config, workdir: str) -> tuple[list[loop.Phase], dict | None]:
    """The pretraining and the optional fine-tune (`runner.Trainer.plan`)."""
    target = target_clip(config)
    if target is not None:
        _check_size([target], config, "fine-tune")
    phases, source = [], None
    if config.finetune.init_from:
        if target is None:
            raise InputError("finetune.init_from needs a fine-tune target (finetune.clip_id)")
        source = runner.source_variables(TRAINER, config.finetune.init_from, config)
    elif config.train.steps > 0:  # 0: fine-tune from scratch, no pretraining
        clips = pretrain_clips(config, workdir)
        _check_size(clips, config, "pretraining")
        loop.write_train_clips(workdir, config.data.root, pair_entries(clips))
        sampler = gan_pairs.PairSampler(clips, config.seed, augment=config.data.augment)
        phases.append(
            loop.Phase(
                "pretrain",
                int(config.train.steps),
                loss_fn,
                optimizer(config),
                sampling.with_seeds(sampler.sample, config.seed + 2),  # samplers: seed, seed + 1
            )
        )
    if target is not None:
        sampler = gan_pairs.PairSampler(
            [target], config.seed + 1, frames=config.finetune.frames, augment=config.data.augment
        )
        average = int(config.finetune.get("average_from", -1))
        phases.append(
            loop.Phase(
                "finetune",
                finetune_steps(config, sampler.num_frames),
                loss_fn,
                optimizer(config, config.finetune.lr),
                sampling.with_seeds(sampler.sample, config.seed + 2),  # samplers: seed, seed + 1
                average_from=None if average < 0 else average,
            )
        )
    if not phases:
        raise InputError("nothing to train: train.steps is 0 and there is no fine-tune target")
    return phases, source


TRAINER = runner.Trainer(
    resume_keys=("model", "data", "finetune", "seed"),
    build=lambda config: build(config.model),
    plan=plan,
    init=_init,
    optimizer=optimizer,
)


# train(config, workdir, mesh=None, stop_after=None) -> TrainState: trains (or resumes)
# the pretraining and the optional fine-tune (`runner.train` of this module's TRAINER).
train = functools.partial(runner.train, TRAINER)
