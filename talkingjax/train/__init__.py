"""Training: data-parallel update functions (shard_map over a `data` axis), Orbax
checkpoints, JSONL metrics, and the trainers built on them."""
