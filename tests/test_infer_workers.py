"""`expose infer` with decoding in worker processes and writing in a thread pool.

The fully sequential path (``workers=0``, ``write_threads=0``: decode in one thread, write in the
model's thread, as before the pool existed) is the reference: with worker processes and writer
threads the summary lists the inputs in the same order and every file has the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from expose_cli.inference.inputs import discover_inputs


def _images(folder: Path) -> dict:
    """Six inputs of different sizes (the first, the largest, decodes slowest: finishing order differs
    from input order), one of them broken; boxes for some, the whole image for the others."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    sizes = {"a.png": (1400, 1200), "b.jpg": (120, 160), "c.jpg": (300, 200), "e.png": (90, 90), "f.jpg": (240, 320)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(folder / name), (rng.random((h, w, 3)) * 255).astype(np.uint8))
    (folder / "d.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return {"a.png": [[100, 200, 700, 1300]], "c.jpg": [[20, 30, 180, 290, 0.9], [0, 0, 100, 120, 0.5]]}


def _run(tree: Path, images: Path, out: Path, boxes: dict, workers: int, write_threads: int) -> dict:
    from expose_cli.inference.loading import crop_spec
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.pipeline import run_inference
    from expose_cli.io.paths import DataTree
    from expose_cli.models import load_model

    predictor = load_model("expose", DataTree(tree), "cpu")
    options = InferOptions(out_dir=out, boxes=boxes, crop=crop_spec(predictor, detector="full-image"),
                           formats=("npz", "obj", "ply", "glb"), batch_size=2, workers=workers, write_threads=write_threads)
    return run_inference(discover_inputs([images]), predictor, options)


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("person_*"))}


def test_workers_keep_order_and_give_the_same_files(infer_tree, tmp_path):
    boxes = _images(tmp_path / "in")
    runs = {}
    for workers, threads in ((0, 0), (2, 2)):
        out = tmp_path / f"out{workers}"
        runs[workers] = (_run(infer_tree, tmp_path / "in", out, boxes, workers, threads), _files(out))
    names = ["a.png", "b.jpg", "c.jpg", "d.jpg", "e.png", "f.jpg"]
    for summary, _ in runs.values():
        assert [Path(r["input"]).name for r in summary["inputs"]] == names  # input order
        assert [r["persons"] for r in summary["inputs"]] == [1, 1, 2, 0, 1, 1]
        errors = [r["error"] for r in summary["inputs"]]
        assert errors[3] == "cannot decode image (corrupt or not an image)" and errors.count(None) == 5
        assert summary["failed"] == 1 and summary["complete"] is True
    (seq, seq_files), (par, par_files) = runs[0], runs[2]
    assert len(seq_files) == 6 * 4 and seq_files.keys() == par_files.keys()
    for name, data in seq_files.items():  # npz included: the same arrays, the same bytes
        assert par_files[name] == data, name
    for a, b in zip(seq["inputs"], par["inputs"], strict=True):
        assert [Path(f).relative_to(tmp_path / "out0") for f in a["files"]] == \
               [Path(f).relative_to(tmp_path / "out2") for f in b["files"]]


def test_broken_image_and_writer_error_with_workers(infer_tree, tmp_path, run_cli):
    """With 2 worker processes and writer threads: a file that cannot be decoded and a person whose
    files cannot be written (its output folder is taken by a file) are one line each, naming the
    input; the other inputs are written; the exit status is 1."""
    _images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "e").write_text("a file where the folder of e.png goes")
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "in", "--out", out, "--detector", "full-image",
                  "--format", "npz", "--batch-size", "2", "--workers", "2")
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    broken = [line for line in lines if "d.jpg" in line]
    unwritable = [line for line in lines if "e.png" in line]
    assert len(broken) == 1 and broken[0].endswith("d.jpg: cannot decode image (corrupt or not an image)")
    assert len(unwritable) == 1 and "person 0:" in unwritable[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 2
    for name in ("a", "b", "c", "f"):
        assert (out / name / "person_00.npz").is_file() and (out / name / "result.json").is_file()
    assert not list(out.rglob("*.tmp*"))  # nothing half-written left behind


@pytest.mark.parametrize("threads", [0, 2])
def test_a_failing_unit_stops_the_finishing(tmp_path, threads):
    """An error while finishing a unit (here: the progress callback) reaches the caller; no later
    unit gets its record (nor ``result.json``), so a resumed run does them again."""
    from expose_cli.inference import options as O
    from expose_cli.inference import summary as S
    from expose_cli.inference import units as U
    from expose_cli.inference import writers as W
    from expose_cli.inference.inputs import InputItem

    seen = []

    def on_unit(record):
        seen.append(record["input"])
        if record["input"] == "b.jpg":
            raise KeyboardInterrupt

    summary = S.Summary(tmp_path / "summary.json", on_unit=on_unit)
    writers = W.Writers(O.InferOptions(out_dir=tmp_path), np.zeros((0, 3), np.int64), summary)
    with pytest.raises(KeyboardInterrupt), W.WritePool(writers, threads, limit=100) as pool:
        for name in ("a", "b", "c", "d"):
            unit = U.Unit(InputItem(Path(f"{name}.jpg"), "image"), tmp_path / name)
            unit.out_dir.mkdir()
            pool.unit(unit)
    assert seen == ["a.jpg", "b.jpg"]
    assert [p.name for p in sorted(tmp_path.glob("*/result.json"))] == ["result.json"] * 2
    assert not (tmp_path / "c" / "result.json").exists()


def test_collate_pads_full_images_and_shares_nothing_it_should_not():
    """Full images of different sizes: zero-padded at the bottom and right; of one size: stacked."""
    import torch

    from expose_cli.models import collate, crop_person

    small, large = np.full((20, 30, 3), 50, np.uint8), np.full((24, 32, 3), 200, np.uint8)
    crops = [crop_person(im, [2, 2, 10, 12], img_res=16, keep_full_image=True) for im in (small, large)]
    full = collate(crops).full_images
    assert tuple(full.shape) == (2, 3, 24, 32)
    torch.testing.assert_close(full[0, :, :20, :30], crops[0].full_image, rtol=0, atol=0)
    assert full[0, :, 20:].abs().max() == 0 and full[0, :, :, 30:].abs().max() == 0  # padding: zeros
    torch.testing.assert_close(full[1], crops[1].full_image, rtol=0, atol=0)
    same = collate([crops[1], crops[1]]).full_images
    torch.testing.assert_close(same, torch.stack([crops[1].full_image] * 2), rtol=0, atol=0)


def test_normalize_image_has_the_bits_of_the_plain_formula():
    """``(float32(pixel) - mean) / std`` transposed to channels first, as the code before it was
    made in-place computed it; and one pixel by hand."""
    from expose_cli.models.inputs import MEAN_RGB, STD_RGB, normalize_image

    image = (np.random.default_rng(3).random((37, 53, 3)) * 255).astype(np.uint8)
    plain = ((image.astype(np.float32) - MEAN_RGB) / STD_RGB).transpose(2, 0, 1)
    out = normalize_image(image).numpy()
    assert out.shape == (3, 37, 53) and out.dtype == np.float32 and np.array_equal(out, plain)
    assert out[0, 0, 0] == (np.float32(image[0, 0, 0]) - np.float32(123.675)) / np.float32(58.395)
