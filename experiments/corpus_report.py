"""The corpus report: every clip of the real corpus, kept or skipped (and why), by split part.

  python -m experiments.corpus_report --corpus=../shared/data/real/corpus \
      --dataset=../runs/corpus --split=experiments/corpus/split.json --out_dir=experiments/corpus

Reads the corpus manifest (`manifest.tsv`: file, speaker_id, audio, seconds, fps, size), the
committed speaker split (`split.json`) and the dataset `experiments.preprocess` made of the
corpus (`reports/<clip_id>.json`, `clips/<clip_id>.npz`), and writes, atomically,
`<out_dir>/report.json` and `<out_dir>/report.md`:

- per clip: file, speaker_id, split part (train / val / test), audio (the manifest's speech /
  silent, and what the record has: "speech", "silent (no audio track)", "silent (audio is
  silent)"), status (kept: its record exists; skipped: with the preprocessor's reason and
  category; not processed: no report), video frames, record frames, fps, frame size, seconds
  (of the record when kept, else the manifest's), lost-frame fraction (tracking), median face
  size (screening) and the fit's landmark RMSE (mean and max over detected frames, crop px);
- per part and overall: clips, kept clips (with speech / without), kept seconds, speakers and
  kept speakers, skipped clips per category.

Paths inside reasons are made relative to the corpus, so the report names no local directory.
"""

from __future__ import annotations

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import corpus, preprocess, records
from talkingjax.errors import InputError

PARTS = ("train", "val", "test")
FORMAT = "talkingjax.corpus_report/1"

_CORPUS = flags.DEFINE_string(
    "corpus", None, "The corpus directory (or its manifest.tsv).", required=True
)
_DATASET = flags.DEFINE_string(
    "dataset", None, "The corpus preprocessed by experiments.preprocess.", required=True
)
_SPLIT = flags.DEFINE_string("split", "experiments/corpus/split.json", "The speaker split.")
_OUT_DIR = flags.DEFINE_string("out_dir", "experiments/corpus", "Where report.md/.json go.")


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def short_reason(reason: str, file: str, corpus_dir: str) -> str:
    """A reason without local paths: corpus paths made relative, the clip's own file dropped.

    '/c/speech/a.mp4: face lost in ...' -> 'face lost in ...' (file 'speech/a.mp4', corpus
    '/c'); 'failed in an earlier run: ' prefixes are dropped too.
    """
    reason = reason.removeprefix("failed in an earlier run: ")
    for root in {os.path.abspath(corpus_dir), os.path.realpath(corpus_dir)}:
        reason = reason.replace(root.rstrip(os.sep) + os.sep, "")
    if reason.startswith(file):
        reason = reason[len(file) :].lstrip(":").strip()
    return reason


def _rounded(x, digits: int):
    return None if x is None else round(float(x), digits)


def clip_entry(row: dict, part: str, dataset: str, corpus_dir: str) -> dict:
    """The report's entry of one manifest row (see the module docstring)."""
    cid = corpus.clip_id(row["file"])
    paths = preprocess.clip_paths(dataset, cid)
    rep = _read_json(paths["reports"]) or {}
    kept = os.path.isfile(paths["clips"]) and rep.get("status") == "ok"
    entry = {
        "file": row["file"],
        "clip_id": cid,
        "speaker_id": row["speaker_id"],
        "part": part,
        "audio": row.get("audio"),
        "record_audio": rep.get("audio") if kept else None,
        "status": "kept" if kept else ("skipped" if rep else "not processed"),
        "kind": None,
        "reason": None,
        "video_frames": rep.get("video_frames"),
        "record_frames": rep.get("record_frames") if kept else None,
        "fps": _rounded(rep.get("fps") or row.get("fps") or None, 3),
        "size": "x".join(map(str, rep["frame_size"])) if rep.get("frame_size") else row.get("size"),
        "seconds": None,
        "lost_fraction": None,
        "face_px": None,
        "fit_rmse_px_mean": None,
        "fit_rmse_px_max": None,
    }
    if kept:
        fps = float(rep["fps"])
        entry["seconds"] = round(entry["record_frames"] / fps, 2)
        entry["lost_fraction"] = _rounded((rep.get("tracking") or {}).get("lost_fraction"), 4)
        entry["face_px"] = _rounded((rep.get("screen") or {}).get("face_size_px_median"), 1)
        fit = rep.get("fit") or {}
        entry["fit_rmse_px_mean"] = _rounded(fit.get("landmark_rmse_px_mean"), 3)
        entry["fit_rmse_px_max"] = _rounded(fit.get("landmark_rmse_px_max"), 3)
        if entry["record_audio"] is None:  # reports made before the field existed had speech
            entry["record_audio"] = preprocess.AUDIO_SPEECH
    else:
        entry["seconds"] = _rounded(row.get("seconds") or None, 2)
        if rep:
            reason = str(rep.get("reason") or "?")
            entry["reason"] = short_reason(reason, row["file"], corpus_dir)
            entry["kind"] = rep.get("kind") or preprocess.skip_kind(reason)
            screen = rep.get("screen") or {}
            entry["face_px"] = _rounded(screen.get("face_size_px_median"), 1)
        else:
            entry["reason"] = "not processed (no report in the dataset)"
            entry["kind"] = "not processed"
    return entry


