"""Checks of the AV-sync instrument itself (issue 19, item 3), on clips with a known answer.

For every clip (the val speakers' speech clips for choosing settings, the held-out test
speakers' once at the end), the trained scorer (`talkingjax.predict.SyncScorer`) measures:

- in sync: the real clip; expected offset 0 (+-1, `TOLERANCE`);
- shifted: the same clip with its audio delayed by k frames (`data.sync.shifted_clip`, k in
  `SHIFTS`; k < 0 advances it); expected offset k (+-1). The clip's own offset o may not be
  0 (web clips are not always in sync), so the offset relative to it, o_k - o = k (+-1),
  is reported too;
- still: the clip's first mouth repeated for its whole length with the real audio
  (`data.sync.still_clip`); expected "no confidence": a confidence below the threshold
  `no_confidence`;
- other speech: the clip's video with the next clip's speech (`data.sync.other_audio_clip`):
  a moving face whose lips do not belong to the audio; expected "no confidence" too.

The threshold is chosen on val (`choose_threshold`): the geometric mean of the largest
"no sync" confidence (still frames, other speech) and the smallest in-sync confidence, the
point with the widest multiplicative margin to both when they separate (when they overlap,
of the two medians); the test part is judged with the val threshold.

    result = run_checks(scorer, clips)                        # chooses the threshold
    result = run_checks(scorer, test_clips, threshold=t)      # judged with a given one
    print(markdown(result))
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from talkingjax.data import sync as sync_data
from talkingjax.errors import InputError
from talkingjax.predict.sync import PROTOCOLS, SyncScorer, write_instrument
from talkingjax.train import checkpoint, storage

SHIFTS = (-6, -3, 3, 6)
TOLERANCE = 1  # frames


def check_clip(
    scorer: SyncScorer,
    clip: sync_data.SyncClip,
    shifts: Sequence[int] = SHIFTS,
    other: sync_data.SyncClip | None = None,
) -> dict:
    """The checks of one clip: {"clip_id", "seconds", "windows", "offset", "confidence",
    "shifted": {k: {"offset", "confidence"}}, "still": {"offset", "confidence"}} and, given
    another clip, "other_audio": {"offset", "confidence"} of this video with its speech."""
    real = scorer.score_clip(clip)
    row = {
        "clip_id": clip.clip_id,
        "seconds": round(clip.num_frames / sync_data.SYNC_FPS, 2),
        "windows": real.num_windows,
        "offset": real.offset,
        "confidence": real.confidence,
        "shifted": {},
    }
    for k in shifts:
        s = scorer.score_clip(sync_data.shifted_clip(clip, int(k)))
        row["shifted"][str(int(k))] = {"offset": s.offset, "confidence": s.confidence}
    still = scorer.score_clip(sync_data.still_clip(clip))
    row["still"] = {"offset": still.offset, "confidence": still.confidence}
    if other is not None:
        s = scorer.score_clip(sync_data.other_audio_clip(clip, other))
        row["other_audio"] = {"offset": s.offset, "confidence": s.confidence}
    return row


def _negatives(rows: Sequence[dict]) -> np.ndarray:
    """Confidences that should read "none": still frames and other clips' speech."""
    out = [r["still"]["confidence"] for r in rows]
    out += [r["other_audio"]["confidence"] for r in rows if "other_audio" in r]
    return np.array(out, np.float64)


def choose_threshold(rows: Sequence[dict]) -> dict:
    """The "no confidence" threshold from checked clips (val): see the module docstring.

    Returns:
      {"no_confidence": threshold, "rule": ..., "no_sync_max", "in_sync_min", "separated"};
      "no sync" are the still frames and the clips with another clip's speech.
    """
    if not len(rows):
        raise InputError("no checked clips to choose a threshold on")
    negative = _negatives(rows)
    real = np.array([r["confidence"] for r in rows], np.float64)
    lo, hi = float(negative.max()), float(real.min())
    separated = lo < hi
    if separated:
        a, b, rule = lo, hi, "sqrt(max no-sync confidence x min in-sync confidence) on val"
    else:
        a, b = float(np.median(negative)), float(np.median(real))
        rule = "sqrt(median no-sync x median in-sync confidence) on val (the groups overlap)"
    threshold = float(np.sqrt(max(a, 1e-6) * max(b, 1e-6)))
    return {
        "no_confidence": threshold,
        "rule": rule,
        "no_sync_max": lo,
        "in_sync_min": hi,
        "separated": bool(separated),
    }


