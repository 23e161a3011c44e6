"""`expose preprocess` throughput and peak memory on generated raw data of real size.

Writes the raw inputs itself into a temporary folder (``--scale`` shrinks them; ``--only`` picks
converters), then runs each conversion in a fresh child process and prints samples/s (wall clock
and CPU time) and the child's peak resident memory. COCO is also converted, in the same run, by
a minimal re-implementation of what MMHuman3D's COCO converter does (``json.load`` of the whole
file, a Python loop per annotation, ``np.savez_compressed``), so the ratio is measured side by side.

    python benchmarks/bench_preprocess.py                 # real sizes (<= ~0.6 GB of temp files at a time, ~15 min)
    python benchmarks/bench_preprocess.py --scale 0.1 --only coco freihand

Sizes at ``--scale 1``: COCO 2017 train-sized keypoint json (64,115 images, 149,813 person
annotations, 55% with all 17 points, 19% with none, 1% crowd, polygon segmentations; ~140 MB as
COCO writes it: ``": "`` after keys, no indentation); FreiHAND (32,560 training and 3,960
evaluation samples, the evaluation meshes as ~200 MB of json; ``training_verts.json`` is not
written, as no split reads it); 3DPW (60 sequence pickles, ~850 frames, 1-2 actors); curated fits
(30,000 rows); SPIN (coco 28,344, lsp 1,000, lspet 9,428, mpii 14,810 rows); Human3.6M (one
subject, 15 actions x 4 cameras, 1,400 frames each; each kept frame its own 1002x1000 silhouette,
deflated in chunks as MATLAB v7.3 stores it: Human3.6M's 7 subjects are ~8x this).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import pickle
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from conditions import cpu_model  # benchmarks/conditions.py

from expose_cli.testing.raw_datasets import string_array


# ----------------------------------------------------------------------------------- inputs ---
def _pool(rng: np.random.Generator, count: int, make) -> list[str]:
    """``count`` distinct json texts from ``make(rng)`` (reused at random: fast to write)."""
    return [json.dumps(make(rng)) for _ in range(count)]


def _polygon(rng: np.random.Generator) -> list:
    return [np.round(rng.uniform(0, 600, 2 * int(rng.integers(8, 40))), 2).tolist()
            for _ in range(1 + int(rng.random() < 0.2))]


def _coco_keypoints(rng: np.random.Generator, kind: float, crowd: bool) -> list[int]:
    k = np.zeros((17, 3), np.int64)
    if not crowd and not 0.55 <= kind < 0.74:  # 55% all 17 points, 19% none, the rest partial
        seen = np.ones(17, bool) if kind < 0.55 else rng.random(17) < 0.6
        k[seen, :2] = rng.integers(1, 640, (int(seen.sum()), 2))
        k[seen, 2] = rng.choice([1, 2], int(seen.sum()))
    return k.reshape(-1).tolist()


def write_coco(path: Path, scale: float, seed: int = 0) -> None:
    """A COCO-2017-train-sized person keypoints json, in COCO's own formatting."""
    rng = np.random.default_rng(seed)
    n_img, n_ann = max(2, round(64_115 * scale)), max(4, round(149_813 * scale))
    ids = np.sort(rng.choice(600_000, n_img, replace=False))
    polygons = _pool(rng, 512, _polygon)
    rles = _pool(rng, 16, lambda r: {"counts": r.integers(0, 500, int(r.integers(20, 200))).tolist(), "size": [480, 640]})
    images = [json.dumps({"license": 3, "file_name": f"{i:012d}.jpg", "coco_url": f"http://images.cocodataset.org/train2017/{i:012d}.jpg",
                          "height": int(rng.choice([375, 427, 480, 640])), "width": 640, "date_captured": "2013-11-14 11:18:45",
                          "flickr_url": f"http://farm4.staticflickr.com/3153/{i}_2f0b1b5c4a_z.jpg", "id": int(i)}) for i in ids]
    kinds, crowds = rng.random(n_ann), rng.random(n_ann) < 0.01
    anns = []
    for a in range(n_ann):
        kp = _coco_keypoints(rng, kinds[a], crowds[a])
        seg = rles[a % 16] if crowds[a] else polygons[int(rng.integers(512))]
        box = np.round(rng.uniform([0, 0, 10, 20], [400, 300, 200, 300]), 2).tolist()
        anns.append(f'{{"segmentation": {seg}, "num_keypoints": {sum(v > 0 for v in kp[2::3])}, "area": {box[2] * box[3] * 0.6:.4f}, '
                    f'"iscrowd": {int(crowds[a])}, "keypoints": {json.dumps(kp)}, "image_id": {int(ids[rng.integers(n_img)])}, '
                    f'"bbox": {json.dumps(box)}, "category_id": 1, "id": {183_000 + a}}}')
    category = {"supercategory": "person", "id": 1, "name": "person", "keypoints": ["nose", "left_eye"], "skeleton": [[16, 14]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"info": {{"description": "COCO 2017 Dataset"}}, "licenses": [], "images": [{", ".join(images)}], '
                    f'"annotations": [{", ".join(anns)}], "categories": [{json.dumps(category)}]}}')


def _json_list(path: Path, entries: int, pool: list[str], rng: np.random.Generator) -> None:
    with open(path, "w") as f:
        f.write("[" + ", ".join(pool[int(i)] for i in rng.integers(len(pool), size=entries)) + "]")


def write_freihand(root: Path, scale: float, seed: int = 1) -> None:
    """FreiHAND v2 + evaluation: the json files every split reads, and empty rgb files."""
    rng = np.random.default_rng(seed)
    for prefix, n, versions in (("training", max(5, round(32_560 * scale)), 4), ("evaluation", max(2, round(3_960 * scale)), 1)):
        names = ["K", "mano", "xyz", "scale"] + (["verts"] if prefix == "evaluation" else [])
        makers = {"K": lambda r: [[float(r.uniform(400, 700)), 0.0, 112.0], [0.0, float(r.uniform(400, 700)), 112.0], [0.0, 0.0, 1.0]],
                  "mano": lambda r: r.normal(0, 0.3, (1, 61)).tolist(), "scale": lambda r: float(r.uniform(0.02, 0.04)),
                  "xyz": lambda r: (r.normal(0, 0.03, (21, 3)) + [0, 0, 0.6]).tolist(),
                  "verts": lambda r: (r.normal(0, 0.03, (778, 3)) + [0, 0, 0.6]).tolist()}
        root.mkdir(parents=True, exist_ok=True)
        for name in names:
            _json_list(root / f"{prefix}_{name}.json", n, _pool(rng, 64 if name == "verts" else 512, makers[name]), rng)
        (root / prefix / "rgb").mkdir(parents=True, exist_ok=True)
        for i in range(n * versions):
            (root / prefix / "rgb" / f"{i:08d}.jpg").touch()


def write_pw3d(root: Path, scale: float, seed: int = 2) -> None:
    """60 sequence pickles (train 22, validation 12, test 26) of ~850 frames, 1-2 actors."""
    import cv2

    rng = np.random.default_rng(seed)
    for s in range(60):
        split = "train" if s < 22 else "validation" if s < 34 else "test"
        frames, actors, name = max(3, round(rng.integers(600, 1100) * scale)), 1 + s % 2, f"seq_{s:02d}"
        (root / "sequenceFiles" / split).mkdir(parents=True, exist_ok=True)
        (root / "imageFiles" / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "imageFiles" / name / "image_00000.jpg"), np.zeros((32, 18, 3), np.uint8))
        cam = np.tile(np.eye(4), (frames, 1, 1))
        cam[:, :3, 3] = rng.normal(size=(frames, 3))
        seq = {"sequence": name, "genders": ["m", "f"][:actors], "betas": [rng.normal(size=10) for _ in range(actors)],
               "poses": [rng.normal(0, 0.3, (frames, 72)) for _ in range(actors)],
               "trans": [rng.normal(size=(frames, 3)) for _ in range(actors)],
               "poses2d": [np.concatenate([rng.uniform(100, 900, (frames, 2, 18)), rng.uniform(0, 1, (frames, 1, 18))], 1)
                           for _ in range(actors)],
               "jointPositions": [rng.normal(size=(frames, 72)) for _ in range(actors)],
               "cam_poses": cam, "campose_valid": [(rng.random(frames) > 0.02).astype(float) for _ in range(actors)],
               "cam_intrinsics": np.array([[1961.0, 0, 540.0], [0, 1969.0, 960.0], [0, 0, 1]]),
               "img_frame_ids": np.arange(frames)}
        (root / "sequenceFiles" / split / f"{name}.pkl").write_bytes(pickle.dumps(seq, protocol=2))


