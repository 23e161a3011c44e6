"""`expose eval`: protocols on known perturbations, and the CLI end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from expose_cli.body_models.auxiliary import Auxiliary
from expose_cli.body_models.loading import load_body_model_data
from expose_cli.evaluation import protocols
from expose_cli.geometry.rotations import axis_angle_to_matrix
from expose_cli.io.hashing import sha256_file
from expose_cli.io.paths import DataTree
from expose_cli.testing.raw_datasets import write_ehf, write_freihand
from expose_cli.testing.trees import link_tree


@pytest.fixture(scope="module")
def eval_tree(model_tree, tmp_path_factory):
    root = link_tree(model_tree, tmp_path_factory.mktemp("eval_data"))
    write_ehf(root / "datasets" / "EHF", frames=3)
    write_freihand(root / "datasets" / "FreiHand", unique=5, eval_samples=3)
    return root


def _ehf_inputs(tree: DataTree):
    aux = Auxiliary(tree)
    smplx = load_body_model_data(tree.smplx_model())
    hands = aux.mano_smplx_vertex_ids()
    gt = np.stack([smplx["v_template"] + 0.01 * k for k in range(2)])
    return gt, smplx["J_regressor"], hands["left_hand"], hands["right_hand"], aux.smplx_flame_vertex_ids()


def test_freihand_protocol():
    rng = np.random.default_rng(1)
    gj, gv = rng.normal(0, 0.03, (2, 21, 3)), rng.normal(0, 0.03, (2, 778, 3))
    m = protocols.freihand_metrics(gj, gj, gv, gv, gv)
    assert np.allclose(m["PA-MPJPE"], 0) and np.allclose(m["PA-PVE"], 0) and np.allclose(m["FH-F@5mm"], 1.0)
    m = protocols.freihand_metrics(2 * gj + 1.0, gj, 0.5 * gv - 3.0, gv, gv)
    assert np.allclose(m["PA-MPJPE"], 0, atol=1e-9) and np.allclose(m["FH-PA-PVE"], 0, atol=1e-9)
    # every other vertex 20 mm off along z: no similarity undoes it
    noisy = gv + np.array([0.0, 0.0, 0.02]) * (np.arange(778) % 2 == 0)[None, :, None]
    m = protocols.freihand_metrics(gj, gj, noisy, gv, gv)
    assert np.all(m["FH-PA-PVE"] > 1.0) and np.all(m["FH-F@5mm"] < 1.0)
    # the two protocols' ground truths: predictions equal to one score zero there only
    m = protocols.freihand_metrics(gj, gj, gv, noisy, gv)
    assert np.allclose(m["PA-PVE"], 0, atol=1e-9) and np.all(m["FH-PA-PVE"] > 1.0)
    assert [protocols.row_protocol(k) for k in m] == ["mmhuman3d", "mmhuman3d", "freihand", "freihand", "freihand"]


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
    assert set(metrics) == {"PA-MPJPE", "PA-PVE", "FH-PA-PVE", "FH-F@5mm", "FH-F@15mm"} and metrics["PA-PVE"] > 0
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
    res = run_cli(*data, "-q", "eval", "3dpw", "--ckpt", "body", "--data", tmp_path / "pw.h5",
                  "--json", tmp_path / "p.json", "--save-predictions", tmp_path / "pw_pred.h5")
    assert res.exit_code == 0, res.output
    m = {r["metric"]: r for r in json.loads((tmp_path / "p.json").read_text())["metrics"]}
    assert m["MPJPE"]["published"] == 92.59
    assert m["G-MPJPE"]["protocol"] == "gendered" and m["G-MPJPE"]["published"] is None
    assert m["MPJPE"]["protocol"] == "mmhuman3d" and "G-: 3DPW ground truth from the gendered SMPL" in res.stdout
    # the network's run scores as its saved predictions do (scoring itself: the e2e tests below)
    again, _, _ = rescore(run_cli, eval_tree, "3dpw", tmp_path / "pw.h5", tmp_path / "pw_pred.h5", tmp_path)
    assert again == pytest.approx({k: r["ours"] for k, r in m.items()}, rel=1e-12)
    assert run_cli(*data, "-q", "preprocess", "stirling", "--root", tmp_path / "stirling", "--split", "HQ",
                   "--out", tmp_path / "st.h5").exit_code == 0
    res = run_cli(*data, "-q", "eval", "stirling", "--ckpt", "face", "--data", tmp_path / "st.h5",
                  "--json", tmp_path / "s.json", "--save-predictions", tmp_path / "st_pred.h5")
    assert res.exit_code == 0, res.output
    m = {r["metric"]: r for r in json.loads((tmp_path / "s.json").read_text())["metrics"]}
    assert m["3DRMSE"]["published"] == 2.40
    again, _, _ = rescore(run_cli, eval_tree, "stirling", tmp_path / "st.h5", tmp_path / "st_pred.h5", tmp_path)
    assert again == pytest.approx({k: r["ours"] for k, r in m.items()}, rel=1e-12)


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


# --------------------------------------------------------------------------------------------------
# Ground truth from known body-model parameters; predictions moved by known amounts.
# "Zero" means at most 1e-9 mm (float64 round-off of the alignments), similarity-invariant
# numbers at most 1e-6 mm.
# --------------------------------------------------------------------------------------------------

D = torch.float64
ZERO = 1e-9
PA_ZERO = 1e-6
#: A float64 mesh against the same mesh rounded to float32 (metres): ~3e-8 m per coordinate.
F32_ZERO = 1e-4


def f32(x):
    """As stored in an HDF5 file (float32), back in float64: ground truth the file holds exactly."""
    return np.asarray(x, np.float32).astype(np.float64)


def _rot(gen, n, joints, scale=0.3):
    return axis_angle_to_matrix(scale * torch.randn(n, joints, 3, generator=gen, dtype=D))


def smplx_truth(tree, n=2, seed=0):
    """SMPL-X vertices (m) from known random parameters."""
    from expose_cli.body_models import build_smplx

    g = torch.Generator().manual_seed(seed)
    model = build_smplx(tree, dtype=D)
    with torch.no_grad():
        out = model(global_orient=_rot(g, n, 1), body_pose=_rot(g, n, 21), left_hand_pose=_rot(g, n, 15),
                    right_hand_pose=_rot(g, n, 15), jaw_pose=_rot(g, n, 1), leye_pose=_rot(g, n, 1),
                    reye_pose=_rot(g, n, 1), betas=torch.randn(n, 10, generator=g, dtype=D),
                    expression=torch.randn(n, 10, generator=g, dtype=D), transl=torch.tensor([[0.1, 0.2, 3.0]] * n, dtype=D))
    return out.vertices.numpy()


def mano_truth(tree, n=2, seed=1, params=False):
    """MANO vertices and its 21 'mano' joints (16 + the fingertip vertices the model uses), m; with
    ``params`` also the axis-angle parameters (full pose: flat hand mean), as a FreiHAND file holds them."""
    from expose_cli.body_models import build_mano
    from expose_cli.models.expose import MANO_TIP_VERTICES

    g = torch.Generator().manual_seed(seed)
    aa = {"mano/global_orient": f32(0.3 * torch.randn(n, 3, generator=g, dtype=D)),
          "mano/right_hand_pose": f32(0.3 * torch.randn(n, 15, 3, generator=g, dtype=D)),
          "mano/betas": f32(torch.randn(n, 10, generator=g, dtype=D))}
    t = {k: torch.as_tensor(v) for k, v in aa.items()}
    with torch.no_grad():
        out = build_mano(tree, "right", dtype=D)(global_orient=axis_angle_to_matrix(t["mano/global_orient"])[:, None],
                                                 hand_pose=axis_angle_to_matrix(t["mano/right_hand_pose"]),
                                                 betas=t["mano/betas"])
    verts = out.vertices.numpy() + np.array([0.0, 0.0, 0.6])
    joints = np.concatenate([out.joints.numpy() + np.array([0.0, 0.0, 0.6]), verts[:, np.asarray(MANO_TIP_VERTICES)]], 1)
    return (verts, joints, aa) if params else (verts, joints)


def flame_truth(tree, n=2, seed=2):
    """FLAME vertices and its 73 joints/landmarks (m)."""
    from expose_cli.body_models import build_flame

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = build_flame(tree, dtype=D)(global_orient=_rot(g, n, 1), neck_pose=_rot(g, n, 1, 0.1),
                                         jaw_pose=_rot(g, n, 1, 0.1), leye_pose=_rot(g, n, 1, 0.1),
                                         reye_pose=_rot(g, n, 1, 0.1), betas=torch.randn(n, 100, generator=g, dtype=D),
                                         expression=torch.randn(n, 50, generator=g, dtype=D))
    return out.vertices.numpy(), out.joints.numpy()


def pw3d_truth(tree, genders, seed=3):
    """SMPL parameters and the LSP-14 joints of each row through the neutral SMPL (MMHuman3D) and
    through its gendered SMPL (1 male, else female), m."""
    from expose_cli.body_models import build_smpl
    from expose_cli.body_models.keypoints import H36M_TO_J14

    g = torch.Generator().manual_seed(seed)
    n = len(genders)
    go = torch.as_tensor(f32(0.3 * torch.randn(n, 3, generator=g, dtype=D)))
    bp = torch.as_tensor(f32(0.3 * torch.randn(n, 23, 3, generator=g, dtype=D)))
    betas = torch.as_tensor(f32(torch.randn(n, 10, generator=g, dtype=D)))
    reg = Auxiliary(tree).j_regressor_h36m().astype(np.float64)
    j14 = {"neutral": np.zeros((n, 14, 3)), "gendered": np.zeros((n, 14, 3))}
    for i, code in enumerate(genders):
        for key, gender in (("neutral", "neutral"), ("gendered", "male" if code == 1 else "female")):
            smpl = build_smpl(tree, gender, dtype=D)
            with torch.no_grad():
                v = smpl(global_orient=axis_angle_to_matrix(go[i:i + 1])[:, None], body_pose=axis_angle_to_matrix(bp[i:i + 1]),
                         betas=betas[i:i + 1]).vertices[0].numpy()
            j14[key][i] = (reg @ v)[H36M_TO_J14]
    return {"smpl/global_orient": go.numpy(), "smpl/body_pose": bp.numpy(), "smpl/betas": betas.numpy()}, j14


def similarity(points, s, R, t):
    return s * points @ R.T + t


R_KNOWN = axis_angle_to_matrix(torch.tensor([0.3, -0.5, 0.8], dtype=D)).numpy()


def umeyama_reference(a, b):
    """Independent reference for PA alignment of ``a`` [N, 3] onto ``b``: the least-squares similarity
    from the SVD of the cross-covariance (Umeyama 1991, eq. 38-42), numpy."""
    ma, mb = a.mean(0), b.mean(0)
    A, B = a - ma, b - mb
    U, S, Vt = np.linalg.svd(B.T @ A / len(a))
    E = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ E @ Vt
    c = np.trace(np.diag(S) @ E) / (A**2).sum(1).mean()
    return c * a @ R.T + (mb - c * R @ ma)


# -- EHF: both protocols, with a one-hot joint regressor so that every expectation is exact ----------

def _ehf_layout(seed=0):
    """Hand / face vertex ids and one-hot regressors (55 SMPL-X joints, 14 LSP joints) such that the
    left-hand joints come from left-hand vertices, the right-hand ones from right-hand vertices and
    the body joints (pelvis, neck, ...) and LSP joints from vertices of no part."""
    rng = np.random.default_rng(seed)
    extra = protocols.EHF_EXTRA_VERTICES
    ltips, rtips = [5361, 4933, 5058, 5169, 5286], [8079, 7669, 7794, 7905, 8022]
    pool = rng.permutation(np.setdiff1d(np.arange(10475), extra))
    left = np.sort(np.concatenate([ltips, pool[:773]]))
    right = np.sort(np.concatenate([rtips, pool[773:1546]]))
    face = np.sort(pool[1546:1546 + 5023])
    body = pool[1546 + 5023:]
    jreg = np.zeros((55, 10475))
    for j in range(55):
        if j == 20 or 25 <= j < 40:
            v = left[5 + j % 15 * 3]
        elif j == 21 or 40 <= j < 55:
            v = right[5 + j % 15 * 3 + 1]
        else:
            v = body[j]
        jreg[j, v] = 1.0
    j14 = np.zeros((14, 10475))
    j14[np.arange(14), body[100:114]] = 1.0
    return left, right, face, jreg, j14


def _ehf(pred, gt, layout):
    left, right, face, jreg, j14 = layout
    return protocols.ehf_metrics(pred, gt, jreg, left, right, face, j14)


def test_ehf_rows_and_zero_on_truth(standin_tree):
    gt = smplx_truth(DataTree(standin_tree))
    layout = _ehf_layout()
    m = _ehf(gt, gt, layout)
    assert list(m) == [*protocols.EHF_ROWS, *protocols.H4W_ROWS]
    for name, v in m.items():
        assert np.all(np.abs(v) <= ZERO), name


def test_ehf_similarity_of_the_whole_body(standin_tree):
    gt = smplx_truth(DataTree(standin_tree))
    layout = _ehf_layout()
    left, right, face, jreg, _ = layout
    s, t = 1.2, np.array([0.3, -0.2, 0.5])
    pred = similarity(gt, s, R_KNOWN, t)
    m = _ehf(pred, gt, layout)
    for name in m:
        if "PA-" in name:  # every aligned number is similarity-invariant
            assert np.all(np.abs(m[name]) <= PA_ZERO), name
    A = s * R_KNOWN - np.eye(3)  # after translating root onto root, v - root maps to A (v - root)

    def err(ids, root):
        return np.stack([np.linalg.norm((gt[b, ids] - gt[b, root]) @ A.T, axis=-1).mean() for b in range(len(gt))]) * 1000

    root = {j: np.flatnonzero(jreg[j])[0] for j in (0, 12, 20, 21)}
    np.testing.assert_allclose(m["H4W PVE"], err(np.arange(10475), root[0]), rtol=1e-12)
    np.testing.assert_allclose(m["H4W HANDS PVE"], (err(left, root[20]) + err(right, root[21])) / 2, rtol=1e-12)
    np.testing.assert_allclose(m["H4W FACE PVE"], err(face, root[12]), rtol=1e-12)
    # A pure translation is removed by every root: all H4W PVEs zero.
    moved = _ehf(gt + t, gt, layout)
    for name in ("H4W PVE", "H4W HANDS PVE", "H4W FACE PVE"):
        assert np.all(np.abs(moved[name]) <= ZERO), name


def test_ehf_left_hand_moved_about_its_wrist(standin_tree):
    """The left hand (vertices, hence its joints) turned and scaled about the wrist: only the
    left-hand vertex errors and the whole-body numbers move, by hand-computable amounts."""
    gt = smplx_truth(DataTree(standin_tree))
    layout = _ehf_layout()
    left, right, face, jreg, _ = layout
    wrist = np.flatnonzero(jreg[20])[0]
    s = 0.9
    pred = gt.copy()
    pred[:, left] = gt[:, wrist, None] + s * (gt[:, left] - gt[:, wrist, None]) @ R_KNOWN.T
    m = _ehf(pred, gt, layout)
    moved = np.linalg.norm(pred[:, left] - gt[:, left], axis=-1) * 1000  # [B, 778], mm
    np.testing.assert_allclose(m["H4W HANDS PVE"], moved.mean(1) / 2, rtol=1e-12)  # mean of left and right (0)
    np.testing.assert_allclose(m["H4W PVE"], moved.sum(1) / 10475, rtol=1e-12)
    for name in ("LEFT_HAND PA-PVE", "LEFT_HAND PA-MPJPE", "H4W HANDS PA-PVE", "H4W HANDS PA-MPJPE"):
        assert np.all(np.abs(m[name]) <= PA_ZERO), name  # the hand moved rigidly (+ scale)
    for name in ("RIGHT_HAND PA-PVE", "RIGHT_HAND PA-MPJPE", "FACE PA-PVE", "H4W FACE PVE", "H4W FACE PA-PVE",
                 "BODY PA-MPJPE", "H4W BODY PA-MPJPE"):
        assert np.all(np.abs(m[name]) <= ZERO), name
    expected = [np.linalg.norm(umeyama_reference(pred[b], gt[b]) - gt[b], axis=-1).mean() * 1000 for b in range(2)]
    np.testing.assert_allclose(m["PA-PVE"], expected, rtol=1e-9)
    np.testing.assert_allclose(m["H4W PA-PVE"], m["PA-PVE"])


def test_ehf_face_translated_and_hand_deformed(standin_tree):
    gt = smplx_truth(DataTree(standin_tree))
    layout = _ehf_layout()
    left, right, face, _, _ = layout
    pred = gt.copy()
    pred[:, face] += np.array([0.0, 0.003, 0.004])  # 5 mm
    m = _ehf(pred, gt, layout)
    np.testing.assert_allclose(m["H4W FACE PVE"], 5.0, rtol=1e-9)
    np.testing.assert_allclose(m["H4W PVE"], 5.0 * 5023 / 10475, rtol=1e-9)
    assert np.all(np.abs(m["FACE PA-PVE"]) <= PA_ZERO) and np.all(np.abs(m["H4W HANDS PVE"]) <= ZERO)
    # Right hand deformed at random: its PA errors equal the reference alignment's, the left's stay 0.
    pred = gt.copy()
    pred[:, right] += np.random.default_rng(4).normal(0, 0.004, (2, 778, 3))
    m = _ehf(pred, gt, layout)
    ref = [np.linalg.norm(umeyama_reference(pred[b, right], gt[b, right]) - gt[b, right], axis=-1).mean() * 1000
           for b in range(2)]
    np.testing.assert_allclose(m["RIGHT_HAND PA-PVE"], ref, rtol=1e-9)
    np.testing.assert_allclose(m["H4W HANDS PA-PVE"], np.asarray(ref) / 2, rtol=1e-9)
    assert np.all(np.abs(m["LEFT_HAND PA-PVE"]) <= ZERO)


def test_h4w_hand_joints_are_hand4whole_s():
    """Hand4Whole's orig_hand_regressor: wrist, then per finger (thumb, index, middle, ring, pinky)
    three J_regressor joints and the fingertip vertex; the same points as MMHuman3D's hand joints."""
    e = list(protocols.EHF_EXTRA_VERTICES)
    assert [int(j) if j < 55 else int(e[j - 55]) for j in protocols.H4W_LEFT_HAND] == [
        20, 37, 38, 39, 5361, 25, 26, 27, 4933, 28, 29, 30, 5058, 34, 35, 36, 5169, 31, 32, 33, 5286]
    assert [int(j) if j < 55 else int(e[j - 55]) for j in protocols.H4W_RIGHT_HAND] == [
        21, 52, 53, 54, 8079, 40, 41, 42, 7669, 43, 44, 45, 7794, 49, 50, 51, 7905, 46, 47, 48, 8022]
    assert sorted(protocols.H4W_LEFT_HAND) == sorted(protocols.EHF_LEFT_HAND)


