"""Evaluates trained head-pose workdirs on held-out clips, with baselines, in one table.

  python -m experiments.eval_pose --workdir=/tmp/pose
  python -m experiments.eval_pose --workdir=/tmp/pose --workdir=/tmp/lsp --out=/tmp/table
  python -m experiments.eval_pose --workdir=/tmp/pose_real ... --part=test   # once, at the end

One command, one protocol and the same code for every row (talkingjax/evaluation/pose_table.py:
ours, audio only, replay of the reference, static poses, random real, and the peers): it writes
pose_table.md and pose_table.json to --out (default: the first workdir's eval/), and for a
paper-000 first workdir also pose_curves.png. The workdirs must be trained on the same data.
--smooth_sigma=S (repeatable) adds, per workdir, a row of its predicted pose through paper
003's Gaussian filter (`video.reconstruct.smooth_pose`, sigma S frames) at inference.
--part picks the held-out part of a split file ("val" to choose settings; "test" once, with
the chosen settings); default: the first workdir's config.data.eval_part.
"""

from absl import flags

from experiments import cli
from talkingjax.evaluation import head_motion as head_motion_eval
from talkingjax.evaluation import pose_table
from talkingjax.train import checkpoint

_WORKDIR = flags.DEFINE_multi_string(
    "workdir", None, "A train_pose workdir (repeat for several methods).", required=True
)
_OUT = flags.DEFINE_string("out", None, "Directory of the table (default: first workdir/eval).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_PART = flags.DEFINE_enum(
    "part", None, ["val", "test"], "Held-out part of the split file (default: the config's)."
)
_SMOOTH = flags.DEFINE_multi_float(
    "smooth_sigma", [], "Gaussian sigma (frames) of an extra smoothed row per workdir (repeat)."
)


def main(argv):
    del argv
    workdirs = _WORKDIR.value
    config = checkpoint.load_workdir_config(workdirs[0])
    if len(workdirs) == 1 and config.get("trainer", "head_motion") == "head_motion":
        table = head_motion_eval.evaluate_workdir(
            workdirs[0], _STEP.value, _PART.value, _OUT.value, _SMOOTH.value
        )
    else:
        table = pose_table.evaluate_workdirs(
            workdirs, _OUT.value, _STEP.value, _PART.value, _SMOOTH.value
        )
    print(pose_table.markdown_table(table), end="")


if __name__ == "__main__":
    cli.run(main)
