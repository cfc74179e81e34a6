"""Paper 004 (Live Speech Portraits, Lu et al. 2021): probabilistic head pose, APC, projection.

* `LSPPoseModel` (Sec. 3.3, Eq. 6-8, Fig. 4): a WaveNet-style stack of gated residual layers
  with causal dilated convolutions over the past head-motion states, conditioned on per-frame
  audio features, predicting a diagonal Gaussian over the next state. Trained with the
  negative log-likelihood of Eq. 11 (`talkingjax.losses.lsp.gaussian_pose_nll`).
* `sample` / `sample_states` (Eq. 7-8): autoregressive sampling with `jax.lax.scan` at a
  constant cost per frame.
* `APC` (Sec. 3.1, Eq. 1): autoregressive predictive coding, a unidirectional 3 x 512 GRU over
  log-mel frames whose last hidden layer is the deep speech representation (loss: Eq. 9).
* `APCPoseModel` (Sec. 3.1 + 3.3): APC and the pose model as one module, the pose model
  conditioned on h_L at each video frame's surface rows (parameters {"apc", "pose"}, the
  surface normalisation in "batch_stats"; trained in two phases by `talkingjax.train.peers`).
* `manifold_projection` (Sec. 3.1.1, Eq. 2-3): locally linear reconstruction of each feature
  from its K = 10 nearest neighbours in the target speaker's feature database.

State convention. A head pose is p_t in R^6 (pitch, yaw, roll in radians, then translation).
The model works on the 12-d state x_t = (p_t, dp_t) with the velocity dp_t = p_t - p_(t-1)
and dp_0 = 0 (Sec. 4.2.3; `pose_to_states`). This is the reference code's convention.

Time alignment. `LSPPoseModel.__call__(audio, states)` takes the state sequence itself and
shifts it right by one internally (teacher forcing; position 0 sees an all-zero state), so
output t is p(x_t | x_(<t), audio_(<=t)) and the training target is `states` again:
`gaussian_pose_nll(*model.apply(v, audio, states), states)`. With kernel size 2 and the
paper's dilations 1, 2, ..., 64 repeated twice (Sec. 3.3), each block of seven layers sees 128
positions and the two blocks F = 1 + 2 * 127 = 255: output t depends on exactly the F = 255
states t-255 .. t-1 (Eq. 7: P_(t-F) .. P_(t-1)), i.e. up to 254 frames before the most recent
input state, and on the audio of the 254 frames t-253 .. t (audio enters every layer at the
layer's output frame, so the first layer's oldest tap, t-254, carries a state only). Eq. 7
conditions on h_t alone; through the residual stream the stack also sees the audio of this
window, as the reference implementation does. The reference code feeds audio about 14 frames
(60 fps) ahead of the predicted frame; here the caller aligns `audio` (shift it to add
look-ahead).

Sizes. Defaults are the paper's where it gives them (two blocks of seven layers, dilations,
F = 255, a Gaussian output, 2 relu-conv post-processing layers, APC 3 x 512 GRU on 80-d
log-mel, K = 10) and otherwise the authors' released configuration: 128 residual / dilation
channels, 256 skip channels, kernel size 2, a 512-d audio pre-net of two linear layers, two
1x1 start convolutions, a post-net as wide as its output (24 here: the reference's 25th output
channel, the weight of its single-component "GMM", is unused and dropped). With 1024-d audio
input (two 512-d APC frames per 60 fps video frame) the pose model has 4,266,608 parameters,
the paper's 4.267 M (Sec. 4.3); the APC GRU has 4,064,256, the paper's 4.064 M. Per-frame
audio here is generic (`A`); the library's MFCC front end gives A = 52 (four 13-d rows per
25 fps frame), `APCPoseModel` A = 4 x hidden (h_L at those four 100 Hz rows; 2048 at the
paper's width, so its pose model has 524,288 more input weights than the paper's 1024-d one).

Choices where the paper is silent (each an attribute):
  * the audio pre-net normalises with LayerNorm where the reference uses BatchNorm: it is per
    frame, so the model stays stateless and strictly causal in training as well;
  * `state_dropout`: the reference drops whole input-state channels over the full window
    (PyTorch Dropout2d, p = 0.5) in training; kept, with the same default;
  * `pose_scale` / `velocity_scale`: states are divided by these on the way in and the output
    Gaussian is mapped back, so the network works on unit-scale numbers (head poses spread over
    ~0.1 rad, per-frame velocities ~0.01); 1.0 feeds raw states, as the reference does;
  * `min_std`: the reference floors sigma at 0.03 *degrees* (its poses are in degrees), about
    5e-4 rad; the floor is applied inside the model so that training and sampling agree;
  * the start convolutions use the same activation as the post-net (relu, Sec. 3.3); the
    reference uses leaky relu 0.2 throughout.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

#: Sec. 3.3: "1, 2, 4, 8, 16, 32, 64, 1, 2, 4, 8, 16, 32, 64".
PAPER_DILATIONS = (1, 2, 4, 8, 16, 32, 64) * 2
#: Sec. 3.1.1: K nearest neighbours of the manifold projection.
PAPER_K = 10
#: Sec. 4.2.1: APC predicts the frame n = 3 steps ahead.
APC_SHIFT = 3

_ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2)}


def pose_to_states(pose: jnp.ndarray) -> jnp.ndarray:
    """[..., T, 6] poses -> [..., T, 12] states (p_t, p_t - p_(t-1)), velocity 0 at t = 0."""
    velocity = jnp.concatenate([jnp.zeros_like(pose[..., :1, :]), jnp.diff(pose, axis=-2)], -2)
    return jnp.concatenate([pose, velocity], axis=-1)


def _shift_right(x: jnp.ndarray, steps: int) -> jnp.ndarray:
    """[B, T, C] -> x delayed by `steps` frames along T, zeros entering on the left."""
    if steps == 0:
        return x
    length = x.shape[1]
    if steps >= length:
        return jnp.zeros_like(x)
    return jnp.pad(x[:, : length - steps], ((0, 0), (steps, 0), (0, 0)))


class GatedResidualLayer(nn.Module):
    """One WaveNet layer (Fig. 4): causal dilated conv, tanh x sigmoid gate, residual + skip.

    filter|gate = sum_i W_i h_(t - (k-1-i) d) + b + V c_t;  z = tanh(filter) * sigmoid(gate);
    returns (h + R z, S z). Filter and gate (and their conditioning projections) are stored as
    one kernel each, the same function and parameter count as the reference's separate ones.
    """

    dilation: int
    kernel_size: int = 2
    residual_channels: int = 128
    dilation_channels: int = 128
    skip_channels: int = 256

    def setup(self):
        k, r, d = self.kernel_size, self.residual_channels, self.dilation_channels
        # Same initialisation as nn.Conv: lecun normal with fan-in k * r.
        self.taps = self.param("taps", nn.initializers.lecun_normal(), (k, r, 2 * d))
        self.taps_bias = self.param("taps_bias", nn.initializers.zeros_init(), (2 * d,))
        self.cond = nn.Dense(2 * d)
        self.residual = nn.Dense(r)
        self.skip = nn.Dense(self.skip_channels)

    @property
    def history(self) -> int:
        """Past inputs the layer reads: (kernel_size - 1) * dilation."""
        return (self.kernel_size - 1) * self.dilation

    def condition(self, c: jnp.ndarray) -> jnp.ndarray:
        """[..., cond] audio features -> [..., 2 * dilation_channels] (per frame)."""
        return self.cond(c)

    def _gate(self, fg, h):
        f, g = jnp.split(fg, 2, axis=-1)
        z = jnp.tanh(f) * nn.sigmoid(g)
        return h + self.residual(z), self.skip(z)

    def __call__(self, h: jnp.ndarray, cond: jnp.ndarray):
        """Whole sequence: h [B, T, R], cond [B, T, 2D] from `condition` -> (h', skip)."""
        fg = cond + self.taps_bias
        for i in range(self.kernel_size):
            # Tap i reads the input (k-1-i) * d frames back; zero padding before frame 0.
            fg = fg + _shift_right(h, (self.kernel_size - 1 - i) * self.dilation) @ self.taps[i]
        return self._gate(fg, h)

    def step(self, h_t: jnp.ndarray, cond_t: jnp.ndarray, buffer: jnp.ndarray):
        """One frame: h_t [B, R], cond_t [B, 2D], buffer [B, history, R] of the layer's last
        inputs (oldest first) -> ((h'_t, skip_t), new buffer)."""
        fg = cond_t + self.taps_bias
        for i in range(self.kernel_size):
            back = (self.kernel_size - 1 - i) * self.dilation
            tap = h_t if back == 0 else buffer[:, self.history - back]
            fg = fg + tap @ self.taps[i]
        buffer = jnp.concatenate([buffer[:, 1:], h_t[:, None]], axis=1)
        return self._gate(fg, h_t), buffer


class LSPPoseModel(nn.Module):
    """Probabilistic head-pose network Phi (Sec. 3.3, Eq. 7; sizes: module docstring).

    Attributes:
      dilations: one causal dilated layer per entry (paper: 1..64 twice, F = 255).
      kernel_size: taps of the dilated convolutions (reference 2).
      residual_channels, dilation_channels, skip_channels: WaveNet widths (128, 128, 256).
      cond_channels: width of the audio pre-net (512).
      post_channels: hidden width of the 2-layer post-net (reference: the output width).
      state_dim: 12 = 6 pose + 6 velocity.
      activation: "relu" (Sec. 3.3 post-net) or "leaky_relu" (0.2, reference code).
      state_dropout: whole-channel dropout of the input states in training (reference 0.5);
        needs a "dropout" rng when train=True and > 0.
      pose_scale, velocity_scale: input / output normalisation of the two halves of the state.
      min_std: floor of the predicted standard deviation in state units, or None.
    """

    dilations: Sequence[int] = PAPER_DILATIONS  # a tuple, so the module stays hashable
    kernel_size: int = 2
    residual_channels: int = 128
    dilation_channels: int = 128
    skip_channels: int = 256
    cond_channels: int = 512
    post_channels: int = 24
    state_dim: int = 12
    activation: str = "relu"
    state_dropout: float = 0.5
    pose_scale: float = 0.1
    velocity_scale: float = 0.01
    min_std: float | None = 5e-4

    def setup(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected relu/leaky_relu")
        if self.state_dim % 2:
            raise ValueError(f"state_dim must be even (pose + velocity), got {self.state_dim}")
        self.audio_in = nn.Dense(self.cond_channels)
        self.audio_norm = nn.LayerNorm()
        self.audio_out = nn.Dense(self.cond_channels)
        # broadcast over time: a dropped channel is dropped for the whole window (Dropout2d).
        self.dropout = nn.Dropout(self.state_dropout, broadcast_dims=(1,))
        self.start_1 = nn.Dense(self.residual_channels)
        self.start_2 = nn.Dense(self.residual_channels)
        self.layers = [
            GatedResidualLayer(
                dilation=d,
                kernel_size=self.kernel_size,
                residual_channels=self.residual_channels,
                dilation_channels=self.dilation_channels,
                skip_channels=self.skip_channels,
            )
            for d in self.dilations
        ]
        self.post_1 = nn.Dense(self.post_channels)
        self.post_2 = nn.Dense(2 * self.state_dim)

    @property
    def receptive_field(self) -> int:
        """F: number of past states (and audio frames) output t depends on (255 by default)."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def _scale(self, dtype) -> jnp.ndarray:
        half = self.state_dim // 2
        return jnp.asarray([self.pose_scale] * half + [self.velocity_scale] * half, dtype)

    def _act(self, x):
        return _ACTIVATIONS[self.activation](x)

    def condition(self, audio: jnp.ndarray) -> jnp.ndarray:
        """[B, T, A] audio features -> [B, T, L, 2 * dilation_channels] per-layer conditioning.

        Purely per frame, so the sampler computes it for the whole clip in one batched call.
        """
        c = nn.leaky_relu(self.audio_norm(self.audio_in(audio)), 0.2)
        c = self.audio_out(c)
        return jnp.stack([layer.condition(c) for layer in self.layers], axis=-2)

    def _embed(self, states: jnp.ndarray) -> jnp.ndarray:
        return self._act(self.start_2(self._act(self.start_1(states))))

    def _head(self, skip: jnp.ndarray):
        y = self.post_2(self._act(self.post_1(self._act(skip))))
        mean, neg_log_std = jnp.split(y, 2, axis=-1)
        scale = self._scale(y.dtype)
        # Sec. 4.2.3: the network outputs -log(sigma) "to increase numerical stability".
        log_std = jnp.log(scale) - neg_log_std
        if self.min_std is not None:
            log_std = jnp.maximum(log_std, math.log(self.min_std))
        return mean * scale, log_std

    def __call__(self, audio: jnp.ndarray, past_states: jnp.ndarray, train: bool = False):
        """Teacher-forced Gaussian over every state of a clip.

        Args:
          audio: [B, T, A] per-video-frame audio features.
          past_states: [B, T, 12] states x_0 .. x_(T-1) (`pose_to_states`); shifted right by
            one inside, so output t never sees x_t or later.
          train: enables `state_dropout` (needs rngs={"dropout": key}).

        Returns:
          (mean [B, T, 12], log_std [B, T, 12]): the distribution of x_t given x_(<t) and
          audio up to t, in state units (radians / translation units, per frame).
        """
        inputs = _shift_right(past_states, 1) / self._scale(past_states.dtype)
        inputs = self.dropout(inputs, deterministic=not train or self.state_dropout == 0.0)
        cond = self.condition(audio)
        h = self._embed(inputs)
        skip = 0.0
        for i, layer in enumerate(self.layers):
            h, s = layer(h, cond[..., i, :])
            skip = skip + s
        return self._head(skip)

    def step(self, prev_state: jnp.ndarray, cond_t: jnp.ndarray, cache: tuple):
        """One autoregressive step (inference; no dropout).

        Args:
          prev_state: [B, 12] x_(t-1) (zeros at t = 0).
          cond_t: [B, L, 2D] row t of `condition(audio)`.
          cache: per-layer buffers from `init_cache`, advanced by one frame.

        Returns:
          (mean [B, 12], log_std [B, 12], new cache): the same values as `__call__` at t.
        """
        h = self._embed(prev_state / self._scale(prev_state.dtype))
        skip = 0.0
        new_cache = []
        for i, layer in enumerate(self.layers):
            (h, s), buffer = layer.step(h, cond_t[:, i], cache[i])
            new_cache.append(buffer)
            skip = skip + s
        mean, log_std = self._head(skip)
        return mean, log_std, tuple(new_cache)


def init_cache(model: LSPPoseModel, batch: int, dtype=jnp.float32) -> tuple:
    """Zero per-layer buffers: layer inputs before frame 0, i.e. the convolutions' padding.

    Layer l keeps its last (kernel_size - 1) * dilation_l inputs, 254 frames of 128 channels
    in all for the paper's model, so a step costs one frame per layer whatever the clip length.
    """
    return tuple(
        jnp.zeros((batch, (model.kernel_size - 1) * d, model.residual_channels), dtype)
        for d in model.dilations
    )


@functools.partial(jax.jit, static_argnames=("model", "feedback"))
def _sample_states(model, variables, audio, init_states, init_audio, key, temperature, feedback):
    num_frames, half = audio.shape[0], model.state_dim // 2
    window = model.receptive_field
    if init_states is not None and init_states.shape[0] > 0:
        if init_audio is None:
            # The reference pads the history with copies of the first audio frame.
            init_audio = jnp.broadcast_to(audio[:1], (init_states.shape[0], audio.shape[1]))
        # A sampled frame reads the last F states and, at every layer, only activations
        # computed from those states (never the padding), so older history cannot matter.
        init_states, init_audio = init_states[-window:], init_audio[-window:]
        history = init_states.shape[0]
        audio = jnp.concatenate([init_audio.astype(audio.dtype), audio], axis=0)
    else:
        history = 0
    cond = model.apply(variables, audio[None], method=LSPPoseModel.condition)[0]

    noise = jax.random.normal(key, (num_frames, model.state_dim), cond.dtype)
    if history:
        # One scan over history + new frames (one compiled body): history steps only advance
        # the buffers and then feed the given state (teacher forcing).
        forced = jnp.concatenate(
            [init_states.astype(cond.dtype), jnp.zeros((num_frames, model.state_dim), cond.dtype)]
        )
        noise = jnp.concatenate([jnp.zeros((history, model.state_dim), cond.dtype), noise])
    else:
        forced = jnp.zeros((num_frames, model.state_dim), cond.dtype)
    is_forced = jnp.arange(history + num_frames) < history

    def body(carry, xs):
        cache, prev, has_prev = carry
        cond_t, noise_t, forced_t, is_forced_t = xs
        mean, log_std, cache = model.apply(
            variables, prev[None], cond_t[None], cache, method=LSPPoseModel.step
        )
        x = mean[0] + temperature * jnp.exp(log_std[0]) * noise_t
        if feedback == "pose":
            # Sec. 3.3 / 4.2.3: keep the sampled pose, "encode the current pose" as the next
            # input; its velocity is recomputed (0 without history, as in training data).
            pose = x[:half]
            velocity = jnp.where(has_prev, pose - prev[:half], 0.0)
            x = jnp.concatenate([pose, velocity])
        x = jnp.where(is_forced_t, forced_t, x)
        return (cache, x, jnp.asarray(True)), x

    prev = jnp.zeros((model.state_dim,), cond.dtype)  # x_(-1): the zero input of frame 0
    carry = (init_cache(model, 1, cond.dtype), prev, jnp.asarray(False))
    _, states = jax.lax.scan(body, carry, (cond, noise, forced, is_forced))
    return states[history:]


def sample_states(
    model: LSPPoseModel,
    variables,
    audio: jnp.ndarray,
    init_states: jnp.ndarray | None,
    key: jax.Array,
    temperature: float = 1.0,
    *,
    init_audio: jnp.ndarray | None = None,
    feedback: str = "pose",
) -> jnp.ndarray:
    """Eq. 7-8: samples states x_t ~ N(mu_t, (temperature * sigma_t)^2) frame by frame.

    Args:
      model, variables: a trained `LSPPoseModel` and its variables.
      audio: [T, A] audio features of the frames to generate.
      init_states: [P, 12] states preceding frame 0 (history), or None to start from
        nothing (the zero padding seen at the start of every training clip).
      key: a `jax.random.key`.
      temperature: multiplies sigma (the reference's `sigma_scale`; its demo uses 0.3); 0 gives
        the mean rollout.
      init_audio: [P, A] audio of the history frames; default: copies of `audio[0]`.
      feedback: what is fed back as x_t.
        "pose" (default): the sampled pose p_t with the velocity recomputed as p_t - p_(t-1)
          (0 for the first frame without history), so the model always sees states in which
          velocity and pose agree, as in training; the sampled velocity is not used (the
          paper uses only the first six dimensions after sampling).
        "sample": the raw 12-d sample (the reference code's rollout).

    Returns:
      [T, 12] fed-back states; the poses are `[:, :6]` under either rule.

    Cost per frame is constant: the scan carries per-layer buffers of the last layer inputs
    (`init_cache`), which hold exactly what the 255-frame window contributes.
    """
    if feedback not in ("pose", "sample"):
        raise ValueError(f"unknown feedback {feedback!r}; expected 'pose' or 'sample'")
    if audio.ndim != 2:
        raise ValueError(f"audio must be [T, A], got shape {audio.shape}")
    if init_states is not None:
        if init_states.ndim != 2 or init_states.shape[1] != model.state_dim:
            raise ValueError(f"init_states must be [P, {model.state_dim}], got {init_states.shape}")
        if init_audio is not None and init_audio.shape != (init_states.shape[0], audio.shape[1]):
            raise ValueError(
                f"init_audio must be [P, A] = {(init_states.shape[0], audio.shape[1])}, "
                f"got {init_audio.shape}"
            )
    return _sample_states(
        model, variables, audio, init_states, init_audio, key, temperature, feedback
    )


def sample(
    model: LSPPoseModel,
    variables,
    audio: jnp.ndarray,
    init_states: jnp.ndarray | None,
    key: jax.Array,
    temperature: float = 1.0,
    **kwargs,
) -> jnp.ndarray:
    """Eq. 8: [T, 6] sampled head poses; see `sample_states` for the arguments."""
    states = sample_states(model, variables, audio, init_states, key, temperature, **kwargs)
    return states[:, : model.state_dim // 2]


# ----------------------------------------------------------------------------- APC (Sec. 3.1)


def _torch_uniform(bound: float):
    """U(-bound, bound), PyTorch's GRU initialisation (bound = 1 / sqrt(hidden))."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class GRULayer(nn.Module):
    """A unidirectional GRU in PyTorch's parameterisation (gates r, z, n; biases b_ih, b_hh).

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h. Keeping both biases reproduces the
    paper's parameter count (4.064 M for 3 x 512 on 80-d input). The input projection of the
    whole sequence is one GEMM; only h @ W_hh runs inside the scan.
    """

    hidden: int

    @nn.compact
    def __call__(self, x: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
        """[B, T, D] -> [B, T, hidden] hidden states, h_(-1) = 0.

        `mask`: optional bool [B, T]; where False the step is skipped (h_t = h_(t-1)), so
        left padding leaves the state at 0 and a padded sequence starts as an unpadded one.
        """
        hid = self.hidden
        init = _torch_uniform(1.0 / math.sqrt(hid))
        w_ih = self.param("w_ih", init, (x.shape[-1], 3 * hid))
        w_hh = self.param("w_hh", init, (hid, 3 * hid))
        b_ih = self.param("b_ih", init, (3 * hid,))
        b_hh = self.param("b_hh", init, (3 * hid,))
        xi = jnp.swapaxes(x @ w_ih + b_ih, 0, 1)  # time-major [T, B, 3H]

        def cell(h, xs):
            xi_t, keep_t = xs
            hh = h @ w_hh + b_hh
            r = nn.sigmoid(xi_t[:, :hid] + hh[:, :hid])
            z = nn.sigmoid(xi_t[:, hid : 2 * hid] + hh[:, hid : 2 * hid])
            n = jnp.tanh(xi_t[:, 2 * hid :] + r * hh[:, 2 * hid :])
            new = (1.0 - z) * n + z * h
            if keep_t is not None:
                new = jnp.where(keep_t[:, None], new, h)
            return new, new

        # Derived from the input (not jnp.zeros) so that under shard_map the carry has the
        # input's device-varying type, as scan requires.
        h0 = jnp.zeros_like(xi[0, :, :hid])
        keep = None if mask is None else jnp.swapaxes(mask.astype(bool), 0, 1)
        _, hs = jax.lax.scan(cell, h0, (xi, keep))
        return jnp.swapaxes(hs, 0, 1)


class APC(nn.Module):
    """Autoregressive predictive coding (Sec. 3.1, Eq. 1; Chung and Glass 2020).

    Attributes:
      hidden: GRU width (paper 512).
      num_layers: L (paper 3).
      residual: add each non-final layer's input to its output (the reference's
        `APC_residual` option, off by default there).
    """

    hidden: int = 512
    num_layers: int = 3
    residual: bool = False

    @nn.compact
    def __call__(self, frames: jnp.ndarray, mask: jnp.ndarray | None = None):
        """Encodes surface features and predicts the frame `APC_SHIFT` ahead.

        Args:
          frames: [B, T, D] surface features (paper: 80-d log-mel, 1/120 s hop).
          mask: optional bool [B, T], False on left padding (`GRULayer`: the state stays 0
            there, so a sequence padded on the left is encoded as if it started later).

        Returns:
          (prediction [B, T, D], features [B, T, hidden]): y_t, trained towards x_(t+n) by
          Eq. 9 (`talkingjax.losses.lsp.apc_l1`); h_L, the deep speech representation (the
          linear prediction layer is dropped at test time). Both are causal in time.
        """
        h = frames
        for layer in range(self.num_layers):
            out = GRULayer(self.hidden, name=f"gru_{layer}")(h, mask)
            if self.residual and layer + 1 < self.num_layers and out.shape == h.shape:
                out = out + h
            h = out
        return nn.Dense(frames.shape[-1], name="predict")(h), h


class APCPoseModel(nn.Module):
    """The pose model Phi conditioned on APC features (Sec. 3.1 + 3.3): h_L per video frame.

    APC (`apc`) encodes a clip's surface feature rows causally (100 Hz); each video frame's
    audio feature is the concatenation of h_L at that frame's K rows (`index`, K = 4 at
    25 fps: the frame's own 40 ms, two of the paper's 120 Hz APC frames per 60 fps frame
    being its analogue); `pose` (`LSPPoseModel`) takes those K * hidden values as its per-frame
    audio. Parameters {"apc": ..., "pose": ...}, so a trainer can train and freeze the two
    groups separately (Sec. 4.2.1: APC self-supervised first, then the pose model on its
    features). The surface rows are normalised per dimension by fixed statistics kept in the
    "batch_stats" collection (`surface_mean`, `surface_std`: init 0 and 1; the trainer sets
    them from its training speech), so Eq. 9's L1 weighs every dimension alike and a
    checkpoint carries what its features were normalised with.

    Attributes:
      apc: the `APC` encoder (paper 3 x 512 GRU).
      pose: the `LSPPoseModel`.
      surface_dim: D of the surface rows (13 MFCC coefficients here; the paper's 80 mels).
    """

    apc: APC
    pose: LSPPoseModel
    surface_dim: int = 13

    def setup(self):
        d = (self.surface_dim,)
        self.surface_mean = self.variable("batch_stats", "surface_mean", jnp.zeros, d, jnp.float32)
        self.surface_std = self.variable("batch_stats", "surface_std", jnp.ones, d, jnp.float32)

    def surface(self, rows: jnp.ndarray) -> jnp.ndarray:
        """[B, R, D] raw surface rows -> the normalised rows APC reads (and Eq. 9 predicts)."""
        return (rows - self.surface_mean.value) / self.surface_std.value

    def encode(self, rows: jnp.ndarray, mask: jnp.ndarray | None = None):
        """[B, R, D] raw rows (mask: bool [B, R], False on left padding) -> (prediction
        [B, R, D], normalised rows [B, R, D], h_L [B, R, hidden]); Eq. 9 compares the first
        two (`talkingjax.losses.lsp.apc_l1`)."""
        x = self.surface(rows)
        prediction, features = self.apc(x, mask)
        return prediction, x, features

    def frame_features(
        self, rows: jnp.ndarray, index: jnp.ndarray, mask: jnp.ndarray | None = None
    ) -> jnp.ndarray:
        """Per-video-frame APC features.

        Args:
          rows: [B, R, D] raw surface rows (MFCC rows here), oldest first.
          index: int [B, T, K] the rows of each of the T frames (positions into `rows`).
          mask: optional bool [B, R], False on left padding.

        Returns:
          [B, T, K * hidden]: h_L at the K rows of each frame, in row order. h_L at row r has
          read rows <= r only, so a frame's feature depends on its own and earlier audio.
        """
        return _gather_frames(self.encode(rows, mask)[2], index)

    def distribution(self, features: jnp.ndarray, past_states: jnp.ndarray, train: bool = False):
        """`LSPPoseModel.__call__` on per-frame features [B, T, K * hidden] (see there)."""
        return self.pose(features, past_states, train)

    def __call__(
        self,
        rows: jnp.ndarray,
        index: jnp.ndarray,
        past_states: jnp.ndarray,
        mask: jnp.ndarray | None = None,
        train: bool = False,
    ):
        """Teacher-forced Gaussian over the states from raw rows: `frame_features`, then
        `distribution` -> (mean [B, T, 12], log_std [B, T, 12]). Creates every variable."""
        _, _, h = self.encode(rows, mask)
        return self.distribution(_gather_frames(h, index), past_states, train)


def _gather_frames(h: jnp.ndarray, index: jnp.ndarray) -> jnp.ndarray:
    """h [B, R, H], index int [B, T, K] -> [B, T, K * H]: each frame's K rows concatenated."""
    b, t, k = index.shape
    gathered = jnp.take_along_axis(h, index.reshape(b, t * k, 1), axis=1)
    return gathered.reshape(b, t, k * h.shape[-1])


# ----------------------------------------------------------------------------- Eq. 2-3


def lle_weights(target: jnp.ndarray, neighbours: jnp.ndarray, reg: float = 1e-3) -> jnp.ndarray:
    """Eq. 2: barycentric weights of `target` [D] in `neighbours` [K, D], sum_k w_k = 1.

    The constraint is eliminated as in the authors' code: w_1 = 1 - sum_(k>1) w_k, so with
    A = [f_k - f_1]_(k>1) ([K-1, D]) and b = h - f_1 the problem is plain least squares,
    solved by the ridge-regularised normal equations (A A^T + lambda I) w_(>1) = A b with
    lambda = reg * trace(A A^T) / (K - 1) (`reg` itself if that trace is 0). The ridge keeps the
    solve well posed when neighbours are (nearly) affinely dependent, e.g. repeated silent
    frames or K - 1 > D, and shrinks towards f_1 = the nearest neighbour, so a target that is
    a database point (b = 0) is reconstructed exactly. reg -> 0 gives the exact Eq. 2 solution.

    Args:
      target: [D] h.
      neighbours: [K, D] f_1 .. f_K, nearest first.
      reg: relative ridge.

    Returns:
      [K] weights w.
    """
    k = neighbours.shape[0]
    if k == 1:
        return jnp.ones((1,), neighbours.dtype)
    anchor = neighbours[0]
    a = neighbours[1:] - anchor
    gram = a @ a.T
    trace = jnp.trace(gram)
    ridge = jnp.where(trace > 0, reg * trace / (k - 1), reg)
    rest = jnp.linalg.solve(gram + ridge * jnp.eye(k - 1, dtype=gram.dtype), a @ (target - anchor))
    return jnp.concatenate([1.0 - jnp.sum(rest, keepdims=True), rest])


def manifold_projection(
    features: jnp.ndarray,
    database: jnp.ndarray,
    k: int = PAPER_K,
    reg: float = 1e-3,
    batch_size: int | None = 1024,
) -> jnp.ndarray:
    """Eq. 2-3: projects each feature onto the target speaker's feature manifold.

    Args:
      features: [N, D] speech representations h of the driving audio.
      database: [M, D] the target speaker's training representations D (M >= k).
      k: K nearest neighbours by Euclidean distance (paper 10).
      reg: relative ridge of `lle_weights` (default 1e-3, as scikit-learn's LLE).
      batch_size: queries handled together (bounds the [batch, M] distance block).

    Returns:
      [N, D] h_hat = sum_k w_k f_k (Eq. 3). (The authors' demo then blends
      (1 - a) h + a h_hat with a per-speaker ratio a, `LLE_percent`; that is left to the caller.)
    """
    if database.shape[0] < k:
        raise ValueError(f"database has {database.shape[0]} rows, fewer than k = {k}")
    db_sq = jnp.sum(jnp.square(database), axis=-1)

    def project(h):
        # ||h - f||^2 up to the constant ||h||^2, which does not change the ranking.
        dist = db_sq - 2.0 * (database @ h)
        _, idx = jax.lax.top_k(-dist, k)  # nearest first
        neighbours = database[idx]
        return lle_weights(h, neighbours, reg) @ neighbours

    return jax.lax.map(project, features, batch_size=batch_size)
