"""Small test inputs that several test files write (the suite needs no external data)."""

import os

import jax
import numpy as np
import soundfile

from talkingjax import audio


def write_wav(path, seconds, seed=0):
    """A voiced-sounding 16 kHz wav: a 220 Hz tone modulated at 3 Hz plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * audio.SAMPLE_RATE)
    t = np.arange(n) / audio.SAMPLE_RATE
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    wave += 0.01 * rng.normal(size=n)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    soundfile.write(path, wave.astype(np.float32), audio.SAMPLE_RATE, format="WAV")
    return path


def fill_random(shapes, seed: int = 0):
    """NumPy random values for a tree of abstract arrays (`jax.eval_shape` of an `init`).

    Kernels ~ N(0, 1 / fan_in), vectors (biases) ~ N(0, 0.1^2), norm scales ~ 1 + N(0, 0.1^2).
    Compiling `init` costs seconds even for tiny models (JAX's random number generation);
    these values are as good a test point and take milliseconds.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "scale":
            return (1.0 + 0.1 * rng.normal(size=leaf.shape)).astype(np.float32)
        if len(leaf.shape) == 1:
            return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def random_params(module, *args, seed: int = 0):
    """`fill_random` parameters of `module` for the inputs `args`."""
    return fill_random(jax.eval_shape(module.init, jax.random.key(0), *args)["params"], seed)
