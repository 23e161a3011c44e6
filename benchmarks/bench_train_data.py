"""Training-data throughput: HDF5 random-row reads, and the body pipeline (read + decode + augment +
crop + collate) at 256 px from raw images and from embedded crops, with 1 and 2 DataLoader workers.

Data: a synthetic body set (stand-in SMPL-X, 512 px images) of UNIQUE rendered samples, whose rows
are repeated into a file of ROWS rows (random access over a realistically long file). Prints
samples/s and each worker's peak resident memory, and the HDF5 row-read times side by side:
the reader's every-field rows vs its training rows (``HDF5Reader.require``: only the body fields),
on format 1 (256-row chunks) and format 2 (16-row chunks).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch
from conditions import cpu_model  # benchmarks/conditions.py

from expose_cli.data.hdf5 import HDF5Reader, HDF5Writer
from expose_cli.kinds import KINDS
from expose_cli.testing.standins import write_standin_data_tree
from expose_cli.training.data_config import data_preset, with_members
from expose_cli.training.datasets import BASE_FIELDS, build_train_dataset, collate
from expose_cli.training.mixing import MixedSampler
from expose_cli.training.synth import write_synth

UNIQUE, ROWS, SAMPLES, BATCH = 96, 8192, 480, 48


def make_data(root: Path) -> Path:
    """Data tree with the stand-ins and ``preprocessed_datasets/bench_train.h5`` (ROWS rows)."""
    tree = write_standin_data_tree(root)
    pre = root / "preprocessed_datasets"
    src = write_synth(pre, "body", UNIQUE, tree, seed=0, size=512)
    reader = HDF5Reader(src)
    rows = [reader[i] for i in range(len(reader))]
    writer = HDF5Writer(pre / "bench_train.h5", "bench", "train", reader.attrs["raw_root"], "bench-1", embed_images=True)
    for i in range(ROWS):
        row = {k: v for k, v in rows[i % UNIQUE].items() if k not in ("image_jpeg", "vertices")}
        row["image_jpeg"] = rows[i % UNIQUE]["image_jpeg"].tobytes()
        writer.append(row)
    writer.close()
    reader.close()
    return pre / "bench_train.h5"


def rewrite_v1(path: Path, out: Path) -> Path:
    """The same file in format 1's layout: per-row fields in 256-row gzip-4 chunks."""
    with h5py.File(path) as src, h5py.File(out, "w") as dst:
        dst.attrs.update(dict(src.attrs))
        dst.attrs["format_version"] = 1
        n = src["image_path"].shape[0]

        def copy(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            if obj.shape and obj.shape[0] == n and obj.dtype.kind in "fiub" and name != "image_jpeg":
                dst.create_dataset(name, data=obj[()], chunks=(256, *obj.shape[1:]), compression="gzip",
                                   compression_opts=4, shuffle=True)
            else:
                dst.create_dataset(name, data=obj[()], chunks=obj.chunks)

        src.visititems(copy)
    return out


def time_rows(read, n: int, rng) -> float:
    """ms per random row."""
    idx = rng.integers(0, ROWS, n)
    start = time.perf_counter()
    for i in idx:
        read(int(i))
    return (time.perf_counter() - start) / n * 1e3


def bench_rows(v2: Path, v1: Path) -> dict:
    fields = (*BASE_FIELDS, "has_smplx", *KINDS["body"].params.values())
    out = {}
    reader = HDF5Reader(v1)
    out["HDF5Reader as before (tree walk per row), format 1"] = time_rows(
        lambda i: [reader.file[name][i] for name in reader.fields() if not name.endswith("_mask")], 50,
        np.random.default_rng(0))
    reader.close()
    for name, path in (("format 1 (256-row chunks)", v1), ("format 2 (16-row chunks)", v2)):
        rng = np.random.default_rng(0)
        reader = HDF5Reader(path)
        out[f"HDF5Reader, all fields, {name}"] = time_rows(reader.__getitem__, 100, rng)
        reader.close()
        rows = HDF5Reader(path, fields)
        out[f"HDF5Reader.row, body fields, {name}"] = time_rows(rows.row, 400, rng)
        rows.close()
    return out


def rss_mb() -> float:
    """This process's resident memory now (MB; pages shared with the parent included)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class WithRss(torch.utils.data.Dataset):
    """The dataset, each sample tagged with its process's peak RSS (MB)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        sample = self.ds[key]
        sample["rss_mb"] = torch.tensor(rss_mb())
        sample["pid"] = torch.tensor(os.getpid())
        return sample


def bench_pipeline(data_dir: Path, images: str, workers: int) -> dict:
    cfg = replace(with_members(data_preset("body"), ("bench",)), img_res=256)
    ds = WithRss(build_train_dataset(cfg, data_dir, "body", seed=0, images=images))
    sampler = MixedSampler(ds.ds, cfg.ratios, seed=0, length=SAMPLES + 2 * BATCH)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, sampler=sampler, num_workers=workers,
                                         collate_fn=collate, persistent_workers=False, prefetch_factor=2)
    parent = rss_mb()
    it = iter(loader)
    first = next(it)  # start-up (worker fork, file opens) not timed
    start, n, rss = time.perf_counter(), 0, {}
    for batch in it:
        n += len(batch["img"])
        for pid, mb in zip(batch["pid"].tolist(), batch["rss_mb"].tolist(), strict=True):
            rss[pid] = max(rss.get(pid, 0.0), mb)
    rate = n / (time.perf_counter() - start)
    del first
    return {"samples_per_s": rate, "peak_rss_mb_per_worker": max(rss.values()),
            "above_parent_mb": max(rss.values()) - parent, "samples": n,
            "workers_seen": len(rss)}


def main() -> None:
    torch.set_num_threads(1)
    info = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "torch_threads_per_worker": 1,
            "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench_train_data_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        with mp.get_context("spawn").Pool(1) as pool:  # keep the rendering's memory out of this process
            v2 = pool.apply(make_data, (root,))
        info["setup_s"] = round(time.perf_counter() - t0, 1)
        v1 = rewrite_v1(v2, root / "v1.h5")
        result = {"machine": info, "row_read_ms": bench_rows(v2, v1), "pipeline": {}}
        for images in ("embedded", "raw"):
            for workers in (1, 2):
                result["pipeline"][f"{images}, {workers} worker(s)"] = bench_pipeline(root, images, workers)
    print(json.dumps(result, indent=2))
    print(f"\n{info['date']}, {info['cpu']}, {info['cores']} cores, 1 torch thread per worker, "
          f"load average {info['load_average_before']:.1f} at the start", file=sys.stderr)
    for name, ms in result["row_read_ms"].items():
        print(f"  row read  {name:48s} {ms:7.2f} ms", file=sys.stderr)
    for name, r in result["pipeline"].items():
        print(f"  body 256 px  {name:24s} {r['samples_per_s']:7.1f} samples/s   peak RSS/worker "
              f"{r['peak_rss_mb_per_worker']:.0f} MB ({r['above_parent_mb']:+.0f} MB over the parent)", file=sys.stderr)
    print(f"  main process RSS {rss_mb():.0f} MB (workers are forked from it)", file=sys.stderr)


if __name__ == "__main__":
    main()
