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
