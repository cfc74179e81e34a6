"""The rendering-to-realistic GAN (paper 000 Sec. IV-B3, Eq. 8-10) and its training.

  python -m experiments.train_gan --config=experiments/configs/gan.py:tiny --workdir=DIR
  python -m experiments.train_gan --config=experiments/configs/gan.py:cpu128 --workdir=DIR \
      --config.data.root=PAIRS --config.finetune.root=PAIRS --config.finetune.clip_id=ID

Trainer: `talkingjax.train.gan` (networks `talkingjax.models.gan`, losses
`talkingjax.losses.gan`, data `talkingjax.data.gan_pairs`; make pairs with
`python -m experiments.make_gan_pairs`).

Variants:
  "" / "paper"  the paper's networks at 256^2 (8-level U-Net 64-...-512, 70x70 PatchGAN),
                batch 1, Adam lr 1e-4 b1 0.5, fine-tune 60 epochs over the target's first 300
                frames, augmentation resize 286 + random 256 crop + flip (reference-facts.md).
                Pretraining length: the paper runs one epoch over LRW; here `train.steps`.
  "cpu128"      128^2 with half the widths (7 levels 32-...-256, D 32-128), batch 4, a 3400-step
                fine-tune: what 2 CPU cores fine-tune in ~25 min; the evaluation also scores the
                test-time self-ensemble (the README's real-data figures).
  "real"        the shipped default of `experiments.generate` (`assets/models/gan`): `cpu128`'s
                networks pretrained on the real corpus's training speakers (pairs of both
                albedos, `REAL_PAIRS`: make them with `experiments.make_gan_pairs
                --split_file=experiments/corpus/split.json --part=train --max_frames=300`,
                scripts/train_default_models.sh); a 300-step fine-tune per target.
  "small128"    128^2, narrow (0.86 M parameters), pretrained on synthetic pairs
                (`assets/models/synthetic/gan`).
  "tiny"        64^2, a few thousand parameters, synthetic pairs: tests and smoke runs.
`--config.model.memory.enabled=True` trains paper 001's memory-augmented variant instead.
Without `data.root` the trainer makes synthetic pairs (`gan_pairs.synthetic_pairs`) once into
the workdir.
"""

import os

import ml_collections

