"""Metrics: functions of predictions and references that the evaluations report.

- Head pose: distribution similarity HS (paper 000 Eq. 11), frame-aligned errors and pattern
  retrieval (`pose`); the peers' pose metrics (`pose_peers`) and paper 003's head-pose
  classifier score, with its own small classifier (`pose_classifier`).
- Expression: mouth landmarks and the inner-lip opening on a face model (`mouth`).
- Images: PSNR, SSIM, L1 and CPBD sharpness (`image`).
- Videos, from a tracked face: head angular speed, jerk and steps, lagged correlation,
  Laplacian sharpness of the face, mouth opening and the paste seam (`video`).
`talkingjax.evaluation` runs them on trained models and writes the tables.
"""
