"""talkingjax: audio-driven talking-face video with personalized head motion, in JAX.

Paper 000 (Yi et al., TMM 2022) is the system; its predecessor and peers are baselines.
Subpackages: `audio` (MFCC front-end), `data` (records, synthetic corpus), `models`,
`losses` (one function per paper equation), `metrics`, `train` (data-parallel trainer).
"""

__version__ = "0.1.0"