# -- end to end: HDF5 ground truth + saved predictions, scored by the CLI -------------------------

def write_h5(path, dataset, split, rows, raw_root="raw", attrs=None):
    from expose_cli.data.hdf5 import HDF5Writer

    writer = HDF5Writer(path, dataset, split, raw_root, "test", overwrite=True, attrs=attrs)
    for i, row in enumerate(rows):
        writer.append({"image_path": f"img_{i:03d}.jpg", "bbox_xywh": np.array([0, 0, 100, 100], np.float32), **row})
    writer.close()
    return path


def write_preds(path, benchmark, data, preds, **info):
    from expose_cli.evaluation import runner

    n = len(preds["vertices"])
    full = {"image_path": np.array([f"img_{i:03d}.jpg" for i in range(n)]), **preds}
    full.setdefault("joints", np.zeros((n, 1, 3)))
    runner.save_predictions(path, benchmark, full, {"data_sha256": sha256_file(data), "checkpoint": "ck.pth",
                                                    "checkpoint_sha256": "ab" * 32, "torch": "9.9.9", **info})
    return path


def rescore(run_cli, tree, benchmark, data, preds, tmp_path, *extra):
    out = tmp_path / f"{benchmark}_{preds.stem}.json"
    res = run_cli("--data-dir", tree, "-q", "eval", benchmark, "--data", data, "--from-predictions", preds,
                  "--json", out, *extra)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    return {r["metric"]: r["ours"] for r in report["metrics"]}, report, res


