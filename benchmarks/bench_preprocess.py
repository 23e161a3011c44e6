"""Converter throughput on generated raw data of realistic size: COCO (100k person annotations)
and FreiHAND (32,560 unique samples x 4 image versions). Prints samples/s and peak memory.

Generation and each conversion run in their own fresh processes, so the peak resident memory
printed is the converter's alone.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from expose_cli.data.preprocess import convert
from expose_cli.io.paths import DataTree


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_coco(root: Path, persons: int) -> None:
    rng = np.random.default_rng(0)
    images = [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": 480, "width": 640} for i in range(persons // 2)]
    anns = []
    for a in range(persons):
        k = np.concatenate([rng.uniform(0, 600, (17, 2)).round(1), np.full((17, 1), 2.0)], 1)
        if a % 4 == 0:
            k[15, 2] = 0
        anns.append({"id": a, "image_id": int(rng.integers(0, persons // 2)), "iscrowd": int(a % 50 == 0),
                     "num_keypoints": 17, "keypoints": k.reshape(-1).tolist(), "bbox": [1.0, 2.0, 100.0, 200.0],
                     "category_id": 1})
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "person_keypoints_train2014.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1}]}))


def make_freihand(root: Path, unique: int) -> None:
    """The five ``training_*.json`` files, written entry by entry (the verts file is ~1 GB)."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    K = [[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]]
    for name, shape in (("K", (3, 3)), ("xyz", (21, 3)), ("verts", (778, 3)), ("mano", (1, 61)), ("scale", ())):
        with open(root / f"training_{name}.json", "w") as f:
            f.write("[")
            for i in range(unique):
                if name == "K":
                    entry = K
                elif name == "scale":
                    entry = round(float(rng.uniform(0.02, 0.04)), 6)
                else:
                    arr = rng.normal(size=shape)
                    if name in ("xyz", "verts"):
                        arr = arr * 0.03 + [0, 0, 0.6]
                    entry = np.round(arr, 6).tolist()
                f.write(("," if i else "") + json.dumps(entry))
            f.write("]")


def run(name: str, root: Path, split: str, tree: DataTree, check_images: bool = True) -> None:
    t0 = time.perf_counter()
    [result] = convert(name, tree, root, [split], root.parent / f"{name}.h5")
    dt = time.perf_counter() - t0
    size = (root.parent / f"{name}.h5").stat().st_size / 1e6
    print(f"{name:9s} {split:9s} {result.samples:7d} samples  {result.samples / dt:9.0f} samples/s  "
          f"{dt:6.1f} s  file {size:6.1f} MB  peak RSS {peak_rss_mb():7.0f} MB", flush=True)


def convert_freihand(root: Path, tree: DataTree) -> None:
    import expose_cli.data.converters.freihand as fh

    original = fh.iter_samples

    def no_image_check(root, split, stats, options):  # no 130k image files on disk for the benchmark
        return original(root, split, stats, {**options, "check_images": False})

    fh.iter_samples = no_image_check
    run("freihand", root, "train", tree)


def in_child(target, *args) -> None:
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"{target.__name__} failed with exit code {proc.exitcode}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = DataTree(tmp / "data")
        in_child(make_coco, tmp / "coco", 100_000)
        in_child(run, "coco", tmp / "coco", "train2014", tree)
        in_child(make_freihand, tmp / "FreiHand", 32_560)
        size = (tmp / "FreiHand" / "training_verts.json").stat().st_size / 1e6
        print(f"FreiHAND training_verts.json: {size:.0f} MB of JSON text", flush=True)
        in_child(convert_freihand, tmp / "FreiHand", tree)


if __name__ == "__main__":
    main()
