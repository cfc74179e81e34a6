"""Tests of paper 001's memory-augmented GAN parts (Sec. 3.4): AdaIN, encoders, memory, losses."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from testdata import random_params

from talkingjax.errors import InputError
from talkingjax.losses import memory as ml
from talkingjax.models.memory import (
    AdaIN,
    IdentityEncoder,
    IdentityMLP,
    MemoryState,
    SpatialKeyEncoder,
    init_memory,
    read_identity,
    retrieve,
    smooth_identity,
    update,
)

K, D = 6, 5
retrieve_jit = jax.jit(retrieve, static_argnames="top_k")
update_jit = jax.jit(update)
loss_jit = jax.jit(ml.threshold_triplet_loss, static_argnames=("top_k", "reduction"))


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _memory(rng, m, ages=None, values=None):
    keys = _unit(rng.normal(size=(m, K))).astype(np.float32)
    if values is None:
        values = _unit(rng.normal(size=(m, D))).astype(np.float32)
    ages = np.zeros(m, np.int32) if ages is None else np.asarray(ages, np.int32)
    return MemoryState(keys=jnp.asarray(keys), values=jnp.asarray(values), ages=jnp.asarray(ages))


# ------------------------------------------------------------------------------------------ AdaIN


def test_adain_statistics_match_mlp_parameters():
    rng = np.random.default_rng(0)
    x = (3.0 * rng.normal(size=(2, 5, 6, 4)) + 1.5).astype(np.float32)
    s = rng.normal(size=(2, 8)).astype(np.float32)
    block = AdaIN(hidden=(16,))
    params = random_params(block, x, s)
    y = np.asarray(jax.jit(block.apply)({"params": params}, x, s))
    gamma, beta = IdentityMLP(4, (16,)).apply({"params": params["mlp"]}, s)
    gamma, beta = np.asarray(gamma), np.asarray(beta)
    assert not np.allclose(gamma, 1.0)  # random parameters: a real test of the modulation

    mean, var = x.mean(axis=(1, 2)), x.var(axis=(1, 2))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), beta, atol=1e-5)
    np.testing.assert_allclose(
        y.std(axis=(1, 2)), np.abs(gamma) * np.sqrt(var / (var + 1e-5)), rtol=1e-4
    )
    ref = (x - mean[:, None, None]) / np.sqrt(var + 1e-5)[:, None, None]
    ref = ref * gamma[:, None, None] + beta[:, None, None]
    np.testing.assert_allclose(y, ref, atol=1e-5)


class _TinyDecoder(nn.Module):
    """A U-Net decoder level: upsample, concatenate the skip, conv, AdaIN, ReLU."""

    @nn.compact
    def __call__(self, h, skip, identity):
        b, hh, ww, c = h.shape
        h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
        h = nn.Conv(6, (3, 3))(jnp.concatenate([h, skip], axis=-1))
        return nn.relu(AdaIN(hidden=(8,))(h, identity))


def test_adain_starts_as_instance_norm_and_trains_inside_a_decoder():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    skip = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    ident = _unit(rng.normal(size=(2, 7))).astype(np.float32)
    dec = _TinyDecoder()
    params = jax.jit(dec.init)(jax.random.key(0), h, skip, ident)["params"]
    gamma, beta = IdentityMLP(6, (8,)).apply({"params": params["AdaIN_0"]["mlp"]}, ident)
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)

    params = random_params(dec, h, skip, ident)
    grads = jax.jit(
        jax.grad(lambda p: jnp.sum(dec.apply({"params": p}, h, skip, ident) ** 2 * jnp.arange(6)))
    )(params)
    for leaf in jax.tree_util.tree_leaves(grads["AdaIN_0"]["mlp"]):
        assert np.all(np.isfinite(leaf)) and np.any(leaf != 0)
    with pytest.raises(InputError):
        AdaIN().apply({"params": params["AdaIN_0"]}, h, ident[:1])


def test_encoders_output_unit_vectors():
    rng = np.random.default_rng(2)
    frames = rng.uniform(-1, 1, size=(2, 16, 16, 9)).astype(np.float32)
    enc = SpatialKeyEncoder(key_dim=8, features=(4, 8))
    keys = enc.apply({"params": random_params(enc, frames)}, frames)
    assert keys.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(keys, axis=-1), 1.0, rtol=1e-5)
    ienc = IdentityEncoder(feature_dim=10, features=(4, 8, 8))
    feats = ienc.apply({"params": random_params(ienc, frames[..., :3])}, frames[..., :3])
    assert feats.shape == (2, 10)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=-1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------------------- memory


def test_retrieve_matches_argsort_and_read_identity_is_top1():
    rng = np.random.default_rng(3)
    mem = _memory(rng, 20)
    q = rng.normal(size=(3, K)).astype(np.float32)  # not normalised: retrieve normalises
    values, sims, idx = retrieve_jit(mem, q, top_k=7)
    ref_sims = _unit(q) @ np.asarray(mem.keys).T
    ref_idx = np.argsort(-ref_sims, axis=-1, kind="stable")[:, :7]
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, np.take_along_axis(ref_sims, ref_idx, -1), atol=1e-6)
    np.testing.assert_array_equal(values, np.asarray(mem.values)[ref_idx])
    assert values.shape == (3, 7, D) and idx.dtype == jnp.int32

    read = jax.jit(read_identity)
    np.testing.assert_array_equal(read(mem, q), np.asarray(mem.values)[ref_idx[:, 0]])
    np.testing.assert_array_equal(read(mem, q[1]), np.asarray(mem.values)[ref_idx[1, 0]])
    with pytest.raises(InputError):
        retrieve(mem, q, top_k=21)


def test_update_matching_query_refreshes_its_slot():
    rng = np.random.default_rng(4)
    ages = np.arange(10, 20)
    mem = _memory(rng, 10, ages=ages)
    keys = np.asarray(mem.keys)
    q = _unit(keys[3] + 0.3 * _unit(rng.normal(size=K)))[None].astype(np.float32)
    assert np.argmax(q @ keys.T) == 3
    new = update_jit(mem, q, mem.values[3:4], 0.98)

    expected = _unit(keys[3] + q[0])
    np.testing.assert_allclose(new.keys[3], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new.keys[3]), 1.0, rtol=1e-6)
    assert float(new.keys[3] @ q[0]) > float(keys[3] @ q[0])  # moved towards the query
    assert new.ages[3] == 0
    others = np.arange(10) != 3
    np.testing.assert_array_equal(np.asarray(new.ages)[others], ages[others] + 1)
    np.testing.assert_array_equal(np.asarray(new.keys)[others], keys[others])
    np.testing.assert_array_equal(new.values, mem.values)  # the value is kept


def test_update_non_matching_query_overwrites_the_oldest_slot():
    rng = np.random.default_rng(5)
    ages = np.array([3, 9, 1, 7, 0, 2])
    mem = _memory(rng, 6, ages=ages)
    q = rng.normal(size=(1, K)).astype(np.float32)
    v = -np.asarray(mem.values[np.argmax(q @ np.asarray(mem.keys).T)])[None]  # cosine -1
    new = update_jit(mem, q, v, 0.98)
    np.testing.assert_allclose(new.keys[1], _unit(q[0]), atol=1e-6)
    np.testing.assert_array_equal(new.values[1], v[0])
    expected_ages = ages + 1
    expected_ages[1] = 0
    np.testing.assert_array_equal(new.ages, expected_ages)
    keep = np.arange(6) != 1
    np.testing.assert_array_equal(np.asarray(new.keys)[keep], np.asarray(mem.keys)[keep])


def _np_update(mem, q, v, threshold):
    """Loop reference of the batch rule: decisions against the entry state, shared matches
    summed, the j-th non-matching query into the j-th oldest slot (ties to the lower index)."""
    keys, values = np.array(mem.keys), np.array(mem.values)
    ages = np.array(mem.ages) + 1
    q = _unit(q)
    top1 = [int(np.argmax(keys @ qi)) for qi in q]
    match = [float(_unit(values[n]) @ _unit(vi)) > threshold for n, vi in zip(top1, v, strict=True)]
    delta = np.zeros_like(keys)
    for n, qi, mi in zip(top1, q, match, strict=True):
        if mi:
            delta[n] += qi
    for n in sorted({n for n, mi in zip(top1, match, strict=True) if mi}):
        keys[n] = _unit(keys[n] + delta[n])
        ages[n] = 0
    oldest = sorted(range(len(ages)), key=lambda i: (-ages[i], i))
    j = 0
    for qi, vi, mi in zip(q, v, match, strict=True):
        if not mi:
            keys[oldest[j]], values[oldest[j]], ages[oldest[j]] = qi, vi, 0
            j += 1
    return keys, values, ages


def test_update_batch_matches_loop_reference_and_fills_empty_memory_in_order():
    rng = np.random.default_rng(6)
    mem = _memory(rng, 12, ages=rng.integers(0, 4, size=12))
    keys, vals = np.asarray(mem.keys), np.asarray(mem.values)
    # Two queries near slot 5 with its identity (a shared refresh), one near slot 8 with it,
    # two with unknown identities.
    q = np.stack(
        [
            keys[5] + 0.1 * rng.normal(size=K),
            keys[5] + 0.1 * rng.normal(size=K),
            keys[8] + 0.1 * rng.normal(size=K),
            rng.normal(size=K),
            rng.normal(size=K),
        ]
    ).astype(np.float32)
    v = np.concatenate([vals[[5, 5, 8]], rng.normal(size=(2, D))]).astype(np.float32)
    new = update_jit(mem, q, v, 0.98)
    ref = _np_update(mem, q, v, 0.98)
    assert np.sum(np.asarray(new.ages) == 0) == 4  # slots 5, 8 and two overwritten
    for got, want in zip((new.keys, new.values, new.ages), ref, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)

    empty = init_memory(6, K, D)
    full = update_jit(empty, q[:3], v[:3], 0.98)
    np.testing.assert_allclose(full.keys[:3], _unit(q[:3]), atol=1e-6)
    np.testing.assert_array_equal(full.keys[3:], 0.0)
    np.testing.assert_array_equal(full.ages, [0, 0, 0, 1, 1, 1])
    full = update_jit(full, q[3:4], v[3:4], 0.98)
    np.testing.assert_allclose(full.keys[3], _unit(q[3]), atol=1e-6)
    with pytest.raises(InputError):
        update(empty, np.ones((7, K), np.float32), np.ones((7, D), np.float32))


# ----------------------------------------------------------------------------------------- losses


def _np_triplet(q, mem, v, top_k, margin, threshold):
    keys, vals = np.asarray(mem.keys, np.float64), np.asarray(mem.values, np.float64)
    out = []
    for qi, vi in zip(_unit(q.astype(np.float64)), v, strict=True):
        sims = keys @ qi
        order = np.argsort(-sims, kind="stable")[:top_k]
        s_pos = s_neg = None
        for n in order:  # nearest first
            positive = float(_unit(vals[n]) @ _unit(vi)) > threshold
            if positive and s_pos is None:
                s_pos = sims[n]
            if not positive and s_neg is None:
                s_neg = sims[n]
        out.append(max(0.0, (s_neg or 0.0) - (s_pos or 0.0) + margin))
    return np.array(out)


def _identity_memory(rng, m=16, n_ids=4):
    """Memory whose values are n_ids identity prototypes; returns it and the prototypes."""
    protos = _unit(rng.normal(size=(n_ids, D))).astype(np.float32)
    ids = np.arange(m) % n_ids
    return _memory(rng, m, values=protos[ids]), protos, ids


def test_threshold_triplet_loss_matches_loop_reference():
    rng = np.random.default_rng(7)
    mem, protos, ids = _identity_memory(rng)
    keys = np.asarray(mem.keys)
    unknown = _unit(rng.normal(size=(1, D))).astype(np.float32)
    q = np.stack([keys[0] + 0.2 * rng.normal(size=K) for _ in range(3)] + [keys[1]]).astype(
        np.float32
    )
    v = np.concatenate([protos[[0, 1]], unknown, protos[[1]]])  # query 2: no positive
    for top_k in (1, 4, 16):
        got = loss_jit(q, mem, v, top_k=top_k, reduction="none")
        want = _np_triplet(q, mem, v, top_k, 0.3, 0.98)
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(loss_jit(q, mem, v, top_k=top_k), want.mean(), atol=1e-5)
    # No positive: loss = max(0, s_neg + margin) with s_neg the top-1 similarity.
    sims = _unit(q[2]) @ keys.T
    np.testing.assert_allclose(
        loss_jit(q, mem, v, top_k=4, reduction="none")[2], max(0, sims.max() + 0.3), atol=1e-5
    )

    # No negative: every slot holds the query's identity, loss = max(0, margin - s_top1).
    same = MemoryState(mem.keys, jnp.asarray(np.tile(protos[:1], (16, 1))), mem.ages)
    got = loss_jit(q, same, np.tile(protos[:1], (4, 1)), top_k=4, reduction="none")
    top1 = (_unit(q) @ keys.T).max(axis=-1)
    np.testing.assert_allclose(got, np.maximum(0, 0.3 - top1), atol=1e-5)
    np.testing.assert_allclose(
        got, _np_triplet(q, same, np.tile(protos[:1], (4, 1)), 4, 0.3, 0.98), atol=1e-5
    )


def test_triplet_loss_gradient_reaches_key_encoder():
    rng = np.random.default_rng(8)
    frames = rng.uniform(-1, 1, size=(4, 16, 16, 9)).astype(np.float32)
    enc = SpatialKeyEncoder(key_dim=K, features=(4, 8))
    params = random_params(enc, frames)
    mem, protos, _ = _identity_memory(rng)
    v = protos[[0, 1, 2, 3]]

    def loss(p):
        return ml.threshold_triplet_loss(enc.apply({"params": p}, frames), mem, v, top_k=8)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert float(value) > 0
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf)) and np.any(leaf != 0)


def test_arcface_loss_matches_numpy():
    rng = np.random.default_rng(9)
    f = rng.normal(size=(5, D)).astype(np.float32)
    w = rng.normal(size=(3, D)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0])
    cos = _unit(f) @ _unit(w).T
    logits = cos.copy()
    rows = np.arange(5)
    logits[rows, y] = np.cos(np.arccos(cos[rows, y]) + 0.5)
    logits = 64 * logits.astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    logp -= logits.max(-1, keepdims=True)
    want = -logp[rows, y].mean()
    np.testing.assert_allclose(jax.jit(ml.arcface_loss)(f, w, y), want, rtol=1e-4)


# -------------------------------------------------------------------------------------- smoothing


def test_smooth_identity_keeps_anchors_and_interpolates():
    rng = np.random.default_rng(10)
    f = _unit(rng.normal(size=(60, D))).astype(np.float32)
    smooth = jax.jit(smooth_identity, static_argnames=("every", "normalize"))
    out = np.asarray(smooth(f, every=25))
    anchors = [0, 25, 50, 59]  # every 25 frames and the last one
    np.testing.assert_allclose(out[anchors], f[anchors], atol=1e-6)
    np.testing.assert_allclose(out[10], _unit(f[0] + 10 / 25 * (f[25] - f[0])), atol=1e-6)
    np.testing.assert_allclose(out[55], _unit(f[50] + 5 / 9 * (f[59] - f[50])), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    raw = np.asarray(smooth(f, every=25, normalize=False))
    np.testing.assert_allclose(raw[30], f[25] + 5 / 25 * (f[50] - f[25]), atol=1e-6)
    np.testing.assert_allclose(np.diff(raw[25:51], 2, axis=0), 0.0, atol=1e-5)  # linear
    np.testing.assert_allclose(smooth(f[:1], every=25), f[:1], atol=1e-6)
