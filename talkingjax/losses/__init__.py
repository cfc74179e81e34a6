"""Every loss equation of the papers, one function each, findable by its number.

Paper 000 (Yi et al. 2022), head motion (`head_motion.py`):
  Eq. 1  pattern_contrastive      L_contra(E_m), margin tau = 2
  Eq. 2  head_motion_objective    L_recon + 5 L_smooth + L_contra + L_contra2
  Eq. 3  pose_reconstruction      rotation-matrix MSE + translation MSE
  Eq. 4  pose_smoothness          first and second differences
  Eq. 5  pose_contrastive         L_contra2(E_m, D_m), margin tau2 = 2

Paper 000, audio to expression (`expression.py`):
  Eq. 7  expression_loss          MSE(exp) + 1e-4 expression continuity

Paper 001 (Yi et al. 2020, the predecessor), joint expression + pose (`expression.py`):
  Eq. 2  joint_expression_pose_loss  (alias `p001_eq2`) MSE(exp) + 0.2 MSE(pose)
                                     + 0.01 pose continuity + 1e-4 expression continuity
  building blocks: masked_mse (the MSE terms), continuity (sum_t ||x(t+1) - x(t)||^2)
"""

from talkingjax.losses.expression import (
    continuity,
    expression_loss,
    joint_expression_pose_loss,
    masked_mse,
)
from talkingjax.losses.head_motion import (
    head_motion_objective,
    pattern_contrastive,
    pose_contrastive,
    pose_reconstruction,
    pose_smoothness,
)

eq1 = pattern_contrastive
eq2 = head_motion_objective
eq3 = pose_reconstruction
eq4 = pose_smoothness
eq5 = pose_contrastive
eq7 = expression_loss
p001_eq2 = joint_expression_pose_loss  # paper 001's Eq. 2 (paper 000's Eq. 2 is `eq2`)

__all__ = [
    "eq1",
    "eq2",
    "eq3",
    "eq4",
    "eq5",
    "eq7",
    "p001_eq2",
    "continuity",
    "expression_loss",
    "joint_expression_pose_loss",
    "masked_mse",
    "head_motion_objective",
    "pattern_contrastive",
    "pose_contrastive",
    "pose_reconstruction",
    "pose_smoothness",
]
