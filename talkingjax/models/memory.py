"""Paper 001, Sec. 3.4: the memory-augmented parts of the rendering-to-realistic GAN.

The generator G(r, f) of Sec. 3.4 is a U-Net that takes a window of three rendered frames r and
an identity feature f; "AdaIN parameters are generated from input identity features" (through
an MLP, Fig. 2). The identity feature comes from ArcFace [55] on the real frame during
training, and at test time from a memory network M (adapted from MemoPainter [49], Yoo et al.
2019, itself after Kaiser et al., "Learning to Remember Rare Events") that stores pairs
(spatial key of the rendered frame, identity value of the real frame). This module holds:

  AdaIN / IdentityMLP   identity feature -> (gamma, beta) -> instance-normalised feature map,
                        one block per U-Net decoder level (the U-Net itself lives elsewhere).
  SpatialKeyEncoder     rendered frame(s) -> L2-normalised spatial key (the query q).
  IdentityEncoder       real frame -> L2-normalised identity feature, trained by this project.
  MemoryState           the memory as an explicit pytree: keys [M, K], values [M, D], ages [M].
  init_memory, retrieve, update, read_identity: pure, jit-able memory functions.
  smooth_identity       the test-time interpolation of retrieved features every 25 frames.

The threshold triplet loss that trains the key encoder is `talkingjax.losses.memory`.

Paper facts (Sec. 3.4, footnotes 3-5; `shared/docs/reference-facts.md`): cosine similarity for
both keys and values (footnote 3); 512-d identity features; 30000 slots, top-k 256, margin 0.3,
identity threshold 0.98; an old pair is replaced when the similarity between the current
identity feature and the closest (top-1) identity feature is below the threshold (footnote 4);
the memory is updated separately from the GAN, the GAN trains after each memory update
(footnote 5); at test time the top-1 value is retrieved and the retrieved features are smoothed
by interpolation over adjacent frames (every 25 frames in the authors' code).

Any identity feature works: the memory stores and compares plain [B, D] arrays, so features of
an external face-recognition network (e.g. ArcFace, computed outside JAX) can be written with
`update` and compared in the loss exactly like those of `IdentityEncoder`. Values are stored as
given and compared by cosine similarity, so their scale does not affect matching.

Keys are stored L2-normalised (queries are normalised on the way in), so a dot product with
them is the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.errors import InputError

# Sec. 3.4 / reference facts.
NUM_SLOTS = 30000
TOP_K = 256
IDENTITY_DIM = 512
KEY_DIM = 512  # the paper's key: ResNet18 pool5 (512) -> learnable FC; we keep 512
THRESHOLD = 0.98
SMOOTH_EVERY = 25

_EPS = 1e-8


def l2_normalize(x: jnp.ndarray, axis: int = -1, eps: float = _EPS) -> jnp.ndarray:
    """x / max(||x||, eps): cosine-ready vectors; the floor keeps zero vectors (empty slots) 0."""
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def cosine_similarity(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Cosine similarity over the last axis (broadcasting); 0 against a zero vector."""
    return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


# --------------------------------------------------------------------------------------------
# AdaIN


