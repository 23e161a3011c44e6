"""``--precision int8``: quantized backbones in ONNX Runtime and OpenVINO, the calibration set, the
cached int8 graphs and the one-line refusals."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import onnx
import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.inference import backends, quantization
from expose_cli.inference.graph_cache import GraphCache
from expose_cli.io.paths import DataTree
from expose_cli.models import build_predictor, collate, crop_person
from expose_cli.models.checkpoint import load_net

CPU = torch.device("cpu")
#: Fewer calibration scenes than the default 32: the same code path, a quarter of the time.
FEW = quantization.QuantSettings(crops=8)


def body_predictor(small_ckpts, standin_tree):
    return build_predictor(load_net(small_ckpts["body"])[0], DataTree(standin_tree))


def held_out_batch(img_res: int, n: int = 4):
    """Persons in scenes the calibration set does not hold (another seed)."""
    return collate([crop_person(*quantization.calibration_scene(i, seed=99), img_res=img_res) for i in range(n)])


def test_calibration_scenes_are_fixed():
    img, box = quantization.calibration_scene(3)
    again, same_box = quantization.calibration_scene(3)
    assert img.dtype == np.uint8 and img.shape == (quantization.SCENE_SIDE,) * 2 + (3,)
    assert np.array_equal(img, again) and box == same_box  # (seed, index) alone decide a scene
    assert not np.array_equal(img, quantization.calibration_scene(4)[0])
    assert not np.array_equal(img, quantization.calibration_scene(3, seed=1)[0])
    x, y, w, h = box
    assert 0 <= x and 0 <= y and x + w <= img.shape[1] and y + h <= img.shape[0]
    assert img.std() > 20  # an image-like spread of values, not a flat field


def test_each_backbone_is_calibrated_on_what_the_model_feeds_it(small_ckpts, standin_tree):
    """The body network on the scenes' person crops themselves; the full model's hand and face
    networks on the crops its attention step takes (two hands and one face per person)."""
    base = build_predictor(load_net(small_ckpts["expose"])[0], DataTree(standin_tree))
    inputs = quantization.calibration_inputs(base, quantization.QuantSettings(crops=3))
    sides = base.net.cfg.crop_sides()
    assert {k: v.shape for k, v in inputs.items()} == {
        "backbone": (3, 3, base.img_res, base.img_res), "hand_backbone": (6, 3, sides["hand"], sides["hand"]),
        "face_backbone": (3, 3, sides["face"], sides["face"])}
    crops = [crop_person(*quantization.calibration_scene(i), img_res=base.img_res).img.numpy() for i in range(3)]
    assert np.array_equal(inputs["backbone"], np.stack(crops))


def int8_convolutions(path) -> tuple[int, int]:
    """``(convolutions, those whose weight is an int8 initializer through DequantizeLinear)``."""
    graph = onnx.load(str(path)).graph
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    return len(convs), sum(n.input[1] in dequantized for n in convs)


def test_int8_runs_close_to_fp32(small_ckpts, standin_tree, tmp_path):
    """The int8 backbone's features differ from fp32's by a few percent at most: each quantized
    tensor has 256 levels over its calibrated range, a rounding error of step / sqrt(12) = 0.11% of
    the range rms, about 0.5-1% of a post-BatchNorm tensor's own rms; the normalisations keep that
    relative error from compounding over the depth, so the features end a few percent off (1.7%
    measured here). 5% is allowed; ranges calibrated 20x too narrow gave 9%. That it is not fp32
    shows as a difference 1000x fp32's (~1e-6). The vertices stay under the 2 mm mean of the
    issue's bar. The graph is quantized once and read by both runtimes."""
    base = body_predictor(small_ckpts, standin_tree)
    batch = held_out_batch(base.img_res)
    cache, said = GraphCache(tmp_path), []
    ref = base(batch)
    for backend, ran in (("onnxruntime", "onnxruntime"), ("auto", "openvino")):
        fast = backends.make_predictor(base, backend, "int8", threads=1, cache=cache, quant=FEW, info=said.append)
        assert backends.runtime_info(fast) == {"backend": ran, "precision": "int8", "device": "cpu"}
        exact = backends.make_predictor(base, ran, "fp32", threads=1, cache=cache)
        int8, fp32 = fast.runners["backbone"](batch.img), exact.runners["backbone"](batch.img)
        rel = float((int8 - fp32).norm() / fp32.norm())
        assert 1e-3 < rel < 0.05, (ran, rel)
        assert backends.vertex_deviation_mm(fast(batch), ref)["mean_mm"] < 2.0
    assert said == ["quantizing the body backbone to int8, calibrated on 8 scenes (once: the graph is cached)"]
    graph = next(cache.folder.glob("body-body-int8-*.onnx"))
    convs, quantized = int8_convolutions(graph)
    assert convs > 20 and quantized == convs  # every convolution has int8 weights


