"""Trains the AV-sync instrument, then checks it on the val speakers.

  python -m experiments.train_sync --config=experiments/configs/sync.py --workdir=DIR \
      --config.data.root=/work/runs/corpus
  python -m experiments.train_sync --config=experiments/configs/sync.py:tiny --workdir=DIR

Rerunning the same command resumes from the latest checkpoint in the workdir. The checks
(`talkingjax.evaluation.sync`: in sync, shifted audio, still frame) run on the val part and
choose the "no confidence" threshold (`<workdir>/instrument.json`); `experiments.eval_sync`
checks other parts and checkpoints and exports the model.
`train_and_evaluate(config, workdir)` is the same without flag parsing.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from talkingjax.evaluation import sync as sync_eval
from talkingjax.train import sync


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if possible), then checks the model on val; results in `<workdir>/eval/`."""
    sync.train(config, workdir)
    return sync_eval.evaluate_workdir(workdir, "val")


def main(argv):
    del argv
    if not _EVAL.value:
        sync.train(_CONFIG.value, _WORKDIR.value)
        return
    result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print(sync_eval.markdown(result, "AV-sync checks, val"))


if __name__ == "__main__":
    # Defined only when run as a program (absl refuses a flag defined twice in one process).
    _CONFIG = config_flags.DEFINE_config_file(
        "config", "experiments/configs/sync.py", "Config file, optionally with :variant."
    )
    _WORKDIR = flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints, metrics and eval.", required=True
    )
    _EVAL = flags.DEFINE_bool("eval", True, "Check the instrument on val after training.")
    cli.run(main)
