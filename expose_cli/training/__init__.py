"""Training: datasets over the preprocessed HDF5 files, augmentations, mixing, a synthetic set
(and, from the `expose train` work, losses and the loop)."""
