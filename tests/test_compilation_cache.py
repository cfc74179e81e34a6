"""talkingjax.compilation_cache: where the persistent cache goes, and that it is used."""

import os
import subprocess
import sys
import textwrap

from talkingjax import compilation_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cache_dir_follows_the_argument_the_variable_and_off(monkeypatch, tmp_path):
    monkeypatch.delenv(compilation_cache.ENV, raising=False)
    assert compilation_cache.cache_dir() == os.path.expanduser(compilation_cache.DEFAULT)
    monkeypatch.setenv(compilation_cache.ENV, str(tmp_path / "c"))
    assert compilation_cache.cache_dir() == str(tmp_path / "c")
    assert compilation_cache.cache_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
    for off in ("off", "OFF", ""):
        monkeypatch.setenv(compilation_cache.ENV, off)
        assert compilation_cache.cache_dir() is None


_PROGRAM = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from talkingjax import compilation_cache
    hits = []
    jax.monitoring.register_event_listener(
        lambda name, **kw: hits.append(1) if name.endswith("/cache_hits") else None
    )
    folder = compilation_cache.enable()
    jax.jit(lambda x: jnp.sin(x) @ x.T + 1.0)(jnp.ones((64, 64))).block_until_ready()
    print(folder, len(hits))
    """
)


def _fresh_process(env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION")} | env
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], env=env, cwd=REPO, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def test_a_fresh_process_writes_its_programs_to_the_cache_and_reads_them_back(tmp_path):
    folder = tmp_path / "xla"
    first = _fresh_process({compilation_cache.ENV: str(folder)})
    assert first == f"{folder} 0"  # nothing to read: compiled and written
    written = set(os.listdir(folder))
    assert written
    # A fresh process reads the programs back instead of compiling them.
    path, hits = _fresh_process({compilation_cache.ENV: str(folder)}).split()
    assert path == str(folder) and int(hits) >= 1
    assert _fresh_process({compilation_cache.ENV: "off"}) == "None 0"
    assert set(os.listdir(folder)) == written


def test_a_users_own_jax_cache_setting_stands(tmp_path):
    own = tmp_path / "own"
    env = {"JAX_COMPILATION_CACHE_DIR": str(own), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    env = {k: v for k, v in os.environ.items() if k != compilation_cache.ENV} | env
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], env=env, cwd=REPO, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == f"{own} 0"
    assert os.listdir(own)
