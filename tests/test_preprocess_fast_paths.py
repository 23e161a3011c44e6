"""The fast paths of `expose preprocess` (COCO's cut parse, vectorised number reading, column-wise
HDF5 writes, batched 3DPW rotations, mask extents) give the rows the one-by-one code gave."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from expose_cli.body_models.keypoints import get_convention
from expose_cli.data.converters import coco
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.data.preprocess import convert
from expose_cli.errors import ExposeError
from expose_cli.io.json_cut import load_cut
from expose_cli.testing.raw_datasets import coco_json_path


def _coco_like(root, seed: int = 0, float_points: bool = False, extra: dict | None = None):
    """A COCO 2014 json written as COCO writes it (": " after keys, polygons, RLE for crowds, the
    category's keypoint names), persons of every kind, images listed out of order."""
    rng = np.random.default_rng(seed)
    images = [{"license": 1, "file_name": f"COCO_train2014_{i:012d}.jpg", "coco_url": "http://x/y.jpg",
               "height": 300 + i, "width": 640, "date_captured": "2013", "id": i} for i in (7, 3, 11, 5)]
    anns = []
    for a in range(40):
        kp = np.zeros((17, 3))
        kind = a % 5  # 0, 1: all 17 labelled; 2: limbs missing; 3: nothing; 4: all but a face point
        if kind != 3:
            kp[:, :2] = rng.integers(1, 600, (17, 2))
            kp[:, 2] = rng.integers(1, 3, 17)
            if kind == 2:
                kp[rng.integers(5, 17), 2] = 0
            if kind == 4:
                kp[1] = 0
        if float_points and a % 3 == 0:
            kp[:, :2] += rng.uniform(-0.5, 0.5, (17, 2)).round(3)
        points = kp.reshape(-1).tolist() if float_points else kp.astype(int).reshape(-1).tolist()
        crowd = a == 9
        seg = {"counts": [10, 20, 5], "size": [300, 640]} if crowd else [rng.uniform(0, 600, 12).round(2).tolist()]
        anns.append({"segmentation": seg, "num_keypoints": int((kp[:, 2] > 0).sum()), "area": 10.5, "iscrowd": int(crowd),
                     "keypoints": points, "image_id": [7, 3, 11, 5][a % 4], "bbox": rng.uniform(0, 300, 4).round(2).tolist(),
                     "category_id": 1, "id": 1000 + a})
    data = {"info": {}, "licenses": [], "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye"], "skeleton": [[1, 2]]}]}
    data.update(extra or {})
    path = coco_json_path(root, "train2014")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data, path


def _expected_rows(data: dict) -> tuple[list, dict]:
    """The rows MMHuman3D's rule gives, computed here one annotation at a time."""
    smplx = get_convention("smplx").names
    coco_names = get_convention("coco").names
    images = {img["id"]: img for img in data["images"]}
    rows, dropped = [], {}
    for ann in sorted(data["annotations"], key=lambda a: a["image_id"]):
        kp = np.array(ann["keypoints"], np.float64).reshape(17, 3)
        reason = ("crowd" if ann["iscrowd"] else None if (kp[5:, 2] > 0).all() else
                  "limb joints not all labelled" if ann["num_keypoints"] else "no keypoints")
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        full = np.zeros((144, 3), np.float32)
        for j, name in enumerate(coco_names):
            if name in smplx:
                full[smplx.index(name)] = [kp[j, 0], kp[j, 1], float(kp[j, 2] > 0)]
        img = images[ann["image_id"]]
        rows.append({"image_path": f"train2014/{img['file_name']}", "image_size": [img["height"], img["width"]],
                     "bbox_xywh": np.float32(ann["bbox"]), "keypoints2d": full})
    return rows, dropped


def _convert(root, out, **kwargs):
    from expose_cli.io.paths import DataTree

    return convert("coco", DataTree(root.parent / "data"), root, ["train2014"], out, overwrite=True, **kwargs)


def _file(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}
        out.update({f"{g}/{k}": f[g][k][()] for g in f if isinstance(f[g], h5py.Group) for k in f[g]})
        out["attrs"] = {k: v for k, v in f.attrs.items() if k not in ("created",)}
    return out


