"""The dataset catalog: one typed entry per dataset that `expose preprocess` converts, holding the
facts the other layers look up by its name: the converter module, the raw folder under
``DATA_DIR/datasets/``, the splits training reads (its member name derives from the dataset's) and
the split `expose eval` scores.

It sits in ``io/`` because the data tree (:mod:`expose_cli.io.paths`) resolves raw folders and must
not import ``data/`` (where the converters live, some needing torch: listing the names imports
none of them). How each split is converted is the converter module's
(``expose_cli/data/converters/<module>.py``, checked against the ``Converter`` protocol of
:mod:`expose_cli.data.converters` when it is imported). Adding a dataset: one entry here and its
converter module (docs/architecture.md, "How to add").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset. ``name``: as `expose preprocess NAME` spells it; ``module``: its converter,
    ``expose_cli/data/converters/<module>.py``; ``raw_dir``: its raw folder under ``datasets/``;
    ``training_splits``: the splits training reads, as one member named :attr:`member` (none: not a
    training set); ``benchmark_split``: the split `expose eval` scores (``None``: no benchmark)."""

    name: str
    module: str
    raw_dir: str
    training_splits: tuple[str, ...] = ()
    benchmark_split: str | None = None

    @property
    def member(self) -> str | None:
        """The training member name (``data.members``): the name with ``_`` for ``-``."""
        return self.name.replace("-", "_") if self.training_splits else None

    @property
    def member_command(self) -> str:
        """The `expose preprocess` that writes the member's files (one split: named)."""
        one = f" --split {self.training_splits[0]}" if len(self.training_splits) == 1 else ""
        return f"expose preprocess {self.name}{one}"


#: Every dataset, by name; the order is the doctor's (benchmarks, then training files, each in this order).
DATASETS: Mapping[str, DatasetEntry] = MappingProxyType({d.name: d for d in (
    DatasetEntry("ehf", "ehf", "EHF", benchmark_split="val"),
    DatasetEntry("3dpw", "pw3d", "3DPW", benchmark_split="test"),
    DatasetEntry("curated-fits", "curated_fits", "ExPose_curated_fits", training_splits=("train",)),
    DatasetEntry("spin-smplx", "spin_smplx", "spin_in_smplx", training_splits=("coco", "lsp", "lspet", "mpii")),
    DatasetEntry("h36m-smplx", "h36m_smplx", "h36m", training_splits=("train",)),
    DatasetEntry("freihand", "freihand", "FreiHand", training_splits=("train",), benchmark_split="test"),
    DatasetEntry("ffhq", "ffhq", "ffhq", training_splits=("train",)),
    DatasetEntry("stirling", "stirling", "stirling", benchmark_split="HQ"),
    DatasetEntry("coco", "coco", "coco"),
)})
#: Training member name -> dataset.
MEMBERS: Mapping[str, DatasetEntry] = MappingProxyType({d.member: d for d in DATASETS.values() if d.member})
