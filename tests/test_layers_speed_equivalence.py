"""StackedLSTM's hand-written backward pass against autodiff of a plain scan LSTM.

`talkingjax.models.layers` computes gradients with a custom VJP (for speed); these tests pin
its outputs and gradients to `jax.grad` of the straightforward implementation, with and
without length masking, and check it under `jax.shard_map` on two (faked) devices.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from talkingjax.models import StackedLSTM


def _reference(params, x, lengths, hidden, num_layers):
    """Plain `lax.scan` LSTM (gate order i, f, g, o), differentiated by JAX autodiff."""
    steps = x.shape[1]
    mask = None
    if lengths is not None:
        mask = (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]  # [T, B, 1]
    seq = jnp.swapaxes(x, 0, 1)
    finals = []
    for layer in range(num_layers):
        w_ih, w_hh = params[f"w_ih_{layer}"], params[f"w_hh_{layer}"]
        x_proj = seq @ w_ih + params[f"b_{layer}"]

        def step(carry, inp, w_hh=w_hh):
            h, c = carry
            gates_x, m = inp
            i, f, g, o = jnp.split(gates_x + h @ w_hh, 4, axis=-1)
            c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
            if m is not None:
                h_new = jnp.where(m, h_new, h)
                c_new = jnp.where(m, c_new, c)
            return (h_new, c_new), h_new

        zeros = jnp.zeros((x.shape[0], hidden), x.dtype)
        (h, c), seq = jax.lax.scan(step, (zeros, zeros), (x_proj, mask))
        finals.append((h, c))
    return jnp.swapaxes(seq, 0, 1), tuple(finals)


def _loss(outputs, weights):
    out, finals = outputs
    total = jnp.sum(weights * out**2)
    for h, c in finals:
        total = total + jnp.sum(jnp.tanh(h)) + jnp.sum(c**2)
    return total


def _setup(hidden, num_layers, batch, steps, d_in, seed):
    rng = np.random.default_rng(seed)
    module = StackedLSTM(hidden=hidden, num_layers=num_layers)
    x = rng.normal(size=(batch, steps, d_in)).astype(np.float32)
    params = module.init(jax.random.key(seed), jnp.asarray(x[:, :2]))["params"]
    # Non-trivial biases, so that some gates saturate.
    params = {
        k: (rng.normal(size=v.shape).astype(np.float32) if k.startswith("b_") else v)
        for k, v in params.items()
    }
    weights = rng.normal(size=(batch, steps, hidden)).astype(np.float32)
    return module, params, x, weights


def _assert_trees_close(got, want, rtol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        # Relative to the largest entry: float32 rounding of long sums, not of each entry.
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * max(np.abs(w).max(), 1e-6))


@pytest.mark.parametrize(
    "hidden,num_layers,batch,steps,d_in,lengths",
    [
        (8, 1, 2, 5, 3, None),
        (7, 3, 3, 9, 2, [0, 9, 4]),
        (16, 3, 5, 40, 6, [40, 39, 20, 3, 1]),
        (32, 2, 4, 60, 13, None),
    ],
)
def test_outputs_and_gradients_match_autodiff(hidden, num_layers, batch, steps, d_in, lengths):
    module, params, x, weights = _setup(hidden, num_layers, batch, steps, d_in, seed=steps)
    ln = None if lengths is None else jnp.asarray(lengths, jnp.int32)

    def fast(p, x):
        return module.apply({"params": p}, x, ln)

    def ref(p, x):
        return _reference(p, x, ln, hidden, num_layers)

    _assert_trees_close(jax.jit(fast)(params, x), jax.jit(ref)(params, x), rtol=1e-5)
    grad = lambda f: jax.jit(jax.grad(lambda p, x: _loss(f(p, x), weights), argnums=(0, 1)))
    _assert_trees_close(grad(fast)(params, x), grad(ref)(params, x), rtol=1e-5)


@pytest.mark.parametrize("use_lengths", [False, True])
def test_gradients_under_shard_map(use_lengths):
    if jax.device_count() < 2:
        pytest.skip("needs two devices (conftest fakes four)")
    hidden, num_layers = 8, 3
    module, params, x, weights = _setup(hidden, num_layers, batch=4, steps=13, d_in=5, seed=0)
    lengths = np.array([13, 7, 0, 12], np.int32)
    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])

    def loss(p, x, weights, ln):
        return _loss(module.apply({"params": p}, x, ln if use_lengths else None), weights)

    def per_device(p, x, weights, ln):
        value, grads = jax.value_and_grad(loss)(p, x, weights, ln)
        # Gradients of the replicated parameters are already summed over devices.
        return jax.lax.psum(value, "data"), grads

    sharded = jax.jit(
        jax.shard_map(
            per_device,
            mesh=mesh,
            in_specs=(P(), P("data"), P("data"), P("data")),
            out_specs=(P(), P()),
        )
    )
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    value, grads = sharded(
        put(params, P()), put(x, P("data")), put(weights, P("data")), put(lengths, P("data"))
    )
    want_value, want_grads = jax.jit(jax.value_and_grad(loss))(params, x, weights, lengths)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    _assert_trees_close(grads, want_grads, rtol=1e-5)
