"""The personalisation cache: content hashes, and directories that are complete or absent.

A cached stage lives in a directory named by what it depends on -- the hash of the target
video's content (`file_hash`) and of the trained models' workdirs (`workdir_fingerprint`,
`Models.fingerprint`) -- so a renamed or copied video hits the cache, and a changed model only
redoes what depends on it. `cached` builds such a directory into a temporary sibling and
renames it when the build succeeded, so an interrupted run never leaves half a stage behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable

from talkingjax import user_cache
from talkingjax.errors import InputError
from talkingjax.train import runner

DEFAULT_CACHE = user_cache.path()


def hash_file(h, path: str) -> None:
    """Feeds the content of the file at `path` into the hashlib object `h` (1 MiB blocks)."""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)


def file_hash(path: str) -> str:
    """SHA-256 (first 16 hex digits) of a file's content."""
    h = hashlib.sha256()
    try:
        hash_file(h, path)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    return h.hexdigest()[:16]


def workdir_fingerprint(workdir: str) -> str:
    """Content hash of a workdir's config and latest checkpoint, or of an exported workdir's
    config and variables (`runner.export`): what a cache depends on."""
    h = hashlib.sha256()
    config = os.path.join(workdir, "config.json")
    ckpt = os.path.join(workdir, "checkpoints")
    if os.path.isfile(config) and runner.is_exported(workdir):
        files = [os.path.join(workdir, runner.EXPORT_FILE)]
    elif not os.path.isfile(config) or not os.path.isdir(ckpt):
        raise InputError(
            f"{workdir} is not a trained workdir (config.json with checkpoints/ or "
            f"{runner.EXPORT_FILE})"
        )
    else:
        steps = [d for d in os.listdir(ckpt) if d.isdigit()]
        if not steps:
            raise InputError(f"{workdir} has no checkpoint")
        latest = os.path.join(ckpt, max(steps, key=int))
        files = sorted(os.path.join(r, f) for r, _, fs in os.walk(latest) for f in fs)
    for path in [config] + files:
        h.update(os.path.relpath(path, workdir).encode())
        hash_file(h, path)
    return h.hexdigest()[:16]


def cached(path: str, build: Callable[[str], None]) -> str:
    """`path` if it exists, else `build(tmp)` into a temporary sibling renamed to `path`.

    A directory at `path` is therefore always complete: an interrupted build leaves only its
    temporary directory, which the next attempt removes.
    """
    if os.path.exists(path):
        return path
    tmp = f"{path}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        build(tmp)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
