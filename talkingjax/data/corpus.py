"""The real multi-speaker corpus: its manifest and the speaker-disjoint split.

The corpus (`../shared/data/real/corpus`, never committed) lists one clip per row of
`manifest.tsv`: `file` (relative path, e.g. `speech/x.mp4`), `speaker_id` (one id per person),
`audio` (`speech` / `silent`), `seconds`, `fps`, ... Models are trained on some speakers and
judged on others: the split is drawn once, by speaker (never by clip), with a fixed seed, and
committed (`experiments/corpus/split.json`) before any model is trained on the corpus.

    rows = corpus.read_manifest(path)
    split = corpus.speaker_split(rows, seed=0)   # {"test": [...], "val": [...], "train": [...]}

Clip ids of the preprocessed corpus (`experiments.preprocess --input=<corpus>`) are the clip's
path relative to the corpus with '/' -> '__' and no extension (`clip_id`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

from talkingjax.errors import InputError

REQUIRED_COLUMNS = ("file", "speaker_id", "audio", "seconds")


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a corpus `manifest.tsv` (tab-separated, a header line), as dicts of strings."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.tsv")
    if not os.path.isfile(path):
        raise InputError(f"no corpus manifest at {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    missing = [c for c in REQUIRED_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise InputError(
            f"{path}: needs a header with {REQUIRED_COLUMNS} and rows (missing {missing})"
        )
    return rows


def clip_id(file: str) -> str:
    """The preprocessed clip id of a manifest `file` ('speech/a.mp4' -> 'speech__a')."""
    return os.path.splitext(file)[0].replace("/", "__")


def speaker_groups(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """speaker_id -> the manifest files of that speaker, in manifest order."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r["speaker_id"], []).append(r["file"])
    return groups


def speaker_split(
    rows: list[dict[str, str]],
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
    test_groups: int = 4,
    val_groups: int = 1,
) -> dict[str, list[str]]:
    """A speaker-disjoint split: {"test": ids, "val": ids, "train": ids}, each sorted.

    Speakers with several clips ("groups": same-speaker pairs for retrieval and
    personalisation) and speakers with one clip are drawn separately, so the held-out part has
    `test_groups` groups (and the validation part `val_groups`) whatever the seed:
    - test: `test_groups` multi-clip speakers + round(test_fraction * single-clip speakers);
    - val: `val_groups` of the remaining multi-clip speakers + round(val_fraction * the
      remaining single-clip speakers);
    - train: every other speaker.
    The draw is a permutation from `np.random.default_rng(seed)` of the sorted speaker ids.
    """
    groups = speaker_groups(rows)
    multi = sorted(s for s, f in groups.items() if len(f) > 1)
    single = sorted(s for s, f in groups.items() if len(f) == 1)
    if len(multi) < test_groups + val_groups:
        raise InputError(
            f"{len(multi)} speakers have several clips; the split needs "
            f"{test_groups} held-out + {val_groups} validation groups"
        )
    rng = np.random.default_rng(seed)
    multi = [multi[i] for i in rng.permutation(len(multi))]
    single = [single[i] for i in rng.permutation(len(single))]
    n_test = int(round(test_fraction * len(single)))
    n_val = int(round(val_fraction * (len(single) - n_test)))
    test = multi[:test_groups] + single[:n_test]
    val = multi[test_groups : test_groups + val_groups] + single[n_test : n_test + n_val]
    held = set(test) | set(val)
    train = [s for s in groups if s not in held]
    return {"test": sorted(test), "val": sorted(val), "train": sorted(train)}


def split_of_speakers(split: dict[str, list[str]]) -> dict[str, str]:
    """speaker_id -> "train" / "val" / "test" (a speaker in two parts is an error)."""
    out: dict[str, str] = {}
    for part, speakers in split.items():
        for s in speakers:
            if s in out:
                raise InputError(f"speaker {s!r} is in both {out[s]!r} and {part!r}")
            out[s] = part
    return out


# ------------------------------------------------------------------------------------------
# The committed split file (experiments/corpus/split.json)

PARTS = ("train", "val", "test")


def read_split_part(split_path: str | os.PathLike, part: str) -> list[dict]:
    """The clips of one part ("train", "val", "test") of a committed split file, in its order:
    dicts with at least `clip_id`, and `file`, `speaker_id`, `audio`, `seconds`.

    Raises:
      InputError: a missing or malformed file, or a part it does not have.
    """
    split_path = os.fspath(split_path)
    try:
        with open(split_path) as f:
            parts = json.load(f)["clips"]
    except OSError as err:
        raise InputError(f"cannot read the split {split_path}: {err.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{split_path} is not a split file (no 'clips')") from None
    if not isinstance(parts, dict) or part not in parts:
        have = sorted(parts) if isinstance(parts, dict) else []
        raise InputError(f"the split {split_path} has no part {part!r}; it has {have}")
    clips = parts[part]
    if not isinstance(clips, list) or not all(
        isinstance(c, dict) and "clip_id" in c and "speaker_id" in c for c in clips
    ):
        raise InputError(f"the split {split_path}: part {part!r} is not a list of clips")
    return clips


def apply_split(clips: list, split_path: str | os.PathLike) -> list:
    """Records (`talkingjax.data.records.Clip`) of the preprocessed corpus placed by the split.

    Each clip the split lists gets `split` = its part and `speaker_id` = `video_id` = the
    split's speaker id (the records' own speaker id is the corpus folder, speech/silent; one
    speaker's clips are one source of windows for triplet sampling, paper 000 Eq. 1). Clips the
    split does not list are left out.

    Raises:
      InputError: the split file is unusable, or none of `clips` is in it.
    """
    where = {}
    for part in PARTS:
        for c in read_split_part(split_path, part):
            where[c["clip_id"]] = (part, str(c["speaker_id"]))
    out = [
        dataclasses.replace(c, split=where[c.clip_id][0], speaker_id=where[c.clip_id][1],
                            video_id=where[c.clip_id][1])
        for c in clips
        if c.clip_id in where
    ]  # fmt: skip
    if not out:
        raise InputError(f"none of the {len(clips)} records is a clip of the split {split_path}")
    return out


def preprocess_status(preprocessed: str, clip_id: str) -> str | None:
    """None if the corpus preprocessing kept the clip, else its reason (`reports/<id>.json`)."""
    path = os.path.join(preprocessed, "reports", f"{clip_id}.json")
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return f"not preprocessed (no readable {path})"
    if report.get("status") not in ("ok", "done"):
        return f"skipped by preprocessing: {report.get('reason') or report.get('status')}"
    return None


def kept_speakers(split_path: str | os.PathLike, part: str, preprocessed: str) -> dict[str, str]:
    """{clip id: speaker id} of one part of a split file, for the clips the preprocessing of
    `preprocessed` kept (e.g. the training speakers' clips a GAN pretrains on).

    Raises:
      InputError: a bad split file or part, or no clip of the part kept.
    """
    speakers = {
        c["clip_id"]: c["speaker_id"]
        for c in read_split_part(split_path, part)
        if preprocess_status(preprocessed, c["clip_id"]) is None
    }
    if not speakers:
        raise InputError(
            f"no clip of part {part!r} of {split_path} is preprocessed in {preprocessed}"
        )
    return speakers
