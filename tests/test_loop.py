"""train.loop pieces every trainer shares: the optimizer with frozen parameter groups."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from talkingjax.train import loop, parallel


def _params():
    return {"encoder": {"w": jnp.ones((3, 2))}, "head": {"w": jnp.ones(4), "b": jnp.zeros(2)}}


def test_frozen_groups_do_not_move_and_others_match_plain_adam():
    params = _params()
    grads = jax.tree.map(lambda x: jnp.full_like(x, 0.5), params)
    plain, frozen = (
        loop.make_optimizer(1e-2, 1.0),
        loop.make_optimizer(1e-2, 1.0, frozen=("encoder",)),
    )
    s_plain, s_frozen = plain.init(params), frozen.init(params)
    # One checkpoint structure for every phase: freezing adds no optimizer state.
    assert jax.tree.structure(s_plain) == jax.tree.structure(s_frozen)
    u_frozen, _ = frozen.update(grads, s_frozen, params)
    np.testing.assert_array_equal(np.asarray(u_frozen["encoder"]["w"]), 0.0)
    # Zeroing comes before clipping: the rest is plain Adam on the gradient without the encoder.
    only_head = {"encoder": jax.tree.map(jnp.zeros_like, grads["encoder"]), "head": grads["head"]}
    u_ref, _ = plain.update(only_head, s_plain, params)
    for a, b in zip(jax.tree.leaves(u_frozen), jax.tree.leaves(u_ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    new = optax.apply_updates(params, u_frozen)
    np.testing.assert_array_equal(np.asarray(new["encoder"]["w"]), 1.0)
    assert not np.allclose(np.asarray(new["head"]["w"]), 1.0)


def test_unknown_frozen_group_is_named():
    opt = loop.make_optimizer(1e-3, frozen=("decoder",))
    params = _params()
    with pytest.raises(ValueError, match=r"frozen groups \['decoder'\] not among"):
        opt.update(params, opt.init(params), params)


def _quadratic(params, batch_stats, batch, model, loss_cfg):
    del model, loss_cfg
    loss = jnp.mean((params["w"] - batch["x"]) ** 2)
    return loss, ({"loss": loss}, batch_stats)


def test_avg_params_is_the_mean_of_the_iterates_from_average_start():
    mesh = parallel.make_mesh()
    opt = loop.make_optimizer(0.1)
    state = loop.init_state({"params": {"w": jnp.zeros(3)}}, opt)
    update = parallel.data_parallel(loop.make_update(_quadratic, None, None, opt, 2), mesh)
    state = parallel.replicate(state, mesh)
    rng = np.random.default_rng(0)
    iterates, avgs = [], []
    for _ in range(5):
        x = rng.standard_normal((mesh.size * 2, 3)).astype(np.float32)
        state, _ = update(state, parallel.shard_batch({"x": x}, mesh))
        iterates.append(np.array(state.params["w"]))  # a copy: the next step donates it
        avgs.append(np.array(state.avg_params["w"]))
    # Before the start the average is the parameters; from it, the mean of the iterates since.
    np.testing.assert_array_equal(avgs[0], iterates[0])
    np.testing.assert_array_equal(avgs[1], iterates[1])
    for i in (2, 3, 4):
        np.testing.assert_allclose(avgs[i], np.mean(iterates[2 : i + 1], axis=0), rtol=1e-5)
    assert not np.allclose(avgs[4], iterates[4])
