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

`get_config("real")`: the tiny model's general phase on the real corpus's training speakers
(`data.root`, default `pose.REAL_CORPUS`, the preprocessed corpus: override it with yours;
`data.split_file` the committed speaker split, `data.eval_part` "val" for choosing settings,
"test" once), starting from the shipped synthetic-trained general model (`train.init_from`,
`SYNTHETIC_EXPRESSION`); the shipped default general model (`talkingjax/assets/models/expression`,
made by `scripts/train_real_models.sh`). Chosen on the val part (evaluation.expression; README):
1200 steps at 1e-3 on clips centred on the common mean (`data.center_clips`), parameters
averaged from step 400 (`train.average_from`) with BatchNorm statistics re-estimated for them
(`train.bn_batches`). On val: from scratch (`--config.train.init_from=`) it did not beat the
mean expression, without centring not the shuffled audio, and without re-estimated statistics
the figures swung between checkpoints 200 steps apart (one worse than the mean expression).

`finetune.frames` counts the target video's own frames (at its fps), not the regressor's 25 fps
frames (`train.expression.tune_frames`).
"""

import os

import ml_collections

from experiments.configs import pose

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The shipped general expression model trained on the synthetic corpus (expression.py:tiny):
# the start of the real variant (the shipped default, `assets/models/expression`, is the real
# variant itself).
SYNTHETIC_EXPRESSION = os.path.join(
    REPO, "talkingjax", "assets", "models", "synthetic", "expression"
)


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
    # The target video's first frames (its own fps: 12 s at 25 fps, 10 s at 30); the rest is
    # held out for evaluation.
    c.finetune.frames = 300
    c.finetune.heldout_frames = 0  # evaluate video frames [frames, frames + this); 0 = the rest
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
    c.train.init_from = ""  # a general run's workdir whose parameters start the general phase
    # Stochastic weight averaging of the general phase from this step on (-1 = off): the
    # evaluated parameters are the mean of the iterates after it.
    c.train.average_from = -1
    # At the end of the general phase, BatchNorm statistics re-estimated for the evaluated
    # (averaged) parameters over this many batches of 4 x batch_size windows (0 = off).
    c.train.bn_batches = 0

    if arg in ("tiny", "real"):
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
    if arg == "real":
        c.data.root = pose.REAL_CORPUS
        c.data.split_file = pose.REAL_SPLIT
        c.data.eval_part = "val"
        # Train on each clip's motion around the common mean (`train.expression.center_clips`).
        c.data.center_clips = True
        c.train.init_from = SYNTHETIC_EXPRESSION
        c.train.steps = 1200
        c.train.average_from = 400
        c.train.bn_batches = 32
    elif arg not in (None, "", "paper", "tiny"):
        raise ValueError(f"unknown config variant {arg!r}; expected 'tiny', 'real' or nothing")
    return c
