"""Writes the synthetic audio-to-expression corpus: the head-motion corpus plus mouth motion.

  python -m experiments.make_synthetic_expression --out=DATA --videos=24 --test_videos=6

Same flags, speech, poses, splits and clip ids as `experiments.make_synthetic`; every clip also
carries per-frame expression coefficients of the default face model, driven by the speech
(`talkingjax.data.synthetic_expression` has the generative model).
"""

from experiments import cli, make_synthetic
from talkingjax.data import synthetic_expression


def main(argv):
    del argv
    make_synthetic.write_corpus(
        synthetic_expression.generate_expression_corpus,
        lambda clips: f", {clips[0].exp.shape[1]} expression coefficients per frame",
    )


if __name__ == "__main__":
    cli.run(main)
