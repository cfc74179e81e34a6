"""3D morphable face models: the container and its pure functions (`model`), the camera,
coefficients and their 257-d layout (`coeffs`), the Basel Face Model loader (`bfm`) and the
default model that ships with the package (`default`, built by `build_default`)."""
