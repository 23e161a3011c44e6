"""Preprocessed files that can be used: image paths that open (every converter, on raw fixtures laid
out as the real downloads), stale converter versions, and `expose doctor --for train` agreeing with
what `expose preprocess all` writes."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest

from expose_cli.data import validity
from expose_cli.data.converters import CONVERTERS
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.data.outputs import TRAINING_SPLITS, output_files, training_files
from expose_cli.data.preprocess import convert
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.testing import raw_datasets as raw


def _write_raw(tree: DataTree, name: str) -> None:
    """Dataset ``name``'s raw test fixture in its folder of the data tree (the real layout)."""
    root = tree.raw_dataset(name)
    if name == "coco":
        raw.write_coco(root, "train2014")
        raw.write_coco(root, "val2017")
    elif name == "3dpw":
        raw.write_pw3d(root, "test")
    elif name == "ffhq":
        raw.write_ffhq(root, n=3)
    elif name == "stirling":
        raw.write_stirling(root)
    elif name == "freihand":
        raw.write_freihand(root, unique=5, eval_samples=2)
    elif name == "ehf":
        raw.write_ehf(root, frames=2)
    elif name == "curated-fits":
        raw.write_curated_fits(root)
    elif name == "spin-smplx":
        for split in TRAINING_SPLITS["spin-smplx"]:
            raw.write_spin_smplx(root, split, n=3)
    elif name == "h36m-smplx":
        raw.write_h36m(root)
    else:  # a new converter needs its fixture here
        raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_every_image_path_of_every_converter_opens(tmp_path, name):
    tree = DataTree(tmp_path / "data")
    _write_raw(tree, name)
    results = [r for r in convert(name, tree) if r.skipped is None]
    assert results and sum(r.samples for r in results) > 0
    for r in results:
        with HDF5Reader(r.path) as reader:
            check = validity.count_resolving(reader)
            assert check.checked == len(reader) > 0
            assert check.resolved == check.checked, (r.split, check.first_missing)
            assert validity.stale_reason(reader.attrs) is None


def test_h36m_paths_in_the_official_layout_and_moved_trees(tmp_path, run_cli):
    tree = DataTree(tmp_path / "data")
    _write_raw(tree, "h36m-smplx")
    out = convert("h36m-smplx", tree, splits=["train"])[0].path
    with HDF5Reader(out) as reader:
        paths = list(reader.column("image_path").astype(str))
    assert paths == [f"S1/images/S1_Directions_1.54138969/S1_Directions_1.54138969_{f:06d}.jpg" for f in (1, 11)]
    # the tree moved: raw_root no longer holds the images, the --data-dir tree does
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "data", moved)
    with HDF5Reader(moved / "preprocessed_datasets" / out.name) as reader:
        assert validity.count_resolving(reader).resolved == 0
        check = validity.count_resolving(reader, moved)
        assert (check.resolved, check.checked, check.root) == (2, 2, moved / "datasets" / "h36m")
    res = run_cli("--data-dir", moved, "inspect", moved / "preprocessed_datasets" / out.name, "--json", tmp_path / "i.json")
    assert res.exit_code == 0 and "image paths: 2 of 2 open under" in res.stdout
    report = json.loads((tmp_path / "i.json").read_text())["image_paths"]
    assert report["resolved"] == 2 and report["stale"] is None


def _as_version_1(path):
    """A file as the broken converter version 1 wrote it: no subject folder in the paths."""
    with h5py.File(path, "r+") as f:
        f.attrs["converter_version"] = "h36m-smplx-1"
        old = [p.split("/", 1)[1] for p in f["image_path"][()].astype(str)]
        del f["image_path"]
        f["image_path"] = [p.encode() for p in old]


