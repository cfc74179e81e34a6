"""Test setup: four faked CPU devices, so data-parallel code really runs on several devices.

XLA reads the flag when the backend starts, so it is set before anything imports jax.

Compiled programs go to a persistent cache private to this test session (an empty directory
each run, so no test sees another run's programs): the command-line tests start fresh Python
processes (they inherit the variables) that compile the programs the in-process tests already
compiled, and the resume tests run one command up to three times. Only programs that took
over half a second to compile are written, so the cache does not slow the many small ones.
Under pytest-xdist (scripts/test.sh) the controller process loads this file first, so its
workers inherit and share the one directory.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="talkingjax-test-xla-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
