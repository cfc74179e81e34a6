"""3D morphable face models (stage 1 of paper 000): the container and its pure functions
(`model`), the camera (`camera`), coefficients and their 257-d layout (`coeffs`), fitting to an
image (`fit`), the Basel Face Model reader (`bfm`), the default model that ships with the
package (`default`; built by `build_default` from MediaPipe fits of portraits and videos, on the
face-mesh `topology`), reading portraits and their MediaPipe landmarks (`images`) and synthetic
models of any size for tests and benchmarks (`synthetic`)."""