@pytest.fixture(scope="module")
def truth_tree(standin_tree):
    return DataTree(standin_tree)


def test_e2e_ehf_truth_zero_and_similarity(truth_tree, tmp_path, run_cli):
    gt = f32(smplx_truth(truth_tree, n=3))
    data = write_h5(tmp_path / "ehf.h5", "ehf", "val", [{"vertices": v} for v in gt])
    m, report, res = rescore(run_cli, truth_tree.root, "ehf", data, write_preds(tmp_path / "same.h5", "ehf", data, {"vertices": gt}), tmp_path)
    assert set(protocols.H4W_ROWS) <= set(m) and all(abs(v) <= ZERO for v in m.values())
    # the seed's precision, units per row, a title without units, the H4W rows named in the protocol
    published = [line.split("│")[4].strip() for line in res.stdout.splitlines() if "PA-" in line and "│" in line]
    assert published[:7] == ["55.70", "14.6", "14.4", "56.65", "14.6", "14.5", "6.90"]
    assert "ehf (3 samples)" in res.stdout and "H4W" in report["protocol"]
    assert report["checkpoint"] == "ck.pth" and report["checkpoint_sha256"] == "ab" * 32 and report["torch"] == "9.9.9"
    jreg = np.asarray(load_body_model_data(truth_tree.smplx_model())["J_regressor"], np.float64)
    assert np.allclose(jreg.sum(1), 1.0)  # rows sum to 1: the regressed pelvis follows a similarity
    s, t = 1.1, np.array([0.2, 0.0, -0.4])
    pred = similarity(gt, s, R_KNOWN, t)
    m, _, _ = rescore(run_cli, truth_tree.root, "ehf", data, write_preds(tmp_path / "sim.h5", "ehf", data, {"vertices": pred}), tmp_path)
    for name, v in m.items():
        if "PA-" in name:
            assert abs(v) <= PA_ZERO, name
    pelvis = np.einsum("v,bvc->bc", jreg[0], gt)
    A = s * R_KNOWN - np.eye(3)
    expected = np.mean([np.linalg.norm((gt[b] - pelvis[b]) @ A.T, axis=-1).mean() for b in range(3)]) * 1000
    assert m["H4W PVE"] == pytest.approx(expected, rel=1e-6)  # the regressor's rows sum to 1 in float32


