"""Trains and evaluates the audio-to-expression regressor.

  python -m experiments.train_expression --config=experiments/configs/expression.py:tiny \
      --workdir=/tmp/expr [--config.finetune.root=DATA --config.finetune.clip_id=ID]
  python -m experiments.train_expression --config=experiments/configs/expression.py:real \
      --workdir=/tmp/expr_real [--config.data.root=RECORDS]   # real training speakers

The evaluation after training scores the config's held-out part (`data.eval_part`: "val" for
a speaker split); the test part is measured once with `experiments.eval_expression --part=test`.

Rerunning the same command resumes from the latest checkpoint in the workdir.
`train_and_evaluate(config, workdir)` is the same without flag parsing.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from talkingjax.evaluation import expression as expression_eval
from talkingjax.train import expression


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if possible), then evaluates; results also go to `<workdir>/eval/`."""
    expression.train(config, workdir)
    return expression_eval.evaluate_workdir(workdir)


def main(argv):
    del argv
    if not _EVAL.value:
        expression.train(_CONFIG.value, _WORKDIR.value)
        return
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    for name, r in results.items():
        ours, mean = r["ours"], r["mean_expression"]
        print(
            f"eval {name}: LMD {ours['lmd_px']:.3f} px (mean expression {mean['lmd_px']:.3f}, "
            f"shuffled audio {r['shuffled_audio']['lmd_px']:.3f}), MSE {ours['mse']:.4f}, "
            f"opening/energy r {ours['open_energy_corr']:.3f} "
            f"(real faces {r['truth_open_energy_corr']:.3f})"
        )


if __name__ == "__main__":
    # Defined only when run as a program, so `train_and_evaluate` can be imported next to
    # other experiments (absl refuses a flag defined twice in one process).
    _CONFIG = config_flags.DEFINE_config_file(
        "config", "experiments/configs/expression.py", "Config file, optionally with :variant."
    )
    _WORKDIR = flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints, metrics and eval.", required=True
    )
    _EVAL = flags.DEFINE_bool("eval", True, "Evaluate after training.")
    cli.run(main)
