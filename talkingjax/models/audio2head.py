"""Paper 002 (Audio2Head, Wang et al., IJCAI 2021), Sec. 3.2: the head motion predictor N_H.

Eq. 1-2, with e_0 the spatial embedding of the first frame:

  (h_i, e_i) = LSTM(h_{i-1}, E_A(a_i) (+) e_{i-1}),    s_i = E_D(e_i)

An audio encoder E_A embeds each video frame's audio features a_i; a two-layer LSTM takes
that embedding concatenated with the previous step's output e_{i-1} (the "spatial embedding
transition", SET) and outputs e_i; a decoder E_D reads the 6-d pose (3 rotation, 3
translation) from e_i. Because e_{i-1} is the previous *output*, the recurrence cannot be
split into one input projection per layer as `StackedLSTM` does; it is a `lax.scan` over
time with all layers inside the step (plain jnp ops). The audio part of the first layer's
input projection does not depend on the recurrence and is still done for all steps at once
with one GEMM before the scan.

Frames and indices: `audio` [B, T, A] and the output [B, T, 6] are aligned with the video
frames 0..T-1. Frame 0 is the reference frame: its output is E_D(e_0) (the paper's s_0, which
its SSIM loss over s_0:T includes); frame t >= 1 is E_D(e_t) with e_t from a_t and e_{t-1}.
The audio of frame 0 is therefore not used, and pose t depends only on audio 1..t (causal).
(The authors' inference code likewise outputs E_D(e_0) followed by one pose per audio frame,
T + 1 poses for T audio frames; with T frames in and T out, frame 0's audio is the one left.)

Departure from the paper: the paper extracts e_0 from the reference image with a ResNet-34
image encoder E_I. No pretrained image weights exist here, and the pose of the first frame is
what E_I has to encode ("e_0 encodes the initial head rotation and translation"), so e_0 is an
MLP embedding of `init_pose` [B, 6] instead (tanh at the end, so e_0 lies in (-1, 1) like the
LSTM outputs o * tanh(c) that later steps feed back in its place).

Sizes. The paper gives: E_A = ResNet-34, a two-layer LSTM, the training window T = 256, a
PatchGAN discriminator with 1D convolutions, LSGAN, Adam at lr 2e-4 with weight decay 2e-6,
batch 64 (Sec. 3.2, 4.2). It does not give the embedding / LSTM widths or the form of E_D;
the defaults follow the authors' public inference code (256-d embeddings, LSTM 512 -> 256,
E_D a single linear layer, zero initial LSTM states). Choices where both are silent are
documented on the attributes (E_A's stem and normalisation, the pose MLP, pose scaling).

The discriminator (`PosePatchDiscriminator`) is pix2pix's PatchGAN (n_layers = 3: 64, 128,
256 with stride 2, 512 with stride 1, then one score channel; kernel 4, LeakyReLU 0.2) with
1D convolutions over time on the 6-channel pose sequence, as the paper describes.

Training with one optimizer (`generator_and_discriminator_loss`): the scalar
L = L_G(theta_g, sg(theta_d)) + L_D(theta_d, sg(fake)) has d L / d theta_g = d L_G / d theta_g
and d L / d theta_d = d L_D / d theta_d, so one `optax` update on {"generator",
"discriminator"} trains both networks simultaneously (Adam is elementwise, so one Adam over
both trees equals two Adams with the same settings). It is a simultaneous update from the same
state, not pix2pix's alternation (D then G); the difference is one step of staleness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from talkingjax.losses import adversarial
from talkingjax.losses import audio2head as a2h_losses


def _norm(kind: str, features: int, groups: int, zero_scale: bool = False):
    if kind == "group":
        # Largest group count <= `groups` dividing `features` (32 for every ResNet width).
        return nn.GroupNorm(
            num_groups=math.gcd(groups, features),
            scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
        )
    if kind == "none":
        return lambda x: x
    raise ValueError(f"unknown norm {kind!r}; expected 'group' or 'none'")


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), with a 1x1 projection shortcut when the shape changes.

    The last normalisation's scale starts at zero (Goyal et al. 2017), so every block starts
    as the identity; without normalisation the second conv's kernel starts at zero instead.
    """

    features: int
    strides: int
    norm: str
    groups: int

    @nn.compact
    def __call__(self, x):
        bias = self.norm == "none"
        s = (self.strides, self.strides)
        y = nn.Conv(self.features, (3, 3), s, padding="SAME", use_bias=bias)(x)
        y = nn.relu(_norm(self.norm, self.features, self.groups)(y))
        y = nn.Conv(
            self.features,
            (3, 3),
            padding="SAME",
            use_bias=bias,
            kernel_init=nn.initializers.zeros if bias else nn.initializers.lecun_normal(),
        )(y)
        y = _norm(self.norm, self.features, self.groups, zero_scale=True)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), s, use_bias=bias)(x)
            x = _norm(self.norm, self.features, self.groups)(x)
        return nn.relu(x + y)


