"""Whether a preprocessed file can be used: written by a converter version that is not known to be
broken, and with image paths that open (`expose inspect`, the training data loader)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expose_cli.data.converters import CONVERTERS
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.errors import ExposeError, option
from expose_cli.io.paths import DataTree

#: dataset -> {converter version: what is wrong with its files}.
BROKEN_VERSIONS: dict[str, dict[str, str]] = {
    "h36m-smplx": {"1": "its image paths lack the subject folder (images/S1_... instead of S1/images/S1_...)"},
}


def stale_reason(attrs: dict) -> str | None:
    """One line saying why a file's converter version is known to be broken (and what to run), or
    None. ``attrs``: the file's attributes (``dataset``, ``converter_version`` = ``<dataset>-<version>``)."""
    dataset = str(attrs.get("dataset", ""))
    written = str(attrs.get("converter_version", ""))
    version = written[len(dataset) + 1:] if written.startswith(dataset + "-") else written
    why = BROKEN_VERSIONS.get(dataset, {}).get(version)
    if why is None:
        return None
    return f"written by {dataset} converter version {version}, whose {why}: re-run `expose preprocess {dataset}`"


@dataclass
class ImagePathCheck:
    """How many ``image_path`` entries of a file (all, or an evenly spaced sample) open as files."""

    root: Path  # the folder they were resolved against
    checked: int
    resolved: int
    total: int  # rows in the file
    first_missing: str | None = None
    embedded: bool = False  # the file holds the image crops (--embed-images): paths are not needed

    @property
    def complete(self) -> bool:
        return self.resolved == self.checked


def tree_image_root(tree: DataTree, dataset: str) -> Path:
    """The folder a dataset's image paths are relative to in a data tree: its raw folder, or the
    converter's ``image_root`` of it (curated fits and SPIN: ``data/datasets``)."""
    return CONVERTERS[dataset].image_root(tree.raw_dataset(dataset))  # every converter has one (Converter)


def _count(root: Path, paths: np.ndarray) -> tuple[int, str | None]:
    missing = [p for p in paths if not (root / p).is_file()]
    return len(paths) - len(missing), (missing[0] if missing else None)


def count_resolving(reader: HDF5Reader, data_dir: Path | None = None, sample: int | None = None) -> ImagePathCheck:
    """Count the file's image paths that open under its ``raw_root`` or, failing that (a moved
    tree), under the dataset's image folder in the data tree ``data_dir``; the root that resolves
    more wins. ``sample``: check only that many rows, evenly spaced (all when None)."""
    total = len(reader)
    rows = np.arange(total) if sample is None or sample >= total else np.linspace(0, total - 1, sample).round().astype(int)
    paths = reader.file["image_path"][np.unique(rows)].astype(str) if total else np.zeros(0, str)
    embedded = "image_jpeg" in reader
    roots = [Path(str(reader.attrs.get("raw_root", ".")))]
    if data_dir is not None and reader.dataset in CONVERTERS:
        roots.append(tree_image_root(DataTree(data_dir), reader.dataset))
    best = None
    for root in roots:
        resolved, missing = _count(root, paths)
        if best is None or resolved > best.resolved:
            best = ImagePathCheck(root, len(paths), resolved, total, missing, embedded)
        if best.complete:
            break
    return best


def check_training_file(path: Path, data_dir: Path | None = None, sample: int = 64) -> None:
    """Refuse, with one line naming the file, a preprocessed file that training cannot read: from a
    broken converter version, or (without embedded images) with image paths that do not open."""
    with HDF5Reader(path) as reader:
        reason = stale_reason(reader.attrs)
        if reason is not None:
            raise ExposeError(reason, path=path)
        check = count_resolving(reader, data_dir, sample)
    if check.embedded or check.complete:
        return
    raise ExposeError(f"{check.checked - check.resolved} of {check.checked} image paths checked do not open under "
                      f"{check.root} (e.g. {check.first_missing})", path=path,
                      hint=f"put the dataset's images back, pass the data tree holding them ({option('data-dir')}), "
                           f"or re-run `expose preprocess` ({option('embed-images')} stores the crops in the file)")