@pytest.fixture(scope="module")
def gendered_tree(standin_tree, tmp_path_factory):
    """The stand-in tree with male and female SMPL models unlike the neutral one (the stand-in
    tree's three are one file)."""
    from expose_cli.testing.standins import standin_smpl_arrays, write_chumpy_pickle

    root = link_tree(standin_tree, tmp_path_factory.mktemp("gendered") / "data")
    tree = DataTree(root)
    for gender, seed in (("male", 11), ("female", 12)):
        tree.smpl_model(gender).unlink()
        arrays = standin_smpl_arrays(seed)  # pose blend shapes in float32: 17 MB less per file
        write_chumpy_pickle(tree.smpl_model(gender), {**arrays, "posedirs": arrays["posedirs"].astype(np.float32)})
    return tree


def test_e2e_3dpw_truth_zero_and_known_moves(gendered_tree, tmp_path, run_cli):
    genders = [1, 2, 0, 1]
    params, truth = pw3d_truth(gendered_tree, genders)
    rows = [{"gender": g, "has_smpl": True, **{k: v[i] for k, v in params.items()}} for i, g in enumerate(genders)]
    data = write_h5(tmp_path / "pw.h5", "3dpw", "test", rows)
    zeros = np.zeros((4, 3, 3))

    def score(name, pred_j14):
        return rescore(run_cli, gendered_tree.root, "3dpw", data,
                       write_preds(tmp_path / f"{name}.h5", "3dpw", data, {"vertices": zeros, "joints_j14": pred_j14}), tmp_path)

    # predictions equal to the neutral ground truth: zero in MMHuman3D's rows, not in the gendered ones
    j14, gendered = truth["neutral"], truth["gendered"]
    m, report, _ = score("same", j14)
    assert abs(m["MPJPE"]) <= ZERO and abs(m["PA-MPJPE"]) <= ZERO
    def hips(p):
        return p - p[:, 2:4].mean(1, keepdims=True)

    assert m["G-MPJPE"] == pytest.approx(np.linalg.norm(hips(j14) - hips(gendered), axis=-1).mean() * 1000, rel=1e-9)
    assert m["G-MPJPE"] > 1.0 and m["G-PA-MPJPE"] > 0.1
    assert {r["metric"]: r["protocol"] for r in report["metrics"]} == {
        "MPJPE": "mmhuman3d", "PA-MPJPE": "mmhuman3d", "G-MPJPE": "gendered", "G-PA-MPJPE": "gendered"}
    # and the reverse
    m = score("gendered", gendered)[0]
    assert abs(m["G-MPJPE"]) <= ZERO and abs(m["G-PA-MPJPE"]) <= ZERO and m["MPJPE"] > 1.0 and m["PA-MPJPE"] > 0.1
    # scaled by 1.25 about the hip centre, turned about it and shifted: MPJPE = |(sR - I)(g - c)|, PA = 0
    c = j14[:, 2:4].mean(1, keepdims=True)
    pred = c + 1.25 * (j14 - c) @ R_KNOWN.T + np.array([1.0, 2.0, 3.0])
    m = score("moved", pred)[0]
    A = 1.25 * R_KNOWN - np.eye(3)
    assert m["MPJPE"] == pytest.approx(np.linalg.norm((j14 - c) @ A.T, axis=-1).mean() * 1000, rel=1e-9)
    assert abs(m["PA-MPJPE"]) <= PA_ZERO
    # the head top 12 mm off (hips untouched): MPJPE = 12 / 14 mm
    pred = j14.copy()
    pred[:, 13] += np.array([0.0, 0.012, 0.0])
    assert score("head", pred)[0]["MPJPE"] == pytest.approx(12 / 14, rel=1e-9)


