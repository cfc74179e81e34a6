"""JAX's persistent compilation cache for talkingjax's programs (issue 24).

Most of a short job's time on CPU is XLA compiling the fitter, the renderer and the models
(`benchmarks/track_fit_speed.py`: 300 frames tracked and fitted in a fresh process take
31.8 s, 16.0 s with the cache). With the cache, a fresh process loads the compiled programs
from disk instead: the first run writes them (1.1 MB for tracking + fitting, at no measurable
cost), every later run on the same machine and JAX version reads them.

Every entry point (`experiments.cli.run`) calls `enable()`; from Python or Colab call it once
before the first computation. The directory is, in order: the `path` argument,
`$TALKINGJAX_COMPILATION_CACHE`, `xla/` in the user's talkingjax cache (`user_cache`); "off"
(or an empty string) turns the cache off. JAX keys each entry by the program, the JAX/XLA
version and the device, so a stale entry is never used; the directory may be deleted at any
time. As JAX warns, the cache is trusted: do not point it at a directory others can write.
"""

from __future__ import annotations

import os

import jax

from talkingjax import user_cache

ENV = "TALKINGJAX_COMPILATION_CACHE"
DEFAULT = user_cache.path("xla")
# Programs compiling faster than this (seconds) are not written: 0 writes all. The fitter's
# many small programs add up (tracking + fitting 300 frames in a fresh process: 18 s with all
# cached, 22 s with JAX's default of only those over 1 s, 31 s with none).
MIN_COMPILE_SECONDS = 0.0


def cache_dir(path: str | None = None) -> str | None:
    """The cache directory `enable(path)` would use (absolute), or None when it is off."""
    chosen = path if path is not None else os.environ.get(ENV, DEFAULT)
    if chosen.strip().lower() in ("", "off"):
        return None
    return os.path.abspath(os.path.expanduser(chosen))


def enable(path: str | None = None) -> str | None:
    """Turns JAX's persistent compilation cache on (see the module docstring).

    Args:
      path: the cache directory; None = `$TALKINGJAX_COMPILATION_CACHE` or the default.

    Returns:
      The directory used, or None if the cache is off (nothing is changed then). A directory
      that cannot be created leaves the cache off too: compiling is slower, never wrong.
    """
    if path is None and ENV not in os.environ and jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir  # the user's own JAX setting stands
    folder = cache_dir(path)
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
