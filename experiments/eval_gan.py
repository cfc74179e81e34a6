"""Scores a trained GAN workdir on held-out frames: PSNR, SSIM, L1, CPBD for the refined frames
and the raw render, attention statistics, and a render | refined | real strip PNG.

  python -m experiments.eval_gan --workdir=DIR [--max_frames=N] [--out=DIR/eval]
      [--ensemble_shift=4]   # also score the self-ensemble (mirror + shifts by 4 px, 18 passes)
"""

import json

from absl import flags

from experiments import cli
from talkingjax.evaluation import gan as gan_eval

_WORKDIR = flags.DEFINE_string("workdir", None, "A train_gan workdir.", required=True)
_MAX = flags.DEFINE_integer("max_frames", None, "Frames scored per clip (default: config).")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: <workdir>/eval).")
_ENSEMBLE = flags.DEFINE_integer(
    "ensemble_shift",
    None,
    "Also score the self-ensemble: 0 = mirror, s > 0 = mirror and shifts by s px; -1 = off "
    "(default: config eval.ensemble_shift).",
)


def main(argv):
    del argv
    results = gan_eval.evaluate_workdir(_WORKDIR.value, _MAX.value, _OUT.value, _ENSEMBLE.value)
    print(json.dumps({"mean": results["mean"], "files": results["files"]}, indent=1))


if __name__ == "__main__":
    cli.run(main)
