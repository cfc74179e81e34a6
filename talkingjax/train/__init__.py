"""Training: one trainer per model on one contract, and the machinery they share.

- `runner`: the contract (`Trainer`: what must match on resume, build, plan the phases, init,
  the optimizer), `train` (trains any trainer) and `load_variables` (restores what it trained);
- `loop`: the engine (train state, data-parallel updates, phases, `make_optimizer`);
- `checkpoint` (Orbax, workdir config), `metric_writer` (metrics.jsonl), `parallel` (mesh,
  `shard_map`);
- the trainers: `head_motion` (paper 000's E_m + D_m), `expression` (audio-to-expression),
  `gan` (rendering-to-realistic GAN), `peers` (papers 002-004's pose models).

`train` imports only models, losses and data: evaluation lives in `talkingjax.evaluation`,
trained models are loaded for use by `talkingjax.predict`, and `experiments/train_*.py` train,
then evaluate.
"""