@pytest.mark.parametrize("float_points", [False, True])
def test_coco_rows_match_the_rule_computed_independently(tmp_path, float_points):
    data, path = _coco_like(tmp_path / "coco", float_points=float_points)
    assert coco._fast_load(path, False) is not None  # COCO's own form takes the cut parse
    out = tmp_path / "c.h5"
    _convert(tmp_path / "coco", out)
    rows, dropped = _expected_rows(data)
    with HDF5Reader(out) as r:
        assert len(r) == len(rows) and json.loads(r.attrs["dropped"]) == dropped
        for i, want in enumerate(rows):
            got = r[i]
            assert got["image_path"] == want["image_path"]
            assert got["image_size"].tolist() == want["image_size"]
            np.testing.assert_array_equal(got["bbox_xywh"], want["bbox_xywh"])
            np.testing.assert_array_equal(got["keypoints2d"], want["keypoints2d"])
            assert not got["has_smplx"] and not got["keypoints3d"].any()  # absent: fill value


@pytest.mark.parametrize("options", [{}, {"limit": 7}, {"skip_bad": True}])
def test_coco_cut_parse_and_full_parse_write_the_same_file(tmp_path, monkeypatch, options):
    data, path = _coco_like(tmp_path / "coco", float_points=True)
    if options.get("skip_bad"):  # malformed annotations, dropped and counted alike
        data["annotations"][4]["keypoints"] = data["annotations"][4]["keypoints"][:50]
        data["annotations"][5]["image_id"] = 999
        data["annotations"][10]["bbox"] = [1, 2, 3]
        path.write_text(json.dumps(data))
    _convert(tmp_path / "coco", tmp_path / "fast.h5", **options)
    monkeypatch.setattr(coco, "_fast_load", lambda path, wholebody: None)
    _convert(tmp_path / "coco", tmp_path / "full.h5", **options)
    fast, full = _file(tmp_path / "fast.h5"), _file(tmp_path / "full.h5")
    assert fast.keys() == full.keys() and fast.pop("attrs") == full.pop("attrs")
    for name in fast:
        np.testing.assert_array_equal(fast[name], full[name], err_msg=name)


def test_coco_malformed_annotation_named_on_both_paths(tmp_path, monkeypatch):
    data, path = _coco_like(tmp_path / "coco")
    data["annotations"][12]["bbox"] = [1, 2, 3]  # a kept person (12 % 5 == 2 is partial: use 11)
    data["annotations"][11]["bbox"] = "x"
    path.write_text(json.dumps(data))
    messages = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(coco, "_fast_load", lambda path, wholebody: None)
        with pytest.raises(ExposeError) as info:
            _convert(tmp_path / "coco", tmp_path / "x.h5")
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "annotation 1011" in messages[0]


@pytest.mark.parametrize("extra", [{"images": [{"id": 3, "file_name": "a.jpg", "height": 1, "width": 1, "segmentation": [[1, 2]]}]},
                                   {"info": {"note": "a \u0000 character"}}])
def test_cut_parse_declines_files_it_cannot_cut_soundly(tmp_path, extra):
    _data, path = _coco_like(tmp_path / "coco", extra=extra)
    assert coco._fast_load(path, False) is None  # then the file is parsed in full


def test_cut_parse_refuses_invalid_json(tmp_path):
    path = tmp_path / "x.json"
    for text in ('{"a": [{"segmentation": [[1, 2]], "keypoints": [1, 2, 3]}',  # truncated
                 '{"a": [{"segmentation": [[1, 2], [3, x]], "keypoints": [1, 2, 3]}]}',
                 '{"a": [{"segmentation": {"counts": [1, 2], "size": [3 4]}, "keypoints": [1, 2, 3]}]}'):
        path.write_text(text)
        assert load_cut(path, {"keypoints": 3}, ("segmentation",)) is None
    path.write_text('{"a": [{"segmentation": [[1, 2.5e1]], "keypoints": [1, -2, 3]}, {"keypoints": [0.5, 1e-3, -7]}]}')
    cut = load_cut(path, {"keypoints": 3}, ("segmentation",))
    np.testing.assert_array_equal(cut.values["keypoints"], np.float32([[1, -2, 3], [0.5, 1e-3, -7]]))
    assert cut.rows_of("keypoints", cut.document["a"]).tolist() == [0, 1]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 3.40...e38 is inf in float32
