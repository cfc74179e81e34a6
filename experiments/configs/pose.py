"""Head motion encoder + decoder of paper 000 (Sec. III, IV-A3).

  python -m experiments.train_pose --config=experiments/configs/pose.py --workdir=DIR
  python -m experiments.train_pose --config=experiments/configs/pose.py:tiny --workdir=DIR

`get_config()` is the paper setting: reference layer sizes (12.4 M parameters), encoder
pretraining 10 epochs then joint training 10 epochs, both at lr 1e-4, Eq. 2 weights 5/1/1.
`get_config("tiny")` is a small model and corpus that trains on 2 CPU cores in minutes.
Without `data.root` the trainer generates (once) a synthetic corpus under the workdir.
"""

import ml_collections


def data_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The pose data every head-pose model trains and is evaluated on (the peers' configs
    use it too, so one table compares them on the same clips)."""
    d = ml_collections.ConfigDict()
    d.root = ""  # a records dataset (talkingjax.data.records); "" = synthetic corpus
    d.synthetic_videos = 96  # used only when data.root is ""
    d.synthetic_test_videos = 16
    d.synthetic_seconds = 40.0
    d.window_seconds = 12.0  # paper 000's window: 300 frames at 25 fps, the reference clip
    if arg == "tiny":
        d.synthetic_videos = 128
        d.synthetic_test_videos = 16
        d.synthetic_seconds = 24.0
    return d


def eval_config() -> ml_collections.ConfigDict:
    """The held-out protocol of `talkingjax.evaluation.head_motion` and `.pose_table`."""
    e = ml_collections.ConfigDict()
    e.reference_seconds = 12.0  # the target's "short video" before the predicted part
    e.retrieval_window_seconds = 12.0  # pattern retrieval (models with a pattern)
    e.retrieval_stride_seconds = 6.0
    e.plot_videos = 3
    return e


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = data_config(arg)

    c.model = ml_collections.ConfigDict()
    c.model.fps = 25.0  # internal frame rate; 100 / fps MFCC rows per frame
    c.model.pattern_dim = 16
    c.model.encoder_hidden = 256
    c.model.encoder_layers = 3
    c.model.encoder_mlp = (256, 128, 64, 32)
    c.model.decoder_hidden = 256
    c.model.decoder_layers = 3
    c.model.window_features = 1024
    c.model.head_features = (512, 256)
    c.model.norm = "batch"
    c.model.pose_scale = 0.1  # networks see pose / 0.1; 1.0 = the reference's raw values
    c.model.mfcc_scale = 1.0  # MFCC rows times this into the decoder LSTM (1.0 = raw)
    c.model.encoder_chrono_steps = 300  # chrono init of the encoder LSTM (0 = forget bias 1)

    c.loss = ml_collections.ConfigDict()
    c.loss.tau = 2.0
    c.loss.tau2 = 2.0
    c.loss.lambda_p1 = 5.0
    c.loss.lambda_p2 = 1.0
    c.loss.lambda_p3 = 1.0

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 16  # global; split over the `data` mesh axis
    c.train.pretrain_epochs = 10.0  # an epoch = one anchor per non-overlapping window
    c.train.joint_epochs = 10.0
    c.train.pretrain_steps = -1  # > 0 overrides the epoch count
    c.train.joint_steps = -1
    c.train.pretrain_lr = 1e-4
    c.train.joint_lr = 1e-4
    c.train.grad_clip = 0.0  # > 0 clips the global gradient norm (the paper does not)
    c.train.checkpoint_every = 200
    c.train.keep_checkpoints = 3
    c.train.log_every = 20

    c.eval = eval_config()

    if arg == "tiny":
        c.model.pattern_dim = 16
        c.model.encoder_hidden = 64
        c.model.encoder_layers = 1
        c.model.encoder_mlp = (64, 32)
        c.model.decoder_hidden = 64
        c.model.decoder_layers = 1
        c.model.window_features = 128
        c.model.head_features = (64, 64)
        c.train.pretrain_steps = 300
        c.train.joint_steps = 600
        c.train.pretrain_lr = 1e-3
        c.train.joint_lr = 1e-3
        c.train.checkpoint_every = 100
        c.train.log_every = 25
    elif arg not in (None, "", "paper"):
        raise ValueError(f"unknown config variant {arg!r}; expected 'tiny' or nothing")
    return c
