"""The page of an ``expose fit`` folder: its ``fit.json`` read as an infer run (the fitted persons'
``person_XX.npz`` files have the same arrays), so the same gallery and 3D views show it. An image's
fit is a gallery card; a sequence's (``frame_XXXXXX/`` folders) plays as a video whose tracks are
the fitted persons."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from expose_cli.view.infer_page import Faces, image_entry, video_entry

PERSON = re.compile(r"person_(\d+)\.npz$")


def fit_records(summary: dict) -> tuple[list[dict], list[tuple[dict, list[dict]]]]:
    """``fit.json``'s inputs as infer-style records: images (one folder each) and sequences (a video
    record and one record per frame folder, with the persons' indices as track ids)."""
    images, videos = [], []
    for record in summary.get("inputs", []):
        npz = [Path(f) for f in record.get("files", []) if PERSON.search(f)]
        if not npz:
            continue
        if int(record.get("frames", 1)) == 1:
            images.append({"input": record.get("image") or record["input"], "output": str(npz[0].parent), "persons": len(npz),
                           "files": [str(f) for f in npz], "frame": None})
            continue
        by_frame: dict[Path, list[Path]] = {}
        for f in npz:
            by_frame.setdefault(f.parent, []).append(f)
        frames = [{"frame": i, "output": str(folder), "files": [str(f) for f in sorted(files)],
                   "track_ids": [int(PERSON.search(f.name).group(1)) for f in sorted(files)]}
                  for i, (folder, files) in enumerate(sorted(by_frame.items()))]
        video = {"input": record["input"], "output": str(npz[0].parent.parent), "fps": summary.get("fps", 25.0)}
        videos.append((video, frames))
    return images, videos


def fit_manifest(root: Path, on_item: Callable[[], None] | None = None) -> dict:
    """The page's manifest of the fit folder ``root``, in the infer page's form."""
    summary = json.loads((root / "fit.json").read_text())
    faces = Faces(root)
    images, videos = fit_records(summary)
    manifest = {"kind": "infer", "title": root.resolve().name, "images": [], "videos": [], "complete": True}
    for record in images:
        manifest["images"].append(image_entry(root, len(manifest["images"]), record, faces))
        if on_item:
            on_item()
    for video, frames in videos:
        manifest["videos"].append(video_entry(root, len(manifest["videos"]), video, frames, faces))
        if on_item:
            on_item()
    return manifest


def count_items(root: Path) -> int:
    """Images plus sequences of a fit folder (the progress bar's total)."""
    images, videos = fit_records(json.loads((root / "fit.json").read_text()))
    return len(images) + len(videos)