def _within(a: int, b: int) -> bool:
    return abs(int(a) - int(b)) <= TOLERANCE


def summarise(rows: Sequence[dict], threshold: float) -> dict:
    """Pass counts of the three checks over the clips (and the confidences)."""
    n = len(rows)
    shifted = [(r, int(k), s) for r in rows for k, s in r["shifted"].items()]
    in_sync = sum(_within(r["offset"], 0) for r in rows)
    exact = sum(_within(s["offset"], k) for _, k, s in shifted)
    relative = sum(_within(s["offset"], r["offset"] + k) for r, k, s in shifted)
    still = sum(r["still"]["confidence"] < threshold for r in rows)
    others = [r["other_audio"]["confidence"] for r in rows if "other_audio" in r]
    confident = sum(r["confidence"] >= threshold for r in rows)
    conf = np.array([r["confidence"] for r in rows], np.float64)
    still_conf = np.array([r["still"]["confidence"] for r in rows], np.float64)
    return {
        "clips": n,
        "in_sync_within_1": in_sync,
        "in_sync_offsets": [int(r["offset"]) for r in rows],
        "shifted_cases": len(shifted),
        "shifted_within_1": exact,
        "shifted_within_1_of_own_offset": relative,
        "still_below_threshold": still,
        "other_audio_cases": len(others),
        "other_audio_below_threshold": int(sum(c < threshold for c in others)),
        "other_audio_confidence_max": float(max(others)) if others else float("nan"),
        "in_sync_above_threshold": confident,
        "no_confidence": float(threshold),
        "confidence_median": float(np.median(conf)) if n else float("nan"),
        "confidence_min": float(conf.min()) if n else float("nan"),
        "still_confidence_median": float(np.median(still_conf)) if n else float("nan"),
        "still_confidence_max": float(still_conf.max()) if n else float("nan"),
    }


