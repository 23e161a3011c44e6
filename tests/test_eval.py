"""`expose eval`: protocols on known perturbations, and the CLI end to end."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from expose_cli.assets.paths import DataTree
from expose_cli.body_models.auxiliary import Auxiliary
from expose_cli.body_models.loading import load_body_model_data
from expose_cli.evaluation import protocols
from expose_cli.geometry.rotations import axis_angle_to_matrix
from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint
from expose_cli.testing.raw_datasets import write_ehf, write_freihand


@pytest.fixture(scope="module")
def eval_tree(standin_tree, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_data")
    shutil.copytree(standin_tree, root, dirs_exist_ok=True)
    write_mmhuman3d_checkpoint(root / "pretrained_models" / "expose.pth", "expose", seed=2, small=True)
    write_mmhuman3d_checkpoint(root / "pretrained_models" / "resnet18_hmr_expose_hand.pth", "hand", seed=2, small=True)
    write_ehf(root / "datasets" / "EHF", frames=3)
    write_freihand(root / "datasets" / "FreiHand", unique=5, eval_samples=3)
    return root


def _ehf_inputs(tree: DataTree):
    aux = Auxiliary(tree)
    smplx = load_body_model_data(tree.smplx_model())
    hands = aux.mano_smplx_vertex_ids()
    gt = np.stack([smplx["v_template"] + 0.01 * k for k in range(2)])
    return gt, smplx["J_regressor"], hands["left_hand"], hands["right_hand"], aux.smplx_flame_vertex_ids()


def test_ehf_protocol_identities(standin_tree):
    gt, jreg, left, right, face = _ehf_inputs(DataTree(standin_tree))
    zero = protocols.ehf_metrics(gt, gt, jreg, left, right, face)
    assert set(zero) >= set(protocols.PUBLISHED["ehf"])
    assert all(np.allclose(v, 0, atol=1e-9) for v in zero.values())
    R = axis_angle_to_matrix(torch.tensor([0.4, -0.2, 1.0], dtype=torch.float64)).numpy()
    moved = 1.3 * gt @ R.T + np.array([0.5, -0.1, 2.0])
    m = protocols.ehf_metrics(moved, gt, jreg, left, right, face)
    for name in protocols.PUBLISHED["ehf"]:  # every MMHuman3D number is similarity-invariant
        assert np.allclose(m[name], 0, atol=1e-6), name
    shifted = protocols.ehf_metrics(gt + np.array([0.0, 0.0, 0.3]), gt, jreg, left, right, face)
    assert np.allclose(shifted["H4W PVE (pelvis-aligned)"], 0, atol=1e-9)
    # Deform only the left hand: the right hand and face numbers do not move, the left hand's do.
    pred = gt.copy()
    rng = np.random.default_rng(0)
    pred[:, left] += rng.normal(0, 0.005, (2, len(left), 3))
    d = protocols.ehf_metrics(pred, gt, jreg, left, right, face)
    assert np.allclose(d["RIGHT_HAND PA-PVE"], 0, atol=1e-9) and np.allclose(d["FACE PA-PVE"], 0, atol=1e-9)
    assert np.all(d["LEFT_HAND PA-PVE"] > 1.0)  # mm
    # unaligned wrist-relative error of a hand translated with its wrist is zero: shift the whole body
    assert np.allclose(protocols.ehf_metrics(gt + 0.2, gt, jreg, left, right, face)["H4W LEFT_HAND PVE (wrist-aligned)"], 0, atol=1e-9)


def test_freihand_protocol():
    rng = np.random.default_rng(1)
    gj, gv = rng.normal(0, 0.03, (2, 21, 3)), rng.normal(0, 0.03, (2, 778, 3))
    m = protocols.freihand_metrics(gj, gj, gv, gv)
    assert np.allclose(m["PA-MPJPE"], 0) and np.allclose(m["PA-PVE"], 0) and np.allclose(m["F@5mm"], 1.0)
    m = protocols.freihand_metrics(2 * gj + 1.0, gj, 0.5 * gv - 3.0, gv)
    assert np.allclose(m["PA-MPJPE"], 0, atol=1e-9) and np.allclose(m["PA-PVE"], 0, atol=1e-9)
    # every vertex 1 mm off along z (no rotation/scale can undo a shear-free offset of the mean... use noise)
    noisy = gv + np.array([0.0, 0.0, 0.02]) * (np.arange(778) % 2 == 0)[None, :, None]
    m = protocols.freihand_metrics(gj, gj, noisy, gv)
    assert np.all(m["PA-PVE"] > 1.0) and np.all(m["F@5mm"] < 1.0)


def test_eval_cli_ehf(eval_tree, tmp_path, run_cli):
    data = ["--data-dir", eval_tree]
    assert run_cli(*data, "-q", "preprocess", "ehf").exit_code == 0
    args = [*data, "-q", "eval", "ehf", "--batch-size", "2", "--json", tmp_path / "r.json",
            "--per-sample", tmp_path / "s.csv", "--save-predictions", tmp_path / "p.h5"]
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    assert "BODY PA-MPJPE" in res.stdout and "55.70" in res.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_samples"] == 3 and len(report["checkpoint_sha256"]) == 64
    body = next(r for r in report["metrics"] if r["metric"] == "BODY PA-MPJPE")
    assert body["published"] == 55.70 and body["difference"] == pytest.approx(body["ours"] - 55.70)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 3 and np.mean([float(r["PA-PVE"]) for r in rows]) == pytest.approx(
        next(r["ours"] for r in report["metrics"] if r["metric"] == "PA-PVE"), rel=1e-3)
    # deterministic, and re-scoring saved predictions gives the same numbers
    run_cli(*args[:-6], "--json", tmp_path / "r2.json")
    again = json.loads((tmp_path / "r2.json").read_text())
    assert [r["ours"] for r in again["metrics"]] == [r["ours"] for r in report["metrics"]]
    res = run_cli(*data, "-q", "eval", "ehf", "--from-predictions", tmp_path / "p.h5", "--json", tmp_path / "r3.json")
    assert res.exit_code == 0
    assert [r["ours"] for r in json.loads((tmp_path / "r3.json").read_text())["metrics"]] == [r["ours"] for r in report["metrics"]]
    # predictions replaced by the ground truth: every error exactly zero
    import h5py

    from expose_cli.data.hdf5 import HDF5Reader

    with HDF5Reader(DataTree(eval_tree).preprocessed_file("ehf", "val")) as r:
        gt = r.column("vertices")
    with h5py.File(tmp_path / "p.h5", "a") as f:
        f["vertices"][...] = gt
    run_cli(*data, "-q", "eval", "ehf", "--from-predictions", tmp_path / "p.h5", "--json", tmp_path / "r4.json")
    assert all(abs(r["ours"]) < 1e-9 for r in json.loads((tmp_path / "r4.json").read_text())["metrics"])


def test_eval_cli_freihand_and_errors(eval_tree, tmp_path, run_cli):
    data = ["--data-dir", eval_tree]
    assert run_cli(*data, "-q", "preprocess", "freihand", "--split", "test").exit_code == 0
    res = run_cli(*data, "-q", "eval", "freihand", "--json", tmp_path / "f.json")
    assert res.exit_code == 0, res.output
    metrics = {r["metric"]: r["ours"] for r in json.loads((tmp_path / "f.json").read_text())["metrics"]}
    assert set(metrics) == {"PA-MPJPE", "PA-PVE", "F@5mm", "F@15mm"} and metrics["PA-PVE"] > 0
    tree = DataTree(eval_tree)
    wrong = run_cli(*data, "eval", "ehf", "--data", tree.preprocessed_file("freihand", "test"))
    assert wrong.exit_code == 1 and "this is a 'freihand' file" in wrong.stderr
    missing = run_cli("--data-dir", tmp_path, "eval", "ehf")
    assert missing.exit_code == 2 and "expose preprocess ehf" in missing.stderr
    kind = run_cli(*data, "eval", "freihand", "--ckpt", "expose")
    assert kind.exit_code == 1 and "needs hand" in kind.stderr
    unknown = run_cli(*data, "eval", "coco")
    assert unknown.exit_code == 1 and "unknown benchmark 'coco'" in unknown.stderr


def test_eval_cli_3dpw_and_stirling(eval_tree, tmp_path, run_cli, monkeypatch):
    from expose_cli.testing.raw_datasets import write_pw3d, write_stirling

    write_pw3d(tmp_path / "3DPW")
    write_stirling(tmp_path / "stirling")
    data = ["--data-dir", eval_tree]
    assert run_cli(*data, "-q", "preprocess", "3dpw", "--root", tmp_path / "3DPW", "--split", "test",
                   "--out", tmp_path / "pw.h5").exit_code == 0
    write_mmhuman3d_checkpoint(tmp_path / "body.pth", "body", seed=4, small=True)
    res = run_cli(*data, "-q", "eval", "3dpw", "--ckpt", tmp_path / "body.pth", "--data", tmp_path / "pw.h5",
                  "--json", tmp_path / "p.json")
    assert res.exit_code == 0, res.output
    m = {r["metric"]: r for r in json.loads((tmp_path / "p.json").read_text())["metrics"]}
    assert m["MPJPE"]["published"] == 92.59 and m["PA-MPJPE"]["ours"] <= m["MPJPE"]["ours"]
    assert run_cli(*data, "-q", "preprocess", "stirling", "--root", tmp_path / "stirling", "--split", "HQ",
                   "--out", tmp_path / "st.h5").exit_code == 0
    write_mmhuman3d_checkpoint(tmp_path / "face.pth", "face", seed=4, small=True)
    res = run_cli(*data, "-q", "eval", "stirling", "--ckpt", tmp_path / "face.pth", "--data", tmp_path / "st.h5",
                  "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    m = {r["metric"]: r for r in json.loads((tmp_path / "s.json").read_text())["metrics"]}
    assert m["3DRMSE"]["published"] == 2.40 and m["3DRMSE"]["ours"] > 0


def test_pw3d_protocol_identities():
    rng = np.random.default_rng(3)
    g = rng.normal(0, 0.3, (2, 14, 3))
    assert np.allclose(protocols.pw3d_metrics(g, g)["MPJPE"], 0)
    # a translation disappears (hip-centred); a rotation stays in MPJPE, not in PA-MPJPE
    assert np.allclose(protocols.pw3d_metrics(g + 1.0, g)["MPJPE"], 0, atol=1e-9)
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)).numpy()
    m = protocols.pw3d_metrics(g @ R.T, g)
    assert np.all(m["MPJPE"] > 10) and np.allclose(m["PA-MPJPE"], 0, atol=1e-6)
    # one joint 14 mm off along x (hips untouched): MPJPE = 1 mm exactly
    moved = g.copy()
    moved[:, 0, 0] += 0.014
    assert np.allclose(protocols.pw3d_metrics(moved, g)["MPJPE"], 1.0)
