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
  * Audio (`model.audio_features`): "apc" (default) as the paper, the pose model conditioned
    on APC's deep features h_L (Sec. 3.1): APC, a 3 x 512 GRU, is trained first in the same
    run (phase "apc", Eq. 9, predicting the row 3 ahead; Adam lr 1e-4 -> 1e-5 as Sec. 4.3,
    `train.apc_steps` steps of `train.apc_rows`-row sequences), then frozen while the pose
    model trains on h_L at each 25 fps frame's 4 rows (4 x 512 values per frame; the paper
    has two 512-d APC frames per 60 fps frame, 1024). Surface features: the records' 13-d
    MFCC rows at 100 Hz, normalised per coefficient by the training speech's statistics
    (the paper's are 80-d log mel at 120 Hz; the records hold no waveform to compute them
    from). APC reads `train.apc_context_rows` rows before each training window, so it enters
    the window warmed up, as over a whole utterance. No look-ahead (h_L is causal).
    "mfcc": the frame's 4 raw MFCC rows x 13 (`sampling.frame_audio_features`), the baseline
    as first built (and what workdirs written before the field trained on).
  * Window 256 frames (> F, so late frames of a window see a full history; the paper's
    pose-model sequence length is not given).
  * Sampling temperature 1 (`eval.temperature`; the authors' demo uses a smaller sigma scale).
`get_config("tiny")` shrinks widths, dilations, window (64), APC (3 x 32) and steps to train
on 2 CPU cores in a few minutes. Every data variant of `experiments/configs/pose.py` (the
`arg` of its `data_config`, e.g. "tiny") is accepted and passed through, with the tiny model
sizes and its held-out protocol (`pose.eval_config`); "paper" or nothing gives the paper
sizes. `get_config("real")`: the real corpus's training speakers (`pose.get_config("real")`'s
docstring), records with speech only. Without `data.root` the trainer generates (once) paper
000's synthetic corpus.
"""

import ml_collections

from experiments.configs import pose

PAPER_DILATIONS = (1, 2, 4, 8, 16, 32, 64) * 2
PAPER_VARIANTS = (None, "", "paper")  # paper sizes; any other variant: the tiny sizes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    pose.get_config(arg)  # raises ValueError for a variant the pose config does not know
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
    c.model.audio_features = "apc"  # or "mfcc" (raw MFCC rows; see the docstring)
    c.model.apc_hidden = 512  # Sec. 3.1: 3-layer GRU, h in R^512
    c.model.apc_layers = 3
    c.model.apc_residual = False  # the reference's APC_residual option

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
    # Phase "apc" ("apc" audio features only), before the pose phase's `steps`.
    c.train.apc_steps = 20_000
    c.train.apc_lr = 1e-4
    c.train.apc_lr_end = 1e-5  # decays when lr_end >= 0 (one optimizer state structure)
    c.train.apc_rows = 1000  # rows per APC training sequence (10 s at 100 Hz)
    c.train.apc_context_rows = 300  # rows APC reads before a pose window (3 s)

    c.eval = pose.eval_config(arg)  # one protocol for the joint table
    c.eval.temperature = 1.0  # sigma scale when sampling

    if arg not in PAPER_VARIANTS:  # "tiny" and the pose config's other data variants
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
        c.model.apc_hidden = 32
        c.train.apc_steps = 400
        c.train.apc_lr = 3e-3
        c.train.apc_lr_end = 3e-4
        c.train.apc_rows = 200
        c.train.apc_context_rows = 100
    if arg == "real":
        # The tiny model on the real corpus's training speakers (pose.data_config("real")),
        # from scratch. Both phases read speech: records without it are left out.
        c.data.silent = False
    return c