class IdentityMLP(nn.Module):
    """Identity feature s [B, D] -> AdaIN parameters (gamma [B, C], beta [B, C]).

    Layout: Dense(h) + ReLU for each h in `hidden` (default one layer of 256), then one Dense
    to 2C split into (delta_gamma, beta); gamma = 1 + delta_gamma. The output layer starts at
    zero, so a fresh AdaIN block is plain instance normalisation (gamma = 1, beta = 0) and the
    identity's influence is learned from there rather than starting as random per-channel
    scales that could flip the sign of features.

    Kept as a separate module so it can also be used on its own, e.g. for a MUNIT-style single
    MLP that emits the parameters of all decoder levels at once (set `channels` to their sum
    and split the outputs).

    Attributes:
      channels: C, the channels of the feature map the parameters modulate.
      hidden: widths of the hidden layers (the paper does not give them; MLP in Fig. 2).
    """

    channels: int
    hidden: Sequence[int] = (256,)

    @nn.compact
    def __call__(self, s: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        h = s
        for i, width in enumerate(self.hidden):
            h = nn.relu(nn.Dense(width, name=f"hidden_{i}")(h))
        out = nn.Dense(
            2 * self.channels,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name="out",
        )(h)
        delta_gamma, beta = jnp.split(out, 2, axis=-1)
        return 1.0 + delta_gamma, beta


class AdaIN(nn.Module):
    """Adaptive instance normalisation [54] with parameters from the identity feature.

    y = gamma(s) * (x - mean_hw(x)) / sqrt(var_hw(x) + eps) + beta(s), statistics per sample
    and channel over H, W; (gamma, beta) = IdentityMLP(s) (submodule "mlp"). Each block owns
    its MLP, so it drops into any U-Net decoder level without knowing the others: replace a
    norm layer by `AdaIN()(x, identity)`.

    Attributes:
      hidden: hidden widths of the block's IdentityMLP (default (256,)).
      eps: variance floor of the instance normalisation.
    """

    hidden: Sequence[int] = (256,)
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jnp.ndarray, s: jnp.ndarray) -> jnp.ndarray:
        """x: [B, H, W, C] feature map; s: [B, D] identity features. Returns [B, H, W, C]."""
        if x.ndim != 4 or s.ndim != 2 or s.shape[0] != x.shape[0]:
            raise InputError(f"AdaIN expects x [B, H, W, C] and s [B, D]; got {x.shape}, {s.shape}")
        gamma, beta = IdentityMLP(x.shape[-1], self.hidden, name="mlp")(s)
        mean = jnp.mean(x, axis=(1, 2), keepdims=True)
        var = jnp.var(x, axis=(1, 2), keepdims=True)
        xn = (x - mean) * jax.lax.rsqrt(var + self.eps)
        return xn * gamma[:, None, None, :] + beta[:, None, None, :]


# --------------------------------------------------------------------------------------------
# Encoders


class _StridedCNN(nn.Module):
    """Stride-2 3x3 convolutions + LeakyReLU 0.2, global average pool, Dense, L2 normalise.

    No normalisation layers: the encoders stay stateless and batch-independent (a query's key
    must not depend on the other frames of its batch, or memory look-ups would).
    """

    features: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if x.ndim != 4:
            raise InputError(f"expected images [B, H, W, C]; got shape {x.shape}")
        h = x
        for i, width in enumerate(self.features):
            h = nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME", name=f"conv_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        h = jnp.mean(h, axis=(1, 2))
        return l2_normalize(nn.Dense(self.out_dim, name="fc")(h))


class SpatialKeyEncoder(nn.Module):
    """Rendered frame(s) [B, H, W, Cin] -> L2-normalised spatial key [B, key_dim] (the query).

    The paper uses ImageNet ResNet18 'pool5' features + a learnable FC + normalisation. No
    pretrained weights can be downloaded here, so the whole encoder is learned (by the threshold
    triplet loss): `features` stride-2 3x3 conv blocks (default 32, 64, 128, 256: a 256 x 256
    frame becomes 16 x 16), global average pooling ("pool5"), Dense(key_dim), L2 normalisation.
    Cin = 3 for the current rendered frame r_t or 9 for the window (r_{t-2}, r_{t-1}, r_t)
    concatenated on channels; any Cin works.

    Attributes:
      key_dim: K (default 512, as the paper's FC after pool5 keeps ResNet18's width).
      features: widths of the strided conv blocks.
    """

    key_dim: int = KEY_DIM
    features: Sequence[int] = (32, 64, 128, 256)

    @nn.compact
    def __call__(self, frames: jnp.ndarray) -> jnp.ndarray:
        return _StridedCNN(self.features, self.key_dim, name="cnn")(frames)


