"""The `expose infer` pipeline: read -> boxes -> crops -> batched model -> files -> overlays.

Images are decoded, their persons found and cropped ahead of the model, in worker processes
(``InferOptions.workers``; 0: a thread of this process), in input order. Persons are batched across
inputs. Person files are written by a pool of threads while the model runs on the next batch; units
are finished (tracks, overlay, ``result.json``, summary) in input order by one more thread.
Each input gets a folder under ``out`` (video frames a sub-folder each); a unit's ``result.json`` is
written last, so ``skip_existing`` resumes an interrupted run exactly. A failure in one input
(decoding, boxes, the model, writing) is recorded for that input and the others go on;
``summary.json`` is rewritten (atomically) as inputs complete and at the end, also when the run
stops early.

The parts, in the order a unit goes through them (each testable alone, tests/test_infer_parts.py):
inputs (:func:`_units_to_run`, :func:`_read_ahead`, :mod:`expose_cli.inference.loading`) -> batches
(:class:`Batches`) -> forward (:func:`forward`, :func:`predict_batch`) -> writers (:class:`Writers`,
:class:`WritePool`) -> summary (:class:`Summary`); :func:`run_inference` joins them.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.geometry.cameras import crop_camera_to_full_translation
from expose_cli.inference import boxes as box_utils
from expose_cli.inference import export, loading
from expose_cli.inference.backends import runtime_info
from expose_cli.inference.distributed import summary_name
from expose_cli.inference.inputs import InputItem, read_video_frames, video_fps
from expose_cli.inference.keypoints_net import save_keypoints
from expose_cli.inference.loading import CropSpec, Loaded, load, message, worker_pool
from expose_cli.inference.render import render_views
from expose_cli.inference.video import (
    TrackOptions,
    VideoTracks,
    person_params,
    read_frame_persons,
    write_frame_persons,
)
from expose_cli.models import PersonCrop, Prediction, Predictor, collate
from expose_cli.utils.atomic import atomic_path, write_json_atomic
from expose_cli.utils.stale import remove_stale_temps


@dataclass
class InferOptions:
    out_dir: Path
    formats: tuple[str, ...] = ("obj", "npz")
    camera_space: bool = False
    focal_length: float = 5000.0
    render: bool = False
    views: tuple[float, ...] = ()  # --render: degrees about each person's vertical axis, panels beside the overlay
    boxes: dict | None = None
    detector: str = "hog"  # hog | full-image | onnx (then ``detect`` runs the ONNX model)
    detect: Callable[[np.ndarray], list[list[float]]] | None = None  # boxes of an RGB image (px)
    min_score: float = 0.0
    max_people: int | None = None
    batch_size: int = 8
    skip_existing: bool = False
    every: int = 1
    max_frames: int | None = None
    box_scale: float = 1.25
    precision: str = "fp32"
    tracks: TrackOptions | None = None  # videos: track ids, smoothing, motion files
    track_images: bool = False  # also track each input folder's images as one sequence
    sequence_fps: float = 30.0  # frame rate of such image sequences
    shard: tuple[int, int] = (0, 1)  # (rank, processes): this one takes inputs rank, rank + processes, ...
    # processes decoding, detecting and cropping ahead of the model (0: a thread; None:
    # loading.workers_for, half the CPUs or 0 for images that fit in one batch). They are started by
    # multiprocessing: a script calling run_inference with workers needs ``if __name__ == "__main__":``
    workers: int | None = 0
    write_threads: int = 2  # threads writing person files (0: written by the model's thread)
    keypoints: Callable[[np.ndarray, list], np.ndarray] | None = None  # --save-keypoints: boxes -> [P, 133, 3]


@dataclass
class Unit:
    """One image (or video frame) to process."""

    item: InputItem
    out_dir: Path
    image: np.ndarray | None = None
    error: str | None = None
    boxes: list = field(default_factory=list)
    results: list = field(default_factory=list)
    files: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    frame: int | None = None
    warnings: list = field(default_factory=list)
    video_dir: Path | None = None  # the video's folder (frames only)
    processed: int = 0  # persons through the model, or failed
    crops: list = field(default_factory=list)  # (person, PersonCrop) from the inputs stage
    pending: list = field(default_factory=list)  # futures of its person files, in person order
    record: dict | None = None  # a unit done in an earlier run (``skip_existing``): its record
    tracked: list | None = None  # such a unit's persons as its tracks use them (from its tracking.npz)


NO_PERSON = box_utils.NO_PERSON




def _to_float32(x, device=None):
    """Floating tensors (also inside dicts, lists, tuples) cast to float32 (and moved to ``device``
    when given); the rest as is."""
    if torch.is_tensor(x):
        x = x.float() if x.is_floating_point() else x
        return x if device is None else x.to(device)
    if isinstance(x, dict):
        return {k: _to_float32(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float32(v, device) for v in x)
    return x


def prediction_to_float32(pred, device=None):
    """Every floating tensor of a Prediction as float32 (what autocast left in bf16/fp16), in place;
    with ``device`` every tensor moved there too (a GPU batch to the CPU once, for the writers)."""
    for f in dataclasses.fields(pred):
        if f.name != "training":
            setattr(pred, f.name, _to_float32(getattr(pred, f.name), device))
    return pred


def _units(items: list[InputItem], options: InferOptions, summary: Summary | None = None) -> Iterator[Unit]:
    """Images and video frames in order (a video's frames decoded here, one after the other);
    ``summary`` receives each video's folder -> input and fps."""
    used: dict[str, int] = {}
    rank, world = options.shard
    for position, item in enumerate(items):
        name = item.name
        used[name] = used.get(name, 0) + 1
        folder = options.out_dir / (name if used[name] == 1 else f"{name}_{used[name]}")
        if position % world != rank:  # another process's input (its folder named as in one process)
            continue
        if item.kind == "image":
            yield Unit(item, folder)
        else:
            if summary is not None:
                summary.add_video(folder, {"input": str(item.path), "fps": video_fps(item.path) / options.every})
            try:
                for index, frame in read_video_frames(item.path, options.every, options.max_frames):
                    yield Unit(item, folder / f"frame_{index:06d}", image=frame, frame=index, video_dir=folder)
            except Exception as exc:  # noqa: BLE001 - a bad video is reported, the rest go on
                yield Unit(item, folder, error=message(exc))


def _person_arrays(pred, axis_angle: dict, i: int, box, crop, image_size, options: InferOptions, faces) -> dict:
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


def _read_result(path: Path) -> dict | None:
    """A unit's ``result.json`` from an earlier run, or ``None`` when absent or unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("error") in (None, NO_PERSON) else None


# -- inputs: units to run (skipping those done before), decoded ahead of the model -------------------

def _earlier_record(unit: Unit, options: InferOptions) -> dict | None:
    """With ``skip_existing``: the unit's record from an earlier run, marked ``skipped``; else ``None``.
    A tracked frame with persons also needs its ``tracking.npz`` (put on ``unit.tracked``), which
    the tracks are rebuilt from; without it the frame is run again."""
    if not options.skip_existing:
        return None
    record = _read_result(unit.out_dir / "result.json")
    if record is None:
        return None
    if options.tracks is not None and sequence_folder(unit, options) is not None and record.get("persons"):
        unit.tracked = read_frame_persons(unit.out_dir, int(record["persons"]))
        if unit.tracked is None:
            return None
    record.update(input=str(unit.item.path), frame=unit.frame, output=str(unit.out_dir), skipped=True)
    return record


def _units_to_run(items: list[InputItem], options: InferOptions, summary: Summary) -> Iterator[Unit]:
    """The units of ``items`` in order; one done in an earlier run carries its record (``unit.record``)
    and goes through the pipeline without work, so the summary keeps the input order."""
    for unit in _units(items, options, summary):
        unit.record = _earlier_record(unit, options)
        yield unit


def _crop_spec(predictor: Predictor, options: InferOptions) -> CropSpec:
    """How this run's persons are found and cropped (an ONNX detector: found in this process)."""
    return CropSpec(img_res=predictor.img_res, box_scale=options.box_scale,
                    keep_full_image=predictor.kind == "expose",
                    detector="onnx" if options.detect is not None else options.detector,
                    min_score=options.min_score, max_people=options.max_people)


def _read_ahead(units: Iterable[Unit], options: InferOptions, spec: CropSpec, ahead: int = 2) -> Iterator[Unit]:
    """``units`` decoded, their persons found and cropped (:func:`loading.load`), ``ahead`` units
    ahead of the consumer, in order: in ``options.workers`` processes, or (0) in a thread."""
    pool = worker_pool(options.workers) if options.workers > 0 else None
    local = ThreadPoolExecutor(max_workers=1)  # in order: waits for the workers, runs what must run here
    futures: deque[Future] = deque()
    try:
        for unit in units:
            futures.append(_submit(unit, options, spec, pool, local))
            if len(futures) > ahead:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()
    finally:  # also when the consumer stops early (an error, Ctrl-C): queued work is dropped
        for future in futures:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        local.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.shutdown(wait=True)


def _done(unit: Unit) -> Future:
    future: Future = Future()
    future.set_result(unit)
    return future


def _submit(unit: Unit, options: InferOptions, spec: CropSpec, pool, local: ThreadPoolExecutor) -> Future:
    """A future of ``unit`` loaded: boxes looked up in the boxes file here, the rest in ``pool``
    (when there is one) and ``local``."""
    if unit.record is not None or unit.error is not None:
        return _done(unit)
    boxes = None
    if options.boxes is not None:
        try:
            boxes = box_utils.boxes_for(options.boxes, unit.item.path, unit.item.root)
        except Exception as exc:  # noqa: BLE001
            unit.error = f"finding persons failed: {message(exc)}"
            return _done(unit)
    path = unit.item.path if unit.image is None else None
    remote = None
    if pool is not None:
        try:
            remote = pool.submit(load, path, unit.image, boxes, spec)
        except BrokenProcessPool:  # a worker died earlier: the rest is loaded here
            remote = None
    return local.submit(_finish_load, unit, remote, boxes, spec, options.detect)


def _finish_load(unit: Unit, remote: Future | None, boxes: list | None, spec: CropSpec, detect) -> Unit:
    """The worker's result (or the work itself, without a worker) put on ``unit``; boxes of an
    ONNX detector found here."""
    if remote is None:
        loaded = load(unit.item.path if unit.image is None else None, unit.image, boxes, spec, detect)
    else:
        try:
            loaded = remote.result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): loaded here instead
            loaded = load(unit.item.path if unit.image is None else None, unit.image, boxes, spec, detect)
        except Exception as exc:  # noqa: BLE001
            loaded = Loaded(error=f"decoding worker failed: {message(exc)}")
        if loaded.error is None and loaded.boxes is None:  # the main process's detector
            decode_s = loaded.timings.get("decode_s", 0.0)
            loaded = load(None, loaded.image, None, spec, detect)
            loaded.timings["decode_s"] = decode_s
    if unit.image is None:
        unit.image = loaded.image
    unit.error, unit.warnings = loaded.error, unit.warnings + loaded.warnings
    unit.boxes = loaded.boxes or []  # a failed decode or detection: none (a failed crop keeps its box)
    unit.crops, unit.processed = loaded.crops, unit.processed + loaded.failed_crops
    unit.timings.update(loaded.timings)
    return unit


