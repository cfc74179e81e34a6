"""Timing helpers the benchmark scripts share (run as `python benchmarks/NAME.py`)."""

import time

import jax


def timed(fn, *args):
    """(result, seconds) of `fn(*args)`, waiting for every array of the result."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def best_of(fn, repeats: int) -> tuple[float, list[float]]:
    """(best, all) wall times of `repeats` calls of `fn()`; warm it up (compile) first."""
    times = [timed(fn)[1] for _ in range(repeats)]
    return min(times), times


def matmul_rates(size: int = 2048) -> dict[str, float]:
    """GFLOP/s of a [size, size] x [size, size] product: float32, and bfloat16 operands with
    float32 sums (the `model.matmul_dtype="bfloat16"` products); best of 5."""
    import jax.numpy as jnp

    out = {}
    for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        a = jnp.ones((size, size), dtype)
        f = jax.jit(lambda a: jnp.matmul(a, a, preferred_element_type=jnp.float32))
        f(a).block_until_ready()
        best, _ = best_of(lambda f=f, a=a: f(a), 5)
        out[name] = 2 * size**3 / best / 1e9
    return out


def time_update(update, state, batch, repeats: int, warmup: int = 2):
    """Compiles a donating `update(state, batch) -> (state, metrics)` and times its steps.

    The first calls after compilation also allocate (and page in) the state, optimizer
    moments and activations, so `warmup` steps run before the timed ones.

    Returns:
      (best step seconds, all step seconds, compile seconds, the last metrics).
    """
    compiled, compile_s = timed(lambda: update.lower(state, batch).compile())
    metrics = None
    for _ in range(warmup):
        state, metrics = compiled(state, batch)

    def step():
        nonlocal state, metrics
        state, metrics = compiled(state, batch)
        return metrics

    best, times = best_of(step, repeats)
    return best, times, compile_s, metrics
