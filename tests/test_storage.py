"""Remote workdirs: a `gs://` workdir reaches Orbax and every writer untouched, through
`etils.epath`, here over a fake GCS (fsspec's in-memory filesystem registered for `gs://`).

Orbax's array data goes through TensorStore's own GCS driver, which no fake reaches here; what
is checked is that Orbax is handed the `gs://` directory (and creates it there through epath),
and that config, metrics and train-clips files land in the bucket, from process 0 only.
"""

import importlib
import json

import jax
import pytest
from etils.epath import backend as epath_backend
from fsspec.implementations.memory import MemoryFileSystem
from orbax.checkpoint._src.path import gcs_utils

from talkingjax.errors import InputError
from talkingjax.train import checkpoint, loop, storage
from talkingjax.train.metric_writer import MetricWriter


class FakeGCS(MemoryFileSystem):
    """An in-memory `gs://` (its own store, not the memory:// one)."""

    protocol = ("gs", "gcs")
    store: dict = {}
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        for prefix in ("gs://", "gcs://"):
            path = path.removeprefix(prefix)
        return "/" + path.strip("/")


@pytest.fixture
def bucket(monkeypatch):
    FakeGCS.store.clear()
    FakeGCS.pseudo_dirs[:] = [""]
    for name in ("gs", "gcs"):
        monkeypatch.setitem(importlib.import_module("fsspec.registry")._registry, name, FakeGCS)
    # Orbax asks GCS's API (google-cloud-storage) whether a bucket has folders; a fake has not.
    monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
    epath_backend.fsspec_backend._get_filesystem.cache_clear()
    yield FakeGCS()
    epath_backend.fsspec_backend._get_filesystem.cache_clear()


def test_a_gs_workdir_reaches_orbax_and_the_files_land_in_the_bucket(bucket, tmp_path):
    workdir = "gs://bucket/run"
    assert str(storage.path(workdir)) == workdir  # not made absolute: 'cwd/gs:/bucket/run'
    mngr = checkpoint.manager(workdir)
    assert str(mngr.directory) == "gs://bucket/run/checkpoints"
    assert bucket.isdir("/bucket/run/checkpoints")  # Orbax created it, through epath
    assert mngr.latest_step() is None
    mngr.close()

    config = '{"model": {"width": 8}, "seed": 0}'
    checkpoint.write_workdir_config(workdir, config)
    assert json.loads(bucket.cat("/bucket/run/config.json")) == json.loads(config)
    assert checkpoint.load_workdir_config(workdir).model.width == 8
    checkpoint.check_workdir_config(workdir, config, ("model",))
    with pytest.raises(InputError, match="different model"):
        checkpoint.check_workdir_config(workdir, '{"model": {"width": 16}}', ("model",))

    loop.write_train_clips(workdir, "", [{"clip_id": "a"}])
    assert json.loads(bucket.cat("/bucket/run/train_clips.json"))["clips"] == [{"clip_id": "a"}]

    writer = MetricWriter(workdir, 3, stream=open(tmp_path / "log", "w"))
    for step in (1, 2, 3):
        writer.write(step, {"loss": float(step)})
    text = bucket.cat("/bucket/run/metrics.jsonl").decode()
    assert [json.loads(x)["step"] for x in text.splitlines()] == [1, 2, 3]
    MetricWriter(workdir, 3, resume_step=2)  # a resume from step 2 drops step 3's line
    text = bucket.cat("/bucket/run/metrics.jsonl").decode()
    assert [json.loads(x)["step"] for x in text.splitlines()] == [1, 2]
    assert not list(tmp_path.glob("gs*")) and not list(tmp_path.glob("bucket"))


def test_only_process_0_writes_a_remote_workdir(bucket, monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    workdir = "gs://bucket/other"
    checkpoint.write_workdir_config(workdir, "{}")
    loop.write_train_clips(workdir, "", [])
    MetricWriter(workdir, 2).write(1, {"loss": 1.0})
    assert not bucket.exists("/bucket/other")


def test_a_remote_workdir_keeps_generated_data_in_a_local_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = {"num_videos": 4, "seed": 0}
    local = storage.local_data_dir("gs://bucket/run", "synthetic", settings)
    assert local.startswith(str(tmp_path)) and "gs:" not in local
    assert local == storage.local_data_dir("gs://bucket/elsewhere", "synthetic", dict(settings))
    assert local != storage.local_data_dir("gs://bucket/run", "synthetic", {"num_videos": 5})
    assert storage.local_data_dir("runs/x", "synthetic", settings) == "runs/x/synthetic"


def test_evaluation_files_land_in_the_bucket_from_process_0_only(bucket, monkeypatch):
    from talkingjax.evaluation import sync as sync_eval

    result = {
        "rows": [],
        "threshold": {"no_confidence": 0.1, "rule": "given"},
        "summary": sync_eval.summarise([], 0.1),
    }
    sync_eval.write_result("gs://bucket/run/eval", "sync", result, "title")
    assert bucket.cat("/bucket/run/eval/sync.json").decode() == json.dumps(result, indent=1)
    assert bucket.cat("/bucket/run/eval/sync.md").decode().startswith("#")
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    sync_eval.write_result("gs://bucket/other/eval", "sync", result, "title")
    assert not bucket.exists("/bucket/other")
