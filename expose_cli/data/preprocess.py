"""Running a converter: raw folder -> ``<dataset>_<split>.h5`` with progress, limits and error policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expose_cli.data.converters import CONVERTERS, Converter
from expose_cli.data.converters._common import BadInputFile
from expose_cli.data.hdf5 import DropStats, HDF5Writer, SampleBlock
from expose_cli.errors import ExposeError, option
from expose_cli.io.outputs import check_writable
from expose_cli.io.paths import DataTree
from expose_cli.utils.stale import remove_stale_temps


@dataclass
class ConvertResult:
    """One split: converted (``skipped`` is None) or skipped, with the reason."""

    dataset: str
    split: str
    path: Path
    samples: int
    stats: DropStats
    skipped: str | None = None


#: ``--embed-images``: the stored crop's side relative to the box's longer side (room for ExPose's
#: scale (+-25%) and rotation (+-30 degrees) augmentations around the 1.25x crop), and its size cap.
EMBED_CONTEXT = 2.0
EMBED_MAX_SIDE = 512
#: The note written when ``--limit`` stopped a split early. The converter is not run further (that
#: would cost the full conversion's time), so the count is a lower bound.
LIMIT_NOTE = "samples left out by --limit (at least; the rest was not read)"
#: Converter errors that mean "raw data of a form the converter did not expect" (or a bug).
UNEXPECTED = (ValueError, IndexError, KeyError, TypeError)


def embed_image(sample: dict, image_root: Path) -> dict:
    """Add the JPEG of a square crop around the person and the affine that made it."""
    import cv2  # imported when used: `expose preprocess` of other datasets starts faster

    from expose_cli.geometry.crops import bbox_xywh_to_center_scale, crop_affine
    from expose_cli.io.images import read_image

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


def _embed_or_none(sample: dict, image_root: Path, skip_bad: bool) -> dict | None:
    """:func:`embed_image`, or None for an unreadable image when ``skip_bad``."""
    try:
        return embed_image(sample, image_root)
    except ExposeError:
        if skip_bad:
            return None
        raise


def _embedded(samples: Iterable[dict], image_root: Path, workers: int, stats: DropStats,
              skip_bad: bool = False, chunk: int = 64) -> Iterator[dict]:
    """Embed images with ``workers`` threads, ``chunk`` samples at a time (bounded memory); with
    ``skip_bad`` a sample whose image cannot be read is dropped ("unreadable image")."""

    def run(block: list[dict]) -> Iterator[dict]:
        for done in pool.map(lambda s: _embed_or_none(s, image_root, skip_bad), block):
            if done is None:
                stats.drop("unreadable image")
            else:
                yield done

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        block: list[dict] = []
        for sample in samples:
            block.append(sample)
            if len(block) >= chunk:
                yield from run(block)
                block = []
        yield from run(block)


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
    """The first ``limit`` samples; notes that more exist (without reading further)."""
    for i, sample in enumerate(samples):
        if i >= limit:
            stats.note(LIMIT_NOTE)
            return
        yield sample


def split_present(module: Converter, root: Path, split: str) -> bool:
    """Whether the raw input of ``split`` is there."""
    return bool(module.split_present(root, split))


def expected_input(module: Converter, split: str) -> str:
    """What a split's raw input looks like, for messages."""
    return module.expected_input(split)


