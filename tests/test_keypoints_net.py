"""The whole-body keypoint network runner (inference/keypoints_net.py) on tiny ONNX models of the
RTMW / DWPose signature made here: SimCC peaks at known bins -> hand-computed image pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.inference import keypoints_net as kn

H, W, K = 32, 24, 133  # a 256 x 192-like input (aspect 3 : 4), shrunk
BX = np.arange(K) % (2 * W)  # the x bin of each keypoint's peak (split ratio 2)
BY = (3 * np.arange(K)) % (2 * H)


class _PeakNet(torch.nn.Module):
    """``simcc_x``: 0.8 at bin ``BX[k]``; ``simcc_y``: 0.9 at ``BY[k]``. Keypoint 0's x peak is the
    mean of the input's first channel / 2 instead: it shows how the crop was normalised."""

    def __init__(self) -> None:
        super().__init__()
        sx, sy = torch.zeros(1, K, 2 * W), torch.zeros(1, K, 2 * H)
        sx[0, np.arange(K), BX] = 0.8
        sy[0, np.arange(K), BY] = 0.9
        first = torch.zeros(1, K, 2 * W)
        first[0, 0, BX[0]] = 1.0
        self.register_buffer("sx", sx)
        self.register_buffer("sy", sy)
        self.register_buffer("first", first)

    def forward(self, x):
        r = x[:, 0].mean(dim=(1, 2)) / 2
        sx = self.sx + self.first * (r - 0.8)[:, None, None]
        return sx, self.sy + 0 * r[:, None, None]


def _export(path, batch_free: bool = True, model=None, size=(H, W), names=("simcc_x", "simcc_y")):
    torch.onnx.export(model or _PeakNet(), (torch.zeros(1, 3, *size),), str(path), input_names=["input"],
                      output_names=list(names), opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, names[0]: {0: "batch"}, names[1]: {0: "batch"}}
                      if batch_free else None)
    return path


def test_crop_transform_by_hand():
    # box 60 x 80 at (100, 50): padded 75 x 100, already 3 : 4; centre (130, 90); 24 px / 75 px
    t = kn.crop_transform([100, 50, 160, 130], (H, W))
    np.testing.assert_allclose(t.size, [75, 100])
    assert t.scale == pytest.approx(0.32)
    np.testing.assert_allclose(t.to_image(np.array([5.0, 10.0])), [108.125, 71.25])
    # a wide box: 40 x 20 -> 50 x 25 padded -> 50 x 66.67 (height grown to the aspect)
    with pytest.raises(ValueError, match="empty"):
        kn.crop_transform([10, 10, 10, 30], (H, W))
    wide = kn.crop_transform([0, 0, 40, 20], (H, W))
    np.testing.assert_allclose(wide.size, [50, 200 / 3])
    # the affine and its inverse agree
    p = np.array([[3.0, 4.0], [150.0, 20.0]])
    m = t.matrix()
    np.testing.assert_allclose(t.to_image(p @ m[:, :2].T + m[:, 2]), p, atol=1e-9)


def test_simcc_decoding_by_hand():
    sx = np.zeros((1, 2, 10))
    sy = np.zeros((1, 2, 8))
    sx[0, 0, 7], sy[0, 0, 3] = 0.9, 0.4  # x 3.5, y 1.5; confidence min(0.9, 0.4)
    sx[0, 1, 2], sy[0, 1, 5] = -0.1, -0.3  # no positive maximum: confidence 0
    out = kn.decode_simcc(sx, sy, 2.0)
    np.testing.assert_allclose(out[0, 0], [3.5, 1.5, 0.4])
    assert out[0, 1, 2] == 0.0