# FreiHAND's xyz order (fh: utils/fh_utils.py): wrist, then thumb, index, middle, ring, pinky, each
# MCP, PIP, DIP, tip. Our 'mano' joints: MANO's 16 (wrist; index, middle, pinky, ring, thumb, 3 each),
# then the fingertip vertices of thumb, index, middle, ring, pinky (16..20).
MANO_TO_FREIHAND = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]


def test_e2e_freihand_truth_zero_through_both_joint_paths(truth_tree, tmp_path, run_cli):
    from expose_cli.body_models.keypoints import convert_keypoints

    verts, joints, params = mano_truth(truth_tree, n=3, params=True)
    verts, joints = f32(verts), f32(joints)
    xyz = joints[:, MANO_TO_FREIHAND]  # what FreiHAND's xyz.json holds
    kp3d = convert_keypoints(np.concatenate([xyz, np.ones((3, 21, 1))], -1), "freihand", "smplx")[0]  # as the converter
    rows = [{"vertices": verts[i], "keypoints3d": kp3d[i], "has_mano": True, **{k: v[i] for k, v in params.items()}}
            for i in range(3)]
    data = write_h5(tmp_path / "fh.h5", "freihand", "test", rows, attrs={"mano_hand_mean_added": True})
    m, report, res = rescore(run_cli, truth_tree.root, "freihand", data,
                             write_preds(tmp_path / "same.h5", "freihand", data, {"vertices": verts, "joints": joints}), tmp_path)
    assert abs(m["PA-MPJPE"]) <= ZERO and abs(m["FH-PA-PVE"]) <= ZERO and m["FH-F@5mm"] == m["FH-F@15mm"] == 1.0
    assert abs(m["PA-PVE"]) <= F32_ZERO  # the mesh of the parameters in float64, the prediction stored in float32
    units = {r["metric"]: r["unit"] for r in report["metrics"]}
    assert units == {"PA-MPJPE": "mm", "PA-PVE": "mm", "FH-PA-PVE": "mm", "FH-F@5mm": "fraction", "FH-F@15mm": "fraction"}
    assert "mm)" not in res.stdout.splitlines()[0]
    pred_v, pred_j = similarity(verts, 0.8, R_KNOWN, 0.1), similarity(joints, 0.8, R_KNOWN, 0.1)
    m, _, _ = rescore(run_cli, truth_tree.root, "freihand", data,
                      write_preds(tmp_path / "sim.h5", "freihand", data, {"vertices": pred_v, "joints": pred_j}), tmp_path)
    assert abs(m["PA-MPJPE"]) <= PA_ZERO and abs(m["PA-PVE"]) <= F32_ZERO and m["FH-F@5mm"] == 1.0
    # vertices perturbed: PA-PVE and F-scores as the reference alignment gives them
    pred_v = verts + np.random.default_rng(5).normal(0, 0.004, verts.shape)
    m, _, _ = rescore(run_cli, truth_tree.root, "freihand", data,
                      write_preds(tmp_path / "noisy.h5", "freihand", data, {"vertices": pred_v, "joints": joints}), tmp_path)
    aligned = [umeyama_reference(pred_v[b], verts[b]) for b in range(3)]
    expected = np.mean([np.linalg.norm(aligned[b] - verts[b], axis=-1).mean() for b in range(3)]) * 1000
    assert m["PA-PVE"] == pytest.approx(expected, abs=F32_ZERO) and m["FH-PA-PVE"] == pytest.approx(expected, rel=1e-9)

    def fscore(a, g, th):
        d = np.linalg.norm(a[:, None] - g[None], axis=-1)
        p, r = (d.min(1) < th).mean(), (d.min(0) < th).mean()
        return 2 * p * r / (p + r)

    assert m["FH-F@5mm"] == pytest.approx(np.mean([fscore(aligned[b], verts[b], 0.005) for b in range(3)]), abs=1e-12)
    assert abs(m["PA-MPJPE"]) <= ZERO


