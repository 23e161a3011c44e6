"""Running a converter: raw folder -> ``<dataset>_<split>.h5`` with progress, limits and error policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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


#: ``--embed-images``: the stored crop's side relative to the box's longer side (room for ExPose's
#: scale (+-25%) and rotation (+-30 degrees) augmentations around the 1.25x crop), and its size cap.
EMBED_CONTEXT = 2.0
EMBED_MAX_SIDE = 512


def embed_image(sample: dict, image_root: Path) -> dict:
    """Add the JPEG of a square crop around the person and the affine that made it."""
    from expose_cli.geometry.crops import bbox_xywh_to_center_scale, crop_affine
    from expose_cli.inference.inputs import read_image

    image = read_image(image_root / sample["image_path"])
    center, scale = bbox_xywh_to_center_scale(sample["bbox_xywh"], 1.0, EMBED_CONTEXT)
    side = float(max(scale))
    out = int(min(EMBED_MAX_SIDE, max(32, round(side))))
    affine = crop_affine(center, np.array([side, side]), out)
    crop = cv2.warpAffine(image, affine, (out, out), flags=cv2.INTER_LINEAR)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    sample = dict(sample)
    sample["image_jpeg"] = jpg.tobytes()
    sample["image_crop_affine"] = affine.astype(np.float32)
    if "image_size" not in sample or not np.any(sample["image_size"]):
        sample["image_size"] = image.shape[:2]
    return sample


def _embedded(samples: Iterable[dict], image_root: Path, workers: int, chunk: int = 64) -> Iterator[dict]:
    """Embed images with ``workers`` threads, ``chunk`` samples at a time (bounded memory)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        block: list[dict] = []
        for sample in samples:
            block.append(sample)
            if len(block) >= chunk:
                yield from pool.map(lambda s: embed_image(s, image_root), block)
                block = []
        yield from pool.map(lambda s: embed_image(s, image_root), block)


def converter_options(name: str, tree: DataTree, skip_bad: bool) -> dict:
    """Dataset-specific options (FreiHAND: the SMPL-X right-hand mean from all_means.pkl)."""
    options: dict = {"skip_bad": skip_bad}
    if name == "freihand" and tree.all_means.is_file():
        from expose_cli.body_models.auxiliary import Auxiliary

        entry = Auxiliary(tree).all_means().get("right_hand_pose", {})
        if isinstance(entry, dict) and "aa" in entry:
            options["right_hand_mean"] = entry["aa"]
    return options


def _limited(samples: Iterator[dict], limit: int, stats: DropStats) -> Iterator[dict]:
    for i, sample in enumerate(samples):
        if i >= limit:
            stats.note("samples left out by --limit")
            return
        yield sample


def convert(name: str, tree: DataTree, root: Path | None = None, splits: list[str] | None = None,
            out: Path | None = None, overwrite: bool = False, skip_bad: bool = False, limit: int | None = None,
            on_sample: Callable[[str], None] | None = None, embed_images: bool = False,
            workers: int = 1) -> list[ConvertResult]:
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
        writer = HDF5Writer(path, name, split, image_root, f"{name}-{module.VERSION}", overwrite=overwrite,
                            embed_images=embed_images)
        stats = writer.stats
        try:
            samples = module.iter_samples(root, split, stats, options)
            if limit is not None:
                samples = _limited(samples, limit, stats)
            if embed_images:
                samples = _embedded(samples, image_root, workers)
            for sample in samples:
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
