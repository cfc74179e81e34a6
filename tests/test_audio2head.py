"""Tests of the Audio2Head head pose predictor (paper 002, Sec. 3.2) against NumPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from testdata import random_params

from talkingjax.losses import audio2head as L
from talkingjax.models import audio2head as M

B, T, A = 2, 16, 52


def _tiny_models(conditional=False):
    g = M.Audio2HeadPose(
        hidden=16,
        audio_embed=8,
        audio_blocks=(1,),
        audio_features=(8,),
        pose_embed_features=(16,),
    )
    d = M.PosePatchDiscriminator(features=(8, 16), conditional=conditional)
    return g, d


def _batch(seed=0, batch=B, frames=T):
    """MFCC-scale random audio; smooth head motion (sinusoids around a rest pose), which the
    tiny model can fit (i.i.d. noise poses have no structure for SSIM to match)."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(scale=10.0, size=(batch, frames, A)).astype(np.float32)
    t = np.arange(frames)[None, :, None]
    freq = rng.uniform(0.1, 0.4, size=(batch, 1, 6))
    phase = rng.uniform(0.0, 2 * np.pi, size=(batch, 1, 6))
    amp = np.array([0.1, 0.1, 0.05, 0.05, 0.05, 0.1])  # rad, translation units
    rest = rng.normal(scale=0.05, size=(batch, 1, 6))
    pose = (rest + amp * np.sin(freq * t + phase)).astype(np.float32)
    return {"audio": jnp.asarray(audio), "pose": jnp.asarray(pose)}


@pytest.fixture(scope="module")
def tiny():
    g, d = _tiny_models()
    batch = _batch()
    params = {
        "generator": random_params(g, batch["audio"], batch["pose"][:, 0], seed=10),
        "discriminator": random_params(d, batch["pose"], seed=11),
    }
    return g, d, params, batch


@pytest.fixture(scope="module")
def g_apply(tiny):
    g = tiny[0]
    return jax.jit(lambda p, audio, init: g.apply({"params": p}, audio, init))


# ----------------------------------------------------------------------------- references


def _ref_ssim(pred, target, window, c1, c2):
    """Loop over sequences and windows of `window` frames x all channels, float64."""
    pred = np.asarray(pred, np.float64)
    target = np.asarray(target, np.float64)
    values = []
    for x_seq, y_seq in zip(pred, target, strict=True):
        w = x_seq.shape[0] if window is None else window
        for start in range(x_seq.shape[0] - w + 1):
            x = x_seq[start : start + w].ravel()
            y = y_seq[start : start + w].ravel()
            mx, my = x.mean(), y.mean()
            vx, vy = x.var(), y.var()
            cov = np.mean((x - mx) * (y - my))
            s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            values.append(1.0 - s)
    return float(np.mean(values))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ref_generator(p, audio_emb, e0, scale):
    """Eq. 1-2 step by step: e_i from [E_A(a_i), e_{i-1}], zero initial states, s_i = E_D(e_i)."""
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), p)
    hidden = e0.shape[-1]
    layers = sum(1 for k in p if k.startswith("w_ih_"))
    states = [(np.zeros((e0.shape[0], hidden)),) * 2 for _ in range(layers)]
    es = [np.asarray(e0, np.float64)]
    for i in range(audio_emb.shape[1]):
        x = np.concatenate([audio_emb[:, i], es[-1]], axis=-1)
        for layer in range(layers):
            h, c = states[layer]
            pre = x @ p[f"w_ih_{layer}"] + h @ p[f"w_hh_{layer}"] + p[f"b_{layer}"]
            gi, gf, gg, go = np.split(pre, 4, axis=-1)
            c = _sigmoid(gf) * c + _sigmoid(gi) * np.tanh(gg)
            h = _sigmoid(go) * np.tanh(c)
            states[layer] = (h, c)
            x = h
        es.append(x)
    e = np.stack(es, axis=1)
    return (e @ p["decoder"]["kernel"] + p["decoder"]["bias"]) * scale


# ----------------------------------------------------------------------------- generator


