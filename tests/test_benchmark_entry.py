"""A benchmark is one entry of ``evaluation/benchmark.py``'s BENCHMARKS: a toy one added there (and
nowhere else) is run, scored and compared with its published numbers by `expose eval`."""

from __future__ import annotations

import json

import numpy as np

from expose_cli.data.hdf5 import HDF5Writer
from expose_cli.evaluation import benchmark as B
from expose_cli.evaluation import runner
from expose_cli.io.hashing import sha256_file


def _toy_score(reader, preds, assets):
    """Mean vertex distance (mm) to the file's ground-truth vertices."""
    n = len(preds["vertices"])
    gt = reader.column("vertices")[:n]
    return {"TOY PVE": np.linalg.norm(preds["vertices"] - gt, axis=-1).mean(axis=1) * 1000}


def test_a_toy_benchmark_is_one_entry(run_cli, tmp_path, monkeypatch):
    gen = np.random.default_rng(0)
    gt = gen.normal(size=(3, 5, 3)).astype(np.float32)
    data = tmp_path / "toy.h5"
    writer = HDF5Writer(data, "freihand", "test", tmp_path, "test")  # the catalog's freihand benchmark split
    for i in range(3):
        writer.append({"image_path": f"img_{i}.jpg", "vertices": gt[i]})
    writer.close()
    preds = tmp_path / "p.h5"
    shifted = gt + np.array([0.003, 0.0, 0.0], np.float32)  # 3 mm along x: every vertex 3 mm off
    runner.save_predictions(preds, "toy", {"vertices": shifted, "joints": np.zeros((3, 1, 3)),
                                           "image_path": np.array([f"img_{i}.jpg" for i in range(3)])},
                            {"data_sha256": sha256_file(data), "checkpoint": "ck.pth"})
    toy = B.Benchmark("toy", "freihand", "hand", ("hand",), "toy: mean vertex distance",
                      lambda reader, tree, n: {}, _toy_score, published={"TOY PVE": "2.50"}, needs=("vertices",))
    monkeypatch.setitem(B.BENCHMARKS, "toy", toy)
    assert toy.split == "test"  # from the dataset catalog, not repeated in the entry
    res = run_cli("--data-dir", tmp_path, "eval", "toy", "--data", data, "--from-predictions", preds,
                  "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads((tmp_path / "r.json").read_text())["metrics"]
    assert row["metric"] == "TOY PVE" and abs(row["ours"] - 3.0) < 1e-3 and row["published"] == 2.5
    assert abs(row["difference"] - 0.5) < 1e-3 and "protocol: toy: mean vertex distance" in res.stderr
