"""The writers stage of `expose infer`: each person's files (in the formats of
:data:`expose_cli.inference.export.FORMATS`), a unit's keypoints, tracks, overlay and
``result.json``, each video's ``overlay.mp4``; :class:`WritePool` runs them beside the model."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from expose_cli.geometry.cameras import crop_camera_to_full_translation
from expose_cli.inference import export
from expose_cli.inference.batching import Queued
from expose_cli.inference.keypoints_net import save_keypoints
from expose_cli.inference.loading import message
from expose_cli.inference.options import InferOptions
from expose_cli.inference.overlay_video import OverlayVideos, write_overlay_meshes
from expose_cli.inference.render import render_views
from expose_cli.inference.summary import Summary, unit_record
from expose_cli.inference.units import Unit, sequence_folder
from expose_cli.inference.video import VideoTracks, person_params, write_frame_persons
from expose_cli.io.images import write_image
from expose_cli.models import Prediction
from expose_cli.utils.atomic import write_json_atomic


def person_arrays(pred, axis_angle: dict, i: int, box, crop, image_size, options: InferOptions, faces) -> dict:
    """Everything saved for one person (numpy), with units in the names' docs (docs/infer.md);
    ``axis_angle`` is the batch's ``pred.axis_angle()``."""
    out = {}
    for name, rot in pred.rotations.items():
        out[f"{name}_rotmat"] = rot[i].cpu().numpy()
    for name, aa in axis_angle.items():
        out[f"{name}_aa"] = aa[i].cpu().numpy()
    out["betas"] = pred.betas[i].cpu().numpy()
    if pred.expression is not None:
        out["expression"] = pred.expression[i].cpu().numpy()
    cam = pred.camera[i].cpu().numpy()
    out["camera_weak_perspective"] = cam
    transl = crop_camera_to_full_translation(pred.camera[i:i + 1].cpu().double(), crop.center[None],
                                             np.array([crop.box_size]), np.array([image_size]), options.focal_length)
    out["camera_translation"] = transl[0].numpy().astype(np.float32)
    out["focal_length"] = np.float32(options.focal_length)
    out["image_size"] = np.array(image_size, dtype=np.int32)  # height, width
    out["bbox_xyxy"] = np.array(box[:4], dtype=np.float32)
    out["bbox_score"] = np.float32(box[4])
    out["keypoints2d"] = pred.keypoints2d[i].cpu().numpy()
    out["joints3d"] = pred.joints[i].cpu().numpy()
    if pred.joints_j14 is not None:
        out["joints3d_lsp14"] = pred.joints_j14[i].cpu().numpy()
    verts = pred.vertices[i].cpu().numpy()
    out["vertices"] = verts
    out["vertices_camera"] = verts + out["camera_translation"][None]
    out["faces"] = faces
    return out


def _write_person(folder: Path, index: int, arrays: dict, options: InferOptions) -> list[str]:
    return export.write_person(folder / f"person_{index:02d}", arrays, options.formats, options.camera_space)


