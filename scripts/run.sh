#!/usr/bin/env bash
# The main job on the embedded default: generate the synthetic head-motion corpus, train the
# paper-000 head motion model (tiny config) data-parallel, and evaluate it on held-out videos.
# Extra arguments go to experiments.train_pose (e.g. --workdir=DIR, --config.seed=1).
source "$(dirname "$0")/setup_env.sh"
python -m experiments.train_pose --config=experiments/configs/pose.py:tiny \
  --workdir=runs/pose_tiny "$@"
