"""Tests of the head motion encoder E_m / decoder D_m and the stacked LSTM (talkingjax.models)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import pose as pose_config
from talkingjax.models import HeadMotionModel, StackedLSTM, build_model, rows_for_frames


def _random_variables(shapes, seed):
    """Random values for a variables tree (from `jax.eval_shape` of `init`).

    Much faster than running `init` for the paper-size model, and gives BatchNorm non-trivial
    running statistics so that eval-mode normalisation is exercised.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        shape = leaf.shape
        if name == "var":
            return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        if name == "scale":
            return (1.0 + 0.1 * rng.normal(size=shape)).astype(np.float32)
        if len(shape) == 1:
            return (0.1 * rng.normal(size=shape)).astype(np.float32)
        fan_in = int(np.prod(shape[:-1]))
        return (rng.normal(size=shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _init_shapes(model, batch, pose_frames, frames):
    rows = rows_for_frames(frames, model.decoder.rows_per_frame)
    return jax.eval_shape(
        model.init,
        jax.random.key(0),
        jnp.zeros((batch, pose_frames, 6)),
        jnp.zeros((batch, rows, 13)),
    )


def _encode_fn(model):
    return jax.jit(functools.partial(model.apply, method=HeadMotionModel.encode))


def _decode_fn(model):
    return jax.jit(functools.partial(model.apply, method=HeadMotionModel.decode))


# ----------------------------------------------------------------------------- paper size


@pytest.fixture(scope="module")
def paper_model():
    model = build_model(pose_config.get_config().model)
    shapes = _init_shapes(model, batch=2, pose_frames=10, frames=8)
    return model, shapes


def _expected_paper_params():
    """Parameter count of the reference layer sizes (reference-facts.md), layer by layer."""

    def lstm(d_in, hidden, layers):
        total, d = 0, d_in
        for _ in range(layers):
            total += d * 4 * hidden + hidden * 4 * hidden + 4 * hidden
            d = hidden
        return total

    def dense(d_in, d_out):
        return d_in * d_out + d_out

    encoder = lstm(6, 256, 3)
    widths = [6 * 256, 256, 128, 64, 32, 16]
    encoder += sum(dense(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    decoder = lstm(13, 256, 3)
    decoder += 28 * 256 * 1024 + 1024  # window conv, kernel 28
    decoder += 3 * (1024 + 16) * 512 + 512 + 2 * 512  # k3 conv + BN scale/bias
    decoder += 3 * 512 * 256 + 256 + 2 * 256
    decoder += 256 * 6 + 6
    return encoder, decoder


def test_paper_model_parameter_count(paper_model):
    _, shapes = paper_model
    count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
    total = count(shapes["params"])
    assert abs(total - 12.4e6) / 12.4e6 < 0.01, total
    enc, dec = _expected_paper_params()
    assert count(shapes["params"]["encoder"]) == enc
    assert count(shapes["params"]["decoder"]) == dec
    assert total == enc + dec
    stats = jax.tree.map(lambda x: x.shape, shapes["batch_stats"]["decoder"])
    assert stats == {
        "head_norms_0": {"mean": (512,), "var": (512,)},
        "head_norms_1": {"mean": (256,), "var": (256,)},
    }


def test_paper_model_shapes_and_multi_pattern_decode(paper_model):
    model, shapes = paper_model
    variables = _random_variables(shapes, seed=0)
    b, t, p = 2, 8, 3
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.2, size=(b, 37, 6)).astype(np.float32)
    x = _encode_fn(model)(variables, pose)
    assert x.shape == (b, 16)
    assert np.all(np.isfinite(np.asarray(x)))

    rows = rng.normal(size=(b, rows_for_frames(t, 4), 13)).astype(np.float32)
    assert rows.shape[1] == 56
    decode = _decode_fn(model)
    y = decode(variables, rows, x)  # train=False: BN running averages
    assert y.shape == (b, t, 6)

    patterns = rng.normal(size=(b, p, 16)).astype(np.float32)
    multi = np.asarray(decode(variables, rows, patterns))
    assert multi.shape == (b, p, t, 6)
    for i in range(p):
        single = np.asarray(decode(variables, rows, patterns[:, i]))
        np.testing.assert_allclose(multi[:, i], single, rtol=1e-5, atol=1e-5)
    # The patterns matter: different patterns, different poses.
    assert np.abs(multi[:, 0] - multi[:, 1]).max() > 1e-3


# ----------------------------------------------------------------------------- StackedLSTM


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _ref_lstm(x, params, hidden, num_layers):
    """Plain loop LSTM, gate order (i, f, g, o). x: [T, D]. Returns outputs, [(h, c)] per layer."""
    seq = np.asarray(x, np.float64)
    finals = []
    for layer in range(num_layers):
        w_ih = np.asarray(params[f"w_ih_{layer}"], np.float64)
        w_hh = np.asarray(params[f"w_hh_{layer}"], np.float64)
        b = np.asarray(params[f"b_{layer}"], np.float64)
        h, c = np.zeros(hidden), np.zeros(hidden)
        out = []
        for t in range(seq.shape[0]):
            gates = seq[t] @ w_ih + h @ w_hh + b
            i = _sigmoid(gates[:hidden])
            f = _sigmoid(gates[hidden : 2 * hidden])
            g = np.tanh(gates[2 * hidden : 3 * hidden])
            o = _sigmoid(gates[3 * hidden :])
            c = f * c + i * g
            h = o * np.tanh(c)
            out.append(h)
        finals.append((h, c))
        seq = np.stack(out) if out else np.zeros((0, hidden))
    return seq, finals


@pytest.fixture(scope="module")
def lstm_setup():
    hidden, layers, d = 5, 2, 4
    module = StackedLSTM(hidden=hidden, num_layers=layers)
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 3, d)))
    params = _random_variables(shapes, seed=1)["params"]
    # Larger biases than _random_variables gives, to exercise saturating gates too.
    rng = np.random.default_rng(2)
    for layer in range(layers):
        params[f"b_{layer}"] = rng.normal(size=4 * hidden).astype(np.float32)
    assert params["w_ih_0"].shape == (d, 4 * hidden)
    assert params["w_hh_1"].shape == (hidden, 4 * hidden)
    apply = jax.jit(lambda p, x, lengths: module.apply({"params": p}, x, lengths))
    apply_full = jax.jit(lambda p, x: module.apply({"params": p}, x))
    return hidden, layers, d, params, apply, apply_full


