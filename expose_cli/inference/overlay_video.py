"""Each video's ``overlay.mp4`` (``expose infer VIDEO --render``): its frames' overlays encoded as
they are drawn, in order, into a temporary file renamed when the video ends; reading every frame's
``overlay.png`` back at the end (the old way) cost as much again as writing it. A video whose frames
do not come in order, or that this run drew only in part (``--resume``: the earlier frames' PNGs
are read back as they come), still gets the same file."""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np

from expose_cli.utils.atomic import move_into_place, temp_path_for


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
    """The ``overlay.mp4`` of every video of a run, written as the frames come."""

    def __init__(self) -> None:
        self.frames: dict[Path, list[Path]] = {}  # video folder -> its frames' overlay PNGs, as they came
        self.streams: dict[Path, _Stream | None] = {}  # None: written from the PNGs at the end

    def add(self, folder: Path, png: Path, fps: float, bgr: np.ndarray | None = None) -> None:
        """The frame whose overlay is ``png`` (its pixels ``bgr``, BGR; read from ``png`` if None)."""
        frames = self.frames.setdefault(folder, [])
        in_order = not frames or png > frames[-1]
        frames.append(png)
        if folder in self.streams and self.streams[folder] is None:
            return
        bgr = cv2.imread(str(png)) if bgr is None and in_order else bgr
        if not in_order or bgr is None:  # out of order, or a frame that cannot be read: from the PNGs
            self.give_up(folder)
            return
        stream = self.streams.get(folder)
        if stream is None:
            stream = self.streams[folder] = _Stream(folder / "overlay.mp4", fps, (bgr.shape[1], bgr.shape[0]))
        stream.add(bgr)

    def finish(self, folder: Path, fps: float) -> Path:
        """``folder/overlay.mp4``: the file written as the frames came, or written now from their
        PNGs (in the order of their paths) when they did not come in order."""
        frames, stream = self.frames.pop(folder), self.streams.pop(folder, None)
        if stream is not None:
            return stream.close()
        path = folder / "overlay.mp4"
        write_video(path, sorted(frames), fps)
        return path

    def drop(self) -> None:
        """Every video not finished (an interrupted or failed run): its temporary file removed."""
        for stream in self.streams.values():
            if stream is not None:
                stream.drop()
        self.streams.clear()
        self.frames.clear()

    def give_up(self, folder: Path) -> None:
        """``folder``'s video written from its PNGs at the end (its frames came out of order, or one failed)."""
        stream = self.streams.get(folder)
        if stream is not None:
            stream.drop()
        self.streams[folder] = None


def write_video(path: Path, frames: list[Path], fps: float) -> None:
    """The overlay PNGs of a video's frames as an MP4 (mp4v), written atomically; a frame that
    cannot be read is left out, one of another size is resized to the first's."""
    first = cv2.imread(str(frames[0]))
    if first is None:
        raise OSError(f"cannot read {frames[0]}")
    stream = _Stream(path, fps, (first.shape[1], first.shape[0]))
    try:
        for i, png in enumerate(frames):
            bgr = first if i == 0 else cv2.imread(str(png))
            if bgr is not None:
                stream.add(bgr)
    except BaseException:
        stream.drop()
        raise
    stream.close()
