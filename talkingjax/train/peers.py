"""Trainer of the three peer head-pose models on the shared loop (`talkingjax.train.loop`).

`config.model.name` picks the model (`MODELS`):

  "audio2head"  paper 002, `talkingjax.models.audio2head` (Audio2HeadPose + 1D PatchGAN, LSGAN
                + pose SSIM, Eq. 3-4)
  "posegan"     paper 003, `talkingjax.models.posegan` (conditional U-Net GAN, Eq. 3-6)
  "lsp"         paper 004, `talkingjax.models.lsp` (autoregressive Gaussian WaveNet, Eq. 11)

All three learn from windows of `config.model.window` frames of per-frame audio features
(`sampling.frame_audio_features`, 4 MFCC rows = 52 values per frame) and poses
(`sampling.PoseWindowSampler`), taken from the same data as paper 000's trainer: the records
under `config.data.root`, or the synthetic pose corpus generated once into the workdir. One
phase ("train"), one Adam. The GANs fit the loop's single-loss update unchanged: their loss
is L = L_G(theta_g, sg(theta_d)) + L_D(theta_d, sg(fake)) over the parameter tree
{"generator", "discriminator"}, whose gradient trains each network on its own objective.

    from talkingjax.train import peers
    peers.train(config, workdir)   # config: experiments/configs/{audio2head,posegan,lsp}.py

(`python -m experiments.train_pose` trains, then scores the run with
`talkingjax.evaluation.pose_table`; `talkingjax.predict.PeerPredictor` loads it.)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from talkingjax.data import records, sampling, synthetic
from talkingjax.errors import InputError
from talkingjax.losses import lsp as lsp_losses
from talkingjax.losses import posegan as posegan_losses
from talkingjax.models import audio2head, lsp, posegan
from talkingjax.train import loop, runner

AUDIO_DIM = 52  # 4 MFCC rows x 13 per frame (`sampling.frame_audio_features`)


# ------------------------------------------------------------------------------- the models


@dataclasses.dataclass(frozen=True)
class PeerModel:
    """One peer's pieces for the shared trainer.

    Attributes:
      build: `config.model -> model`, the module (LSP) or (generator, discriminator) (GANs),
        what `loss_fn` gets as its `model` argument; raises `InputError` for a window the
        model cannot take.
      loss_fn: the loop's `(params, batch_stats, batch, model, loss_cfg) -> (loss, (metrics,
        batch_stats))`.
      init_variables: `(model, key, window) -> {"params": ...}`.
    """

    build: Callable
    loss_fn: Callable
    init_variables: Callable


def _build_audio2head(m):
    g = audio2head.Audio2HeadPose(
        hidden=m.hidden,
        num_layers=m.num_layers,
        audio_embed=m.audio_embed,
        audio_blocks=m.audio_blocks,
        audio_features=m.audio_features,
        audio_rows=4,
        audio_norm=m.audio_norm,
        pose_embed_features=m.pose_embed_features,
        pose_scale=m.pose_scale,
    )
    d = audio2head.PosePatchDiscriminator(
        features=m.d_features,
        kernel=m.d_kernel,
        norm=m.d_norm,
        conditional=m.d_conditional,
        pose_scale=m.pose_scale,
    )
    if audio2head.num_patches(m.window, len(d.features), d.kernel) < 1:
        raise InputError(
            f"window {m.window} is too short for the discriminator's {len(d.features)} layers"
        )
    return g, d


def _audio2head_loss(params, batch_stats, batch, model, loss_cfg):
    """Eq. 4 for N_H plus the LSGAN discriminator loss, as one scalar."""
    g_model, d_model = model
    loss, metrics = audio2head.generator_and_discriminator_loss(
        g_model,
        d_model,
        params,
        batch,
        ssim_window=loss_cfg.ssim_window or None,
        lambda_ssim=loss_cfg.lambda_ssim,
        lambda_gan=loss_cfg.lambda_gan,
    )
    return loss, ({"loss": loss, **metrics}, batch_stats)


def _audio2head_init(model, key, window):
    g, d = model
    kg, kd = jax.random.split(key)
    audio, pose = jnp.zeros((1, window, AUDIO_DIM)), jnp.zeros((1, window, records.POSE_DIM))
    return {
        "params": {
            "generator": g.init(kg, audio, pose[:, 0])["params"],
            "discriminator": d.init(kd, pose, audio if d.conditional else None)["params"],
        }
    }


def _build_posegan(m):
    g = posegan.PoseGANGenerator(
        features=m.features,
        encoder_layers=m.encoder_layers,
        depth=m.depth,
        decoder_layers=m.decoder_layers,
        norm=m.norm,
        pose_scale=m.pose_scale,
        audio_scale=m.audio_scale,
    )
    d = posegan.PoseGANDiscriminator(
        features=m.d_features,
        num_strided=m.d_num_strided,
        norm=m.norm,
        pose_scale=m.pose_scale,
        audio_scale=m.audio_scale,
    )
    g.check_length(m.window)  # before any data is read or workdir written
    return g, d


def _posegan_loss(params, batch_stats, batch, model, loss_cfg):
    """Eq. 6 for G plus the discriminator's side of Eq. 5, as one scalar."""
    g_model, d_model = model
    loss, metrics = posegan_losses.generator_and_discriminator_loss(
        g_model,
        d_model,
        params,
        batch,
        alpha=loss_cfg.alpha,
        beta=loss_cfg.beta,
        lam=loss_cfg.lam,
        d_weight=loss_cfg.d_weight,
        non_saturating=loss_cfg.non_saturating,
        reduction=loss_cfg.reduction,
    )
    return loss, (metrics, batch_stats)


def _posegan_init(model, key, window):
    g, d = model
    kg, kd = jax.random.split(key)
    audio, pose = jnp.zeros((1, window, AUDIO_DIM)), jnp.zeros((1, window, records.POSE_DIM))
    return {
        "params": {
            "generator": g.init(kg, audio, pose[:, 0])["params"],
            "discriminator": d.init(kd, pose, audio)["params"],
        }
    }


def _build_lsp(m):
    return lsp.LSPPoseModel(
        dilations=m.dilations,
        kernel_size=m.kernel_size,
        residual_channels=m.residual_channels,
        dilation_channels=m.dilation_channels,
        skip_channels=m.skip_channels,
        cond_channels=m.cond_channels,
        post_channels=m.post_channels,
        activation=m.activation,
        state_dropout=m.state_dropout,
        pose_scale=m.pose_scale,
        velocity_scale=m.velocity_scale,
        min_std=m.min_std if m.min_std > 0 else None,
    )


def _lsp_loss(params, batch_stats, batch, model, loss_cfg):
    """Eq. 11: the Gaussian NLL of the teacher-forced next-state predictions."""
    del loss_cfg
    states = lsp.pose_to_states(batch["pose"])
    # The batch carries one seed per row (a function of the step), so the state dropout
    # differs between steps and devices and a resumed run draws the same masks.
    key = jax.random.key(batch["seed"][0])
    mean, log_std = model.apply(
        {"params": params}, batch["audio"], states, train=True, rngs={"dropout": key}
    )
    nll = lsp_losses.gaussian_pose_nll(mean, log_std, states)
    pose_mse = jnp.mean((mean[..., : records.POSE_DIM] - batch["pose"]) ** 2)
    return nll, ({"loss": nll, "pose_mse": pose_mse}, batch_stats)


def _lsp_init(model, key, window):
    audio = jnp.zeros((1, window, AUDIO_DIM))
    states = jnp.zeros((1, window, model.state_dim))
    return {"params": model.init(key, audio, states)["params"]}


MODELS = {
    "audio2head": PeerModel(_build_audio2head, _audio2head_loss, _audio2head_init),
    "posegan": PeerModel(_build_posegan, _posegan_loss, _posegan_init),
    "lsp": PeerModel(_build_lsp, _lsp_loss, _lsp_init),
}


def peer_model(config) -> PeerModel:
    """The pieces of `config.model.name`; raises `InputError` for an unknown name."""
    name = config.model.name
    if name not in MODELS:
        raise InputError(f"unknown model.name {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]


def build(config):
    """The model of `config.model.name` (`PeerModel.build`).

    Raises:
      InputError: an unknown model name, or a window the model cannot take.
    """
    return peer_model(config).build(config.model)


def optimizer(config) -> optax.GradientTransformation:
    """Adam at `train.lr` (linearly to `train.lr_end` over the run when that is >= 0), after
    optional global-norm clipping and coupled weight decay (PyTorch `Adam(weight_decay=)`,
    Audio2Head's optimizer)."""
    t = config.train
    lr = t.lr
    if t.get("lr_end", -1.0) >= 0:
        lr = optax.linear_schedule(t.lr, t.lr_end, max(int(t.steps), 1))
    # The decay stage is always there (an identity at 0), so the state structure is a function
    # of the config only and `runner.load_variables` can rebuild it.
    return loop.make_optimizer(lr, t.grad_clip, t.b1, weight_decay=t.get("weight_decay", 0.0))


def init_variables(config, model) -> dict:
    """Initial variables from `fold_in(key(seed), 0)`."""
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    return peer_model(config).init_variables(model, key, int(config.model.window))


def load_data(config, workdir: str) -> tuple[list[records.Clip], list[records.Clip]]:
    """(train, test) clips of `config.data.root`, or of paper 000's synthetic pose corpus."""
    return loop.load_data(config, workdir, "synthetic", synthetic.generate_corpus)


def plan(config, workdir: str) -> tuple[list[loop.Phase], None]:
    """The one phase (`runner.Trainer.plan`)."""
    train_clips, _ = load_data(config, workdir)
    sampler = sampling.PoseWindowSampler(
        train_clips, config.model.fps, int(config.model.window), config.seed
    )
    sample = sampling.with_seeds(sampler.sample, config.seed + 1)  # sampler: seed
    loss_fn = peer_model(config).loss_fn
    return [loop.Phase("train", int(config.train.steps), loss_fn, optimizer(config), sample)], None


TRAINER = runner.Trainer(
    resume_keys=("model", "data", "seed"),
    build=build,
    plan=plan,
    init=init_variables,
    optimizer=optimizer,
)


# train(config, workdir, mesh=None, stop_after=None) -> TrainState: trains (or resumes)
# the model of `config.model.name` (`runner.train` of this module's TRAINER).
train = functools.partial(runner.train, TRAINER)
