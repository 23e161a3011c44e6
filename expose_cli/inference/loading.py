"""The inputs stage of `expose infer`: images decoded, persons found and cropped ahead of the model.

:func:`load` is the work of one image (or video frame): decode, boxes (given, or OpenCV's HOG, or
the whole image), box checks, crops at the model's resolution (the full model: the normalised full
image once per image, shared by its persons). It runs in worker processes (:func:`worker_pool`,
``--workers N``) or, with 0 workers, in a thread of the main process. Its result is a
:class:`Loaded`; tensors travel back through shared memory (torch's pickling of tensors between
processes), so a crop is not copied through a pipe.

An ONNX person detector (``--detector onnx:...``) keeps its session in the main process: a worker
then only decodes, and the detector and the crops run in the main process's loader thread.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.errors import ExposeError
from expose_cli.inference import boxes as box_utils
from expose_cli.io.images import read_image
from expose_cli.kinds import KINDS
from expose_cli.models import PersonCrop, crop_person
from expose_cli.models.inputs import normalize_image


@dataclass(frozen=True)
class CropSpec:
    """How persons are found and cropped (the same for every image of a run)."""

    img_res: int = 256  # px, side of the model's square input
    box_scale: float = 1.25  # the box is enlarged this much into the square crop
    keep_full_image: bool = False  # the full model samples hands and face from the whole image
    detector: str = "hog"  # hog | full-image | onnx (then the main process's ``detect`` finds the boxes)
    min_score: float = 0.0
    max_people: int | None = None



def crop_spec(predictor, detector: str = "hog", box_scale: float = 1.25, min_score: float = 0.0,
              max_people: int | None = None) -> CropSpec:
    """The crops ``predictor`` takes (its input side, px; the full model also samples the whole
    image), persons found by ``detector`` (hog | full-image | onnx), boxes enlarged ``box_scale``
    times, those scored under ``min_score`` dropped, the ``max_people`` largest kept."""
    return CropSpec(img_res=predictor.img_res, box_scale=box_scale, keep_full_image=KINDS[predictor.kind].keeps_full_image,
                    detector=detector, min_score=min_score, max_people=max_people)


def check_crop_spec(spec: CropSpec, predictor) -> None:
    """``spec`` must crop what ``predictor`` takes (a ``ValueError`` otherwise)."""
    wanted = crop_spec(predictor)
    if (spec.img_res, spec.keep_full_image) != (wanted.img_res, wanted.keep_full_image):
        raise ValueError(f"the crop spec ({spec.img_res} px, full image {spec.keep_full_image}) is not the model's "
                         f"({wanted.img_res} px, full image {wanted.keep_full_image}); build it with crop_spec(predictor)")


@dataclass
class Loaded:
    """One image through :func:`load`. ``boxes is None`` with no error: the boxes are still to be
    found by a detector that lives in the main process."""

    image: np.ndarray | None = None  # H x W x 3 uint8 RGB
    boxes: list | None = None  # kept boxes [x1, y1, x2, y2, score], px, largest first
    warnings: list = field(default_factory=list)
    crops: list[tuple[int, PersonCrop]] = field(default_factory=list)  # (person index, its crop)
    error: str | None = None
    failed_crops: int = 0  # persons whose crop failed (counted as processed)
    timings: dict = field(default_factory=dict)  # decode_s, detect_s, crop_s


def message(exc: BaseException) -> str:
    """One line for an exception: an ExposeError's reason (the input is named by the caller)."""
    if isinstance(exc, ExposeError):
        return exc.reason
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def select_boxes(boxes: list, image_size: tuple[int, int], spec: CropSpec) -> tuple[list, list[str]]:
    """Boxes clipped to the image, bad ones dropped (a warning each), ``min_score``, largest first,
    ``max_people``."""
    boxes, warnings = box_utils.validate_boxes(boxes, image_size)
    boxes = [b for b in boxes if b[4] >= spec.min_score]
    boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    return (boxes[: spec.max_people] if spec.max_people else boxes), warnings


