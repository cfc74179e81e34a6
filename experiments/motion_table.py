"""The head-motion table of issue 22 from `experiments.eval_generation` runs.

  python -m experiments.motion_table --run=DIR1 [--run=DIR2 ...] --out=docs/figures/NAME

Reads each DIR/acceptance.json and writes NAME.md (one row per run: the motion of the written
mp4 against the target's real video and against the predicted pose, sharpness, seam; the
pattern and pose-scale-0 checks where the run made them) and NAME.json (the rows' figures and
the source acceptance files whole).
"""

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import records
from talkingjax.errors import InputError
from talkingjax.evaluation import generation as generation_eval

_RUNS = flags.DEFINE_multi_string("run", None, "An eval_generation --out_dir.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output path without extension.", required=True)


def main(argv):
    del argv
    reports, rows = {}, []
    for run in _RUNS.value:
        path = os.path.join(run, "acceptance.json")
        if not os.path.isfile(path):
            raise InputError(f"{path} does not exist (run experiments.eval_generation first)")
        with open(path) as f:
            report = json.load(f)
        name = os.path.basename(os.path.normpath(run))
        reports[name] = report
        rows.append(generation_eval.motion_row(name, report))
    text = generation_eval.motion_markdown(rows)
    records.atomic_write(_OUT.value + ".md", lambda f: f.write(text), mode="w")
    data = json.dumps({"rows": rows, "reports": reports}, indent=1)
    records.atomic_write(_OUT.value + ".json", lambda f: f.write(data), mode="w")
    print(text)


if __name__ == "__main__":
    cli.run(main)
