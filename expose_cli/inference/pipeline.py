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

The parts, one module each, in the order a unit goes through them (each testable alone,
tests/test_infer_parts.py): the options (:mod:`~expose_cli.inference.options`) -> inputs
(:mod:`~expose_cli.inference.units`: units to run, read ahead by :mod:`~expose_cli.inference.loading`)
-> batches and forward (:mod:`~expose_cli.inference.batching`) -> writers
(:mod:`~expose_cli.inference.writers`, the formats of :data:`expose_cli.inference.export.FORMATS`)
-> summary (:mod:`~expose_cli.inference.summary`); :func:`run_inference` here joins them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import closing
from functools import partial

import numpy as np

from expose_cli.inference import loading
from expose_cli.inference.backends import runtime_info
from expose_cli.inference.batching import Batches, Queued, forward, predict_batch, queued_persons
from expose_cli.inference.distributed import summary_name
from expose_cli.inference.inputs import InputItem
from expose_cli.inference.options import InferOptions
from expose_cli.inference.summary import Summary
from expose_cli.inference.units import read_ahead, units_to_run
from expose_cli.inference.video import VideoTracks
from expose_cli.inference.writers import WritePool, Writers
from expose_cli.kinds import KINDS
from expose_cli.models import PersonCrop, Prediction, Predictor
from expose_cli.utils.stale import remove_stale_temps

__all__ = ["InferOptions", "run_inference"]


def run_inference(items: list[InputItem], predictor: Predictor, options: InferOptions,
                  on_unit: Callable[[dict], None] | None = None, summary_interval_s: float = 1.0) -> dict:
    """Run the model on every input; returns (and writes) the summary.

    ``on_unit`` receives each input's (or video frame's) record as it completes, skipped ones too.
    ``summary.json`` is rewritten at most every ``summary_interval_s`` while running, and at the
    end, also when the run stops on an exception (``"complete": false`` then).
    """
    options = _with_crop(options, predictor)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(options.out_dir, recursive=True)  # a killed run's; a running one's are kept
    if options.workers is None:
        options = dataclasses.replace(options, workers=loading.workers_for(items, options.batch_size))
    summary = Summary(options.out_dir / summary_name(options.shard), summary_interval_s, on_unit,
                      runtime=runtime_info(predictor))
    smplx_kind = KINDS[predictor.kind].body_model == "smplx"
    writers = Writers(options, np.asarray(predictor.body_model.faces, dtype=np.int64), summary,
                      predictor.body_model if smplx_kind else None,
                      VideoTracks(options.tracks) if options.tracks is not None else None)
    try:
        _run(items, predictor, options, writers)
        writers.finish_tracks()
        writers.videos()
        summary.complete = True
    finally:
        writers.overlay_videos.drop()  # an interrupted run's unfinished overlay.mp4
        summary.write(force=True)
    return summary.as_dict()


def _with_crop(options: InferOptions, predictor: Predictor) -> InferOptions:
    """``options`` with its crop spec (the predictor's, HOG, when none is given), checked against the
    predictor and the detector (a ``ValueError`` when they disagree)."""
    if options.crop is None:
        options = dataclasses.replace(options, crop=loading.crop_spec(predictor))
    loading.check_crop_spec(options.crop, predictor)
    if options.detect is not None and options.crop.detector != "onnx":
        raise ValueError(f"a detector callable is given but the crop spec's detector is {options.crop.detector!r}: "
                         "give crop_spec(predictor, detector='onnx')")
    return options


def _run(items: list[InputItem], predictor: Predictor, options: InferOptions, writers: Writers) -> None:
    """inputs -> crops -> batches -> forward -> person files; units finish in input order."""
    batches = Batches(options.batch_size)
    model = partial(forward, predictor)
    ahead = options.batch_size + 2 * max(options.workers, 1)  # a batch ready when the model is free
    units = read_ahead(units_to_run(items, options, writers.summary), options, options.crop, ahead)
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