def test_stacked_lstm_matches_numpy_loop(lstm_setup):
    hidden, layers, d, params, _, apply_full = lstm_setup
    x = np.random.default_rng(3).normal(size=(3, 9, d)).astype(np.float32)
    out, finals = apply_full(params, x)
    assert out.shape == (3, 9, hidden) and len(finals) == layers
    for bi in range(3):
        ref_out, ref_finals = _ref_lstm(x[bi], params, hidden, layers)
        np.testing.assert_allclose(np.asarray(out[bi]), ref_out, rtol=1e-5, atol=1e-5)
        for layer in range(layers):
            np.testing.assert_allclose(
                np.asarray(finals[layer][0][bi]), ref_finals[layer][0], rtol=1e-5, atol=1e-5
            )
            np.testing.assert_allclose(
                np.asarray(finals[layer][1][bi]), ref_finals[layer][1], rtol=1e-5, atol=1e-5
            )


def test_stacked_lstm_lengths_mask_padding(lstm_setup):
    hidden, layers, d, params, apply, _ = lstm_setup
    rng = np.random.default_rng(4)
    steps = 11
    lengths = np.array([11, 6, 1, 0], np.int32)
    x = rng.normal(size=(4, steps, d)).astype(np.float32)
    for bi, n in enumerate(lengths):
        x[bi, n:] = 100.0 * rng.normal(size=(steps - n, d))  # garbage padding
    out, finals = apply(params, x, lengths)
    for bi, n in enumerate(lengths):
        ref_out, ref_finals = _ref_lstm(x[bi, :n], params, hidden, layers)
        np.testing.assert_allclose(np.asarray(out[bi, :n]), ref_out, rtol=1e-5, atol=1e-5)
        for layer in range(layers):
            for j in range(2):
                np.testing.assert_allclose(
                    np.asarray(finals[layer][j][bi]), ref_finals[layer][j], rtol=1e-5, atol=1e-5
                )
    # Same as running the unpadded sequence through the module.
    _, finals_short = apply(params, x[1:2, :6], np.array([6], np.int32))
    for layer in range(layers):
        np.testing.assert_allclose(finals[layer][0][1], finals_short[layer][0][0], atol=1e-6)


