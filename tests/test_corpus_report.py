"""Tests of experiments.corpus_report on a tiny fake corpus, split and preprocessed dataset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import corpus_report
from talkingjax.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "file\tspeaker_id\taudio\tseconds\tfps\tsize\n"
ROWS = [
    # file, speaker, audio, seconds, fps, size
    ("speech/a.mp4", "ann", "speech", 8.0, 25, "512x512"),
    ("silent/b.mov", "ann", "silent", 6.0, 15, "1080x1920"),
    ("speech/c.mpg", "bob", "speech", 3.0, 25, "360x288"),
    ("speech/d.avi", "cat", "speech", 5.0, 30, "160x160"),
    ("silent/e.mp4", "dan", "silent", 4.0, 25, "256x256"),
]
SPLIT = {"speakers": {"train": ["ann", "bob"], "val": ["cat"], "test": ["dan"]}}


def _ok_report(frames, record_frames, fps, size, audio, lost, rmse, face):
    return {
        "status": "ok",
        "audio": audio,
        "fps": fps,
        "video_frames": frames,
        "record_frames": record_frames,
        "frame_size": size,
        "tracking": {"lost_fraction": lost},
        "screen": {"version": 1, "face_size_px_median": face},
        "fit": {"landmark_rmse_px_mean": rmse, "landmark_rmse_px_max": rmse + 1},
    }


def _fake(tmp_path):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    lines = [HEADER] + ["\t".join(map(str, r)) + "\n" for r in ROWS]
    (corpus_dir / "manifest.tsv").write_text("".join(lines))
    data = tmp_path / "dataset"
    for d in ("reports", "clips"):
        (data / d).mkdir(parents=True)
    reports = {
        "speech__a": _ok_report(200, 198, 25.0, [512, 512], "speech", 0.01, 1.2, 180.0),
        "silent__b": _ok_report(90, 90, 15.0, [1080, 1920], "silent (no audio track)", 0, 1.6, 300),
        "speech__c": {
            "status": "skipped",
            "reason": f"{corpus_dir}/speech/c.mpg: a cut (scene change) at frame 40 (1.60 s)",
            "kind": "cut",
            "screen": {"face_size_px_median": 90.0},
        },
        "speech__d": {  # an old report, without "kind"
            "status": "skipped",
            "reason": f"failed in an earlier run: {corpus_dir}/speech/d.avi: face lost in frames "
            "3-90 (88 of 150); accepted are at most 20% lost frames",
        },
        # silent__e: never processed
    }
    for cid, rep in reports.items():
        (data / "reports" / f"{cid}.json").write_text(json.dumps(rep))
        if rep["status"] == "ok":
            np.savez(data / "clips" / f"{cid}.npz", pose=np.zeros((2, 6)))
    split = tmp_path / "split.json"
    split.write_text(json.dumps(SPLIT))
    return corpus_dir, data, split


def test_report_of_a_tiny_dataset(tmp_path):
    corpus_dir, data, split = _fake(tmp_path)
    report = corpus_report.build_report(str(corpus_dir), str(data), str(split))
    by_file = {e["file"]: e for e in report["clips"]}
    assert [e["file"] for e in report["clips"]] == [
        "silent/b.mov",
        "speech/a.mp4",
        "speech/c.mpg",  # train, by file
        "speech/d.avi",  # val
        "silent/e.mp4",  # test
    ]
    a, b, c, d, e = (by_file[r[0]] for r in ROWS)
    assert a["status"] == "kept" and a["part"] == "train"
    assert (a["seconds"], a["fit_rmse_px_mean"], a["fit_rmse_px_max"]) == (7.92, 1.2, 2.2)
    assert (a["video_frames"], a["record_frames"], a["size"], a["fps"]) == (200, 198, "512x512", 25)
    assert b["record_audio"] == "silent (no audio track)" and b["audio"] == "silent"
    assert (b["seconds"], b["size"], b["face_px"]) == (6.0, "1080x1920", 300.0)
    assert (c["status"], c["kind"], c["face_px"]) == ("skipped", "cut", 90.0)
    assert c["reason"] == "a cut (scene change) at frame 40 (1.60 s)"  # no local path
    assert (d["kind"], d["part"]) == ("face lost", "val")
    assert d["reason"].startswith("face lost in frames 3-90")
    assert str(tmp_path) not in json.dumps(report)
    assert (e["status"], e["kind"], e["seconds"]) == ("not processed", "not processed", 4.0)
    t = report["totals"]
    assert t["train"] == {
        "clips": 3,
        "kept": 2,
        "kept_speech": 1,
        "kept_silent": 1,
        "skipped": 1,
        "kept_seconds": 13.9,
        "kept_speech_seconds": 7.9,
        "speakers": 2,
        "kept_speakers": 1,
        "kept_speech_speakers": 1,
        "skip_kinds": {"cut": 1},
        "fit_rmse_px_median": 1.6,
    }
    assert (t["val"]["kept"], t["val"]["skip_kinds"]) == (0, {"face lost": 1})
    assert (t["all"]["clips"], t["all"]["kept"], t["all"]["speakers"]) == (5, 2, 4)
    assert report["skipped_by_kind"] == {
        "cut": ["speech__c"],
        "face lost": ["speech__d"],
        "not processed": ["silent__e"],
    }


def test_written_files_and_markdown(tmp_path):
    corpus_dir, data, split = _fake(tmp_path)
    report = corpus_report.build_report(str(corpus_dir / "manifest.tsv"), str(data), str(split))
    out = tmp_path / "out"
    corpus_report.write_report(report, str(out), "python -m experiments.corpus_report ...")
    assert json.loads((out / "report.json").read_text()) == report
    md = (out / "report.md").read_text()
    assert "| train | 3 | 2 | 1 | 1 | 13.9 | 7.9 | 2 | 1 | 1 | 1.60 |" in md
    assert "| cut | 1 | speech__c |" in md
    row = "| speech/a.mp4 | ann | train | speech | kept | 200 | 25 | 512x512 | 7.92 | 1.0% | 180 "
    assert row + "| 1.20 / 2.20 | - |" in md
    assert "| speech/c.mpg | bob | train | speech | skipped: cut |" in md
    assert sorted(os.listdir(out)) == ["report.json", "report.md"]  # no temporary files


def test_errors(tmp_path):
    corpus_dir, data, split = _fake(tmp_path)
    with pytest.raises(InputError, match="dataset not found"):
        corpus_report.build_report(str(corpus_dir), str(tmp_path / "nope"), str(split))
    with pytest.raises(InputError, match="not a split file"):
        corpus_report.build_report(str(corpus_dir), str(data), str(corpus_dir / "manifest.tsv"))
    split.write_text(json.dumps({"speakers": {"train": ["ann", "bob"], "val": ["cat"]}}))
    with pytest.raises(InputError, match=r"speakers not in the split .*\['dan'\]"):
        corpus_report.build_report(str(corpus_dir), str(data), str(split))


def test_cli(tmp_path):
    corpus_dir, data, split = _fake(tmp_path)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "experiments.corpus_report", f"--corpus={corpus_dir}"]
    args += [f"--split={split}", f"--out_dir={out}"]
    proc = subprocess.run([*args, f"--dataset={data}"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train: 2 of 3 clips kept (1 with speech" in proc.stdout
    assert (out / "report.md").exists() and (out / "report.json").exists()
    bad = subprocess.run(
        [*args[:-1], f"--out_dir={tmp_path / 'o2'}", f"--dataset={tmp_path / 'nope'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: dataset not found: {tmp_path / 'nope'} (run experiments.preprocess first)"
    ]
    assert not (tmp_path / "o2").exists()
