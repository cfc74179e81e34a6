"""Metrics: head-pose similarity (HS, paper 000 Eq. 11), pose errors and pattern retrieval
(`pose`); the peers' pose metrics (`pose_peers`, `pose_classifier`); image quality: PSNR,
SSIM, L1 and CPBD sharpness (`image`)."""
