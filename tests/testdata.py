"""Small test inputs that several test files write (the suite needs no external data)."""

import os

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
