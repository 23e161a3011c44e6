"""Raw dataset -> sample dicts, one module per dataset of the catalog
(:data:`expose_cli.io.catalog.DATASETS`), each a :class:`Converter`: ``SPLITS``, ``VERSION``,
``iter_samples``; ``split_present(root, split)`` and ``expected_input(split)``, so a run without
``--split`` converts the splits that are there and says what the others need; ``image_root(root)``,
the folder image paths are relative to, and ``file_attrs(options)``, extra file attributes."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from expose_cli.io.catalog import DATASETS


@runtime_checkable
class Converter(Protocol):
    """What a converter module defines (checked when it is first imported)."""

    SPLITS: tuple[str, ...]
    VERSION: str

    def iter_samples(self, root: Path, split: str, stats: Any, options: dict) -> Iterator[dict]: ...

    def split_present(self, root: Path, split: str) -> bool: ...

    def expected_input(self, split: str) -> str: ...

    def image_root(self, root: Path) -> Path: ...

    def file_attrs(self, options: dict) -> dict: ...


def check_converter(name: str, module: ModuleType) -> Converter:
    """``module`` if it is a :class:`Converter` having every split the catalog names for ``name``;
    else a ``TypeError`` naming the module and what it lacks."""
    if not isinstance(module, Converter):
        missing = [a for a in ("SPLITS", "VERSION", "iter_samples", "split_present", "expected_input",
                               "image_root", "file_attrs") if not hasattr(module, a)]
        raise TypeError(f"converter module {module.__name__} of dataset {name!r} lacks {', '.join(missing)} "
                        "(see expose_cli.data.converters.Converter)")
    entry = DATASETS[name]
    named = set(entry.training_splits) | ({entry.benchmark_split} - {None})
    if not named <= set(module.SPLITS):
        raise TypeError(f"the catalog names splits {sorted(named - set(module.SPLITS))} of dataset {name!r} "
                        f"that its converter {module.__name__} does not have ({', '.join(module.SPLITS)})")
    return module


class _Modules(Mapping):
    """Dataset name -> converter module, each imported when first looked up: listing the names
    (``expose --help``) imports none of them (some need torch, seconds to import)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules

    def __getitem__(self, name: str) -> Converter:
        """The converter of ``name``, imported and checked (:func:`check_converter`)."""
        return check_converter(name, importlib.import_module(f"{__name__}.{self._modules[name]}"))

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


#: `expose preprocess NAME` -> converter module (each yields rows of docs/hdf5-schema.md).
CONVERTERS: Mapping[str, Converter] = _Modules({d.name: d.module for d in DATASETS.values()})