@pytest.mark.parametrize("batch_free", [True, False])
def test_tiny_network_end_to_end(tmp_path, batch_free):
    net = kn.load_keypoint_net(_export(tmp_path / "peaks.onnx", batch_free))
    assert net.input_size == (H, W) and net.split_ratio == 2.0 and net.output_names == ("simcc_x", "simcc_y")
    assert net.batch == (None if batch_free else 1)
    image = np.zeros((200, 300, 3), np.uint8)
    image[...] = (200, 100, 50)  # R, G, B
    boxes = [[100, 50, 160, 130, 0.9], [0, 0, 40, 20, 0.5]]
    kps = net(image, boxes)
    assert kps.shape == (2, K, 3)
    # person 0: input (BX / 2, BY / 2) -> image (x - 12) / 0.32 + 130, (y - 16) / 0.32 + 90
    np.testing.assert_allclose(kps[0, :, 0], (BX / 2 - 12) / 0.32 + 130, atol=1e-9)
    np.testing.assert_allclose(kps[0, :, 1], (BY / 2 - 16) / 0.32 + 90, atol=1e-9)
    # person 1: scale 24 / 50, centre (20, 10)
    np.testing.assert_allclose(kps[1, 1:, 0], (BX[1:] / 2 - 12) / 0.48 + 20, atol=1e-9)  # (keypoint 0: see below)
    np.testing.assert_allclose(kps[1, 1:, 2], 0.8, rtol=1e-6)  # min(0.8, 0.9)
    # keypoint 0 of person 0: x peak = mean normalised R / 2 (the crop lies inside the image)
    r = (200 - 123.675) / 58.395
    assert kps[0, 0, 2] == pytest.approx(r / 2, rel=1e-5)  # < 0.9: the x peak is the smaller
    np.testing.assert_allclose(kps[0, 0, :2], [(0 - 12) / 0.32 + 130, (0 - 16) / 0.32 + 90])
    assert net(image, []).shape == (0, K, 3)


