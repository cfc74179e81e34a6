"""Writes the table of training clips of `talkingjax/assets/models/README.md`.

  python -m experiments.list_training_clips --manifest=../shared/data/real/corpus/manifest.tsv

Reads `train_clips.json` of the shipped real-trained workdirs (`pose/`, `expression/`, `gan/`,
written by their trainers) and the corpus manifest (speaker, source, the repository's licence),
and replaces the table between the README's `<!-- training clips -->` markers: one row per clip
any of them trained on, a yes/no column per model.
"""

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import corpus, records
from talkingjax.errors import InputError
from talkingjax.generation.models import DEFAULT_MODELS

_MANIFEST = flags.DEFINE_string("manifest", None, "The corpus manifest.tsv.", required=True)
_README = flags.DEFINE_string(
    "readme", os.path.join(DEFAULT_MODELS, "README.md"), "The README whose table is replaced."
)
PARTS = ("pose", "expression", "gan")
BEGIN, END = "<!-- training clips -->", "<!-- /training clips -->"


def table(manifest_rows: list[dict[str, str]], used: dict[str, list[dict]]) -> str:
    """The markdown table: clips of any part, sorted by clip id."""
    by_id = {corpus.clip_id(r["file"]): r for r in manifest_rows}
    clips: dict[str, dict] = {}
    for part in PARTS:
        for c in used[part]:
            clips.setdefault(c["clip_id"], dict(c))
    head = "| clip_id | speaker_id | seconds | speech | " + " | ".join(PARTS)
    lines = [head + " | source | repo licence |", "|---" * (6 + len(PARTS)) + "|"]
    for cid in sorted(clips):
        row = by_id.get(cid)
        if row is None:
            raise InputError(f"{cid} is not in the manifest")
        marks = [("yes" if any(c["clip_id"] == cid for c in used[p]) else "no") for p in PARTS]
        speech = "yes" if row["audio"] == "speech" else "no"
        cells = [cid, row["speaker_id"], f"{float(row['seconds']):.1f}", speech, *marks]
        lines.append("| " + " | ".join(cells + [row["source"], row["repo_licence"]]) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    used = {}
    for part in PARTS:
        path = os.path.join(DEFAULT_MODELS, part, "train_clips.json")
        try:
            with open(path) as f:
                used[part] = json.load(f)["clips"]
        except (OSError, ValueError, KeyError) as err:
            raise InputError(f"cannot read {path}: {err}") from None
    text = open(_README.value).read()
    if BEGIN not in text or END not in text:
        raise InputError(f"{_README.value} has no {BEGIN} ... {END} markers")
    new = table(corpus.read_manifest(_MANIFEST.value), used)
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    out = f"{head}{BEGIN}\n{new}\n{END}{tail}"
    records.atomic_write(_README.value, lambda f: f.write(out), mode="w")
    print(json.dumps({p: len(used[p]) for p in PARTS} | {"rows": new.count("\n") - 1}))


if __name__ == "__main__":
    cli.run(main)