# -- batches: persons queued across inputs ---------------------------------------------------------

@dataclass
class Queued:
    """One person of a unit, cropped for the network."""

    unit: Unit
    person: int  # index into unit.boxes
    crop: PersonCrop


def queued_persons(unit: Unit) -> list[Queued]:
    """The unit's cropped persons (from the inputs stage), to be batched; the crops leave the unit."""
    queued = [Queued(unit, person, crop) for person, crop in unit.crops]
    unit.crops = []
    return queued


class Batches:
    """Persons queued across units and handed out ``size`` at a time; units leave (:meth:`done`)
    in input order, once every one of their persons went through the model.

    The model's results depend on the batch size in their last bits, not on the other persons in
    the batch. So that a resumed run gives every person the bits of an uninterrupted run, the
    persons of a unit done before keep their places (``None``): every batch has the size it had in
    one uninterrupted run, the empty places filled by :func:`predict_batch`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: list[Queued | None] = []
        self.open: deque[Unit] = deque()

    def add(self, unit: Unit, persons: list[Queued], done_before: int = 0) -> list[list[Queued | None]]:
        """Queue a unit's persons (``done_before``: its persons run in an earlier run, places kept);
        returns the batches that are now full."""
        self.open.append(unit)
        self.queue += persons + [None] * done_before
        full = []
        while len(self.queue) >= self.size:
            full.append(self.queue[: self.size])
            self.queue = self.queue[self.size:]
        return full

    def rest(self) -> list[Queued | None]:
        """The last, partly filled batch (possibly empty)."""
        rest, self.queue = self.queue, []
        return rest

    def done(self) -> Iterator[Unit]:
        """The oldest units whose persons are all processed, in input order."""
        while self.open and self.open[0].processed >= len(self.open[0].boxes):
            yield self.open.popleft()


# -- forward: the model on a batch, per-input failures isolated ------------------------------------

def forward(predictor: Predictor, crops: list[PersonCrop], precision: str = "fp32") -> Prediction:
    """The model on a batch of crops, under autocast for ``bf16`` / ``fp16``; the prediction in float32,
    on the CPU. On a GPU the batch goes through pinned memory (an asynchronous copy) and the
    prediction comes back in one pass, not one copy per person and field."""
    device = getattr(predictor, "device", torch.device("cpu"))
    batch = collate(crops, device)
    to_cpu = None if device.type == "cpu" else torch.device("cpu")
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if autocast_dtype is None:
        return prediction_to_float32(predictor(batch), to_cpu)
    with torch.autocast(device.type, dtype=autocast_dtype):
        pred = predictor(batch)
    return prediction_to_float32(pred, to_cpu)  # reduced precision: joints, cameras... back to float32 too


def predict_batch(batch: list[Queued | None], model: Callable[[list[PersonCrop]], Prediction]
                  ) -> Iterator[tuple[Queued, Prediction, int, float]]:
    """``(person, prediction, its row, model seconds per person)`` for every person the model ran on.

    An empty place (``None``: a person done in an earlier run, :class:`Batches`) is filled with a
    copy of the first person's crop, its row dropped. When the batch fails, each unit's persons are
    run on their own; the persons of a unit that fails alone are counted as processed, with the
    error on the unit."""
    persons = [q for q in batch if q is not None]
    if not persons:
        return
    t0 = time.perf_counter()
    try:
        pred = model([(q or persons[0]).crop for q in batch])
    except Exception as exc:  # noqa: BLE001
        units = list({id(q.unit): q.unit for q in persons}.values())
        if len(units) > 1:  # find the input that fails: each one on its own
            for unit in units:
                yield from predict_batch([q for q in persons if q.unit is unit], model)
            return
        for q in persons:
            q.unit.error = q.unit.error or f"model failed: {message(exc)}"
            q.unit.processed += 1
        return
    per_person = (time.perf_counter() - t0) / len(persons)
    for row, q in enumerate(batch):
        if q is not None:
            yield q, pred, row, per_person


# -- writers: person files, a unit's overlay and result.json, videos' overlay.mp4 ------------------

@dataclass
class Writers:
    """Everything a run writes under ``options.out_dir``; each unit's record goes to ``summary``."""

    options: InferOptions
    faces: np.ndarray  # [F, 3] of the body model
    summary: Summary
    body_model: object = None  # SMPL-X layer for motion files (body and full model), else None
    tracks: VideoTracks | None = None
    seen: dict[Path, int] = field(default_factory=dict)  # frames of each tracked sequence so far

    def person(self, queued: Queued, pred: Prediction, axis_angle: dict, row: int) -> PersonFiles:
        """One person's files (``options.formats``); touches nothing shared (it runs in a pool)."""
        unit, t0 = queued.unit, time.perf_counter()
        out = PersonFiles()
        try:
            out.arrays = _person_arrays(pred, axis_angle, row, unit.boxes[queued.person], queued.crop, unit.image.shape[:2],
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
                self.summary.add_overlay(unit, self._overlay(unit, track_ids))
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
        the frames after it are those of an uninterrupted run), its overlay into the video's."""
        track_ids = self._track(unit)
        if track_ids is not None and track_ids != unit.record.get("track_ids"):
            unit.record.setdefault("warnings", []).append(
                f"track ids {track_ids} differ from the earlier run's {unit.record.get('track_ids')} "
                "(options changed?); run again without --resume into a new --out")
        overlay = unit.out_dir / "overlay.png"
        if overlay.is_file():
            self.summary.add_overlay(unit, overlay)
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

    def _overlay(self, unit: Unit, track_ids: list[int] | None = None) -> Path:
        meshes = [(r["vertices_camera"], self.faces) for r in unit.results]
        labels = None
        if track_ids is not None:
            labels = [(f"#{t}", r["bbox_xyxy"]) for t, r in zip(track_ids, unit.results, strict=True)]
        overlay = (render_views(unit.image, meshes, self.options.focal_length, self.options.views,
                                colour_ids=track_ids, labels=labels)
                   if meshes or self.options.views else unit.image)  # a video's frames: all the same width
        path = unit.out_dir / "overlay.png"
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {path}")
        unit.files.append(str(path))
        return path

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
        for folder, frames in self.summary.overlays.items():
            video = self.summary.videos.setdefault(folder, {})
            path = folder / "overlay.mp4"
            try:
                _write_video(path, sorted(frames), video.get("fps", 25.0))
                video["overlay"] = str(path)
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


