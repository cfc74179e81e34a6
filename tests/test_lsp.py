"""Tests of paper 004 (Live Speech Portraits): head-pose model, sampling, losses, APC, projection.

Models are tiny and their variables are filled from `jax.eval_shape` with NumPy values
(compiling `init` costs more than the tests themselves). References are plain NumPy / SciPy.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
from testdata import fill_random

from talkingjax.losses import lsp as lsp_losses
from talkingjax.models import lsp

TINY = dict(
    residual_channels=8, dilation_channels=8, skip_channels=8, cond_channels=8, post_channels=8
)
AUDIO_DIM = 52  # four 13-d MFCC rows per 25 fps frame


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _pose_variables(model, seed=0, audio_dim=AUDIO_DIM):
    shapes = jax.eval_shape(
        model.init, jax.random.key(0), jnp.zeros((1, 2, audio_dim)), jnp.zeros((1, 2, 12))
    )
    return fill_random(shapes, seed)


def _clip(rng, batch, frames, audio_dim=AUDIO_DIM):
    """Random audio features and a smooth random pose clip as states."""
    audio = rng.normal(size=(batch, frames, audio_dim)).astype(np.float32)
    pose = np.cumsum(rng.normal(scale=0.01, size=(batch, frames, 6)), axis=1)
    states = np.asarray(lsp.pose_to_states(jnp.asarray(pose, jnp.float32)))
    return audio, states


# ----------------------------------------------------------------------------- sizes


def test_paper_sizes():
    """Sec. 3.3: F = 255; Sec. 4.3: 4.267 M (pose net, 1024-d APC input) and 4.064 M (APC)."""
    model = lsp.LSPPoseModel()
    assert model.dilations == (1, 2, 4, 8, 16, 32, 64) * 2
    assert model.receptive_field == 255
    shapes = jax.eval_shape(
        model.init, jax.random.key(0), jnp.zeros((1, 2, 1024)), jnp.zeros((1, 2, 12))
    )
    total = _count(shapes["params"])
    assert total == 4_266_608 and round(total / 1e6, 3) == 4.267
    apc = jax.eval_shape(lsp.APC().init, jax.random.key(0), jnp.zeros((1, 2, 80)))["params"]
    gru = sum(_count(apc[f"gru_{i}"]) for i in range(3))
    assert gru == 4_064_256 and round(gru / 1e6, 3) == 4.064
    assert _count(apc["predict"]) == 512 * 80 + 80


def test_pose_to_states():
    pose = np.random.default_rng(0).normal(size=(2, 5, 6)).astype(np.float32)
    states = np.asarray(lsp.pose_to_states(jnp.asarray(pose)))
    assert states.shape == (2, 5, 12)
    np.testing.assert_array_equal(states[..., :6], pose)
    np.testing.assert_array_equal(states[:, 0, 6:], 0.0)
    np.testing.assert_allclose(states[:, 1:, 6:], pose[:, 1:] - pose[:, :-1], atol=1e-7)


# ----------------------------------------------------------------------------- model


def _ref_gated_layer(h, cond, p, dilation, kernel):
    """NumPy loop over frames of one gated residual layer; h [T, R], cond [T, C]."""
    steps, d2 = h.shape[0], p["taps"].shape[-1]
    res, skips = [], []
    for t in range(steps):
        fg = cond[t] @ p["cond"]["kernel"] + p["cond"]["bias"] + p["taps_bias"]
        for i in range(kernel):
            src = t - (kernel - 1 - i) * dilation
            if src >= 0:
                fg = fg + h[src] @ p["taps"][i]
        z = np.tanh(fg[: d2 // 2]) / (1.0 + np.exp(-fg[d2 // 2 :]))
        res.append(h[t] + z @ p["residual"]["kernel"] + p["residual"]["bias"])
        skips.append(z @ p["skip"]["kernel"] + p["skip"]["bias"])
    return np.stack(res), np.stack(skips)


def test_gated_layer_matches_numpy_and_step():
    layer = lsp.GatedResidualLayer(
        dilation=3, kernel_size=3, residual_channels=4, dilation_channels=5, skip_channels=6
    )
    rng = np.random.default_rng(1)
    h = rng.normal(size=(2, 11, 4)).astype(np.float32)
    c = rng.normal(size=(2, 11, 7)).astype(np.float32)

    def full(module, h, c):
        return module(h, module.condition(c))

    shapes = jax.eval_shape(lambda k: layer.init(k, h, c, method=full), jax.random.key(0))
    params = fill_random(shapes, 2)
    assert params["params"]["taps"].shape == (3, 4, 10)
    res, skip = jax.jit(lambda v, h, c: layer.apply(v, h, c, method=full))(params, h, c)
    np_params = jax.tree.map(np.asarray, params["params"])
    for b in range(2):
        ref_res, ref_skip = _ref_gated_layer(h[b], c[b], np_params, 3, 3)
        np.testing.assert_allclose(np.asarray(res[b]), ref_res, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(skip[b]), ref_skip, rtol=1e-5, atol=1e-5)

    buffer = jnp.zeros((2, 6, 4))
    cond = layer.apply(params, c, method=layer.condition)
    step = jax.jit(lambda *args: layer.apply(params, *args, method=layer.step))
    for t in range(11):
        (r_t, s_t), buffer = step(h[:, t], cond[:, t], buffer)
        np.testing.assert_allclose(np.asarray(r_t), np.asarray(res[:, t]), atol=1e-5)
        np.testing.assert_allclose(np.asarray(s_t), np.asarray(skip[:, t]), atol=1e-5)


def test_shapes_and_state_dropout():
    model = lsp.LSPPoseModel(dilations=(1, 2), **TINY)
    variables = _pose_variables(model)
    audio, states = _clip(np.random.default_rng(0), 3, 9)
    apply = jax.jit(model.apply, static_argnames="train")
    mean, log_std = apply(variables, audio, states)
    assert mean.shape == log_std.shape == (3, 9, 12)
    assert np.all(np.isfinite(np.asarray(mean))) and np.all(np.isfinite(np.asarray(log_std)))
    assert np.all(np.asarray(log_std) >= math.log(model.min_std) - 1e-6)

    keys = [{"dropout": jax.random.key(i)} for i in range(2)]
    train_0 = apply(variables, audio, states, train=True, rngs=keys[0])[0]
    again = apply(variables, audio, states, train=True, rngs=keys[0])[0]
    train_1 = apply(variables, audio, states, train=True, rngs=keys[1])[0]
    np.testing.assert_array_equal(np.asarray(train_0), np.asarray(again))
    assert np.abs(np.asarray(train_0 - train_1)).max() > 1e-4
    assert np.abs(np.asarray(train_0 - mean)).max() > 1e-4
    # Frame 0 sees only the zero start state, which dropout cannot change.
    np.testing.assert_allclose(np.asarray(train_0[:, 0]), np.asarray(mean[:, 0]), atol=1e-6)


def test_causality():
    """Output t = p(x_t | x_<t, audio_<=t): a state at j changes outputs > j only; audio at j
    changes outputs >= j only."""
    model = lsp.LSPPoseModel(dilations=(1, 2, 4), **TINY)
    variables = _pose_variables(model, seed=1)
    audio, states = _clip(np.random.default_rng(1), 2, 20)
    apply = jax.jit(lambda a, s: jnp.concatenate(model.apply(variables, a, s), axis=-1))
    base = np.asarray(apply(audio, states))
    j = 9
    moved = states.copy()
    moved[:, j] += 0.5
    out = np.asarray(apply(audio, moved))
    np.testing.assert_array_equal(out[:, : j + 1], base[:, : j + 1])
    assert np.abs(out[:, j + 1] - base[:, j + 1]).max() > 1e-3
    moved_audio = audio.copy()
    moved_audio[:, j] += 1.0
    out = np.asarray(apply(moved_audio, states))
    np.testing.assert_array_equal(out[:, :j], base[:, :j])
    assert np.abs(out[:, j] - base[:, j]).max() > 1e-3


def test_receptive_field_is_255():
    """Paper dilations: output t depends on exactly the states t-255 .. t-1 (Eq. 7, F = 255;
    254 frames before the latest input state) and the audio of frames t-253 .. t (audio enters
    each layer at its output frame, so layer 1's oldest tap, t-254, carries a state only).

    Checked on the gradient, whose zeros are structural (exact), rather than by perturbing an
    input 255 frames back, whose effect through a single 14-layer path can round away.
    """
    model = lsp.LSPPoseModel(activation="leaky_relu", min_std=None, **TINY)  # no dead units
    variables = _pose_variables(model, seed=2)
    audio, states = _clip(np.random.default_rng(2), 1, 300)
    t = 290

    def out_t(a, s):
        mean, log_std = model.apply(variables, a, s)
        return jnp.sum(mean[:, t]) + jnp.sum(log_std[:, t])

    g_audio, g_states = jax.jit(jax.grad(out_t, argnums=(0, 1)))(audio, states)
    dep_states = np.abs(np.asarray(g_states[0])).max(axis=-1) > 0
    dep_audio = np.abs(np.asarray(g_audio[0])).max(axis=-1) > 0
    frames = np.arange(300)
    np.testing.assert_array_equal(dep_states, (frames >= t - 255) & (frames <= t - 1))
    np.testing.assert_array_equal(dep_audio, (frames >= t - 253) & (frames <= t))


# ----------------------------------------------------------------------------- Eq. 11


def test_gaussian_pose_nll_matches_scipy():
    rng = np.random.default_rng(3)
    mean, target = rng.normal(size=(2, 2, 7, 12))
    log_std = rng.normal(scale=0.5, size=(2, 7, 12))
    mask = (rng.uniform(size=(2, 7)) > 0.3).astype(np.float32)
    per_frame = -scipy.stats.norm.logpdf(target, mean, np.exp(log_std)).sum(-1)
    args = [jnp.asarray(v, jnp.float32) for v in (mean, log_std, target)]
    np.testing.assert_allclose(float(lsp_losses.p004_eq11(*args)), per_frame.mean(), rtol=1e-5)
    ref = (per_frame * mask).sum() / mask.sum()
    got = lsp_losses.gaussian_pose_nll(*args, mask=jnp.asarray(mask))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)


# ----------------------------------------------------------------------------- sampling


def _prefix_rollout(model, variables, audio, init_states, init_audio, feedback, length=None):
    """Slow reference: the full (teacher-forced) model on the growing prefix, mean at the end.

    The prefix is zero-padded to one `length` so the model compiles once; outputs up to the
    prefix end do not see the padding (`test_causality`).
    """
    history = [] if init_states is None else list(np.asarray(init_states))
    past_audio = np.zeros((0, audio.shape[1]), np.float32) if init_audio is None else init_audio
    all_audio = np.concatenate([past_audio, audio])
    length = length or all_audio.shape[0]
    all_audio = np.pad(all_audio, ((0, length - all_audio.shape[0]), (0, 0)))
    apply = _jitted_apply(model, variables)
    states = list(history)
    for _ in range(audio.shape[0]):
        n = len(states)
        padded = np.zeros((length, 12), np.float32)
        if n:
            padded[:n] = np.stack(states)
        x = np.asarray(apply(all_audio, padded))[n]
        if feedback == "pose":
            velocity = x[:6] - states[-1][:6] if states else np.zeros(6, np.float32)
            x = np.concatenate([x[:6], velocity])
        states.append(x.astype(np.float32))
    return np.stack(states[len(history) :])


_APPLY_CACHE = {}


def _jitted_apply(model, variables):
    """One jitted teacher-forced apply per model (variables as an argument)."""
    if model not in _APPLY_CACHE:
        _APPLY_CACHE[model] = jax.jit(lambda v, a, s: model.apply(v, a[None], s[None])[0][0])
    fn = _APPLY_CACHE[model]
    return lambda a, s: fn(variables, a, s)


@pytest.fixture(scope="module")
def paper_layout_model():
    """Paper dilations (F = 255), tiny widths."""
    model = lsp.LSPPoseModel(**TINY)
    return model, _pose_variables(model, seed=4)


def test_sampling_at_temperature_zero_is_the_mean_rollout(paper_layout_model):
    """Paper layout (F = 255) with 4 frames of history; the no-history start is tested on a
    smaller stack below (each variant compiles its own scan)."""
    model, variables = paper_layout_model
    audio, states = _clip(np.random.default_rng(5), 1, 4 + 10)
    init, frames = states[0, :4], audio[0, 4:]
    got = lsp.sample_states(model, variables, frames, init, jax.random.key(0), temperature=0.0)
    init_audio = np.repeat(frames[:1], 4, 0)  # the default audio of the history frames
    ref = _prefix_rollout(model, variables, frames, init, init_audio, "pose")
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-5)
    # Deterministic: another key gives the same rollout; poses are the first six dimensions.
    pose = lsp.sample(model, variables, frames, init, jax.random.key(1), temperature=0.0)
    np.testing.assert_array_equal(np.asarray(pose), np.asarray(got)[:, :6])
    # The fed-back velocity is the pose difference.
    got = np.asarray(got)
    np.testing.assert_allclose(got[0, 6:], got[0, :6] - init[-1, :6], atol=1e-6)
    np.testing.assert_allclose(got[1:, 6:], got[1:, :6] - got[:-1, :6], atol=1e-6)

    # Sampling proper: reproducible per key, different across keys.
    a = lsp.sample(model, variables, frames, init, jax.random.key(2))
    b = lsp.sample(model, variables, frames, init, jax.random.key(2))
    c = lsp.sample(model, variables, frames, init, jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.abs(np.asarray(a - c)).max() > 1e-6


@pytest.mark.parametrize("history, feedback", [(0, "pose"), (9, "sample")])
def test_sampling_small_stack(history, feedback):
    """No history (first velocity 0, zero start as in training); and feedback="sample" (the raw
    12-d sample, reference code) with explicit history audio and more history than F = 4, which
    the sampler drops without changing anything."""
    model = lsp.LSPPoseModel(dilations=(1, 2), **TINY)
    assert model.receptive_field == 4
    variables = _pose_variables(model, seed=6)
    audio, states = _clip(np.random.default_rng(6), 1, 9 + 8)
    init = states[0, 9 - history : 9] if history else None
    init_audio = audio[0, 9 - history : 9] if history else None
    frames = audio[0, 9:]
    got = lsp.sample_states(
        model,
        variables,
        frames,
        init,
        jax.random.key(0),
        0.0,
        init_audio=init_audio,
        feedback=feedback,
    )
    ref = _prefix_rollout(model, variables, frames, init, init_audio, feedback, length=17)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-5)
    if not history:
        np.testing.assert_array_equal(np.asarray(got)[0, 6:], 0.0)


# ----------------------------------------------------------------------------- training


def test_optax_steps_decrease_nll():
    # No state dropout: the training loss is then the evaluation loss (one compiled step).
    model = lsp.LSPPoseModel(dilations=(1, 2, 4), state_dropout=0.0, **TINY)
    params = _pose_variables(model, seed=7)["params"]
    audio, states = _clip(np.random.default_rng(7), 2, 32)
    tx = optax.adam(1e-2)

    def loss_fn(p):
        mean, log_std = model.apply({"params": p}, audio, states, train=True)
        return lsp_losses.gaussian_pose_nll(mean, log_std, states)

    @jax.jit
    def step(p, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    opt_state = tx.init(params)
    losses = []
    for _ in range(21):  # the 21st loss is the one after 20 updates
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    # Nats per frame (12-d, small scales, so the values are negative).
    assert losses[-1] < losses[0] - 1.0, losses


# ----------------------------------------------------------------------------- APC, Eq. 9


def _ref_gru(x, p):
    """PyTorch-convention GRU, plain loop; x [T, D]."""
    hid = p["w_hh"].shape[0]
    h = np.zeros(hid)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    out = []
    for x_t in x:
        gi, gh = x_t @ p["w_ih"] + p["b_ih"], h @ p["w_hh"] + p["b_hh"]
        r, z = sig(gi[:hid] + gh[:hid]), sig(gi[hid : 2 * hid] + gh[hid : 2 * hid])
        n = np.tanh(gi[2 * hid :] + r * gh[2 * hid :])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out)


def test_apc_matches_numpy_gru_and_is_causal():
    apc = lsp.APC(hidden=6, num_layers=2, residual=True)
    rng = np.random.default_rng(8)
    frames = rng.normal(size=(2, 9, 5)).astype(np.float32)
    variables = fill_random(jax.eval_shape(apc.init, jax.random.key(0), frames), 13)
    apply = jax.jit(apc.apply)
    pred, feats = apply(variables, frames)
    assert pred.shape == (2, 9, 5) and feats.shape == (2, 9, 6)
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), variables["params"])
    for b in range(2):
        h1 = _ref_gru(frames[b], p["gru_0"])  # 5 -> 6: no residual (sizes differ)
        h2 = _ref_gru(h1, p["gru_1"])  # last layer: no residual
        np.testing.assert_allclose(np.asarray(feats[b]), h2, rtol=1e-5, atol=1e-5)
        ref_pred = h2 @ p["predict"]["kernel"] + p["predict"]["bias"]
        np.testing.assert_allclose(np.asarray(pred[b]), ref_pred, rtol=1e-5, atol=1e-5)
    moved = frames.copy()
    moved[:, 5] += 1.0
    pred2, _ = apply(variables, moved)
    np.testing.assert_array_equal(np.asarray(pred2[:, :5]), np.asarray(pred[:, :5]))


def test_apc_residual_between_equal_width_layers():
    apc = lsp.APC(hidden=4, num_layers=3, residual=True)
    frames = np.random.default_rng(9).normal(size=(1, 6, 3)).astype(np.float32)
    variables = fill_random(jax.eval_shape(apc.init, jax.random.key(1), frames), 14)
    _, feats = apc.apply(variables, frames)
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), variables["params"])
    h1 = _ref_gru(frames[0], p["gru_0"])
    h2 = _ref_gru(h1, p["gru_1"]) + h1  # residual: 4 -> 4, not the last layer
    h3 = _ref_gru(h2, p["gru_2"])
    np.testing.assert_allclose(np.asarray(feats[0]), h3, rtol=1e-5, atol=1e-5)


def test_apc_l1_matches_numpy():
    rng = np.random.default_rng(10)
    pred, frames = rng.normal(size=(2, 3, 11, 4)).astype(np.float32)
    n = lsp.APC_SHIFT
    assert n == 3  # Sec. 4.2.1
    ref = np.mean([np.abs(frames[b, n:] - pred[b, :-n]).sum() for b in range(3)])
    np.testing.assert_allclose(float(lsp_losses.p004_eq9(pred, frames)), ref, rtol=1e-5)
    lengths = np.array([11, 7, 2])
    ref = np.mean(
        [
            np.abs(frames[b, n : lengths[b]] - pred[b, : max(lengths[b] - n, 0)]).sum()
            for b in range(3)
        ]
    )
    got = lsp_losses.apc_l1(pred, frames, shift=n, lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)


def test_gru_mask_skips_left_padding():
    """A left-padded sequence with its padding masked gives the unpadded sequence's states."""
    apc = lsp.APC(hidden=5, num_layers=2)
    rng = np.random.default_rng(15)
    frames = rng.normal(size=(1, 7, 3)).astype(np.float32)
    variables = fill_random(jax.eval_shape(apc.init, jax.random.key(0), frames), 16)
    padded = np.concatenate([rng.normal(size=(1, 4, 3)).astype(np.float32), frames], axis=1)
    mask = np.arange(11)[None] >= 4
    _, feats = apc.apply(variables, frames)
    _, feats_padded = apc.apply(variables, padded, mask)
    np.testing.assert_allclose(np.asarray(feats_padded[:, 4:]), np.asarray(feats), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(feats_padded[:, :4]), 0.0)  # state held at 0
    _, unmasked = apc.apply(variables, padded)
    assert not np.allclose(np.asarray(unmasked[:, 4:]), np.asarray(feats), atol=1e-3)


def _apc_pose_model(hidden=6):
    return lsp.APCPoseModel(
        apc=lsp.APC(hidden=hidden, num_layers=2),
        pose=lsp.LSPPoseModel(dilations=(1, 2), state_dropout=0.0, **TINY),
        surface_dim=5,
    )


def _apc_pose_variables(model, seed=0):
    shapes = jax.eval_shape(
        model.init,
        jax.random.key(0),
        jnp.zeros((1, 8, model.surface_dim)),
        jnp.zeros((1, 2, 4), jnp.int32),
        jnp.zeros((1, 2, 12)),
    )
    variables = fill_random(shapes, seed)
    rng = np.random.default_rng(seed + 100)
    variables["batch_stats"] = {
        "surface_mean": rng.normal(size=model.surface_dim).astype(np.float32),
        "surface_std": rng.uniform(0.5, 2.0, size=model.surface_dim).astype(np.float32),
    }
    return variables


def test_apc_pose_model_reads_normalised_apc_features_per_frame():
    model = _apc_pose_model()
    variables = _apc_pose_variables(model)
    assert set(variables["params"]) == {"apc", "pose"}
    rng = np.random.default_rng(17)
    rows = rng.normal(size=(2, 20, 5)).astype(np.float32)
    index = np.stack([np.arange(3)[:, None] * 4 + 4 + np.arange(4)] * 2).astype(np.int32)
    feats = np.asarray(model.apply(variables, rows, index, method=lsp.APCPoseModel.frame_features))
    assert feats.shape == (2, 3, 4 * 6)

    # Reference: APC on (rows - mean) / std, h_L at each frame's 4 rows, concatenated.
    stats = variables["batch_stats"]
    x = (rows - stats["surface_mean"]) / stats["surface_std"]
    apc_vars = {"params": variables["params"]["apc"]}
    pred, h = model.apc.apply(apc_vars, x)
    want = np.asarray(h)[:, index[0]].reshape(2, 3, 24)
    np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-6)
    pred2, x2, h2 = model.apply(variables, rows, method=lsp.APCPoseModel.encode)
    np.testing.assert_allclose(np.asarray(x2), x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pred2), np.asarray(pred), rtol=1e-5, atol=1e-6)

    # The whole model is the pose model on those features.
    states = _clip(rng, 2, 3)[1]
    mean, log_std = model.apply(variables, rows, index, states)
    ref_mean, ref_log_std = model.pose.apply({"params": variables["params"]["pose"]}, want, states)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(ref_mean), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(log_std), np.asarray(ref_log_std), rtol=1e-4, atol=1e-5)

    # Other APC parameters: other features, another predicted distribution.
    other = dict(
        variables,
        params=dict(variables["params"], apc=_apc_pose_variables(model, 1)["params"]["apc"]),
    )
    mean_other, _ = model.apply(other, rows, index, states)
    assert np.max(np.abs(np.asarray(mean_other) - np.asarray(mean))) > 1e-4


