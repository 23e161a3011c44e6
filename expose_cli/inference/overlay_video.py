"""Each video's ``overlay.mp4`` (``expose infer VIDEO --render``): its frames' overlays encoded as
they are drawn, in frame order, into a temporary file renamed when the video ends. A video's frames
get no ``overlay.png`` each (encoding a 1080p PNG cost more than drawing the frame); what a frame's
overlay is drawn from is kept instead, in its ``overlay.npz`` (:func:`write_overlay_meshes`), so a
resumed run (``--resume``) draws the frames done before again and writes the same file."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import cv2
import numpy as np

from expose_cli.inference.export import write_npz
from expose_cli.utils.atomic import move_into_place, temp_path_for

MESHES_FILE = "overlay.npz"


class _Stream:
    """One video's MP4 (mp4v) being written, to a temporary name: frames of one size, in order."""

    def __init__(self, final: Path, fps: float, size: tuple[int, int]) -> None:
        self.final, self.size = final, size
        self.tmp = temp_path_for(final)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise OSError(f"cannot open a video writer for {final}")

    def add(self, bgr: np.ndarray) -> None:
        if bgr.shape[1::-1] != self.size:
            bgr = cv2.resize(bgr, self.size)
        self.writer.write(bgr)

    def close(self) -> Path:
        self.writer.release()
        return move_into_place(self.tmp, self.final)

    def drop(self) -> None:
        self.writer.release()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


class OverlayVideos:
    """The ``overlay.mp4`` of every video of a run, written as its frames come (in frame order: the
    pipeline finishes units in input order). A video that fails (a frame out of order, a frame that
    cannot be encoded) loses its temporary file and gives its error at :meth:`finish`."""

    def __init__(self) -> None:
        self.streams: dict[Path, _Stream] = {}
        self.last: dict[Path, int] = {}  # video folder -> the last frame added
        self.errors: dict[Path, str] = {}  # video folder -> why it has no overlay.mp4

    @property
    def folders(self) -> list[Path]:
        """The videos that got a frame (or failed), in the order they came."""
        return list(dict.fromkeys([*self.last, *self.errors]))

    def add(self, folder: Path, frame: int, fps: float, bgr: np.ndarray) -> None:
        """Frame number ``frame`` of the video in ``folder``, its overlay's pixels ``bgr`` (BGR);
        a frame not after the last one added fails the video."""
        if folder in self.errors:
            return
        last = self.last.get(folder)
        if last is not None and frame <= last:
            self.fail(folder, f"frame {frame} came after frame {last}: its overlay.mp4 needs the frames in order")
            return
        self.last[folder] = frame
        try:
            stream = self.streams.get(folder)
            if stream is None:
                stream = self.streams[folder] = _Stream(folder / "overlay.mp4", fps, (bgr.shape[1], bgr.shape[0]))
            stream.add(bgr)
        except Exception as exc:  # noqa: BLE001 - the video's error, the run goes on
            self.fail(folder, f"frame {frame}: {exc}")

    def fail(self, folder: Path, reason: str) -> None:
        """The video in ``folder`` gets no ``overlay.mp4`` (its temporary file removed), for ``reason``."""
        stream = self.streams.pop(folder, None)
        if stream is not None:
            stream.drop()
        self.errors.setdefault(folder, reason)

    def finish(self, folder: Path) -> Path:
        """``folder/overlay.mp4``, renamed into place; an ``OSError`` when the video failed."""
        self.last.pop(folder, None)
        if folder in self.errors:
            raise OSError(self.errors.pop(folder))
        return self.streams.pop(folder).close()

    def drop(self) -> None:
        """Every video not finished (an interrupted or failed run): its temporary file removed."""
        for stream in self.streams.values():
            stream.drop()
        self.streams.clear()
        self.last.clear()
        self.errors.clear()


def write_overlay_meshes(folder: Path, vertices: list[np.ndarray], boxes: list[np.ndarray]) -> None:
    """``folder/overlay.npz``: a video frame's persons as its overlay draws them, bit for bit:
    ``vertices_camera`` [P, V, 3] (camera frame, metres) and ``bbox_xyxy`` [P, 4] (px), float32."""
    write_npz(folder / MESHES_FILE, {"vertices_camera": np.stack(vertices), "bbox_xyxy": np.stack(boxes)})


def read_overlay_meshes(folder: Path, count: int) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The ``count`` persons' vertices and boxes of ``folder/overlay.npz``, or ``None`` when the
    file is absent, unreadable or holds another number of persons (the frame is then run again)."""
    try:
        with np.load(folder / MESHES_FILE) as data:
            vertices, boxes = data["vertices_camera"], data["bbox_xyxy"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    if len(vertices) != count or len(boxes) != count:
        return None
    return list(vertices), list(boxes)
