"""Stirling/ESRC 3D faces (FG2018 benchmark): the face model's test set.

Raw folder: ``Subset_2D_FG2018/{HQ,LQ}/<ID>_<nnn>.jpg``, scans ``{F,M}_3D_N/<id>_N.obj`` (mm) and
landmarks ``annotations/{F,M}_3D_N/<id>_N.lnd`` (7 lines ``i x y z``, mm). As MMHuman3D: gender from
the first letter, subject = name before the first ``_``; the scan and landmark files are looked up in
lower, upper and original case (the real names mix them); an image without both is dropped and
counted. The box is the whole image ``[0, 0, W - 1, H - 1]``. Scans are stored ragged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError

SPLITS = ("HQ", "LQ")
VERSION = "1"


def read_obj_vertices(path: Path) -> np.ndarray:
    """``v x y z`` lines of a text OBJ (any order of sections), ``[N, 3]`` float32."""
    verts = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("v "):
                parts = line.split()
                verts.append((float(parts[1]), float(parts[2]), float(parts[3])))
    if not verts:
        raise ExposeError("no vertices in OBJ file", path=path)
    return np.asarray(verts, np.float32)


def read_lnd(path: Path) -> np.ndarray:
    """The 7 landmarks of a ``.lnd`` file, ``[7, 3]`` mm, in index order."""
    rows = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows[int(parts[0])] = [float(v) for v in parts[1:]]
    if sorted(rows) != list(range(1, 8)):
        raise ExposeError(f"expected 7 landmark lines numbered 1..7, found {sorted(rows)}", path=path)
    return np.asarray([rows[i] for i in range(1, 8)], np.float32)


def _find(folder: Path, subject: str, suffix: str) -> Path | None:
    for name in (subject.lower(), subject.upper(), subject):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def split_present(root: Path, split: str) -> bool:
    return any((root / "Subset_2D_FG2018" / split).glob("*.jpg"))


def expected_input(split: str) -> str:
    return f"Subset_2D_FG2018/{split}/*.jpg"


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    import cv2  # imported when used: `expose preprocess` of other datasets starts faster

    folder = root / "Subset_2D_FG2018" / split
    images = sorted(folder.glob("*.jpg"))
    if not images:
        raise ExposeError("no images", path=folder, hint="expected Subset_2D_FG2018/HQ and /LQ")
    for img_path in images:
        subject = img_path.name.split("_")[0]
        gender = subject[0].upper()
        scan = _find(root / f"{gender}_3D_N", subject, "_N.obj")
        lnd = _find(root / "annotations" / f"{gender}_3D_N", subject, "_N.lnd")
        if scan is None or lnd is None:
            stats.drop("no scan or landmarks for the subject")
            continue
        try:
            image = cv2.imread(str(img_path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise ExposeError("cannot read image", path=img_path)
            landmarks, vertices = read_lnd(lnd), read_obj_vertices(scan)
        except (ExposeError, ValueError) as exc:
            if options.get("skip_bad"):
                stats.drop("unreadable file")
                continue
            raise exc if isinstance(exc, ExposeError) else ExposeError(str(exc), path=scan) from exc
        h, w = image.shape
        yield {
            "image_path": f"Subset_2D_FG2018/{split}/{img_path.name}", "image_size": (h, w),
            "bbox_xywh": np.array([0, 0, w - 1, h - 1], np.float32), "gender": 1 if gender == "M" else 2,
            "scan/vertices": vertices, "scan_landmarks": landmarks,
        }


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
