"""Persons batched across units, and the model on a batch: :class:`Batches` queues the cropped
persons of units in input order and hands them out a batch at a time; :func:`predict_batch` runs a
batch (:func:`forward`), isolating an input whose persons fail."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from expose_cli.inference.loading import message
from expose_cli.inference.units import Unit
from expose_cli.models import PersonCrop, Prediction, Predictor, collate


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
    """Every floating tensor of a Prediction as float32 (a predictor's own may give bf16/fp16), in place;
    with ``device`` every tensor moved there too (a GPU batch to the CPU once, for the writers)."""
    for f in dataclasses.fields(pred):
        if f.name != "training":
            setattr(pred, f.name, _to_float32(getattr(pred, f.name), device))
    return pred


def forward(predictor: Predictor, crops: list[PersonCrop]) -> Prediction:
    """The model on a batch of crops; the prediction in float32, on the CPU. Precision is the
    predictor's (``backends.make_predictor``: reduced precision in its backbones only). On a GPU the
    batch goes through pinned memory (an asynchronous copy) and the prediction comes back in one
    pass, not one copy per person and field."""
    device = getattr(predictor, "device", torch.device("cpu"))
    batch = collate(crops, device)
    to_cpu = None if device.type == "cpu" else torch.device("cpu")
    return prediction_to_float32(predictor(batch), to_cpu)


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
