"""Datasets: the uniform HDF5 layout, raw-format readers and converters."""
