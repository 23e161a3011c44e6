"""What `expose infer` reads: image files, folders, glob patterns and videos."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from expose_cli.errors import ExposeError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv"}


@dataclass(frozen=True)
class InputItem:
    """One input: an image file or a video file (``root``: the folder it was found in, if any)."""

    path: Path
    kind: str  # image | video
    root: Path | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def discover_inputs(specs: list[str | Path]) -> list[InputItem]:
    """Files, folders (recursive, sorted) and glob patterns -> image and video inputs, in order.

    A spec that matches nothing raises an error naming it.
    """
    items: list[InputItem] = []
    seen: set[Path] = set()
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
        elif path.is_file():
            candidates = [path]
        else:
            candidates = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
            if not candidates:
                raise ExposeError(f"no such file, folder or pattern: {spec}", exit_code=2)
        for c in candidates:
            ext = c.suffix.lower()
            kind = "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None
            if kind is None:
                if path.is_file():  # named explicitly: say why it is not used
                    raise ExposeError(f"unsupported file type {ext!r}", path=c,
                                      hint="images: jpg, jpeg, png, bmp, webp; videos: mp4, avi, mov, mkv")
                continue
            if c.resolve() not in seen:
                seen.add(c.resolve())
                items.append(InputItem(c, kind, path if path.is_dir() else None))
    return items


def read_video_frames(path: str | Path, every: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame index, RGB frame)`` of a video, every ``every``-th frame, at most ``max_frames``."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ExposeError("cannot open video", path=path)
    index, emitted = 0, 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % every == 0:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                emitted += 1
                if max_frames is not None and emitted >= max_frames:
                    break
            index += 1
    finally:
        cap.release()
    if index == 0 and emitted == 0:
        raise ExposeError("video has no readable frame", path=path)


def video_fps(path: str | Path) -> float:
    """Frames per second of a video (25 when the container does not say)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    cap.release()
    return fps if fps and fps > 0 else 25.0


def video_frame_estimate(path: str | Path, every: int = 1, max_frames: int | None = None) -> int | None:
    """How many frames :func:`read_video_frames` will yield, from the container's frame count
    (``None`` when it does not say; 1 when the video cannot be opened: its one error record)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        return 1
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if count <= 0:
        return None
    n = (count + every - 1) // every
    return min(n, max_frames) if max_frames is not None else n