@dataclass
class Writers:
    """Everything a run writes under ``options.out_dir``; each unit's record goes to ``summary``."""

    options: InferOptions
    faces: np.ndarray  # [F, 3] of the body model
    summary: Summary
    body_model: object = None  # SMPL-X layer for motion files (body and full model), else None
    tracks: VideoTracks | None = None
    seen: dict[Path, int] = field(default_factory=dict)  # frames of each tracked sequence so far
    overlay_videos: OverlayVideos = field(default_factory=OverlayVideos)  # each video's overlay.mp4, as it comes

    def person(self, queued: Queued, pred: Prediction, axis_angle: dict, row: int) -> PersonFiles:
        """One person's files (``options.formats``); touches nothing shared (it runs in a pool)."""
        unit, t0 = queued.unit, time.perf_counter()
        out = PersonFiles()
        try:
            out.arrays = person_arrays(pred, axis_angle, row, unit.boxes[queued.person], queued.crop, unit.image.shape[:2],
                                        self.options, self.faces)
            out.files = _write_person(unit.out_dir, queued.person, out.arrays, self.options)
        except Exception as exc:  # noqa: BLE001
            out.arrays, out.error = None, f"person {queued.person}: {message(exc)}"
        out.seconds = time.perf_counter() - t0
        return out

    def finish(self, unit: Unit) -> dict:
        """A unit whose persons went through the model: their files (waited for, in person order)
        put on the unit, then :meth:`unit`."""
        for future in unit.pending:
            out = future.result()
            unit.files += out.files
            if out.arrays is not None:
                unit.results.append(out.arrays)
            unit.error = unit.error or out.error
            unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + out.seconds
        unit.pending = []
        return self.unit(unit)

    def unit(self, unit: Unit) -> dict:
        """A finished unit: its overlay (``--render``), its record (also as ``result.json`` when it did
        not fail), added to the summary. The image is released. A unit done in an earlier run: its
        record, as it was."""
        if unit.record is not None:
            return self._earlier(unit)
        t0 = time.perf_counter()
        if self.options.keypoints is not None:
            _save_keypoints(unit, self.options.keypoints)
        try:
            track_ids = self._track(unit)
        except Exception as exc:  # noqa: BLE001 - without result.json a resumed run does the unit again
            track_ids, unit.error = None, f"writing tracking.npz failed: {message(exc)}"
        if self.options.render and unit.image is not None and (unit.results or unit.frame is not None):
            try:  # video frames always get one (the plain frame without persons): the overlay video has them all
                self._overlay(unit, track_ids)
            except Exception as exc:  # noqa: BLE001
                unit.error = unit.error or f"rendering failed: {message(exc)}"
        unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t0
        record = unit_record(unit)
        if track_ids is not None:
            record["track_ids"] = track_ids
        if unit.error is None:
            try:
                write_json_atomic(unit.out_dir / "result.json", record)
            except Exception as exc:  # noqa: BLE001
                record["error"] = f"writing result.json failed: {message(exc)}"
        unit.image = None
        self.summary.add(record)
        return record

    def _earlier(self, unit: Unit) -> dict:
        """A unit done in an earlier run: its persons go through the tracker again (so the ids of
        the frames after it are those of an uninterrupted run), a video frame's overlay drawn again
        (from its ``overlay.npz``, ``unit.drawn``) into the video's."""
        track_ids = self._track(unit)
        if track_ids is not None and track_ids != unit.record.get("track_ids"):
            unit.record.setdefault("warnings", []).append(
                f"track ids {track_ids} differ from the earlier run's {unit.record.get('track_ids')} "
                "(options changed?); run again without --resume into a new --out")
        if self.options.render and unit.video_dir is not None and unit.image is not None:
            try:
                self._add_video_frame(unit, self._draw(unit.image, *(unit.drawn or ([], [])), track_ids))
            except Exception as exc:  # noqa: BLE001
                self.overlay_videos.fail(unit.video_dir, f"frame {unit.frame}: {message(exc)}")
        unit.image = None
        self.summary.add(unit.record)
        return unit.record

    def _track(self, unit: Unit) -> list[int] | None:
        """Track ids of a video frame's (or tracked image sequence's) persons, else ``None``; a frame
        run now keeps its persons' tracked parameters in its ``tracking.npz``, one done in an earlier
        run gives them from there (``unit.tracked``)."""
        folder = sequence_folder(unit, self.options) if self.tracks is not None else None
        if folder is None:
            return None
        index = self.seen.get(folder, 0)  # images of a sequence are numbered as they come
        self.seen[folder] = index + 1
        earlier = unit.record is not None
        if not earlier and unit.error is not None:
            return None
        persons = unit.tracked if earlier else [person_params(r) for r in unit.results]
        if not persons:
            return None
        fps = self.summary.videos.get(folder, {}).get("fps", self.options.sequence_fps)
        ids = self.tracks.add(folder, unit.frame if unit.frame is not None else index, fps, persons)
        if not earlier:
            write_frame_persons(unit.out_dir, persons)
        return ids

    def _overlay(self, unit: Unit, track_ids: list[int] | None = None) -> None:
        """The unit's overlay: an image's as ``overlay.png``; a video frame's into the video's
        ``overlay.mp4``, what it is drawn from in its ``overlay.npz`` (for ``--resume``)."""
        vertices, boxes = [r["vertices_camera"] for r in unit.results], [r["bbox_xyxy"] for r in unit.results]
        overlay = self._draw(unit.image, vertices, boxes, track_ids)
        if unit.video_dir is not None:
            if vertices:
                write_overlay_meshes(unit.out_dir, vertices, boxes)
            self._add_video_frame(unit, overlay)
            return
        unit.files.append(str(write_image(unit.out_dir / "overlay.png", overlay)))

    def _draw(self, image: np.ndarray, vertices: list, boxes: list, track_ids: list[int] | None) -> np.ndarray:
        """The overlay (RGB) of persons ``vertices`` (camera frame, m) in boxes ``boxes`` (px) over
        ``image`` (RGB), with ``options.views``; labelled with the track ids when there are some."""
        meshes = [(v, self.faces) for v in vertices]
        labels = None if track_ids is None else [(f"#{t}", b) for t, b in zip(track_ids, boxes, strict=True)]
        return (render_views(image, meshes, self.options.focal_length, self.options.views,
                             colour_ids=track_ids, labels=labels)
                if meshes or self.options.views else image)  # a video's frames: all the same width

    def _add_video_frame(self, unit: Unit, overlay: np.ndarray) -> None:
        """A video frame's overlay (RGB) into its video's ``overlay.mp4``."""
        fps = self.summary.videos.get(unit.video_dir, {}).get("fps", 25.0)
        self.overlay_videos.add(unit.video_dir, unit.frame, fps, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))

    def finish_tracks(self) -> None:
        """Each tracked video's ``tracks.json`` and per-track files; a failure is the video's error."""
        for folder in list(self.tracks.videos if self.tracks else ()):
            video = self.summary.videos.setdefault(folder, {"input": str(folder), "fps": self.options.sequence_fps})
            try:
                record = self.tracks.finish(folder, self.body_model)
                video["tracks"] = len(record["tracks"])
                video["tracks_file"] = str(folder / "tracks.json")
            except Exception as exc:  # noqa: BLE001
                video["error"] = f"tracks failed: {message(exc)}"

    def videos(self) -> None:
        """Each video's frame overlays as ``overlay.mp4`` in its folder; a failure is the video's error."""
        for folder in self.overlay_videos.folders:
            video = self.summary.videos.setdefault(folder, {})
            try:
                video["overlay"] = str(self.overlay_videos.finish(folder))
            except Exception as exc:  # noqa: BLE001
                video["error"] = f"overlay video failed: {message(exc)}"


