"""The page of an ``expose eval ... --report DIR`` folder (its ``report.json``): the metric table
beside the seed's published numbers, a histogram of each per-sample metric, the worst samples and
(benchmarks with ground-truth vertices) the worst sample's mesh coloured by per-vertex error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from expose_cli.evaluation.report import CAMERA, place_in_front
from expose_cli.view.data import b64_f32, url, write_item
from expose_cli.view.infer_page import Faces

BINS = 30


def histogram(values, bins: int = BINS) -> tuple[list[float], list[int]]:
    """Bin edges and counts of the finite ``values`` (``None``: not finite); one bin when all are equal."""
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [0.0, 1.0], [0]
    counts, edges = np.histogram(v, bins=bins if v.max() > v.min() else 1)
    return edges.tolist(), counts.tolist()


def error_mesh(root: Path, report: dict, faces: Faces) -> dict | None:
    """The worst sample's mesh coloured by its per-vertex error (``report["error_mesh"]``'s npz)."""
    info = report.get("error_mesh")
    if not info:
        return None
    with np.load(root / info["file"], allow_pickle=False) as z:
        verts, tris, errors = z["vertices"], z["faces"], z["errors"]
    finite = errors[np.isfinite(errors)]
    write_item(root, "error_mesh", {"v": b64_f32(place_in_front(verts)), "faces": faces.key(tris),
                                    "errors": b64_f32(errors)})
    return {"key": "error_mesh", "title": f"sample {info['sample']}", "unit": info.get("unit", "mm"),
            "note": info.get("note", ""), "scale": float(np.percentile(finite, 95)) if finite.size else 1.0,
            **CAMERA}


def eval_manifest(root: Path) -> dict:
    """The page's manifest of the eval report folder ``root``."""
    report = json.loads((root / "report.json").read_text())
    units = {r["metric"]: r["unit"] for r in report["metrics"]}
    histograms = []
    for metric, values in report.get("per_sample", {}).items():
        edges, counts = histogram(values)
        histograms.append({"metric": metric, "unit": units.get(metric, ""), "edges": edges, "counts": counts})
    worst = report.get("worst", {})
    samples = [{"index": w["index"], "name": Path(w["image"]).name, "value": w["value"], "unit": units.get(worst.get("metric"), ""),
                "overlay": url(root / w["overlay"], root) if w.get("overlay") else None} for w in worst.get("samples", [])]
    return {"kind": "eval", "title": f"{report['benchmark']} ({root.resolve().name})", "benchmark": report["benchmark"],
            "num_samples": report["num_samples"], "protocol": report.get("protocol", ""), "metrics": report["metrics"],
            "histograms": histograms, "worst_metric": worst.get("metric"), "worst": samples,
            "error_mesh": error_mesh(root, report, Faces(root))}
