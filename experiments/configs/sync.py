"""The AV-sync instrument (issue 19): SyncNet-style encoders trained with a multi-way loss.

  python -m experiments.train_sync --config=experiments/configs/sync.py --workdir=DIR \
      --config.data.root=/work/runs/corpus
  python -m experiments.train_sync --config=experiments/configs/sync.py:tiny --workdir=DIR

`get_config()`: the shipped model's settings (chosen on the val speakers): a half-width
SyncNet (video stages 16-64, audio 16-64, 64-d embeddings), runs of 8 windows per example at
offsets +-15, 4 runs per batch (32 windows), a "spaced" phase (candidates every 5 offsets) then
an "all offsets" phase, Adam 3e-4 with warm-up and cosine decay. `data.root` is a preprocessed
corpus with crops (`experiments.preprocess --save_crops`); the train speakers of `data.split`
are used. Without `data.root` the trainer uses synthetic clips whose mouth follows the speech
energy. `get_config("tiny")` is a tiny model on those synthetic clips (seconds on 2 cores).
"""

import os

import ml_collections

SPLIT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "corpus", "split.json"
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.root = ""  # preprocessed corpus (clips/ + crops/); "" = synthetic clips
    c.data.split = SPLIT  # the train speakers' speech clips are used
    c.data.synthetic_clips = 8
    c.data.synthetic_seconds = 6.0
    c.data.max_offset = 15  # candidates at offsets -15..15 (the protocol's range)
    c.data.run = 8  # consecutive windows per example (share their audio encodings)
    c.data.max_windows_per_clip = 400  # caps a long clip's weight (0 = no cap)
    c.data.augment = True

    c.model = ml_collections.ConfigDict()
    c.model.video_features = (16, 32, 64, 64)
    c.model.audio_features = (16, 32, 64)
    c.model.embed_dim = 64

    c.loss = ml_collections.ConfigDict()
    c.loss.temperature = 0.1

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 4  # runs per batch (x data.run windows)
    c.train.spaced_steps = 2500  # phase 1: candidates every spaced_stride offsets (0 = none)
    c.train.spaced_stride = 5
    c.train.steps = 6000  # phase 2: every offset
    c.train.lr = 3e-4
    c.train.warmup_steps = 200
    c.train.final_lr_fraction = 0.1
    c.train.grad_clip = 0.0
    c.train.average_from = -1  # average the "all" phase's parameters from this step (-1 off)
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 40  # kept so the checkpoint can be chosen on val
    c.train.log_every = 50

    if arg == "tiny":
        c.data.max_offset = 5
        c.data.run = 4
        c.data.max_windows_per_clip = 0
        c.model.video_features = (8, 16)
        c.model.audio_features = (8, 16)
        c.model.embed_dim = 16
        c.train.batch_size = 8
        c.train.spaced_steps = 0
        c.train.steps = 120
        c.train.lr = 1e-3
        c.train.warmup_steps = 10
        c.train.checkpoint_every = 60
        c.train.keep_checkpoints = 2
        c.train.log_every = 50
    elif arg not in (None, "", "paper"):
        raise ValueError(f"unknown config variant {arg!r}; expected 'tiny' or nothing")
    return c
