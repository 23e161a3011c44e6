"""The `expose infer` pipeline: read -> boxes -> crops -> batched model -> files -> overlays.

Images are decoded in a background thread while the model runs. Persons are batched across inputs.
Each input gets a folder under ``out`` (video frames a sub-folder each); a unit's ``result.json`` is
written last, so ``skip_existing`` resumes an interrupted run exactly. A failure in one input
(decoding, boxes, the model, writing) is recorded for that input and the others go on;
``summary.json`` is rewritten (atomically) as inputs complete and at the end, also when the run
stops early.

The parts, in the order a unit goes through them (each testable alone, tests/test_infer_parts.py):
inputs (:func:`_units_to_run`, :func:`_read_ahead`) -> batches (:func:`person_crops`,
:class:`Batches`) -> forward (:func:`forward`, :func:`predict_batch`) -> writers (:class:`Writers`)
-> summary (:class:`Summary`); :func:`run_inference` joins them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.errors import ExposeError
from expose_cli.geometry.cameras import crop_camera_to_full_translation
from expose_cli.inference import boxes as box_utils
from expose_cli.inference import export
from expose_cli.inference.distributed import summary_name
from expose_cli.inference.inputs import InputItem, read_video_frames, video_fps
from expose_cli.inference.render import render_overlay
from expose_cli.inference.video import TrackOptions, VideoTracks
from expose_cli.io.images import read_image
from expose_cli.models import PersonCrop, Prediction, Predictor, collate, crop_person
from expose_cli.utils.atomic import atomic_path, write_json_atomic


@dataclass
class InferOptions:
    out_dir: Path
    formats: tuple[str, ...] = ("obj", "npz")
    camera_space: bool = False
    focal_length: float = 5000.0
    render: bool = False
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
    processed: int = 0  # persons through the model and written, or failed


NO_PERSON = box_utils.NO_PERSON


def _message(exc: BaseException) -> str:
    """One line for an exception: an ExposeError's reason (the input is named by the caller)."""
    if isinstance(exc, ExposeError):
        return exc.reason
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _to_float32(x):
    """Floating tensors (also inside dicts, lists, tuples) cast to float32; the rest as is."""
    if torch.is_tensor(x):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, dict):
        return {k: _to_float32(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float32(v) for v in x)
    return x


def prediction_to_float32(pred):
    """Every floating tensor of a Prediction as float32 (what autocast left in bf16/fp16), in place."""
    for f in dataclasses.fields(pred):
        if f.name != "training":
            setattr(pred, f.name, _to_float32(getattr(pred, f.name)))
    return pred


def _units(items: list[InputItem], options: InferOptions, videos: dict[Path, dict] | None = None) -> Iterator[Unit]:
    """Images and video frames in order; ``videos`` receives each video's folder -> input and fps."""
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
            if videos is not None:
                videos[folder] = {"input": str(item.path), "fps": video_fps(item.path) / options.every}
            try:
                for index, frame in read_video_frames(item.path, options.every, options.max_frames):
                    yield Unit(item, folder / f"frame_{index:06d}", image=frame, frame=index, video_dir=folder)
            except Exception as exc:  # noqa: BLE001 - a bad video is reported, the rest go on
                yield Unit(item, folder, error=_message(exc))


def _load(unit: Unit, options: InferOptions) -> Unit:
    """Decode and find the persons (runs in the reader thread); any failure becomes ``unit.error``."""
    t0 = time.perf_counter()
    if unit.error is None and unit.image is None:
        try:
            unit.image = read_image(unit.item.path)
        except Exception as exc:  # noqa: BLE001
            unit.error = _message(exc)
    t1 = time.perf_counter()
    unit.timings["decode_s"] = t1 - t0
    if unit.error is None:
        try:
            unit.boxes = _find_boxes(unit, options)
        except Exception as exc:  # noqa: BLE001
            unit.error = f"finding persons failed: {_message(exc)}"
    unit.timings["detect_s"] = time.perf_counter() - t1
    return unit


def _find_boxes(unit: Unit, options: InferOptions) -> list[list[float]]:
    """Boxes from the file (an empty list there: no person) or the detector; clipped to the image,
    bad ones dropped (a warning each), ``min_score``, largest first, ``max_people``."""
    boxes = None
    if options.boxes is not None:
        boxes = box_utils.boxes_for(options.boxes, unit.item.path, unit.item.root)
    if boxes is None:
        if options.detect is not None:
            boxes = options.detect(unit.image)
        elif options.detector == "full-image":
            boxes = box_utils.full_image_box(unit.image)
        else:
            boxes = box_utils.detect_hog(unit.image)
    boxes, warnings = box_utils.validate_boxes(boxes, unit.image.shape[:2])
    unit.warnings += warnings
    boxes = [b for b in boxes if b[4] >= options.min_score]
    boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    return boxes[: options.max_people] if options.max_people else boxes


def _person_arrays(pred, i: int, box, crop, image_size, options: InferOptions, faces) -> dict:
    """Everything saved for one person (numpy), with units in the names' docs (docs/infer.md)."""
    out = {}
    for name, rot in pred.rotations.items():
        out[f"{name}_rotmat"] = rot[i].cpu().numpy()
    for name, aa in pred.axis_angle().items():
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
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"person_{index:02d}"
    verts = arrays["vertices_camera"] if options.camera_space else arrays["vertices"]
    files = []
    for fmt in options.formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "obj":
            export.write_obj(path, verts, arrays["faces"])
        elif fmt == "ply":
            export.write_ply(path, verts, arrays["faces"])
        elif fmt == "glb":  # rotated into glTF's axes (+Y up, +Z toward the viewer)
            export.write_glb(path, verts, arrays["faces"])
        elif fmt == "npz":
            export.write_npz(path, arrays)
        elif fmt == "json":
            export.write_json(path, {k: v for k, v in arrays.items() if k not in ("vertices", "vertices_camera", "faces")})
        files.append(str(path))
    return files


def _read_result(path: Path) -> dict | None:
    """A unit's ``result.json`` from an earlier run, or ``None`` when absent or unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("error") in (None, NO_PERSON) else None


# -- inputs: units to run (skipping those done before), decoded ahead of the model -------------------

def _earlier_record(unit: Unit, options: InferOptions) -> dict | None:
    """With ``skip_existing``: the unit's record from an earlier run, marked ``skipped``; else ``None``."""
    if not options.skip_existing:
        return None
    record = _read_result(unit.out_dir / "result.json")
    if record is not None:
        record.update(input=str(unit.item.path), frame=unit.frame, output=str(unit.out_dir), skipped=True)
    return record


def _units_to_run(items: list[InputItem], options: InferOptions, summary: Summary) -> Iterator[Unit]:
    """The units of ``items`` in order; those done in an earlier run go straight to the summary."""
    for unit in _units(items, options, summary.videos):
        record = _earlier_record(unit, options)
        if record is None:
            yield unit
            continue
        overlay = unit.out_dir / "overlay.png"
        if overlay.is_file():
            summary.add_overlay(unit, overlay)
        summary.add(record)


def _read_ahead(units: Iterable[Unit], options: InferOptions, ahead: int = 2) -> Iterator[Unit]:
    """``units`` decoded and their persons found (:func:`_load`) in a background thread, ``ahead``
    units ahead of the consumer; in order."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        futures: deque = deque()
        for unit in units:
            futures.append(reader.submit(_load, unit, options))
            if len(futures) > ahead:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()


# -- batches: persons cropped and queued across inputs ---------------------------------------------

@dataclass
class Queued:
    """One person of a unit, cropped for the network."""

    unit: Unit
    person: int  # index into unit.boxes
    crop: PersonCrop


def person_crops(unit: Unit, img_res: int, box_scale: float, keep_full_image: bool) -> list[Queued]:
    """The unit's persons cropped to ``img_res`` pixels (the model's input size). A person whose
    crop fails is counted as processed with the error on the unit; a failed unit has no persons."""
    if unit.error is not None:
        unit.boxes = []
    queued = []
    for person, box in enumerate(unit.boxes):
        x1, y1, x2, y2 = box[:4]
        try:
            crop = crop_person(unit.image, [x1, y1, x2 - x1, y2 - y1], img_res=img_res,
                               scale_factor=box_scale, keep_full_image=keep_full_image)
        except Exception as exc:  # noqa: BLE001
            unit.error = unit.error or f"person {person}: cropping failed: {_message(exc)}"
            unit.processed += 1
            continue
        queued.append(Queued(unit, person, crop))
    return queued


class Batches:
    """Persons queued across units and handed out ``size`` at a time; units leave (:meth:`done`)
    in input order, once every one of their persons went through the model."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: list[Queued] = []
        self.open: deque[Unit] = deque()

    def add(self, unit: Unit, persons: list[Queued]) -> list[list[Queued]]:
        """Queue a unit's persons; returns the batches that are now full."""
        self.open.append(unit)
        self.queue += persons
        full = []
        while len(self.queue) >= self.size:
            full.append(self.queue[: self.size])
            self.queue = self.queue[self.size:]
        return full

    def rest(self) -> list[Queued]:
        """The last, partly filled batch (possibly empty)."""
        rest, self.queue = self.queue, []
        return rest

    def done(self) -> Iterator[Unit]:
        """The oldest units whose persons are all processed, in input order."""
        while self.open and self.open[0].processed >= len(self.open[0].boxes):
            yield self.open.popleft()