# ----------------------------------------------------------------------------- Eq. 2-3


def _ref_projection(features, database, k, reg):
    """Nearest-first neighbours; w_1 = 1 - sum(w_>1), ridge least squares for w_>1."""
    out = []
    for h in features.astype(np.float64):
        dist = np.linalg.norm(database - h, axis=1)
        nb = database[np.argsort(dist)[:k]].astype(np.float64)
        a = nb[1:] - nb[0]
        gram = a @ a.T
        ridge = reg * np.trace(gram) / (k - 1)
        rest = np.linalg.solve(gram + ridge * np.eye(k - 1), a @ (h - nb[0]))
        w = np.concatenate([[1.0 - rest.sum()], rest])
        out.append(w @ nb)
    return np.stack(out)


def test_manifold_projection_matches_numpy():
    rng = np.random.default_rng(11)
    database = rng.normal(size=(200, 16)).astype(np.float32)
    features = rng.normal(size=(37, 16)).astype(np.float32)
    project = jax.jit(lsp.manifold_projection, static_argnames=("k", "batch_size"))
    got = np.asarray(project(features, database, k=10, batch_size=8))
    np.testing.assert_allclose(got, _ref_projection(features, database, 10, 1e-3), atol=1e-4)

    # Weights sum to one: translating everything translates the projection.
    shifted = np.asarray(project(features + 3.0, database + 3.0, k=10, batch_size=8))
    np.testing.assert_allclose(shifted, got + 3.0, atol=1e-3)

    # A database point projects onto itself (up to the regulariser).
    self_proj = np.asarray(project(database[:37], database, k=10, batch_size=8))
    np.testing.assert_allclose(self_proj, database[:37], atol=1e-5)


def test_lle_weights_recover_an_affine_combination():
    rng = np.random.default_rng(12)
    neighbours = rng.normal(size=(4, 16)).astype(np.float32)
    w = np.array([0.5, 0.3, -0.2, 0.4], np.float32)
    target = w @ neighbours
    got = np.asarray(lsp.lle_weights(jnp.asarray(target), jnp.asarray(neighbours), reg=1e-7))
    np.testing.assert_allclose(got.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, w, atol=1e-3)
