"""Metrics: head-pose similarity (HS, paper 000 Eq. 11), pose errors and pattern retrieval
(`pose`)."""
