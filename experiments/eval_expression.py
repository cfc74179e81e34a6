"""Evaluates a trained audio-to-expression workdir on held-out speakers (coefficient MSE, mouth
LMD with a bootstrap interval over clips, opening/energy r against the real faces' own r;
mean-expression and shuffled-audio baselines, the same code for every row).

  python -m experiments.eval_expression --workdir=/tmp/expr             # the config's part (val)
  python -m experiments.eval_expression --workdir=/tmp/expr --part=test # once, the final figure

Writes `<workdir>/eval/metrics[_<part>].json` and `.md` and prints the tables.
"""

from absl import flags

from experiments import cli
from talkingjax.evaluation import expression as expression_eval

_WORKDIR = flags.DEFINE_string("workdir", None, "A train_expression workdir.", required=True)
_PART = flags.DEFINE_string(
    "part", None, "Held-out part of the speaker split: val (choose settings) or test (once)."
)
_ROOT = flags.DEFINE_string("root", None, "Records dataset, if not the config's data.root.")
_STEP = flags.DEFINE_integer("step", None, "A kept checkpoint step (default the latest).")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 2000, "Bootstrap resamples over clips (0 = none).")


def main(argv):
    del argv
    results = expression_eval.evaluate_workdir(
        _WORKDIR.value, _PART.value, _ROOT.value, _BOOTSTRAP.value, _STEP.value
    )
    print(expression_eval.markdown_table(results))


if __name__ == "__main__":
    cli.run(main)