# -- forward: the model on a batch, per-input failures isolated ------------------------------------

def forward(predictor: Predictor, crops: list[PersonCrop], precision: str = "fp32") -> Prediction:
    """The model on a batch of crops, under autocast for ``bf16`` / ``fp16``; the prediction in float32."""
    batch = collate(crops)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if autocast_dtype is None:
        return prediction_to_float32(predictor(batch))
    with torch.autocast(predictor.device.type, dtype=autocast_dtype):
        pred = predictor(batch)
    return prediction_to_float32(pred)  # reduced precision: joints, cameras... back to float32 too


def predict_batch(batch: list[Queued], model: Callable[[list[PersonCrop]], Prediction]
                  ) -> Iterator[tuple[Queued, Prediction, int, float]]:
    """``(person, prediction, its row, model seconds per person)`` for every person the model ran on.

    When the batch fails, each unit's persons are run on their own; the persons of a unit that fails
    alone are counted as processed, with the error on the unit."""
    if not batch:
        return
    t0 = time.perf_counter()
    try:
        pred = model([q.crop for q in batch])
    except Exception as exc:  # noqa: BLE001
        units = list({id(q.unit): q.unit for q in batch}.values())
        if len(units) > 1:  # find the input that fails: each one on its own
            for unit in units:
                yield from predict_batch([q for q in batch if q.unit is unit], model)
            return
        for q in batch:
            q.unit.error = q.unit.error or f"model failed: {_message(exc)}"
            q.unit.processed += 1
        return
    per_person = (time.perf_counter() - t0) / len(batch)
    for row, q in enumerate(batch):
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

    def person(self, queued: Queued, pred: Prediction, row: int, model_s: float) -> None:
        """One person's files (``options.formats``); a failure is recorded on its unit."""
        unit, t0 = queued.unit, time.perf_counter()
        unit.timings["model_s"] = unit.timings.get("model_s", 0.0) + model_s
        try:
            arrays = _person_arrays(pred, row, unit.boxes[queued.person], queued.crop, unit.image.shape[:2],
                                    self.options, self.faces)
            unit.files += _write_person(unit.out_dir, queued.person, arrays, self.options)
            unit.results.append(arrays)
        except Exception as exc:  # noqa: BLE001
            unit.error = unit.error or f"person {queued.person}: {_message(exc)}"
        unit.processed += 1
        unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t0

    def unit(self, unit: Unit) -> dict:
        """A finished unit: its overlay (``--render``), its record (also as ``result.json`` when it did
        not fail), added to the summary. The image is released."""
        t0 = time.perf_counter()
        track_ids = self._track(unit)
        if self.options.render and unit.image is not None and (unit.results or unit.frame is not None):
            try:  # video frames always get one (the plain frame without persons): the overlay video has them all
                self.summary.add_overlay(unit, self._overlay(unit, track_ids))
            except Exception as exc:  # noqa: BLE001
                unit.error = unit.error or f"rendering failed: {_message(exc)}"
        unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t0
        record = unit_record(unit)
        if track_ids is not None:
            record["track_ids"] = track_ids
        if unit.error is None:
            try:
                write_json_atomic(unit.out_dir / "result.json", record)
            except Exception as exc:  # noqa: BLE001
                record["error"] = f"writing result.json failed: {_message(exc)}"
        unit.image = None
        self.summary.add(record)
        return record

    def _track(self, unit: Unit) -> list[int] | None:
        """Track ids of a video frame's (or tracked image sequence's) persons, else ``None``."""
        folder = sequence_folder(unit, self.options) if self.tracks is not None else None
        if folder is None:
            return None
        index = self.seen.get(folder, 0)  # images of a sequence are numbered as they come
        self.seen[folder] = index + 1
        if not unit.results or unit.error is not None:
            return None
        fps = self.summary.videos.get(folder, {}).get("fps", self.options.sequence_fps)
        return self.tracks.add(folder, unit.frame if unit.frame is not None else index, fps, unit.results)

    def _overlay(self, unit: Unit, track_ids: list[int] | None = None) -> Path:
        meshes = [(r["vertices_camera"], self.faces) for r in unit.results]
        labels = None
        if track_ids is not None:
            labels = [(f"#{t}", r["bbox_xyxy"]) for t, r in zip(track_ids, unit.results, strict=True)]
        overlay = (render_overlay(unit.image, meshes, self.options.focal_length, colour_ids=track_ids, labels=labels)
                   if meshes else unit.image)
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
                video["error"] = f"tracks failed: {_message(exc)}"

    def videos(self) -> None:
        """Each video's frame overlays as ``overlay.mp4`` in its folder; a failure is the video's error."""
        for folder, frames in self.summary.overlays.items():
            video = self.summary.videos.setdefault(folder, {})
            path = folder / "overlay.mp4"
            try:
                _write_video(path, sorted(frames), video.get("fps", 25.0))
                video["overlay"] = str(path)
            except Exception as exc:  # noqa: BLE001
                video["error"] = f"overlay video failed: {_message(exc)}"


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
    last_write: float = float("-inf")

    def as_dict(self) -> dict:
        failed = sum(1 for r in self.records if r.get("error") and r["error"] != NO_PERSON)
        failed += sum(1 for v in self.videos.values() if v.get("error"))
        out = {"inputs": self.records, "failed": failed, "complete": self.complete}
        if self.videos:
            out["videos"] = [dict(v, output=str(folder)) for folder, v in self.videos.items()]
        return out

    def write(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last_write >= self.interval_s:
            write_json_atomic(self.path, self.as_dict())
            self.last_write = now

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
    summary = Summary(options.out_dir / summary_name(options.shard), summary_interval_s, on_unit)
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
    with closing(_read_ahead(_units_to_run(items, options, writers.summary), options)) as units:
        for unit in units:
            persons = person_crops(unit, predictor.img_res, options.box_scale, predictor.kind == "expose")
            for batch in batches.add(unit, persons):
                _run_batch(batch, model, batches, writers)
            for done in batches.done():  # units without persons (or failed) finish now, unless queued behind others
                writers.unit(done)
    _run_batch(batches.rest(), model, batches, writers)


def _run_batch(batch: list[Queued], model: Callable[[list[PersonCrop]], Prediction], batches: Batches,
               writers: Writers) -> None:
    """A batch through the model, its persons' files written; then every unit that is done finishes."""
    for queued, pred, row, model_s in predict_batch(batch, model):
        writers.person(queued, pred, row, model_s)
    for unit in batches.done():
        writers.unit(unit)


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
