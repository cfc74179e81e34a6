"""Data: the head-motion record format (`records`), triplet sampling (`sampling`), the 257-d
coefficient loader (`coeff257`) and the synthetic corpus (`synthetic`)."""
