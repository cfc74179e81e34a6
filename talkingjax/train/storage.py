"""Workdir paths on local disk or remote storage (`gs://`, `s3://`), through one abstraction.

A workdir is a local directory or a URI that `etils.epath` (the path layer Orbax itself uses)
opens with fsspec (gcsfs for `gs://`, s3fs for `s3://`). A URI reaches Orbax and every writer
untouched; a local path is made absolute (Orbax wants absolute checkpoint directories).

Only process 0 writes a workdir's own files (config, metrics, evaluation): in a multi-host
run every process computes the same replicated values, and all hosts see one workdir.
Checkpoints are written by Orbax from all processes together (`checkpoint.manager`).

Writes are atomic: locally a temporary file is renamed over the target (`os.replace`); on
object storage one object upload is itself atomic (the object appears only once complete),
so the object is written directly (renaming an object is a copy there).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import jax
from etils import epath

from talkingjax import user_cache
from talkingjax.data import records


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` is a URI (`gs://bucket/run`, `s3://...`) rather than a local path."""
    return "://" in os.fspath(path)


def path(p: str | os.PathLike) -> epath.Path:
    """`p` as an `epath.Path`: a URI untouched, a local path absolute."""
    p = os.fspath(p)
    return epath.Path(p if is_remote(p) else os.path.abspath(p))


def is_writer() -> bool:
    """Whether this process writes the workdir's own files (process 0 of the run)."""
    return jax.process_index() == 0


def exists(p: str | os.PathLike) -> bool:
    return path(p).exists()


def is_file(p: str | os.PathLike) -> bool:
    return path(p).is_file()


def is_dir(p: str | os.PathLike) -> bool:
    return path(p).is_dir()


def makedirs(p: str | os.PathLike) -> None:
    """Creates a directory and its parents (a no-op on object storage's implied folders)."""
    path(p).mkdir(parents=True, exist_ok=True)


def read_text(p: str | os.PathLike) -> str:
    return path(p).read_text()


def read_bytes(p: str | os.PathLike) -> bytes:
    return path(p).read_bytes()


def atomic_write(p: str | os.PathLike, write: Callable, mode: str = "w") -> None:
    """Calls `write(file)` and makes the result appear at `p` at once (module docstring).

    Args:
      p: the file to write (local or a URI); its directory is created if missing.
      write: `file -> None`, writing the whole content.
      mode: "w" (text) or "wb" (bytes).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_remote(p):
        with target.open(mode) as f:
            write(f)
    else:
        records.atomic_write(os.fspath(target), write, mode=mode)


def write_text(p: str | os.PathLike, text: str) -> None:
    """Writes `text` to `p` atomically (`atomic_write`)."""
    atomic_write(p, lambda f: f.write(text))


def write_json(p: str | os.PathLike, obj, indent: int | None = 1) -> None:
    """Writes `obj` as JSON to `p` atomically (`atomic_write`)."""
    write_text(p, json.dumps(obj, indent=indent))


def local_data_dir(workdir: str, name: str, settings: dict) -> str:
    """Where a trainer's generated data set (a synthetic corpus) lives: `<workdir>/<name>` for
    a local workdir; for a remote one a local folder named by `settings` under the user's
    cache (the readers need local files, and every host makes the same data itself).

    Args:
      workdir: the run's workdir.
      name: the data set's folder name ("synthetic", "pairs", ...).
      settings: everything the generated data depends on (JSON-serialisable).
    """
    if not is_remote(workdir):
        return os.path.join(workdir, name)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return user_cache.path("generated", f"{name}-{key}")
