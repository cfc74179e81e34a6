"""Live Speech Portraits' probabilistic head pose model (paper 004, Sec. 3.3, 4.3).

  python -m experiments.train_pose --config=experiments/configs/lsp.py --workdir=DIR
  python -m experiments.train_pose --config=experiments/configs/lsp.py:tiny --workdir=DIR

Trainer: `talkingjax.train.peers` (model `talkingjax.models.lsp`, loss Eq. 11
`talkingjax.losses.lsp.gaussian_pose_nll`).

What the paper says, and what is chosen here:
  * Two blocks of dilations 1..64 (F = 255), Gaussian output, Eq. 11: as the paper; widths
    (128 / 128 / 256 / 512, post-net 24) and state dropout 0.5 from the authors' release.
  * Adam (0.9, 0.999), lr 1e-4 decaying linearly to 1e-5, batch 32 (Sec. 4.3): as the paper;
    200 epochs there, 20k steps here (our choice for the synthetic corpus).
  * Audio: the paper conditions on APC features (two 512-d frames per 60 fps frame); here
    4 MFCC rows x 13 per 25 fps frame (`sampling.frame_audio_features`), no look-ahead.
  * Window 256 frames (> F, so late frames of a window see a full history; the paper's
    pose-model sequence length is not given).
  * Sampling temperature 1 (`eval.temperature`; the authors' demo uses a smaller sigma scale).
`get_config("tiny")` shrinks widths, dilations, window (64) and steps to train on 2 CPU cores
in ~1-2 min. Without `data.root` the trainer generates (once) paper 000's synthetic corpus.
"""

import ml_collections

from experiments.configs import pose

PAPER_DILATIONS = (1, 2, 4, 8, 16, 32, 64) * 2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.trainer = "peers"  # a key of experiments.train_pose.TRAINERS, predict.peers.PREDICTORS
    c.seed = 0

    c.data = pose.data_config(arg)  # the same clips as paper 000's model

    c.model = ml_collections.ConfigDict()
    c.model.name = "lsp"
    c.model.fps = 25.0
    c.model.window = 256
    c.model.dilations = PAPER_DILATIONS
    c.model.kernel_size = 2
    c.model.residual_channels = 128
    c.model.dilation_channels = 128
    c.model.skip_channels = 256
    c.model.cond_channels = 512
    c.model.post_channels = 24
    c.model.activation = "relu"
    c.model.state_dropout = 0.5
    c.model.pose_scale = 0.1
    c.model.velocity_scale = 0.01
    c.model.min_std = 5e-4  # <= 0: no floor

    c.loss = ml_collections.ConfigDict()  # Eq. 11 has no weights

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32  # global; split over the `data` mesh axis
    c.train.steps = 20_000
    c.train.lr = 1e-4
    c.train.lr_end = 1e-5  # linear decay over the run (Sec. 4.3)
    c.train.b1 = 0.9
    c.train.weight_decay = 0.0
    c.train.grad_clip = 0.0
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.log_every = 50

    c.eval = pose.eval_config()  # one protocol for the joint table
    c.eval.temperature = 1.0  # sigma scale when sampling

    if arg == "tiny":
        c.model.window = 64
        c.model.dilations = (1, 2, 4, 8, 16)
        c.model.residual_channels = 16
        c.model.dilation_channels = 16
        c.model.skip_channels = 32
        c.model.cond_channels = 32
        c.train.batch_size = 16
        c.train.steps = 1000
        c.train.lr = 1e-3
        c.train.lr_end = 1e-4
        c.train.checkpoint_every = 100
        c.train.log_every = 25
    elif arg not in (None, "", "paper"):
        raise ValueError(f"unknown config variant {arg!r}; expected 'tiny' or nothing")
    return c