def _convert_split(name: str, module: Converter, root: Path, split: str, path: Path, options: dict, *,
                   overwrite: bool, limit: int | None, on_sample: Callable[..., None] | None,
                   embed_images: bool, workers: int) -> ConvertResult:
    """One split into ``path`` (complete or absent); a killed run's temporary files beside it are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    image_root = module.image_root(root)
    attrs = dict(module.file_attrs(options))
    if limit is not None:
        attrs["limit"] = limit
    writer = HDF5Writer(path, name, split, image_root, f"{name}-{module.VERSION}", overwrite=overwrite,
                        embed_images=embed_images, attrs=attrs)
    stats = writer.stats
    samples: Iterator[dict] = iter(())
    try:
        # Whole blocks of rows (SampleBlock) only where each row needs no work of its own here.
        blocks = limit is None and not embed_images
        samples = module.iter_samples(root, split, stats, {**options, "blocks": blocks, "workers": workers})
        if embed_images:
            samples = _embedded(samples, image_root, workers, stats, bool(options.get("skip_bad")))
        if limit is not None:
            samples = _limited(samples, limit, stats)
        for sample in samples:
            if type(sample) is SampleBlock:
                writer.append_block(sample)
                if on_sample:
                    on_sample(split, sample.rows)  # a block of rows: one progress update
                continue
            writer.append(sample)
            if on_sample:
                on_sample(split)
        count = writer.count + len(writer.buffer)
        writer.close()
    except BaseException as exc:
        getattr(samples, "close", lambda: None)()
        writer.abort()
        if isinstance(exc, UNEXPECTED):
            raise ExposeError(
                f"{name} split {split!r}: unexpected {type(exc).__name__} while converting: {exc}", path=root,
                hint=f"the raw data has a form this converter does not check for; {option('skip-bad')} skips the "
                     "files and samples it can check; if the data is intact, please report a bug "
                     "(run with -v for the traceback)") from exc
        raise
    return ConvertResult(name, split, path, count, stats)


def convert(name: str, tree: DataTree, root: Path | None = None, splits: list[str] | None = None,
            out: Path | None = None, overwrite: bool = False, skip_bad: bool = False, limit: int | None = None,
            on_sample: Callable[..., None] | None = None, embed_images: bool = False,
            workers: int = 1, skip_existing: bool = False) -> list[ConvertResult]:
    """Convert the splits of dataset ``name``; each file is complete or absent.

    Without ``splits``, only the splits whose raw input is present are converted; the others come
    back as skipped results (an error when none is present). Requested splits must be present.
    ``skip_existing`` (``preprocess all``): an existing output is skipped, not an error, unless
    ``overwrite``. With ``skip_bad``, a split whose one input file is malformed is skipped.
    ``on_sample(split)`` is called per row written, or ``on_sample(split, rows)`` per block of rows.
    """
    if name not in CONVERTERS:
        raise ExposeError(f"unknown dataset {name!r}", hint=f"available: {', '.join(sorted(CONVERTERS))}")
    module = CONVERTERS[name]
    root = Path(root) if root is not None else tree.raw_dataset(name)
    if not root.is_dir():
        raise ExposeError("raw dataset folder not found", path=root,
                          hint=f"download it (`expose fetch --list` shows where from) or pass {option('root')}")
    requested = bool(splits)
    splits = list(splits) if splits else list(module.SPLITS)
    bad = [s for s in splits if s not in module.SPLITS]
    if bad:
        raise ExposeError(f"{name} has no split {bad[0]!r}", hint=f"splits: {', '.join(module.SPLITS)}")
    if out is not None and len(splits) > 1:
        raise ExposeError(f"{option('out')} names one file, but several splits are converted", hint=f"add {option('split')}")
    present = splits if requested else [s for s in splits if split_present(module, root, s)]
    if not present:
        wanted = "; ".join(f"{s}: {expected_input(module, s)}" for s in splits)
        raise ExposeError(f"no raw input for any {name} split", path=root, hint=f"expected {wanted}")
    for split in present:  # every output can be written: checked before the first split's work
        check_writable(out or tree.preprocessed_file(name, split), f"the {name} {split} file")
    options = converter_options(name, tree, skip_bad)
    results = []
    for split in splits:
        path = out or tree.preprocessed_file(name, split)
        if split not in present:
            reason = f"raw input not found ({expected_input(module, split)})"
        elif skip_existing and path.exists() and not overwrite:
            reason = "output exists (--overwrite replaces it)"
        else:
            reason = None
        if reason is not None:
            results.append(ConvertResult(name, split, path, 0, DropStats(), skipped=reason))
            continue
        try:
            results.append(_convert_split(name, module, root, split, path, options, overwrite=overwrite, limit=limit,
                                          on_sample=on_sample, embed_images=embed_images, workers=workers))
        except BadInputFile as exc:
            if not skip_bad:
                raise
            results.append(ConvertResult(name, split, path, 0, DropStats(), skipped=f"malformed input: {exc.message}"))
    return results
