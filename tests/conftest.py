"""Test setup: four faked CPU devices, so data-parallel code really runs on several devices.

XLA reads the flag when the backend starts, so it is set before anything imports jax.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