def write_npz_sets(root: Path, scale: float, seed: int = 3) -> None:
    """Curated fits ``train.npz`` and SPIN's four ``.npz`` files."""
    rng = np.random.default_rng(seed)
    n = max(4, round(30_000 * scale))
    kp = np.concatenate([rng.uniform(0, 500, (n, 137, 2)), rng.uniform(-0.2, 1.0, (n, 137, 1))], axis=2)
    (root / "ExPose_curated_fits").mkdir(parents=True, exist_ok=True)
    np.savez(root / "ExPose_curated_fits" / "train.npz", img_fns=string_array([f"coco/train2014/im{i:06d}.jpg" for i in range(n)]),
             betas=rng.normal(size=(n, 10)), expression=rng.normal(size=(n, 10)), keypoints2D=kp, pose=rng.normal(0, 0.2, (n, 55, 3)))
    (root / "spin_in_smplx").mkdir(parents=True, exist_ok=True)
    for split, rows in (("coco", 28_344), ("lsp", 1_000), ("lspet", 9_428), ("mpii", 14_810)):
        m = max(30, round(rows * scale))
        part = np.concatenate([rng.uniform(0, 300, (m, 24, 2)), rng.integers(0, 2, (m, 24, 1)).astype(float)], axis=2)
        np.savez(root / "spin_in_smplx" / f"{split}.npz", imgname=string_array([f"images/im{i + 1:05d}.jpg" for i in range(m)]),
                 center=rng.uniform(100, 200, (m, 2)), scale=rng.uniform(0.5, 1.5, m), part=part,
                 pose=rng.normal(0, 0.2, (m, 165)), betas=rng.normal(size=(m, 10)), has_smpl=(rng.random(m) > 0.05).astype(int))


