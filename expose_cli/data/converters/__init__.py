"""Raw dataset -> sample dicts, one module per dataset (``SPLITS``, ``VERSION``, ``iter_samples``)."""

from expose_cli.data.converters import ehf, freihand

#: `expose preprocess NAME` -> converter module (each yields rows of docs/hdf5-schema.md).
CONVERTERS = {"ehf": ehf, "freihand": freihand}
