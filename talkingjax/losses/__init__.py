"""Every loss equation of the papers, one function each, findable by its number.

Paper 000 (Yi et al. 2022), head motion (`head_motion.py`):
  Eq. 1  pattern_contrastive      L_contra(E_m), margin tau = 2
  Eq. 2  head_motion_objective    L_recon + 5 L_smooth + L_contra + L_contra2
  Eq. 3  pose_reconstruction      squared rotation-matrix + translation errors: MSE (mean=True,
                                  footnote 2) or summed over frames and values
  Eq. 4  pose_smoothness          first and second differences
  Eq. 5  pose_contrastive         L_contra2(E_m, D_m), margin tau2 = 2

Paper 000, audio to expression (`expression.py`):
  Eq. 7  expression_loss          MSE(exp) + 1e-4 expression continuity

Paper 001 (Yi et al. 2020, the predecessor), joint expression + pose (`expression.py`):
  Eq. 2  joint_expression_pose_loss  (alias `p001_eq2`) MSE(exp) + 0.2 MSE(pose)
                                     + 0.01 pose continuity + 1e-4 expression continuity
  building blocks: masked_mse (the MSE terms), continuity (sum_t ||x(t+1) - x(t)||^2)

Paper 000, rendering-to-realistic GAN (`gan.py`):
  Eq. 8  eq8 = attention composite o = A r_t + (1 - A) C (an output, not a loss)
  Eq. 9  eq9 = L(G, D): GAN + 100 L1 + 2 mean(A) + 1e-5 TV(A)
  Eq. 10 eq10 = the one-scalar min-max loss that trains G and D with one optimizer
Paper 001, memory-augmented GAN (`memory.py`, Sec. 3.4): threshold_triplet_loss (MemoPainter,
  unnumbered), arcface_loss (trains the project's identity encoder).

The peers' pose models, one module each (`from talkingjax.losses import audio2head`):
  Paper 002 (Audio2Head, `audio2head.py`): Eq. 3 p002_eq3 = pose_ssim (1 - SSIM of the 6 x T
    pose image), Eq. 4 p002_eq4 = pose_predictor_objective (LSGAN + SSIM).
  Paper 003 (PoseGAN, `posegan.py`): Eq. 3 p003_eq3_pose / p003_eq3_motion, Eq. 4 p003_eq4
    (alpha L_pose + beta L_p-motion), Eq. 5 p003_eq5 (conditional GAN value), Eq. 6 p003_eq6.
    Eq. 1 (Gaussian pose filter) is `talkingjax.video.reconstruct.smooth_pose`.
  Paper 004 (Live Speech Portraits, `lsp.py`): Eq. 9 p004_eq9 = apc_l1, Eq. 11 p004_eq11 =
    gaussian_pose_nll (pose + velocity, 12-d).
"""

from talkingjax.losses import audio2head, gan, lsp, memory, posegan
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
eq8 = gan.p000_eq8
eq9 = gan.p000_eq9
eq10 = gan.p000_eq10
p002_eq3 = audio2head.p002_eq3
p002_eq4 = audio2head.p002_eq4
p003_eq3_pose = posegan.p003_eq3_pose
p003_eq3_motion = posegan.p003_eq3_motion
p003_eq4 = posegan.p003_eq4
p003_eq5 = posegan.p003_eq5
p003_eq6 = posegan.p003_eq6
p004_eq9 = lsp.p004_eq9
p004_eq11 = lsp.p004_eq11

__all__ = [
    "eq1",
    "eq2",
    "eq3",
    "eq4",
    "eq5",
    "eq7",
    "p001_eq2",
    "eq8",
    "eq9",
    "eq10",
    "gan",
    "memory",
    "p002_eq3",
    "p002_eq4",
    "p003_eq3_pose",
    "p003_eq3_motion",
    "p003_eq4",
    "p003_eq5",
    "p003_eq6",
    "p004_eq9",
    "p004_eq11",
    "audio2head",
    "lsp",
    "posegan",
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