def test_providers_and_cuda(tmp_path):
    import onnxruntime

    assert kn.providers_for("cpu") == ["CPUExecutionProvider"]
    has_cuda_ep = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if has_cuda_ep:
        assert kn.providers_for("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
    else:
        assert kn.providers_for("cuda:1") == ["CPUExecutionProvider"]  # a CPU-only ONNX Runtime: the CPU
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    path = _export(tmp_path / "peaks.onnx")
    net = kn.resolve_keypoint_net(f"onnx:{path}", tmp_path, "cuda")
    assert net.session.get_providers()[0] == ("CUDAExecutionProvider" if has_cuda_ep else "CPUExecutionProvider")
    image = np.full((200, 300, 3), 120, np.uint8)
    boxes = [[100, 50, 160, 130], [0, 0, 40, 20]]
    np.testing.assert_allclose(net(image, boxes), kn.load_keypoint_net(path)(image, boxes), atol=1e-5)


def test_bad_keypoint_models(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ExposeError, match="not a usable ONNX model") as info:
        kn.load_keypoint_net(junk)
    assert "\n" not in info.value.message and "junk.onnx" in info.value.message and info.value.exit_code == 2
    with pytest.raises(ExposeError, match="expose fetch keypoints"):
        kn.load_keypoint_net(tmp_path / "missing.onnx")

    class Body17(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(1, 17, 2 * W) + x.mean(), torch.zeros(1, 17, 2 * H) + x.mean()

    with pytest.raises(ExposeError, match="gives 17 keypoints"):
        kn.load_keypoint_net(_export(tmp_path / "body17.onnx", False, Body17()))

    class Stretched(torch.nn.Module):  # x bins 3 per pixel, y bins 2: no one split ratio
        def forward(self, x):
            return torch.zeros(1, K, 3 * W) + x.mean(), torch.zeros(1, K, 2 * H) + x.mean()

    with pytest.raises(ExposeError, match="one split ratio"):
        kn.load_keypoint_net(_export(tmp_path / "stretched.onnx", False, Stretched()))

    class Heatmap(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(1, K, 8, 6) + x.mean()

    torch.onnx.export(Heatmap(), (torch.zeros(1, 3, H, W),), str(tmp_path / "hm.onnx"), input_names=["input"],
                      dynamo=False)
    with pytest.raises(ExposeError, match="SimCC outputs"):
        kn.load_keypoint_net(tmp_path / "hm.onnx")
    with pytest.raises(ExposeError, match="unknown keypoints"):  # Python: the parameter; the CLI: --keypoints
        kn.resolve_keypoint_net("rtmw", tmp_path / "none.onnx")
    with pytest.raises(ExposeError, match="no keypoint model installed"):
        kn.resolve_keypoint_net("auto", tmp_path / "none.onnx")


def test_fetch_keypoints_checks_archive_and_member(tmp_path, run_cli, monkeypatch):
    import dataclasses
    import hashlib
    import io
    import zipfile
    from urllib.parse import urlsplit

    import expose_cli.cli.fetch as fetch_cli
    from expose_cli.assets import keypoints_model
    from expose_cli.assets.manifest import default_manifest
    from tests.http_server import FileServer

    onnx_bytes = b"tiny keypoint net" * 40
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("rtmw/end2end.onnx", onnx_bytes)
        zf.writestr("rtmw/pipeline.json", b"{}")
    archive = buf.getvalue()
    real = next(a for a in default_manifest() if a.name == "keypoints")
    assert real.url == keypoints_model.ARCHIVE_URL and len(real.sha256) == 64
    server = FileServer()
    base = server.start()
    try:
        server.files[urlsplit(real.url).path] = archive
        # the published archive digest is checked: this stand-in archive is refused, nothing installed
        refused = run_cli("--data-dir", tmp_path / "a", "fetch", "keypoints", "--mirror", base,
                          env={"EXPOSE_RETRY_BACKOFF": "0"})
        assert refused.exit_code == 1 and "not the published" in refused.stderr
        assert not (tmp_path / "a" / "keypoint_models" / "rtmw-l_wholebody_384x288.onnx").exists()
        stand_in = dataclasses.replace(real, sha256=hashlib.sha256(archive).hexdigest())
        monkeypatch.setattr(fetch_cli, "default_manifest",
                            lambda: [stand_in if a.name == "keypoints" else a for a in default_manifest()])
        monkeypatch.setattr(keypoints_model, "ONNX_SHA256", hashlib.sha256(onnx_bytes).hexdigest())
        result = run_cli("--data-dir", tmp_path / "b", "fetch", "keypoints", "--mirror", base)
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "keypoint_models" / "rtmw-l_wholebody_384x288.onnx").read_bytes() == onnx_bytes


def test_infer_save_keypoints(infer_tree, tmp_path, run_cli):
    import json

    import cv2

    from expose_cli.body_models.keypoint_files import read_keypoint_sequence, read_keypoints

    image = np.zeros((200, 300, 3), np.uint8)
    image[...] = (50, 100, 200)  # B, G, R as OpenCV writes it: RGB (200, 100, 50)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": [[100, 50, 160, 130, 0.9]]}))
    writer = cv2.VideoWriter(str(tmp_path / "walk.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (300, 200))
    for _ in range(2):
        writer.write(image)
    writer.release()
    model = _export(tmp_path / "peaks.onnx")
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "a.png", tmp_path / "walk.avi", "--out", out,
                  "--boxes", tmp_path / "boxes.json", "--detector", "full-image", "--format", "json", "--no-track",
                  "--save-keypoints", "--keypoints", f"onnx:{model}")
    assert res.exit_code == 0, res.output
    # the video's frames: box = the whole 300 x 200 frame -> crop 375 x 500 about (150, 100), 24 / 375 px
    frame = read_keypoints(out / "walk" / "frame_000001" / "keypoints.json")
    assert json.loads(frame.path.read_text())["frame"] == 1
    seq = read_keypoint_sequence(out / "walk")  # the video's frames as one sequence
    assert seq.points.shape == (1, 2, 133, 3) and seq.valid.all()
    np.testing.assert_allclose(frame.points[0, 1:, 0], (BX[1:] / 2 - 12) / 0.064 + 150, atol=1e-3)
    saved = read_keypoints(out / "a" / "keypoints.json")
    assert saved.convention == "coco_wholebody" and saved.image_size == (200, 300) and saved.valid.tolist() == [True]
    np.testing.assert_allclose(saved.points[0, :, 0], (BX / 2 - 12) / 0.32 + 130, atol=1e-3)  # as by hand above
    np.testing.assert_allclose(saved.points[0, :, 1], (BY / 2 - 16) / 0.32 + 90, atol=1e-3)
    np.testing.assert_allclose(saved.smplx[0, 20, :2], [(9 / 2 - 12) / 0.32 + 130, (27 / 2 - 16) / 0.32 + 90], atol=1e-3)
    np.testing.assert_allclose(saved.boxes, [[100, 50, 160, 130]])
    assert str(out / "a" / "keypoints.json") in json.loads((out / "a" / "result.json").read_text())["files"]
    # a bad network, or none installed: one line, exit 2, before any work
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    bad = run_cli("--data-dir", infer_tree, "infer", tmp_path / "a.png", "--out", tmp_path / "o2", "--save-keypoints",
                  "--keypoints", f"onnx:{tmp_path / 'junk.onnx'}")
    assert bad.exit_code == 2 and "junk.onnx" in bad.stderr and not (tmp_path / "o2").exists()
    none = run_cli("--data-dir", infer_tree, "infer", tmp_path / "a.png", "--out", tmp_path / "o3", "--save-keypoints")
    assert none.exit_code == 2 and "expose fetch keypoints" in none.stderr and not (tmp_path / "o3").exists()
    # an unknown network name is named with the option's CLI spelling
    unknown = run_cli("--data-dir", infer_tree, "infer", tmp_path / "a.png", "--out", tmp_path / "o4", "--save-keypoints",
                      "--keypoints", "rtmw")
    assert unknown.exit_code == 2 and "unknown --keypoints 'rtmw'" in unknown.stderr and not (tmp_path / "o4").exists()