@dataclass
class PersonFiles:
    """What writing one person gave: its files, its arrays (``None`` when it failed), the error."""

    files: list = field(default_factory=list)
    arrays: dict | None = None
    error: str | None = None
    seconds: float = 0.0


def _call(executor: ThreadPoolExecutor | None, fn, *args) -> Future:
    """``fn(*args)`` in ``executor``, or now in this thread when there is none; a future either way."""
    if executor is not None:
        return executor.submit(fn, *args)
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - given to whoever waits, as a pool would
        future.set_exception(exc)
    return future


class WritePool:
    """The writers while the model runs: person files in ``threads`` threads (numpy, zlib, file
    writes: they release the GIL), each unit finished (:meth:`Writers.finish`) in input order by one
    more thread; at most ``limit`` units wait, so memory stays flat. ``threads = 0``: all in the
    calling thread. Leaving the ``with`` block waits for everything submitted, also on an error or
    Ctrl-C in the model's thread, so no work that went through the model is lost. When finishing a
    unit raises (a bug, or the ``on_unit`` callback), no later unit is finished (their files may be
    written; without ``result.json`` a resumed run does them again) and the error reaches the
    model's thread at its next hand-over, or when the block ends."""

    def __init__(self, writers: Writers, threads: int, limit: int) -> None:
        self.writers, self.limit = writers, limit
        self.files = ThreadPoolExecutor(threads, "expose-write") if threads > 0 else None
        self.finisher = ThreadPoolExecutor(1, "expose-finish") if threads > 0 else None
        self.waiting: deque[Future] = deque()
        self.stopped = threading.Event()

    def person(self, queued: Queued, pred: Prediction, axis_angle: dict, row: int, model_s: float) -> None:
        unit = queued.unit
        unit.timings["model_s"] = unit.timings.get("model_s", 0.0) + model_s
        unit.pending.append(_call(self.files, self.writers.person, queued, pred, axis_angle, row))
        unit.processed += 1

    def unit(self, unit: Unit) -> None:
        self.waiting.append(_call(self.finisher, self._finish, unit))
        while len(self.waiting) > self.limit or (self.waiting and self.waiting[0].done()):
            self.waiting.popleft().result()  # a writer's own failure is on its unit; this raises bugs only

    def _finish(self, unit: Unit) -> dict | None:
        if self.stopped.is_set():
            return None
        try:
            return self.writers.finish(unit)
        except BaseException:
            self.stopped.set()
            raise

    def __enter__(self) -> WritePool:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            while self.waiting:
                future = self.waiting.popleft()
                if exc_info[0] is None:
                    future.result()
                else:
                    future.exception()  # wait; the error in flight is the one to report
        finally:
            for executor in (self.finisher, self.files):
                if executor is not None:
                    executor.shutdown(wait=True)


def _save_keypoints(unit: Unit, network: Callable[[np.ndarray, list], np.ndarray]) -> None:
    """``keypoints.json`` beside the unit's person files (``--save-keypoints``, docs/keypoints.md);
    a failure is the unit's error."""
    if unit.image is None or not unit.boxes or unit.error is not None:
        return
    try:
        path = save_keypoints(unit.out_dir / "keypoints.json", network, unit.image, unit.boxes,
                              image=str(unit.item.path), frame=unit.frame)
        unit.files.append(str(path))
    except Exception as exc:  # noqa: BLE001
        unit.error = f"keypoints failed: {message(exc)}"


