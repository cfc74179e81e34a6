"""The GEMM convolutions of `talkingjax.models.conv_gemm` / `gan` equal XLA's convolutions.

Outputs and gradients (w.r.t. inputs and kernels) against `lax.conv_general_dilated` and
Flax's nn.Conv / nn.ConvTranspose on tiny shapes (odd channel counts, batch > 1), the whole
generator and discriminator against their Flax-layer versions (`gan._REFERENCE_LAYERS`), and
the gradients inside `jax.shard_map` over 4 fake CPU devices (conftest.py) with per-device
parameters, as the trainers differentiate them.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from testdata import random_params

from talkingjax.models import conv_gemm, gan
from talkingjax.train import parallel

_NHWC = ("NHWC", "HWIO", "NHWC")
TOL = dict(rtol=1e-4, atol=1e-4)  # float32 sums of O(100) unit-variance products


def _rand(rng, *shape):
    return jnp.asarray(rng.normal(size=shape), jnp.float32)


def _check_grads(fast, ref, x, k):
    """Values and (x, k) gradients of sum(sin(f(x, k))) (a non-uniform cotangent) agree."""

    def loss(f):
        return jax.value_and_grad(lambda a, b: jnp.sum(jnp.sin(f(a, b))), argnums=(0, 1))

    np.testing.assert_allclose(jax.jit(fast)(x, k), jax.jit(ref)(x, k), **TOL)
    (v1, g1), (v2, g2) = jax.jit(loss(fast))(x, k), jax.jit(loss(ref))(x, k)
    np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-4)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_im2col_matches_lax(stride):
    rng = np.random.default_rng(stride)
    x, k = _rand(rng, 3, 10, 6, 5), _rand(rng, 4, 4, 5, 7)
    pad = ((1, 1), (1, 1))

    def ref(a, b):
        return jax.lax.conv_general_dilated(a, b, (stride,) * 2, pad, dimension_numbers=_NHWC)

    _check_grads(lambda a, b: conv_gemm.conv_im2col(a, b, stride, pad), ref, x, k)


@pytest.mark.parametrize("kernel,c_out", [(4, 1), (7, 4), (3, 3)])
def test_small_output_convs_match_lax(kernel, c_out):
    rng = np.random.default_rng(kernel)
    x, k = _rand(rng, 2, 9, 7, 5), _rand(rng, kernel, kernel, 5, c_out)
    pad = ((kernel // 2, (kernel - 1) // 2),) * 2 if kernel % 2 == 0 else ((kernel // 2,) * 2,) * 2

    def ref(a, b):
        return jax.lax.conv_general_dilated(a, b, (1, 1), pad, dimension_numbers=_NHWC)

    _check_grads(lambda a, b: conv_gemm.conv_taps_first(a, b, pad), ref, x, k)
    _check_grads(lambda a, b: conv_gemm.conv_small_out(a, b, pad), ref, x, k)


def test_conv_transpose_matches_flax():
    rng = np.random.default_rng(3)
    x, k = _rand(rng, 3, 5, 4, 7), _rand(rng, 4, 4, 7, 5)
    layer = nn.ConvTranspose(5, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False)

    def ref(a, b):
        return layer.apply({"params": {"kernel": b}}, a)

    assert conv_gemm.conv_transpose_4x4_s2(x, k).shape == (3, 10, 8, 5)
    _check_grads(conv_gemm.conv_transpose_4x4_s2, ref, x, k)


def _reference(monkeypatch_flag: bool, fn, *args):
    old = gan._REFERENCE_LAYERS
    gan._REFERENCE_LAYERS = monkeypatch_flag
    try:
        return fn(*args)
    finally:
        gan._REFERENCE_LAYERS = old


G_FEATURES = (4, 6, 5)  # odd widths on purpose; 3 levels: normed and plain down convs
D_FEATURES = (3, 5)


def _models_and_data(batch=4, size=8):
    rng = np.random.default_rng(0)
    render = _rand(rng, batch, size, size, 9)
    frame = _rand(rng, batch, size, size, 3)
    g = gan.AttentionUNetGenerator(features=G_FEATURES, dropout=0.0)
    d = gan.PatchDiscriminator(features=D_FEATURES)
    params = {
        "g": random_params(g, render, seed=1),
        "d": random_params(d, render, frame, seed=2),
    }
    return g, d, params, render, frame


def _loss(g, d, params, render, frame):
    out = g.apply({"params": params["g"]}, render, train=True, rngs={"dropout": jax.random.key(0)})
    logits = d.apply({"params": params["d"]}, render, out["image"])
    return jnp.mean(jnp.sin(3 * logits)) + jnp.mean(jnp.abs(out["image"] - frame))


def test_parameter_trees_unchanged():
    """Same names, shapes (and rng paths, hence init values) as the Flax layers."""
    g, d, _, render, frame = _models_and_data(batch=1)
    for module, args in ((g, (render,)), (d, (render, frame))):
        fast = jax.eval_shape(module.init, jax.random.key(3), *args)
        ref = _reference(True, jax.eval_shape, module.init, jax.random.key(3), *args)
        assert jax.tree.structure(fast) == jax.tree.structure(ref)
        for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref), strict=True):
            assert (a.shape, a.dtype) == (b.shape, b.dtype)


@pytest.fixture(scope="module")
def reference_grads():
    """Loss and gradients of the whole batch with the Flax layers (XLA convolutions)."""
    g, d, params, render, frame = _models_and_data()
    fn = jax.jit(jax.value_and_grad(functools.partial(_loss, g, d), argnums=(0, 1)))
    return _reference(True, fn, params, render, frame)


def _assert_tree_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=2e-5), a, b)


def test_models_and_gradients_match_flax_layers(reference_grads):
    g, d, params, render, frame = _models_and_data()
    fn = jax.jit(jax.value_and_grad(functools.partial(_loss, g, d), argnums=(0, 1)))
    value, grads = fn(params, render, frame)
    np.testing.assert_allclose(value, reference_grads[0], rtol=1e-5, atol=1e-5)
    _assert_tree_close(grads, reference_grads[1])


def test_gradients_under_shard_map_match(reference_grads):
    """Per-device parameters (as `train.loop.make_update`), grads pmean-ed over 4 devices.

    Every shard's loss is a mean over its samples and the norms are per sample, so the mean
    of the 4 shard gradients is the whole-batch gradient of the Flax-layer reference.
    """
    assert jax.device_count() >= 4
    g, d, params, render, frame = _models_and_data(batch=4)
    mesh = parallel.make_mesh(4)

    def per_device(p, r, f):
        grads = jax.grad(functools.partial(_loss, g, d), argnums=(0, 1))(
            parallel.per_device(p), r, f
        )
        # The render gradient stays per device (each shard's own rows, 1/4 of the weight).
        return jax.lax.pmean(grads[0], parallel.DATA_AXIS), grads[1] / 4

    data = P(parallel.DATA_AXIS)
    mapped = jax.jit(
        jax.shard_map(per_device, mesh=mesh, in_specs=(P(), data, data), out_specs=(P(), data))
    )
    batch_sharding = jax.sharding.NamedSharding(mesh, data)
    render_s, frame_s = (jax.device_put(a, batch_sharding) for a in (render, frame))
    grads = mapped(parallel.replicate(params, mesh), render_s, frame_s)
    _assert_tree_close(grads, reference_grads[1])
