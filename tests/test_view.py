"""`expose view`: the page of each kind of output folder, built from stand-in runs and loaded from
``file://`` in headless Chromium (one browser for all pages): the 3D canvas drew the expected
meshes (their count in the scene, and pixels drawn), the charts drew, no console error, no request
off the machine. Screenshots are kept in ``tmp_path`` (``EXPOSE_VIEW_SHOTS=DIR`` copies them there)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from expose_cli.inference.render import render_overlay
from tests.browser import LOCAL, Browser, chromium

BROWSER = chromium()
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium on this machine (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(BROWSER, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _photo(path: Path, h: int, w: int) -> Path:
    """A smooth stand-in photo (gradients and a few discs): small PNG screenshots for docs/view.md."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([120 + 80 * x, 150 + 60 * y, 190 - 50 * x * y], axis=-1)
    for cx, cy, r, c in ((0.2, 0.25, 0.08, (90, 140, 200)), (0.75, 0.2, 0.1, (200, 200, 120)), (0.5, 0.7, 0.12, (110, 160, 110))):
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = c
    cv2.imwrite(str(path), img.astype(np.uint8))
    return path


def _video(path: Path, frames: int = 2) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 160))
    for i in range(frames):
        writer.write(np.full((160, 200, 3), 90 + 30 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def infer_runs(infer_tree, tmp_path_factory):
    """Two infer folders of the stand-in model (loaded once): an image of two persons rendered with a
    90-degree view, and a 2-frame video (one track) with a 270-degree view."""
    from expose_cli.inference.boxes import load_boxes
    from expose_cli.inference.inputs import discover_inputs
    from expose_cli.inference.loading import crop_spec
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.pipeline import run_inference
    from expose_cli.inference.video import TrackOptions
    from expose_cli.io.paths import DataTree
    from expose_cli.models import load_model

    tmp = tmp_path_factory.mktemp("view_infer")
    _photo(tmp / "pair.jpg", 240, 320)
    (tmp / "b.json").write_text(json.dumps({"pair.jpg": [[20, 20, 150, 230], [170, 30, 300, 230]]}))
    predictor = load_model("expose", DataTree(infer_tree))
    common = {"formats": ("npz",), "render": True, "workers": 0}
    run_inference(discover_inputs([tmp / "pair.jpg"]), predictor, InferOptions(
        tmp / "images", views=(90.0,), boxes=load_boxes(tmp / "b.json"), **common))
    run_inference(discover_inputs([_video(tmp / "walk.avi")]), predictor, InferOptions(
        tmp / "video", views=(270.0,), crop=crop_spec(predictor, detector="full-image"), tracks=TrackOptions(motion=False),
        **common))
    return tmp / "images", tmp / "video"


def test_side_views_beside_image_and_video_overlays(infer_runs):
    images, video = infer_runs
    assert cv2.imread(str(images / "pair" / "overlay.png")).shape == (240, 2 * 320, 3)  # overlay | 90 degrees
    ok, frame = cv2.VideoCapture(str(video / "walk" / "overlay.mp4")).read()
    assert ok and frame.shape == (160, 2 * 200, 3)
    side = frame[:, 200:]  # the 270-degree panel: the person on a white ground
    assert (side > 240).all(axis=2).mean() > 0.5 and (side < 200).any(axis=2).mean() > 0.02


def _shots(tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    return shot


def _keep(shot: Path) -> None:
    target = os.environ.get("EXPOSE_VIEW_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


ORBIT = """(function () {  // drag across the 3D view, then zoom out: [pixels drawn before, after]
  var c = document.getElementById("canvas"), before = exposeView.painted();
  c.dispatchEvent(new PointerEvent("pointerdown", {clientX: 300, clientY: 300, pointerId: 1, bubbles: true}));
  c.dispatchEvent(new PointerEvent("pointermove", {clientX: 420, clientY: 280, pointerId: 1, bubbles: true}));
  c.dispatchEvent(new PointerEvent("pointerup", {clientX: 420, clientY: 280, pointerId: 1, bubbles: true}));
  c.dispatchEvent(new WheelEvent("wheel", {deltaY: 100, bubbles: true, cancelable: true}));
  return [before, exposeView.painted()];
})()"""


def _check_clean(result: dict) -> None:
    assert result["ready"], result
    assert all(u.startswith(LOCAL) for u in result["requests"]), result["requests"]
    assert result["console_errors"] == [] and result["errors"] == [], result


@needs_browser
def test_infer_image_and_video_pages(infer_runs, browser, run_cli, tmp_path):
    images, video = infer_runs
    for folder in (images, video):
        res = run_cli("view", folder, "--no-open")
        assert res.exit_code == 0, res.output
    ready = "document.body.dataset.stage === 'ready'"
    shot = _shots(tmp_path, "infer-image")
    result = browser.open((images / "index.html").as_uri() + "#image=0", ready, shot, extra="exposeView.mask(80, 60)")
    _check_clean(result)
    assert result["meshes"] == 2 and result["painted"] > 500, result  # pair.jpg: two persons drawn
    # seen from the estimated camera: on an 80 x 60 grid (4 px cells of the 320 x 240 photo) WebGL covers
    # what the CPU renderer covers, to within a cell (the two rasterise thin limbs differently)
    meshes = [(np.load(images / "pair" / f"person_{i:02d}.npz")["vertices_camera"],
               np.load(images / "pair" / f"person_{i:02d}.npz")["faces"]) for i in range(2)]
    cpu = render_overlay(np.zeros((240, 320, 3), np.uint8), meshes, 5000.0, alpha=1.0).any(axis=2)
    expected = cpu[(np.arange(60) + 0.5).astype(int) * 4][:, (np.arange(80) + 0.5).astype(int) * 4]
    drawn = np.array([c == "1" for c in result["extra"]]).reshape(60, 80)
    near = lambda m: cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # noqa: E731 - within a cell
    assert drawn.sum() > 100 and expected.sum() > 100
    assert (drawn & ~near(expected)).mean() < 0.02 * drawn.mean() and (expected & ~near(drawn)).mean() < 0.02 * expected.mean()
    _keep(shot)
    shot = _shots(tmp_path, "infer-video")
    result = browser.open((video / "index.html").as_uri() + "#video=0&frame=1", ready, shot, extra=ORBIT)
    _check_clean(result)
    assert result["meshes"] == 1 and result["painted"] > 500, result
    before, after = result["extra"]  # drawn pixels before and after a drag and a wheel turn: the view moved
    assert after > 500 and after != before, result["extra"]
    assert any(u.endswith("video_0000_00000.js") for u in result["requests"])  # frames' meshes read when shown
    _keep(shot)
    gallery = _shots(tmp_path, "infer-gallery")
    result = browser.open((images / "index.html").as_uri(), "document.body.dataset.state === 'ready'", gallery)
    _check_clean(result)
    assert result["meshes"] == 0 and not any("/data/image_" in u for u in result["requests"])  # lazily: none yet
    _keep(gallery)


@needs_browser
def test_large_gallery_adds_cards_a_page_at_a_time(browser, run_cli, tmp_path):
    """1,000 images: the page shows the first 60 cards, fetching none of their overlays' meshes."""
    out = tmp_path / "many"
    records = [{"input": str(tmp_path / f"img_{i:04d}.jpg"), "frame": None, "output": str(out / f"img_{i:04d}"),
                "persons": 0, "files": [], "error": "no person found"} for i in range(1000)]
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"inputs": records, "failed": 0, "complete": True}))
    assert run_cli("view", out, "--no-open").exit_code == 0
    result = browser.open(out.as_uri() + "/index.html", "document.body.dataset.state === 'ready'", tmp_path / "many.png")
    _check_clean(result)
    assert result["cards"] == 60 and len(result["requests"]) == 5, result  # the page, its 3 scripts and its style


def _train_log(folder: Path, steps: int = 40) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(1, steps + 1):
        lines.append({"type": "train", "epoch": step // 20, "step": step, "lr": 1e-4 * (0.5 if step > 30 else 1.0),
                      "samples_per_s": 11.5, "skipped": 0, "total": 5.0 / step, "body_pose": 2.0 / step, "betas": 0.1})
        if step % 20 == 0:
            lines.append({"type": "val", "epoch": step // 20, "step": step, "v2v_mm": 90.0 - step, "pa_mpjpe_mm": 70.0 - step / 2})
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


@needs_browser
def test_train_page(browser, run_cli, tmp_path):
    run = tmp_path / "run"
    _train_log(run)
    assert run_cli("view", run, "--no-open").exit_code == 0
    manifest = (run / ".view" / "manifest.js").read_text()
    assert '"lr":[[1.0,0.0001]' in manifest.replace(" ", "")  # step 1's learning rate
    shot = _shots(tmp_path, "train")
    result = browser.open((run / "index.html").as_uri(), "document.body.dataset.state === 'ready'", shot)
    _check_clean(result)
    assert result["charts"] == 4 and result["meshes"] == 0, result  # loss terms, lr, throughput, validation
    _keep(shot)


def test_view_refuses_a_folder_of_no_known_kind(run_cli, tmp_path):
    res = run_cli("view", tmp_path, "--no-open")
    assert res.exit_code == 2 and "summary.json, fit.json, report.json or log.jsonl" in res.stderr
    assert not (tmp_path / "index.html").exists()


@pytest.fixture(scope="module")
def eval_report(model_tree, tmp_path_factory):
    """``expose eval ehf --report`` of the stand-in model on a 2-frame stand-in EHF."""
    from expose_cli.cli.app import main
    from expose_cli.testing.raw_datasets import write_ehf
    from expose_cli.testing.trees import link_tree

    root = link_tree(model_tree, tmp_path_factory.mktemp("view_eval_data"))
    write_ehf(root / "datasets" / "EHF", frames=2)
    assert main(["--data-dir", str(root), "-q", "preprocess", "ehf"]) == 0
    folder = tmp_path_factory.mktemp("view_eval") / "report"
    assert main(["--data-dir", str(root), "-q", "eval", "ehf", "--batch-size", "2", "--report", str(folder)]) == 0
    return folder


@needs_browser
def test_eval_page(eval_report, browser, run_cli, tmp_path):
    report = json.loads((eval_report / "report.json").read_text())
    metric = report["worst"]["metric"]
    values = report["per_sample"][metric]
    assert [w["value"] for w in report["worst"]["samples"]] == sorted(values, reverse=True)  # both, worst first
    mesh = np.load(eval_report / "error_mesh.npz")
    assert mesh["errors"].shape == (mesh["vertices"].shape[0],) and mesh["errors"].max() > 0
    assert run_cli("view", eval_report, "--no-open").exit_code == 0
    shot = _shots(tmp_path, "eval-report")
    result = browser.open((eval_report / "index.html").as_uri(), "document.body.dataset.state === 'ready'", shot)
    _check_clean(result)
    assert result["charts"] == len(report["per_sample"]) and result["meshes"] == 0, result  # a histogram per metric
    _keep(shot)
    shot = _shots(tmp_path, "eval")
    result = browser.open((eval_report / "index.html").as_uri() + "#errors", "document.body.dataset.stage === 'ready'", shot)
    _check_clean(result)
    assert result["meshes"] == 1 and result["painted"] > 500, result
    _keep(shot)


def _data(path: Path) -> dict:
    """A ``.view/data/<key>.js`` file's payload (``exposeViewData("key", {...});``)."""
    text = path.read_text()
    return json.loads(text[text.index(",") + 1:text.rindex(")")])


def test_infer_page_data_round_trip(infer_runs, run_cli, tmp_path):
    """Without a browser: the page's data hold each person's camera-frame vertices and triangles
    exactly as infer saved them, and the manifest links the overlay and the photo relatively."""
    import base64

    images, video = infer_runs
    assert run_cli("view", images, "--no-open").exit_code == 0
    text = (images / ".view" / "manifest.js").read_text()
    manifest = json.loads(text[text.index("(") + 1:text.rindex(")")])
    entry = manifest["images"][0]
    assert entry["overlay"] == "pair/overlay.png" and entry["persons"] == 2 and entry["size"] == [240, 320]
    persons = _data(images / ".view" / "data" / f"{entry['key']}.js")["persons"]
    for i, person in enumerate(persons):
        saved = np.load(images / "pair" / f"person_{i:02d}.npz")
        v = np.frombuffer(base64.b64decode(person["v"]), "<f4").reshape(-1, 3)
        f = np.frombuffer(base64.b64decode(_data(images / ".view" / "data" / f"{person['faces']}.js")["faces"]), "<u4")
        assert np.array_equal(v, saved["vertices_camera"]) and np.array_equal(f.reshape(-1, 3), saved["faces"])
        assert person["params"]["camera_translation"] == pytest.approx(saved["camera_translation"].tolist(), abs=1e-4)
    assert len({p["faces"] for p in persons}) == 1  # one triangle list for both persons
    # the folder moved, its summary recording paths relative to where infer ran (--out runs/images)
    moved = tmp_path / "elsewhere" / "images"
    shutil.copytree(images, moved)
    summary = json.loads((moved / "summary.json").read_text())
    for r in summary["inputs"]:
        r["output"], r["files"] = "runs/images/pair", [f"runs/images/pair/{Path(f).name}" for f in r["files"]]
    (moved / "summary.json").write_text(json.dumps(summary))
    assert run_cli("view", moved, "--no-open").exit_code == 0
    text = (moved / ".view" / "manifest.js").read_text()
    again = json.loads(text[text.index("(") + 1:text.rindex(")")])["images"][0]
    assert again["overlay"] == "pair/overlay.png" and _data(moved / ".view" / "data" / f"{again['key']}.js")["persons"] == persons
    (moved / "pair" / "person_01.npz").write_bytes(b"not an npz")  # a damaged person file: that image loses its 3D only
    assert run_cli("view", moved, "--no-open").exit_code == 0
    text = (moved / ".view" / "manifest.js").read_text()
    damaged = json.loads(text[text.index("(") + 1:text.rindex(")")])["images"][0]
    assert damaged["key"] is None and "cannot read its meshes" in damaged["error"] and damaged["overlay"]


def test_video_page_shows_the_frames_of_overlay_mp4(infer_runs, run_cli):
    """infer writes no overlay.png per video frame: the page's overlay frames are overlay.mp4's, in
    frame order, saved as JPEGs under .view/frames/ (browsers do not play mp4v)."""
    _, video = infer_runs
    assert list(video.rglob("overlay.png")) == []
    assert run_cli("view", video, "--no-open").exit_code == 0
    text = (video / ".view" / "manifest.js").read_text()
    frames = json.loads(text[text.index("(") + 1:text.rindex(")")])["videos"][0]["frames"]
    cap = cv2.VideoCapture(str(video / "walk" / "overlay.mp4"))
    assert [f["frame"] for f in frames] == [0, 1]
    for entry in frames:
        assert entry["overlay"] == f".view/frames/video_0000_{entry['frame']:06d}.jpg"
        ok, want = cap.read()
        got = cv2.imread(str(video / entry["overlay"]))
        assert ok and got.shape == want.shape == (160, 400, 3)  # the frame | its 270-degree panel
        assert np.abs(got.astype(int) - want).mean() < 2  # JPEG of the same pixels
    assert not cap.read()[0]


def test_train_curves_thinned_and_bad_log(tmp_path, run_cli):
    from expose_cli.view.train_page import MAX_POINTS, curves

    records = [{"type": "train", "step": s, "loss": float(s)} for s in range(1, 5001)]
    points = curves(records, "train")["loss"]
    assert len(points) <= MAX_POINTS + 1 and points[0] == [1.0, 1.0] and points[-1] == [5000.0, 5000.0]
    assert all(b[0] > a[0] for a, b in zip(points, points[1:], strict=False))
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"type": "train", "step": 1, "loss": 1}\n{oops\n{"type": "train", "step": 2}\n')
    res = run_cli("view", run, "--no-open")
    assert res.exit_code != 0 and "line 2 is not JSON" in res.stderr and not (run / "index.html").exists()


def test_place_in_front_fills_the_virtual_camera():
    from expose_cli.evaluation.report import CAMERA, place_in_front

    box = np.array([[x, y, z] for x in (-0.3, 0.3) for y in (-0.9, 0.9) for z in (-0.1, 0.1)]) + 5.0
    v = place_in_front(box)
    px = v[:, 1] / v[:, 2] * CAMERA["focal"]  # image rows from the centre, at each vertex's depth
    front = v[:, 2] == v[:, 2].min()
    assert np.ptp(v[:, :2], axis=0) == pytest.approx([0.6, 1.8]) and v[:, :2].mean(0) == pytest.approx([0, 0])
    assert np.ptp(px[front]) == pytest.approx(0.8 * CAMERA["size"][0])  # the nearest face's height fills 80%


def test_eval_report_folder_refused_before_any_work(tmp_path, run_cli):
    (tmp_path / "a_file").write_text("")
    res = run_cli("--data-dir", tmp_path, "eval", "ehf", "--report", tmp_path / "a_file" / "report")
    assert res.exit_code == 2 and "not a folder you can write to" in res.output
    assert not (tmp_path / "preprocessed_datasets").exists()


@needs_browser
def test_fit_page_shows_the_fitted_persons(standin_tree, browser, run_cli, tmp_path):
    """`expose fit` on a 2-person image (mean-pose start, a few iterations), then `expose view`:
    the card opens both fitted meshes in 3D."""
    import torch

    from expose_cli.body_models.builders import build_smplx
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
    from expose_cli.io.paths import DataTree
    from expose_cli.testing.fit_cases import make_case

    case = make_case(SMPLXKeypoints(build_smplx(DataTree(standin_tree))), persons=2, seed=1)
    points = torch.cat([case.noisy2d, case.confidence[..., None]], -1).numpy()
    np.savez(tmp_path / "img.npz", keypoints=points, image_size=np.array([512, 512]))
    cv2.imwrite(str(tmp_path / "img.png"), np.full((512, 512, 3), 60, np.uint8))
    quick = [a for s in ("stage1.num_iter=1", "stage2.num_iter=1", "stage3.num_iter=1", "fit.max_iter=3")
             for a in ("--set", s)]
    res = run_cli("--data-dir", standin_tree, "-q", "fit", tmp_path / "img.npz", "--out", tmp_path / "fit",
                  "--render", "--image", tmp_path / "img.png", *quick)
    assert res.exit_code == 0, res.output
    res = run_cli("view", tmp_path / "fit", "--no-open")
    assert res.exit_code == 0, res.output
    shot = _shots(tmp_path, "fit-image")
    result = browser.open((tmp_path / "fit" / "index.html").as_uri() + "#image=0",
                          "document.body.dataset.stage === 'ready'", shot)
    _check_clean(result)
    assert result["meshes"] == 2 and result["painted"] > 500, result
    _keep(shot)
