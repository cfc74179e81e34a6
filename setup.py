"""Installs talkingjax; `pip install -e .[test]` adds the test and lint tools."""

import setuptools

setuptools.setup(
    name="talkingjax",
    version="0.1.0",
    description="Audio-driven talking-face video with personalized head motion, in JAX.",
    packages=setuptools.find_packages(include=["talkingjax", "talkingjax.*", "experiments*"]),
    package_data={
        "talkingjax": ["data/assets/*", "assets/models/*.md", "assets/models/**/*"],
        "talkingjax.face3d": ["assets/*.npz", "assets/*.md"],
    },
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10,<0.11",
        "jaxlib>=0.10,<0.11",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "chex>=0.1.90",
        "librosa>=0.10",
        "numpy>=1.26",
        "scipy>=1.11",
        # 0.10.14 is the newest wheel that still bundles the face-mesh model (BUILD.md).
        "mediapipe==0.10.14",
        "opencv-python>=4.9",
        "absl-py>=2.0",
        "ml-collections>=0.1.1",
        "matplotlib>=3.7",
        "soundfile>=0.12",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.6", "ruff>=0.6"],
        # benchmarks/side_by_side.py only: PyTorch on the same shapes (a CPU wheel will do)
        "bench": ["torch>=2.5"],
    },
)