def silhouette(rng: np.random.Generator, centre: tuple[float, float], height: int = 1002, width: int = 1000) -> np.ndarray:
    """A ``(H, W)`` uint8 person silhouette as background subtraction gives it: head, torso, arms
    and legs (ellipses, ~500-650 px tall, ~5% of the image), ragged edges and a few specks."""
    mask = np.zeros((height, width), np.uint8)
    cy, cx = centre
    tall = rng.uniform(250, 330)
    top, left = max(0, int(cy - 1.2 * tall)), max(0, int(cx - 0.5 * tall))  # the person's window
    window = mask[top:int(cy + tall), left:int(cx + 0.5 * tall)]
    yy, xx = np.ogrid[top:top + window.shape[0], left:left + window.shape[1]]
    parts = ((cy - 0.95 * tall, cx, 0.12 * tall, 0.09 * tall), (cy - 0.45 * tall, cx, 0.38 * tall, 0.2 * tall),
             (cy + 0.4 * tall, cx - 0.1 * tall, 0.5 * tall, 0.07 * tall), (cy + 0.4 * tall, cx + 0.1 * tall, 0.5 * tall, 0.07 * tall),
             (cy - 0.4 * tall, cx - 0.28 * tall, 0.35 * tall, 0.05 * tall), (cy - 0.4 * tall, cx + 0.28 * tall, 0.35 * tall, 0.05 * tall))
    for py, px, ry, rx in parts:
        window[((yy - py) / ry) ** 2 + ((xx - px) / rx) ** 2 < 1] = 1
    edge = window != np.roll(window, 1, axis=1)  # ragged edges: flip pixels near the boundary
    edge |= np.roll(edge, 2, axis=1) | np.roll(edge, -2, axis=1) | np.roll(edge, 2, axis=0)
    window[edge & (rng.random(window.shape) < 0.3)] ^= 1
    for y, x in rng.integers(0, [height - 3, width - 3], (int(rng.integers(0, 4)), 2)):  # specks
        mask[y:y + 3, x:x + 3] = 1
    return mask


