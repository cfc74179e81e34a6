"""Self-reconstruction on held-out speakers: the table of issue 19, item 5.

  python -m experiments.eval_reconstruction --part=val --preprocessed=../runs/corpus \
      --out_dir=DIR [--clips=ID,ID] [--gan_steps=N] [--video_measures=false] \
      [--sync_model=SYNC_WORKDIR]

For each speech clip of the split's part (`experiments/corpus/split.json`; "val" to choose
settings, "test" measured once, never tuned on) that the corpus preprocessing kept
(`--preprocessed`: its reports), `talkingjax.evaluation.reconstruction` personalises the pipeline
on the clip's first part, drives the rest with its own speech and fitted pose, and measures
three rows against the real frames of the rest: (a) the nearest-pose real frame of the first
part, (b) the raw render pasted (no GAN), (c) the pipeline. Writes DIR/reconstruction.md (the
table), DIR/reconstruction.json (every measure of every clip and row, the skipped clips and
why, the protocol), DIR/strip.png (frames of one clip: real | nearest pose | raw render |
pipeline) and DIR/clips/<clip_id>/*.mp4 (each row's video). The protocol and its parameters:
the module docstring of `talkingjax.evaluation.reconstruction`.
"""

import os
import shutil
import sys

from absl import flags

from experiments import cli
from talkingjax import generation, predict
from talkingjax.errors import InputError
from talkingjax.evaluation import reconstruction
from talkingjax.progress import Progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SPLIT = flags.DEFINE_string(
    "split", os.path.join(REPO, "experiments", "corpus", "split.json"), "The speaker split."
)
_PART = flags.DEFINE_enum("part", "val", ["val", "test"], "Held-out part of the split.")
_CORPUS = flags.DEFINE_string(
    "corpus", os.path.join(REPO, "..", "shared", "data", "real", "corpus"), "The clips' root."
)
_PRE = flags.DEFINE_string(
    "preprocessed", None, "experiments.preprocess output of the corpus.", required=True
)
_OUT = flags.DEFINE_string("out_dir", None, "Directory for the table and videos.", required=True)
_CLIPS = flags.DEFINE_list("clips", [], "Only these clip ids of the part (default all).")
_MAX_CLIPS = flags.DEFINE_integer("max_clips", 0, "At most this many clips (0 = all).")
_CACHE = flags.DEFINE_string("cache", generation.DEFAULT_CACHE, "Personalisation cache.")
_POSE_MODEL = flags.DEFINE_string("pose_model", None, "A train_pose workdir.")
_EXPR_MODEL = flags.DEFINE_string("expression_model", None, "A train_expression workdir.")
_GAN_MODEL = flags.DEFINE_string("gan_model", None, "A pretrained train_gan workdir.")
_EXPR_STEPS = flags.DEFINE_integer("expression_steps", 300, "Expression fine-tune steps.")
_GAN_STEPS = flags.DEFINE_integer("gan_steps", None, "GAN fine-tune steps (default: config's).")
_FRACTION = flags.DEFINE_float("first_fraction", 0.5, "Share of a clip that personalises.")
_MIN_FIRST = flags.DEFINE_float("min_first_seconds", 2.0, "Shortest personalisation part.")
_MIN_REST = flags.DEFINE_float("min_rest_seconds", 1.0, "Shortest driven part.")
_MAX_REST = flags.DEFINE_float(
    "max_rest_seconds", 10.0, "Longest driven part (0 = the whole rest of the clip)."
)
_DILATION = flags.DEFINE_float("region_dilation", 0.1, "Face-region dilation (face sizes).")
_VIDEO = flags.DEFINE_bool("video_measures", True, "Also fit every row (evaluation.video).")
_SYNC_MODEL = flags.DEFINE_string(
    "sync_model", None, "A trained AV-sync workdir (default: the shipped sync model, if any)."
)
_STRIP = flags.DEFINE_string("strip_clip", None, "Clip of the frame strip (default: the first).")


def _sync_scorer():
    """The AV-sync scorer of --sync_model, else the shipped one, else None (not measured)."""
    if _SYNC_MODEL.value:
        return predict.SyncScorer.from_workdir(_SYNC_MODEL.value)
    try:
        return predict.SyncScorer.default()
    except InputError:  # no shipped sync model: AV offset and confidence are left out
        return None


def _clips() -> list[dict]:
    clips = reconstruction.read_part(_SPLIT.value, _PART.value)
    if _CLIPS.value:
        known = {c["clip_id"]: c for c in clips}
        missing = [c for c in _CLIPS.value if c not in known]
        if missing:
            raise InputError(f"--clips: {missing[0]} is not a clip of the {_PART.value!r} part")
        clips = [known[c] for c in _CLIPS.value]
    if _MAX_CLIPS.value < 0:
        raise InputError(f"--max_clips must be >= 0, got {_MAX_CLIPS.value}")
    return clips[: _MAX_CLIPS.value] if _MAX_CLIPS.value else clips


def main(argv):
    del argv
    protocol = reconstruction.Protocol(
        first_fraction=_FRACTION.value, min_first_seconds=_MIN_FIRST.value,
        min_rest_seconds=_MIN_REST.value, max_rest_seconds=_MAX_REST.value,
        expression_steps=_EXPR_STEPS.value,
        gan_steps=_GAN_STEPS.value, region_dilation=_DILATION.value,
        video_measures=_VIDEO.value,
    )  # fmt: skip
    protocol.check()
    clips = _clips()
    for name, path in (("--corpus", _CORPUS.value), ("--preprocessed", _PRE.value)):
        if not os.path.isdir(path):
            raise InputError(f"{name}: no directory {path}")
    if not os.path.isdir(os.path.join(_PRE.value, "reports")):
        raise InputError(f"--preprocessed: {_PRE.value} has no reports/ (experiments.preprocess)")
    parent = os.path.dirname(os.path.abspath(_OUT.value))
    if not os.path.isdir(parent) or os.path.isfile(_OUT.value):
        raise InputError(f"--out_dir: cannot make the directory {_OUT.value}")
    models = generation.Models.with_defaults(_POSE_MODEL.value, _EXPR_MODEL.value, _GAN_MODEL.value)
    sync_scorer = _sync_scorer()
    made = not os.path.isdir(_OUT.value)
    os.makedirs(_OUT.value, exist_ok=True)
    try:
        report = reconstruction.run(
            clips, _CORPUS.value, _PRE.value, _OUT.value, models, protocol, part=_PART.value,
            cache=_CACHE.value, sync_scorer=sync_scorer, strip_clip=_STRIP.value,
            progress=Progress(), command="python -m experiments.eval_reconstruction "
            + " ".join(sys.argv[1:]),
        )  # fmt: skip
    except InputError:  # no clip measured: leave nothing behind
        if made:
            shutil.rmtree(_OUT.value, ignore_errors=True)
        raise
    print(reconstruction.table_markdown(report))


if __name__ == "__main__":
    cli.run(main)
