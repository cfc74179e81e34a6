"""Evaluates trained head-pose workdirs on held-out clips, with baselines, in one table.

  python -m experiments.eval_pose --workdir=/tmp/pose
  python -m experiments.eval_pose --workdir=/tmp/pose --workdir=/tmp/lsp --out=/tmp/table

One paper-000 workdir (and no --out): as before, writes <workdir>/eval/metrics.md,
metrics.json and pose_curves.png, and in addition the comparison table pose_table.md /
pose_table.json there. Several workdirs (paper 000 and/or peers, trained on the same data):
the one table for all of them goes to --out (default: the first workdir's eval/).
Metrics: see talkingjax/evaluation/pose_table.py.
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


def main(argv):
    del argv
    workdirs = _WORKDIR.value
    if len(workdirs) == 1 and _OUT.value is None:
        config = checkpoint.load_workdir_config(workdirs[0])
        if config.get("trainer", "head_motion") == "head_motion":
            results = head_motion_eval.evaluate_workdir(workdirs[0], _STEP.value)
            print(head_motion_eval.markdown_table(results), end="")
    table = pose_table.evaluate_workdirs(workdirs, _OUT.value, _STEP.value)
    print(pose_table.markdown_table(table), end="")


if __name__ == "__main__":
    cli.run(main)
