"""Trains and evaluates a head motion model: paper 000's, or a peer's (002-004).

  python -m experiments.train_pose --config=experiments/configs/pose.py:tiny --workdir=/tmp/pose
  python -m experiments.train_pose --config=experiments/configs/lsp.py:tiny --workdir=/tmp/lsp

The config's `trainer` names the module of `talkingjax.train` that trains it (default
"head_motion", paper 000; the peers' configs say "peers"). Rerunning the same command resumes
from the latest checkpoint in the workdir.
"""

import importlib
import importlib.util

from absl import flags
from ml_collections import config_flags

from experiments import cli
from talkingjax.errors import InputError

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/pose.py", "Config file, optionally with :variant."
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and eval.", required=True
)
_EVAL = flags.DEFINE_bool("eval", True, "Evaluate on the test split after training.")


def _scalars(tree, prefix=""):
    """(path, value) of the numbers in nested dicts, in order."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _scalars(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{prefix}{key}", value


def main(argv):
    del argv
    config = _CONFIG.value
    name = config.get("trainer", "head_motion")
    if importlib.util.find_spec("talkingjax.train." + name) is None:
        raise InputError(f"config.trainer {name!r} is not a module of talkingjax.train")
    trainer = importlib.import_module("talkingjax.train." + name)
    if not _EVAL.value:
        trainer.train(config, _WORKDIR.value)
        return
    results = trainer.train_and_evaluate(config, _WORKDIR.value)
    if name == "head_motion":
        ours = results["methods"]["ours"]
        print(
            f"eval: HS {ours['hs']:.3f}, rotation error {ours['rot_err_deg']:.2f} deg, "
            f"retrieval {100 * results['retrieval_accuracy']:.1f} %  ->  {_WORKDIR.value}/eval/"
        )
        return
    scalars = list(_scalars(results or {}))[:6]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in scalars) if scalars else "no evaluation"
    print(f"{config.model.get('name', name)}: {summary}  ->  {_WORKDIR.value}")


if __name__ == "__main__":
    cli.run(main)