def write_h36m(root: Path, scale: float, seed: int = 4) -> None:
    """S1: 15 actions x 4 cameras of D3/D2 CDF pose files and MATLAB v7.3 mask files: every kept
    frame (every 5th) its own 1002x1000 silhouette (walking across the image), stored transposed
    as MATLAB does, deflate (level 3) in chunks; the other frames share one mask (not read)."""
    import h5py
    from cdflib.cdfwrite import CDF

    rng = np.random.default_rng(seed)
    frames = max(6, round(1_400 * scale))
    for a in range(15):
        for cam in ("54138969", "55011271", "58860488", "60457274"):
            name = f"Action{a} 1.{cam}"
            for kind, dims in (("D3_Positions_mono", 96), ("D2_Positions", 64)):
                folder = root / "S1" / "MyPoseFeatures" / kind
                folder.mkdir(parents=True, exist_ok=True)
                writer = CDF(str(folder / f"{name}.cdf"), cdf_spec={"Majority": "row_major"}, delete=True)
                writer.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1, "Rec_Vary": True,
                                  "Dim_Sizes": [frames, dims]}, var_data=rng.uniform(-1000, 1000, (frames, dims)))
                writer.close()
            masks = root / "S1" / "MySegmentsMat" / "ground_truth_bs"
            masks.mkdir(parents=True, exist_ok=True)
            with h5py.File(masks / f"{name}.mat", "w", userblock_size=512) as f:  # MATLAB's 512-byte header
                refs, group = np.empty((frames, 1), dtype=h5py.ref_dtype), f.create_group("#refs#")
                shared = group.create_dataset("shared", data=silhouette(rng, (500, 500)).T, compression="gzip", compression_opts=3)
                start, step = rng.uniform(250, 750), rng.uniform(-0.3, 0.3)
                for i in range(frames):
                    if i % 5:
                        refs[i, 0] = shared.ref
                        continue
                    mask = silhouette(rng, (rng.uniform(480, 560), float(np.clip(start + step * i, 150, 850))))
                    refs[i, 0] = group.create_dataset(f"m{i}", data=mask.T, compression="gzip", compression_opts=3).ref
                f.create_dataset("Masks", data=refs)


# ------------------------------------------------------------------------- MMHuman3D-style ---
def mmh_style_coco(json_path: Path, out_file: Path) -> int:
    """What MMHuman3D's ``CocoConverter.convert`` does, written from reading it (not its code):
    ``json.load`` of the whole file, images by id, annotations sorted by image id, a Python loop
    (reshape to 17x3, v > 0 -> 1, keep when all 12 limb joints are labelled), then the arrays,
    the keypoints placed in its 190-point convention and compressed back by the mask, and
    ``np.savez_compressed``. Returns the number of persons kept."""
    with open(json_path) as f:
        data = json.load(f)
    images = {img["id"]: img for img in data["images"]}
    data["annotations"].sort(key=lambda a: int(a["image_id"]))
    paths, keypoints, boxes = [], [], []
    for ann in data["annotations"]:
        kp = np.reshape(ann["keypoints"], (17, 3))
        kp[kp[:, 2] > 0, 2] = 1
        if sum(kp[5:, 2] > 0) < 12:
            continue
        paths.append(os.path.join("train2017", str(images[ann["image_id"]]["file_name"])))
        keypoints.append(kp)
        boxes.append(ann["bbox"])
    boxes = np.hstack([np.array(boxes).reshape(-1, 4), np.ones((len(boxes), 1))])
    full = np.zeros((len(keypoints), 190, 3))
    mask = np.zeros(190, np.uint8)
    full[:, :17], mask[:17] = np.array(keypoints).reshape(-1, 17, 3), 1
    np.savez_compressed(out_file, image_path=paths, bbox_xywh=boxes, keypoints2d=full[:, mask > 0], keypoints2d_mask=mask)
    return len(paths)


