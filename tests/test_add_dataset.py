"""docs/architecture.md's "How to add a dataset", followed to the letter on a copy of the package:
one entry in the catalog (``io/catalog.py``) and one converter module, nothing else; then
`expose preprocess toy` converts it, the doctor lists its training file and the training reader
reads it as the member ``toy``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "expose_cli"

TOY_CONVERTER = '''"""A toy dataset: three body boxes in one picture, all 144 keypoints seen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

SPLITS = ("train",)
VERSION = "1"


def split_present(root: Path, split: str) -> bool:
    return (root / "toy.png").is_file()


def expected_input(split: str) -> str:
    return "toy.png"


def image_root(root: Path) -> Path:
    return root


def file_attrs(options: dict) -> dict:
    return {}


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    for i in range(3):
        kp = np.zeros((144, 3), np.float32)
        kp[:, 0], kp[:, 1], kp[:, 2] = 10 + i, np.linspace(5, 40, 144), 1.0
        yield {"image_path": "toy.png", "image_size": (48, 64),
               "bbox_xywh": np.array([4 + i, 4, 24, 40], np.float32), "keypoints2d": kp}
'''

READ_MEMBER = """
import sys
from pathlib import Path
from expose_cli.assets.inventory import requirements
from expose_cli.io.paths import DataTree
from expose_cli.training.data_config import DataConfig
from expose_cli.training.datasets import TrainDataset, member_files

tree = DataTree(Path(sys.argv[1]))
print("doctor:", [r.label for r in requirements(tree) if "toy" in r.label])
print("member:", member_files("toy", tree.root))
data = TrainDataset(DataConfig(members=("toy",), ratios=(1.0,), img_res=32), tree.root, "body", train=False)
print("rows:", len(data), tuple(data[0]["img"].shape))
"""


def add_toy_dataset(copy: Path) -> None:
    """The two edits the documentation names, on the copy."""
    catalog = copy / "io" / "catalog.py"
    text = catalog.read_text(encoding="utf-8")
    entry = '    DatasetEntry("toy", "toy", "Toy", training_splits=("train",)),\n'
    end = text.index(")})", text.index("DATASETS: Mapping"))
    catalog.write_text(text[:end] + entry + text[end:], encoding="utf-8")
    (copy / "data" / "converters" / "toy.py").write_text(TOY_CONVERTER, encoding="utf-8")


def run(copy_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy_root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=copy_root)


def test_a_toy_dataset_added_as_documented_is_converted_listed_and_trained_on(tmp_path):
    copy_root = tmp_path / "pkg"
    shutil.copytree(PACKAGE, copy_root / "expose_cli", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copytree(PACKAGE / "assets", copy_root / "expose_cli" / "assets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    add_toy_dataset(copy_root / "expose_cli")
    data = tmp_path / "data"
    (data / "datasets" / "Toy").mkdir(parents=True)
    cv2.imwrite(str(data / "datasets" / "Toy" / "toy.png"), np.full((64, 48, 3), 128, np.uint8))

    res = run(copy_root, "-m", "expose_cli", "--data-dir", str(data), "-q", "preprocess", "toy")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (data / "preprocessed_datasets" / "toy_train.h5").is_file()
    res = run(copy_root, "-c", READ_MEMBER, str(data))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "doctor: ['toy train (HDF5)']" in out, out
    assert f"{data / 'preprocessed_datasets' / 'toy_train.h5'}" in out and "expose preprocess toy --split train" in out
    assert "rows: 3 (3, 32, 32)" in out, out


def test_a_converter_that_breaks_the_protocol_or_the_catalog_is_refused():
    """A converter module without the functions once looked up with ``hasattr`` fails the
    ``Converter`` protocol check, naming what it lacks; one without a split the catalog names for
    training fails too. The catalog's own converters pass."""
    from expose_cli.data.converters import CONVERTERS, check_converter

    half = ModuleType("half")
    half.SPLITS, half.VERSION = ("train",), "1"
    with pytest.raises(TypeError, match="half of dataset 'ffhq' lacks iter_samples, split_present, expected_input, "
                                        "image_root, file_attrs"):
        check_converter("ffhq", half)
    ffhq = CONVERTERS["ffhq"]
    other = ModuleType("other")
    for key in ("VERSION", "iter_samples", "split_present", "expected_input", "image_root", "file_attrs"):
        setattr(other, key, getattr(ffhq, key))
    other.SPLITS = ("val",)
    with pytest.raises(TypeError, match=r"names splits \['train'\] of dataset 'ffhq'"):
        check_converter("ffhq", other)
    assert all(check_converter(n, CONVERTERS[n]) for n in CONVERTERS)
