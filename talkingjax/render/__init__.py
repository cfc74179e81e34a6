"""Differentiable rendering in JAX (stage 2 of paper 000): spherical-harmonics lighting (`sh`),
a footprint-bound triangle rasterizer with differentiable barycentrics (`rasterize`), and face
rendering and landmark projection from morphable-model coefficients (`face`)."""
