"""Tests of the audio-to-expression regressor (talkingjax.models.expression)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from talkingjax import audio, losses
from talkingjax.models import (
    ExpressionRegressor,
    build_expression_model,
    expression_windows,
    flops_per_frame,
    predict_sequence,
)
from talkingjax.models import expression as ex


def _config(**overrides):
    c = ml_collections.ConfigDict()
    c.num_exp = 64
    c.with_pose = True
    c.hidden = 256
    c.num_layers = 3
    c.conv_channels = (64, 128, 256, 256, 512)
    c.fc = (2048, 256)
    c.update(overrides)
    return c


_TINY = dict(num_exp=5, hidden=32, num_layers=1, conv_channels=(4, 8, 8, 8, 16), fc=(32, 32))


def _tiny(with_pose=True, **kw):
    return ExpressionRegressor(**{**_TINY, "with_pose": with_pose, **kw})


def _init(model, windows, seed=0):
    """Variables from `jax.eval_shape(init)` filled with NumPy draws (fan-in scaled kernels,
    zero biases, unit BatchNorm scales, LSTM forget bias 1).

    `init` itself compiles a random-number kernel per parameter shape, which takes 10-15 s even
    for the tiny model on this machine; the values here serve the tests equally well.
    """
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, jax.random.key(0), windows)

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        shape = leaf.shape
        if name in ("mean", "bias") or name.startswith("b_"):
            v = np.zeros(shape)
            if name.startswith("b_"):
                h = shape[0] // 4
                v[h : 2 * h] = 1.0
            return v.astype(np.float32)
        if name in ("var", "scale"):
            return np.ones(shape, np.float32)
        fan_in = int(np.prod(shape[:-1]))
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree.map(jnp.asarray, jax.tree_util.tree_map_with_path(fill, shapes))


def _windows(rng, b, t):
    # Raw-MFCC-like scale: cepstra of tens.
    return (10.0 * rng.standard_normal((b, t, 28, 12))).astype(np.float32)


def _n_params(tree):
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


# ----------------------------------------------------------------------------- reference size


def _reference_param_count(num_out):
    """Reference sizes, counted by hand (conv kernels without bias + BN scale/bias)."""
    convs = [(1, 64), (64, 128), (128, 256), (256, 256), (256, 512)]
    n = sum(9 * ci * co + 2 * co for ci, co in convs)
    n += 512 * 12 * 2 * 2048 + 2048  # FC 2048 on the 12 x 2 x 512 flatten
    n += 2048 * 256 + 256
    n += 3 * ((256 + 256) * 1024 + 1024)  # LSTM 256 x 3, one bias per layer
    return n + 256 * num_out + num_out


@pytest.mark.parametrize("with_pose", [False, True])
def test_reference_size_shapes_and_parameter_count(with_pose):
    model = build_expression_model(_config(with_pose=with_pose))
    windows = jax.ShapeDtypeStruct((2, 16, 28, 12), jnp.float32)
    variables = jax.eval_shape(lambda w: model.init(jax.random.key(0), w), windows)
    n = _n_params(variables["params"])
    num_out = 64 + 6 * with_pose
    print(f"reference-size regressor ({num_out} outputs): {n} parameters")
    assert n == _reference_param_count(num_out) == ex.param_count(model)
    assert 29.4e6 < n < 29.5e6
    # The flatten is 512 * 12 * 2 (the reference's 1024 * 12).
    assert variables["params"]["encoder"]["fc_0"]["kernel"].shape == (512 * 12 * 2, 2048)
    assert ex.encoder_shapes()[-1] == (12, 2, 512)
    stats = variables["batch_stats"]["encoder"]
    assert [stats[f"bn_{i}"]["mean"].shape for i in range(5)] == [
        (c,) for c in (64, 128, 256, 256, 512)
    ]
    out = jax.eval_shape(lambda v, w: model.apply(v, w), variables, windows)
    assert out["exp"].shape == (2, 16, 64)
    assert ("pose" in out) == with_pose
    if with_pose:
        assert out["pose"].shape == (2, 16, 6)


def test_flops_per_frame_reference():
    total, parts = flops_per_frame(_config(), breakdown=True)
    print(f"reference-size regressor: {total / 1e9:.3f} GFLOP per video frame")
    # The issue quotes ~0.65 GFLOP per frame.
    assert 0.63e9 < total < 0.66e9
    assert parts["conv_4"] == 2 * 26 * 5 * 9 * 256 * 512
    assert parts["fc_0"] == 2 * 12288 * 2048
    assert parts["lstm_0"] == 2 * 512 * 1024
    convs = sum(v for k, v in parts.items() if k.startswith("conv"))
    assert convs / total > 0.9  # the convolutions are where the FLOPs are
    # A model instance gives the same count.
    assert flops_per_frame(build_expression_model(_config())) == total


def test_encoder_shapes_other_window_sizes():
    # "SAME" pooling would give 14 x 3; "VALID" (the reference) gives 12 x 2.
    assert ex.encoder_shapes((28, 12))[2] == (26, 5, 128)
    with pytest.raises(ValueError):
        ex.encoder_shapes((4, 4))


# ----------------------------------------------------------------------------- small models


@pytest.fixture(scope="module")
def tiny():
    """A small model, its variables and jitted apply functions (compiled once per module)."""
    model = _tiny()
    w = _windows(np.random.default_rng(0), 2, 5)
    variables = _init(model, w)
    return {
        "model": model,
        "variables": variables,
        "eval": jax.jit(lambda v, w: model.apply(v, w)),
        "train": jax.jit(
            lambda v, w, m: model.apply(v, w, train=True, mask=m, mutable=["batch_stats"])
        ),
    }


def test_tiny_shapes(tiny):
    w = _windows(np.random.default_rng(1), 3, 7)
    out = tiny["eval"](tiny["variables"], w)
    assert out["exp"].shape == (3, 7, 5) and out["pose"].shape == (3, 7, 6)
    for v in out.values():
        assert np.all(np.isfinite(np.asarray(v)))
    no_pose = _tiny(with_pose=False)
    out = jax.eval_shape(lambda w: no_pose.apply(no_pose.init(jax.random.key(0), w), w), w)
    assert set(out) == {"exp"} and out["exp"].shape == (3, 7, 5)


def test_pose_scale_multiplies_the_pose_outputs(tiny):
    w = _windows(np.random.default_rng(2), 2, 4)
    model, variables = tiny["model"], tiny["variables"]
    encode = jax.jit(lambda v, w: model.apply(v, w, method=ExpressionRegressor.encode))
    feats = encode(variables, w)
    raw = model.clone(pose_scale=1.0)
    decode = jax.jit(
        lambda v, f, m: m.apply(v, f, method=ExpressionRegressor.decode), static_argnums=2
    )
    a, b = decode(variables, feats, model), decode(variables, feats, raw)
    assert model.pose_scale == 0.1
    np.testing.assert_allclose(np.asarray(a["pose"]), 0.1 * np.asarray(b["pose"]), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(a["exp"]), np.asarray(b["exp"]))
    full = tiny["eval"](variables, w)
    np.testing.assert_allclose(np.asarray(full["pose"]), np.asarray(a["pose"]), atol=1e-6)


def test_batchnorm_running_stats_update_in_train_mode_only(tiny):
    w = _windows(np.random.default_rng(3), 2, 5)
    variables = tiny["variables"]
    stats0 = variables["batch_stats"]
    # Eval mode runs without `mutable` (flax raises if a module writes an immutable collection).
    o_eval = tiny["eval"](variables, w)
    # Train mode: every running mean and variance moves.
    o_train, upd = tiny["train"](variables, w, None)
    for (path, new), old in zip(
        jax.tree_util.tree_leaves_with_path(upd["batch_stats"]),
        jax.tree.leaves(stats0),
        strict=True,
    ):
        assert not np.allclose(np.asarray(new), np.asarray(old)), path
    # Batch statistics (train) differ from the initial running ones (eval).
    assert not np.allclose(np.asarray(o_train["exp"]), np.asarray(o_eval["exp"]))


def test_train_mask_keeps_padding_out_of_batch_statistics(tiny):
    rng = np.random.default_rng(4)
    w = _windows(rng, 2, 5)
    variables = tiny["variables"]
    want, want_upd = tiny["train"](variables, w, None)
    junk = (100.0 * rng.standard_normal((2, 3, 28, 12))).astype(np.float32)
    padded = np.concatenate([w, junk], axis=1)
    mask = np.concatenate([np.ones((2, 5), bool), np.zeros((2, 3), bool)], axis=1)
    got, got_upd = tiny["train"](variables, padded, mask)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k][:, :5]), np.asarray(want[k]), atol=2e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6),
        got_upd,
        want_upd,
    )


def test_tiny_model_overfits_a_tiny_batch():
    model = _tiny(hidden=64, fc=(64, 64))
    rng = np.random.default_rng(4)
    w = jnp.asarray(_windows(rng, 2, 8))
    exp = jnp.asarray(rng.standard_normal((2, 8, 5)).astype(np.float32))
    pose = jnp.asarray(0.1 * rng.standard_normal((2, 8, 6)).astype(np.float32))
    variables = _init(model, w)
    opt = optax.adam(3e-3)

    def loss_fn(params, stats, w, exp, pose):
        out, upd = model.apply(
            {"params": params, "batch_stats": stats}, w, train=True, mutable=["batch_stats"]
        )
        return losses.p001_eq2(out["exp"], exp, out["pose"], pose), upd["batch_stats"]

    @jax.jit
    def step(params, stats, opt_state, w, exp, pose):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, stats), g = grad_fn(params, stats, w, exp, pose)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    params, stats = variables["params"], variables["batch_stats"]
    opt_state = opt.init(params)
    history = []
    for _ in range(50):
        params, stats, opt_state, loss = step(params, stats, opt_state, w, exp, pose)
        history.append(float(loss))
    print(f"overfit: loss {history[0]:.4f} -> {history[-1]:.5f}")
    assert history[-1] < history[0] / 10


# ----------------------------------------------------------------------------- building blocks


def test_conv3x3_matches_xla_convolution_and_its_gradients():
    rng = np.random.default_rng(5)
    conv = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    # Shapes that take each path of `_conv_plan` (single channel, im2col at 28 x 12, chunked
    # XLA convolution at 26 x 5), with batch sizes that leave a partial last chunk.
    for n, h, w, ci, co in [(5, 28, 12, 1, 4), (19, 28, 12, 6, 8), (37, 26, 5, 8, 4)]:
        x = jnp.asarray(rng.standard_normal((n, h, w, ci)).astype(np.float32))
        k = jnp.asarray(rng.standard_normal((3, 3, ci, co)).astype(np.float32))
        dy = jnp.asarray(rng.standard_normal((n, h, w, co)).astype(np.float32))
        both = jax.jit(lambda x, k, dy, f: (f(x, k), *jax.vjp(f, x, k)[1](dy)), static_argnums=3)
        got, want = both(x, k, dy, ex.conv3x3), both(x, k, dy, conv)
        for g, r in zip(got, want, strict=True):
            scale = float(jnp.max(jnp.abs(r)))
            np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(r) / scale, atol=1e-5)


class _FlaxEncoder(nn.Module):
    """The audio encoder from stock Flax layers (nn.Conv, nn.BatchNorm, nn.max_pool), with the
    parameter names of `AudioEncoder`: the reference for its custom convolution and pooling."""

    conv_channels: tuple
    fc: tuple

    @nn.compact
    def __call__(self, x, train):
        x = x[..., None]
        pools = dict(ex.REFERENCE_POOLS)
        for i, c in enumerate(self.conv_channels):
            x = nn.Conv(c, (3, 3), padding="SAME", use_bias=False, name=f"conv_{i}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn_{i}")(x)
            x = nn.relu(x)
            if i in pools:
                x = nn.max_pool(x, (3, 3), pools[i], "VALID")
        x = x.reshape(x.shape[0], -1)
        for i, f in enumerate(self.fc):
            x = nn.relu(nn.Dense(f, name=f"fc_{i}")(x))
        return x


def test_encoder_matches_stock_flax_layers_with_gradients():
    # Catches, among others, a max-pool backward that finds the maxima by comparing x with the
    # pooled values: under jit XLA recomputed x with other rounding and gradients were lost.
    rng = np.random.default_rng(6)
    w = jnp.asarray((10.0 * rng.standard_normal((12, 28, 12))).astype(np.float32))
    ours = ex.AudioEncoder(conv_channels=(4, 8, 8, 8, 16), fc=(16,))
    ref = _FlaxEncoder((4, 8, 8, 8, 16), (16,))
    variables = _init(ours, w)
    ref_shapes = jax.eval_shape(lambda w: ref.init(jax.random.key(0), w, False), w)
    assert jax.tree.map(jnp.shape, ref_shapes) == jax.tree.map(jnp.shape, variables)
    r = jnp.asarray(rng.standard_normal((12, 16)).astype(np.float32))

    def run(model):
        def loss(params, w):
            out, upd = model.apply(
                {"params": params, "batch_stats": variables["batch_stats"]},
                w,
                True,
                mutable=["batch_stats"],
            )
            return jnp.sum(out * r), upd

        (value, upd), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
            variables["params"], w
        )
        return value, upd, grads, jax.jit(lambda v, w: model.apply(v, w, False))(variables, w)

    got, want = run(ours), run(ref)
    for g, r_ in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        scale = float(np.max(np.abs(np.asarray(r_)))) + 1e-12
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(r_) / scale, atol=2e-5)


@pytest.mark.parametrize("strides", [(1, 2), (2, 2)])
def test_max_pool_matches_flax_and_its_gradient(strides):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.standard_normal((2, 26, 5, 3)).astype(np.float32))
    pool = lambda x: nn.max_pool(x, (3, 3), strides, "VALID")  # noqa: E731
    want, vjp = jax.vjp(pool, x)
    got, our_vjp = jax.vjp(lambda x: ex.max_pool3x3(x, strides), x)
    np.testing.assert_array_equal(got, want)
    dy = jnp.asarray(rng.standard_normal(want.shape).astype(np.float32))
    # No ties in continuous random inputs: both route dy to the unique maxima.
    np.testing.assert_allclose(our_vjp(dy)[0], vjp(dy)[0], atol=1e-6)


def test_expression_windows_drop_the_energy_column():
    rng = np.random.default_rng(8)
    wave = (0.1 * rng.standard_normal(int(1.5 * audio.SAMPLE_RATE))).astype(np.float32)
    feats = audio.speech_features(wave)
    full = audio.frame_windows(feats, 25.0)
    got = expression_windows(feats, 25.0)
    assert got.shape == (full.shape[0], 28, 12) and got.dtype == np.float32
    np.testing.assert_array_equal(got, full[..., 1:])
    np.testing.assert_array_equal(expression_windows(feats, 25.0, 10), full[:10, :, 1:])


def test_mfcc_column_zero_is_log_energy():
    # The column `expression_windows` drops: log of the frame's power-spectrum sum.
    rng = np.random.default_rng(9)
    wave = rng.standard_normal(400 + 160 * 4)
    emph = np.append(wave[:1], wave[1:] - 0.97 * wave[:-1])
    frame = emph[160 : 160 + 400]
    energy = np.sum(np.abs(np.fft.rfft(frame, 512)) ** 2 / 512)
    np.testing.assert_allclose(audio.mfcc(wave)[1, 0], np.log(energy), rtol=1e-5)


def test_predict_sequence_chunked_equals_direct(tiny):
    model, variables = tiny["model"], tiny["variables"]
    w = _windows(np.random.default_rng(10), 1, 23)
    want = tiny["eval"](variables, w)
    for chunk in (0, 5):
        got = jax.jit(lambda v, x, c=chunk: predict_sequence(model, v, x, chunk=c))(variables, w[0])
        for k in want:
            np.testing.assert_allclose(got[k], want[k][0], rtol=1e-4, atol=1e-5)


def test_build_expression_model_fields():
    m = build_expression_model(_config(**_TINY, bn_axis_name="data", pose_scale=0.5))
    assert (m.num_exp, m.with_pose, m.hidden, m.num_layers) == (5, True, 32, 1)
    assert m.conv_channels == (4, 8, 8, 8, 16) and m.fc == (32, 32)
    assert m.bn_axis_name == "data" and m.pose_scale == 0.5
    d = build_expression_model(_config())
    assert d.bn_axis_name is None and d.pose_scale == 0.1


def test_gradients_under_shard_map_match_single_device():
    if jax.device_count() < 2:
        pytest.skip("needs two devices (conftest fakes four)")
    rng = np.random.default_rng(11)
    w = _windows(rng, 4, 6)
    exp = rng.standard_normal((4, 6, 5)).astype(np.float32)
    single = _tiny()
    sharded_model = _tiny(bn_axis_name="data")
    variables = _init(single, w)

    def loss(model, params, w, exp):
        out, _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            w,
            train=True,
            mutable=["batch_stats"],
        )
        return jnp.sum((out["exp"] - exp) ** 2) + jnp.sum(out["pose"] ** 2)

    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])

    def per_device(p, w, exp):
        value, grads = jax.value_and_grad(lambda p: loss(sharded_model, p, w, exp))(p)
        # Gradients of the replicated parameters are already summed over devices.
        return jax.lax.psum(value, "data"), grads

    fn = jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P())
        )
    )
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))  # noqa: E731
    value, grads = fn(put(variables["params"], P()), put(w, P("data")), put(exp, P("data")))
    want_value, want_grads = jax.jit(jax.value_and_grad(lambda p, w, exp: loss(single, p, w, exp)))(
        variables["params"], w, exp
    )
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        scale = float(np.max(np.abs(np.asarray(r)))) + 1e-12
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(r) / scale, atol=2e-4)
