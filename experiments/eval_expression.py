"""Evaluates a trained audio-to-expression workdir (coefficient MSE, mouth LMD,
opening/energy correlation; mean-expression and shuffled-audio baselines).

  python -m experiments.eval_expression --workdir=/tmp/expr

Writes `<workdir>/eval/metrics.json` and `metrics.md` and prints the table.
"""

from absl import flags

from experiments import cli
from talkingjax.evaluation import expression as expression_eval

_WORKDIR = flags.DEFINE_string("workdir", None, "A train_expression workdir.", required=True)


def main(argv):
    del argv
    results = expression_eval.evaluate_workdir(_WORKDIR.value)
    print(expression_eval.markdown_table(results))


if __name__ == "__main__":
    cli.run(main)
