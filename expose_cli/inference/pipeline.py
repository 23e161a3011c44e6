"""The `expose infer` pipeline: read -> boxes -> crops -> batched model -> files -> overlays.

Images are decoded in a background thread while the model runs. Persons are batched across inputs.
Each input gets a folder under ``out`` (video frames a sub-folder each); a unit's ``result.json`` is
written last, so ``skip_existing`` resumes an interrupted run exactly. A failure in one input
(decoding, boxes, the model, writing) is recorded for that input and the others go on;
``summary.json`` is rewritten (atomically) as inputs complete and at the end, also when the run
stops early.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.errors import ExposeError
from expose_cli.geometry.cameras import crop_camera_to_full_translation
from expose_cli.inference import boxes as box_utils
from expose_cli.inference import export
from expose_cli.inference.inputs import InputItem, read_video_frames, video_fps
from expose_cli.inference.render import render_overlay
from expose_cli.io.images import read_image
from expose_cli.models import Predictor, collate, crop_person
from expose_cli.utils.atomic import atomic_path, write_json_atomic


@dataclass
class InferOptions:
    out_dir: Path
    formats: tuple[str, ...] = ("obj", "npz")
    camera_space: bool = False
    focal_length: float = 5000.0
    render: bool = False
    boxes: dict | None = None
    detector: str = "hog"  # hog | full-image
    min_score: float = 0.0
    max_people: int | None = None
    batch_size: int = 8
    skip_existing: bool = False
    every: int = 1
    max_frames: int | None = None
    box_scale: float = 1.25
    precision: str = "fp32"


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


NO_PERSON = "no person found"


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
    for item in items:
        name = item.name
        used[name] = used.get(name, 0) + 1
        folder = options.out_dir / (name if used[name] == 1 else f"{name}_{used[name]}")
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
        boxes = (box_utils.full_image_box(unit.image) if options.detector == "full-image"
                 else box_utils.detect_hog(unit.image))
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


def run_inference(items: list[InputItem], predictor: Predictor, options: InferOptions,
                  on_unit: Callable[[dict], None] | None = None, summary_interval_s: float = 1.0) -> dict:
    """Run the model on every input; returns (and writes) the summary.

    ``on_unit`` receives each input's (or video frame's) record as it completes, skipped ones too.
    ``summary.json`` is rewritten at most every ``summary_interval_s`` while running, and at the
    end, also when the run stops on an exception (``"complete": false`` then).
    """
    options.out_dir.mkdir(parents=True, exist_ok=True)
    faces = np.asarray(predictor.body_model.faces, dtype=np.int64)
    res = 224 if predictor.kind == "hand" else 256
    records: list[dict] = []
    videos: dict[Path, dict] = {}  # video folder -> input, overlay fps
    video_frames: dict[Path, list[Path]] = {}
    pending: list[tuple[Unit, int]] = []
    crops_pending: list = []
    open_units: list[Unit] = []
    device_type = predictor.device.type
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(options.precision)
    state = {"complete": False, "last_write": float("-inf")}

    def summary() -> dict:
        failed = sum(1 for r in records if r.get("error") and r["error"] != NO_PERSON)
        failed += sum(1 for v in videos.values() if v.get("error"))
        out = {"inputs": records, "failed": failed, "complete": state["complete"]}
        if videos:
            out["videos"] = [dict(v, output=str(folder)) for folder, v in videos.items()]
        return out

    def write_summary(force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - state["last_write"] >= summary_interval_s:
            write_json_atomic(options.out_dir / "summary.json", summary())
            state["last_write"] = now

    def emit(record: dict) -> None:
        records.append(record)
        write_summary()
        if on_unit:
            on_unit(record)

    def finish(unit: Unit) -> None:
        t0 = time.perf_counter()
        if options.render and unit.image is not None and (unit.results or unit.frame is not None):
            try:  # video frames always get one (the plain frame without persons): the overlay video has them all
                meshes = [(r["vertices_camera"], faces) for r in unit.results]
                overlay = render_overlay(unit.image, meshes, options.focal_length) if meshes else unit.image
                path = unit.out_dir / "overlay.png"
                with atomic_path(path) as tmp:
                    if not cv2.imwrite(str(tmp), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
                        raise OSError(f"cannot write {path}")
                unit.files.append(str(path))
                if unit.video_dir is not None:
                    video_frames.setdefault(unit.video_dir, []).append(path)
            except Exception as exc:  # noqa: BLE001
                unit.error = unit.error or f"rendering failed: {_message(exc)}"
        unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t0
        record = {"input": str(unit.item.path), "frame": unit.frame, "output": str(unit.out_dir),
                  "persons": len(unit.results), "files": unit.files, "timings": unit.timings, "error": unit.error}
        if unit.warnings:
            record["warnings"] = unit.warnings
        if unit.error is None and not unit.boxes:
            record["error"] = NO_PERSON
        if unit.error is None:
            try:
                write_json_atomic(unit.out_dir / "result.json", record)
            except Exception as exc:  # noqa: BLE001
                record["error"] = f"writing result.json failed: {_message(exc)}"
        unit.image = None
        emit(record)

    def run_model(crops: list):
        batch = collate(crops)
        if autocast_dtype is not None:
            with torch.autocast(device_type, dtype=autocast_dtype):
                pred = predictor(batch)
        else:
            pred = predictor(batch)
        return prediction_to_float32(pred)  # reduced precision: joints, cameras... back to float32 too

    def process(entries: list[tuple[Unit, int]], crops: list) -> None:
        t0 = time.perf_counter()
        try:
            pred = run_model(crops)
        except Exception as exc:  # noqa: BLE001
            units = list({id(u): u for u, _ in entries}.values())
            if len(units) > 1:  # find the input that fails: each one on its own
                for u in units:
                    sel = [k for k, (v, _) in enumerate(entries) if v is u]
                    process([entries[k] for k in sel], [crops[k] for k in sel])
                return
            for u, _ in entries:
                u.error = u.error or f"model failed: {_message(exc)}"
                u.processed += 1
            return
        dt = (time.perf_counter() - t0) / len(entries)
        for i, ((unit, person), crop) in enumerate(zip(entries, crops, strict=True)):
            t1 = time.perf_counter()
            unit.timings["model_s"] = unit.timings.get("model_s", 0.0) + dt
            try:
                arrays = _person_arrays(pred, i, unit.boxes[person], crop, unit.image.shape[:2], options, faces)
                unit.files += _write_person(unit.out_dir, person, arrays, options)
                unit.results.append(arrays)
            except Exception as exc:  # noqa: BLE001
                unit.error = unit.error or f"person {person}: {_message(exc)}"
            unit.processed += 1
            unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t1

    def drain() -> None:
        """Finish the oldest units whose persons are all done (in input order)."""
        while open_units and open_units[0].processed >= len(open_units[0].boxes):
            finish(open_units.pop(0))

    def flush() -> None:
        if pending:
            entries, crops = list(pending), list(crops_pending)
            pending.clear()
            crops_pending.clear()
            process(entries, crops)
        drain()

    def skipped(unit: Unit) -> bool:
        if not options.skip_existing:
            return False
        record = _read_result(unit.out_dir / "result.json")
        if record is None:
            return False
        record.update(input=str(unit.item.path), frame=unit.frame, output=str(unit.out_dir), skipped=True)
        overlay = unit.out_dir / "overlay.png"
        if unit.video_dir is not None and overlay.is_file():
            video_frames.setdefault(unit.video_dir, []).append(overlay)
        emit(record)
        return True

    try:
        with ThreadPoolExecutor(max_workers=1) as reader:
            def loaded() -> Iterator[Unit]:
                futures = []
                for unit in _units(items, options, videos):
                    if skipped(unit):
                        continue
                    futures.append(reader.submit(_load, unit, options))
                    if len(futures) > 2:  # read ahead of the model by two inputs
                        yield futures.pop(0).result()
                for f in futures:
                    yield f.result()

            for unit in loaded():
                open_units.append(unit)
                if unit.error is not None:
                    unit.boxes = []
                for person, box in enumerate(unit.boxes):
                    x1, y1, x2, y2 = box[:4]
                    try:
                        crop = crop_person(unit.image, [x1, y1, x2 - x1, y2 - y1], img_res=res,
                                           scale_factor=options.box_scale, keep_full_image=predictor.kind == "expose")
                    except Exception as exc:  # noqa: BLE001
                        unit.error = unit.error or f"person {person}: cropping failed: {_message(exc)}"
                        unit.processed += 1
                        continue
                    crops_pending.append(crop)
                    pending.append((unit, person))
                    if len(pending) >= options.batch_size:
                        flush()
                drain()  # units without persons (or failed) finish now, unless queued behind others
            flush()
        for folder, frames in video_frames.items():
            path = folder / "overlay.mp4"
            try:
                _write_video(path, sorted(frames), videos.get(folder, {}).get("fps", 25.0))
                videos.setdefault(folder, {})["overlay"] = str(path)
            except Exception as exc:  # noqa: BLE001
                videos.setdefault(folder, {})["error"] = f"overlay video failed: {_message(exc)}"
        state["complete"] = True
    finally:
        write_summary(force=True)
    return summary()


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
