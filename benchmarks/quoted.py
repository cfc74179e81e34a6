"""Peer figures the benchmarks print beside their own, none measured by this project's runs.

Each benchmark's JSON carries them under "quoted_*" keys with their source; the README's speed
tables label them "quoted". ISSUE_24 is the side-by-side run issue 24 reports (PyTorch 2.14.1
eager running the same architectures at the reference sizes, in one run with talkingjax on
this machine kind: 2 CPU cores, JAX 0.10.2), with talkingjax's figures of that run, so a
ratio is never formed from two different runs.
"""

ISSUE_24 = {
    "source": "issue 24: PyTorch 2.14.1 eager and talkingjax side by side in one run on this "
    "machine kind (2 CPU cores, JAX 0.10.2); not measured by this run",
    "pose_train_step_b16x300_s": {"pytorch": 2.29, "talkingjax": 4.74},
    "pose_pattern_and_pose_60s_speech_s": {"pytorch": 4.38, "talkingjax": 0.58},
    "expression_train_step_b16x16_s": {"pytorch": 2.68, "talkingjax": 2.47},
    "expression_inference_60s_speech_s": {"pytorch": 6.07, "talkingjax": 3.37},
    "gan_train_step_128_b4_s": {"pytorch": 4.26, "talkingjax": 0.76},
    "gan_train_step_256_b1_s": {"pytorch": 6.30, "talkingjax": 0.74},
    "render_forward_224_fps": {"llvmpipe": 76, "talkingjax": 78},
}
