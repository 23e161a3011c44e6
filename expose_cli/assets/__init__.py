"""Files on disk: the data tree, downloads, body-model import, safe loading."""
