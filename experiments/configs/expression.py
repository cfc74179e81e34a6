"""Audio-to-expression regressor (paper 000 Sec. IV-A2, Eq. 6-7; the 2020 joint variant of
paper 001 Sec. 3.2, Eq. 1-2).

  python -m experiments.train_expression --config=experiments/configs/expression.py --workdir=DIR
  python -m experiments.train_expression --config=experiments/configs/expression.py:tiny ...

`get_config()`: reference sizes (five convs 64-512, FC 2048/256, LSTM 256 x 3), the 2020
variant (expression + 6 pose outputs, Eq. 2 of paper 001) on 16-frame windows, batch 16, Adam
betas (0.5, 0.999) at 2e-4; a general phase on many speakers, then an optional fine-tune on a
target clip's first 300 frames (300 steps at 1e-4, parameters averaged over the last 150;
`finetune.init_from` starts it from an existing general run, `finetune.frozen` keeps parameter
groups fixed). `loss.kind = "eq7"` trains paper 000's expression-only
objective instead (set `model.with_pose = False`). `get_config("tiny")` is a small model that
trains on 2 CPU cores in minutes. Without `data.root` the trainer generates (once) the
synthetic speech-driven expression corpus under the workdir, in the default face model's basis.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.root = ""  # a records dataset whose clips carry `exp`; "" = synthetic corpus
    c.data.synthetic_videos = 96
    c.data.synthetic_test_videos = 16
    c.data.synthetic_seconds = 20.0
    c.data.window_frames = 16  # the 2020 code's sequence length

    c.finetune = ml_collections.ConfigDict()
    c.finetune.root = ""  # records dataset holding the target clip ("" = no fine-tune)
    c.finetune.clip_id = ""
    c.finetune.frames = 300  # the first 12 s at 25 fps; the rest is held out for evaluation
    c.finetune.heldout_frames = 0  # evaluate frames [frames, frames + this); 0 = all the rest
    c.finetune.steps = 300
    c.finetune.lr = 1e-4
    # Stochastic weight averaging over the fine-tune's second half (-1 = off): 300 frames are
    # few, and averaging the late iterates lowered the validation error (see the README).
    c.finetune.average_from = 150
    # After the fine-tune, refit the output bias so the mean prediction over the tuning frames
    # equals their mean (`train.expression.calibrate_head_bias`; the README's validation).
    c.finetune.calibrate_bias = True
    c.finetune.frozen = ()  # parameter groups kept fixed: "encoder", "lstm", "head"
    c.finetune.init_from = ""  # a general run's workdir: fine-tune only, from its parameters

    c.model = ml_collections.ConfigDict()
    c.model.fps = 25.0
    c.model.num_exp = 8  # the default face model's expression size (64 for the BFM)
    c.model.with_pose = True
    c.model.hidden = 256
    c.model.num_layers = 3
    c.model.conv_channels = (64, 128, 256, 256, 512)
    c.model.fc = (2048, 256)

    c.loss = ml_collections.ConfigDict()
    c.loss.kind = "p001_eq2"  # or "eq7" (paper 000, expression only)
    c.loss.lambda_e1 = 1e-4
    c.loss.w_pose = 0.2
    c.loss.w_pose_smooth = 0.01
    c.loss.w_exp_smooth = 1e-4

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 16
    c.train.steps = 20000
    c.train.lr = 2e-4
    c.train.b1 = 0.5
    c.train.grad_clip = 0.0
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 3
    c.train.log_every = 50

    if arg == "tiny":
        c.data.synthetic_videos = 24
        c.data.synthetic_test_videos = 4
        c.data.synthetic_seconds = 12.0
        c.model.hidden = 64
        c.model.num_layers = 1
        c.model.conv_channels = (16, 32, 32, 64, 64)
        c.model.fc = (256, 64)
        c.train.steps = 600
        c.train.lr = 1e-3
        c.train.checkpoint_every = 200
        c.train.log_every = 50
    elif arg not in (None, "", "paper"):
        raise ValueError(f"unknown config variant {arg!r}; expected 'tiny' or nothing")
    return c
