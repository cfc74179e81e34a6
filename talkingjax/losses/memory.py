"""Paper 001, Sec. 3.4: the losses of the memory network (`talkingjax.models.memory`).

  threshold_triplet_loss  the threshold triplet loss of MemoPainter [49] that trains the spatial
                          key encoder: keys of similar identities closer, of different ones
                          farther (Sec. 3.4 and footnote 3; margin 0.3, identity threshold 0.98).
  arcface_loss            additive angular margin softmax (ArcFace [55]) to train the project's
                          own `IdentityEncoder` on identity labels, since no pretrained ArcFace
                          weights are available here.

Neither loss has an equation number in paper 001 (its numbered equations are Eq. 1-2 for the
LSTM, Eq. 3 the attention blend, Eq. 4-5 the GAN objective), so there is no `p001_eq*` alias.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from talkingjax.models.memory import THRESHOLD, TOP_K, MemoryState, l2_normalize, retrieve

MARGIN = 0.3  # reference facts, paper 001's memory-augmented variant

_REDUCTIONS = ("mean", "none")


def threshold_triplet_loss(
    query_keys: jnp.ndarray,
    memory: MemoryState,
    true_values: jnp.ndarray,
    top_k: int = TOP_K,
    margin: float = MARGIN,
    threshold: float = THRESHOLD,
    reduction: str = "mean",
) -> jnp.ndarray:
    """Threshold triplet loss of the memory network (MemoPainter [49], Sec. 3.4).

    For each query q (normalised) with its true identity v, take the top-k memory keys by cosine
    similarity s_1 >= ... >= s_k with values V_1..V_k (`retrieve`). A neighbour is positive if
    cos(V_i, v) > threshold, negative otherwise. s_pos is the similarity of the nearest
    positive, s_neg that of the nearest negative, and

      loss(q) = max(0, s_neg - s_pos + margin).

    No positive among the top-k: s_pos = 0, so the query is pushed away from its nearest wrong
    identity until s_neg <= -margin. No negative: s_neg = 0, so the query is pulled to its
    positive until s_pos >= margin. This zero fill is what the authors' (and Kaiser et al.'s)
    code does; unlike the authors' masked product, a positive with negative similarity keeps its
    true similarity here instead of becoming 0. Empty memory slots (zero keys and values) are
    negatives with similarity 0.

    Gradients flow into `query_keys` (and through them into the key encoder); the memory is
    constant state (it is updated separately, footnote 5).

    Args:
      query_keys: [B, K] spatial keys from the key encoder.
      memory: the memory state (M >= top_k).
      true_values: [B, D] identity features of the queries' real frames.
      top_k: k (256), static.
      margin: alpha (0.3).
      threshold: identity cosine similarity for a positive (0.98).
      reduction: "mean" (scalar mean over the batch) or "none" ([B]).

    Returns:
      scalar, or [B] with reduction="none".
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {_REDUCTIONS}")
    values, sims, _ = retrieve(memory, query_keys, top_k)
    v = l2_normalize(jax.lax.stop_gradient(true_values))
    positive = jnp.sum(l2_normalize(values) * v[:, None, :], axis=-1) > threshold  # [B, k]
    s_pos = jnp.max(jnp.where(positive, sims, -jnp.inf), axis=-1)
    s_neg = jnp.max(jnp.where(positive, -jnp.inf, sims), axis=-1)
    # where (not multiply) so an absent side contributes neither a value nor a NaN gradient.
    s_pos = jnp.where(jnp.any(positive, axis=-1), s_pos, 0.0)
    s_neg = jnp.where(jnp.all(positive, axis=-1), 0.0, s_neg)
    loss = jax.nn.relu(s_neg - s_pos + margin)
    return jnp.mean(loss) if reduction == "mean" else loss


def arcface_loss(
    features: jnp.ndarray,
    class_weights: jnp.ndarray,
    labels: jnp.ndarray,
    margin: float = 0.5,
    scale: float = 64.0,
) -> jnp.ndarray:
    """ArcFace [55] loss for training `IdentityEncoder` on identity labels.

    logits_j = scale * cos(theta_j) for j != y, scale * cos(theta_y + margin) for the true class
    y (theta_j: angle between the feature and class centre j); loss = mean cross-entropy.
    theta_y + margin is clipped at pi so the target logit stays monotonic in theta_y.

    Args:
      features: [B, D] identity features (normalised here).
      class_weights: [N, D] one learnable centre per training identity (normalised here).
      labels: [B] int identity labels in [0, N).
      margin: additive angular margin m (ArcFace's 0.5).
      scale: logit scale s (ArcFace's 64).

    Returns:
      scalar mean cross-entropy.
    """
    cos = l2_normalize(features) @ l2_normalize(class_weights).T  # [B, N]
    onehot = jax.nn.one_hot(labels, cos.shape[-1], dtype=cos.dtype)
    cos_y = jnp.sum(cos * onehot, axis=-1)
    # 1e-6 keeps arccos' gradient finite at |cos| = 1.
    theta_y = jnp.arccos(jnp.clip(cos_y, -1.0 + 1e-6, 1.0 - 1e-6))
    target = jnp.cos(jnp.minimum(theta_y + margin, jnp.pi))
    logits = scale * jnp.where(onehot > 0, target[:, None], cos)
    return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), axis=-1))
