"""Trains and evaluates paper 000's head motion model.

  python -m experiments.train_pose --config=experiments/configs/pose.py:tiny --workdir=/tmp/pose

Rerunning the same command resumes from the latest checkpoint in the workdir.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from talkingjax.train import head_motion

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/pose.py", "Config file, optionally with :variant."
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and eval.", required=True
)
_EVAL = flags.DEFINE_bool("eval", True, "Evaluate on the test split after training.")


def main(argv):
    del argv
    if not _EVAL.value:
        head_motion.train(_CONFIG.value, _WORKDIR.value)
        return
    results = head_motion.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    ours = results["methods"]["ours"]
    print(
        f"eval: HS {ours['hs']:.3f}, rotation error {ours['rot_err_deg']:.2f} deg, "
        f"retrieval {100 * results['retrieval_accuracy']:.1f} %  ->  {_WORKDIR.value}/eval/"
    )


if __name__ == "__main__":
    cli.run(main)