def test_e2e_freihand_protocols_apart_and_hand_mean(truth_tree, tmp_path, run_cli):
    """Official vertices unlike the MANO mesh of the parameters: a prediction equal to the mesh
    scores zero in MMHuman3D's PA-PVE only, one equal to the official vertices in FH-PA-PVE only.
    A pose stored relative to MANO's mean (no all_means.pkl) is posed with MANO's mean added."""
    from expose_cli.body_models import build_mano

    verts, joints, params = mano_truth(truth_tree, n=2, params=True)
    official = f32(verts + np.random.default_rng(7).normal(0, 0.003, verts.shape))
    rows = [{"vertices": official[i], "has_mano": True, **{k: v[i] for k, v in params.items()}} for i in range(2)]
    data = write_h5(tmp_path / "fh.h5", "freihand", "test", rows, attrs={"mano_hand_mean_added": True})

    def score(name, pred_v, path=data):
        preds = write_preds(tmp_path / f"{name}.h5", "freihand", path, {"vertices": pred_v, "joints": joints})
        return rescore(run_cli, truth_tree.root, "freihand", path, preds, tmp_path)[0]

    gap = np.mean([np.linalg.norm(umeyama_reference(verts[b], official[b]) - official[b], axis=-1).mean()
                   for b in range(2)]) * 1000
    m = score("mesh", verts)
    assert abs(m["PA-PVE"]) <= F32_ZERO and m["FH-PA-PVE"] == pytest.approx(gap, abs=F32_ZERO) and gap > 1.0
    m = score("official", official)
    assert abs(m["FH-PA-PVE"]) <= ZERO and m["PA-PVE"] > 1.0
    # the same hands stored as FreiHAND does, relative to MANO's mean pose (hands_mean subtracted)
    mean = build_mano(truth_tree, "right", flat_hand_mean=False, dtype=D).pose_mean[3:].numpy().reshape(15, 3)
    assert np.abs(mean).max() > 0.01  # the stand-in's mean is not zero: the test can tell
    relative = [{**r, "mano/right_hand_pose": r["mano/right_hand_pose"] - mean} for r in rows]
    data2 = write_h5(tmp_path / "fh_rel.h5", "freihand", "test", relative, attrs={"mano_hand_mean_added": False})
    assert abs(score("mesh_rel", verts, data2)["PA-PVE"]) <= F32_ZERO


