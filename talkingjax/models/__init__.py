"""Stateless Flax linen models. Paper 000 head motion: `MotionEncoder`, `PoseDecoder`."""

from talkingjax.models.head_motion import (
    HeadMotionModel,
    MotionEncoder,
    PoseDecoder,
    build_model,
    rows_for_frames,
)
from talkingjax.models.layers import StackedLSTM

__all__ = [
    "HeadMotionModel",
    "MotionEncoder",
    "PoseDecoder",
    "StackedLSTM",
    "build_model",
    "rows_for_frames",
]
