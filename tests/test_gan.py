"""Paper 000's rendering-to-realistic GAN (Sec. IV-B3, Eq. 8-10): networks and losses.

Tiny sizes (32 x 32, 3 levels, widths 4-8) keep every compile short; the default 256^2
sizes are only checked with `jax.eval_shape` (no compile, no FLOPs).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from testdata import fill_random, random_params

from talkingjax.errors import InputError
from talkingjax.losses import gan as L
from talkingjax.models import gan

SIZE = 32
G_FEATURES = (4, 8, 8)
D_FEATURES = (4, 8, 8)


def _inputs(batch=2, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    render = rng.uniform(-1, 1, (batch, size, size, 9)).astype(np.float32)
    real = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    return jnp.asarray(render), jnp.asarray(real)


@pytest.fixture(scope="module")
def models():
    render, real = _inputs()
    g = gan.AttentionUNetGenerator(features=G_FEATURES)
    d = gan.PatchDiscriminator(features=D_FEATURES)
    params = {
        "generator": random_params(g, render, seed=1),
        "discriminator": random_params(d, render, real, seed=2),
    }
    return g, d, params


def test_shapes_and_composition(models):
    g, d, params = models
    render, real = _inputs()
    # Jitted: the GEMM layers' many small ops run slowly one by one.
    out = jax.jit(g.apply)({"params": params["generator"]}, render)
    assert out["image"].shape == (2, SIZE, SIZE, 3)
    assert out["color"].shape == (2, SIZE, SIZE, 3)
    assert out["attention"].shape == (2, SIZE, SIZE, 1)
    a, c = np.asarray(out["attention"]), np.asarray(out["color"])
    assert a.min() >= 0 and a.max() <= 1 and np.abs(c).max() <= 1
    # Eq. 8 with r_t = the last 3 input channels.
    expected = a * np.asarray(render)[..., 6:] + (1 - a) * c
    np.testing.assert_allclose(np.asarray(out["image"]), expected, rtol=1e-6, atol=1e-6)
    logits = jax.jit(d.apply)({"params": params["discriminator"]}, render, out["image"])
    # 32 -> 16 -> 8 (stride 2), 8 -> 7 (stride 1, pad 1), 7 -> 6 (logit conv).
    assert logits.shape == (2, 6, 6, 1)


def test_default_sizes_without_compiling():
    x, y = jnp.zeros((1, 256, 256, 9)), jnp.zeros((1, 256, 256, 3))
    g, d = gan.AttentionUNetGenerator(), gan.PatchDiscriminator()
    g_vars = jax.eval_shape(g.init, jax.random.key(0), x)
    out = jax.eval_shape(g.apply, g_vars, x)
    assert out["image"].shape == (1, 256, 256, 3) and out["attention"].shape == (1, 256, 256, 1)
    count = sum(leaf.size for leaf in jax.tree_util.tree_leaves(g_vars))
    assert count == gan.num_params()
    d_vars = jax.eval_shape(d.init, jax.random.key(0), x, y)
    assert jax.eval_shape(d.apply, d_vars, x, y).shape == (1, 30, 30, 1)
    # Layer widths of the paper's U-Net.
    p = g_vars["params"]
    assert [p[f"down_{i}"]["kernel"].shape[-1] for i in range(8)] == list(gan.FEATURES)
    assert p["up_7"]["kernel"].shape == (4, 4, 128, 64)
    assert p["color_head"]["kernel"].shape == (7, 7, 64, 3)
    assert p["attention_head"]["kernel"].shape == (7, 7, 64, 1)


def test_size_must_be_divisible():
    g = gan.AttentionUNetGenerator(features=G_FEATURES)
    with pytest.raises(InputError, match="multiples of 2\\*\\*3 = 8"):
        jax.eval_shape(g.init, jax.random.key(0), jnp.zeros((1, 36, 32, 9)))
    g.check_size(40, 32)  # fine


def test_dropout_only_in_train_mode(models):
    g, _, params = models
    render, _ = _inputs()
    v = {"params": params["generator"]}
    k1, k2 = jax.random.key(1), jax.random.key(2)
    # One compiled program per mode (eagerly the GEMM layers' small ops are slow).
    run = jax.jit(lambda train, key: g.apply(v, render, train=train, rngs={"dropout": key}),
                  static_argnums=0)  # fmt: skip
    eval_a, eval_b = run(False, k1)["image"], run(False, k2)["image"]
    np.testing.assert_array_equal(eval_a, eval_b)
    # Another compiled program: equal up to float rounding.
    np.testing.assert_allclose(eval_a, jax.jit(g.apply)(v, render)["image"], atol=1e-6)
    train_a, train_a2 = run(True, k1)["image"], run(True, k1)["image"]
    train_b = run(True, k2)["image"]
    np.testing.assert_array_equal(train_a, train_a2)
    assert not np.allclose(train_a, train_b)
    assert not np.allclose(train_a, eval_a)
    no_drop = gan.AttentionUNetGenerator(features=G_FEATURES, dropout=0.0)
    np.testing.assert_allclose(
        no_drop.apply(v, render, train=True, rngs={"dropout": k1})["image"], eval_a, atol=1e-6
    )


@pytest.mark.parametrize("num_layers", [4, 3])
def test_receptive_field_numerically(num_layers):
    """Gradient of one logit w.r.t. the input is non-zero on exactly RF x RF pixels.

    Without norm (instance statistics couple all pixels) and with LeakyReLU (never a zero
    derivative), the support of that gradient is the receptive field.
    """
    expected = gan.receptive_field(num_layers)
    assert gan.receptive_field() == 70
    assert expected == {4: 70, 3: 34}[num_layers]
    size = 128
    d = gan.PatchDiscriminator(features=(2,) * num_layers, norm="none")
    cond, frame = jnp.zeros((1, size, size, 9)), jnp.zeros((1, size, size, 3))
    params = random_params(d, cond, frame, seed=3)
    rng = np.random.default_rng(0)
    cond = jnp.asarray(rng.normal(size=cond.shape), jnp.float32)
    frame = jnp.asarray(rng.normal(size=frame.shape), jnp.float32)

    def centre_logit(x):
        logits = d.apply({"params": params}, x[..., :9], x[..., 9:])
        return logits[0, logits.shape[1] // 2, logits.shape[2] // 2, 0]

    grad = np.asarray(jax.jit(jax.grad(centre_logit))(jnp.concatenate([cond, frame], axis=-1)))[0]
    rows = np.flatnonzero(np.any(grad != 0, axis=(1, 2)))
    cols = np.flatnonzero(np.any(grad != 0, axis=(0, 2)))
    assert rows.size == expected and rows[-1] - rows[0] + 1 == expected
    assert cols.size == expected and cols[-1] - cols[0] + 1 == expected


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_losses_match_numpy():
    rng = np.random.default_rng(5)
    real_logits = rng.normal(size=(2, 6, 6, 1)).astype(np.float32)
    fake_logits = rng.normal(size=(2, 6, 6, 1)).astype(np.float32)
    pred, target = rng.uniform(-1, 1, (2, 2, 8, 8, 3)).astype(np.float32)
    att = rng.uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)

    # -log sigmoid(x) = softplus(-x); log(1 - sigmoid(x)) = -softplus(x).
    ns = np.mean(-np.log(1 / (1 + np.exp(-fake_logits))))
    np.testing.assert_allclose(L.gan_generator_loss(fake_logits), ns, rtol=1e-5)
    minimax = np.mean(np.log(1 - 1 / (1 + np.exp(-fake_logits))))
    np.testing.assert_allclose(L.gan_generator_loss(fake_logits, False), minimax, rtol=1e-5)
    bce = 0.5 * (np.mean(_softplus(-real_logits)) + np.mean(_softplus(fake_logits)))
    np.testing.assert_allclose(L.gan_discriminator_loss(real_logits, fake_logits), bce, rtol=1e-5)

    np.testing.assert_allclose(L.l1_loss(pred, target), np.abs(pred - target).mean(), rtol=1e-6)
    np.testing.assert_allclose(L.attention_mean(att), att.mean(), rtol=1e-6)

    # Eq. 9's double sum, written with explicit loops over (i, j).
    def tv(a, f):
        total = 0.0
        for b in range(a.shape[0]):
            for i in range(a.shape[1]):
                for j in range(a.shape[2]):
                    if i + 1 < a.shape[1]:
                        total += f(a[b, i + 1, j, 0] - a[b, i, j, 0])
                    if j + 1 < a.shape[2]:
                        total += f(a[b, i, j + 1, 0] - a[b, i, j, 0])
        return total / a.shape[0]

    np.testing.assert_allclose(L.attention_tv(att), tv(att, np.square), rtol=1e-5)
    np.testing.assert_allclose(L.attention_tv(att, squared=False), tv(att, np.abs), rtol=1e-5)

    np.testing.assert_allclose(
        L.generator_objective(1.0, 0.5, 0.25, 1000.0), 1.0 + 50.0 + 0.5 + 0.01, rtol=1e-6
    )
    value = (
        np.mean(np.log(1 / (1 + np.exp(-real_logits))))
        + minimax
        + 100 * 0.5
        + 2 * 0.25
        + 1e-5 * 1000.0
    )
    np.testing.assert_allclose(L.p000_eq9(real_logits, fake_logits, 0.5, 0.25, 1000.0), value, 1e-5)
    assert L.p000_eq10 is L.generator_and_discriminator_loss
    assert L.p000_eq8 is gan.attention_composite


def test_combined_loss_separates_gradients(models):
    g, d, params = models
    render, real = _inputs()
    batch = {"render": render, "real": real}
    rngs = {"dropout": jax.random.key(7)}

    def combined(p):
        return L.generator_and_discriminator_loss(g, d, p, batch, rngs)

    # Jitted: compiling is faster than running the backward passes op by op.
    (loss, metrics), grads = jax.jit(jax.value_and_grad(combined, has_aux=True))(params)

    def g_objective(gp):
        o = g.apply({"params": gp}, render, train=True, rngs=rngs)
        logits = d.apply({"params": params["discriminator"]}, render, o["image"])
        return L.generator_objective(
            L.gan_generator_loss(logits),
            L.l1_loss(o["image"], real),
            L.attention_mean(o["attention"]),
            L.attention_tv(o["attention"]),
        )

    def d_loss(dp, gp):
        out = g.apply({"params": gp}, render, train=True, rngs=rngs)
        fake = jax.lax.stop_gradient(out["image"])
        # Separate D calls: checks that one concatenated call is the same (per-sample norm).
        return L.gan_discriminator_loss(
            d.apply({"params": dp}, render, real), d.apply({"params": dp}, render, fake)
        )

    # Both references in one program: one compile instead of three.
    (g_val, g_grad), (d_val, d_grad) = jax.jit(
        lambda p: (
            jax.value_and_grad(g_objective)(p["generator"]),
            jax.value_and_grad(d_loss)(p["discriminator"], p["generator"]),
        )
    )(params)
    np.testing.assert_allclose(metrics["generator"], g_val, rtol=1e-5)
    np.testing.assert_allclose(metrics["discriminator"], d_val, rtol=1e-5)
    np.testing.assert_allclose(loss, g_val + d_val, rtol=1e-5)
    for ours, ref in [(grads["generator"], g_grad), (grads["discriminator"], d_grad)]:
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), ours, ref
        )


def test_adam_steps_reduce_l1(models):
    g, d, _ = models
    render, real = _inputs(batch=1, seed=3)
    # A smooth target reachable from the render, like a real frame behind its rendering.
    real = 0.5 * render[..., 6:] + 0.2
    params = {
        "generator": fill_random(
            jax.eval_shape(g.init, jax.random.key(0), render)["params"], seed=4
        ),
        "discriminator": random_params(d, render, real, seed=5),
    }
    batch = {"render": render, "real": real}
    opt = optax.adam(2e-3, b1=0.5)  # the paper's Adam beta1 (reference facts)

    @jax.jit
    def step(p, state, key):
        (_, metrics), grads = jax.value_and_grad(
            lambda q: L.generator_and_discriminator_loss(g, d, q, batch, {"dropout": key}),
            has_aux=True,
        )(p)
        updates, state = opt.update(grads, state, p)
        return optax.apply_updates(p, updates), state, metrics["l1"]

    state = opt.init(params)
    l1s = []
    for i in range(20):
        params, state, l1 = step(params, state, jax.random.key(i))
        l1s.append(float(l1))
    assert np.all(np.isfinite(l1s))
    print("L1 per step", np.round(l1s, 3))
    assert np.mean(l1s[-3:]) < 0.7 * l1s[0], l1s


def test_gflops_hand_count():
    # features (4, 8) at 8 x 8, 9 input channels; MACs per layer:
    macs = (
        4 * 4 * 16 * 9 * 4  # down 0: 9 -> 4, output 4 x 4
        + 2 * 2 * 16 * 4 * 8  # down 1: 4 -> 8, output 2 x 2
        + 2 * 2 * 16 * 8 * 4  # up 0: 8 -> 4, input 2 x 2
        + 4 * 4 * 16 * 8 * 4  # up 1: (4 + 4 skip) -> 4, input 4 x 4
        + 8 * 8 * 49 * 4 * (3 + 1)  # the two 7 x 7 heads at 8 x 8
    )
    assert gan.gflops_per_frame((4, 8), 8) == pytest.approx(2 * macs / 1e9)
    assert gan.gflops_per_frame((4, 8), (8, 16)) == pytest.approx(2 * 2 * macs / 1e9)
    assert gan.gflops_per_frame() == pytest.approx(18.0355072)


def test_self_ensemble_transforms():
    np.testing.assert_array_equal(gan.self_ensemble_transforms(0), [[0, 0, 0], [0, 0, 1]])
    t = gan.self_ensemble_transforms(2)
    assert t.shape == (18, 3) and len({tuple(r) for r in t}) == 18
    assert set(t[:, 0]) == set(t[:, 1]) == {-2, 0, 2} and set(t[:, 2]) == {0, 1}
    with pytest.raises(InputError, match="shift"):
        gan.self_ensemble_transforms(-1)


def test_self_ensemble_matches_numpy():
    # A position-dependent per-pixel function, so every shift and mirror changes its output.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 7, 3)).astype(np.float32)
    weight = rng.normal(size=(6, 7, 1)).astype(np.float32)

    def fn(a):
        return {"image": a * weight, "attention": a[..., :1] ** 2 + weight}

    transforms = gan.self_ensemble_transforms(1)
    got = jax.jit(lambda a: gan.self_ensemble(fn, a, transforms))(jnp.asarray(x))
    want = {"image": 0.0, "attention": 0.0}
    for dy, dx, flip in transforms:
        a = np.roll(x, (dy, dx), axis=(1, 2))
        a = a[:, :, ::-1] if flip else a
        for k, v in fn(a).items():
            v = v[:, :, ::-1] if flip else v
            want[k] = want[k] + np.roll(v, (-dy, -dx), axis=(1, 2)) / len(transforms)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)
    # A function that commutes with shifts and mirrors is left as it is.
    pointwise = gan.self_ensemble(lambda a: {"y": jnp.tanh(a)}, jnp.asarray(x), transforms)
    np.testing.assert_allclose(pointwise["y"], np.tanh(x), atol=1e-6)
