"""Reading files, below every other layer: the data tree's paths, images, the restricted
unpickler, streamed JSON number arrays, file hashes, .safetensors files. Imports only ``errors`` and ``utils``."""
