"""Stateless Flax linen models.

Paper 000 head motion: `MotionEncoder`, `PoseDecoder` (`build_model`). Audio to expression
(paper 000 Eq. 6, paper 001 Eq. 1): `AudioEncoder`, `ExpressionRegressor`
(`build_expression_model`, inputs from `expression_windows`).

The peers' pose models, one module each: `audio2head` (paper 002: `Audio2HeadPose`,
`PosePatchDiscriminator`), `posegan` (paper 003: `PoseGANGenerator`, `PoseGANDiscriminator`,
`generate_long`), `lsp` (paper 004: `LSPPoseModel`, `sample`, `APC`, `manifold_projection`).
Rendering-to-realistic GAN: `gan` (paper 000: `AttentionUNetGenerator`, `PatchDiscriminator`),
`memory` (paper 001: `AdaIN`, key / identity encoders, the memory state and its updates).
"""

from talkingjax.models import audio2head, gan, lsp, memory, posegan
from talkingjax.models.expression import (
    AudioEncoder,
    ExpressionRegressor,
    build_expression_model,
    expression_windows,
    flops_per_frame,
    predict_sequence,
)
from talkingjax.models.head_motion import (
    HeadMotionModel,
    MotionEncoder,
    PoseDecoder,
    build_model,
    rows_for_frames,
)
from talkingjax.models.layers import StackedLSTM

__all__ = [
    "audio2head",
    "gan",
    "memory",
    "lsp",
    "posegan",
    "AudioEncoder",
    "ExpressionRegressor",
    "build_expression_model",
    "expression_windows",
    "flops_per_frame",
    "predict_sequence",
    "HeadMotionModel",
    "MotionEncoder",
    "PoseDecoder",
    "StackedLSTM",
    "build_model",
    "rows_for_frames",
]
