"""The page of an ``expose train`` folder: its ``log.jsonl`` (``train`` and ``val`` records) as
curves over steps: each loss term, the learning rate, throughput and each validation metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

from expose_cli.errors import ExposeError

MAX_POINTS = 2000  # per curve: longer logs are thinned to evenly spaced records (the last one kept)
NOT_CURVES = ("type", "epoch", "step", "skipped")


def read_log(path: Path) -> list[dict]:
    """The records of a ``log.jsonl``; a line that is not JSON names the file and line."""
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break  # the last line of a run still writing
            raise ExposeError(f"{path}: line {n} is not JSON ({exc.msg})",
                              hint="the training log is damaged; remove that line and run expose view again") from None
    return records


def curves(records: list[dict], kind: str) -> dict[str, list[list[float]]]:
    """``{name: [[step, value], ...]}`` of the numeric fields of the records of ``kind``, thinned to at
    most :data:`MAX_POINTS` points each."""
    out: dict[str, list[list[float]]] = {}
    for r in records:
        if r.get("type") != kind:
            continue
        for name, value in r.items():
            if name not in NOT_CURVES and isinstance(value, (int, float)) and math.isfinite(value):
                out.setdefault(name, []).append([float(r.get("step", 0)), float(value)])
    for name, points in out.items():
        if len(points) > MAX_POINTS:
            stride = math.ceil(len(points) / MAX_POINTS)
            out[name] = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    return out


def train_manifest(root: Path) -> dict:
    """The page's manifest of the training folder ``root``: training and validation curves."""
    records = read_log(root / "log.jsonl")
    train = curves(records, "train")
    groups = {
        "loss terms": {k: v for k, v in train.items() if k not in ("lr", "samples_per_s")},
        "learning rate": {k: v for k, v in train.items() if k == "lr"},
        "throughput (samples/s)": {k: v for k, v in train.items() if k == "samples_per_s"},
        "validation": curves(records, "val"),
    }
    return {"kind": "train", "title": root.resolve().name, "records": len(records),
            "steps": max((int(r.get("step", 0)) for r in records), default=0),
            "charts": [{"title": title, "series": series} for title, series in groups.items() if series]}