def detect(image: np.ndarray, spec: CropSpec, detector=None) -> list | None:
    """Boxes of an image without given boxes: ``detector`` (a callable) when given, else the kind in
    ``spec``; ``None`` when that kind needs the main process's detector."""
    if detector is not None:
        return detector(image)
    if spec.detector == "full-image":
        return box_utils.full_image_box(image)
    if spec.detector == "onnx":
        return None
    return box_utils.detect_hog(image)


def crop_persons(image: np.ndarray, boxes: list, spec: CropSpec) -> tuple[list, int, str | None]:
    """``(crops, failures, first error)``: each box cropped to ``spec.img_res`` px."""
    crops, failed, error = [], 0, None
    full = normalize_image(image) if spec.keep_full_image and boxes else None
    for person, box in enumerate(boxes):
        x1, y1, x2, y2 = box[:4]
        try:
            crop = crop_person(image, [x1, y1, x2 - x1, y2 - y1], img_res=spec.img_res,
                               scale_factor=spec.box_scale, keep_full_image=spec.keep_full_image, full_image=full)
        except Exception as exc:  # noqa: BLE001 - one person's failure is recorded, the others go on
            error = error or f"person {person}: cropping failed: {message(exc)}"
            failed += 1
            continue
        crops.append((person, crop))
    return crops, failed, error


def load(path: Path | None, image: np.ndarray | None, boxes: list | None, spec: CropSpec,
         detector=None) -> Loaded:
    """Decode ``path`` (unless ``image`` is given), find the boxes (unless given), crop the persons.
    Every failure becomes ``Loaded.error``, nothing raises."""
    out, t0 = Loaded(image=image), time.perf_counter()
    if out.image is None:
        try:
            out.image = read_image(path)
        except Exception as exc:  # noqa: BLE001
            out.error = message(exc)
    t1 = time.perf_counter()
    out.timings["decode_s"] = t1 - t0
    if out.error is None:
        try:
            found = boxes if boxes is not None else detect(out.image, spec, detector)
            if found is not None:
                out.boxes, out.warnings = select_boxes(found, out.image.shape[:2], spec)
        except Exception as exc:  # noqa: BLE001
            out.error = f"finding persons failed: {message(exc)}"
    t2 = time.perf_counter()
    out.timings["detect_s"] = t2 - t1
    if out.error is None and out.boxes:
        out.crops, out.failed_crops, out.error = crop_persons(out.image, out.boxes, spec)
    out.timings["crop_s"] = time.perf_counter() - t2
    return out


def default_workers() -> int:
    """Decoding processes when ``--workers`` is not given: half the CPUs (the rest run the model's
    threads and the writers), at most 8; none on 2 CPUs or fewer, where a worker process only takes
    time from the model's threads (measured: end to end 0.78 of the model alone with 1 worker, 0.86
    with the loading in a thread; benchmarks/bench_infer.py, docs/infer.md)."""
    cpus = os.cpu_count() or 2
    return 0 if cpus <= 2 else min(8, cpus // 2)


def workers_for(items: list, batch_size: int, workers: int | None = None) -> int:
    """``workers`` when given; else :func:`default_workers` unless all inputs are images and fit in
    one batch (then 0: starting processes would cost more than it saves)."""
    if workers is not None:
        return workers
    if all(item.kind == "image" for item in items) and len(items) <= batch_size:
        return 0
    return default_workers()


def start_fork_server() -> None:
    """Start the fork server now (it imports this module once), e.g. while the model loads, so the
    first worker starts in milliseconds when the run begins."""
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _worker_init() -> None:
    """A worker leaves Ctrl-C to the main process (which stops the pool) and uses one thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes for :func:`load`.

    Not forked from this process: a fork copies OpenCV's and OpenMP's thread pools in whatever
    state they are (a worker then hangs in its first parallel call). Where the system has it, a
    fork server that imported this module once (before any thread pool started) forks the workers,
    so each starts in milliseconds; elsewhere they are spawned."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_worker_init)