def part_totals(entries: list[dict]) -> dict:
    """Totals of a list of clip entries (one part, or all)."""
    kept = [e for e in entries if e["status"] == "kept"]
    speech = [e for e in kept if e["record_audio"] == preprocess.AUDIO_SPEECH]
    kinds: dict[str, int] = {}
    for e in entries:
        if e["status"] != "kept":
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    rmse = sorted(e["fit_rmse_px_mean"] for e in kept if e["fit_rmse_px_mean"] is not None)
    return {
        "clips": len(entries),
        "kept": len(kept),
        "kept_speech": len(speech),
        "kept_silent": len(kept) - len(speech),
        "skipped": len(entries) - len(kept),
        "kept_seconds": round(sum(e["seconds"] for e in kept), 1),
        "kept_speech_seconds": round(sum(e["seconds"] for e in speech), 1),
        "speakers": len({e["speaker_id"] for e in entries}),
        "kept_speakers": len({e["speaker_id"] for e in kept}),
        "kept_speech_speakers": len({e["speaker_id"] for e in speech}),
        "skip_kinds": dict(sorted(kinds.items())),
        "fit_rmse_px_median": rmse[len(rmse) // 2] if rmse else None,
    }


def build_report(corpus_dir: str, dataset: str, split_path: str) -> dict:
    """The report (module docstring) as a JSON-able dict.

    Raises:
      InputError: a missing manifest, dataset or split file, or a manifest speaker the split
        does not place.
    """
    rows = corpus.read_manifest(corpus_dir)
    corpus_dir = os.path.dirname(corpus_dir) if corpus_dir.endswith(".tsv") else corpus_dir
    if not os.path.isdir(dataset):
        raise InputError(f"dataset not found: {dataset} (run experiments.preprocess first)")
    split = _read_json(split_path)
    if split is None or not isinstance(split.get("speakers"), dict):
        raise InputError(f"{split_path} is not a split file (experiments.split_corpus)")
    part_of = corpus.split_of_speakers(split["speakers"])
    unplaced = sorted({r["speaker_id"] for r in rows} - set(part_of))
    if unplaced:
        raise InputError(f"speakers not in the split {split_path}: {unplaced[:5]}")
    entries = [clip_entry(r, part_of[r["speaker_id"]], dataset, corpus_dir) for r in rows]
    entries.sort(key=lambda e: (PARTS.index(e["part"]) if e["part"] in PARTS else 9, e["file"]))
    reasons: dict[str, list[str]] = {}
    for e in entries:
        if e["status"] != "kept":
            reasons.setdefault(e["kind"], []).append(e["clip_id"])
    return {
        "format": FORMAT,
        "totals": {
            **{p: part_totals([e for e in entries if e["part"] == p]) for p in PARTS},
            "all": part_totals(entries),
        },
        "skipped_by_kind": dict(sorted(reasons.items())),
        "clips": entries,
    }


def _cell(x, fmt: str = "{}") -> str:
    if x is None:
        return "-"
    return fmt.format(x).replace("|", "\\|")


def markdown(report: dict, command: str = "") -> str:
    """The report as markdown: totals per part, skip categories, one row per clip."""
    out = ["# The real corpus, preprocessed", ""]
    if command:
        out += ["Made by", "", "```bash", command, "```", ""]
    out += [
        "A clip is *kept* when the preprocessor wrote its record (pose and expression per "
        "frame; with speech: the MFCC rows too), *skipped* with the preprocessor's reason "
        "otherwise. Seconds of kept clips are those of the record (clips with speech: the "
        "frames the audio covers). RMSE: the fit's landmark reprojection error in crop "
        "pixels (224 px crops), mean over the frames where the face was tracked.",
        "",
        "| part | clips | kept | with speech | without speech | kept s | kept speech s "
        "| speakers | kept speakers | skipped | median RMSE px |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for part, t in report["totals"].items():
        rmse = _cell(t["fit_rmse_px_median"], "{:.2f}")
        out.append(
            f"| {part} | {t['clips']} | {t['kept']} | {t['kept_speech']} | {t['kept_silent']} "
            f"| {t['kept_seconds']:.1f} | {t['kept_speech_seconds']:.1f} | {t['speakers']} "
            f"| {t['kept_speakers']} | {t['skipped']} | {rmse} |"
        )
    out += ["", "## Skipped, by reason", "", "| reason | clips | which |", "|---|---|---|"]
    for kind, ids in report["skipped_by_kind"].items():
        out.append(f"| {kind} | {len(ids)} | {', '.join(ids)} |")
    out += [
        "",
        "## Every clip",
        "",
        "| file | speaker | part | audio | status | frames | fps | size | s | lost "
        "| face px | RMSE px (mean / max) | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report["clips"]:
        audio = e["record_audio"] or e["audio"]
        rmse = (
            f"{e['fit_rmse_px_mean']:.2f} / {e['fit_rmse_px_max']:.2f}"
            if e["fit_rmse_px_mean"] is not None
            else "-"
        )
        status = e["status"] if e["status"] == "kept" else f"{e['status']}: {e['kind']}"
        out.append(
            f"| {_cell(e['file'])} | {_cell(e['speaker_id'])} | {e['part']} | {_cell(audio)} "
            f"| {_cell(status)} | {_cell(e['video_frames'])} | {_cell(e['fps'], '{:g}')} "
            f"| {_cell(e['size'])} | {_cell(e['seconds'], '{:.2f}')} "
            f"| {_cell(e['lost_fraction'], '{:.1%}')} | {_cell(e['face_px'], '{:.0f}')} "
            f"| {rmse} | {_cell(e['reason'])} |"
        )
    return "\n".join(out) + "\n"


def write_report(report: dict, out_dir: str, command: str = "") -> tuple[str, str]:
    """Writes `<out_dir>/report.json` and `report.md` atomically; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md")
    text_json = json.dumps(report, indent=1, allow_nan=False) + "\n"
    text_md = markdown(report, command)
    records.atomic_write(paths[0], lambda f: f.write(text_json), mode="x")
    records.atomic_write(paths[1], lambda f: f.write(text_md), mode="x")
    return paths


def main(argv):
    del argv
    report = build_report(_CORPUS.value, _DATASET.value, _SPLIT.value)
    command = (
        f"python -m experiments.corpus_report --corpus={_CORPUS.value} "
        f"--dataset={_DATASET.value} --split={_SPLIT.value} --out_dir={_OUT_DIR.value}"
    )
    paths = write_report(report, _OUT_DIR.value, command)
    for part, t in report["totals"].items():
        print(
            f"{part}: {t['kept']} of {t['clips']} clips kept ({t['kept_speech']} with speech, "
            f"{t['kept_seconds']:.0f} s, {t['kept_speakers']} of {t['speakers']} speakers); "
            f"skipped: {t['skip_kinds']}"
        )
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    cli.run(main)
