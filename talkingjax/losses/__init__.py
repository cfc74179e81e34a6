"""Every loss equation of the papers, one function each, findable by its number.

Paper 000 (Yi et al. 2022), head motion (`head_motion.py`):
  Eq. 1  pattern_contrastive      L_contra(E_m), margin tau = 2
  Eq. 2  head_motion_objective    L_recon + 5 L_smooth + L_contra + L_contra2
  Eq. 3  pose_reconstruction      rotation-matrix MSE + translation MSE
  Eq. 4  pose_smoothness          first and second differences
  Eq. 5  pose_contrastive         L_contra2(E_m, D_m), margin tau2 = 2
"""

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

__all__ = [
    "eq1",
    "eq2",
    "eq3",
    "eq4",
    "eq5",
    "head_motion_objective",
    "pattern_contrastive",
    "pose_contrastive",
    "pose_reconstruction",
    "pose_smoothness",
]
