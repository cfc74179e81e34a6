"""PoseGAN (paper 003, Sec. 4.1, 4.3) on this library's data.

  python -m experiments.train_pose --config=experiments/configs/posegan.py --workdir=DIR
  python -m experiments.train_pose --config=experiments/configs/posegan.py:tiny --workdir=DIR

Trainer: `talkingjax.train.peers` (model `talkingjax.models.posegan`, losses
`talkingjax.losses.posegan`).

What the paper says, and what is chosen here:
  * 256-frame windows, alpha = 1, beta = 10 (Eq. 4), lambda = 0.01 (Eq. 6), Adam with batch 64
    and lr 1e-4, 50 epochs (Sec. 4.3): as the paper, except the step count (20k, our choice for
    the synthetic corpus) and b1 = 0.9 (Adam's default; the paper gives none). The paper's
    video is 30 fps; the library's frame rate is 25.
  * Layer sizes (Fig. 5 is not in the text): the model's defaults, after Ginosar et al.
    (constant width 256, 5 downsamplings, 3 encoder and 2 decoder blocks; D 64-128-256).
  * Eq. 3 summed over frames (reduction "sum"), as written; D's loss weight 1.
  * Audio: 4 MFCC rows x 13 per frame (`sampling.frame_audio_features`) times audio_scale
    0.05, which brings the MFCCs (std ~15-20) to the scale of pose / 0.1 (std ~1). The
    generator's first LayerNorm would remove any scale, but the discriminator's first conv
    has no norm: with raw MFCCs it saw the audio ~15x louder than the pose and stayed at
    D(real) = D(fake) = 0.5 for a whole tiny run; at 0.05 it separates them (0.7 / 0.37).
`get_config("tiny")` shrinks widths, window (64) and steps to train on 2 CPU cores in ~1-2 min.
Without `data.root` the trainer generates (once) paper 000's synthetic corpus in the workdir.
`get_config("real")`: the tiny model on the real corpus's training speakers, the data and
held-out protocol of `pose.get_config("real")` (its docstring), records with speech only.
"""

import ml_collections

from experiments.configs import pose


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.trainer = "peers"  # a key of experiments.train_pose.TRAINERS, predict.peers.PREDICTORS
    c.seed = 0

    c.data = pose.data_config(arg)  # the same clips as paper 000's model

    c.model = ml_collections.ConfigDict()
    c.model.name = "posegan"
    c.model.fps = 25.0
    c.model.window = 256  # the paper's unit sequence; a multiple of 2**depth
    c.model.features = 256
    c.model.encoder_layers = 3
    c.model.depth = 5
    c.model.decoder_layers = 2
    c.model.norm = "layer"
    c.model.pose_scale = 0.1
    c.model.audio_scale = 0.05  # see the module docstring
    c.model.d_features = (64, 128, 256)
    c.model.d_num_strided = 2

    c.loss = ml_collections.ConfigDict()
    c.loss.alpha = 1.0  # L_pose (Eq. 4)
    c.loss.beta = 10.0  # L_p-motion (Eq. 4)
    c.loss.lam = 0.01  # L_GAN (Eq. 6)
    c.loss.d_weight = 1.0
    c.loss.non_saturating = False
    c.loss.reduction = "sum"

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64  # global; split over the `data` mesh axis
    c.train.steps = 20_000
    c.train.lr = 1e-4
    c.train.lr_end = -1.0  # < 0: constant lr
    c.train.b1 = 0.9
    c.train.weight_decay = 0.0
    c.train.grad_clip = 0.0
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.log_every = 50

    c.eval = pose.eval_config(arg)  # one protocol for the joint table

    if arg in ("tiny", "real"):
        c.model.window = 64
        c.model.features = 32
        c.model.encoder_layers = 1
        c.model.depth = 3
        c.model.decoder_layers = 1
        c.model.d_features = (16, 32)
        c.train.batch_size = 16
        c.train.steps = 1000
        c.train.lr = 1e-3
        c.train.checkpoint_every = 100
        c.train.log_every = 25
    if arg == "real":
        # The tiny model on the real corpus's training speakers (pose.data_config("real")),
        # from scratch. Its one phase needs the audio: the records without speech, which
        # paper 000's encoder phase reads, are left out of its training.
        c.data.silent = False
    return c
