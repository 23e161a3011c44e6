"""`torchrun --nproc-per-node 2 -m expose_cli infer ...`: two CPU processes (gloo) split the inputs
by rank; the union of their outputs and the merged summary.json equal a one-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint
from expose_cli.testing.trees import link_tree

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def tree(standin_tree, tmp_path_factory):
    root = link_tree(standin_tree, tmp_path_factory.mktemp("dist_data"))  # hard links: no 1 GB copy
    write_mmhuman3d_checkpoint(root / "pretrained_models" / "expose.pth", "expose", seed=4, small=True)
    return root


def _images(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    for name in ("a", "b", "c"):
        (folder / name).mkdir(parents=True)
        cv2.imwrite(str(folder / name / "img.jpg"), (rng.random((120, 90, 3)) * 255).astype(np.uint8))
    (folder / "c" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    return folder


def _summary(out: Path) -> list[tuple]:
    records = json.loads((out / "summary.json").read_text())["inputs"]
    return [(r["input"], Path(r["output"]).name, r["persons"], r["error"]) for r in records]


def test_two_ranks_equal_one_process(tree, tmp_path, run_cli):
    inputs = _images(tmp_path / "in")
    args = ["--data-dir", tree, "--device", "cpu", "-q", "infer", inputs, "--detector", "full-image", "--format", "npz"]
    one = run_cli(*args, "--out", tmp_path / "one")
    assert one.exit_code == 1  # broken.jpg
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "expose_cli", *map(str, args), "--out", str(tmp_path / "two")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert (tmp_path / "two" / "summary.rank0.json").is_file() and (tmp_path / "two" / "summary.rank1.json").is_file()
    merged = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert merged["ranks"] == 2 and merged["failed"] == 1, res.stdout + res.stderr
    assert _summary(tmp_path / "two") == _summary(tmp_path / "one")
    # the same folders (img, img_2, img_3 named over the whole input list) and the same meshes
    files_one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.npz"))
    files_two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.npz"))
    assert files_one == files_two and len(files_one) == 3
    for rel in files_one:
        a, b = np.load(tmp_path / "one" / rel), np.load(tmp_path / "two" / rel)
        np.testing.assert_allclose(a["vertices"], b["vertices"], atol=1e-6)


def test_eval_on_two_ranks_equals_one_process(tree, tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_freihand

    root = link_tree(tree, tmp_path / "data")
    write_mmhuman3d_checkpoint(root / "pretrained_models" / "resnet18_hmr_expose_hand.pth", "hand", seed=2, small=True)
    write_freihand(root / "datasets" / "FreiHand", unique=5, eval_samples=5)
    assert run_cli("--data-dir", root, "-q", "preprocess", "freihand", "--split", "test").exit_code == 0
    args = ["--data-dir", root, "--device", "cpu", "-q", "eval", "freihand", "--batch-size", "2"]
    assert run_cli(*args, "--json", tmp_path / "one.json", "--save-predictions", tmp_path / "one.h5").exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "expose_cli", *map(str, args), "--json", str(tmp_path / "two.json"),
           "--save-predictions", str(tmp_path / "two.h5")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["processes"] == 2 and two["num_samples"] == one["num_samples"] == 5
    assert [(r["metric"], round(r["ours"], 6)) for r in two["metrics"]] == \
        [(r["metric"], round(r["ours"], 6)) for r in one["metrics"]]
    import h5py

    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "two.h5") as b:
        va, vb = a["vertices"][()], b["vertices"][()]
        pa, pb = a["image_path"][()].tolist(), b["image_path"][()].tolist()
    assert len(set(pa)) == 5 and pb == pa  # sample i's prediction in place i (distinct images)
    np.testing.assert_allclose(vb, va, atol=1e-6, rtol=0)