# Stirling's 7 landmarks (.lnd order, fg2018 toolkit): right eye outer, right eye inner, left eye
# inner, left eye outer, nose bottom, right mouth corner, left mouth corner: the iBUG-68 points 36, 39,
# 42, 45, 33, 48, 54. FLAME's 73 keypoints: 5 joints (head, neck, jaw, eyes), the iBUG points 17..67,
# then the 17 contour points: iBUG point p is keypoint p - 12.
FLAME_TO_FACE3D = [24, 27, 30, 33, 21, 36, 42]


def stirling_rows(tree, n=2):
    verts, joints = flame_truth(tree, n)
    # on a 1/64 mm grid: the scan (float32 mm) and the prediction (float64 m) are the same points
    verts, joints = np.round(verts * 64000) / 64000, np.round(joints * 64000) / 64000
    lm = joints[:, FLAME_TO_FACE3D]
    on_surface = np.unique(load_body_model_data(tree.flame_model())["f"])  # the stand-in has a few loose vertices
    on_surface = on_surface[::8]  # a scan sparser than the mesh: the stand-in's random faces are slow to search
    far = np.full((20, 3), 5.0)  # scan points far outside the face region: cropped away
    rows = [{"scan/vertices": np.concatenate([verts[i, on_surface], far]) * 1000, "scan_landmarks": lm[i] * 1000, "gender": 1}
            for i in range(n)]
    return verts, joints, rows


@pytest.mark.parametrize("subset", ["HQ", "LQ"])
def test_e2e_stirling_truth_zero_per_subset(truth_tree, tmp_path, run_cli, subset):
    verts, joints, rows = stirling_rows(truth_tree)
    data = write_h5(tmp_path / f"st_{subset}.h5", "stirling", subset, rows)
    m, report, res = rescore(run_cli, truth_tree.root, "stirling", data,
                             write_preds(tmp_path / "same.h5", "stirling", data, {"vertices": verts, "joints": joints}), tmp_path)
    assert abs(m["3DRMSE"]) <= ZERO
    assert report["subset"] == subset and f"stirling {subset} (2 samples" in res.stdout
    row = report["metrics"][0]
    if subset == "HQ":
        assert row["published"] == 2.40 and "2.40" in res.stdout
    else:  # the seed publishes no LQ number: nothing to compare with, and the table says so
        assert row["published"] is None and row["difference"] is None and "publishes Stirling HQ only" in res.stdout
    # the prediction scaled, turned and shifted (landmarks with it): the landmark alignment undoes it
    m, _, _ = rescore(run_cli, truth_tree.root, "stirling", data,
                      write_preds(tmp_path / "sim.h5", "stirling", data, {"vertices": similarity(verts, 1.3, R_KNOWN, 0.2),
                                                                           "joints": similarity(joints, 1.3, R_KNOWN, 0.2)}), tmp_path)
    assert abs(m["3DRMSE"]) <= PA_ZERO


# -- --from-predictions: provenance, belonging, --limit --------------------------------------------

def test_from_predictions_checks_and_limit(truth_tree, tmp_path, run_cli):
    gt = f32(smplx_truth(truth_tree, n=3))
    data = write_h5(tmp_path / "ehf.h5", "ehf", "val", [{"vertices": v} for v in gt])
    pred = gt.copy()
    pred[2] += np.random.default_rng(0).normal(0, 0.01, pred[2].shape)  # only the third sample is wrong
    preds = write_preds(tmp_path / "p.h5", "ehf", data, {"vertices": pred})
    m, report, _ = rescore(run_cli, truth_tree.root, "ehf", data, preds, tmp_path, "--limit", "2")
    assert report["num_samples"] == 2 and all(abs(v) <= ZERO for v in m.values())
    m, report, _ = rescore(run_cli, truth_tree.root, "ehf", data, preds, tmp_path)
    assert report["num_samples"] == 3 and m["PA-PVE"] > 1.0
    assert report["predictions"] == str(preds) and report["checkpoint_sha256"] == "ab" * 32
    # another data file (different rows): refused, naming both hashes' start
    other = write_h5(tmp_path / "other.h5", "ehf", "val", [{"vertices": v} for v in gt[::-1]])
    res = run_cli("--data-dir", truth_tree.root, "eval", "ehf", "--data", other, "--from-predictions", preds)
    assert res.exit_code == 1 and "made from another data file" in res.stderr
    # without a recorded hash, the image of each row must match
    import h5py

    with h5py.File(preds, "a") as f:
        del f.attrs["data_sha256"]
        f["image_path"][1] = "someone_else.jpg"
    res = run_cli("--data-dir", truth_tree.root, "eval", "ehf", "--data", data, "--from-predictions", preds)
    assert res.exit_code == 1 and "prediction 1 is of 'someone_else.jpg'" in res.stderr


# -- assets checked before any network work ---------------------------------------------------------

@pytest.fixture
def no_predict(monkeypatch):
    """Fails the test if `expose eval` gets as far as running the network or hashing the data."""
    from expose_cli.evaluation import runner
    from expose_cli.io import hashing

    calls = []
    monkeypatch.setattr(runner, "predict", lambda *a, **k: calls.append("predict") or pytest.fail("predict ran"))
    real_sha = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: calls.append(("sha", str(p))) or real_sha(p))
    return calls


