"""What the PyTorch sides of `side_by_side.py` share (no JAX imported here)."""

import time

import torch


def setup(seed: int = 0) -> None:
    """Flushes denormal floats to zero, as XLA does on CPU, and seeds PyTorch.

    Without flushing, gradients that decay through an LSTM's 300 steps (the head-motion
    encoder's, which enter only through the final states) become denormals and the PyTorch
    step takes ~12 s instead of ~0.8 s for the encoder on this machine.
    """
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)


def best_of(fn, repeats: int) -> tuple[float, list[float]]:
    """(best, all) wall times of `repeats` calls of `fn()`."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times
