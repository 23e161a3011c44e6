"""Training: losses, configs, the loop, checkpoints, distributed helpers, pretrained weights."""