def test_shapes(tiny, g_apply):
    g, d, params, batch = tiny
    pose = g_apply(params["generator"], batch["audio"], batch["pose"][:, 0])
    assert pose.shape == (B, T, 6) and pose.dtype == jnp.float32
    logits = jax.jit(d.apply)({"params": params["discriminator"]}, batch["pose"])
    assert logits.shape == (B, M.num_patches(T, 2), 1)
    # Any sequence length (the paper's "arbitrary length of audio input"), including T = 1.
    for frames in (1, 5):
        out = g_apply(params["generator"], batch["audio"][:, :frames], batch["pose"][:, 0])
        assert out.shape == (B, frames, 6)


def test_matches_numpy_recurrence(tiny, g_apply):
    g, _, params, batch = tiny
    gp = {"params": params["generator"]}
    audio, init = batch["audio"], batch["pose"][:, 0]
    apply = jax.jit(g.apply, static_argnames="method")
    audio_emb = np.asarray(apply(gp, audio[:, 1:], method=M.Audio2HeadPose.embed_audio))
    e0 = np.asarray(apply(gp, init, method=M.Audio2HeadPose.embed_pose))
    ref = _ref_generator(params["generator"], audio_emb, e0, g.pose_scale)
    np.testing.assert_allclose(g_apply(params["generator"], audio, init), ref, atol=1e-5)


def test_causal(tiny, g_apply):
    _, _, params, batch = tiny
    audio, init = batch["audio"], batch["pose"][:, 0]
    base = np.asarray(g_apply(params["generator"], audio, init))
    t = 6
    changed = np.asarray(g_apply(params["generator"], audio.at[:, t].add(5.0), init))
    np.testing.assert_array_equal(changed[:, :t], base[:, :t])
    assert np.all(np.abs(changed[:, t] - base[:, t]).max(-1) > 1e-6)
    # Frame 0's pose is E_D(e_0): its audio is not used at all.
    unused = np.asarray(g_apply(params["generator"], audio.at[:, 0].add(5.0), init))
    np.testing.assert_array_equal(unused, base)


def test_initial_pose_used(tiny, g_apply):
    _, _, params, batch = tiny
    audio, init = batch["audio"], batch["pose"][:, 0]
    base = np.asarray(g_apply(params["generator"], audio, init))
    other = np.asarray(g_apply(params["generator"], audio, init.at[:, 1].add(0.2)))
    # Every frame depends on it: frame 0 via E_D(e_0), later frames through the SET.
    assert np.all(np.abs(other - base).max(-1) > 1e-6)


def test_paper_sizes():
    g = M.Audio2HeadPose()
    shapes = jax.eval_shape(g.init, jax.random.key(0), jnp.zeros((1, 3, A)), jnp.zeros((1, 6)))
    p = shapes["params"]
    # Two-layer LSTM on [E_A(a_i) (256), e_{i-1} (256)] -> 256, linear E_D -> 6.
    assert p["w_ih_0"].shape == (512, 1024) and p["w_ih_1"].shape == (256, 1024)
    assert "w_ih_2" not in p and p["decoder"]["kernel"].shape == (256, 6)
    # E_A = ResNet-34: torchvision's 21,797,672 parameters with its 1000-way fc and the
    # 7x7x3 stem swapped for a 3x3x1 stem and a 512 -> 256 fc.
    resnet34 = 21_797_672 - (512 * 1000 + 1000) - 7 * 7 * 3 * 64 + 3 * 3 * 64 + (512 * 256 + 256)
    assert sum(x.size for x in jax.tree.leaves(p["audio_encoder"])) == resnet34
    d_shapes = jax.eval_shape(
        M.PosePatchDiscriminator().init, jax.random.key(0), jnp.zeros((1, 256, 6))
    )
    out = jax.eval_shape(M.PosePatchDiscriminator().apply, d_shapes, jnp.zeros((1, 256, 6)))
    assert out.shape == (1, 30, 1) == (1, M.num_patches(256), 1)


