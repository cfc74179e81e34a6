"""Tests of talkingjax.data.corpus (manifest, speaker split) and experiments.split_corpus."""

import json
import os
import subprocess
import sys

import pytest

from talkingjax.data import corpus
from talkingjax.errors import InputError

HEADER = "file\tspeaker_id\taudio\tseconds\n"


def _manifest(tmp_path, speakers):
    """speakers: {speaker_id: number of clips}; clip i of s is speech/s_i.mp4 (odd i silent)."""
    lines = [HEADER]
    for s, n in speakers.items():
        for i in range(n):
            audio = "silent" if i % 2 else "speech"
            lines.append(f"{audio}/{s}_{i}.mp4\t{s}\t{audio}\t{3 + i}.5\n")
    path = tmp_path / "manifest.tsv"
    path.write_text("".join(lines))
    return path


SPEAKERS = {f"multi{i}": 2 + i % 3 for i in range(7)} | {f"one{i}": 1 for i in range(40)}


def test_split_is_speaker_disjoint_complete_and_has_groups(tmp_path):
    rows = corpus.read_manifest(_manifest(tmp_path, SPEAKERS))
    split = corpus.speaker_split(rows, seed=0)
    parts = [set(split[p]) for p in ("train", "val", "test")]
    assert set.union(*parts) == set(SPEAKERS)
    assert sum(len(p) for p in parts) == len(SPEAKERS)  # disjoint
    multi = {s for s, n in SPEAKERS.items() if n > 1}
    assert len(set(split["test"]) & multi) == 4
    assert len(set(split["val"]) & multi) == 1
    assert len(set(split["test"]) - multi) == 8  # round(0.2 * 40)
    assert len(set(split["val"]) - multi) == 5  # round(0.15 * 32)
    # Fixed by the seed; another seed draws other speakers.
    assert corpus.speaker_split(rows, seed=0) == split
    assert corpus.speaker_split(rows, seed=1)["test"] != split["test"]
    assert corpus.split_of_speakers(split)["multi0"] in ("train", "val", "test")


def test_split_refuses_too_few_groups_and_bad_manifests(tmp_path):
    rows = corpus.read_manifest(_manifest(tmp_path, {"a": 2, "b": 3, "c": 1}))
    with pytest.raises(InputError, match="several clips"):
        corpus.speaker_split(rows)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.tsv").write_text("file\tspeaker\n")
    with pytest.raises(InputError, match="needs a header"):
        corpus.read_manifest(bad)
    with pytest.raises(InputError, match="no corpus manifest"):
        corpus.read_manifest(tmp_path / "missing")
    with pytest.raises(InputError, match="both"):
        corpus.split_of_speakers({"train": ["a"], "test": ["a"]})


def test_clip_ids_follow_the_preprocessor():
    assert corpus.clip_id("speech/a_b.mp4") == "speech__a_b"
    assert corpus.clip_id("silent/x.y.mov") == "silent__x.y"


def test_split_cli_writes_once(tmp_path):
    manifest = _manifest(tmp_path, SPEAKERS)
    out = tmp_path / "split.json"
    cmd = [
        sys.executable,
        "-m",
        "experiments.split_corpus",
        f"--manifest={manifest}",
        f"--out={out}",
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    split = json.loads(out.read_text())
    assert split["counts"]["test"]["same_speaker_groups"] == sorted(
        s for s in split["speakers"]["test"] if SPEAKERS[s] > 1
    )
    clips = [c["clip_id"] for p in split["clips"].values() for c in p]
    assert len(clips) == sum(SPEAKERS.values()) == len(set(clips))
    again = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.startswith("error: ")
    assert json.loads(out.read_text()) == split  # not overwritten


def _split_file(tmp_path):
    split = {
        "clips": {
            "train": [{"clip_id": "speech__a", "speaker_id": "p1", "audio": "speech"},
                      {"clip_id": "silent__b", "speaker_id": "p1", "audio": "silent"}],
            "val": [{"clip_id": "speech__c", "speaker_id": "p2", "audio": "speech"}],
            "test": [{"clip_id": "speech__d", "speaker_id": "p3", "audio": "speech"}],
        }
    }  # fmt: skip
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))
    return path


def test_read_split_part_and_errors(tmp_path):
    path = _split_file(tmp_path)
    assert [c["clip_id"] for c in corpus.read_split_part(path, "train")] == [
        "speech__a", "silent__b"
    ]  # fmt: skip
    with pytest.raises(InputError, match="no part 'dev'"):
        corpus.read_split_part(path, "dev")
    with pytest.raises(InputError, match="cannot read the split"):
        corpus.read_split_part(tmp_path / "missing.json", "train")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a split file"):
        corpus.read_split_part(bad, "train")


def test_apply_split_places_records_by_speaker(tmp_path):
    import numpy as np

    from talkingjax.data import records

    def clip(cid, speaker="speech"):
        return records.Clip(cid, cid, speaker, 25.0, np.zeros((100, 6), np.float32),
                            np.zeros((0, 13), np.float32))  # fmt: skip

    clips = [clip("speech__a"), clip("silent__b", "silent"), clip("speech__d"), clip("other")]
    out = corpus.apply_split(clips, _split_file(tmp_path))
    assert [(c.clip_id, c.split, c.speaker_id, c.video_id) for c in out] == [
        ("speech__a", "train", "p1", "p1"),
        ("silent__b", "train", "p1", "p1"),
        ("speech__d", "test", "p3", "p3"),
    ]
    with pytest.raises(InputError, match="none of the 1 records"):
        corpus.apply_split([clip("other")], _split_file(tmp_path))