# ---------------------------------------------------------------------------- measurement ---
def _measured(queue, target, args) -> None:
    """Child process: run ``target(*args)``, report (result, wall s, CPU s, peak RSS MB); CPU and
    memory include the processes it started (``--workers``): their CPU summed, the largest RSS."""
    start, cpu = time.perf_counter(), time.process_time()
    result = target(*args)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    queue.put((result, time.perf_counter() - start, time.process_time() - cpu + children.ru_utime + children.ru_stime,
               max(own.ru_maxrss, children.ru_maxrss) / 1024.0))


def in_child(target, *args):
    """``target(*args)`` in a fresh process (its peak memory is its own): (result, wall, cpu, rss)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measured, args=(queue, target, args))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"{target.__name__} failed with exit code {proc.exitcode}")
    return out


def convert_all(name: str, raw: Path, out_dir: Path, splits: list[str] | None = None, workers: int = 1) -> int:
    """``expose preprocess <name> --workers N`` of every present split (or ``splits``); samples written."""
    from expose_cli.data.preprocess import DataTree, convert

    results = convert(name, DataTree(out_dir / "data"), raw, splits, overwrite=True, workers=workers)
    return sum(r.samples for r in results)


def mask_inflate_floor(raw: Path) -> str:
    """What reading Human3.6M's boxes costs at least: per kept frame, the bytes zlib inflates and
    its time alone (no HDF5, no Python per chunk), for the whole mask and for the chunks that hold
    foreground (those a box needs; the others are skipped by their compressed bytes)."""
    import zlib

    import h5py

    whole, foreground = [], []
    for path in sorted(raw.glob("S1/MySegmentsMat/ground_truth_bs/*.mat")):
        with h5py.File(path, "r") as f:
            refs = f["Masks"][()]
            for i in range(0, len(refs), 5):
                dsid, infos = h5py.h5r.dereference(refs[i, 0], f.id), []
                dsid.chunk_iter(infos.append)
                chunks = [dsid.read_direct_chunk(info.chunk_offset)[1] for info in infos]
                whole.append(chunks)
                foreground.append([c for c in chunks if any(zlib.decompress(c))])
    lines = []
    for label, frames in (("whole mask", whole), ("chunks with foreground", foreground)):
        start = time.process_time()
        size = sum(len(zlib.decompress(c)) for chunks in frames for c in chunks)
        took = time.process_time() - start
        lines.append(f"{label}: {size / len(frames) / 1e3:.0f} kB inflated per frame, {took / len(frames) * 1e3:.3f} ms "
                     f"(zlib alone, {size / took / 1e9:.2f} GB/s): at most {len(frames) / took:.0f} frames per CPU second")
    return "; ".join(lines)


def parse_numbers(path: Path) -> int:
    """FreiHAND's evaluation meshes through the reader the converter uses; numbers read."""
    from expose_cli.io.json_arrays import read_json_numbers

    return read_json_numbers(path, (778, 3), np.float32).size


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def _row(label: str, raw_mb: float, measured) -> dict:
    samples, wall, cpu, rss = measured
    print(f"{label:28s} {raw_mb:8.0f} MB in {samples:8d} samples {wall:7.1f} s {cpu:7.1f} s CPU "
          f"{samples / wall:9.0f} /s {samples / cpu:9.0f} /s CPU  peak RSS {rss:6.0f} MB", flush=True)
    return {"converter": label, "raw_mb": round(raw_mb, 1), "samples": samples, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "samples_per_s": round(samples / wall), "samples_per_cpu_s": round(samples / cpu),
            "peak_rss_mb": round(rss)}


