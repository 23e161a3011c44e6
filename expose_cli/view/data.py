"""The page's data as JavaScript files under ``DIR/.view/`` (a ``file://`` page may load scripts,
not ``fetch`` files): the manifest (``manifest.js``) and one file per lazily shown item
(``data/<key>.js``). Arrays travel as base64 of little-endian float32 / uint32."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np

from expose_cli.utils.atomic import write_text_atomic

ASSET_DIR = ".view"


def b64_f32(array) -> str:
    """``array`` as base64 of little-endian float32 (the page reads it into a ``Float32Array``)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def b64_u32(array) -> str:
    """``array`` as base64 of little-endian uint32 (triangle indices)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<u4").tobytes()).decode("ascii")


def url(path: str | Path, root: Path) -> str:
    """``path`` as the page (``root/index.html``) links it: relative with ``/`` when it can be, else a
    ``file://`` URI."""
    path = Path(path).resolve()
    try:
        return Path(os.path.relpath(path, root.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_uri()


def locate(path: str | Path, root: Path) -> Path:
    """A path an infer summary recorded, found again under ``root`` (the run's ``--out``): as
    recorded when it is there (absolute, or relative to here), else its longest tail that exists
    under ``root`` (``out/pair/overlay.png`` -> ``root/pair/overlay.png``: the folder was moved, or
    is viewed from another directory); as recorded when none does."""
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts[1:] if path.is_absolute() else path.parts
    for i in range(len(parts)):
        candidate = root.joinpath(*parts[i:])
        if candidate.exists():
            return candidate
    return path


def _script(call: str, key: str | None, payload) -> str:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    args = body if key is None else f"{json.dumps(key)},{body}"
    return f"{call}({args});\n"


def write_manifest(root: Path, manifest: dict) -> None:
    """``.view/manifest.js``: what the page shows first (``exposeViewManifest({...})``)."""
    write_text_atomic(root / ASSET_DIR / "manifest.js", _script("exposeViewManifest", None, manifest))


def write_item(root: Path, key: str, payload: dict) -> None:
    """``.view/data/<key>.js``, read by the page when it shows that item (``exposeViewData(key, {...})``)."""
    folder = root / ASSET_DIR / "data"
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"{key}.js", _script("exposeViewData", key, payload))


def small_arrays(arrays: dict, limit: int = 64) -> dict:
    """The parameters shown beside a mesh: every array of at most ``limit`` numbers, rounded."""
    out = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.kind in "fiu" and a.size <= limit:
            out[name] = np.round(a.astype(np.float64), 4).tolist()
    return out