# ----------------------------------------------------------------------------- masking (tiny)


@pytest.fixture(scope="module")
def tiny_model():
    model = build_model(pose_config.get_config("tiny").model)
    shapes = _init_shapes(model, batch=2, pose_frames=10, frames=8)
    variables = _random_variables(shapes, seed=5)
    return model, variables


def test_encoder_padding_invariance(tiny_model):
    model, variables = tiny_model
    encode = _encode_fn(model)
    rng = np.random.default_rng(6)
    lengths = np.array([60, 23], np.int32)
    padded = (5.0 * rng.normal(size=(2, 80, 6))).astype(np.float32)  # garbage everywhere ...
    clips = [rng.normal(scale=0.2, size=(n, 6)).astype(np.float32) for n in lengths]
    for i, clip in enumerate(clips):
        padded[i, : clip.shape[0]] = clip  # ... except the real frames
    got = np.asarray(encode(variables, padded, lengths))
    assert got.shape == (2, 16)
    for i, clip in enumerate(clips):
        want = np.asarray(encode(variables, clip[None]))[0]
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    # Without lengths the padding does change the pattern (the mask is what makes it equal).
    unmasked = np.asarray(encode(variables, padded))
    assert np.abs(unmasked[1] - got[1]).max() > 1e-3


def test_decoder_num_frames_masking(tiny_model):
    model, variables = tiny_model
    decode = _decode_fn(model)
    stride = model.decoder.rows_per_frame
    rng = np.random.default_rng(7)
    frames = np.array([12, 7], np.int32)
    padded_frames = 20
    rows = (3.0 * rng.normal(size=(2, rows_for_frames(padded_frames, stride), 13))).astype(
        np.float32
    )
    patterns = rng.normal(size=(2, 16)).astype(np.float32)
    got = np.asarray(decode(variables, rows, patterns, num_frames=frames))
    assert got.shape == (2, padded_frames, 6)
    for i, f in enumerate(frames):
        short = rows[i : i + 1, : rows_for_frames(int(f), stride)]
        want = np.asarray(decode(variables, short, patterns[i : i + 1]))[0]
        assert want.shape == (f, 6)
        np.testing.assert_allclose(got[i, :f], want, rtol=1e-5, atol=1e-5)
    # Without num_frames the last real frame sees the padding through the k=3 convs.
    unmasked = np.asarray(decode(variables, rows, patterns))
    assert np.abs(unmasked[1, frames[1] - 1] - got[1, frames[1] - 1]).max() > 1e-4
    # Multi-pattern decoding is masked the same way.
    multi = np.asarray(
        decode(variables, rows, np.stack([patterns, patterns[::-1]], 1), num_frames=frames)
    )
    np.testing.assert_allclose(multi[:, 0], got, rtol=1e-5, atol=1e-5)


def test_build_model_rejects_fps_not_dividing_100():
    cfg = pose_config.get_config("tiny").model
    cfg.fps = 30.0
    with pytest.raises(ValueError, match="fps"):
        build_model(cfg)
