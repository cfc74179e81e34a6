"""Preprocesses talking-face videos into a dataset: 3DMM coefficients, head-motion records.

  python -m experiments.preprocess --input=videos/ --out=dataset/ [--workers=2]
  python -m experiments.preprocess --input=lrw/lipread_mp4 --out=lrw_data --layout=lrw
  python -m experiments.preprocess --input=coeffs/ --out=dataset/ --layout=coeff --fps=25

Layouts (`talkingjax.data.preprocess` says more):
  folder  one video, or every video under a directory (recursively); clip ids are the paths
          relative to it ('/' -> '__'), speakers the sub-directories.
  lrw     lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4; the 1.16 s clips get
          coefficients and records, listed under `short_clips` (not head-motion training data).
  coeff   257-d coefficient .mat + audio pairs made by other tools (needs --fps).

Per clip the dataset gets coeffs/<id>.mat, reports/<id>.json, clips/<id>.npz (written last:
it marks the clip finished) and, with --save_crops, crops/<id>.npz. Running the same command
again resumes: finished clips are skipped (and clips that failed are retried, unless
--noretry_failed); --recheck also screens finished clips made before the current screening
(face too small, several faces, a cut) without refitting them. Videos without usable audio
(no audio track, silent audio) become records without speech (pose and expression only,
listed under the manifest's silent_clips) unless --nosilent_clips. Clips that fail (no face,
too short, a cut, ...) are listed with the reason and its category in <out>/report.json;
the run fails (one `error:` line, exit status 2) only if the input is unusable or not a
single clip could be processed.
"""

import sys

from absl import flags

from experiments import cli
from talkingjax.data import preprocess
from talkingjax.errors import InputError

_INPUT = flags.DEFINE_string(
    "input", None, "A video, or a directory (see --layout).", required=True
)
_OUT = flags.DEFINE_string("out", None, "Dataset directory to write.", required=True)
_LAYOUT = flags.DEFINE_enum("layout", "folder", list(preprocess.LAYOUTS), "Input layout.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Clips processed in parallel (processes).")
_FACE_MODEL = flags.DEFINE_string(
    "face_model", "default", "'default' (the shipped model) or a model .npz."
)
_CROP_SIZE = flags.DEFINE_integer("crop_size", 224, "Side of the face crops fitted, pixels.")
_SAVE_CROPS = flags.DEFINE_bool("save_crops", False, "Also write crops/<id>.npz.")
_FPS = flags.DEFINE_float("fps", None, "Frame rate of the .mat files (coeff layout only).")
_POSE_SIGMA = flags.DEFINE_float(
    "pose_sigma", None, "Gaussian smoothing of the record pose, in frames (default: none)."
)
_SPLIT = flags.DEFINE_string("split", "train", "Split of all clips (folder and coeff layouts).")
_SPLITS = flags.DEFINE_list("splits", [], "LRW splits to process (default all).")
_RETRY_FAILED = flags.DEFINE_bool("retry_failed", True, "Rerun clips that failed before.")
_SILENT_CLIPS = flags.DEFINE_bool(
    "silent_clips",
    True,
    "Fit videos without usable audio (no track, silent) as records without speech; "
    "--nosilent_clips skips them.",
)
_RECHECK = flags.DEFINE_bool(
    "recheck",
    False,
    "Screen finished clips made before the current screening (no refit); rejected ones lose "
    "their record.",
)


def main(argv):
    del argv
    try:
        run = preprocess.preprocess(
            _INPUT.value,
            _OUT.value,
            layout=_LAYOUT.value,
            model=_FACE_MODEL.value,
            workers=_WORKERS.value,
            crop_size=_CROP_SIZE.value,
            save_crops=_SAVE_CROPS.value,
            pose_sigma=_POSE_SIGMA.value,
            split=_SPLIT.value,
            splits=_SPLITS.value or None,
            fps=_FPS.value,
            retry_failed=_RETRY_FAILED.value,
            silent_clips=_SILENT_CLIPS.value,
            recheck=_RECHECK.value,
        )
    except KeyboardInterrupt:
        print(
            "interrupted: finished clips are kept (manifest.json and report.json are updated); "
            "run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    t = run.totals
    if t["clips"] and t["ok"] + t["done"] == 0:
        first = run.failures()[0] if run.failures() else None
        example = f"; {first.clip_id}: {first.reason}" if first else ""
        raise InputError(
            f"none of the {t['clips']} clip(s) could be processed (see {run.report_path})" + example
        )
    print(run.summary())


if __name__ == "__main__":
    cli.run(main)