def test_cut_numeric_rows_equal_json_loads_as_float32():
    """Keypoint lists read as ``np.asarray(json.loads(text), np.float32)`` reads them (bit patterns),
    through simdjson, and through orjson where simdjson declines (an integer beyond 64 bits)."""
    from expose_cli.io.json_cut import _numeric_rows, _simd_rows, _simdjson_parser

    rng = np.random.default_rng(0)
    rows = [json.dumps(row.tolist()).encode() for row in rng.integers(-10**9, 10**9, (300, 6))]
    rows += [b"[" + b", ".join(rng.choice(AWKWARD_NUMBERS, 6).astype(bytes)) + b"]" for _ in range(300)]
    rows += [b"[-1, 0,\n 7, 1.5e3, -0, 2]", b"[1, 2, 3, 4, 5, 123456789012345678901234567890]"]
    want = np.asarray([json.loads(r) for r in rows], np.float32)
    for simd in (True, False):  # the last row (beyond 64 bits) sends its batch through orjson
        got = _numeric_rows(rows[:-1] if simd else rows, 6)
        np.testing.assert_array_equal(got.view(np.uint32), want[:len(got)].view(np.uint32))
        assert (_simd_rows(_simdjson_parser(), rows[:len(got)], 6) is not None) == simd
    for bad in ([b"[1,,2,3,4,5]"], [b"[1,2,3,4,5]", b"[1,2,3,4,5,6,7]"], [b"[1 2,3,4,5,6]"]):
        with pytest.raises(ValueError):
            _numeric_rows(bad, 6)


def test_mask_extent_is_the_foreground_bounding_box():
    from expose_cli.data.mat_masks import extent as _mask_extent

    rng = np.random.default_rng(0)
    for _ in range(300):
        mask = np.zeros(rng.integers(1, 40, 2), np.uint8)
        for _ in range(rng.integers(0, 3)):
            y, x = rng.integers(0, mask.shape[0]), rng.integers(0, mask.shape[1])
            mask[y:y + rng.integers(1, 6), x:x + rng.integers(1, 6)] = 1
        ys, xs = np.nonzero(mask)
        want = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None
        assert _mask_extent(mask) == want


def test_pw3d_batched_orientation_equals_one_frame_at_a_time():
    from expose_cli.data.converters.pw3d import camera_global_orient
    from expose_cli.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    rng = np.random.default_rng(0)
    go = rng.normal(0, 1.2, (500, 3))
    go[:20] *= 1e-7  # tiny angles: the series branch
    R = axis_angle_to_matrix(rng.normal(0, 1.5, (500, 3))).numpy()
    one = np.stack([matrix_to_axis_angle(R[f] @ axis_angle_to_matrix(go[f]).numpy()).numpy() for f in range(500)])
    np.testing.assert_array_equal(camera_global_orient(R, go), one)


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])  # chunk boundaries inside numbers and entries
def test_number_files_read_alike_with_and_without_simdjson(tmp_path, monkeypatch, chunk):
    import sys

    from expose_cli.io.json_arrays import read_json_numbers

    rng = np.random.default_rng(2)
    values = rng.normal(0, 1e-3, (9, 4, 3)) * 10.0 ** rng.integers(-8, 8, (9, 4, 3))
    path = tmp_path / "v.json"
    path.write_text(json.dumps(values.tolist()))
    fast = read_json_numbers(path, (4, 3), np.float32, chunk_bytes=chunk)
    monkeypatch.setitem(sys.modules, "simdjson", None)  # not installed: the chunked numpy reader
    slow = read_json_numbers(path, (4, 3), np.float32, chunk_bytes=chunk)
    np.testing.assert_array_equal(fast, values.astype(np.float32))  # float64 rounded to float32
    np.testing.assert_array_equal(slow, fast)
    path.write_text("[[1, 2, 3], [4, 5, null]]")
    with pytest.raises(ExposeError, match="unexpected 'n'"):
        read_json_numbers(path, (3,))


def test_boxes_from_points_equal_box_from_points_row_by_row():
    from expose_cli.data.converters._common import box_from_points, boxes_from_points

    rng = np.random.default_rng(3)
    points = np.concatenate([rng.uniform(0, 900, (200, 137, 2)), rng.uniform(-0.5, 1, (200, 137, 1))], 2).astype(np.float32)
    points[5, :, 2] = 0  # nothing seen
    boxes, ok = boxes_from_points(points)
    for i in range(200):
        one = box_from_points(points[i])
        assert ok[i] == (one is not None)
        if one is not None:
            np.testing.assert_array_equal(boxes[i], one)


def test_freihand_blocks_and_rows_one_by_one_write_the_same_file(tmp_path):
    from expose_cli.io.paths import DataTree
    from expose_cli.testing.raw_datasets import write_freihand

    root = tmp_path / "FreiHand"
    write_freihand(root, unique=10, eval_samples=3)
    (root / "training" / "rgb" / "00000013.jpg").unlink()  # dropped with --skip-bad, in both modes
    tree = DataTree(tmp_path / "data")
    for split in ("train", "test"):
        convert("freihand", tree, root, [split], tmp_path / "blocks.h5", overwrite=True, skip_bad=True)
        convert("freihand", tree, root, [split], tmp_path / "rows.h5", overwrite=True, skip_bad=True, limit=10**6)
        blocks, rows = _file(tmp_path / "blocks.h5"), _file(tmp_path / "rows.h5")
        a, b = blocks.pop("attrs"), rows.pop("attrs")
        assert a["dropped"] == b["dropped"] and a["notes"] == b["notes"] and blocks.keys() == rows.keys()
        assert ("vertices" in blocks) == (split == "test")
        for name in blocks:
            np.testing.assert_array_equal(blocks[name], rows[name], err_msg=name)


