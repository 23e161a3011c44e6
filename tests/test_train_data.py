"""Training data: the synthetic set, the HDF5 training dataset, mixing, seeding, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.testing.trees import link_tree
from expose_cli.training.data_config import data_preset, with_members
from expose_cli.training.datasets import (
    _image_candidates,
    build_train_dataset,
    collate,
    skipped_report,
)
from expose_cli.training.mixing import MixedSampler, mixed_draws
from expose_cli.training.synth import write_synth

CONTRACT = {  # key -> shape for the body kind (batch dimension excluded)
    "img": (3, 64, 64), "keypoints2d": (144, 3), "keypoints3d": (144, 4), "global_orient": (3,), "jaw_pose": (3,),
    "body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3), "betas": (10,), "expression": (10,),
    "center": (2,), "scale": (2,), "crop_transform": (2, 3), "has_global_orient": (), "has_body_pose": (),
    "has_left_hand_pose": (), "has_right_hand_pose": (), "has_jaw_pose": (), "has_betas": (), "has_expression": (),
    "has_keypoints2d": (), "has_keypoints3d": (), "dataset_index": (), "sample_index": (), "skipped": (),
}


@pytest.fixture(scope="module")
def data_dir(standin_tree, tmp_path_factory) -> Path:
    """A data tree with the stand-in body models and small synthetic body / hand sets."""
    root = tmp_path_factory.mktemp("train_data")
    link_tree(Path(standin_tree) / "body_models", root / "body_models")  # links: no copy of ~1 GB
    pre = root / "preprocessed_datasets"
    write_synth(pre, "body", 10, DataTree(root), seed=1, size=96)
    write_synth(pre, "hand", 6, DataTree(root), seed=2, size=64)
    write_synth(pre, "face", 3, DataTree(root), seed=3, size=64)
    return root


def _cfg(kind="body", members=("synth_body",), img_res=64):
    from dataclasses import replace

    return replace(with_members(data_preset(kind), members), img_res=img_res)


def test_synth_rows_are_consistent(data_dir):
    with h5py.File(data_dir / "preprocessed_datasets" / "synth_body_train.h5") as f:
        assert f.attrs["num_samples"] == 10 and f["image_jpeg"].shape == (10,)
        k, kp2d, kp3d = f["camera/K"][()], f["keypoints2d"][()], f["keypoints3d"][()]
        proj = np.einsum("nij,nkj->nki", k, kp3d[..., :3])
        assert np.allclose(proj[..., :2] / proj[..., 2:], kp2d[..., :2], atol=1e-2)  # pinhole camera K
        box = f["bbox_xywh"][()]
        inside = (kp2d[..., 0] >= box[:, None, 0]) & (kp2d[..., 0] <= box[:, None, 0] + box[:, None, 2])
        assert inside.mean() > 0.99 and np.all(f["has_smplx"][()])
    img = (data_dir / "preprocessed_datasets" / "synth_body" / "images" / "000000.jpg").read_bytes()
    assert img[:2] == b"\xff\xd8"


def test_sample_contract_and_masks(data_dir):
    ds = build_train_dataset(_cfg(), data_dir, "body", seed=0)
    s = ds[3]
    for key, shape in CONTRACT.items():
        assert tuple(s[key].shape) == shape, key
        assert s[key].dtype == (torch.int64 if key in ("dataset_index", "sample_index", "skipped") else torch.float32), key
    assert s["has_body_pose"] == 1 and s["has_keypoints3d"] == 1
    hand = build_train_dataset(_cfg("hand", ("synth_hand",)), data_dir, "hand", seed=0)[0]
    assert hand["keypoints2d"].shape == (21, 3) and hand["has_right_hand_pose"] == 1 and hand["has_body_pose"] == 0
    assert hand["img"].shape == (3, 64, 64)
    face = build_train_dataset(_cfg("face", ("synth_face",)), data_dir, "face", seed=0)[(1, 0, 5)]
    assert face["keypoints2d"].shape == (73, 3) and face["betas"].shape == (100,) and face["expression"].shape == (50,)
    assert face["has_jaw_pose"] == 1 and face["has_betas"] == 1 and face["has_body_pose"] == 0
    full = build_train_dataset(_cfg("expose"), data_dir, "expose", seed=0)[2]
    assert full["ori_img"].shape[0] == 3 and tuple(full["ori_size"].tolist()) == tuple(full["ori_img"].shape[1:])


def test_centre_crop_keypoints_match_the_box(data_dir):
    """Without augmentation the box centre is the crop centre and max(w, h) spans the crop."""
    ds = build_train_dataset(_cfg(), data_dir, "body", seed=0)
    ds.train = False
    s = ds[0]
    with h5py.File(data_dir / "preprocessed_datasets" / "synth_body_train.h5") as f:
        x, y, w, h = f["bbox_xywh"][0]
        kp = f["keypoints2d"][0]
    expected = (kp[:, :2] - [x + w / 2, y + h / 2]) * 64 / max(w, h) + 32
    assert np.allclose(s["keypoints2d"][:, :2].numpy(), expected, atol=1e-3)


def test_same_key_same_sample_in_any_worker(data_dir):
    ds = build_train_dataset(_cfg(), data_dir, "body", seed=7)
    keys = [(2, 3, 11), (5, 3, 12)]
    here = [ds[k] for k in keys]
    loader = torch.utils.data.DataLoader(ds, batch_size=1, sampler=keys, num_workers=2, collate_fn=collate)
    for mine, theirs in zip(here, loader, strict=True):
        for key in mine:
            assert torch.equal(mine[key], theirs[key][0]), key
    assert not torch.equal(ds[(2, 4, 11)]["img"], here[0]["img"])  # another epoch: other draws


def test_embedded_and_raw_images_agree(data_dir):
    emb = build_train_dataset(_cfg(), data_dir, "body", seed=0, images="embedded")
    raw = build_train_dataset(_cfg(), data_dir, "body", seed=0, images="raw")
    a, b = emb[(4, 0, 1)], raw[(4, 0, 1)]
    assert torch.equal(a["keypoints2d"], b["keypoints2d"])
    assert (a["img"] - b["img"]).abs().mean() < 0.1  # JPEG of a crop vs JPEG of the image


def test_unreadable_image_is_skipped_and_counted(data_dir, tmp_path):
    root = tmp_path / "tree"
    (root / "preprocessed_datasets").mkdir(parents=True)
    src = data_dir / "preprocessed_datasets"
    shutil.copytree(src / "synth_body", root / "images_here")
    with h5py.File(src / "synth_body_train.h5") as f_in, h5py.File(root / "preprocessed_datasets" / "x_train.h5", "w") as f:
        for key in f_in:
            f_in.copy(key, f)
        f.attrs.update(dict(f_in.attrs))
        f.attrs["raw_root"] = str(root / "images_here")
    (root / "images_here" / "images" / "000004.jpg").unlink()
    ds = build_train_dataset(_cfg(members=("x",)), root, "body", seed=0, images="raw")
    s = ds[(4, 0, 0)]
    assert s["skipped"] == 1 and s["sample_index"] != 4
    assert ds[(3, 0, 0)]["skipped"] == 0
    assert "1 sample(s) skipped" in skipped_report(1, 0) and skipped_report(0, 0) is None


def test_moved_data_tree_image_candidates():
    cands = _image_candidates("/old/data/datasets/curated_fits", "img/1.jpg", Path("/new/data"))
    assert cands == [Path("/old/data/datasets/curated_fits/img/1.jpg"), Path("/new/data/datasets/curated_fits/img/1.jpg")]


def test_spin_smplx_is_one_member_of_four_files(data_dir, tmp_path):
    pre = tmp_path / "preprocessed_datasets"
    pre.mkdir()
    for part in ("coco", "lsp", "lspet", "mpii"):
        shutil.copy(data_dir / "preprocessed_datasets" / "synth_body_train.h5", pre / f"spin_smplx_{part}.h5")
    ds = build_train_dataset(_cfg(members=("spin_smplx",)), tmp_path, "body", seed=0, images="embedded")
    assert ds.member_sizes == [40]
    assert ds[35]["sample_index"] == 35 and ds[35]["dataset_index"] == 0


def test_bad_input_one_liners(data_dir, tmp_path):
    with pytest.raises(ExposeError, match=r"spin_smplx_coco\.h5: preprocessed file not found") as e:
        build_train_dataset(_cfg(members=("spin_smplx",)), tmp_path, "body", seed=0)
    assert "expose preprocess spin-smplx" in e.value.hint
    with pytest.raises(ExposeError, match="has nothing the body model trains on: missing smplx") as e:
        build_train_dataset(_cfg(members=("synth_hand",)), data_dir, "body", seed=0)
    assert "synth_hand_train.h5" in str(e.value)
    pre = tmp_path / "preprocessed_datasets"
    pre.mkdir()
    with h5py.File(pre / "other_train.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ExposeError, match="not a file written by `expose preprocess`"):
        build_train_dataset(_cfg(members=("other",)), tmp_path, "body", seed=0)
    shutil.copy(data_dir / "preprocessed_datasets" / "synth_body_train.h5", pre / "newer_train.h5")
    with h5py.File(pre / "newer_train.h5", "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ExposeError, match="format version 99 is newer"):
        build_train_dataset(_cfg(members=("newer",)), tmp_path, "body", seed=0)
    shutil.copy(data_dir / "preprocessed_datasets" / "synth_body_train.h5", pre / "h36m_smplx_train.h5")
    with h5py.File(pre / "h36m_smplx_train.h5", "a") as f:  # a file of the broken H3.6M converter
        f.attrs.update({"dataset": "h36m-smplx", "converter_version": "h36m-smplx-1"})
    with pytest.raises(ExposeError, match=r"re-run `expose preprocess h36m-smplx`"):
        build_train_dataset(_cfg(members=("h36m_smplx",)), tmp_path, "body", seed=0)


def test_mixed_draws_follow_the_ratios():
    draws = mixed_draws([10, 100], [0.5, 0.5], seed=0, epoch=0, length=20000)
    assert abs((draws < 10).mean() - 0.5) < 0.02  # p_i / sum p, whatever the sizes
    assert len(mixed_draws([10, 100, 30], [0.08, 0.12, 0.8], 0, 0)) == 100  # the largest member
    frac = np.bincount(np.searchsorted([10, 110], mixed_draws([10, 100, 30], [0.08, 0.12, 0.8], 0, 0, 50000),
                                       side="right"), minlength=3) / 50000
    assert np.allclose(frac, [0.08, 0.12, 0.8], atol=0.01)


class _Sizes:
    member_sizes = [7, 50]


def test_sampler_ddp_disjoint_reproducible_resumable():
    one = MixedSampler(_Sizes(), [1, 1], seed=3)
    one.set_epoch(2)
    full = list(one)
    assert len(full) == 50 and all(k[1] == 2 for k in full)
    ranks = []
    for r in range(2):
        s = MixedSampler(_Sizes(), [1, 1], seed=3, rank=r, world_size=2)
        s.set_epoch(2)
        ranks.append(list(s))
    assert len(ranks[0]) == len(ranks[1]) == 25
    assert {k[2] for k in ranks[0]}.isdisjoint({k[2] for k in ranks[1]})
    assert sorted(ranks[0] + ranks[1], key=lambda k: k[2]) == full  # the same stream, split
    s = MixedSampler(_Sizes(), [1, 1], seed=3)
    s.set_epoch(2)
    it = iter(s)
    head = [next(it) for _ in range(10)]
    state = s.state_dict()
    resumed = MixedSampler(_Sizes(), [1, 1], seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)
    assert head + list(resumed) == full
    s.set_epoch(3)
    assert [k[0] for k in s] != [k[0] for k in full]


def test_collate_pads_ori_img():
    a = {"ori_img": torch.ones(3, 4, 6), "x": torch.zeros(2)}
    b = {"ori_img": torch.ones(3, 5, 2), "x": torch.ones(2)}
    out = collate([a, b])
    assert out["ori_img"].shape == (2, 3, 5, 6) and out["ori_img"][0, :, 4].sum() == 0
    assert out["ori_img"][1, :, :, 2:].sum() == 0 and out["x"].shape == (2, 2)


def test_synth_command(run_cli, data_dir, tmp_path):
    res = run_cli("--data-dir", data_dir, "synth", tmp_path / "out", "--kind", "face", "--count", "2", "--size", "48")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "synth_face_train.h5").is_file()
    bad = run_cli("--data-dir", tmp_path / "empty", "synth", tmp_path / "o2", "--kind", "body", "--count", "1")
    assert bad.exit_code != 0 and "SMPL-X model" in bad.output


def test_row_masks_are_per_sample():
    from expose_cli.kinds import KINDS
    from expose_cli.training.datasets import row_record

    row = {"bbox_xywh": np.array([10, 20, 30, 60], np.float32), "image_size": np.array([100, 200]),
           "keypoints2d": np.zeros((144, 3), np.float32), "keypoints3d": np.zeros((144, 4), np.float32),
           "has_smplx": True, **{f"smplx/{k}": np.zeros(s) for k, s in (
               ("global_orient", 3), ("body_pose", (21, 3)), ("jaw_pose", 3), ("left_hand_pose", (15, 3)),
               ("right_hand_pose", (15, 3)), ("betas", 10), ("expression", 10))}}
    row["smplx/body_pose"] = np.full((21, 3), 0.1)
    rec = row_record(row, KINDS["body"])
    assert rec.has["body_pose"] == 1 and rec.has["expression"] == 0  # zeros: the dataset lacks it (SPIN)
    assert np.allclose(rec.center, [25, 50]) and np.allclose(rec.scale, [60, 60])  # centre, max(w, h)
    rec = row_record({**row, "has_smplx": False}, KINDS["body"])
    assert all(v == 0 for v in rec.has.values())


def test_one_reader_for_training_and_evaluation(data_dir):
    """Training reads through the data layer's HDF5Reader: the same rows, the same bytes, as the
    evaluation's every-field rows and as plain h5py; no handle left open for forked workers."""
    import pickle

    from expose_cli.data.hdf5 import HDF5Reader

    path = data_dir / "preprocessed_datasets" / "synth_body_train.h5"
    ds = build_train_dataset(_cfg(), data_dir, "body", seed=0, images="embedded")
    rows = ds.members[0].files[0]
    assert type(rows) is HDF5Reader and rows._file is None  # checked at construction, nothing open
    assert "image_jpeg" in rows.row_fields and "smplx/expression" in rows.row_fields
    with HDF5Reader(path) as every, h5py.File(path) as raw:
        for i in (0, 7, 9):
            train_row, eval_row = rows.row(i), every[i]
            assert set(train_row) == set(rows.row_fields) and set(train_row) < set(eval_row)
            for name, value in train_row.items():
                expected = raw[name][i]
                expected = expected.decode() if isinstance(expected, bytes) else expected
                assert np.array_equal(value, expected) and np.array_equal(eval_row[name], expected), name
                assert np.asarray(value).tobytes() == np.asarray(expected).tobytes()
    copy = pickle.loads(pickle.dumps(rows))  # a spawned worker: its own handle, the same rows
    assert copy._file is None and np.array_equal(copy.row(3)["keypoints2d"], rows.row(3)["keypoints2d"])
    copy.close()
    rows.close()
    with pytest.raises(ExposeError, match=r"synth_body_train\.h5: lacks the fields nope"):
        HDF5Reader(path).require(("image_path", "nope"))
