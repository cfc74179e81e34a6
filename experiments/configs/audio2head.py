"""Audio2Head's head motion predictor N_H (paper 002, Sec. 3.2, 4.2) on this library's data.

  python -m experiments.train_pose --config=experiments/configs/audio2head.py --workdir=DIR
  python -m experiments.train_pose --config=experiments/configs/audio2head.py:tiny --workdir=DIR

Trainer: `talkingjax.train.peers` (model `talkingjax.models.audio2head`).

What the paper says, and what is chosen here:
  * E_A = ResNet-34, two-layer LSTM, T = 256 frames, 1D PatchGAN D, LSGAN + pose SSIM (Eq. 4,
    both weights 1): as the paper. E_A reads 4 MFCC rows x 13 per 25 fps frame
    (`sampling.frame_audio_features`); the paper's a_i is 4 x 41 features.
  * Adam, lr 2e-4, weight decay 2e-6, batch 64: as the paper (Sec. 4.2); b1 = 0.9 (Adam's
    default; the paper gives none). The paper trains "for one day" on VoxCeleb; the step count
    here (20k) is our choice.
  * Embedding / LSTM widths 256 and E_D linear: the authors' inference code (paper silent).
  * e_0 from an MLP on the first-frame pose instead of the ResNet-34 image encoder E_I (no
    images here; see the model's docstring).
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
    c.model.name = "audio2head"
    c.model.fps = 25.0
    c.model.window = 256  # training window T (Sec. 4.2)
    c.model.hidden = 256
    c.model.num_layers = 2
    c.model.audio_embed = 256
    c.model.audio_blocks = (3, 4, 6, 3)  # ResNet-34
    c.model.audio_features = (64, 128, 256, 512)
    c.model.audio_norm = "group"
    c.model.pose_embed_features = (256,)
    c.model.pose_scale = 0.1
    c.model.d_features = (64, 128, 256, 512)  # pix2pix PatchGAN, n_layers = 3
    c.model.d_kernel = 4
    c.model.d_norm = "instance"
    c.model.d_conditional = False  # the paper's D sees the head motion only

    c.loss = ml_collections.ConfigDict()
    c.loss.lambda_ssim = 1.0  # Eq. 4
    c.loss.lambda_gan = 1.0
    c.loss.ssim_window = 0  # 0 = whole-sequence SSIM statistics (the paper)

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64  # global; split over the `data` mesh axis
    c.train.steps = 20_000
    c.train.lr = 2e-4
    c.train.lr_end = -1.0  # < 0: constant lr
    c.train.b1 = 0.9
    c.train.weight_decay = 2e-6
    c.train.grad_clip = 0.0
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.log_every = 50

    c.eval = pose.eval_config(arg)  # one protocol for the joint table

    if arg in ("tiny", "real"):
        c.model.window = 64
        c.model.hidden = 32
        c.model.audio_embed = 32
        c.model.audio_blocks = (1, 1)
        c.model.audio_features = (8, 16)
        c.model.pose_embed_features = (32,)
        c.model.d_features = (16, 32, 32)
        c.train.batch_size = 16
        c.train.steps = 600
        c.train.lr = 1e-3
        c.train.checkpoint_every = 100
        c.train.log_every = 25
    if arg == "real":
        # The tiny model on the real corpus's training speakers (pose.data_config("real")),
        # from scratch. Its one phase needs the audio: the records without speech, which
        # paper 000's encoder phase reads, are left out of its training.
        c.data.silent = False
    return c
