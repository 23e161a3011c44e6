"""What one input unit is (an image, or one frame of a video) and the inputs stage: the units of a
run in input order (those done in an earlier run carry their record), decoded, their persons found
and cropped ahead of the model (:mod:`expose_cli.inference.loading`, in worker processes or a
thread)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from expose_cli.inference import boxes as box_utils
from expose_cli.inference.inputs import InputItem, read_video_frames, video_fps
from expose_cli.inference.loading import CropSpec, Loaded, load, message, worker_pool
from expose_cli.inference.options import InferOptions
from expose_cli.inference.overlay_video import read_overlay_meshes
from expose_cli.inference.video import read_frame_persons

if TYPE_CHECKING:
    from expose_cli.inference.summary import Summary

NO_PERSON = box_utils.NO_PERSON


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
    drawn: tuple | None = None  # such a video frame's (vertices, boxes) as its overlay draws them (overlay.npz)


def iter_units(items: list[InputItem], options: InferOptions, summary: Summary | None = None) -> Iterator[Unit]:
    """Images and video frames in order (a video's frames decoded here, one after the other);
    ``summary`` receives each video's folder -> input and fps."""
    used: dict[str, int] = {}
    for position, item in enumerate(items):
        name = item.name
        used[name] = used.get(name, 0) + 1
        folder = options.out_dir / (name if used[name] == 1 else f"{name}_{used[name]}")
        if not options.shard.takes(position):  # another process's input (its folder named as in one process)
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


def read_result(path: Path) -> dict | None:
    """A unit's ``result.json`` from an earlier run, or ``None`` when absent or unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("error") in (None, NO_PERSON) else None


def sequence_folder(unit: Unit, options: InferOptions) -> Path | None:
    """The folder a frame's tracks go to: its video's, or with ``track_images`` its input folder's
    (``OUT/<folder>_tracks``); ``None`` for an image that is not part of a sequence."""
    if unit.video_dir is not None:
        return unit.video_dir
    if options.track_images and unit.item.root is not None:
        return options.out_dir / f"{unit.item.root.name}_tracks"
    return None


def earlier_record(unit: Unit, options: InferOptions) -> dict | None:
    """With ``skip_existing``: the unit's record from an earlier run, marked ``skipped``; else ``None``.
    A tracked frame with persons also needs its ``tracking.npz`` (put on ``unit.tracked``), which
    the tracks are rebuilt from, and with ``render`` a video frame with persons its ``overlay.npz``
    (put on ``unit.drawn``), its overlay drawn from; without them the frame is run again."""
    if not options.skip_existing:
        return None
    record = read_result(unit.out_dir / "result.json")
    if record is None:
        return None
    if options.tracks is not None and sequence_folder(unit, options) is not None and record.get("persons"):
        unit.tracked = read_frame_persons(unit.out_dir, int(record["persons"]))
        if unit.tracked is None:
            return None
    if options.render and unit.video_dir is not None and record.get("persons"):
        unit.drawn = read_overlay_meshes(unit.out_dir, int(record["persons"]))
        if unit.drawn is None:  # its overlay cannot be drawn again (an earlier run without --render?)
            return None
    record.update(input=str(unit.item.path), frame=unit.frame, output=str(unit.out_dir), skipped=True)
    return record


def units_to_run(items: list[InputItem], options: InferOptions, summary: Summary) -> Iterator[Unit]:
    """The units of ``items`` in order; one done in an earlier run carries its record (``unit.record``)
    and goes through the pipeline without work, so the summary keeps the input order."""
    for unit in iter_units(items, options, summary):
        unit.record = earlier_record(unit, options)
        yield unit


def read_ahead(units: Iterable[Unit], options: InferOptions, spec: CropSpec, ahead: int = 2) -> Iterator[Unit]:
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
    return local.submit(finish_load, unit, remote, boxes, spec, options.detect)


def finish_load(unit: Unit, remote: Future | None, boxes: list | None, spec: CropSpec, detect) -> Unit:
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

