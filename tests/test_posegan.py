"""Tests of PoseGAN (paper 003 Sec. 4.1): the models, Eq. 3-6 against NumPy, long generation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from testdata import random_params

from talkingjax.errors import InputError
from talkingjax.losses import posegan as pl
from talkingjax.models.posegan import (
    PoseGANDiscriminator,
    PoseGANGenerator,
    generate_long,
    num_windows,
)

T, A, B = 32, 52, 3
G = PoseGANGenerator(features=16, encoder_layers=1, depth=3, decoder_layers=1)
D = PoseGANDiscriminator(features=(8, 16), num_strided=2)
# Eager JAX dispatches (and compiles) op by op; jitting keeps the file fast on a busy CPU.
g_apply = jax.jit(G.apply, static_argnames="train")
d_apply = jax.jit(D.apply, static_argnames="train")
# Compiled once, shared by the gradient and the training test.
loss_and_grad = jax.jit(
    jax.value_and_grad(functools.partial(pl.generator_and_discriminator_loss, G, D), has_aux=True)
)


def _pose(rng, shape):
    angles = rng.uniform(-0.3, 0.3, size=(*shape, 3))
    trans = rng.normal(scale=0.1, size=(*shape, 3))
    return np.concatenate([angles, trans], axis=-1).astype(np.float32)


def _pose_clip(rng, b, t):
    """A per-clip resting pose plus slow sinusoids: head-motion-like targets."""
    frames = np.arange(t)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(b, 1, 6))
    rest = _pose(rng, (b, 1))
    return (rest + 0.03 * np.sin(2 * np.pi * frames / t + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(B, T, A)).astype(np.float32)
    pose = _pose_clip(rng, B, T)
    params = {
        "generator": random_params(G, audio, pose[:, 0], seed=1),
        "discriminator": random_params(D, pose, audio, seed=2),
    }
    return params, {"audio": jnp.asarray(audio), "pose": jnp.asarray(pose)}


# ----------------------------------------------------------------------------- models


def test_shapes(setup):
    params, batch = setup
    y = g_apply({"params": params["generator"]}, batch["audio"], batch["pose"][:, 0])
    assert y.shape == (B, T, 6) and y.dtype == jnp.float32
    logits = d_apply({"params": params["discriminator"]}, batch["pose"], batch["audio"])
    assert logits.shape == (B, T // 4)
    # No train-dependent layers: train and eval are the same function.
    y_train = g_apply(
        {"params": params["generator"]}, batch["audio"], batch["pose"][:, 0], train=True
    )
    np.testing.assert_array_equal(y, y_train)


def test_paper_size_generator_builds_for_256_frames():
    shapes = jax.eval_shape(
        PoseGANGenerator().init, jax.random.key(0), jnp.zeros((1, 256, 52)), jnp.zeros((1, 6))
    )
    count = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    assert 4.0e6 < count < 4.3e6  # the docstring says 4.1 M
    out = jax.eval_shape(
        PoseGANGenerator().apply, shapes, jnp.zeros((2, 256, 52)), jnp.zeros((2, 6))
    )
    assert out.shape == (2, 256, 6)


def test_initial_pose_is_embedded_at_input_and_output(setup):
    params, batch = setup
    rng = np.random.default_rng(1)
    p1, p2 = _pose(rng, (B,)), _pose(rng, (B,))

    def run(zero):
        g = dict(params["generator"])
        for name in zero:  # cut one embedding path of p
            g[name] = jax.tree_util.tree_map(jnp.zeros_like, g[name])
        apply = lambda p: g_apply({"params": g}, batch["audio"], p)  # noqa: E731
        return np.abs(np.asarray(apply(p1) - apply(p2))).max()

    assert run([]) > 1e-4
    assert run(["init_in"]) > 1e-4  # the output embedding alone moves the output
    assert run(["init_out"]) > 1e-4  # so does the input embedding alone
    assert run(["init_in", "init_out"]) == 0.0  # and p enters nowhere else


@pytest.mark.parametrize("frames", [30, 36, 4])
def test_length_not_multiple_of_two_to_depth_raises(setup, frames):
    params, _ = setup
    with pytest.raises(InputError, match=r"multiple of 2\*\*depth = 8; got T = " + str(frames)):
        g_apply({"params": params["generator"]}, jnp.zeros((1, frames, A)), jnp.zeros((1, 6)))


# ----------------------------------------------------------------------------- losses


def _ref_pose(pred, target, p):
    total = 0.0
    for b in range(pred.shape[0]):
        s = np.sum((p[b] - pred[b, 0]) ** 2)
        for t in range(pred.shape[1]):
            s += np.sum((target[b, t] - pred[b, t]) ** 2)
        total += s
    return total / pred.shape[0]


def _ref_motion(pred, target):
    total = 0.0
    for b in range(pred.shape[0]):
        for t in range(1, pred.shape[1]):
            d = (target[b, t] - target[b, t - 1]) - (pred[b, t] - pred[b, t - 1])
            total += np.sum(d**2)
    return total / pred.shape[0]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_eq3_pose_and_motion_losses_match_numpy():
    rng = np.random.default_rng(2)
    pred, target = _pose(rng, (4, 9)), _pose(rng, (4, 9))
    p = _pose(rng, (4,))
    want_pose, want_motion = _ref_pose(pred, target, p), _ref_motion(pred, target)
    np.testing.assert_allclose(pl.pose_loss(pred, target, p), want_pose, rtol=1e-5)
    np.testing.assert_allclose(pl.motion_loss(pred, target), want_motion, rtol=1e-5)
    np.testing.assert_allclose(
        pl.pose_loss(pred, target, p, reduction="mean"), want_pose / (9 * 6), rtol=1e-5
    )
    np.testing.assert_allclose(
        pl.motion_loss(pred, target, reduction="mean"), want_motion / (8 * 6), rtol=1e-5
    )
    # A constant offset has no motion error; the init term sees p, not y_0.
    assert float(pl.motion_loss(target + 0.3, target)) < 1e-10
    np.testing.assert_allclose(pl.pose_loss(target, target, p), _ref_pose(target, target, p))
    with pytest.raises(ValueError, match="reduction"):
        pl.pose_loss(pred, target, p, reduction="max")


def test_eq5_gan_losses_match_numpy():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(scale=3, size=(4, 8)), rng.normal(scale=3, size=(4, 8))
    value = np.mean(np.log(_sigmoid(real))) + np.mean(np.log(1 - _sigmoid(fake)))
    np.testing.assert_allclose(pl.cgan_value(real, fake), value, rtol=1e-5)
    np.testing.assert_allclose(pl.cgan_discriminator_loss(real, fake), -value, rtol=1e-5)
    np.testing.assert_allclose(
        pl.cgan_generator_loss(fake), np.mean(np.log(1 - _sigmoid(fake))), rtol=1e-5
    )
    np.testing.assert_allclose(
        pl.cgan_generator_loss(fake, non_saturating=True),
        -np.mean(np.log(_sigmoid(fake))),
        rtol=1e-5,
    )
    # Stable for confident logits, where the naive log(1 - sigmoid) would give -inf.
    assert np.isfinite(float(pl.cgan_value(jnp.array([60.0]), jnp.array([60.0]))))


def test_eq4_eq6_weights_and_aliases():
    # Sec. 4.3: alpha = 1 on L_pose, beta = 10 on L_p-motion, lambda = 0.01 on L_GAN.
    assert (pl.ALPHA, pl.BETA, pl.LAMBDA) == (1.0, 10.0, 0.01)
    np.testing.assert_allclose(pl.l2_loss(2.0, 3.0), 1 * 2 + 10 * 3)
    np.testing.assert_allclose(pl.posegan_objective(2.0, 3.0, -0.5), 0.01 * -0.5 + 2 + 30)
    np.testing.assert_allclose(pl.posegan_objective(2.0, 3.0, 4.0, 0.5, 2.0, 1.0), 1 + 6 + 4)
    assert pl.p003_eq3_pose is pl.pose_loss and pl.p003_eq3_motion is pl.motion_loss
    assert pl.p003_eq4 is pl.l2_loss and pl.p003_eq6 is pl.posegan_objective
    assert pl.p003_eq5 is pl.cgan_value
    assert pl.p003_eq5_generator is pl.cgan_generator_loss
    assert pl.p003_eq5_discriminator is pl.cgan_discriminator_loss


# ----------------------------------------------------------------------------- training


def test_combined_loss_gives_each_network_its_own_gradient(setup):
    params, batch = setup
    audio, real = batch["audio"], batch["pose"]
    p = real[:, 0]
    (_, metrics), grads = loss_and_grad(params, batch)

    def g_objective(gp, dp):
        fake = G.apply({"params": gp}, audio, p)
        logits = D.apply({"params": dp}, fake, audio)
        return pl.posegan_objective(
            pl.pose_loss(fake, real, p), pl.motion_loss(fake, real), pl.cgan_generator_loss(logits)
        )

    def d_loss(dp, gp):
        fake = G.apply({"params": gp}, audio, p)
        return pl.cgan_discriminator_loss(
            D.apply({"params": dp}, real, audio), D.apply({"params": dp}, fake, audio)
        )

    @jax.jit  # one compilation for both references
    def references(gp, dp):
        g_value, want_g = jax.value_and_grad(g_objective)(gp, dp)
        d_value, want_d = jax.value_and_grad(d_loss)(dp, gp)
        return want_g, want_d, g_value, d_value

    want_g, want_d, g_value, d_value = references(params["generator"], params["discriminator"])
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)  # noqa: E731
    jax.tree_util.tree_map(close, grads["generator"], want_g)
    jax.tree_util.tree_map(close, grads["discriminator"], want_d)
    # Both sides really train: neither gradient is zero.
    for tree in (want_g, want_d):
        assert max(float(jnp.abs(x).max()) for x in jax.tree_util.tree_leaves(tree)) > 1e-6
    np.testing.assert_allclose(metrics["generator"], g_value, rtol=1e-5)
    np.testing.assert_allclose(metrics["discriminator"], d_value, rtol=1e-5)
    np.testing.assert_allclose(
        metrics["loss"], metrics["generator"] + metrics["discriminator"], rtol=1e-6
    )


def test_adam_steps_decrease_reconstruction_loss(setup):
    params, batch = setup
    # One Adam over both parameter sets: simultaneous G and D updates.
    opt = optax.adam(1e-2)

    @jax.jit
    def update(params, grads, opt_state):
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = opt.init(params)
    history = []
    for _ in range(20):
        (_, metrics), grads = loss_and_grad(params, batch)
        params, opt_state = update(params, grads, opt_state)
        history.append(float(metrics["pose"]))
    assert np.all(np.isfinite(history))
    assert history[-1] < 0.2 * history[0], history


# ----------------------------------------------------------------------------- long sequences


def _stub_apply(audio, p):
    """A generator whose output visibly depends on p and on every audio frame."""
    return p[:, None, :] + jnp.cumsum(audio[..., :6], axis=1)


def _ref_long(audio, p0, window, overlap):
    """Window-by-window loop in NumPy with the stub generator."""
    total = audio.shape[0]
    out, pose, start = [], np.asarray(p0, np.float64), 0
    while len(out) < total:
        idx = np.minimum(np.arange(start, start + window), total - 1)  # edge padding
        y = pose + np.cumsum(audio[idx, :6], axis=0)
        out.extend(y if start == 0 else y[int(overlap) :])
        pose, start = y[-1], start + window - int(overlap)
    return np.stack(out[:total])


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("total", [1, 8, 9, 40])
def test_generate_long_chains_windows(total, overlap):
    rng = np.random.default_rng(total)
    audio = rng.normal(size=(total, 10)).astype(np.float32)
    p0 = _pose(rng, ())
    got = generate_long(_stub_apply, audio, p0, window=8, overlap=overlap)
    assert got.shape == (total, 6)
    np.testing.assert_allclose(got, _ref_long(audio, p0, 8, overlap), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("overlap", [True, False])
def test_generate_long_with_generator_continues_from_last_pose(setup, overlap):
    params, _ = setup
    rng = np.random.default_rng(4)
    total = 3 * T + 5  # not a multiple of the window
    audio = rng.normal(size=(total, A)).astype(np.float32)
    p0 = _pose(rng, ())
    apply = functools.partial(g_apply, {"params": params["generator"]})
    got = np.asarray(
        jax.jit(functools.partial(generate_long, apply, window=T, overlap=overlap))(audio, p0)
    )
    assert got.shape == (total, 6)

    step = T - int(overlap)
    n = num_windows(total, T, overlap)
    assert n == 4
    padded = np.concatenate([audio, np.repeat(audio[-1:], (n - 1) * step + T - total, 0)])
    for k in range(n):
        start = k * step
        # Window 0 starts from p0; window k from the last pose of window k - 1, i.e. the pose
        # emitted for frame start + overlap - 1.
        init = p0 if k == 0 else got[start + int(overlap) - 1]
        y = np.asarray(apply(padded[None, start : start + T], init[None]))[0]
        keep = slice(0 if k == 0 else int(overlap), min(T, total - start))
        np.testing.assert_allclose(got[start + keep.start : start + keep.stop], y[keep], atol=1e-5)


def test_generate_long_rejects_bad_input():
    with pytest.raises(InputError, match="audio"):
        generate_long(_stub_apply, np.zeros((0, 10), np.float32), np.zeros(6), window=8)
    with pytest.raises(InputError, match="window"):
        generate_long(_stub_apply, np.zeros((5, 10), np.float32), np.zeros(6), window=1)
