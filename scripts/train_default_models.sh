#!/usr/bin/env bash
# Trains the small models shipped in talkingjax/assets/models -- the embedded default of
# `python -m experiments.generate` -- with the library's own trainers on project-made data only
# (the synthetic head-motion corpus, the synthetic speech-driven expression corpus, synthetic
# render/real pairs), then copies each workdir's config and last checkpoint there.
#   bash scripts/train_default_models.sh [WORKDIR_ROOT]     (default runs/default_models)
source "$(dirname "$0")/setup_env.sh"
W="${1:-runs/default_models}"
python -m experiments.train_pose --config=experiments/configs/pose.py:tiny --workdir="$W/pose"
python -m experiments.train_expression --config=experiments/configs/expression.py:tiny \
  --workdir="$W/expression" --noeval
python -m experiments.train_gan --config=experiments/configs/gan.py:small128 --workdir="$W/gan" \
  --noeval
for part in pose expression gan; do
  dest="talkingjax/assets/models/$part"
  step=$(ls "$W/$part/checkpoints" | grep -E '^[0-9]+$' | sort -n | tail -1)
  rm -rf "$dest" && mkdir -p "$dest/checkpoints"
  cp "$W/$part/config.json" "$dest/"
  cp -r "$W/$part/checkpoints/$step" "$dest/checkpoints/"
done
du -sh talkingjax/assets/models/*
