"""Raw dataset -> sample dicts, one module per dataset (``SPLITS``, ``VERSION``, ``iter_samples``)."""

from expose_cli.data.converters import ehf, freihand, pw3d, stirling

#: `expose preprocess NAME` -> converter module (each yields rows of docs/hdf5-schema.md).
CONVERTERS = {"3dpw": pw3d, "ehf": ehf, "freihand": freihand, "stirling": stirling}
