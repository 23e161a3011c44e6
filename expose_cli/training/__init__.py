"""Training: datasets over the preprocessed HDF5 files, augmentations, mixing, a synthetic set;
losses, the typed run config, the loop, checkpoints, distributed helpers, pretrained weights."""
