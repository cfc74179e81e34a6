"""Trains (pretrain, then fine-tune on one target) and evaluates the rendering-to-realistic GAN.

  python -m experiments.train_gan --config=experiments/configs/gan.py:tiny --workdir=/tmp/gan
  python -m experiments.train_gan --config=experiments/configs/gan.py:cpu128 --workdir=DIR \
      --config.finetune.init_from=PRETRAINED --config.finetune.root=PAIRS \
      --config.finetune.clip_id=ID

Rerunning the same command resumes from the latest checkpoint in the workdir.
`train_and_evaluate(config, workdir)` is the same without flag parsing.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from talkingjax.evaluation import gan as gan_eval
from talkingjax.train import gan


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming if possible), then evaluates the held-out frames of the target (or
    of the pretraining clips' test split); results also go to `<workdir>/eval/`."""
    gan.train(config, workdir)
    return gan_eval.evaluate_workdir(workdir)


def main(argv):
    del argv
    if not _EVAL.value:
        gan.train(_CONFIG.value, _WORKDIR.value)
        return
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    for name, r in results["clips"].items():
        ours, raw = r["refined"], r["raw_render"]
        print(
            f"eval {name} ({r['frames']} frames): PSNR {ours['psnr']:.2f} dB (raw render "
            f"{raw['psnr']:.2f}), SSIM {ours['ssim']:.3f} ({raw['ssim']:.3f}), "
            f"L1 {ours['l1']:.4f} ({raw['l1']:.4f})"
        )
    print(f"-> {results['files']['json']}, {results['files']['strip']}")


if __name__ == "__main__":
    # Defined only when run as a program, so `train_and_evaluate` can be imported next to
    # other experiments (absl refuses a flag defined twice in one process).
    _CONFIG = config_flags.DEFINE_config_file(
        "config", "experiments/configs/gan.py", "Config file, optionally with :variant."
    )
    _WORKDIR = flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints, metrics and eval.", required=True
    )
    _EVAL = flags.DEFINE_bool("eval", True, "Evaluate on held-out frames after training.")
    cli.run(main)
