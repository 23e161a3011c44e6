"""What each converter writes: one place for the preprocessed files that other commands look for
(`expose doctor --for train`, the training data presets, `expose eval`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from expose_cli.data.converters import CONVERTERS
from expose_cli.errors import ExposeError
from expose_cli.io.catalog import DATASETS
from expose_cli.io.paths import DataTree

#: The splits of each dataset that training reads (training-reference §1: curated fits, SPIN's
#: fits in all four of their files, Human3.6M train for the body; FreiHAND train for the hand;
#: FFHQ for the face), from the catalog.
TRAINING_SPLITS: dict[str, tuple[str, ...]] = {d.name: d.training_splits for d in DATASETS.values()
                                                if d.training_splits}
#: The split of each benchmark dataset that `expose eval` scores, from the catalog.
BENCHMARK_SPLITS: dict[str, str] = {d.name: d.benchmark_split for d in DATASETS.values() if d.benchmark_split}


def output_files(name: str, tree: DataTree, splits: Iterable[str] | None = None) -> list[Path]:
    """The files ``expose preprocess NAME`` writes into ``tree``: one per split (``splits``, by
    default every split of the converter), ``preprocessed_datasets/<name>_<split>.h5``."""
    if name not in CONVERTERS:
        raise ExposeError(f"unknown dataset {name!r}", hint=f"available: {', '.join(sorted(CONVERTERS))}")
    known = CONVERTERS[name].SPLITS
    chosen = tuple(known if splits is None else splits)
    bad = [s for s in chosen if s not in known]
    if bad:
        raise ExposeError(f"{name} has no split {bad[0]!r}", hint=f"splits: {', '.join(known)}")
    return [tree.preprocessed_file(name, split) for split in chosen]


def training_files(name: str, tree: DataTree) -> list[Path]:
    """The preprocessed files of dataset ``name`` that training reads (:data:`TRAINING_SPLITS`)."""
    if name not in TRAINING_SPLITS:
        raise ExposeError(f"{name!r} is not a training dataset", hint=f"training uses {', '.join(TRAINING_SPLITS)}")
    return output_files(name, tree, TRAINING_SPLITS[name])
