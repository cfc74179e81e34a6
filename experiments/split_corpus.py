"""Draws the speaker-disjoint split of the real corpus once, and writes it for committing.

  python -m experiments.split_corpus --manifest=../shared/data/real/corpus/manifest.tsv \
      --out=experiments/corpus/split.json

The split (`talkingjax.data.corpus.speaker_split`, seed 0) is fixed before any model is trained
on the corpus: `test` speakers are held out from training and from every choice of setting,
`val` speakers (part of the training speakers' pool) are where settings are chosen, `train`
speakers train the models. The file lists speakers, and the clips of each part with their
preprocessed clip ids, so it can be read without the corpus.
"""

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import corpus, records
from talkingjax.errors import InputError

_MANIFEST = flags.DEFINE_string("manifest", None, "The corpus manifest.tsv.", required=True)
_OUT = flags.DEFINE_string("out", "experiments/corpus/split.json", "Split file to write.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the draw.")
_FORCE = flags.DEFINE_bool("force", False, "Overwrite an existing split file.")


def make_split(manifest: str, seed: int = 0) -> dict:
    """The split record: parameters, speakers and clips per part."""
    rows = corpus.read_manifest(manifest)
    split = corpus.speaker_split(rows, seed=seed)
    part_of = corpus.split_of_speakers(split)
    clips = {part: [] for part in split}
    for r in rows:
        clips[part_of[r["speaker_id"]]].append(
            {
                "file": r["file"],
                "clip_id": corpus.clip_id(r["file"]),
                "speaker_id": r["speaker_id"],
                "audio": r["audio"],
                "seconds": float(r["seconds"]),
            }
        )
    groups = corpus.speaker_groups(rows)
    return {
        "seed": seed,
        "rule": corpus.speaker_split.__doc__.split("\n\n")[1].strip(),
        "counts": {
            part: {
                "speakers": len(split[part]),
                "clips": len(clips[part]),
                "speech_clips": sum(c["audio"] == "speech" for c in clips[part]),
                "seconds": round(sum(c["seconds"] for c in clips[part]), 2),
                "same_speaker_groups": sorted(s for s in split[part] if len(groups[s]) > 1),
            }
            for part in ("train", "val", "test")
        },
        "speakers": split,
        "clips": clips,
    }


def main(argv):
    del argv
    if os.path.exists(_OUT.value) and not _FORCE.value:
        raise InputError(f"{_OUT.value} exists: the split is fixed (use --force to redraw)")
    split = make_split(_MANIFEST.value, _SEED.value)
    text = json.dumps(split, indent=1) + "\n"
    records.atomic_write(_OUT.value, lambda f: f.write(text), mode="x")
    for part, c in split["counts"].items():
        print(
            f"{part}: {c['speakers']} speakers, {c['clips']} clips ({c['speech_clips']} with "
            f"speech, {c['seconds']} s), groups {c['same_speaker_groups']}"
        )


if __name__ == "__main__":
    cli.run(main)
