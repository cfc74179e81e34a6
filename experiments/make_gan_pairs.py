"""Makes (rendered frame, real frame) pairs for the rendering-to-realistic GAN.

  # every frame of preprocessed videos (python -m experiments.preprocess ... --out=DATA):
  python -m experiments.make_gan_pairs --out=PAIRS --size=128 --preprocessed=DATA \
      --clip_ids=yi2020_target_31 --albedo_frames=300
  # the training speakers of the real corpus (its committed speaker split), both albedos:
  python -m experiments.make_gan_pairs --out=PAIRS_D --size=128 --preprocessed=CORPUS \
      --split_file=experiments/corpus/split.json --part=train --max_frames=300
  # still portraits (pretraining on many identities, as the paper's LFW):
  python -m experiments.make_gan_pairs --out=PAIRS --size=128 --faces=DIR
  # the project's own synthetic pairs:
  python -m experiments.make_gan_pairs --out=PAIRS --size=64 --synthetic=16

Several sources can go into one directory (runs add clips; a clip made again is replaced).
"""

import dataclasses
import json
import os
import time

from absl import flags

from experiments import cli
from talkingjax.data import corpus, gan_pairs
from talkingjax.errors import InputError

_OUT = flags.DEFINE_string("out", None, "Pairs directory to write (or add to).", required=True)
_SIZE = flags.DEFINE_integer("size", 128, "Side of the frames in pixels.")
_PRE = flags.DEFINE_string("preprocessed", None, "A preprocess output directory.")
_IDS = flags.DEFINE_list("clip_ids", [], "Clips of --preprocessed (default: all fitted).")
_SPLIT_FILE = flags.DEFINE_string(
    "split_file", None, "A corpus split file: take the --part clips that preprocessing kept."
)
_PART = flags.DEFINE_string("part", "train", "Part of --split_file.")
_ALBEDO = flags.DEFINE_integer(
    "albedo_frames", None, "Read the detailed albedo from the first N frames only."
)
_ALBEDO_KIND = flags.DEFINE_enum(
    "albedo", "detailed", gan_pairs.ALBEDOS,
    "Colour video faces with the detailed albedo (pretraining) or the model's low-frequency "
    "albedo (the paper's fine-tuning on the target).",
)  # fmt: skip
_MAX = flags.DEFINE_integer("max_frames", None, "Only the first N frames of each video.")
_FACES = flags.DEFINE_string("faces", None, "A directory of portrait photos.")
_SYNTH = flags.DEFINE_integer("synthetic", 0, "Number of synthetic identities.")
_FRAMES = flags.DEFINE_integer("synthetic_frames", 100, "Frames per synthetic identity.")
_SPLIT = flags.DEFINE_string("split", "train", "Split of the clips made by this run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic pairs.")


def _preprocessed_ids(root: str) -> list[str]:
    reports = os.path.join(root, "reports")
    if not os.path.isdir(reports):
        raise InputError(f"{root} is not a preprocess output directory (no reports/)")
    ids = sorted(f[:-5] for f in os.listdir(reports) if f.endswith(".json"))
    if not ids:
        raise InputError(f"{root} has no preprocessed clips")
    return ids


def main(argv):
    del argv
    if _SIZE.value < 16:
        raise InputError(f"--size must be at least 16, got {_SIZE.value}")
    if not (_PRE.value or _FACES.value or _SYNTH.value):
        raise InputError("nothing to do: give --preprocessed, --faces and/or --synthetic")
    clips, t0 = [], time.perf_counter()
    if _SPLIT_FILE.value and (_IDS.value or not _PRE.value):
        raise InputError("--split_file selects clips of --preprocessed; do not give --clip_ids")
    if _PRE.value:
        if _SPLIT_FILE.value:
            speakers = corpus.kept_speakers(_SPLIT_FILE.value, _PART.value, _PRE.value)
        else:
            speakers = dict.fromkeys(_IDS.value or _preprocessed_ids(_PRE.value))
        for clip_id, speaker in speakers.items():
            clip = gan_pairs.video_pairs(
                _PRE.value, clip_id, _SIZE.value, albedo_frames=_ALBEDO.value,
                max_frames=_MAX.value, split=_SPLIT.value, albedo=_ALBEDO_KIND.value,
            )  # fmt: skip
            clips.append(dataclasses.replace(clip, identity=speaker) if speaker else clip)
    if _FACES.value:
        clips += gan_pairs.portrait_pairs(_FACES.value, _SIZE.value, split=_SPLIT.value)
    if _SYNTH.value:
        clips += gan_pairs.synthetic_pairs(
            _SYNTH.value, _FRAMES.value, _SIZE.value, seed=_SEED.value, split=_SPLIT.value
        )
    # Everything is made before anything is written: a failure leaves the directory as it was.
    gan_pairs.save(_OUT.value, clips, _SIZE.value)
    summary = {
        "out": _OUT.value,
        "clips": len(clips),
        "frames": sum(c.num_frames for c in clips),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    cli.run(main)