@pytest.mark.parametrize("bench,remove,expect", [
    ("ehf", "body_models/smplx/MANO_SMPLX_vertex_ids.pkl", "expose fetch-models"),
    ("ehf", "body_models/smplx/SMPL-X__FLAME_vertex_ids.npy", "expose fetch-models"),
    ("ehf", "body_models/smplx/SMPLX_to_J14.npy", "expose fetch-models"),
    ("ehf", "body_models/smplx/SMPLX_NEUTRAL.npz", "expose import-body-models"),
    ("3dpw", "body_models/J_regressor_h36m.npy", "expose fetch-models"),
    ("3dpw", "body_models/smpl/SMPL_MALE.pkl", "expose import-body-models"),
    ("stirling", "body_models/flame/FLAME_NEUTRAL.pkl", "expose import-body-models"),
    ("freihand", "pretrained_models/resnet18_hmr_expose_hand.pth", "expose fetch-models"),
])
def test_missing_asset_stops_before_any_work(standin_tree, tmp_path, run_cli, no_predict, bench, remove, expect):
    tree = link_tree(standin_tree, tmp_path / "data")
    (tmp_path / "ckpt.pth").write_bytes(b"not read: the run stops first")
    if bench == "freihand":
        args = []
    else:
        args = ["--ckpt", tmp_path / "ckpt.pth"]
    rows = {"ehf": [{"vertices": np.zeros((10475, 3))}], "3dpw": [{"gender": 1}, {"gender": 2}],
            "stirling": [{"scan/vertices": np.zeros((3, 3)), "scan_landmarks": np.zeros((7, 3))}],
            "freihand": [{"vertices": np.zeros((778, 3))}]}[bench]
    split = {"ehf": "val", "3dpw": "test", "stirling": "HQ", "freihand": "test"}[bench]
    data = write_h5(tmp_path / "d.h5", bench, split, rows)
    (tree / remove).unlink(missing_ok=True)
    res = run_cli("--data-dir", tree, "eval", bench, "--data", data, *args)
    assert res.exit_code == 2, res.output
    first = res.stderr.strip().splitlines()[0]
    assert remove.split("/")[-1] in first and expect in first, res.stderr  # one line: the file and the command
    assert no_predict == []  # no prediction, not even a hash of the data file


# -- bounded read-ahead ----------------------------------------------------------------------------

def test_read_ahead_is_bounded(tmp_path, monkeypatch):
    import threading
    import time
    from types import SimpleNamespace

    import expose_cli.io.images as images_mod
    import expose_cli.models as models_mod
    from expose_cli.data.hdf5 import HDF5Reader
    from expose_cli.evaluation import runner

    n, batch, workers = 40, 4, 3
    data = write_h5(tmp_path / "many.h5", "ehf", "val", [{"vertices": np.zeros((2, 3))} for _ in range(n)])
    lock = threading.Lock()
    state = {"decoded": 0, "consumed": 0, "max_ahead": 0}

    def fake_read(path):
        with lock:
            state["decoded"] += 1
            state["max_ahead"] = max(state["max_ahead"], state["decoded"] - state["consumed"])
        return np.zeros((8, 8, 3), np.uint8)

    monkeypatch.setattr(images_mod, "read_image", fake_read)
    crop_sizes = set()
    monkeypatch.setattr(models_mod, "crop_person", lambda img, box, **k: crop_sizes.add(k["img_res"]) or img)

    def collate(crops):  # the batch is handed to the model: no longer "ahead"
        with lock:
            state["consumed"] += len(crops)
        return crops

    monkeypatch.setattr(models_mod, "collate", collate)

    class Fake:
        kind = "body"
        img_res = 192  # crops at the model's input size (its config's img_res), whatever its kind

        def __call__(self, crops):
            time.sleep(0.02)  # the model is slow: the loaders run as far ahead as they may
            b = len(crops)
            return SimpleNamespace(vertices=torch.zeros(b, 2, 3), joints=torch.zeros(b, 1, 3), joints_j14=None)

    with HDF5Reader(data) as reader:
        out = runner.predict("ehf", reader, Fake(), batch, None, workers=workers)
    assert len(out["vertices"]) == n and state["decoded"] == n and crop_sizes == {192}
    window = runner.read_ahead_window(batch, workers)
    assert window == 2 * batch
    # decoded (or being decoded) but not yet given to the model: at most the window, and more than
    # one batch (the loaders did work ahead while the slow model ran)
    assert batch < state["max_ahead"] <= window, state


# -- determinism across batch sizes -----------------------------------------------------------------

def test_eval_batch_size_does_not_change_numbers(eval_tree, tmp_path, run_cli):
    data = ["--data-dir", eval_tree]
    assert run_cli(*data, "-q", "preprocess", "ehf", "--overwrite").exit_code == 0
    means = []
    for bs in (1, 3):
        assert run_cli(*data, "-q", "eval", "ehf", "--batch-size", str(bs), "--json", tmp_path / f"b{bs}.json").exit_code == 0
        means.append({r["metric"]: r["ours"] for r in json.loads((tmp_path / f"b{bs}.json").read_text())["metrics"]})
    # float32 networks batch differently: at most float noise (documented: < 1e-3 mm)
    for name in means[0]:
        assert means[0][name] == pytest.approx(means[1][name], abs=1e-3), name
