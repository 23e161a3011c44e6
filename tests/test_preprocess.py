"""`expose preprocess` (every converter, `all`, error paths), the HDF5 layout, and `expose inspect`."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest

from expose_cli.body_models.keypoints import get_convention
from expose_cli.data.converters import ehf
from expose_cli.data.hdf5 import FORMAT_NAME, HDF5Reader, HDF5Writer
from expose_cli.data.preprocess import LIMIT_NOTE
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.testing.raw_datasets import write_ehf, write_freihand
from expose_cli.testing.trees import link_tree

SMPLX = get_convention("smplx")
# EHF's world->camera rotation, the Rodrigues vector of ExPose's EHF loader (expose/data/datasets/ehf.py,
# as docs/datasets.md quotes it), made a matrix by OpenCV.
EHF_CAMERA_R = cv2.Rodrigues(np.array([-2.9874789618512025, 0.011724572107320893, -0.05704686818955933]))[0]


def test_ehf_conversion_values(tmp_path, run_cli):
    truth = write_ehf(tmp_path / "data" / "datasets" / "EHF")
    res = run_cli("--data-dir", tmp_path / "data", "-q", "preprocess", "ehf")
    assert res.exit_code == 0, res.output
    path = DataTree(tmp_path / "data").preprocessed_file("ehf", "val")
    with HDF5Reader(path) as r:
        assert len(r) == 3 and r.attrs["format"] == FORMAT_NAME and r.attrs["split"] == "val"
        row = r[1]
        kps = truth["02"]["keypoints"]
        # OpenPose nose (body 0) -> SMPL-X 'nose'; right hand 0 (wrist root, index 25+21) is dropped
        np.testing.assert_allclose(row["keypoints2d"][SMPLX.index("nose")], kps[0], rtol=1e-5)
        np.testing.assert_allclose(row["keypoints2d"][SMPLX.index("right_thumb1")], kps[25 + 21 + 1], rtol=1e-5)
        # box: extent of all 137 points (undetected (0, 0) ones included, as MMHuman3D), scaled 1.2
        lo, hi = kps[:, :2].min(0), kps[:, :2].max(0)
        c, s = (lo + hi) / 2, (hi - lo) * 1.2
        np.testing.assert_allclose(row["bbox_xywh"], [c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]], rtol=1e-5)
        assert lo.min() == 0.0  # the quirk is visible: the origin is in the box
        np.testing.assert_allclose(row["vertices"], truth["02"]["vertices"] @ EHF_CAMERA_R.T, atol=1e-5)
        assert tuple(row["image_size"]) == (120, 160) and row["image_path"] == "02_img.jpg"
        assert json.loads(r.attrs["notes"])["boxes that include undetected (0, 0) points (MMHuman3D quirk)"] == 3
    # no overwrite without --overwrite; the file is untouched
    before = path.stat().st_mtime_ns
    again = run_cli("--data-dir", tmp_path / "data", "preprocess", "ehf")
    assert again.exit_code == 1 and "output exists" in again.stderr and path.stat().st_mtime_ns == before
    assert run_cli("--data-dir", tmp_path / "data", "-q", "preprocess", "ehf", "--overwrite").exit_code == 0


def test_ehf_bad_input(tmp_path, run_cli):
    root = tmp_path / "EHF"
    write_ehf(root, frames=2)
    (root / "02_2Djnt.json").write_text("{not json")
    out = tmp_path / "ehf.h5"
    res = run_cli("preprocess", "ehf", "--root", root, "--out", out)
    assert res.exit_code == 1 and "02_2Djnt.json" in res.stderr and "OpenPose JSON" in res.stderr
    assert not out.exists() and not any(p.name.endswith(".h5") for p in tmp_path.iterdir())
    res = run_cli("-q", "preprocess", "ehf", "--root", root, "--out", out, "--skip-bad")
    assert res.exit_code == 0
    with HDF5Reader(out) as r:
        assert len(r) == 1 and json.loads(r.attrs["dropped"]) == {"unreadable file (ExposeError)": 1}
    res = run_cli("preprocess", "ehf", "--root", tmp_path / "nowhere")
    assert res.exit_code == 1 and "raw dataset folder not found" in res.stderr


def test_freihand_splits_by_unique_sample(tmp_path, run_cli, standin_tree):
    data = link_tree(standin_tree, tmp_path / "data")
    truth = write_freihand(data / "datasets" / "FreiHand", unique=10)
    (data / "datasets" / "FreiHand" / "training_verts.json").unlink()  # not read: no split stores training meshes
    res = run_cli("--data-dir", data, "-q", "preprocess", "freihand")
    assert res.exit_code == 0, res.output
    tree = DataTree(data)
    with HDF5Reader(tree.preprocessed_file("freihand", "train")) as tr, \
            HDF5Reader(tree.preprocessed_file("freihand", "val")) as va, \
            HDF5Reader(tree.preprocessed_file("freihand", "test")) as te:
        assert (len(tr), len(va), len(te)) == (32, 8, 4)
        train_ids = {int(p.split("/")[-1][:8]) % 10 for p in tr.column("image_path").astype(str)}
        val_ids = {int(p.split("/")[-1][:8]) % 10 for p in va.column("image_path").astype(str)}
        assert train_ids == set(range(8)) and val_ids == {8, 9}  # no unique sample in both
        row = tr[8 + 3]  # version 1 of unique sample 3: image 10 + 3
        assert row["image_path"] == "training/rgb/00000013.jpg"
        t = truth["training"]
        from expose_cli.body_models.auxiliary import Auxiliary

        mean = Auxiliary(tree).all_means()["right_hand_pose"]["aa"].reshape(15, 3)
        np.testing.assert_allclose(row["mano/right_hand_pose"], t["mano"][3, 3:48].reshape(15, 3) + mean, rtol=1e-5)
        np.testing.assert_allclose(row["mano/betas"], t["mano"][3, 48:58], rtol=1e-5)
        x, y, z = t["xyz"][3][9]  # middle finger MCP in FreiHAND order -> SMPL-X right_middle1
        K = t["K"][3]
        np.testing.assert_allclose(row["keypoints2d"][SMPLX.index("right_middle1")][:2],
                                   [K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]], rtol=1e-5)
        np.testing.assert_allclose(row["keypoints3d"][SMPLX.index("right_wrist")], [*t["xyz"][3][0], 1.0], rtol=1e-5)
        assert "vertices" not in tr.fields() and "vertices" not in va.fields()
        np.testing.assert_allclose(te[2]["vertices"], truth["evaluation"]["verts"][2], rtol=1e-6)
        assert row["mano_scale"] == pytest.approx(t["scale"][3], rel=1e-6)
        assert bool(row["has_mano"]) and bool(row["is_right"]) and not bool(row["has_smplx"])
        assert tr.column("keypoints2d_mask").sum() == 21
        assert bool(tr.attrs["mano_hand_mean_added"]) and "all_means.pkl" in tr.attrs["mano_right_hand_pose"]
    bad = data / "datasets" / "FreiHand" / "training_xyz.json"
    bad.write_text(json.dumps(np.zeros((10, 20, 3)).tolist()))
    res = run_cli("--data-dir", data, "preprocess", "freihand", "--split", "train", "--overwrite")
    assert res.exit_code == 1 and "training_xyz.json" in res.stderr and "shape (N, 21, 3)" in res.stderr


def test_json_numbers_reader_matches_json_and_refuses_bad_files(tmp_path):
    from expose_cli.io.json_arrays import read_json_numbers

    rng = np.random.default_rng(1)
    values = (rng.normal(0, 1e-3, (7, 5, 3)) * 10.0 ** rng.integers(-6, 6, (7, 5, 3))).tolist()
    path = tmp_path / "verts.json"
    path.write_text(json.dumps(values))
    for chunk in (7, 64, 1 << 20):  # chunk boundaries fall inside numbers
        got = read_json_numbers(path, (5, 3), chunk_bytes=chunk)
        np.testing.assert_array_equal(got, np.array(values))
    path.write_text("[1.5, -2e-3,\n 4]")
    np.testing.assert_array_equal(read_json_numbers(path, ()), [1.5, -2e-3, 4.0])
    for text, msg in (("[[1, 2, 3], [4, 5, null]]", "unexpected 'n'"), ('{"a": 1}', "unexpected '{'"),
                      ("[[1, 2, 3], [4, 5]]", "shape \\(N, 3\\)"), ("[[1, 2, 3], [4, 5, 6]", "shape"),
                      ("[[1, 2, 3, 4, 5, 6]]", "shape"), ("[[1, 2, 3], [4, 5, 6-]]", "not a number")):
        path.write_text(text)
        with pytest.raises(ExposeError, match=msg) as info:
            read_json_numbers(path, (3,))
        assert info.value.path == path


def test_writer_streams_blocks_and_round_trips(tmp_path):
    path = tmp_path / "x.h5"
    w = HDF5Writer(path, "synthetic", "train", tmp_path, "t-1")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(600):  # more than two blocks
        row = {"image_path": f"img/{i}.jpg", "bbox_xywh": rng.random(4), "smplx/betas": rng.random(10),
               "has_smplx": i % 2 == 0, "gender": i % 3, "scan/vertices": rng.random((i % 5, 3))}
        rows.append(row)
        w.append(row)
    assert not path.exists()  # only a temporary file while writing
    w.close()
    with HDF5Reader(path) as r:
        assert len(r) == 600 and r.attrs["num_samples"] == 600
        for i in (0, 255, 256, 599):
            got = r[i]
            assert got["image_path"] == rows[i]["image_path"]
            np.testing.assert_allclose(got["smplx/betas"], rows[i]["smplx/betas"], rtol=1e-6)
            assert bool(got["has_smplx"]) == rows[i]["has_smplx"] and got["gender"] == rows[i]["gender"]
            np.testing.assert_allclose(got["scan/vertices"], rows[i]["scan/vertices"], rtol=1e-6)
            assert not got["has_mano"] and np.all(got["mano/betas"] == 0)  # absent fields: zero / False
        assert r.file["smplx/betas"].compression == "gzip"
    w2 = HDF5Writer(tmp_path / "y.h5", "synthetic", "train", tmp_path, "t-1")
    w2.append({"image_path": "a.jpg"})
    w2.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]
    with pytest.raises(ValueError, match="unknown sample fields"):
        HDF5Writer(tmp_path / "z.h5", "s", "t", tmp_path, "t").append({"image_path": "a", "nope": 1})


def test_reader_refuses_foreign_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ExposeError, match="not a file written by `expose preprocess`"):
        HDF5Reader(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ExposeError, match="cannot open as HDF5"):
        HDF5Reader(tmp_path / "junk.h5")


def test_inspect_cli(tmp_path, run_cli):
    write_ehf(tmp_path / "EHF", frames=2)
    run_cli("-q", "preprocess", "ehf", "--root", tmp_path / "EHF", "--out", tmp_path / "e.h5", "--limit", "1")
    res = run_cli("inspect", tmp_path / "e.h5", "--json", tmp_path / "i.json")
    assert res.exit_code == 0 and "vertices" in res.stdout
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["num_samples"] == 1 and info["fields"]["vertices"][0] == [1, 10475, 3]
    assert info["attrs"]["dataset"] == "ehf"
    res = run_cli("preprocess", "nope")
    assert res.exit_code == 1 and "unknown dataset 'nope'" in res.stderr


def test_pw3d_conversion(tmp_path, run_cli):
    from expose_cli.geometry.rotations import axis_angle_to_matrix
    from expose_cli.testing.raw_datasets import write_pw3d

    root = tmp_path / "3DPW"
    seq = write_pw3d(root)
    out = tmp_path / "pw.h5"
    assert run_cli("-q", "preprocess", "3dpw", "--root", root, "--split", "test", "--out", out).exit_code == 0
    with HDF5Reader(out) as r:
        # actor 0: 3 frames; actor 1: frame 1 invalid camera, frame 2 no 2D joint
        assert len(r) == 4 and json.loads(r.attrs["dropped"]) == {
            "no detected 2D joint": 1, "invalid camera pose (campose_valid false)": 1}
        row = r[0]
        assert row["image_path"] == "imageFiles/seq_a/image_00000.jpg" and tuple(row["image_size"]) == (64, 48)
        j2d = seq["poses2d"][0][0].T
        seen = j2d[:, 2] > 0
        lo, hi = j2d[seen, :2].min(0), j2d[seen, :2].max(0)
        np.testing.assert_allclose(row["bbox_xywh"][2:], (hi - lo) * 1.2, rtol=1e-5)
        R = seq["cam_poses"][0][:3, :3]
        expected = R @ axis_angle_to_matrix(seq["poses"][0][0, :3]).numpy()
        got = axis_angle_to_matrix(row["smpl/global_orient"].astype(np.float64)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(row["smpl/body_pose"].reshape(-1), seq["poses"][0][0, 3:], rtol=1e-5)
        assert row["gender"] == 1 and r[3]["gender"] == 2
        np.testing.assert_allclose(row["keypoints2d"][SMPLX.index("neck")], j2d[1], rtol=1e-5)
        assert row["keypoints2d"][SMPLX.index("nose")][2] == 0  # undetected stays absent


def test_stirling_conversion(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_stirling

    truth = write_stirling(tmp_path / "stirling")
    out = tmp_path / "st.h5"
    res = run_cli("-q", "preprocess", "stirling", "--root", tmp_path / "stirling", "--split", "HQ", "--out", out)
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        assert len(r) == 2 and json.loads(r.attrs["dropped"]) == {"no scan or landmarks for the subject": 1}
        np.testing.assert_allclose(r.scan(0), truth["F1001"]["vertices"], atol=1e-3)
        np.testing.assert_allclose(r.scan(1), truth["M1002"]["vertices"], atol=1e-3)
        np.testing.assert_allclose(r[1]["scan_landmarks"], truth["M1002"]["landmarks"], atol=1e-3)
        assert r[0]["bbox_xywh"].tolist() == [0, 0, 39, 49] and r[1]["gender"] == 1


def test_ffhq_conversion(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_ffhq

    ann = write_ffhq(tmp_path / "ffhq", n=5, nested=True)
    assert run_cli("-q", "preprocess", "ffhq", "--root", tmp_path / "ffhq", "--split", "train", "--out", tmp_path / "t.h5").exit_code == 0
    assert run_cli("-q", "preprocess", "ffhq", "--root", tmp_path / "ffhq", "--split", "val", "--out", tmp_path / "v.h5").exit_code == 0
    with HDF5Reader(tmp_path / "t.h5") as t, HDF5Reader(tmp_path / "v.h5") as v:
        assert (len(t), len(v)) == (4, 1)  # int(0.8 * 5) = 4
        row = v[0]
        assert row["image_path"] == "images1024x1024/00000/00004.png"
        np.testing.assert_allclose(row["flame/expression"], ann["expression"][4], rtol=1e-5)
        # FLAME keypoint 5 is the first landmark, the right eyebrow's outer end
        np.testing.assert_allclose(row["keypoints2d"][SMPLX.index("right_eye_brow1")], [*ann["keypoints2d"][4, 5], 1.0], rtol=1e-5)
        assert bool(row["has_flame"])


def test_curated_fits_conversion(tmp_path, run_cli):
    from expose_cli.data.converters.curated_fits import binarise
    from expose_cli.testing.raw_datasets import write_curated_fits

    data = write_curated_fits(tmp_path / "ExPose_curated_fits")
    out = tmp_path / "cf.h5"
    assert run_cli("-q", "preprocess", "curated-fits", "--root", tmp_path / "ExPose_curated_fits", "--split", "train",
                   "--out", out).exit_code == 0
    with HDF5Reader(out) as r:
        assert len(r) == 3 and json.loads(r.attrs["dropped"]) == {"no keypoint above the confidence thresholds": 1}
        assert r.attrs["raw_root"] == str(tmp_path.resolve())  # img_fns are relative to data/datasets
        row = r[1]  # source row 2
        assert row["image_path"] == "lsp/lsp_dataset_original/images/im0002.jpg"
        np.testing.assert_allclose(row["smplx/jaw_pose"], data["pose"][2, 22], rtol=1e-5)
        np.testing.assert_allclose(row["smplx/right_hand_pose"], data["pose"][2, 40:55], rtol=1e-5)
        kp = binarise(data["keypoints2D"][2])
        seen = kp[:, 2] > 0
        lo, hi = kp[seen, :2].min(0), kp[seen, :2].max(0)
        np.testing.assert_allclose(row["bbox_xywh"][2:], (hi - lo) * 1.2, rtol=1e-5)
    k = np.array([[0, 0, 0.15], [0, 0, -1.0]] + [[0, 0, 0.15]] * 24 + [[0, 0, 0.15]] * 41 + [[0, 0, 0.35]] * 70)
    b = binarise(k)
    assert b[0, 2] == 1 and b[1, 2] == 0 and b[30, 2] == 0 and b[100, 2] == 0  # body 0.1, hands 0.2, face 0.4


def test_spin_smplx_conversion(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_spin_smplx

    data = write_spin_smplx(tmp_path / "spin_in_smplx", "lsp", n=30)
    out = tmp_path / "s.h5"
    assert run_cli("-q", "preprocess", "spin-smplx", "--root", tmp_path / "spin_in_smplx", "--split", "lsp",
                   "--out", out).exit_code == 0
    with HDF5Reader(out) as r:
        assert len(r) == 29 and json.loads(r.attrs["dropped"]) == {"has_smpl == 0": 1}
        row = r[26]  # 27th kept sample = source row 27: rows 9 and 11 of part swapped
        lsp_idx = {n: SMPLX.index(n) for n in ("left_wrist", "left_shoulder")}
        src = data["part"][27]
        np.testing.assert_allclose(row["keypoints2d"][lsp_idx["left_wrist"], :2], src[9, :2], rtol=1e-5)
        np.testing.assert_allclose(row["keypoints2d"][lsp_idx["left_shoulder"], :2], src[11, :2], rtol=1e-5)
        first = r[0]  # source row 1
        c, s = data["center"][1], data["scale"][1] * 200
        np.testing.assert_allclose(first["bbox_xywh"], [c[0] - s / 2, c[1] - s / 2, s, s], rtol=1e-5)
        assert first["image_path"] == "lsp/lsp_dataset_original/images/im0002.jpg"
        np.testing.assert_allclose(first["smplx/body_pose"].reshape(-1), data["pose"][1, 3:66], rtol=1e-5)


def test_coco_conversion(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_coco

    data = write_coco(tmp_path / "coco")
    out = tmp_path / "c.h5"
    assert run_cli("-q", "preprocess", "coco", "--root", tmp_path / "coco", "--split", "train2014", "--out", out).exit_code == 0
    with HDF5Reader(out) as r:
        assert len(r) == 2
        assert json.loads(r.attrs["dropped"]) == {"crowd": 1, "limb joints not all labelled": 1, "no keypoints": 1}
        first = r[0]  # image 3 comes first (annotations sorted by image id)
        assert first["image_path"] == "train2014/COCO_train2014_000000000003.jpg"
        assert tuple(first["image_size"]) == (360, 500) and first["bbox_xywh"].tolist() == [5, 6, 70, 80]
        k = np.asarray(data["annotations"][3]["keypoints"], float).reshape(17, 3)
        np.testing.assert_allclose(first["keypoints2d"][SMPLX.index("left_knee")], [*k[13, :2], 1.0])
    res = run_cli("preprocess", "coco", "--root", tmp_path / "coco", "--split", "val2014", "--out", tmp_path / "v.h5")
    assert res.exit_code == 1 and "person_keypoints_val2014.json: missing annotation file" in res.stderr


def test_h36m_conversion(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_h36m

    raw = write_h36m(tmp_path / "h36m")
    out = tmp_path / "h.h5"
    res = run_cli("-q", "preprocess", "h36m-smplx", "--root", tmp_path / "h36m", "--split", "train", "--out", out)
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        # every 5th frame (0, 5, 10) of 'Directions 1'; frame 5's mask is empty; '_ALL' is skipped
        assert len(r) == 2 and json.loads(r.attrs["dropped"]) == {"empty mask": 1}
        paths = list(r.column("image_path").astype(str))
        assert paths[0] == "S1/images/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg"
        assert all((tmp_path / "h36m" / p).is_file() for p in paths)  # the layout of datasets.md §8
        d3 = raw[("Directions 1", "D3_Positions_mono")].reshape(-1, 32, 3)
        row = r[0]
        pelvis, l_knee = d3[0, 11], d3[0, 7]
        np.testing.assert_allclose(row["keypoints3d"][SMPLX.index("left_knee")][:3], (l_knee - pelvis) / 1000, rtol=1e-5)
        assert row["keypoints3d"][SMPLX.index("pelvis")][:3].tolist() == [0, 0, 0]
        # mask of frame 0: rows 5..24 and columns 10..29 of the stored (W, H) array -> x 5..24, y 10..29
        np.testing.assert_allclose(row["bbox_xywh"], [15 - 9, 20 - 9, 18, 18], atol=1e-5)
        assert tuple(row["image_size"]) == (30, 40)


def test_embed_images(tmp_path, run_cli):
    root = tmp_path / "EHF"
    write_ehf(root, frames=2)  # keypoints in 400..1200 px plus undetected (0, 0) ones
    # A smooth image (values x/6, y/6, 100) large enough to hold the middle of every box.
    y, x = np.mgrid[0:1400, 0:1400]
    img = np.stack([x / 6, y / 6, np.full(x.shape, 100.0)], -1).round().astype(np.uint8)
    for nn in ("01", "02"):
        cv2.imwrite(str(root / f"{nn}_img.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = tmp_path / "e.h5"
    res = run_cli("-q", "preprocess", "ehf", "--root", root, "--out", out, "--embed-images", "--workers", "2")
    assert res.exit_code == 0, res.output
    assert "warning: --workers with --embed-images is deprecated: use --threads" in res.stderr  # the old spelling
    with HDF5Reader(out) as r:
        row = r[0]
    crop = cv2.imdecode(row["image_jpeg"], cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape[0] == crop.shape[1] <= 512
    # the stored affine maps the box centre to the crop centre
    bx, by, bw, bh = row["bbox_xywh"]
    A = row["image_crop_affine"]
    cx, cy = A @ np.array([bx + bw / 2, by + bh / 2, 1.0])
    assert abs(cx - crop.shape[1] / 2) < 1e-2 and abs(cy - crop.shape[0] / 2) < 1e-2
    # and the crop's pixels are the image's pixels there: the crop spans twice the box's longer side
    # (at most 2 x 1.2 x 1200 px) about a centre near (600, 600), so its middle 30 % lies in the image
    inv = np.linalg.inv(np.vstack([A, [0, 0, 1]]))[:2]
    side = crop.shape[0]
    for fu in (0.35, 0.425, 0.5, 0.575, 0.65):
        for fv in (0.35, 0.5, 0.65):
            u, v = int(fu * side), int(fv * side)
            px, py = inv @ np.array([u, v, 1.0])
            assert 0 <= px < 1400 and 0 <= py < 1400
            diff = np.abs(crop[v, u].astype(int) - img[int(round(py)), int(round(px))].astype(int))
            assert diff.max() <= 4, (u, v, crop[v, u], img[int(round(py)), int(round(px))])


# --- partial raw data, `all`, skipping -------------------------------------------------------------


def test_all_converts_present_splits_and_continues_past_failures(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_coco, write_pw3d, write_stirling

    data = tmp_path / "data"
    write_coco(data / "datasets" / "coco", "train2014")  # COCO 2014 train only
    write_pw3d(data / "datasets" / "3DPW", "test")  # 3DPW test only
    write_stirling(data / "datasets" / "stirling")  # Stirling HQ only
    (data / "datasets" / "EHF").mkdir()  # a raw folder with nothing in it: that dataset fails
    tree = DataTree(data)
    res = run_cli("--data-dir", data, "-q", "preprocess", "all")
    assert res.exit_code == 1, res.output
    for name, split in (("coco", "train2014"), ("3dpw", "test"), ("stirling", "HQ")):
        assert tree.preprocessed_file(name, split).is_file()
    for name, split in (("coco", "val2014"), ("coco", "train2017"), ("3dpw", "val"), ("stirling", "LQ")):
        assert not tree.preprocessed_file(name, split).exists()
        assert f"skipped {name} {split}: raw input not found" in res.stderr
    assert "ehf: " in res.stderr and "no raw input for any ehf split" in res.stderr
    assert "1 of 4 datasets failed: ehf" in res.stderr
    # again: existing outputs are skipped (not an error), and with the empty folder gone it succeeds
    (data / "datasets" / "EHF").rmdir()
    before = tree.preprocessed_file("coco", "train2014").stat().st_mtime_ns
    res = run_cli("--data-dir", data, "-q", "preprocess", "all")
    assert res.exit_code == 0, res.output
    assert "skipped coco train2014: output exists (--overwrite replaces it)" in res.stderr
    assert tree.preprocessed_file("coco", "train2014").stat().st_mtime_ns == before
    res = run_cli("--data-dir", data, "-q", "preprocess", "all", "--overwrite")
    assert res.exit_code == 0 and "output exists" not in res.stderr
    res = run_cli("--data-dir", data, "preprocess", "all", "--split", "test")
    assert res.exit_code == 1 and "cannot be used with 'all'" in res.stderr


def test_default_splits_skip_missing_input_but_requested_ones_must_exist(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_stirling

    truth = write_stirling(tmp_path / "stirling", quality="LQ")
    data = tmp_path / "data"
    res = run_cli("--data-dir", data, "-q", "preprocess", "stirling", "--root", tmp_path / "stirling")
    assert res.exit_code == 0, res.output
    assert "skipped stirling HQ: raw input not found (Subset_2D_FG2018/HQ/*.jpg)" in res.stderr
    with HDF5Reader(DataTree(data).preprocessed_file("stirling", "LQ")) as r:
        assert len(r) == 2 and r[0]["image_path"] == "Subset_2D_FG2018/LQ/F1001_001.jpg"
        np.testing.assert_allclose(r.scan(1), truth["M1002"]["vertices"], atol=1e-3)
    assert not DataTree(data).preprocessed_file("stirling", "HQ").exists()
    res = run_cli("--data-dir", data, "preprocess", "stirling", "--root", tmp_path / "stirling", "--split", "HQ")
    assert res.exit_code == 1 and "no images" in res.stderr


def test_pw3d_val_folder_name(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_pw3d

    for folder in ("val", "validation"):
        root = tmp_path / folder / "3DPW"
        write_pw3d(root, folder)
        data = tmp_path / folder / "data"
        res = run_cli("--data-dir", data, "-q", "preprocess", "3dpw", "--root", root)
        assert res.exit_code == 0, res.output
        assert "skipped 3dpw train" in res.stderr and "skipped 3dpw test" in res.stderr
        with HDF5Reader(DataTree(data).preprocessed_file("3dpw", "val")) as r:
            assert len(r) == 4 and r.attrs["split"] == "val"


def test_limit_note_and_absolute_raw_root(tmp_path, run_cli, monkeypatch):
    write_ehf(tmp_path / "EHF", frames=3)
    monkeypatch.chdir(tmp_path)
    for limit, notes in (("2", {LIMIT_NOTE: 1}), ("3", {})):
        out = tmp_path / f"e{limit}.h5"
        assert run_cli("-q", "preprocess", "ehf", "--root", "EHF", "--out", out, "--limit", limit).exit_code == 0
        with HDF5Reader(out) as r:
            assert len(r) == int(limit) and r.attrs["limit"] == int(limit)
            got = json.loads(r.attrs["notes"])
            got.pop("boxes that include undetected (0, 0) points (MMHuman3D quirk)")
            assert got == notes
            assert r.attrs["raw_root"] == str((tmp_path / "EHF").resolve())  # absolute, though --root was relative


def test_freihand_without_all_means_says_pose_is_relative_to_mano_mean(tmp_path, run_cli):
    write_freihand(tmp_path / "FreiHand", unique=5, eval_samples=2)
    out = tmp_path / "f.h5"
    res = run_cli("--data-dir", tmp_path / "empty", "-q", "preprocess", "freihand", "--root", tmp_path / "FreiHand",
                  "--split", "test", "--out", out)
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        assert not bool(r.attrs["mano_hand_mean_added"]) and "relative to MANO's mean" in r.attrs["mano_right_hand_pose"]


# --- COCO layouts and malformed annotations --------------------------------------------------------


def test_coco_2017_and_wholebody(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_coco

    root = tmp_path / "coco"
    write_coco(root, "val2017")
    data = tmp_path / "data"
    res = run_cli("--data-dir", data, "-q", "preprocess", "coco", "--root", root)
    assert res.exit_code == 0, res.output
    assert "skipped coco train2014" in res.stderr and "skipped coco train2017" in res.stderr
    with HDF5Reader(DataTree(data).preprocessed_file("coco", "val2017")) as r:
        assert len(r) == 2 and r[0]["image_path"] == "train_2017/val2017/000000000003.jpg"

    whole = write_coco(tmp_path / "cwb", "train2017", wholebody=True)
    out = tmp_path / "w.h5"
    res = run_cli("-q", "preprocess", "coco", "--root", tmp_path / "cwb", "--split", "train2017", "--out", out)
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        assert len(r) == 2 and json.loads(r.attrs["dropped"]) == {"crowd": 1, "limb joints not all labelled": 1,
                                                                   "no keypoints": 1}
        first, second = r[0], r[1]  # annotation 4 (image 3: hands and face valid), then 1 (not)
        assert first["image_path"] == "train_2017/train2017/000000000003.jpg"
        hand = np.asarray(whole["annotations"][3]["righthand_kpts"]).reshape(21, 3)
        np.testing.assert_allclose(first["keypoints2d"][SMPLX.index("right_index1")], hand[5], rtol=1e-5)
        assert first["keypoints2d"][SMPLX.index("right_index1"), 2] == 0.5  # hand scores not binarised
        assert second["keypoints2d"][SMPLX.index("right_index1"), 2] == 0  # invalid hand: absent
        body = np.asarray(whole["annotations"][0]["keypoints"], float).reshape(17, 3)
        np.testing.assert_allclose(second["keypoints2d"][SMPLX.index("left_knee")], [*body[13, :2], 1.0])


def test_coco_malformed_annotations(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import coco_json_path, write_coco

    root = tmp_path / "coco"
    data = write_coco(root, "train2014")
    data["annotations"][3]["keypoints"] = data["annotations"][3]["keypoints"][:50]
    path = coco_json_path(root, "train2014")
    path.write_text(json.dumps(data))
    out = tmp_path / "c.h5"
    res = run_cli("preprocess", "coco", "--root", root, "--split", "train2014", "--out", out)
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "person_keypoints_train2014.json: annotation 4: keypoints is not 51 numbers (found 50)" in res.stderr
    data["annotations"][3]["keypoints"] = [0] * 51
    data["annotations"][0]["image_id"] = 77  # unknown image
    path.write_text(json.dumps(data))
    res = run_cli("preprocess", "coco", "--root", root, "--split", "train2014", "--out", out)
    assert res.exit_code == 1 and "annotation 1: refers to unknown image 77" in res.stderr
    data["annotations"][3]["keypoints"] = ["x"] * 51
    path.write_text(json.dumps(data))
    res = run_cli("-q", "preprocess", "coco", "--root", root, "--split", "train2014", "--out", out, "--skip-bad")
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        assert len(r) == 0 and json.loads(r.attrs["dropped"])["malformed annotation"] == 2


# --- npz strings and objects -----------------------------------------------------------------------


@pytest.mark.parametrize("strings", ["bytes", "object"])
def test_npz_bytes_and_object_string_arrays(tmp_path, run_cli, strings, monkeypatch):
    from expose_cli.testing.raw_datasets import write_curated_fits, write_ffhq, write_spin_smplx

    def refuse(*args, **kwargs):
        raise AssertionError("np.load must not be used (allow_pickle=True would run code)")

    monkeypatch.setattr(np, "load", refuse)
    write_curated_fits(tmp_path / "ExPose_curated_fits", strings=strings)
    write_spin_smplx(tmp_path / "spin_in_smplx", "lsp", strings=strings)
    write_ffhq(tmp_path / "ffhq", strings=strings)
    for name, folder, split, index, expected in (
            ("curated-fits", "ExPose_curated_fits", "train", 2, "lsp/lsp_dataset_original/images/im0003.jpg"),
            ("spin-smplx", "spin_in_smplx", "lsp", 1, "lsp/lsp_dataset_original/images/im0003.jpg"),
            ("ffhq", "ffhq", "train", 1, "ffhq_global_images_1024/00001.png")):
        out = tmp_path / f"{name}.h5"
        res = run_cli("-q", "preprocess", name, "--root", tmp_path / folder, "--split", split, "--out", out)
        assert res.exit_code == 0, res.output
        with HDF5Reader(out) as r:
            assert r[index]["image_path"] == expected


def test_npz_with_code_in_an_object_array_is_refused(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_curated_fits

    root = tmp_path / "ExPose_curated_fits"
    data = write_curated_fits(root)
    data["img_fns"] = np.array([_Evil()] * 4, dtype=object)
    np.savez(root / "train.npz", **data)
    res = run_cli("preprocess", "curated-fits", "--root", root, "--split", "train", "--out", tmp_path / "c.h5")
    assert res.exit_code == 1 and "train.npz" in res.stderr and "refusing to load" in res.stderr
    assert not (tmp_path / "pwned").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


# --- wrong shapes, bad images, the safety net ------------------------------------------------------


def _pw3d_with_bad_sequence(root, key: str, value) -> None:
    import pickle

    from expose_cli.testing.raw_datasets import write_pw3d

    seq = write_pw3d(root)
    seq[key] = [value, value]
    (root / "sequenceFiles" / "test" / "seq_b.pkl").write_bytes(pickle.dumps(seq, protocol=2))


@pytest.mark.parametrize("key, value, message", [
    ("poses", np.zeros((3, 70)), "actor 0: poses has shape (3, 70), expected (N, 72)"),
    ("poses2d", np.zeros((3, 18, 3)), "actor 0: poses2d has shape (3, 18, 3), expected (N, 3, 18)"),
])
def test_pw3d_wrong_shapes(tmp_path, run_cli, key, value, message):
    root = tmp_path / "3DPW"
    _pw3d_with_bad_sequence(root, key, value)
    out = tmp_path / "pw.h5"
    res = run_cli("preprocess", "3dpw", "--root", root, "--split", "test", "--out", out)
    assert res.exit_code == 1 and "seq_b.pkl" in res.stderr and message in res.stderr and not out.exists()
    res = run_cli("-q", "preprocess", "3dpw", "--root", root, "--split", "test", "--out", out, "--skip-bad")
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        assert len(r) == 4
        assert json.loads(r.attrs["dropped"])["unreadable or malformed sequence file (whole sequence skipped)"] == 1


def test_npz_wrong_shapes(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_curated_fits, write_spin_smplx

    data = write_spin_smplx(tmp_path / "spin_in_smplx", "lsp")
    data["pose"] = np.zeros((30, 72))  # SMPL, not SMPL-X
    np.savez(tmp_path / "spin_in_smplx" / "lsp.npz", **data)
    write_spin_smplx(tmp_path / "spin_in_smplx", "mpii")
    res = run_cli("preprocess", "spin-smplx", "--root", tmp_path / "spin_in_smplx", "--split", "lsp",
                  "--out", tmp_path / "s.h5")
    assert res.exit_code == 1 and "lsp.npz: pose has shape (30, 72), expected (N, 165) or (N, 55, 3)" in res.stderr
    # --skip-bad: the malformed split is skipped (no file), the good one converted
    data_dir = tmp_path / "data"
    res = run_cli("--data-dir", data_dir, "-q", "preprocess", "spin-smplx", "--root", tmp_path / "spin_in_smplx", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "skipped spin-smplx lsp: malformed input" in res.stderr
    assert DataTree(data_dir).preprocessed_file("spin-smplx", "mpii").is_file()
    assert not DataTree(data_dir).preprocessed_file("spin-smplx", "lsp").exists()

    data = write_curated_fits(tmp_path / "cf")
    data["keypoints2D"] = data["keypoints2D"][:, :135]
    np.savez(tmp_path / "cf" / "train.npz", **data)
    res = run_cli("preprocess", "curated-fits", "--root", tmp_path / "cf", "--split", "train", "--out", tmp_path / "c.h5")
    assert res.exit_code == 1 and "train.npz: keypoints2D has shape (4, 135, 3), expected (N, 137, 3)" in res.stderr


def test_h36m_d2_shorter_than_d3(tmp_path, run_cli):
    from expose_cli.testing.raw_datasets import write_h36m

    write_h36m(tmp_path / "h36m", d2_frames=7)
    out = tmp_path / "h.h5"
    res = run_cli("preprocess", "h36m-smplx", "--root", tmp_path / "h36m", "--split", "train", "--out", out)
    assert res.exit_code == 1 and "D2_Positions/Directions 1.54138969.cdf: 7 frames" in res.stderr
    res = run_cli("-q", "preprocess", "h36m-smplx", "--root", tmp_path / "h36m", "--split", "train", "--out", out,
                  "--skip-bad")
    assert res.exit_code == 0, res.output
    with HDF5Reader(out) as r:
        assert len(r) == 0
        assert json.loads(r.attrs["dropped"]) == {"unreadable or malformed action/camera CDF file (whole file skipped)": 1}


def test_embed_images_skip_bad(tmp_path, run_cli):
    import cv2

    from expose_cli.testing.raw_datasets import write_curated_fits

    data = write_curated_fits(tmp_path / "ExPose_curated_fits")
    for i in (0, 2):  # row 1 is dropped by the thresholds; row 3's image is missing
        path = tmp_path / str(data["img_fns"][i])
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((600, 600, 3), 90, np.uint8))
    (tmp_path / str(data["img_fns"][3])).unlink()  # the fixture lays out every image: remove one
    args = ("preprocess", "curated-fits", "--root", tmp_path / "ExPose_curated_fits", "--split", "train",
            "--out", tmp_path / "c.h5", "--embed-images")
    res = run_cli(*args)
    assert res.exit_code == 1 and "im0003.jpg: empty or missing image file" in res.stderr
    res = run_cli("-q", *args, "--skip-bad")
    assert res.exit_code == 0, res.output
    with HDF5Reader(tmp_path / "c.h5") as r:
        assert len(r) == 2 and json.loads(r.attrs["dropped"]) == {
            "no keypoint above the confidence thresholds": 1, "unreadable image": 1}
        assert len(r[1]["image_jpeg"]) > 0


def test_unexpected_converter_error_names_dataset_and_split(tmp_path, run_cli, monkeypatch):
    write_ehf(tmp_path / "EHF", frames=1)

    def broken(points, scale=1.2):
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(ehf, "bbox_from_points", broken)
    res = run_cli("preprocess", "ehf", "--root", tmp_path / "EHF", "--out", tmp_path / "e.h5")
    assert res.exit_code == 1 and not (tmp_path / "e.h5").exists()
    assert "EHF: ehf split 'val': unexpected IndexError while converting: index 7" in res.stderr
    assert "--skip-bad" in res.stderr and "report a bug" in res.stderr