class IdentityEncoder(nn.Module):
    """Real frame [B, H, W, 3] -> L2-normalised identity feature [B, feature_dim].

    Stands in for ArcFace [55], whose pretrained weights are not available here: trained by the
    project, e.g. with `talkingjax.losses.memory.arcface_loss` on identity labels. Layout:
    `features` stride-2 3x3 conv blocks (default 32, 64, 128, 256, 256), global average
    pooling, Dense(feature_dim), L2 normalisation. The rest of the pipeline only sees [B, D]
    arrays, so externally computed identity features can replace this encoder.

    Attributes:
      feature_dim: D (default 512, ArcFace's width).
      features: widths of the strided conv blocks.
    """

    feature_dim: int = IDENTITY_DIM
    features: Sequence[int] = (32, 64, 128, 256, 256)

    @nn.compact
    def __call__(self, frames: jnp.ndarray) -> jnp.ndarray:
        return _StridedCNN(self.features, self.feature_dim, name="cnn")(frames)


# --------------------------------------------------------------------------------------------
# Memory


@flax.struct.dataclass
class MemoryState:
    """The memory M as a pytree (pass it through jit, scan, checkpoints like any array tree).

    Attributes:
      keys: [M, K] L2-normalised spatial keys (all-zero rows are empty slots: similarity 0).
      values: [M, D] identity features, stored as written (compared by cosine similarity).
      ages: [M] int32, updates since the slot was last written or refreshed.
    """

    keys: jnp.ndarray
    values: jnp.ndarray
    ages: jnp.ndarray

    @property
    def num_slots(self) -> int:
        return self.keys.shape[0]


def init_memory(
    num_slots: int = NUM_SLOTS,
    key_dim: int = KEY_DIM,
    value_dim: int = IDENTITY_DIM,
    dtype=jnp.float32,
) -> MemoryState:
    """An empty memory: zero keys and values, all ages 0.

    Deterministic (the authors' code draws tiny random keys and values). Zero keys have cosine
    similarity 0 with every query and zero values never match a true value (threshold > 0), so
    empty slots are overwritten first: they are the oldest, ties going to the lowest index.
    """
    return MemoryState(
        keys=jnp.zeros((num_slots, key_dim), dtype),
        values=jnp.zeros((num_slots, value_dim), dtype),
        ages=jnp.zeros((num_slots,), jnp.int32),
    )


def key_similarities(memory: MemoryState, query_keys: jnp.ndarray) -> jnp.ndarray:
    """Cosine similarities [B, M] of the (normalised) queries [B, K] to all memory keys.

    The memory is state, not a parameter (it is updated by `update`, footnote 5), so no
    gradient flows into it; gradients flow into the queries, i.e. the key encoder.
    """
    return l2_normalize(query_keys) @ jax.lax.stop_gradient(memory.keys).T


