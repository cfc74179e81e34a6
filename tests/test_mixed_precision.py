"""bfloat16 operands with float32 sums (`model.matmul_dtype`), and convolutions as products.

`layers.matmul` / `layers.conv1d_matmul` are pinned to NumPy references computed in float64
from the bfloat16-rounded operands; the head-motion model with `matmul_dtype="bfloat16"` has
the float32 model's parameters and stays within a stated tolerance of its outputs and
gradients (while not being equal to them: the bfloat16 path is really taken).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from talkingjax.models import StackedLSTM, build_model, rows_for_frames
from talkingjax.models.layers import conv1d_matmul, matmul

BF16 = jnp.bfloat16


def _round(x) -> np.ndarray:
    """float64 copy of x rounded to bfloat16 (what the products see)."""
    return np.asarray(jnp.asarray(x, jnp.float32).astype(BF16).astype(jnp.float32), np.float64)


@pytest.mark.parametrize(
    "kernel,stride,padding", [(28, 4, "VALID"), (3, 1, "SAME"), (1, 1, "VALID"), (5, 2, "SAME")]
)
def test_conv1d_matmul_equals_lax_convolution(kernel, stride, padding):
    """float32: the blocked product is the convolution ((5, 2): the fallback path)."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 61, 12)), jnp.float32)
    plain = nn.Conv(7, (kernel,), strides=(stride,), padding=padding)
    blocked = nn.Conv(
        7, (kernel,), strides=(stride,), padding=padding, conv_general_dilated=conv1d_matmul
    )
    variables = plain.init(jax.random.key(1), x)
    want, got = plain.apply(variables, x), blocked.apply(variables, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv1d_matmul_bfloat16_is_the_rounded_convolution():
    """Window conv shape (K 28, stride 4): float32 sums of bfloat16-rounded operands."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 52, 8)).astype(np.float32)
    k = rng.normal(size=(28, 8, 5)).astype(np.float32)
    got = conv1d_matmul(
        jnp.asarray(x),
        jnp.asarray(k),
        (4,),
        "VALID",
        dimension_numbers=jax.lax.conv_dimension_numbers(x.shape, k.shape, ("NWC", "WIO", "NWC")),
        dtype=BF16,
    )
    xr, kr = _round(x), _round(k)
    frames = (52 - 28) // 4 + 1
    want = np.stack(
        [np.einsum("bkc,kco->bo", xr[:, f * 4 : f * 4 + 28], kr) for f in range(frames)], axis=1
    )
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_matmul_rounds_operands_and_gradients():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 9)).astype(np.float32)
    b = rng.normal(size=(9, 4)).astype(np.float32)
    g = rng.normal(size=(6, 4)).astype(np.float32)
    out, vjp = jax.vjp(lambda a, b: matmul(a, b, BF16), jnp.asarray(a), jnp.asarray(b))
    da, db = vjp(jnp.asarray(g))
    ar, br, gr = _round(a), _round(b), _round(g)
    np.testing.assert_allclose(out, ar @ br, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(da, gr @ br.T, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(db, ar.T @ gr, rtol=1e-6, atol=1e-5)
    assert da.dtype == db.dtype == jnp.float32
    np.testing.assert_array_equal(matmul(jnp.asarray(a), jnp.asarray(b)), jnp.asarray(a) @ b)


def _rel(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def test_stacked_lstm_bfloat16_close_to_float32():
    """Outputs, final states and every gradient within 2 % (relative norm) of float32."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(3, 40, 5)), jnp.float32)
    lengths = jnp.asarray([40, 31, 17])
    f32, bf16 = StackedLSTM(16, 2), StackedLSTM(16, 2, matmul_dtype="bfloat16")
    variables = f32.init(jax.random.key(0), x)

    def loss(module, v):
        out, finals = module.apply(v, x, lengths)
        return jnp.sum(out**2) + sum(jnp.sum(jnp.tanh(h)) + jnp.sum(c**2) for h, c in finals)

    (l32, g32), (l16, g16) = (
        jax.jit(jax.value_and_grad(functools.partial(loss, m)))(variables) for m in (f32, bf16)
    )
    assert _rel(l16, l32) < 2e-2
    assert 0 < abs(float(l16) - float(l32))  # the bfloat16 path was taken
    for name in g32["params"]:
        assert _rel(g16["params"][name], g32["params"][name]) < 2e-2, name


def _config(dtype):
    c = ml_collections.ConfigDict()
    c.fps = 25.0
    c.pattern_dim = 4
    c.encoder_hidden, c.encoder_layers, c.encoder_mlp = 16, 1, (8,)
    c.decoder_hidden, c.decoder_layers = 16, 1
    c.window_features, c.head_features = 24, (12, 8)
    # No BatchNorm: behind it a kernel's gradient is a small difference of large terms (the
    # directions BatchNorm cancels are projected out), which amplifies rounding; training with
    # BatchNorm in bfloat16 is checked on val instead (docs/figures/pose_bf16_val.md).
    c.norm, c.pose_scale, c.mfcc_scale, c.encoder_chrono_steps = "none", 0.1, 1.0, 30
    c.matmul_dtype = dtype
    return c


def test_head_motion_model_bfloat16_same_parameters_close_outputs():
    rng = np.random.default_rng(5)
    frames = 20
    pose = jnp.asarray(0.1 * rng.normal(size=(4, frames, 6)), jnp.float32)
    mfcc = jnp.asarray(rng.normal(size=(4, rows_for_frames(frames, 4), 13)), jnp.float32)
    f32, bf16 = build_model(_config("float32")), build_model(_config("bfloat16"))
    variables = jax.jit(f32.init)(jax.random.key(0), pose, mfcc)
    shapes = jax.eval_shape(bf16.init, jax.random.key(0), pose, mfcc)
    assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, variables)

    def loss(model, params):
        y = model.apply({"params": params}, pose, mfcc)
        return jnp.sum((y - pose) ** 2), y

    (l32, y32), g32 = jax.jit(jax.value_and_grad(functools.partial(loss, f32), has_aux=True))(
        variables["params"]
    )
    (l16, y16), g16 = jax.jit(jax.value_and_grad(functools.partial(loss, bf16), has_aux=True))(
        variables["params"]
    )
    assert y16.dtype == jnp.float32
    assert 0 < _rel(y16, y32) < 2e-2
    flat16, flat32 = (jnp.concatenate([x.ravel() for x in jax.tree.leaves(g)]) for g in (g16, g32))
    # The gradient's direction (what Adam follows) agrees; single leaves differ by up to
    # ~10 % at this tiny random init, where bfloat16 rounding flips some ReLUs of the head
    # (a product bug, a transpose or a missing term, would be off by ~100 %).
    cosine = float(jnp.dot(flat16, flat32) / jnp.linalg.norm(flat16) / jnp.linalg.norm(flat32))
    assert cosine > 0.99
    for a, b in zip(jax.tree.leaves(g16), jax.tree.leaves(g32), strict=True):
        assert _rel(a, b) < 0.2
