"""Raw dataset -> sample dicts, one module per dataset (``SPLITS``, ``VERSION``, ``iter_samples``;
``split_present(root, split)`` and ``expected_input(split)``, so a run without ``--split`` converts
the splits that are there and says what the others need; optional ``image_root(root)`` when image
paths are relative to another folder, and ``file_attrs(options)`` for extra file attributes)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType


class _Modules(Mapping):
    """Dataset name -> converter module, each imported when first looked up: listing the names
    (``expose --help``) imports none of them (some need torch, seconds to import)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules

    def __getitem__(self, name: str) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self._modules[name]}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


#: `expose preprocess NAME` -> converter module (each yields rows of docs/hdf5-schema.md).
CONVERTERS: Mapping[str, ModuleType] = _Modules({
    "3dpw": "pw3d", "coco": "coco", "curated-fits": "curated_fits", "ehf": "ehf", "ffhq": "ffhq",
    "freihand": "freihand", "h36m-smplx": "h36m_smplx", "spin-smplx": "spin_smplx", "stirling": "stirling",
})