def test_conditional_discriminator(tiny):
    _, _, _, batch = tiny
    d = M.PosePatchDiscriminator(features=(8, 16), conditional=True)
    dp = {"params": random_params(d, batch["pose"], batch["audio"], seed=12)}
    assert dp["params"]["Conv_0"]["kernel"].shape == (4, 6 + A, 8)
    assert jax.jit(d.apply)(dp, batch["pose"], batch["audio"]).shape == (B, M.num_patches(T, 2), 1)
    with pytest.raises(ValueError):
        d.apply(dp, batch["pose"])


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("window", [None, 5])
def test_pose_ssim_matches_numpy(window):
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(3, 20, 6)).astype(np.float32)
    target = (0.5 * pred + rng.normal(size=(3, 20, 6)) + 0.3).astype(np.float32)
    ssim = jax.jit(L.pose_ssim, static_argnames="window")
    got = float(ssim(pred, target, window=window))
    np.testing.assert_allclose(got, _ref_ssim(pred, target, window, L.C1, L.C2), rtol=1e-5)
    # Large constant offsets (translations) must not cost float32 the small variances.
    got = float(ssim(pred * 1e-2 + 5.0, target * 1e-2 + 5.0, window=window))
    ref = _ref_ssim(pred * 1e-2 + 5.0, target * 1e-2 + 5.0, window, L.C1, L.C2)
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_pose_ssim_zero_for_identical():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 12, 6)).astype(np.float32))
    ssim = jax.jit(L.pose_ssim, static_argnames="window")
    for window in (None, 4):
        assert abs(float(ssim(x, x, window=window))) < 1e-6
    grad = jax.jit(jax.grad(lambda p: L.pose_ssim(p, x)))(x)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() < 1e-5
    assert L.p002_eq3 is L.pose_ssim and L.p002_eq4 is L.pose_predictor_objective


def test_lsgan_matches_numpy():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(2, 7, 1)).astype(np.float32)
    fake = rng.normal(size=(2, 7, 1)).astype(np.float32)
    np.testing.assert_allclose(L.lsgan_generator(fake), np.mean((fake - 1.0) ** 2), rtol=1e-6)
    ref_d = 0.5 * (np.mean((real - 1.0) ** 2) + np.mean(fake**2))
    np.testing.assert_allclose(L.lsgan_discriminator(real, fake), ref_d, rtol=1e-6)
    np.testing.assert_allclose(L.pose_predictor_objective(0.25, 2.0), 2.25)


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def loss_and_grad(tiny):
    """The jitted value and gradient of the one-scalar loss, shared (compiling it takes s)."""
    g, d, _, _ = tiny
    loss_fn = functools.partial(M.generator_and_discriminator_loss, g, d)
    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))


def test_gradient_separation(tiny, loss_and_grad):
    g, d, params, batch = tiny
    _, grads = loss_and_grad(params, batch)

    audio, pose = batch["audio"], batch["pose"]
    scale = g.pose_scale

    def g_only(gp):  # L_G as a function of theta_g alone (D fixed, no stop_gradient)
        fake = g.apply({"params": gp}, audio, pose[:, 0])
        gan = L.lsgan_generator(d.apply({"params": params["discriminator"]}, fake))
        return L.pose_predictor_objective(L.pose_ssim(fake / scale, pose / scale), gan)

    fake = jax.jit(g.apply)({"params": params["generator"]}, audio, pose[:, 0])

    def d_only(dp):  # L_D as a function of theta_d alone (fake fixed)
        apply = lambda x: d.apply({"params": dp}, x)  # noqa: E731
        return L.lsgan_discriminator(apply(pose), apply(fake))

    g_ref = jax.jit(jax.grad(g_only))(params["generator"])
    d_ref = jax.jit(jax.grad(d_only))(params["discriminator"])
    for got, ref in ((grads["generator"], g_ref), (grads["discriminator"], d_ref)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got, ref)
        assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(ref)) > 0


def test_training_step_decreases_loss(tiny, loss_and_grad):
    _, _, params, batch = tiny
    opt = optax.adam(3e-3)

    @jax.jit
    def update(params, grads, opt_state):
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def step(params, opt_state):  # one optimizer for both networks
        (loss, metrics), grads = loss_and_grad(params, batch)
        params, opt_state = update(params, grads, opt_state)
        return params, opt_state, loss, metrics

    opt_state = opt.init(params)
    history = []
    for _ in range(20):
        params, opt_state, loss, metrics = step(params, opt_state)
        history.append((float(loss), float(metrics["ssim"]), float(metrics["discriminator"])))
    first, last = history[0], history[-1]
    assert np.all(np.isfinite(history))
    assert last[0] < 0.8 * first[0], history
    assert last[1] < 0.9 * first[1], history  # the generator fits the sequence (Eq. 3) ...
    assert last[2] < 0.8 * first[2], history  # ... and D separates real from generated poses
