"""Running a converter: raw folder -> ``<dataset>_<split>.h5`` with progress, limits and error policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from expose_cli.assets.paths import DataTree
from expose_cli.data.converters import CONVERTERS
from expose_cli.data.hdf5 import DropStats, HDF5Writer
from expose_cli.errors import ExposeError


@dataclass
class ConvertResult:
    dataset: str
    split: str
    path: Path
    samples: int
    stats: DropStats


def converter_options(name: str, tree: DataTree, skip_bad: bool) -> dict:
    """Dataset-specific options (FreiHAND: the SMPL-X right-hand mean from all_means.pkl)."""
    options: dict = {"skip_bad": skip_bad}
    if name == "freihand" and tree.all_means.is_file():
        from expose_cli.body_models.auxiliary import Auxiliary

        entry = Auxiliary(tree).all_means().get("right_hand_pose", {})
        if isinstance(entry, dict) and "aa" in entry:
            options["right_hand_mean"] = entry["aa"]
    return options


def convert(name: str, tree: DataTree, root: Path | None = None, splits: list[str] | None = None,
            out: Path | None = None, overwrite: bool = False, skip_bad: bool = False, limit: int | None = None,
            on_sample: Callable[[str], None] | None = None) -> list[ConvertResult]:
    """Convert the splits of dataset ``name``; each file is complete or absent."""
    if name not in CONVERTERS:
        raise ExposeError(f"unknown dataset {name!r}", hint=f"available: {', '.join(sorted(CONVERTERS))}")
    module = CONVERTERS[name]
    root = Path(root) if root is not None else tree.raw_dataset(name)
    if not root.is_dir():
        raise ExposeError("raw dataset folder not found", path=root,
                          hint="download it (`expose fetch --list` shows where from) or pass --root")
    splits = splits or list(module.SPLITS)
    bad = [s for s in splits if s not in module.SPLITS]
    if bad:
        raise ExposeError(f"{name} has no split {bad[0]!r}", hint=f"splits: {', '.join(module.SPLITS)}")
    if out is not None and len(splits) > 1:
        raise ExposeError("--out names one file, but several splits are converted", hint="add --split")
    options = converter_options(name, tree, skip_bad)
    results = []
    for split in splits:
        path = out or tree.preprocessed_file(name, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        image_root = module.image_root(root) if hasattr(module, "image_root") else root
        writer = HDF5Writer(path, name, split, image_root, f"{name}-{module.VERSION}", overwrite=overwrite)
        stats = writer.stats
        try:
            for i, sample in enumerate(module.iter_samples(root, split, stats, options)):
                if limit is not None and i >= limit:
                    stats.note("samples left out by --limit")
                    break
                writer.append(sample)
                if on_sample:
                    on_sample(split)
            count = writer.count + len(writer.buffer)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        results.append(ConvertResult(name, split, path, count, stats))
    return results