AWKWARD_NUMBERS = ("-0", "-0.0", "0", "1e5", "-2E-3", "1.5e+2", "12345678901234567890", "9007199254740993",
                   "0.1234567890123456789012345", "2.2250738585072011e-308", "1e-320", "3.4028235677973366e38",
                   "16777217", "-7", "1e-0", "4.9406564584124654e-324")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 3.40...e38 is inf in float32
@pytest.mark.parametrize("simd", [True, False])
def test_number_files_give_json_loads_values_bit_for_bit(tmp_path, monkeypatch, simd):
    """Every number as ``json.loads`` reads it, rounded float64 -> float32 (bit patterns compared:
    -0 is the integer 0, -0.0 keeps its sign), for entry boundaries anywhere in the parts."""
    import sys

    from expose_cli.io.json_arrays import _simdjson_numbers, read_json_numbers

    if not simd:
        monkeypatch.setitem(sys.modules, "simdjson", None)  # the chunked numpy reader
    rng = np.random.default_rng(4)
    texts = rng.choice(AWKWARD_NUMBERS, (40, 2, 3))
    texts[:len(AWKWARD_NUMBERS), 0, 0] = AWKWARD_NUMBERS  # each at least once
    text = "[" + ", ".join("[" + ", ".join("[" + ",".join(row) + "]" for row in entry) + "]" for entry in texts) + "]\n"
    path = tmp_path / "verts.json"
    path.write_text(text)
    want = np.asarray(json.loads(text), np.float64).astype(np.float32)
    assert (_simdjson_numbers(path, 2, np.float32, 64) is not None) == simd  # the reader under test ran
    for chunk in (5, 64, 300, 1 << 20):
        got = read_json_numbers(path, (2, 3), np.float32, chunk_bytes=chunk)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=f"chunk {chunk}")


def _plain_box(mask_wh: np.ndarray):
    """The box of a stored ``(W, H)`` mask from ``np.nonzero`` of the whole mask (the reference)."""
    ys, xs = np.nonzero(mask_wh.T)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else None


def test_mat_mask_boxes_from_raw_chunks_equal_the_full_mask(tmp_path):
    """Boxes read from deflated chunks (skipping known ones) equal the plain full-mask computation,
    for every layout a .mat may use (others are read whole), edge chunks with garbage beyond the
    extent, chunks never written, a 512-byte user block (MATLAB's header) and empty masks."""
    import zlib

    from expose_cli.data import mat_masks

    rng = np.random.default_rng(0)
    path, masks = tmp_path / "m.mat", []
    for i in range(24):
        m = np.zeros((100, 90), np.uint8)
        if i % 6:  # i % 6 == 0: empty
            y, x = rng.integers(0, 80, 2)
            m[y:y + rng.integers(1, 30), x:x + rng.integers(1, 30)] = 1 + i % 3
            m[rng.integers(0, 100, 3), rng.integers(0, 90, 3)] = 1  # specks
        masks.append(m)
    layouts = [dict(chunks=(32, 32), compression="gzip"), dict(chunks=(100, 90), compression="gzip", compression_opts=9),
               dict(chunks=(7, 90), compression="gzip", shuffle=True), dict(), dict(chunks=(32, 32), compression="lzf"),
               dict(chunks=(32, 32), compression="gzip", fillvalue=1), dict(chunks=(32, 32), compression="gzip", fletcher32=True)]
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = []
        for i, m in enumerate(masks):
            ds = f.create_dataset(f"#refs#/m{i}", data=m, **layouts[i % len(layouts)])
            refs.append(ds.ref)
        g = f.create_dataset("#refs#/garbage", shape=(100, 90), dtype=np.uint8, chunks=(64, 64), compression="gzip")
        block = np.full((64, 64), 7, np.uint8)  # the chunk at (64, 64) holds 36 x 26 values inside the extent
        block[:36, :26] = 0
        block[3, 5] = 1
        g.id.write_direct_chunk((64, 64), zlib.compress(block.tobytes()))  # the other three chunks: never written
        masks.append(g[()])
        refs.append(g.ref)
        f.create_dataset("Masks", data=np.array(refs, dtype=h5py.ref_dtype).reshape(-1, 1))
    with mat_masks.MaskFile(path) as mf:
        for _repeat in range(2):  # the second time, chunks come from what was seen
            for ref, m in zip(mf.refs()[:, 0], masks, strict=True):
                assert mf.box(ref) == (_plain_box(m), (m.shape[1], m.shape[0]))
        assert mf.shift >= 0 and mf.seen  # raw chunks were read from the file (user block and all) and remembered
    assert _plain_box(masks[-1]) == (64 + 3, 64 + 5, 68, 70)  # stored row 67 is x, column 69 is y


