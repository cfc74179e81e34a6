"""Evaluation: held-out scores of trained models, each with baselines computed by the same code.

- `head_motion`: paper 000's pose model (HS, pose errors, pattern retrieval) against
  audio-only, mean-pose and random-real baselines;
- `pose_table`: one table for paper 000 and its peers (002-004) on the same held-out data;
- `expression`: the audio-to-expression regressor (coefficient MSE, mouth LMD,
  opening/energy correlation);
- `gan`: the rendering-to-realistic GAN (PSNR, SSIM, L1, CPBD) against the raw render;
- `generation`: checks of a generated talking video;
- `video`: measures of a written mp4 against its target video, from tracking and fitting both.

Models are loaded through `talkingjax.predict`; `experiments/eval_*.py` (and the train-then-
evaluate `experiments/train_*.py`) are the command lines.
"""