def sequence_folder(unit: Unit, options: InferOptions) -> Path | None:
    """The folder a frame's tracks go to: its video's, or with ``track_images`` its input folder's
    (``OUT/<folder>_tracks``); ``None`` for an image that is not part of a sequence."""
    if unit.video_dir is not None:
        return unit.video_dir
    if options.track_images and unit.item.root is not None:
        return options.out_dir / f"{unit.item.root.name}_tracks"
    return None


def unit_record(unit: Unit) -> dict:
    """A unit's line in the summary (and its ``result.json``); no boxes and no error: ``NO_PERSON``."""
    record = {"input": str(unit.item.path), "frame": unit.frame, "output": str(unit.out_dir),
              "persons": len(unit.results), "files": unit.files, "timings": unit.timings, "error": unit.error}
    if unit.warnings:
        record["warnings"] = unit.warnings
    if unit.error is None and not unit.boxes:
        record["error"] = NO_PERSON
    return record


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


# -- summary ---------------------------------------------------------------------------------------

@dataclass
class Summary:
    """The run's ``summary.json``: every unit's record, the videos, whether the run completed.

    :meth:`add` rewrites the file (atomically) at most every ``interval_s`` seconds and passes the
    record to ``on_unit``; :meth:`write` with ``force`` rewrites it now."""

    path: Path
    interval_s: float = 1.0
    on_unit: Callable[[dict], None] | None = None
    records: list[dict] = field(default_factory=list)
    videos: dict[Path, dict] = field(default_factory=dict)  # video folder -> input, fps, overlay / error
    overlays: dict[Path, list[Path]] = field(default_factory=dict)  # video folder -> its frames' overlays
    complete: bool = False
    runtime: dict | None = None  # what ran the backbones (backends.runtime_info)
    last_write: float = float("-inf")
    lock: threading.RLock = field(default_factory=threading.RLock)  # the inputs stage adds videos

    def as_dict(self) -> dict:
        with self.lock:
            failed = sum(1 for r in self.records if r.get("error") and r["error"] != NO_PERSON)
            failed += sum(1 for v in self.videos.values() if v.get("error"))
            out = {"inputs": list(self.records), "failed": failed, "complete": self.complete}
            if self.runtime is not None:
                out["runtime"] = self.runtime
            if self.videos:
                out["videos"] = [dict(v, output=str(folder)) for folder, v in self.videos.items()]
        return out

    def write(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last_write >= self.interval_s:
            write_json_atomic(self.path, self.as_dict())
            self.last_write = now

    def add_video(self, folder: Path, video: dict) -> None:
        with self.lock:
            self.videos[folder] = video

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.write()
        if self.on_unit:
            self.on_unit(record)

    def add_overlay(self, unit: Unit, path: Path) -> None:
        """Remember a video frame's overlay PNG for the video's ``overlay.mp4`` (images: nothing)."""
        if unit.video_dir is not None:
            self.overlays.setdefault(unit.video_dir, []).append(path)


# -- the run ---------------------------------------------------------------------------------------

def run_inference(items: list[InputItem], predictor: Predictor, options: InferOptions,
                  on_unit: Callable[[dict], None] | None = None, summary_interval_s: float = 1.0) -> dict:
    """Run the model on every input; returns (and writes) the summary.

    ``on_unit`` receives each input's (or video frame's) record as it completes, skipped ones too.
    ``summary.json`` is rewritten at most every ``summary_interval_s`` while running, and at the
    end, also when the run stops on an exception (``"complete": false`` then).
    """
    options.out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(options.out_dir, recursive=True)  # a killed run's; a running one's are kept
    if options.workers is None:
        options = dataclasses.replace(options, workers=loading.workers_for(items, options.batch_size))
    summary = Summary(options.out_dir / summary_name(options.shard), summary_interval_s, on_unit,
                      runtime=runtime_info(predictor))
    smplx_kind = predictor.kind in ("body", "expose")
    writers = Writers(options, np.asarray(predictor.body_model.faces, dtype=np.int64), summary,
                      predictor.body_model if smplx_kind else None,
                      VideoTracks(options.tracks) if options.tracks is not None else None)
    try:
        _run(items, predictor, options, writers)
        writers.finish_tracks()
        writers.videos()
        summary.complete = True
    finally:
        summary.write(force=True)
    return summary.as_dict()


def _run(items: list[InputItem], predictor: Predictor, options: InferOptions, writers: Writers) -> None:
    """inputs -> crops -> batches -> forward -> person files; units finish in input order."""
    batches = Batches(options.batch_size)
    model = partial(forward, predictor, precision=options.precision)
    ahead = options.batch_size + 2 * max(options.workers, 1)  # a batch ready when the model is free
    units = _read_ahead(_units_to_run(items, options, writers.summary), options, _crop_spec(predictor, options), ahead)
    with WritePool(writers, options.write_threads, limit=2 * options.batch_size + 2) as pool, closing(units):
        for unit in units:
            done_before = int(unit.record.get("persons") or 0) if unit.record is not None else 0
            for batch in batches.add(unit, queued_persons(unit), done_before):
                _run_batch(batch, model, batches, pool)
            for done in batches.done():  # units without persons (or failed) finish now, unless queued behind others
                pool.unit(done)
        _run_batch(batches.rest(), model, batches, pool)


def _run_batch(batch: list[Queued | None], model: Callable[[list[PersonCrop]], Prediction], batches: Batches,
               pool: WritePool) -> None:
    """A batch through the model, its persons' files handed to the writers; then every unit that is
    done finishes."""
    last, axis_angle = None, {}
    for queued, pred, row, model_s in predict_batch(batch, model):  # a prediction's rows come together
        if pred is not last:  # its rotations as axis-angle once per prediction, not once per person
            last, axis_angle = pred, pred.axis_angle()
        pool.person(queued, pred, axis_angle, row, model_s)
    for unit in batches.done():
        pool.unit(unit)


def _write_video(path: Path, frames: list[Path], fps: float) -> None:
    """The overlay PNGs of a video's frames as an MP4 (mp4v), written atomically."""
    first = cv2.imread(str(frames[0]))
    if first is None:
        raise OSError(f"cannot read {frames[0]}")
    h, w = first.shape[:2]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"cannot open a video writer for {path}")
        for f in frames:
            img = cv2.imread(str(f))
            if img is not None and img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h))
            if img is not None:
                writer.write(img)
        writer.release()