@pytest.fixture()
def quantized(monkeypatch) -> list[str]:
    """The graphs quantized: a spy that copies the fp32 graph instead (the cache's bookkeeping is
    what is tested; the quantizer has its own test above)."""
    calls: list[str] = []

    def copy(fp32, out, inputs, settings):
        calls.append(settings.describe())
        shutil.copyfile(fp32, out)
        return out

    monkeypatch.setattr(quantization, "quantize_graph", copy)
    monkeypatch.setattr(quantization, "calibration_inputs", lambda base, quant: {"backbone": None})
    return calls


def test_int8_graph_cache_key_follows_the_settings(quantized, small_ckpts, standin_tree, tmp_path):
    base, said = body_predictor(small_ckpts, standin_tree), []
    cache = GraphCache(tmp_path, warn=said.append)

    def build(precision="int8", quant=FEW):
        return backends.make_predictor(base, "onnxruntime", precision, threads=1, cache=cache, quant=quant)

    build("fp32")
    build()
    assert len(quantized) == 1  # the fp32 entry is not taken for the int8 one
    build()
    assert len(quantized) == 1  # hit
    build(quant=quantization.QuantSettings(crops=8, seed=1))
    assert len(quantized) == 2 and quantized[0] != quantized[1]  # other settings: their own entry
    graph = sorted(cache.folder.glob("body-body-int8-*.onnx"), key=lambda p: p.stat().st_mtime)[-1]
    graph.write_bytes(graph.read_bytes()[:100])  # damaged: quantized again, never used
    build(quant=quantization.QuantSettings(crops=8, seed=1))
    assert len(quantized) == 3 and len(said) == 1 and "damaged" in said[0]
    # every setting is in the key
    others = [{"crops": 9}, {"seed": 1}, {"method": "entropy"}, {"per_channel": False}]
    keys = {FEW.describe(), *(quantization.QuantSettings(**{"crops": 8, **o}).describe() for o in others)}
    assert len(keys) == 5


def hide(monkeypatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_int8_refusals_are_one_line(monkeypatch):
    assert backends.auto_order("int8", CPU) == ["openvino", "onnxruntime"]  # never torch
    assert backends.check_choice("auto", "int8", CPU) == "int8"
    assert backends.check_choice("auto", "fp32", CPU) == "fp32"  # auto never picks int8 itself
    cases = [(("torch", CPU), "precision int8 runs in onnxruntime or openvino, not in torch"),
             (("auto", torch.device("cuda")), "precision int8 runs on the CPU, not on cuda"),
             (("openvino", torch.device("cuda")), "precision int8 runs on the CPU, not on cuda")]
    for (backend, device), message in cases:
        with pytest.raises(ExposeError, match=message) as caught:
            backends.check_choice(backend, "int8", device)
        assert "\n" not in str(caught.value) and caught.value.exit_code == 2
    hide(monkeypatch, "onnxruntime")  # OpenVINO alone: no quantizer
    with pytest.raises(ExposeError, match=r"int8 quantizes the graphs with onnxruntime.*pip install 'expose-cli\[onnx\]'"):
        backends.check_choice("openvino", "int8", CPU)
    hide(monkeypatch, "openvino")
    with pytest.raises(ExposeError, match="int8 needs onnxruntime or openvino, and neither is installed"):
        backends.check_choice("auto", "int8", CPU)


def test_infer_refuses_int8_in_torch(infer_tree, tmp_path, run_cli):
    (tmp_path / "in").mkdir()
    res = run_cli("--data-dir", infer_tree, "--device", "cpu", "infer", tmp_path / "in", "--ckpt", "body",
                  "--out", tmp_path / "out", "--backend", "torch", "--precision", "int8")
    assert res.exit_code == 2 and "--precision int8 runs in onnxruntime or openvino, not in torch" in res.output
    assert not (tmp_path / "out").exists()
