"""`expose eval` throughput (samples/s) of the four benchmarks with full-size models (stand-in weights).

The raw test sets are generated (tiny images), converted with `expose preprocess`, and each file's
rows repeated to ``--samples`` so that the timing covers many batches. The figure is the one
`expose eval --json` records (`samples_per_s`: crops, network, body model; not scoring); ``wall s``
is the whole command (checks, loading the model and scoring assets, hashing, scoring).
Run as ``OMP_NUM_THREADS=2 python benchmarks/bench_eval.py``: 2 torch threads; the first line says
the conditions (threads, CPUs, load average), since a shared machine changes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from expose_cli.cli.app import main as invoke
from expose_cli.data.hdf5 import HDF5Reader, HDF5Writer
from expose_cli.io.paths import DataTree
from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint
from expose_cli.testing.raw_datasets import write_ehf, write_freihand, write_pw3d, write_stirling
from expose_cli.testing.standins import write_standin_data_tree

# benchmark -> (preprocess name, file split, checkpoint config)
CASES = {
    "ehf": ("ehf", "val", "expose"),
    "3dpw": ("3dpw", "test", "hrnet_hmr_expose_body"),
    "freihand": ("freihand", "test", "resnet18_hmr_expose_hand"),
    "stirling": ("stirling", "HQ", "resnet18_hmr_expose_face"),
}


def replicate(path: Path, samples: int) -> None:
    """Rewrite ``path`` with its rows repeated until it holds ``samples`` rows."""
    with HDF5Reader(path) as src:
        attrs = {k: v for k, v in src.attrs.items() if k not in ("num_samples", "dropped", "notes", "created")}
        rows = [src[i] for i in range(len(src))]
        scans = [src.scan(i) for i in range(len(src))] if "scan/offsets" in src.file else None
    writer = HDF5Writer(path, attrs.pop("dataset"), attrs.pop("split"), attrs.pop("raw_root"),
                        attrs.pop("converter_version"), overwrite=True, attrs=attrs)
    for k in range(samples):
        row = dict(rows[k % len(rows)])
        if scans is not None:
            row["scan/vertices"] = scans[k % len(rows)]
        writer.append({key: value for key, value in row.items() if not key.endswith("_mask")})
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_standin_data_tree(root)
        tree = DataTree(root)
        write_ehf(root / "datasets" / "EHF", frames=4)
        write_freihand(root / "datasets" / "FreiHand", unique=5, eval_samples=4)
        write_pw3d(root / "datasets" / "3DPW")
        write_stirling(root / "datasets" / "stirling")
        import os

        load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
              f"load average {load[0]}, batch {args.batch_size}, device {args.device}")
        print(f"{'benchmark':10s} {'model':26s} {'samples':>7s} {'samples/s':>10s} {'wall s':>7s}")
        for bench, (dataset, split, config) in CASES.items():
            ckpt = root / "pretrained_models" / f"{config}.pth"
            write_mmhuman3d_checkpoint(ckpt, config, seed=0)
            with contextlib.redirect_stdout(io.StringIO()):
                code = invoke(["--data-dir", str(root), "-q", "preprocess", dataset, "--split", split, "--overwrite"])
            if code:
                raise SystemExit(f"preprocess {dataset} failed")
            replicate(tree.preprocessed_file(dataset, split), args.samples)
            out = Path(tmp) / f"{bench}.json"
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the metric tables: meaningless with stand-ins
                code = invoke(["--data-dir", str(root), "--device", args.device, "-q", "eval", bench, "--ckpt", str(ckpt),
                              "--batch-size", str(args.batch_size), "--json", str(out)])
            wall = time.perf_counter() - t0
            if code:
                raise SystemExit(f"eval {bench} failed")
            report = json.loads(out.read_text())
            print(f"{bench:10s} {config:26s} {report['num_samples']:7d} {report['samples_per_s']:10.2f} {wall:7.1f}",
                  flush=True)
            ckpt.unlink()
        shutil.rmtree(root / "preprocessed_datasets", ignore_errors=True)


if __name__ == "__main__":
    main()