def test_stale_h36m_files_are_refused_with_one_line(tmp_path, run_cli):
    tree = DataTree(tmp_path / "data")
    _write_raw(tree, "h36m-smplx")
    out = convert("h36m-smplx", tree, splits=["train"])[0].path
    validity.check_training_file(out)  # the current converter's file passes
    _as_version_1(out)
    with HDF5Reader(out) as reader:
        reason = validity.stale_reason(reader.attrs)
        assert reason.endswith("re-run `expose preprocess h36m-smplx`") and "\n" not in reason
        assert validity.count_resolving(reader).resolved == 0  # and indeed none of its paths open
    with pytest.raises(ExposeError, match="re-run `expose preprocess h36m-smplx`") as exc:
        validity.check_training_file(out)
    assert exc.value.path == out
    res = run_cli("--data-dir", tree.root, "inspect", out)
    assert res.exit_code == 0 and "image paths: 0 of 2" in res.stdout and "stale:" in res.stdout
    assert validity.stale_reason({"dataset": "h36m-smplx", "converter_version": "h36m-smplx-2"}) is None
    assert validity.stale_reason({"dataset": "coco", "converter_version": "coco-1"}) is None


def test_missing_images_are_refused(tmp_path):
    tree = DataTree(tmp_path / "data")
    _write_raw(tree, "curated-fits")
    out = convert("curated-fits", tree)[0].path
    (tree.datasets / "lsp" / "lsp_dataset_original" / "images" / "im0002.jpg").unlink()
    with pytest.raises(ExposeError, match="1 of 3 image paths checked do not open") as exc:
        validity.check_training_file(out)
    assert "im0002.jpg" in exc.value.message


def test_doctor_for_train_passes_after_preprocess_all(standin_tree, tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(standin_tree, data, copy_function=os.symlink)
    tree = DataTree(data)
    for name in [*TRAINING_SPLITS, "coco"]:  # SPIN's COCO images live in the COCO folder: COCO comes too
        _write_raw(tree, name)
    res = run_cli("--data-dir", data, "-q", "preprocess", "all")
    assert res.exit_code == 0, res.output
    written = sorted(p.name for p in tree.preprocessed.glob("*.h5"))
    wanted = sorted(p.name for name in TRAINING_SPLITS for p in training_files(name, tree))
    assert set(wanted) <= set(written)
    assert {"spin_smplx_coco.h5", "spin_smplx_lsp.h5", "spin_smplx_lspet.h5", "spin_smplx_mpii.h5"} <= set(wanted)
    res = run_cli("--data-dir", data, "doctor", "--for", "train", "--json", tmp_path / "d.json")
    assert res.exit_code == 0, res.output
    report = {r["file"]: r["status"] for r in json.loads((tmp_path / "d.json").read_text())}
    assert report["spin-smplx lspet (HDF5)"] == "ok" and "spin-smplx train (HDF5)" not in report
    # a file of the broken Human3.6M converter, and a moved-away image: the doctor says which and why
    _as_version_1(tree.preprocessed_file("h36m-smplx", "train"))
    (tree.datasets / "lsp" / "lspet" / "images" / "im00002.png").unlink()
    res = run_cli("--data-dir", data, "doctor", "--for", "train", "--json", tmp_path / "d.json")
    assert res.exit_code == 1
    report = {r["file"]: r for r in json.loads((tmp_path / "d.json").read_text())}
    assert report["h36m-smplx train (HDF5)"]["status"] == "invalid"
    assert "re-run `expose preprocess h36m-smplx`" in report["h36m-smplx train (HDF5)"]["detail"]
    assert "1 of 2 image paths checked do not open" in report["spin-smplx lspet (HDF5)"]["detail"]


def test_output_files_names_and_errors(tmp_path):
    tree = DataTree(tmp_path)
    assert [p.name for p in output_files("spin-smplx", tree)] == [
        "spin_smplx_coco.h5", "spin_smplx_lsp.h5", "spin_smplx_lspet.h5", "spin_smplx_mpii.h5"]
    assert [p.name for p in output_files("h36m-smplx", tree, ["val"])] == ["h36m_smplx_val.h5"]
    with pytest.raises(ExposeError, match="spin-smplx has no split 'train'"):
        output_files("spin-smplx", tree, ["train"])
    with pytest.raises(ExposeError, match="not a training dataset"):
        training_files("ehf", tree)
