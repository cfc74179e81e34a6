#!/usr/bin/env bash
# The main job on the embedded default: 12 s of a real person (a US presidential address, public
# domain, third_party/obama_weekly_address) as the target and 8 s of its later speech, then the
# whole generation of paper 000 with the shipped models: fit the target, encode its motion pattern,
# fine-tune the expression regressor and the GAN on it, predict pose and expression from the
# speech, match backgrounds, render, refine, paste back and write the mp4 with the speech.
# Writes runs/default/talking.mp4, talking_side.mp4 (target | output), talking_pose.png.
# Extra arguments go to experiments.generate (e.g. --seed=1, --pose-scale=1.5, --still).
source "$(dirname "$0")/setup_env.sh"
python -m experiments.generate --default --out=runs/default/talking.mp4 \
  --cache=runs/default/cache "$@"
