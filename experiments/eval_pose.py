"""Evaluates a trained head motion workdir on held-out clips, with baselines.

  python -m experiments.eval_pose --workdir=/tmp/pose

Writes <workdir>/eval/metrics.md, metrics.json and pose_curves.png.
"""

from absl import flags

from experiments import cli
from talkingjax import evaluate

_WORKDIR = flags.DEFINE_string("workdir", None, "A train_pose workdir.", required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")


def main(argv):
    del argv
    results = evaluate.evaluate_workdir(_WORKDIR.value, _STEP.value)
    print(evaluate.markdown_table(results), end="")


if __name__ == "__main__":
    cli.run(main)
