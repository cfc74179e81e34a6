#!/usr/bin/env bash
# Trains the small models shipped in talkingjax/assets/models -- the embedded default of
# `python -m experiments.generate` -- with the library's own trainers, then copies each
# workdir's config and last checkpoint there:
#   1. on project-made data: head motion on the synthetic corpus (pose.py:tiny), expression on
#      the synthetic speech-driven expression corpus (expression.py:tiny) -> assets/models/synthetic/;
#      the GAN on synthetic render/real pairs (gan.py:small128) -> assets/models/synthetic/;
#   2. on the real corpus's training speakers (experiments/corpus/split.json), head motion and
#      expression started from their synthetic models of step 1: pose.py:real and
#      expression.py:real -> assets/models/pose and assets/models/expression; the GAN
#      pretrained from scratch on (render, real) pairs of those speakers' clips, both albedos
#      (gan.py:real) -> assets/models/gan (the defaults generation uses).
#
#   bash scripts/train_default_models.sh [WORKDIR_ROOT] [PREPROCESSED_CORPUS]
# WORKDIR_ROOT defaults to runs/default_models; PREPROCESSED_CORPUS (what
# `python -m experiments.preprocess --input=<the real corpus> --out=DIR` wrote) to ../runs/corpus.
# TRAIN_GAN=0 skips both GANs (it keeps the shipped ones).
source "$(dirname "$0")/setup_env.sh"
W="${1:-runs/default_models}"
CORPUS="${2:-../runs/corpus}"
if [ ! -d "$CORPUS/reports" ]; then
  echo "error: $CORPUS is not a preprocessed corpus (no reports/): run experiments.preprocess first" >&2
  exit 2
fi
python -m experiments.train_pose --config=experiments/configs/pose.py:tiny \
  --workdir="$W/synthetic/pose"
python -m experiments.train_expression --config=experiments/configs/expression.py:tiny \
  --workdir="$W/synthetic/expression" --noeval
if [ "${TRAIN_GAN:-1}" != "0" ]; then
  python -m experiments.train_gan --config=experiments/configs/gan.py:small128 \
    --workdir="$W/synthetic/gan" --noeval
  for albedo in detailed model; do
    python -m experiments.make_gan_pairs --out="$W/gan_pairs/$albedo" --size=128 \
      --preprocessed="$CORPUS" --split_file=experiments/corpus/split.json --part=train \
      --max_frames=300 --albedo=$albedo
  done
  python -m experiments.train_gan --config=experiments/configs/gan.py:real \
    --config.data.root="$W/gan_pairs/detailed,$W/gan_pairs/model" --workdir="$W/gan" --noeval
fi
python -m experiments.train_pose --config=experiments/configs/pose.py:real \
  --config.data.root="$CORPUS" --config.train.init_from="$W/synthetic/pose" \
  --workdir="$W/pose" --noeval
python -m experiments.train_expression --config=experiments/configs/expression.py:real \
  --config.data.root="$CORPUS" --config.train.init_from="$W/synthetic/expression" \
  --workdir="$W/expression" --noeval

parts="synthetic/pose synthetic/expression pose expression"
[ "${TRAIN_GAN:-1}" != "0" ] && parts="$parts synthetic/gan gan"
for part in $parts; do
  dest="talkingjax/assets/models/$part"
  rm -rf "$dest" && mkdir -p "$dest"
  if [ "$part" = "gan" ]; then
    # 10.5 M generator parameters: shipped as an exported workdir (the evaluated variables in
    # float16, no optimizer state; runner.export), 22 MB instead of a 147 MB checkpoint.
    python -c "from talkingjax.train import gan, runner; runner.export(gan.TRAINER, '$W/gan', '$dest', dtype='float16')"
  else
    step=$(ls "$W/$part/checkpoints" | grep -E '^[0-9]+$' | sort -n | tail -1)
    mkdir -p "$dest/checkpoints"
    cp "$W/$part/config.json" "$dest/"
    cp -r "$W/$part/checkpoints/$step" "$dest/checkpoints/"
  fi
  if [ -f "$W/$part/train_clips.json" ]; then cp "$W/$part/train_clips.json" "$dest/"; fi
done
du -sh talkingjax/assets/models/*
