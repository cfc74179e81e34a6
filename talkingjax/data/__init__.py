"""Data: what the trainers read, and the programs' ways of making it.

- Formats: the head-motion / expression record format (`records`), reference poses and 257-d
  coefficient files (`coeff257`), the GAN's (rendered, real) frame pairs (`gan_pairs`).
- Sampling: paper 000's triplets and the expression windows (`sampling`).
- Making data: real talking-face videos -> records (`preprocess`), the real corpus' manifest and
  speaker-disjoint split (`corpus`), the synthetic head-motion corpus (`synthetic`) and its
  speech-driven expression extension (`synthetic_expression`), the embedded default demo's
  inputs (`default_inputs`). Their command lines are `experiments/preprocess.py`,
  `make_synthetic.py`, `make_synthetic_expression.py` and `make_gan_pairs.py`.
"""