def retrieve(
    memory: MemoryState, query_keys: jnp.ndarray, top_k: int = TOP_K
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The top-k memory entries by key similarity, most similar first.

    Args:
      memory: the memory (M >= top_k).
      query_keys: [B, K] spatial keys (normalised here).
      top_k: k, static.

    Returns:
      values [B, k, D], similarities [B, k] (cosine, descending), indices [B, k] int32 (ties
      go to the lower slot index, `jax.lax.top_k`).
    """
    if top_k > memory.num_slots:
        raise InputError(f"top_k = {top_k} exceeds the memory's {memory.num_slots} slots")
    sims, idx = jax.lax.top_k(key_similarities(memory, query_keys), top_k)
    values = jax.lax.stop_gradient(memory.values)[idx]
    return values, sims, idx.astype(jnp.int32)


def read_identity(memory: MemoryState, key: jnp.ndarray) -> jnp.ndarray:
    """Test time (Sec. 3.4): the identity value of the nearest key; [K] -> [D], [B, K] -> [B, D]."""
    single = key.ndim == 1
    values, _, _ = retrieve(memory, key[None] if single else key, 1)
    return values[0, 0] if single else values[:, 0]


def update(
    memory: MemoryState,
    query_keys: jnp.ndarray,
    true_values: jnp.ndarray,
    threshold: float = THRESHOLD,
) -> MemoryState:
    """One memory update with a batch of (query key, true identity) pairs (MemoPainter [49]).

    For each query q (normalised) with true value v, let n1 be its nearest key (top-1):
      - match, cos(V[n1], v) > threshold: K[n1] <- normalise(K[n1] + q), A[n1] <- 0 (the value
        is kept, as in the authors' code);
      - otherwise (footnote 4): (q, v) is written into the oldest slot, age 0.
    All other ages grow by 1.

    Batch rules (our choice, so the result is deterministic and order-independent): every
    decision is taken against the memory as it was on entry; queries matching the same slot are
    all added before normalising (K[n] <- normalise(K[n] + sum q)); all ages are incremented
    first, so refreshed slots (age 0) are the youngest, and the j-th non-matching query of the
    batch goes into the j-th oldest slot (ties to the lower index; no random age noise as in
    the authors' code). Needs B <= M, so the oldest slots are never the refreshed ones.

    Args:
      memory: the memory state.
      query_keys: [B, K] spatial keys of the rendered frames.
      true_values: [B, D] identity features of the corresponding real frames.
      threshold: identity cosine similarity above which the top-1 value matches (0.98).

    Returns:
      the new MemoryState (jit-able; B static).
    """
    b = query_keys.shape[0]
    m = memory.num_slots
    if b > m:
        raise InputError(f"batch of {b} queries exceeds the memory's {m} slots")
    if true_values.shape[0] != b:
        raise InputError(f"{b} query keys but {true_values.shape[0]} true values")
    q = jax.lax.stop_gradient(l2_normalize(query_keys))
    v = jax.lax.stop_gradient(true_values).astype(memory.values.dtype)
    keys = memory.keys

    top1 = jnp.argmax(q @ keys.T, axis=-1)  # ties -> lowest index, as lax.top_k
    match = cosine_similarity(memory.values[top1], v) > threshold

    ages = memory.ages + 1
    # Case 1: refresh the matched slots.
    delta = jnp.zeros_like(keys).at[top1].add(jnp.where(match[:, None], q, 0.0))
    hit = jnp.zeros((m,), jnp.int32).at[top1].add(match.astype(jnp.int32)) > 0
    keys = jnp.where(hit[:, None], l2_normalize(keys + delta), keys)
    ages = jnp.where(hit, 0, ages)

    # Case 2: replace the oldest slots; matched queries get the out-of-range index m (dropped).
    _, oldest = jax.lax.top_k(ages, b)
    rank = jnp.cumsum(~match) - 1
    slot = jnp.where(match, m, oldest[jnp.clip(rank, 0, b - 1)])
    keys = keys.at[slot].set(q.astype(keys.dtype), mode="drop")
    values = memory.values.at[slot].set(v, mode="drop")
    ages = ages.at[slot].set(0, mode="drop")
    return MemoryState(keys=keys, values=values, ages=ages)


def smooth_identity(
    features: jnp.ndarray, every: int = SMOOTH_EVERY, normalize: bool = True
) -> jnp.ndarray:
    """Test-time smoothing of per-frame retrieved identity features (Sec. 3.4).

    Frames 0, every, 2 * every, ... and the last frame T - 1 are anchors and keep their
    feature; every other frame t linearly interpolates between the anchors around it:
    f(l) + (t - l) / (r - l) * (f(r) - f(l)), l = every * (t // every), r = min(l + every, T-1).
    This is the authors' test code (M = 25). We then L2-normalise (`normalize=True`, not in
    the authors' code) so an interpolated feature has the unit norm of the identity features it
    lies between; anchors that already have unit norm are unchanged.

    Args:
      features: [T, D] retrieved identity features of T consecutive frames (T static).
      every: anchor spacing (25).
      normalize: renormalise the result to unit L2 norm.

    Returns:
      [T, D] smoothed features.
    """
    if every < 1:
        raise InputError(f"every must be >= 1; got {every}")
    t_len = features.shape[0]
    t = np.arange(t_len)
    left = (t // every) * every
    right = np.minimum(left + every, t_len - 1)
    w = (t - left) / np.maximum(right - left, 1)
    out = features[left] + w[:, None].astype(features.dtype) * (features[right] - features[left])
    return l2_normalize(out) if normalize else out