def run_checks(
    scorer: SyncScorer,
    clips: Sequence[sync_data.SyncClip],
    shifts: Sequence[int] = SHIFTS,
    threshold: float | None = None,
) -> dict:
    """The checks on every clip; the threshold is chosen on these clips unless given.

    Returns:
      {"rows": [check_clip rows], "threshold": {...choose_threshold, or given}, "summary":
      summarise(...), "seconds": scoring time}.
    """
    if not clips:
        raise InputError("no clips to check the instrument on")
    t0 = time.perf_counter()
    n = len(clips)
    rows = [
        check_clip(scorer, c, shifts, clips[(i + 1) % n] if n > 1 else None)
        for i, c in enumerate(clips)
    ]
    if threshold is None:
        chosen = choose_threshold(rows)
    else:
        chosen = {"no_confidence": float(threshold), "rule": "given (chosen on val)"}
    return {
        "rows": rows,
        "threshold": chosen,
        "summary": summarise(rows, chosen["no_confidence"]),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown(result: dict, title: str = "AV-sync instrument checks") -> str:
    """The per-clip table and the pass counts, as markdown."""
    rows, s = result["rows"], result["summary"]
    shifts = list(rows[0]["shifted"]) if rows else []
    t = s["no_confidence"]
    head = ["clip", "s", "offset", "conf"] + [f"offset @{k}" for k in shifts] + ["still conf"]
    head += ["other speech conf"]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        cells = [r["clip_id"], secs, f"{r['offset']:+d}", f"{r['confidence']:.3f}"]
        cells += [f"{r['shifted'][k]['offset']:+d}" for k in shifts]
        cells.append(f"{r['still']['confidence']:.3f}")
        other = r.get("other_audio")
        cells.append("" if other is None else f"{other['confidence']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    n, m = s["clips"], s["shifted_cases"]
    lines += [
        "",
        f"- in sync, offset within +-{TOLERANCE}: **{s['in_sync_within_1']}/{n}** "
        f"(offsets {s['in_sync_offsets']}); median confidence {s['confidence_median']:.3f}",
        f"- audio shifted by k in {shifts}: offset = k +-{TOLERANCE} in "
        f"**{s['shifted_within_1']}/{m}**; = own offset + k +-{TOLERANCE} in "
        f"{s['shifted_within_1_of_own_offset']}/{m}",
        f"- still frame: confidence below no_confidence = {t:.4f} in "
        f"**{s['still_below_threshold']}/{n}** (median {s['still_confidence_median']:.4f}, "
        f"max {s['still_confidence_max']:.4f}); in-sync clips at or above it: "
        f"{s['in_sync_above_threshold']}/{n}",
    ]
    if s["other_audio_cases"]:
        lines.append(
            f"- another clip's speech: confidence below it in {s['other_audio_below_threshold']}/"
            f"{s['other_audio_cases']} (max {s['other_audio_confidence_max']:.4f})"
        )
    lines += [f"- threshold: {result['threshold']['rule']}", ""]
    return "\n".join(lines)


def _ffmpeg(args: list[str]) -> None:
    proc = subprocess.run(["ffmpeg", "-y", "-v", "error", "-nostdin", *args], capture_output=True)
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[0]
        raise InputError(f"ffmpeg failed: {first}")


def shifted_video(path: str, k: int, fps: float, out: str) -> str:
    """Writes `path` with its audio delayed by k 25-fps frames (k < 0: advanced): `adelay`
    prepends k / 25 s of silence, `atrim` drops the first |k| / 25 s. The video is re-encoded
    at its constant rate `fps` (H.264, crf 12), the frames otherwise unchanged."""
    seconds = abs(k) / sync_data.SYNC_FPS
    if k >= 0:
        audio_filter = f"adelay={seconds * 1000.0:.3f}:all=1"
    else:
        audio_filter = f"atrim=start={seconds:.6f},asetpts=PTS-STARTPTS"
    _ffmpeg(["-i", path, "-map", "0:v:0", "-map", "0:a:0", "-c:v", "libx264", "-crf", "12",
             "-pix_fmt", "yuv420p", "-r", f"{fps:g}", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
             "-af", audio_filter, "-c:a", "aac", "-shortest", out])  # fmt: skip
    return out


def still_video(path: str, fps: float, num_frames: int, out: str) -> str:
    """Writes the first frame of `path` repeated `num_frames` times at `fps`, with its audio."""
    first = out + ".first.png"
    try:
        _ffmpeg(["-i", path, "-frames:v", "1", first])
        _ffmpeg(["-loop", "1", "-framerate", f"{fps:g}", "-i", first, "-i", path,
                 "-map", "0:v:0", "-map", "1:a:0", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                 "-crf", "12", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:a", "aac",
                 "-t", f"{num_frames / fps:.6f}", out])  # fmt: skip
    finally:
        if os.path.exists(first):
            os.remove(first)
    return out


def check_video(scorer: SyncScorer, path: str, shifts: Sequence[int] = SHIFTS) -> dict:
    """The three checks end to end on a video file: the file itself, copies with the audio
    shifted by k frames (ffmpeg), and its first frame repeated with its audio, each scored by
    `SyncScorer.score` (tracking included). A row like `check_clip`'s."""
    from talkingjax.video import tracking

    info = tracking.probe_video(path)
    real = scorer.score(path)
    row = {
        "clip_id": os.path.basename(path),
        "seconds": round(info.num_frames / info.fps, 2),
        "windows": real.num_windows,
        "offset": real.offset,
        "confidence": real.confidence,
        "shifted": {},
    }
    with tempfile.TemporaryDirectory(prefix="sync_check_") as tmp:
        for k in shifts:
            # Shifts are in 25-fps frames, the protocol's unit, whatever the video's rate.
            out = shifted_video(path, int(k), info.fps, os.path.join(tmp, f"{k}.mp4"))
            s = scorer.score(out)
            row["shifted"][str(int(k))] = {"offset": s.offset, "confidence": s.confidence}
        still_path = os.path.join(tmp, "still.mp4")
        still = scorer.score(still_video(path, info.fps, info.num_frames, still_path))
    row["still"] = {"offset": still.offset, "confidence": still.confidence}
    return row


def part_videos(corpus: str, split_path: str, part: str) -> list[str]:
    """Paths of the source videos of a split part's speech clips (`corpus/<file>`), those
    that exist."""
    with open(split_path) as f:
        clips = json.load(f)["clips"].get(part, [])
    paths = [os.path.join(corpus, c["file"]) for c in clips if c.get("audio") == "speech"]
    return [p for p in paths if os.path.isfile(p)]


def run_video_checks(
    scorer: SyncScorer,
    paths: Sequence[str],
    threshold: float,
    shifts: Sequence[int] = SHIFTS,
) -> dict:
    """`check_video` on every file (a file the tracker rejects is listed under "skipped"),
    judged with a given threshold; the same result layout as `run_checks`."""
    t0 = time.perf_counter()
    rows, skipped = [], []
    for p in paths:
        try:
            rows.append(check_video(scorer, p, shifts))
        except InputError as err:
            skipped.append({"video": p, "reason": str(err).splitlines()[0]})
    if not rows:
        raise InputError(f"none of the {len(paths)} videos could be scored")
    return {
        "rows": rows,
        "skipped": skipped,
        "threshold": {"no_confidence": float(threshold), "rule": "given (chosen on val)"},
        "summary": summarise(rows, threshold),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def heldout_clips(config, part: str, root: str | None = None, split: str | None = None):
    """The clips of `part` ("val" / "test") for a training config: the split's speech clips
    in the preprocessed corpus, or held-out synthetic clips when the run trained on those.

    Returns:
      (clips, missing ids).
    """
    root = config.data.root if root is None else root
    if not root:
        offset = {"val": 500, "test": 700}.get(part, 900)
        return [
            sync_data.synthetic_sync_clip(config.seed * 1000 + offset + i, 6.0) for i in range(4)
        ], []
    return sync_data.load_split_clips(root, split or config.data.split, part)


def write_result(out_dir: str, name: str, result: dict, title: str) -> None:
    """`<out_dir>/<name>.json` and `.md`, local or a URI, written by process 0 only (every
    process computed the same result)."""
    if not storage.is_writer():
        return
    storage.write_json(os.path.join(out_dir, f"{name}.json"), result)
    storage.write_text(os.path.join(out_dir, f"{name}.md"), markdown(result, title))


def evaluate_workdir(
    workdir: str,
    part: str = "val",
    step: int | None = None,
    root: str | None = None,
    threshold: float | None = None,
    protocol: str | None = None,
) -> dict:
    """The checks of a `train_sync` workdir's model on `part`; writes
    `<workdir>/eval/sync_<part>[_<step>][_<protocol>].json` and `.md`.

    On "val" without a given threshold, the threshold is chosen there and recorded (with the
    step and the protocol) in `<workdir>/instrument.json`, what `SyncScorer` reads; any other
    part is judged with `threshold`, else the recorded one (`InputError` when there is none).
    `protocol` ("syncnet" / "centred", `SyncScorer`) defaults to the recorded one.
    """
    config = checkpoint.load_workdir_config(workdir)
    scorer = SyncScorer.from_workdir(workdir, step)
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        scorer.protocol = protocol
    if part != "val" and threshold is None:
        threshold = scorer.no_confidence
        if threshold is None:
            raise InputError(f"{workdir} has no threshold chosen on val; check val first")
    clips, missing = heldout_clips(config, part, root)
    result = run_checks(scorer, clips, threshold=threshold)
    result |= {"part": part, "step": step, "protocol": scorer.protocol, "missing_clips": missing}
    name = "_".join(
        ["sync", part]
        + ([str(step)] if step is not None else [])
        + ([protocol] if protocol else [])
    )
    title = f"AV-sync checks, {part} ({len(clips)} clips, {scorer.protocol} protocol)"
    write_result(os.path.join(workdir, "eval"), name, result, title)
    if part == "val" and threshold is None:
        write_instrument(
            workdir,
            {
                **result["threshold"],
                "protocol": scorer.protocol,
                "step": step if step is not None else checkpoint.latest_step(workdir),
                "val_summary": result["summary"],
            },
        )
    return result
