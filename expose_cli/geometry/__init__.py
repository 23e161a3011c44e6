"""Pure geometry functions: rotations, cameras, crops, Procrustes alignment (torch, batched)."""
