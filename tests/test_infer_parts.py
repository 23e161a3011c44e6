"""The parts of the `expose infer` pipeline on their own: inputs, batches, forward, writers, summary.

No network and no body model: units, crops and predictions are small hand-made stand-ins, so each
part's rules (order, isolation of failures, what is written) are checked directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from expose_cli.inference import batching as B
from expose_cli.inference import loading as L
from expose_cli.inference import options as O
from expose_cli.inference import pipeline as P
from expose_cli.inference import summary as S
from expose_cli.inference import units as U
from expose_cli.inference import writers as W
from expose_cli.inference.inputs import InputItem


def _unit(name: str, persons: int, tmp_path: Path | None = None) -> U.Unit:
    out = (tmp_path or Path("/nonexistent")) / name
    unit = U.Unit(InputItem(Path(f"{name}.jpg"), "image"), out, image=np.zeros((80, 100, 3), np.uint8))
    unit.boxes = [[10.0, 10.0, 50.0, 70.0, 1.0] for _ in range(persons)]
    return unit


def _queued(unit: U.Unit) -> list[B.Queued]:
    return [B.Queued(unit, i, crop=f"{unit.item.name}:{i}") for i in range(len(unit.boxes))]


# -- batches ---------------------------------------------------------------------------------------

def test_batches_are_full_and_units_leave_in_input_order():
    a, b, c = _unit("a", 3, None), _unit("b", 0, None), _unit("c", 2, None)
    batches = B.Batches(2)
    first = batches.add(a, _queued(a))
    assert [[q.crop for q in batch] for batch in first] == [["a:0", "a:1"]]
    assert batches.add(b, _queued(b)) == []
    assert list(batches.done()) == []  # a is open: b (no person) waits behind it
    second = batches.add(c, _queued(c))
    assert [[q.crop for q in batch] for batch in second] == [["a:2", "c:0"]]
    a.processed = 3
    assert list(batches.done()) == [a, b]  # c still has a person queued
    assert [q.crop for q in batches.rest()] == ["c:1"] and batches.rest() == []
    c.processed = 2
    assert list(batches.done()) == [c]


# -- forward: failures isolated per input ----------------------------------------------------------

def test_predict_batch_isolates_the_failing_input():
    good, bad = _unit("good", 2), _unit("bad", 1)
    batch = [*_queued(good), *_queued(bad)]
    calls = []

    def model(crops):
        calls.append(list(crops))
        if "bad:0" in crops:
            raise ValueError("nan in the crop\nsecond line")
        return f"pred of {len(crops)}"

    out = [(q.crop, pred, row) for q, pred, row, _ in B.predict_batch(batch, model)]
    # the whole batch first, then each input on its own: the good one's rows refer to its own batch
    assert calls == [["good:0", "good:1", "bad:0"], ["good:0", "good:1"], ["bad:0"]]
    assert out == [("good:0", "pred of 2", 0), ("good:1", "pred of 2", 1)]
    assert bad.error == "model failed: ValueError: nan in the crop" and bad.processed == 1
    assert good.error is None and good.processed == 0  # counted by the writer, per person
    assert list(B.predict_batch([], model)) == [] and len(calls) == 3


# -- batches: crops at the model's resolution ------------------------------------------------------

@pytest.mark.parametrize("img_res", [224, 96])
def test_person_crops_use_the_models_img_res(img_res):
    image = np.zeros((80, 100, 3), np.uint8)
    boxes = [[10.0, 10.0, 50.0, 70.0, 1.0], [10.0, 10.0, "x", 70.0, 1.0]]  # the second cannot be cropped
    crops, failed, error = L.crop_persons(image, boxes, L.CropSpec(img_res=img_res))
    assert [person for person, _ in crops] == [0] and failed == 1
    assert tuple(crops[0][1].img.shape) == (3, img_res, img_res)
    # the box (40 x 60 px) enlarged 1.25x to a square of 75 px around its centre (30, 40) px
    assert crops[0][1].box_size == pytest.approx(75.0)
    np.testing.assert_allclose(crops[0][1].center, [30.0, 40.0])
    assert error.startswith("person 1: cropping failed")


def test_full_image_normalised_once_per_image():
    image = np.full((40, 60, 3), 200, np.uint8)
    boxes = [[0.0, 0.0, 20.0, 30.0, 1.0], [20.0, 5.0, 50.0, 35.0, 1.0]]
    crops, _, _ = L.crop_persons(image, boxes, L.CropSpec(img_res=32, keep_full_image=True))
    a, b = crops[0][1].full_image, crops[1][1].full_image
    assert a is b and tuple(a.shape) == (3, 40, 60)  # one tensor shared by the image's persons
    np.testing.assert_allclose(a[:, 0, 0].numpy(), (200 - np.array([123.675, 116.28, 103.53])) /
                               np.array([58.395, 57.12, 57.375]), rtol=1e-6)


def test_finish_load_of_a_failed_unit_has_no_persons(tmp_path):
    unit = U.Unit(InputItem(tmp_path / "bad.jpg", "image"), tmp_path / "bad")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    U.finish_load(unit, None, [[1.0, 1.0, 5.0, 5.0, 1.0]], L.CropSpec(), None)
    assert unit.error == "cannot decode image (corrupt or not an image)"
    assert unit.boxes == [] and unit.crops == [] and B.queued_persons(unit) == []


# -- inputs: --skip-existing -----------------------------------------------------------------------

def test_units_to_run_skips_finished_ones(tmp_path):
    items = [InputItem(tmp_path / f"{n}.jpg", "image") for n in ("done", "empty", "failed", "new")]
    for name, error in (("done", None), ("empty", U.NO_PERSON), ("failed", "model failed: x")):
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "result.json").write_text(json.dumps({"persons": 1, "error": error}))
    summary = S.Summary(tmp_path / "out" / "summary.json")
    for skip, expect_run in ((False, ["done", "empty", "failed", "new"]), (True, ["failed", "new"])):
        options = O.InferOptions(out_dir=tmp_path / "out", skip_existing=skip)
        summary.records.clear()
        units = list(U.units_to_run(items, options, summary))
        assert [u.out_dir.name for u in units if u.record is None] == expect_run
    # done ones carry their record through the pipeline (so the summary keeps the input order)
    records = [u.record for u in units if u.record is not None]
    assert [(Path(r["output"]).name, r["skipped"], r["error"]) for r in records] == [
        ("done", True, None), ("empty", True, U.NO_PERSON)]
    assert records[0]["input"] == str(items[0].path)


# -- writers ---------------------------------------------------------------------------------------

def test_unit_writer_result_json_only_for_units_that_did_not_fail(tmp_path):
    summary = S.Summary(tmp_path / "summary.json")
    writers = W.Writers(O.InferOptions(out_dir=tmp_path), np.zeros((0, 3), np.int64), summary)
    empty, failed = _unit("empty", 0, tmp_path), _unit("failed", 1, tmp_path)
    failed.error = "person 0: disk full"
    for unit in (empty, failed):
        unit.out_dir.mkdir()
        writers.unit(unit)
    assert json.loads((empty.out_dir / "result.json").read_text())["error"] == U.NO_PERSON
    assert not (failed.out_dir / "result.json").exists()  # a later --skip-existing runs it again
    assert [r["error"] for r in summary.records] == [U.NO_PERSON, "person 0: disk full"]
    assert empty.image is None and failed.image is None  # released once written


# -- summary ---------------------------------------------------------------------------------------

def test_summary_counts_failures_and_rewrites_at_most_every_interval(tmp_path):
    seen = []
    summary = S.Summary(tmp_path / "summary.json", interval_s=3600.0, on_unit=seen.append)
    summary.add({"input": "a", "error": None})
    assert json.loads(summary.path.read_text())["inputs"] == [{"input": "a", "error": None}]  # first: written
    summary.add({"input": "b", "error": U.NO_PERSON})
    summary.add({"input": "c", "error": "model failed: x"})
    assert len(json.loads(summary.path.read_text())["inputs"]) == 1  # within the interval: not yet
    summary.videos[tmp_path / "clip"] = {"input": "clip.mp4", "error": "overlay video failed: x"}
    summary.write(force=True)
    written = json.loads(summary.path.read_text())
    assert written["failed"] == 2 and written["complete"] is False  # no person is not a failure
    assert written["videos"] == [{"input": "clip.mp4", "error": "overlay video failed: x",
                                  "output": str(tmp_path / "clip")}]
    assert [r["input"] for r in seen] == ["a", "b", "c"]


def test_run_inference_marks_an_interrupted_run_incomplete(tmp_path, monkeypatch):
    predictor = SimpleNamespace(body_model=SimpleNamespace(faces=np.zeros((1, 3))), kind="body", img_res=32)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        P.run_inference([], predictor, O.InferOptions(out_dir=tmp_path / "out"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {k: summary[k] for k in ("inputs", "failed", "complete")} == {"inputs": [], "failed": 0, "complete": False}



@pytest.mark.parametrize("crop, detect, words", [
    (L.CropSpec(img_res=64), None, "not the model's"),  # 64 px crops for a 32 px model
    (L.CropSpec(img_res=32, keep_full_image=True), None, "not the model's"),  # the body model takes no full image
    (L.CropSpec(img_res=32, detector="hog"), lambda image: [], "detector is 'hog'"),  # the callable would never run
])
def test_a_crop_spec_that_does_not_fit_the_predictor_is_refused(tmp_path, crop, detect, words):
    """The caller builds the crop spec (``loading.crop_spec``); one that disagrees with the predictor
    is refused before anything is written."""
    predictor = SimpleNamespace(body_model=SimpleNamespace(faces=np.zeros((1, 3))), kind="body", img_res=32)
    assert L.crop_spec(predictor) == L.CropSpec(img_res=32, keep_full_image=False, detector="hog")
    with pytest.raises(ValueError, match=words):
        P.run_inference([], predictor, O.InferOptions(out_dir=tmp_path / "out", crop=crop, detect=detect))
    assert not (tmp_path / "out").exists()

# -- the model's input size comes from its config ----------------------------------------------------

@pytest.mark.parametrize("kind, override, res", [
    ("body", None, 256), ("hand", None, 224), ("face", None, 256), ("expose", None, 256),  # the seed's configs
    ("hand", "hand.img_res=160", 160), ("face", "face.img_res=192", 192),
    ("expose", "body.img_res=288", 288), ("expose", "hand.img_res=160", 256),  # the full model crops the body
])
def test_img_res_of_each_model_kind(kind, override, res):
    from expose_cli.models.config import load_config

    assert load_config(kind, overrides=[override] if override else []).img_res == res


def test_finish_load_after_a_worker_died_loads_here(tmp_path):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import cv2

    cv2.imwrite(str(tmp_path / "ok.png"), np.full((40, 50, 3), 90, np.uint8))
    unit = U.Unit(InputItem(tmp_path / "ok.png", "image"), tmp_path / "ok")
    died: Future = Future()
    died.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
    U.finish_load(unit, died, [[5.0, 5.0, 30.0, 35.0, 1.0]], L.CropSpec(img_res=32), None)
    assert unit.error is None and unit.image.shape == (40, 50, 3)
    assert [person for person, _ in unit.crops] == [0] and tuple(unit.crops[0][1].img.shape) == (3, 32, 32)
