"""Raw dataset -> sample dicts, one module per dataset (``SPLITS``, ``VERSION``, ``iter_samples``;
``split_present(root, split)`` and ``expected_input(split)``, so a run without ``--split`` converts
the splits that are there and says what the others need; optional ``image_root(root)`` when image
paths are relative to another folder, and ``file_attrs(options)`` for extra file attributes)."""

from expose_cli.data.converters import (
    coco,
    curated_fits,
    ehf,
    ffhq,
    freihand,
    h36m_smplx,
    pw3d,
    spin_smplx,
    stirling,
)

#: `expose preprocess NAME` -> converter module (each yields rows of docs/hdf5-schema.md).
CONVERTERS = {
    "3dpw": pw3d, "coco": coco, "curated-fits": curated_fits, "ehf": ehf, "ffhq": ffhq, "freihand": freihand,
    "h36m-smplx": h36m_smplx, "spin-smplx": spin_smplx, "stirling": stirling,
}