@pytest.mark.parametrize("isal", [True, False])
def test_whole_chunks_compressed_here_read_back_as_written(tmp_path, monkeypatch, isal):
    """``write_rows`` (whole chunks deflated here, the rest through h5py) stores every value as
    written, for blocks starting anywhere in a chunk, with and without shuffle, and the file
    reads back through plain h5py (HDF5's own filters inflate the chunks)."""
    from expose_cli.data import hdf5_chunks

    if not isal:
        monkeypatch.setattr(hdf5_chunks, "_isal", None)  # zlib
    rng = np.random.default_rng(5)
    cases = [("f", (3, 2), np.float32, True), ("i", (2,), np.int32, True), ("b", (), np.bool_, True),
             ("u", (5,), np.uint8, False), ("v", (4, 3), np.float32, False)]
    want = {}
    with h5py.File(tmp_path / "a.h5", "w") as f:
        for name, shape, dtype, shuffle in cases:
            ds = f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(16, *shape),
                                  compression="gzip", compression_opts=1 if shuffle else 4, shuffle=shuffle)
            blocks, n = [], 0
            for m in (5, 16, 40, 0, 3, 77, 16, 1):  # starting at 0, 5, 21, 61, 61, 64, 141, 157
                values = (rng.normal(0, 1e3, (m, *shape)) if dtype != np.bool_ else rng.random((m, *shape)) < 0.5).astype(dtype)
                ds.resize(n + m, axis=0)
                hdf5_chunks.write_rows(ds, n, values)
                blocks.append(values)
                n += m
            want[name] = np.concatenate(blocks)
            assert hdf5_chunks._plan(ds) == (shuffle, 1 if shuffle else 4)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        for name in want:
            np.testing.assert_array_equal(f[name][()], want[name], err_msg=name)


def test_h36m_in_worker_processes_writes_the_same_file_and_errors(tmp_path, monkeypatch):
    """--workers 2 (action/camera files read in 2 processes) gives the file one process gives,
    drops and notes included, and the same one-line error for a malformed CDF."""
    import shutil

    from expose_cli.data.converters import h36m_smplx
    from expose_cli.io.paths import DataTree
    from expose_cli.testing.raw_datasets import write_h36m

    root = tmp_path / "h36m"
    write_h36m(root, frames=23)
    for folder in ("MyPoseFeatures/D3_Positions_mono", "MyPoseFeatures/D2_Positions", "MySegmentsMat/ground_truth_bs"):
        for k, name in enumerate(("Walking 1", "Eating", "Sitting 2")):  # more action/camera files
            src = next((root / "S1" / folder).glob("Directions 1.*"))
            shutil.copy(src, src.with_name(f"{name}.5501127{k}{src.suffix}"))
    monkeypatch.setattr(h36m_smplx, "MIN_JOBS_PER_PROCESS", 1)
    tree = DataTree(tmp_path / "data")
    for case in ("intact", "bad"):
        files, errors = [], []
        for workers in (1, 2):
            out = tmp_path / f"{case}{workers}.h5"
            try:
                convert("h36m-smplx", tree, root, ["train"], out, overwrite=True, workers=workers)
                files.append(_file(out))
            except ExposeError as exc:
                errors.append(str(exc))
                convert("h36m-smplx", tree, root, ["train"], out, overwrite=True, workers=workers, skip_bad=True)
                files.append(_file(out))
        a, b = files
        assert a.pop("attrs") == b.pop("attrs") and a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert len(a["image_path"]) == (16 if case == "intact" else 12)  # frames 0, 10, 15, 20 (5: empty mask) per file
        assert len(errors) == (0 if case == "intact" else 2) and len(set(errors)) <= 1
        bad = root / "S1" / "MyPoseFeatures" / "D2_Positions" / "Eating.55011271.cdf"
        shutil.copy(root / "S1" / "MyPoseFeatures" / "D3_Positions_mono" / "Eating.55011271.cdf", bad)  # 96 != 64 values
    assert "Eating.55011271.cdf" in errors[0]