from talkingjax.models import gan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Pairs of the real corpus's training speakers (`runs/gan_pairs` next to the repository): the
# detailed-albedo renders (the paper's pretraining) and the low-frequency ones (what the
# per-target fine-tune and generation render with).
REAL_PAIRS = os.path.normpath(os.path.join(REPO, "..", "runs", "gan_pairs"))
REAL_PAIRS_ROOTS = ",".join(os.path.join(REAL_PAIRS, a) for a in ("detailed", "model"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.trainer = "gan"  # a key of experiments.train_pose.TRAINERS
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.root = ""  # pairs dir(s), comma-joined (train split = pretraining); "" = synthetic
    c.data.synthetic_identities = 16
    c.data.synthetic_frames = 100
    c.data.augment = True  # resize by 286/256, random crop, random flip

    c.model = ml_collections.ConfigDict()
    c.model.size = 256
    c.model.g_features = gan.FEATURES
    c.model.d_features = gan.D_FEATURES
    c.model.dropout = 0.5
    c.model.dropout_blocks = (0, 1, 2)
    c.model.norm = "instance"
    # Paper 001's memory-augmented variant (Sec. 3.4): AdaIN from identity features, a memory
    # of (spatial key, identity) pairs. Sizes from reference-facts.md; encoders are the
    # project's (no pretrained ResNet18 / ArcFace can be downloaded).
    c.model.memory = ml_collections.ConfigDict()
    c.model.memory.enabled = False
    c.model.memory.slots = 30_000
    c.model.memory.key_dim = 512
    c.model.memory.identity_dim = 512
    c.model.memory.key_features = (32, 64, 128, 256)
    c.model.memory.identity_features = (32, 64, 128, 256, 256)
    c.model.memory.identity_classes = 1024  # ArcFace class centres (>= pretraining identities)
    c.model.memory.smooth_every = 25  # test-time interpolation of retrieved identities

    c.loss = ml_collections.ConfigDict()
    c.loss.lambda_l1 = 100.0  # Eq. 9
    c.loss.lambda_att = 2.0
    c.loss.lambda_tv = 1e-5
    c.loss.d_weight = 1.0
    # Memory variant only:
    c.loss.lambda_triplet = 1.0  # threshold triplet loss of the key encoder
    c.loss.lambda_arcface = 1.0  # the identity encoder's ArcFace loss
    c.loss.top_k = 256
    c.loss.triplet_margin = 0.3
    c.loss.identity_threshold = 0.98

    c.finetune = ml_collections.ConfigDict()
    c.finetune.root = ""  # pairs directory holding the target clip ("" = data.root)
    c.finetune.clip_id = ""  # "" = no fine-tune
    c.finetune.frames = 300  # the first 12 s at 25 fps; later frames are held out
    c.finetune.epochs = 60.0
    c.finetune.steps = 0  # > 0 overrides epochs
    c.finetune.lr = 1e-4
    # Stochastic weight averaging from this fine-tune step on (-1 = off): the evaluated
    # generator is the mean of the later iterates, which evens out the adversarial game's
    # oscillation (the README's real-video run averages the second half).
    c.finetune.average_from = -1
    c.finetune.init_from = ""  # a pretrained workdir: fine-tune only, from its parameters

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 1  # global; split over the `data` mesh axis
    c.train.steps = 20_000  # pretraining
    c.train.lr = 1e-4
    c.train.b1 = 0.5
    c.train.grad_clip = 0.0
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 2
    c.train.log_every = 50

    c.eval = ml_collections.ConfigDict()
    c.eval.max_frames = 0  # held-out frames scored (0 = all)
    c.eval.strip_frames = 4  # rows of the render | refined | real strip
    # Also score the generator's test-time self-ensemble (beyond the paper; `predict.Refiner`):
    # -1 = off, 0 = mean with the mirrored pass, s > 0 = mirror x shifts in {-s, 0, s}^2 px.
    c.eval.ensemble_shift = -1

    if arg == "cpu128":
        c.model.size = 128
        c.model.g_features = (32, 64, 128, 256, 256, 256, 256)
        c.model.d_features = (32, 64, 128, 256)
        c.train.batch_size = 4
        c.train.checkpoint_every = 200
        c.train.log_every = 20
        # The README's real-video recipe: 3400 steps at batch 4 (45 epochs of 300 frames: the
        # paper's 60 took 33 min here, over the 30; these take 24.5), pix2pix's lr,
        # the generator averaged over the second half (+0.47 dB measured).
        c.finetune.lr = 2e-4
        c.finetune.steps = 3400
        c.finetune.average_from = 1700
        # The README's real-video figures report both one pass and the self-ensemble of the
        # mirror x shifts by 4 px (18 passes; the crop augmentation moves frames by up to 15).
        c.eval.ensemble_shift = 4
    elif arg == "real":
        c.model.size = 128
        c.model.g_features = (32, 64, 128, 256, 256, 256, 256)
        c.model.d_features = (32, 64, 128, 256)
        c.data.root = REAL_PAIRS_ROOTS
        c.train.batch_size = 4
        c.train.steps = 5000
        c.train.lr = 2e-4
        c.train.checkpoint_every = 250
        c.train.keep_checkpoints = 2
        c.train.log_every = 25
        # The per-target fine-tune of generation (`generation.personalize`): small128's.
        c.finetune.lr = 2e-4
        c.finetune.steps = 300
        c.finetune.average_from = 150
    elif arg == "small128":
        # The synthetic-pairs GAN (talkingjax/assets/models/synthetic/gan): 128^2
        # with narrow deep levels (0.86 M generator parameters, 0.32 GFLOP a frame), pretrained
        # on the project's synthetic pairs; its per-target fine-tune is 300 steps (~1 min).
        c.model.size = 128
        c.model.g_features = (16, 32, 64, 64, 64, 64, 64)
        c.model.d_features = (16, 32, 64, 128)
        c.data.synthetic_identities = 24
        c.data.synthetic_frames = 60
        c.train.batch_size = 4
        c.train.steps = 1500
        c.train.lr = 2e-4
        c.train.checkpoint_every = 500
        c.train.keep_checkpoints = 1
        c.finetune.lr = 2e-4
        c.finetune.steps = 300
        c.finetune.average_from = 150
    elif arg == "tiny":
        c.model.size = 64  # CPBD's smallest frame (one 64 x 64 block)
        c.model.g_features = (8, 16, 16, 16)
        c.model.d_features = (8, 16)
        c.data.synthetic_identities = 3
        c.data.synthetic_frames = 12
        c.finetune.frames = 8
        c.finetune.epochs = 2.0
        c.train.batch_size = 4
        c.train.steps = 6
        c.train.lr = 1e-3
        c.finetune.lr = 1e-3
        c.train.checkpoint_every = 4
        c.train.log_every = 2
        c.eval.strip_frames = 2
        c.model.memory.slots = 64
        c.model.memory.key_dim = 16
        c.model.memory.identity_dim = 16
        c.model.memory.key_features = (8, 16)
        c.model.memory.identity_features = (8, 16)
        c.model.memory.identity_classes = 8
        c.loss.top_k = 8
    elif arg not in (None, "", "paper"):
        raise ValueError(
            f"unknown config variant {arg!r}; expected 'cpu128', 'real', 'small128', 'tiny' or "
            "nothing"
        )
    return c
