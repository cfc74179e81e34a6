"""Differentiable rendering in JAX: spherical-harmonics lighting (`sh`), a footprint-bound
triangle rasterizer with differentiable barycentrics (`rasterize`) and face rendering from
morphable-model coefficients (`face`)."""
