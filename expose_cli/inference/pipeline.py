"""The `expose infer` pipeline: read -> boxes -> crops -> batched model -> files -> overlays.

Images are decoded in a background thread while the model runs. Persons are batched across inputs.
Each input gets a folder under ``out`` (video frames a sub-folder each); a unit's ``result.json`` is
written last, so ``skip_existing`` resumes an interrupted run exactly.
"""

from __future__ import annotations

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
from expose_cli.inference.inputs import InputItem, read_image, read_video_frames, video_fps
from expose_cli.inference.render import render_overlay
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


def _units(items: list[InputItem], options: InferOptions) -> Iterator[Unit]:
    used: dict[str, int] = {}
    for item in items:
        name = item.name
        used[name] = used.get(name, 0) + 1
        folder = options.out_dir / (name if used[name] == 1 else f"{name}_{used[name]}")
        if item.kind == "image":
            yield Unit(item, folder)
        else:
            try:
                for index, frame in read_video_frames(item.path, options.every, options.max_frames):
                    yield Unit(item, folder / f"frame_{index:06d}", image=frame, frame=index)
            except ExposeError as exc:
                yield Unit(item, folder, error=exc.message)


def _load(unit: Unit, options: InferOptions) -> Unit:
    """Decode and find the persons (runs in the reader thread)."""
    t0 = time.perf_counter()
    if unit.error is None and unit.image is None:
        try:
            unit.image = read_image(unit.item.path)
        except ExposeError as exc:
            unit.error = exc.message
    t1 = time.perf_counter()
    unit.timings["decode_s"] = t1 - t0
    if unit.error is None:
        boxes = None
        if options.boxes is not None:
            boxes = box_utils.boxes_for(options.boxes, unit.item.path.name)
        if boxes is None:
            boxes = (box_utils.full_image_box(unit.image) if options.detector == "full-image"
                     else box_utils.detect_hog(unit.image))
        boxes = [list(b[:4]) + [b[4] if len(b) > 4 else 1.0] for b in boxes]
        boxes = [b for b in boxes if b[4] >= options.min_score]
        boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        unit.boxes = boxes[: options.max_people] if options.max_people else boxes
    unit.timings["detect_s"] = time.perf_counter() - t1
    return unit


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
        elif fmt == "glb":
            export.write_glb(path, verts, arrays["faces"])
        elif fmt == "npz":
            export.write_npz(path, arrays)
        elif fmt == "json":
            export.write_json(path, {k: v for k, v in arrays.items() if k not in ("vertices", "vertices_camera", "faces")})
        files.append(str(path))
    return files


def run_inference(items: list[InputItem], predictor: Predictor, options: InferOptions,
                  on_unit: Callable[[dict], None] | None = None) -> dict:
    """Run the model on every input; returns (and writes) the summary."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    faces = np.asarray(predictor.body_model.faces, dtype=np.int64)
    res = 224 if predictor.kind == "hand" else 256
    summary: list[dict] = []
    video_frames: dict[Path, list[Path]] = {}
    pending: list[tuple[Unit, int]] = []
    crops_pending: list = []
    open_units: list[Unit] = []
    device_type = predictor.device.type
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(options.precision)

    def finish(unit: Unit) -> None:
        t0 = time.perf_counter()
        if options.render and unit.results:
            meshes = [(r["vertices_camera"], faces) for r in unit.results]
            overlay = render_overlay(unit.image, meshes, options.focal_length)
            path = unit.out_dir / "overlay.png"
            with atomic_path(path) as tmp:
                cv2.imwrite(str(tmp), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            unit.files.append(str(path))
            if unit.frame is not None:
                video_frames.setdefault(unit.out_dir.parent, []).append(path)
        unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t0
        record = {"input": str(unit.item.path), "frame": unit.frame, "output": str(unit.out_dir),
                  "persons": len(unit.results), "files": unit.files, "timings": unit.timings, "error": unit.error}
        if unit.error is None and not unit.boxes:
            record["error"] = "no person found"
        if unit.error is None:
            write_json_atomic(unit.out_dir / "result.json", record)
        summary.append(record)
        unit.image = None
        if on_unit:
            on_unit(record)

    def flush() -> None:
        if not pending:
            return
        t0 = time.perf_counter()
        batch = collate(crops_pending)
        if autocast_dtype is not None:
            with torch.autocast(device_type, dtype=autocast_dtype):
                pred = predictor(batch)
            pred.vertices = pred.vertices.float()
        else:
            pred = predictor(batch)
        dt = (time.perf_counter() - t0) / len(pending)
        for i, ((unit, person), crop) in enumerate(zip(pending, crops_pending, strict=True)):
            t1 = time.perf_counter()
            arrays = _person_arrays(pred, i, unit.boxes[person], crop, unit.image.shape[:2], options, faces)
            unit.files += _write_person(unit.out_dir, person, arrays, options)
            unit.results.append(arrays)
            unit.timings["model_s"] = unit.timings.get("model_s", 0.0) + dt
            unit.timings["write_s"] = unit.timings.get("write_s", 0.0) + time.perf_counter() - t1
        pending.clear()
        crops_pending.clear()
        while open_units and len(open_units[0].results) == len(open_units[0].boxes):
            finish(open_units.pop(0))

    with ThreadPoolExecutor(max_workers=1) as reader:
        def loaded() -> Iterator[Unit]:
            futures = []
            for unit in _units(items, options):
                if options.skip_existing and (unit.out_dir / "result.json").is_file():
                    summary.append({"input": str(unit.item.path), "frame": unit.frame, "output": str(unit.out_dir),
                                    "skipped": True, "error": None})
                    if unit.frame is not None and (unit.out_dir / "overlay.png").is_file():
                        video_frames.setdefault(unit.out_dir.parent, []).append(unit.out_dir / "overlay.png")
                    continue
                futures.append(reader.submit(_load, unit, options))
                if len(futures) > 2:  # read ahead of the model by two inputs
                    yield futures.pop(0).result()
            for f in futures:
                yield f.result()

        for unit in loaded():
            if unit.error is not None or not unit.boxes:
                if not open_units:
                    finish(unit)
                else:
                    open_units.append(unit)
                continue
            open_units.append(unit)
            for person, box in enumerate(unit.boxes):
                x1, y1, x2, y2 = box[:4]
                crops_pending.append(crop_person(unit.image, [x1, y1, x2 - x1, y2 - y1], img_res=res,
                                                 scale_factor=options.box_scale,
                                                 keep_full_image=predictor.kind == "expose"))
                pending.append((unit, person))
                if len(pending) >= options.batch_size:
                    flush()
        flush()
        while open_units:  # units without persons queued behind the last batch
            finish(open_units.pop(0))
    for folder, frames in video_frames.items():
        _write_video(folder / "overlay.mp4", sorted(frames), video_fps_for(folder, items))
    result = {"inputs": summary, "failed": sum(1 for r in summary if r.get("error") and r["error"] != "no person found")}
    write_json_atomic(options.out_dir / "summary.json", result)
    return result


def video_fps_for(folder: Path, items: list[InputItem]) -> float:
    for item in items:
        if item.kind == "video" and item.name == folder.name:
            return video_fps(item.path)
    return 25.0


def _write_video(path: Path, frames: list[Path], fps: float) -> None:
    """The overlay PNGs of a video's frames as an MP4 (mp4v), written atomically."""
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for f in frames:
            writer.write(cv2.imread(str(f)))
        writer.release()
