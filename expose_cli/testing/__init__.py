"""Synthetic stand-ins for licensed assets, checkpoints and raw datasets (used by tests, demo, benchmarks)."""
