"""Trainer of the three peer head-pose models on the shared loop (`talkingjax.train.loop`).

`config.model.name` picks the model (`MODELS`):

  "audio2head"  paper 002, `talkingjax.models.audio2head` (Audio2HeadPose + 1D PatchGAN, LSGAN
                + pose SSIM, Eq. 3-4)
  "posegan"     paper 003, `talkingjax.models.posegan` (conditional U-Net GAN, Eq. 3-6)
  "lsp"         paper 004, `talkingjax.models.lsp` (autoregressive Gaussian WaveNet, Eq. 11)

All three learn from windows of `config.model.window` frames of audio and poses, taken from
the same data as paper 000's trainer: the records under `config.data.root` (clips with
speech; silent ones are left out), or the synthetic pose corpus generated once into the
workdir. Audio2Head, PoseGAN and LSP with `model.audio_features = "mfcc"` read per-frame
MFCC features (`sampling.frame_audio_features`, 4 rows = 52 values per frame;
`sampling.PoseWindowSampler`) in one phase ("train") with one Adam. The GANs fit the loop's
single-loss update unchanged: their loss is L = L_G(theta_g, sg(theta_d)) + L_D(theta_d,
sg(fake)) over the parameter tree {"generator", "discriminator"}, whose gradient trains each
network on its own objective.

LSP with `model.audio_features = "apc"` (its configs' default; paper 004 Sec. 3.1, 4.2.1)
trains in two phases of one run and one checkpoint (`_lsp_apc_phases`): "apc", APC alone
self-supervised on the training speech (Eq. 9; the records' 13-d MFCC rows at 100 Hz are the
surface features, where the paper has 80-d log mel at 120 Hz: records hold no waveform), then
"pose", the pose model on APC's h_L at each frame's 4 rows (APC frozen). A workdir whose
config predates the field trained on MFCC rows and loads as "mfcc".

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
import numpy as np
import optax

from talkingjax import audio
from talkingjax.data import records, sampling, synthetic
from talkingjax.errors import InputError
from talkingjax.losses import lsp as lsp_losses
from talkingjax.losses import posegan as posegan_losses
from talkingjax.models import audio2head, lsp, posegan
from talkingjax.train import loop, runner

AUDIO_DIM = 52  # 4 MFCC rows x 13 per frame (`sampling.frame_audio_features`)
ROWS_PER_FRAME = 4  # MFCC rows (100 Hz) a 25 fps frame's audio features read
#: LSP's per-frame audio (`config.model.audio_features`): APC's h_L (paper 004 Sec. 3.1) at
#: the frame's rows, or the raw rows themselves (the baseline as first built).
LSP_AUDIO_FEATURES = ("apc", "mfcc")


# ------------------------------------------------------------------- LSP's APC data (paper 004)


def frame_rows(fps: float, frames: int) -> np.ndarray:
    """int [frames, ROWS_PER_FRAME]: the padded `speech_features` rows each frame reads.

    The 4 centre rows of the frame's 28-row window, the rows `sampling.frame_audio_features`
    concatenates (at 25 fps the frame's own 40 ms); LSP's "apc" variant reads h_L there.
    """
    first = audio.WINDOW_ROWS // 2 - ROWS_PER_FRAME // 2
    return audio.window_starts(frames, fps)[:, None] + first + np.arange(ROWS_PER_FRAME)


def surface_statistics(clips: list[records.Clip]) -> dict[str, np.ndarray]:
    """{"surface_mean", "surface_std"}: float32 [13] per-coefficient statistics of every
    MFCC row of the clips (the normalisation `lsp.APCPoseModel` applies; std floored at
    1e-3)."""
    rows = np.concatenate([np.asarray(c.mfcc, np.float64) for c in clips])
    return {
        "surface_mean": rows.mean(0).astype(np.float32),
        "surface_std": np.maximum(rows.std(0), 1e-3).astype(np.float32),
    }


class APCSequenceSampler:
    """Eq. 9 training sequences: `rows` consecutive MFCC rows (100 Hz) of a training clip.

    A clip with fewer rows is taken whole and padded on the right ("length" says how many
    rows are real). Sequences are drawn uniformly over all start positions of the corpus; a
    batch is a pure function of (seed, step).
    """

    def __init__(self, clips: list[records.Clip], rows: int, seed: int):
        if rows <= lsp.APC_SHIFT:
            raise InputError(f"train.apc_rows must exceed {lsp.APC_SHIFT}, got {rows}")
        self.rows = rows
        self.seed = seed
        self.mfcc = [np.asarray(records.require_audio(c, "APC").mfcc, np.float32) for c in clips]
        self.mfcc = [m for m in self.mfcc if m.shape[0] > lsp.APC_SHIFT]
        if not self.mfcc:
            raise InputError(f"no clip with speech to train APC on; got {len(clips)} clips")
        sizes = np.array([max(m.shape[0] - rows + 1, 1) for m in self.mfcc], np.float64)
        self._p = sizes / sizes.sum()

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """{"rows": float32 [B, rows, 13], "length": int32 [B]} of step `step`."""
        rng = sampling.step_rng(self.seed, step)
        out = np.zeros((batch_size, self.rows, self.mfcc[0].shape[1]), np.float32)
        length = np.zeros((batch_size,), np.int32)
        for b, i in enumerate(rng.choice(len(self.mfcc), size=batch_size, p=self._p)):
            m = self.mfcc[i]
            s = int(rng.integers(0, max(m.shape[0] - self.rows, 0) + 1))
            piece = m[s : s + self.rows]
            out[b, : piece.shape[0]], length[b] = piece, piece.shape[0]
        return {"rows": out, "length": length}


class APCPoseWindowSampler:
    """Pose windows with the raw MFCC rows APC reads for them (LSP's "apc" pose phase).

    Like `sampling.PoseWindowSampler` (poses at `fps`, cut to the frames the audio covers,
    clips shorter than `window` skipped, windows uniform over the corpus), but the audio is
    the rows themselves: those of the window's frames (`frame_rows`) after `context` earlier
    rows, so APC enters the window with the state the whole clip gives it, as when the
    paper extracts features of whole utterances. Rows before the clip's start are padding
    (mask False: APC's state stays 0 there, as at a clip's start).
    """

    def __init__(self, clips: list[records.Clip], fps: float, window: int, context: int, seed):
        self.window, self.context, self.seed = window, context, seed
        self.mfcc, self.index, self.pose = [], [], []
        span = 0
        for clip in clips:
            records.require_audio(clip, "pose window sampling")
            pose = records.resample_pose(clip.pose, clip.fps, fps)
            frames = min(pose.shape[0], audio.frames_in_features(clip.mfcc.shape[0], fps))
            if frames < window:
                continue
            index = frame_rows(fps, frames)
            span = max(span, int(np.max(index[window - 1 :, -1] - index[: frames - window + 1, 0])))
            self.mfcc.append(np.asarray(clip.mfcc, np.float32))
            self.index.append(index)
            self.pose.append(pose[:frames].astype(np.float32))
        if not self.pose:
            raise InputError(
                f"no clip has the {window} frames ({window / fps:.1f} s at {fps} fps) a "
                f"training window needs; got {len(clips)} clips"
            )
        self.length = context + span + 1  # rows per window: context, then the window's rows
        sizes = np.array([p.shape[0] - window + 1 for p in self.pose], np.float64)
        self._p = sizes / sizes.sum()

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """{"rows": float32 [B, L, 13], "mask": bool [B, L], "index": int32 [B, window, 4]
        (positions in "rows"), "pose": float32 [B, window, 6]} of step `step`."""
        rng = sampling.step_rng(self.seed, step)
        w, n = self.window, self.length
        rows = np.zeros((batch_size, n, self.mfcc[0].shape[1]), np.float32)
        mask = np.zeros((batch_size, n), bool)
        index = np.zeros((batch_size, w, ROWS_PER_FRAME), np.int32)
        pose = np.zeros((batch_size, w, records.POSE_DIM), np.float32)
        for b, i in enumerate(rng.choice(len(self.pose), size=batch_size, p=self._p)):
            s = int(rng.integers(0, self.pose[i].shape[0] - w + 1))
            first = int(self.index[i][s, 0]) - self.context  # row at position 0 (may be < 0)
            lo, hi = max(first, 0), min(first + n, self.mfcc[i].shape[0])
            rows[b, lo - first : hi - first] = self.mfcc[i][lo:hi]
            mask[b, lo - first : hi - first] = True
            index[b] = self.index[i][s : s + w] - first
            pose[b] = self.pose[i][s : s + w]
        return {"rows": rows, "mask": mask, "index": index, "pose": pose}


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
      init_variables: `(model, key, window) -> {"params": ...}` (and "batch_stats").
      plan: `(config, train_clips) -> (phases, variables or None)` when the model trains in
        other phases than one "train" phase of `loss_fn` on `PoseWindowSampler` windows.
    """

    build: Callable
    loss_fn: Callable
    init_variables: Callable
    plan: Callable | None = None


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


def lsp_audio_features(m) -> str:
    """`config.model.audio_features` of an LSP config: "apc" or "mfcc" ("mfcc" for a config
    written before the field existed: those runs trained on raw MFCC rows)."""
    name = m.get("audio_features", "mfcc")
    if name not in LSP_AUDIO_FEATURES:
        raise InputError(f"unknown model.audio_features {name!r}; expected 'apc' or 'mfcc'")
    return name


def _build_lsp(m):
    """`LSPPoseModel` on raw MFCC rows ("mfcc"), or `APCPoseModel` (APC + the same pose model,
    "apc"); `lsp_audio_features`."""
    features = lsp_audio_features(m)
    pose = lsp.LSPPoseModel(
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
    if features == "mfcc":
        return pose
    apc = lsp.APC(hidden=m.apc_hidden, num_layers=m.apc_layers, residual=m.apc_residual)
    return lsp.APCPoseModel(apc=apc, pose=pose, surface_dim=audio.NUM_CEPSTRA)


def _pose_nll(apply_pose, audio_features, batch, batch_stats):
    """Eq. 11 of `apply_pose(audio_features, states, train=True, rngs=...)` on the batch."""
    states = lsp.pose_to_states(batch["pose"])
    # The batch carries one seed per row (a function of the step), so the state dropout
    # differs between steps and devices and a resumed run draws the same masks.
    key = jax.random.key(batch["seed"][0])
    mean, log_std = apply_pose(audio_features, states, train=True, rngs={"dropout": key})
    nll = lsp_losses.gaussian_pose_nll(mean, log_std, states)
    pose_mse = jnp.mean((mean[..., : records.POSE_DIM] - batch["pose"]) ** 2)
    return nll, ({"loss": nll, "pose_mse": pose_mse}, batch_stats)


def _lsp_loss(params, batch_stats, batch, model, loss_cfg):
    """Eq. 11: the Gaussian NLL of the teacher-forced next-state predictions (raw MFCC)."""
    del loss_cfg
    apply = functools.partial(model.apply, {"params": params})
    return _pose_nll(apply, batch["audio"], batch, batch_stats)


def _lsp_apc_pose_loss(params, batch_stats, batch, model, loss_cfg):
    """Eq. 11 on APC features: the "pose" phase of the "apc" variant.

    APC encodes the batch's raw rows (`APCPoseWindowSampler`: the window's rows after up to
    `train.apc_context_rows` earlier ones) and each frame reads h_L at its rows. APC was
    trained by its own phase and is fixed here (Sec. 4.2.1: the pose model learns from the
    extracted features): no gradient flows into it, and the optimizer freezes its group.
    """
    del loss_cfg
    variables = {"params": params, "batch_stats": batch_stats}
    features = model.apply(
        variables,
        batch["rows"],
        batch["index"],
        batch["mask"],
        method=lsp.APCPoseModel.frame_features,
    )
    apply = functools.partial(model.apply, variables, method=lsp.APCPoseModel.distribution)
    return _pose_nll(apply, jax.lax.stop_gradient(features), batch, batch_stats)


def _apc_loss(params, batch_stats, batch, model, loss_cfg):
    """Eq. 9: the "apc" phase, APC predicting the normalised row `lsp.APC_SHIFT` ahead.

    Metrics besides the loss (Eq. 9: L1 summed over a sequence's frames and dimensions,
    averaged over sequences): `apc_mae`, the same error per predicted value, and `copy_mae`,
    that of predicting x_(t+n) by x_t, the bar a useful predictor must clear.
    """
    del loss_cfg
    n = lsp.APC_SHIFT
    variables = {"params": params, "batch_stats": batch_stats}
    prediction, x, _ = model.apply(variables, batch["rows"], method=lsp.APCPoseModel.encode)
    length = batch["length"]
    loss = lsp_losses.apc_l1(prediction, x, n, length)
    # Per value: the same sums over the valid (t, t + n) pairs, divided by their count.
    valid = (jnp.arange(x.shape[1] - n)[None] + n < length[:, None]).astype(x.dtype)
    count = jnp.maximum(jnp.sum(valid) * x.shape[-1], 1.0)
    mae = loss * x.shape[0] / count
    copy = jnp.sum(jnp.abs(x[:, n:] - x[:, :-n]) * valid[..., None]) / count
    return loss, ({"loss": loss, "apc_mae": mae, "copy_mae": copy}, batch_stats)


def _lsp_init(model, key, window):
    if isinstance(model, lsp.APCPoseModel):
        # Shapes of the parameters do not depend on the lengths: the smallest inputs.
        rows = jnp.zeros((1, ROWS_PER_FRAME, model.surface_dim))
        index = jnp.zeros((1, 1, ROWS_PER_FRAME), jnp.int32)
        return dict(model.init(key, rows, index, jnp.zeros((1, 1, model.pose.state_dim))))
    audio = jnp.zeros((1, window, AUDIO_DIM))
    states = jnp.zeros((1, window, model.state_dim))
    return {"params": model.init(key, audio, states)["params"]}


def _one_phase(config, train_clips, loss_fn) -> tuple[list[loop.Phase], None]:
    """The "train" phase of windows of per-frame MFCC features (`PoseWindowSampler`)."""
    sampler = sampling.PoseWindowSampler(
        train_clips, config.model.fps, int(config.model.window), config.seed
    )
    sample = sampling.with_seeds(sampler.sample, config.seed + 1)  # sampler: seed
    return [loop.Phase("train", int(config.train.steps), loss_fn, optimizer(config), sample)], None


def _lsp_apc_phases(config, train_clips) -> tuple[list[loop.Phase], dict]:
    """Paper 004's two stages as two phases of one run (one checkpoint).

    1. "apc" (`train.apc_steps`): APC alone, Eq. 9 on `train.apc_rows`-row sequences of the
       training speech (`APCSequenceSampler`), Adam at `train.apc_lr` (-> `apc_lr_end`); the
       pose group is frozen.
    2. "pose" (`train.steps`): the pose model, Eq. 11 on APC features of the windows
       (`APCPoseWindowSampler`), Adam at `train.lr` (-> `lr_end`); APC is frozen.

    The variables to start from are `init_variables`' with the surface statistics of the
    training speech (`surface_statistics`) in "batch_stats".
    """
    t, fps, window = config.train, config.model.fps, int(config.model.window)
    apc_sampler = APCSequenceSampler(train_clips, int(t.apc_rows), config.seed + 2)
    pose_sampler = APCPoseWindowSampler(
        train_clips, fps, window, int(t.apc_context_rows), config.seed
    )
    phases = [
        loop.Phase("apc", int(t.apc_steps), _apc_loss,
                   _adam(config, t.apc_lr, t.apc_lr_end, t.apc_steps, frozen="pose"),
                   apc_sampler.sample),
        loop.Phase("pose", int(t.steps), _lsp_apc_pose_loss,
                   _adam(config, t.lr, t.get("lr_end", -1.0), t.steps, frozen="apc"),
                   sampling.with_seeds(pose_sampler.sample, config.seed + 1)),
    ]  # fmt: skip
    variables = init_variables(config, build(config))
    variables["batch_stats"] = surface_statistics(train_clips)
    return phases, variables


def _lsp_plan(config, train_clips):
    if lsp_audio_features(config.model) == "mfcc":
        return _one_phase(config, train_clips, _lsp_loss)
    return _lsp_apc_phases(config, train_clips)


MODELS = {
    "audio2head": PeerModel(_build_audio2head, _audio2head_loss, _audio2head_init),
    "posegan": PeerModel(_build_posegan, _posegan_loss, _posegan_init),
    "lsp": PeerModel(_build_lsp, _lsp_loss, _lsp_init, _lsp_plan),
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
    return _adam(config, config.train.lr, config.train.get("lr_end", -1.0), config.train.steps)


def _adam(config, lr: float, lr_end: float, steps: int, frozen: str | tuple = ()):
    t = config.train
    # Scheduled (linear lr -> lr_end) exactly when the main phase is: every phase's optimizer
    # state must have one structure (one checkpoint), and a schedule adds a step count to it.
    if t.get("lr_end", -1.0) >= 0:
        lr = optax.linear_schedule(lr, lr_end if lr_end >= 0 else lr, max(int(steps), 1))
    # The decay stage is always there (an identity at 0), so the state structure is a function
    # of the config only and `runner.load_variables` can rebuild it.
    return loop.make_optimizer(
        lr, t.grad_clip, t.b1, frozen=frozen, weight_decay=t.get("weight_decay", 0.0)
    )


def init_variables(config, model) -> dict:
    """Initial variables from `fold_in(key(seed), 0)`."""
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    return peer_model(config).init_variables(model, key, int(config.model.window))


def load_data(config, workdir: str) -> tuple[list[records.Clip], list[records.Clip]]:
    """(train, test) clips of `config.data.root`, or of paper 000's synthetic pose corpus."""
    return loop.load_data(config, workdir, "synthetic", synthetic.generate_corpus)


def plan(config, workdir: str) -> tuple[list[loop.Phase], dict | None]:
    """The model's phases (`runner.Trainer.plan`): one "train" phase, or LSP's "apc" and
    "pose" (`_lsp_apc_phases`). Clips without speech (`data.silent`) are left out."""
    train_clips, _ = load_data(config, workdir)
    train_clips = [c for c in train_clips if c.has_audio]
    loop.write_train_clips(workdir, config.data.root, loop.clip_entries(train_clips))
    peer = peer_model(config)
    if peer.plan is not None:
        return peer.plan(config, train_clips)
    return _one_phase(config, train_clips, peer.loss_fn)


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
