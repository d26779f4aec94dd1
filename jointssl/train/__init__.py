"""Pre-training: the per-worker loop, its schedule, checkpoints and the online quality probe."""
