"""Trainer of the three peer head-pose models on the shared loop (`talkingjax.train.loop`).

`config.model.name` picks the model:

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
    peers.train_and_evaluate(config, workdir)   # config: experiments/configs/{audio2head,
                                                #   posegan,lsp}.py
    predictor = peers.PeerPredictor.from_workdir(workdir)
    pose = predictor.predict(mfcc, reference_pose, frames)           # [frames, 6]
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from talkingjax.data import records, sampling
from talkingjax.errors import InputError
from talkingjax.losses import lsp as lsp_losses
from talkingjax.losses import posegan as posegan_losses
from talkingjax.models import audio2head, lsp, posegan
from talkingjax.train import checkpoint, loop

# Config fields that must not change when a workdir is resumed.
_RESUME_KEYS = ("model", "data", "seed")
AUDIO_DIM = 52  # 4 MFCC rows x 13 per frame (`sampling.frame_audio_features`)


# ------------------------------------------------------------------------------- the models


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

    def loss_fn(params, batch_stats, batch, model, loss_cfg):
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

    def init_variables(key, window):
        kg, kd = jax.random.split(key)
        audio, pose = jnp.zeros((1, window, AUDIO_DIM)), jnp.zeros((1, window, records.POSE_DIM))
        return {
            "params": {
                "generator": g.init(kg, audio, pose[:, 0])["params"],
                "discriminator": d.init(kd, pose, audio if d.conditional else None)["params"],
            }
        }

    return (g, d), loss_fn, init_variables


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

    def loss_fn(params, batch_stats, batch, model, loss_cfg):
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

    def init_variables(key, window):
        kg, kd = jax.random.split(key)
        audio, pose = jnp.zeros((1, window, AUDIO_DIM)), jnp.zeros((1, window, records.POSE_DIM))
        return {
            "params": {
                "generator": g.init(kg, audio, pose[:, 0])["params"],
                "discriminator": d.init(kd, pose, audio)["params"],
            }
        }

    return (g, d), loss_fn, init_variables


def _build_lsp(m):
    model = lsp.LSPPoseModel(
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

    def loss_fn(params, batch_stats, batch, model, loss_cfg):
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

    def init_variables(key, window):
        audio = jnp.zeros((1, window, AUDIO_DIM))
        states = jnp.zeros((1, window, model.state_dim))
        return {"params": model.init(key, audio, states)["params"]}

    return model, loss_fn, init_variables


_BUILDERS = {"audio2head": _build_audio2head, "posegan": _build_posegan, "lsp": _build_lsp}


def build(config) -> tuple[object, Callable, Callable]:
    """(model, loss_fn, init_variables) of `config.model.name`.

    model: the module (LSP) or (generator, discriminator) (GANs), what `loss_fn` gets as its
    `model` argument. loss_fn: the loop's `(params, batch_stats, batch, model, loss_cfg) ->
    (loss, (metrics, batch_stats))`. init_variables: `(key, window) -> {"params": ...}`.

    Raises:
      InputError: an unknown model name, or a window the model cannot take.
    """
    name = config.model.name
    if name not in _BUILDERS:
        raise InputError(f"unknown model.name {name!r}; expected one of {sorted(_BUILDERS)}")
    return _BUILDERS[name](config.model)


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam at `train.lr` (linearly to `train.lr_end` over the run when that is >= 0), after
    optional global-norm clipping and coupled weight decay (PyTorch `Adam(weight_decay=)`,
    Audio2Head's optimizer)."""
    t = config.train
    lr = t.lr
    if t.get("lr_end", -1.0) >= 0:
        lr = optax.linear_schedule(t.lr, t.lr_end, max(int(t.steps), 1))
    # The same chain with or without each stage (identity), so the state structure is a
    # function of the config only and `load_variables` can rebuild it.
    clip = optax.clip_by_global_norm(t.grad_clip) if t.grad_clip > 0 else optax.identity()
    wd = t.get("weight_decay", 0.0)
    decay = optax.add_decayed_weights(wd) if wd > 0 else optax.identity()
    return optax.chain(clip, decay, optax.adam(lr, b1=t.b1))


def init_state(config, init_variables: Callable, optimizer) -> loop.TrainState:
    """Initial parameters from `fold_in(key(seed), 0)`, and the optimizer state."""
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    return loop.init_state(init_variables(key, int(config.model.window)), optimizer)


def load_data(config, workdir: str) -> tuple[list[records.Clip], list[records.Clip]]:
    """(train, test) clips of `config.data.root`, or of paper 000's synthetic pose corpus."""
    from talkingjax.data import synthetic

    return loop.load_data(config, workdir, "synthetic", synthetic.generate_corpus)


def train(config, workdir: str, mesh=None, stop_after: int | None = None) -> loop.TrainState:
    """Trains (or resumes) the model of `config.model.name`; returns the final state.

    Args:
      config: see experiments/configs/{audio2head,posegan,lsp}.py.
      workdir: checkpoints, config.json and metrics.jsonl go here; an existing run resumes.
      mesh: defaults to all devices on one `data` axis.
      stop_after: stop once this many steps are done (for tests and benchmarks).
    """
    # Checked before anything is written; recorded only once the data loaded, so bad input
    # leaves no half-made workdir behind.
    checkpoint.check_workdir_config(workdir, config.to_json(), _RESUME_KEYS)
    model, loss_fn, init_variables = build(config)
    train_clips, _ = load_data(config, workdir)
    sampler = sampling.PoseWindowSampler(
        train_clips, config.model.fps, int(config.model.window), config.seed
    )
    checkpoint.write_workdir_config(workdir, config.to_json())
    opt = make_optimizer(config)
    sample = sampling.with_seeds(sampler.sample, config.seed + 1)  # sampler: seed
    phases = [loop.Phase("train", int(config.train.steps), loss_fn, opt, sample)]
    state = init_state(config, init_variables, opt)
    return loop.run_phases(workdir, config, model, phases, state, mesh, stop_after)


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if possible), then scores the held-out clips with
    `talkingjax.evaluation.pose_table.evaluate_workdirs` (table in `<workdir>/eval/`)."""
    from talkingjax.evaluation import pose_table

    train(config, workdir)
    return pose_table.evaluate_workdirs([workdir])


def load_variables(workdir: str, step: int | None = None):
    """(config, {"params", "batch_stats"}) of the latest (or given) checkpoint of a workdir.

    The parameters are `TrainState.avg_params`; for the GANs {"generator", "discriminator"}.
    """
    config = checkpoint.load_workdir_config(workdir)
    _, _, init_variables = build(config)
    opt = make_optimizer(config)
    target = jax.eval_shape(lambda: init_state(config, init_variables, opt))
    state = checkpoint.load(workdir, target, step)
    return config, {"params": state.avg_params, "batch_stats": state.batch_stats}


# ------------------------------------------------------------------------------- inference


class PeerPredictor:
    """A trained peer model as a pose predictor: audio + the target's recent pose -> poses.

    Attributes:
      name: `config.model.name`.
      fps: the model's frame rate.
      has_pattern: False; the peers take no motion pattern from a reference video (paper 000's
        model does). Their personalisation is the reference pose they start from.
    """

    has_pattern = False

    def __init__(self, config, variables):
        self.config = config
        self.name = config.model.name
        self.fps = float(config.model.fps)
        self.window = int(config.model.window)
        self.model, _, _ = build(config)
        self.params = variables["params"]
        eval_cfg = config.get("eval", None)
        self.temperature = float(eval_cfg.get("temperature", 1.0)) if eval_cfg else 1.0
        if self.name == "audio2head":
            g = self.model[0]
            # Recurrent: one call covers any number of frames.
            self._run = jax.jit(lambda p, a, x: g.apply({"params": p}, a[None], x[None])[0])
        elif self.name == "posegan":
            g, window = self.model[0], self.window

            def run(p, a, x):
                apply = functools.partial(g.apply, {"params": p})
                return posegan.generate_long(apply, a, x, window=window)

            self._run = jax.jit(run)

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> PeerPredictor:
        config, variables = load_variables(workdir, step)
        return cls(config, variables)

    def predict(
        self, mfcc: np.ndarray, reference_pose: np.ndarray, frames: int, seed: int = 0
    ) -> np.ndarray:
        """Predicts `frames` poses at `self.fps`.

        Args:
          mfcc: [N, 13] padded MFCC rows starting at the window start of the first frame to
            predict (as `audio.frame_windows` expects for frame 0).
          reference_pose: [R, 6] the target's pose just before the first predicted frame, at
            `self.fps`. Audio2Head and PoseGAN start from its last pose (their initial pose,
            which their frame 0 reproduces, as in training where it is the window's first
            pose); LSP conditions on its last frames (up to the receptive field) as history.
          frames: number of frames to predict.
          seed: LSP's sampling key (`jax.random.key(seed)`); the GANs are deterministic.

        Returns:
          float32 [frames, 6].
        """
        frames = int(frames)
        if frames < 1:
            raise InputError(f"frames must be >= 1, got {frames}")
        ref = np.asarray(reference_pose, np.float32)
        if ref.ndim != 2 or ref.shape[0] < 1 or ref.shape[1] != records.POSE_DIM:
            raise InputError(f"reference_pose must be [frames >= 1, 6], got shape {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise InputError("reference_pose has NaN/inf values")
        feats = jnp.asarray(sampling.frame_audio_features(mfcc, self.fps, frames))
        if self.name == "lsp":
            # One extra frame, so the oldest kept state has a true velocity (not the 0 that
            # `pose_to_states` gives its first frame) whenever the history is long enough.
            history = ref[-(self.model.receptive_field + 1) :]
            states = lsp.pose_to_states(jnp.asarray(history))
            if history.shape[0] > 1:
                states = states[1:]
            out = lsp.sample(
                self.model,
                {"params": self.params},
                feats,
                states,
                jax.random.key(seed),
                self.temperature,
            )
        else:
            out = self._run(self.params["generator"], feats, jnp.asarray(ref[-1]))
        return np.asarray(out, np.float32)
