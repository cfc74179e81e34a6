"""Trains and evaluates a head motion model: paper 000's, or a peer's (002-004).

  python -m experiments.train_pose --config=experiments/configs/pose.py:tiny --workdir=/tmp/pose
  python -m experiments.train_pose --config=experiments/configs/lsp.py:tiny --workdir=/tmp/lsp

The config's `trainer` picks the trainer and its evaluation from `TRAINERS` (default
"head_motion", paper 000; the peers' configs say "peers"). Rerunning the same command resumes
from the latest checkpoint in the workdir. `train_and_evaluate(config, workdir)` is the same
without flag parsing (e.g. in a notebook).
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from talkingjax.errors import InputError
from talkingjax.evaluation import expression as expression_eval
from talkingjax.evaluation import gan as gan_eval
from talkingjax.evaluation import head_motion as head_motion_eval
from talkingjax.evaluation import pose_table
from talkingjax.train import expression, gan, head_motion, peers, runner


def _evaluate_peer(workdir: str) -> dict:
    """The pose table of one peer's workdir (`<workdir>/eval/pose_table.md`)."""
    return pose_table.evaluate_workdirs([workdir])


# config.trainer -> (the trainer, the evaluation of a workdir it trained).
TRAINERS = {
    "head_motion": (head_motion.TRAINER, head_motion_eval.evaluate_workdir),
    "peers": (peers.TRAINER, _evaluate_peer),
    "expression": (expression.TRAINER, expression_eval.evaluate_workdir),
    "gan": (gan.TRAINER, gan_eval.evaluate_workdir),
}


def _trainer(config):
    name = config.get("trainer", "head_motion")
    if name not in TRAINERS:
        raise InputError(f"config.trainer {name!r} is not one of {sorted(TRAINERS)}")
    return TRAINERS[name]


def train(config, workdir: str):
    """Trains (or resumes) the run of `config.trainer`; returns the final state."""
    trainer, _ = _trainer(config)
    return runner.train(trainer, config, workdir)


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if the workdir has checkpoints), then evaluates on the held-out part
    (the test split; with a split file `config.data.eval_part`).

    Returns the evaluation results (also written to `<workdir>/eval/`).
    """
    trainer, evaluate = _trainer(config)
    runner.train(trainer, config, workdir)
    return evaluate(workdir)


def _scalars(tree, prefix=""):
    """(path, value) of the numbers in nested dicts, in order."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _scalars(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{prefix}{key}", value


def main(argv):
    del argv
    config, workdir = _CONFIG.value, _WORKDIR.value
    if not _EVAL.value:
        train(config, workdir)
        return
    results = train_and_evaluate(config, workdir)
    name = config.get("trainer", "head_motion")
    if name == "head_motion":
        print(pose_table.markdown_table(results), end="")
        print(f"-> {workdir}/eval/")
        return
    scalars = list(_scalars(results or {}))[:6]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in scalars) if scalars else "no evaluation"
    print(f"{config.model.get('name', name)}: {summary}  ->  {workdir}")


if __name__ == "__main__":
    # Defined only when run as a program, so `train_and_evaluate` can be imported next to
    # other experiments (absl refuses a flag defined twice in one process).
    _CONFIG = config_flags.DEFINE_config_file(
        "config", "experiments/configs/pose.py", "Config file, optionally with :variant."
    )
    _WORKDIR = flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints, metrics and eval.", required=True
    )
    _EVAL = flags.DEFINE_bool("eval", True, "Evaluate on the test split after training.")
    cli.run(main)