COCO_JSON = Path("train_2017/annotations/person_keypoints_train2017.json")


def _coco_raw(tmp: Path, scale: float) -> None:
    write_coco(tmp / "coco" / COCO_JSON, scale)


def _freihand_raw(tmp: Path, scale: float) -> None:
    write_freihand(tmp / "FreiHand", scale)


def _pw3d_raw(tmp: Path, scale: float) -> None:
    write_pw3d(tmp / "3DPW", scale)


def _h36m_raw(tmp: Path, scale: float) -> None:
    write_h36m(tmp / "h36m", scale)


#: key: (writer of the raw data under the temp dir, [(dataset, its raw folder, splits or None: all)])
CONVERTERS = {
    "coco": (_coco_raw, [("coco", "coco", None)]),
    "freihand": (_freihand_raw, [("freihand", "FreiHand", None)]),
    "3dpw": (_pw3d_raw, [("3dpw", "3DPW", None)]),
    "npz": (write_npz_sets, [("curated-fits", "ExPose_curated_fits", ["train"]), ("spin-smplx", "spin_in_smplx", None)]),
    "h36m": (_h36m_raw, [("h36m-smplx", "h36m", ["train"]), ("h36m-smplx", "h36m", ["train"], 2)]),
}


def _bench(key: str, tmp: Path, scale: float) -> list[dict]:
    writer, runs = CONVERTERS[key]
    in_child(writer, tmp, scale)
    rows = []
    for name, folder, splits, *workers in runs:
        raw, label = tmp / folder, f"{name} (expose{', --workers ' + str(workers[0]) if workers else ''})"
        rows.append(_row(label, _size_mb(raw), in_child(convert_all, name, raw, tmp / "out", splits, *workers)))
        if name == "h36m-smplx" and not workers:
            floor = in_child(mask_inflate_floor, raw)[0]
            print("  masks:", floor, flush=True)
            rows.append({"converter": "h36m mask inflate floor", "figures": floor})
        if name == "freihand":
            path = raw / "evaluation_verts.json"
            mb = path.stat().st_size / 1e6
            numbers, wall, cpu, rss = in_child(parse_numbers, path)
            print(f"  evaluation_verts.json: {mb:.0f} MB ({numbers} numbers) parsed at {mb / wall:.0f} MB/s "
                  f"({mb / cpu:.0f} MB/s CPU), peak RSS {rss:.0f} MB", flush=True)
            rows.append({"converter": "freihand verts json parse", "raw_mb": round(mb, 1), "wall_s": round(wall, 2),
                         "cpu_s": round(cpu, 2), "mb_per_s": round(mb / wall), "mb_per_cpu_s": round(mb / cpu),
                         "peak_rss_mb": round(rss)})
        if name == "coco":
            rows.append(_row("coco (MMHuman3D-style)", _size_mb(raw), in_child(mmh_style_coco, raw / COCO_JSON, tmp / "mmh.npz")))
            ours, ref = rows[-2], rows[-1]
            print(f"  COCO: {ref['wall_s'] / ours['wall_s']:.2f}x faster (wall), {ref['cpu_s'] / ours['cpu_s']:.2f}x "
                  f"(CPU), {ref['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x less peak memory than MMHuman3D-style", flush=True)
    return rows


def _machine() -> str:
    return (f"{dt.date.today()} | {cpu_model()} | {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')} "
            f"| load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="raw input size relative to the real one (default 1)")
    parser.add_argument("--only", nargs="+", choices=sorted(CONVERTERS), default=sorted(CONVERTERS))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    print(_machine(), f"| scale {args.scale}", flush=True)
    rows = []
    for key in args.only:
        with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
            rows += _bench(key, Path(tmp), args.scale)
    print("load average after:", f"{os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": _machine(), "scale": args.scale, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