class AudioFrameEncoder(nn.Module):
    """E_A: one video frame's audio features -> embedding (a ResNet over the rows x coeffs map).

    The paper uses ResNet-34 on a_i in R^(4 x 41) (4 windows of 41 features each). Here a_i is
    A generic features per frame, read as an `audio_rows` x (A / audio_rows) single-channel map
    (4 x 13 MFCCs by default). Defaults are ResNet-34's stages (3, 4, 6, 3 basic blocks of 64,
    128, 256, 512 channels, stride 2 from the second stage on; ~21 M parameters), then a global
    average pool and a linear layer to `embed`.

    Attributes:
      embed: output size (256, the authors' code; the paper does not say).
      stage_blocks, stage_features: ResNet stages (ResNet-34 by default).
      audio_rows: rows of the per-frame map (MFCC windows per video frame; 4 at 25 fps).
      norm: "group" (GroupNorm) or "none". The paper does not say; ResNet's BatchNorm would
        add running statistics (state threaded through the GAN loss) and mix frames of a
        batch, so a per-frame GroupNorm (<= 32 groups) is used. Its first application also
        removes the scale of raw MFCCs (about +-70), so no input scaling is needed.
      groups: GroupNorm group count (gcd with the width).

    The stem is a 3 x 3 stride-1 conv without max-pool: torchvision's stem (7 x 7 / 2 conv and
    3 x 3 / 2 max-pool) would shrink a 4 x 13 map to 1 x 4 before the first stage.

    Cost at the defaults: ~80 M multiply-adds per frame (stages at 4 x 13, 2 x 7, 1 x 4, 1 x 2),
    ~1.3 T per forward pass of the paper's batch (64 x 256 frames): a GPU model. On CPU use a
    smaller `stage_blocks` / `stage_features`.
    """

    embed: int = 256
    stage_blocks: Sequence[int] = (3, 4, 6, 3)
    stage_features: Sequence[int] = (64, 128, 256, 512)
    audio_rows: int = 4
    norm: str = "group"
    groups: int = 32

    @nn.compact
    def __call__(self, a: jnp.ndarray) -> jnp.ndarray:
        """[N, A] -> [N, embed]; frames are independent (no mixing over N)."""
        n, dim = a.shape
        if dim % self.audio_rows:
            raise ValueError(f"audio features ({dim}) must divide into {self.audio_rows} rows")
        x = a.reshape(n, self.audio_rows, dim // self.audio_rows, 1)
        width = self.stage_features[0]
        x = nn.Conv(width, (3, 3), padding="SAME", use_bias=self.norm == "none", name="stem")(x)
        x = nn.relu(_norm(self.norm, width, self.groups)(x))
        for stage, (blocks, feats) in enumerate(
            zip(self.stage_blocks, self.stage_features, strict=True)
        ):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = _BasicBlock(feats, strides, self.norm, self.groups)(x)
        return nn.Dense(self.embed, name="fc")(jnp.mean(x, axis=(1, 2)))


def _lstm_cell(pre: jnp.ndarray, c: jnp.ndarray):
    """Gate pre-activations [B, 4H] (order i, f, g, o as `StackedLSTM`) -> (h, c)."""
    i, f, g, o = jnp.split(pre, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


class Audio2HeadPose(nn.Module):
    """N_H: audio features + first-frame pose -> pose per frame (Eq. 1-2), see module doc.

    Attributes:
      hidden: LSTM width = size of the spatial embedding e_i (256, authors' code).
      num_layers: LSTM depth (paper: two).
      audio_embed: size of E_A(a_i) (256, authors' code).
      audio_blocks, audio_features, audio_rows, audio_norm: E_A (`AudioFrameEncoder`;
        ResNet-34 by default, as the paper).
      pose_embed_features: hidden widths of the MLP replacing the image encoder E_I
        (our choice: one ReLU layer of 256).
      pose_scale: scalar or per-channel; the network sees and predicts pose / pose_scale.
        The authors normalise each channel to [-1, 1]; 0.1 maps this library's poses (angles
        ~0.1 rad, translations ~0.1 units around zero) to unit scale (see `PoseDecoder`).
    """

    hidden: int = 256
    num_layers: int = 2
    audio_embed: int = 256
    audio_blocks: Sequence[int] = (3, 4, 6, 3)
    audio_features: Sequence[int] = (64, 128, 256, 512)
    audio_rows: int = 4
    audio_norm: str = "group"
    pose_embed_features: Sequence[int] = (256,)
    pose_scale: float | Sequence[float] = 0.1
    pose_dim: int = 6

    def setup(self):
        self.audio_encoder = AudioFrameEncoder(
            embed=self.audio_embed,
            stage_blocks=tuple(self.audio_blocks),
            stage_features=tuple(self.audio_features),
            audio_rows=self.audio_rows,
            norm=self.audio_norm,
        )
        self.pose_mlp = [nn.Dense(w) for w in self.pose_embed_features]
        self.pose_out = nn.Dense(self.hidden)
        # Same parameter names and layout as `StackedLSTM` (layer 0's input rows: the audio
        # embedding first, then e_{i-1}, the concatenation order of Eq. 1).
        h = self.hidden
        w_ih, w_hh, b = [], [], []
        for layer in range(self.num_layers):
            d_in = self.audio_embed + h if layer == 0 else h
            w_ih.append(self.param(f"w_ih_{layer}", nn.initializers.lecun_normal(), (d_in, 4 * h)))
            w_hh.append(self.param(f"w_hh_{layer}", nn.initializers.orthogonal(), (h, 4 * h)))
            b.append(self.param(f"b_{layer}", self._bias_init, (4 * h,)))
        self.w_ih, self.w_hh, self.b = tuple(w_ih), tuple(w_hh), tuple(b)
        self.decoder = nn.Dense(self.pose_dim)  # E_D

    def _bias_init(self, key, shape, dtype=jnp.float32):
        # Forget gate bias 1 (as `StackedLSTM`), so the state is kept for a few steps at init.
        h = self.hidden
        return jnp.concatenate([jnp.zeros((h,)), jnp.ones((h,)), jnp.zeros((2 * h,))]).astype(dtype)

    def _scale(self) -> jnp.ndarray:
        return jnp.asarray(self.pose_scale, jnp.float32)

    def embed_audio(self, audio: jnp.ndarray) -> jnp.ndarray:
        """E_A on every frame: [B, T, A] -> [B, T, audio_embed]."""
        b, t, a = audio.shape
        return self.audio_encoder(audio.reshape(b * t, a)).reshape(b, t, self.audio_embed)

    def embed_pose(self, init_pose: jnp.ndarray) -> jnp.ndarray:
        """e_0 (replaces E_I): [B, 6] first-frame pose -> [B, hidden] in (-1, 1)."""
        x = init_pose / self._scale()
        for dense in self.pose_mlp:
            x = nn.relu(dense(x))
        return jnp.tanh(self.pose_out(x))

    def decode(self, e: jnp.ndarray) -> jnp.ndarray:
        """E_D (Eq. 2): [..., hidden] -> [..., 6] pose (in pose units)."""
        return self.decoder(e) * self._scale()

    def transition(self, audio_emb: jnp.ndarray, e0: jnp.ndarray) -> jnp.ndarray:
        """Eq. 1 over time: embeddings [B, S, audio_embed] and e_0 [B, H] -> e_1..e_S [B, S, H].

        Initial LSTM states are zero; e_0 enters only as the first step's fed-back embedding.
        """
        w_audio = self.w_ih[0][: self.audio_embed]
        # Step-invariant part of layer 0, for all steps in one GEMM (time-major for the scan).
        proj = jnp.einsum("bse,eg->sbg", audio_emb, w_audio) + self.b[0]
        # Inside the step each layer is one matmul of [input, own state] with stacked weights.
        w0 = jnp.concatenate([self.w_ih[0][self.audio_embed :], self.w_hh[0]], axis=0)
        ws = [jnp.concatenate([self.w_ih[i], self.w_hh[i]], axis=0) for i in range(1, len(self.b))]
        bs = self.b[1:]

        def step(carry, p):
            e, states = carry
            (h0, c0), *rest = states
            h0, c0 = _lstm_cell(p + jnp.concatenate([e, h0], -1) @ w0, c0)
            new = [(h0, c0)]
            x = h0
            for (hl, cl), w, b in zip(rest, ws, bs, strict=True):
                x, cl = _lstm_cell(jnp.concatenate([x, hl], -1) @ w + b, cl)
                new.append((x, cl))
            return (x, tuple(new)), x  # e_i = the top layer's output

        # From e_0, not jnp.zeros: inside shard_map fresh zeros are typed as the same on every
        # device while the states after a step vary per device, and scan needs one carry type.
        zeros = jnp.zeros_like(e0)
        init = (e0, tuple((zeros, zeros) for _ in self.b))
        _, es = jax.lax.scan(step, init, proj)
        return jnp.swapaxes(es, 0, 1)

    def __call__(
        self, audio: jnp.ndarray, init_pose: jnp.ndarray, train: bool = False
    ) -> jnp.ndarray:
        """Predicts a pose sequence.

        Args:
          audio: [B, T, A] per-video-frame audio features (frame 0's are not used).
          init_pose: [B, 6] pose of frame 0 (pitch, yaw, roll in rad; translation x, y, z).
          train: no effect (no dropout or batch statistics); kept so that pose models share
            one call signature.

        Returns:
          [B, T, 6]: frame 0 = E_D(e_0), frame t = E_D(e_t) (see the module docstring).
        """
        del train
        e0 = self.embed_pose(init_pose)
        es = self.transition(self.embed_audio(audio[:, 1:]), e0)
        return self.decode(jnp.concatenate([e0[:, None], es], axis=1))


class PosePatchDiscriminator(nn.Module):
    """D: 1D PatchGAN over the pose sequence (Sec. 3.2: "1D convolution operations on head
    motion sequence along temporal trunks").

    pix2pix's NLayerDiscriminator with 1D convs: conv(features[0], stride 2) + LeakyReLU 0.2;
    conv(f, stride 2) + norm + LeakyReLU for the middle features; conv(features[-1], stride 1)
    + norm + LeakyReLU; conv(1, stride 1). Kernel 4, padding 1 (PyTorch's), so with the
    defaults each score sees 70 frames (2.8 s at 25 fps) and T = 256 gives T' = 30 scores.
    `num_patches(T, len(features), kernel)` gives T' (it must be >= 1).

    Attributes:
      features: channel widths (pix2pix default, n_layers = 3).
      kernel: temporal kernel size (4, pix2pix).
      norm: "instance" (CycleGAN's choice for its LSGAN; non-affine, per sample, so real and
        fake batches never mix) or "none". pix2pix's BatchNorm is not used (see E_A).
      conditional: also see the audio, concatenated as channels (pix2pix conditions this way).
        The paper's D sees the head motion only, so the default is False.
      pose_scale: D sees pose / pose_scale (as the generator; see `Audio2HeadPose`).
    """

    features: Sequence[int] = (64, 128, 256, 512)
    kernel: int = 4
    norm: str = "instance"
    conditional: bool = False
    pose_scale: float | Sequence[float] = 0.1

    @nn.compact
    def __call__(self, pose: jnp.ndarray, audio: jnp.ndarray | None = None) -> jnp.ndarray:
        """[B, T, 6] poses (and [B, T, A] audio if conditional) -> [B, T', 1] patch scores."""
        if self.norm not in ("instance", "none"):
            raise ValueError(f"unknown norm {self.norm!r}; expected 'instance' or 'none'")
        if self.conditional != (audio is not None):
            raise ValueError("audio must be given iff the discriminator is conditional")
        x = pose / jnp.asarray(self.pose_scale, jnp.float32)
        if audio is not None:
            x = jnp.concatenate([x, audio], axis=-1)
        pad = ((1, 1),)
        feats = tuple(self.features)
        for i, f in enumerate(feats):
            stride = 1 if i == len(feats) - 1 else 2
            use_norm = i > 0 and self.norm == "instance"
            x = nn.Conv(f, (self.kernel,), (stride,), padding=pad, use_bias=not use_norm)(x)
            if use_norm:
                x = nn.InstanceNorm(use_scale=False, use_bias=False)(x)
            x = nn.leaky_relu(x, 0.2)
        return nn.Conv(1, (self.kernel,), padding=pad, name="score")(x)


def num_patches(frames: int, num_features: int = 4, kernel: int = 4) -> int:
    """T' of `PosePatchDiscriminator` for T = frames (padding 1 on every conv)."""
    for _ in range(num_features - 1):  # the stride-2 convs
        frames = (frames + 2 - kernel) // 2 + 1
    for _ in range(2):  # the last feature conv and the score conv, stride 1
        frames = frames + 2 - kernel + 1
    return frames


def generator_and_discriminator_loss(
    g_model: Audio2HeadPose,
    d_model: PosePatchDiscriminator,
    params: dict,
    batch: dict,
    ssim_window: int | None = None,
    lambda_ssim: float = a2h_losses.LAMBDA_SSIM,
    lambda_gan: float = a2h_losses.LAMBDA_GAN,
) -> tuple[jnp.ndarray, dict]:
    """One scalar whose gradient trains N_H on Eq. 4 and D on the LSGAN objective.

    L = L_G(theta_g, sg(theta_d)) + L_D(theta_d, sg(fake)), sg = `jax.lax.stop_gradient`:
    the generator term sees the discriminator's parameters as constants (so D gets no
    gradient that would help the generator), and the discriminator term sees the generated
    sample as a constant (so N_H gets no gradient that would help D). Hence dL/dtheta_g =
    dL_G/dtheta_g and dL/dtheta_d = dL_D/dtheta_d, and one optimizer step on `params` updates
    both networks. (Lives with the models, not in `talkingjax.losses`, because it applies
    them; the loss terms themselves are `talkingjax.losses.audio2head`.)

    Args:
      g_model, d_model: the modules.
      params: {"generator": N_H params, "discriminator": D params}.
      batch: {"audio": [B, T, A], "pose": [B, T, 6]}; init_pose = pose[:, 0].
      ssim_window: `pose_ssim`'s window (None: the paper's whole-sequence statistics).
      lambda_ssim, lambda_gan: Eq. 4 weights (both 1).

    Returns:
      (L, metrics) with metrics: generator (L_G, Eq. 4), ssim (Eq. 3), gan (LSGAN generator
      term), discriminator (L_D), d_real, d_fake (mean patch scores).
    """
    audio, pose = batch["audio"], batch["pose"]
    cond = audio if d_model.conditional else None
    fake = g_model.apply({"params": params["generator"]}, audio, pose[:, 0], train=True)

    # One scalar for both networks: see `talkingjax.losses.adversarial`.
    gan = a2h_losses.lsgan_generator(
        adversarial.generator_view(d_model, params["discriminator"], fake, cond)
    )
    scale = jnp.asarray(g_model.pose_scale, jnp.float32)
    ssim = a2h_losses.pose_ssim(fake / scale, pose / scale, window=ssim_window)
    g_loss = a2h_losses.pose_predictor_objective(ssim, gan, lambda_ssim, lambda_gan)
    real_logits, fake_logits = adversarial.discriminator_view(
        d_model, params["discriminator"], (pose, cond), (fake, cond)
    )
    d_loss = a2h_losses.lsgan_discriminator(real_logits, fake_logits)

    metrics = {
        "generator": g_loss,
        "ssim": ssim,
        "gan": gan,
        "discriminator": d_loss,
        "d_real": jnp.mean(real_logits),
        "d_fake": jnp.mean(fake_logits),
    }
    return g_loss + d_loss, metrics
