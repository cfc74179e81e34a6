"""The head-motion benchmark's shapes, one definition for both sides of the comparison.

`pose_speed.py` (talkingjax) and `torch_pose.py` (PyTorch) take the same flags, so
`side_by_side.py` compares the same work; no JAX or torch import here.
"""

import argparse


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --steps, --batch, --frames and --speech_seconds."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=3, help="timed training steps (best is kept)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=300, help="training window (25 fps frames)")
    p.add_argument("--speech_seconds", type=float, default=60.0, help="inference speech length")
    return p
