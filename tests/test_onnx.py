"""ONNX export (`expose export onnx`) and the CPU backends (onnxruntime, OpenVINO, torch bf16).

The reference is the PyTorch model (whose agreement with MMHuman3D tests/test_models.py proves):
the exported graphs and the backends must give its vertices within 0.5 mm.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import onnx  # make install gives the onnx, onnxruntime and openvino extras (tests/test_install.py)
import onnxruntime as ort
import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.models import build_predictor, collate, crop_person, load_net
from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint

HALF_MM = 5e-4  # metres


@pytest.fixture(scope="module")
def small_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_ckpt")
    for kind in ("body", "hand", "face", "expose"):
        write_mmhuman3d_checkpoint(root / f"{kind}.pth", kind, seed=5, small=True)
    return root


def person_batch(kind: str, n: int = 3):
    rng = np.random.default_rng(1)
    img = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    res = 224 if kind == "hand" else 256
    boxes = [[120, 20, 100, 260], [40, 60, 200, 180], [200, 100, 150, 150]][:n]
    return collate([crop_person(img, b, img_res=res, keep_full_image=kind == "expose") for b in boxes])


def _body_vertices(predictor, kind: str, out: dict) -> torch.Tensor:
    """Vertices of the body model posed by a graph's decoded outputs (numpy arrays)."""
    t = {k: torch.from_numpy(v) for k, v in out.items()}
    eye = torch.eye(3).expand(len(t["betas"]), 1, 3, 3)
    if kind == "body":
        return predictor._smplx(t, t["betas"], t["expression"]).vertices
    if kind == "hand":
        return predictor.body_model(global_orient=t["global_orient"], hand_pose=t["right_hand_pose"],
                                    betas=t["betas"]).vertices
    return predictor.body_model(global_orient=t["global_orient"], neck_pose=eye, jaw_pose=t["jaw_pose"], leye_pose=eye,
                                reye_pose=eye, betas=t["betas"], expression=t["expression"]).vertices


@pytest.mark.parametrize("kind", ["body", "hand", "face"])
def test_exported_network_gives_torch_vertices(kind, small_ckpts, standin_tree, tmp_path, run_cli):
    path = tmp_path / f"{kind}.onnx"
    res = run_cli("--data-dir", standin_tree, "export", "onnx", kind, "--ckpt", small_ckpts / f"{kind}.pth",
                  "--out", path)
    assert res.exit_code == 0, res.output
    predictor = build_predictor(load_net(small_ckpts / f"{kind}.pth")[0], DataTree(standin_tree))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["img"]
    assert session.get_inputs()[0].shape[0] == "batch"
    for n in (1, 3):  # the batch axis is dynamic
        batch = person_batch(kind, n)
        names = [o.name for o in session.get_outputs()]
        out = dict(zip(names, session.run(None, {"img": batch.img.numpy()}), strict=True))
        ref = predictor(batch)
        assert out["params"].shape[0] == n
        torch.testing.assert_close(torch.from_numpy(out["camera"]), ref.camera, atol=1e-4, rtol=0)
        vertices = _body_vertices(predictor, kind, out)
        assert (vertices - ref.vertices).norm(dim=-1).max() < HALF_MM


def test_full_model_exports_three_networks_with_conditions(small_ckpts, standin_tree, tmp_path, run_cli):
    res = run_cli("--data-dir", standin_tree, "export", "onnx", "expose", "--ckpt", small_ckpts / "expose.pth",
                  "--out", tmp_path / "x.onnx")
    assert res.exit_code == 1 and "must be a folder" in res.stderr and len(res.stderr.strip().splitlines()) == 2
    res = run_cli("--data-dir", standin_tree, "export", "onnx", "expose", "--ckpt", small_ckpts / "expose.pth",
                  "--out", tmp_path / "x")
    assert res.exit_code == 0, res.output
    net = load_net(small_ckpts / "expose.pth")[0]
    rng = np.random.default_rng(0)
    for name, res_px in (("hand", 224), ("face", 256)):
        session = ort.InferenceSession(str(tmp_path / "x" / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["img", "cond"]
        head, backbone = getattr(net, f"{name}_head"), getattr(net, f"{name}_backbone")
        img = torch.from_numpy(rng.standard_normal((2, 3, res_px, res_px)).astype(np.float32))
        cond = head.regressor.mean_param.expand(2, -1) + 0.1 * torch.randn(2, head.num_params)
        out = session.run(None, {"img": img.numpy(), "cond": cond.numpy()})
        with torch.no_grad():
            ref = head(backbone(img), cond)
        torch.testing.assert_close(torch.from_numpy(out[0]), ref.stages[-1], atol=1e-4, rtol=0)
        torch.testing.assert_close(torch.from_numpy(out[1]), ref.rotations["global_orient"], atol=1e-4, rtol=0)


def test_foreign_or_too_new_graph_is_one_line(small_ckpts, tmp_path):
    from expose_cli.inference.onnx_export import check_graph, export_onnx, ort_session

    path = export_onnx(load_net(small_ckpts / "hand.pth")[0], tmp_path / "hand.onnx")[0]
    with pytest.raises(ExposeError, match=r"hand.onnx: the hand network of a hand model; expected the body"):
        check_graph(path, "body", "body")
    model = onnx.load(str(path))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 99
    onnx.save(model, str(tmp_path / "new.onnx"))
    with pytest.raises(ExposeError, match=r"new.onnx: uses ONNX opset 99, newer than onnxruntime") as info:
        ort_session(tmp_path / "new.onnx", 1)
    assert "\n" not in info.value.message
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(ExposeError, match="junk.onnx: not an ONNX model"):
        check_graph(tmp_path / "junk.onnx", "body", "body")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_give_torch_vertices(backend, small_ckpts, standin_tree):
    importlib.import_module(backend)  # installed by make install: a missing one fails, never skips
    from expose_cli.inference.backends import make_predictor

    kind = "expose" if backend == "onnxruntime" else "body"  # the full model's three backbones once
    base = build_predictor(load_net(small_ckpts / f"{kind}.pth")[0], DataTree(standin_tree))
    fast = make_predictor(base, backend, "fp32", threads=1)
    batch = person_batch(kind)
    ref, pred = base(batch), fast(batch)
    assert fast is not base and fast.backend == backend
    assert fast.base is base and fast.net is base.net and fast.device == base.device  # wraps it, sharing its modules
    assert (pred.vertices - ref.vertices).norm(dim=-1).max() < HALF_MM
    if kind == "expose":
        torch.testing.assert_close(pred.hand_boxes["left"]["center"], ref.hand_boxes["left"]["center"], atol=0.05, rtol=0)


def test_bf16_path_runs_reduced_and_reports_its_deviation(small_ckpts, standin_tree):
    from expose_cli.inference.backends import BackendPredictor, measured_predictor

    base = build_predictor(load_net(small_ckpts / "body.pth")[0], DataTree(standin_tree))
    measured = measured_predictor(base, "torch", "bf16")
    batch = person_batch("body")
    pred = measured(batch)
    assert isinstance(measured.fast, BackendPredictor)
    ref = base(batch)
    dist_mm = (pred.vertices - ref.vertices).norm(dim=-1) * 1000
    assert pred.vertices.dtype == torch.float32 and dist_mm.max() > 0  # bf16 really ran
    assert measured.deviation["max_mm"] == pytest.approx(float(dist_mm.max()), abs=1e-4)
    assert measured_predictor(base, "torch", "fp32") is base  # the exact path is not wrapped


def test_backend_choice_errors(monkeypatch):
    import builtins

    from expose_cli.cli.common import error_text
    from expose_cli.inference import backends

    cpu = torch.device("cpu")
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    said = []
    assert backends.check_choice("torch", "bf16", cpu, warn=said.append) == "fp32"
    assert len(said) == 1 and "no native bf16" in said[0]
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    assert backends.check_choice("openvino", "bf16", cpu) == "bf16"
    with pytest.raises(ExposeError, match="fp16 needs a CUDA device"):
        backends.check_choice("torch", "fp16", cpu)
    with pytest.raises(ExposeError, match="unknown backend 'tensorrt'"):  # the CLI: --backend (test_flag_hints)
        backends.check_choice("tensorrt", "fp32", cpu)
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    with pytest.raises(ExposeError) as info:
        backends.require("openvino")
    assert error_text(info.value)[0] == (  # as the CLI prints it (Python: "backend openvino ...")
                                  "--backend openvino needs the openvino and onnx packages: "
                                  "pip install 'expose-cli[openvino]'") and info.value.hint is None


@pytest.fixture(scope="module")
def hand_eval_tree(standin_tree, tmp_path_factory):
    from expose_cli.testing.raw_datasets import write_freihand
    from expose_cli.testing.trees import link_tree

    root = link_tree(standin_tree, tmp_path_factory.mktemp("backend_eval"))  # hard links: no 1 GB copy
    write_mmhuman3d_checkpoint(root / "pretrained_models" / "resnet18_hmr_expose_hand.pth", "hand", seed=2, small=True)
    write_freihand(root / "datasets" / "FreiHand", unique=5, eval_samples=3)
    return root


def test_eval_backends_and_the_fast_path_deviation_in_json(hand_eval_tree, tmp_path, run_cli, monkeypatch):
    import json

    from expose_cli.inference import backends

    data = ["--data-dir", hand_eval_tree]
    assert run_cli(*data, "-q", "preprocess", "freihand", "--split", "test").exit_code == 0
    results = {}
    for name, extra in (("exact", ["--backend", "torch"]), ("auto", []),  # auto: openvino (make install)
                        ("bf16", ["--backend", "torch", "--precision", "bf16"])):
        monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
        res = run_cli(*data, "eval", "freihand", "--json", tmp_path / f"{name}.json", *extra)
        assert res.exit_code == 0, res.output
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    ours = {k: {r["metric"]: r["ours"] for r in v["metrics"]} for k, v in results.items()}
    assert ours["auto"] == pytest.approx(ours["exact"], abs=0.05)  # mm: the exact path on another runtime
    assert "fast_path_deviation" not in results["exact"]
    assert (results["auto"]["backend"], results["auto"]["backend_asked"]) == ("openvino", "auto")
    assert results["auto"]["fast_path_deviation"]["max_mm"] < 0.01  # any path off torch fp32 is measured
    dev = results["bf16"]["fast_path_deviation"]
    assert results["bf16"]["precision"] == "bf16" and dev["samples"] == 3 and 0 < dev["mean_mm"] <= dev["max_mm"]
    # without native bf16: a warning line, fp32 runs, and the results say so
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    res = run_cli(*data, "eval", "freihand", "--json", tmp_path / "nobf16.json", "--precision", "bf16")
    assert res.exit_code == 0 and "warning: --precision bf16: this CPU has no native bf16" in res.stderr
    assert json.loads((tmp_path / "nobf16.json").read_text())["precision"] == "fp32"


def test_infer_with_a_missing_extra_is_one_line(standin_tree, tmp_path, run_cli, monkeypatch):
    import sys

    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((64, 48, 3), 100, np.uint8))
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    res = run_cli("--data-dir", standin_tree, "--device", "cpu", "infer", tmp_path / "a.jpg", "--out", tmp_path / "o",
                  "--backend", "openvino")
    assert res.exit_code == 2  # bad usage, found before any work
    assert res.stderr.strip() == ("error: --backend openvino needs the openvino and onnx packages: "
                                  "pip install 'expose-cli[openvino]'")


ALT_STACK_CHECK = r"""
import ctypes, faulthandler, gc, signal, sys, threading
import numpy as np, onnx, torch
from onnx import TensorProto, helper
from expose_cli.inference.backends import _openvino_runner

class Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

def alt_stack_mapped() -> bool:
    s = Stack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(s)) == 0 and s.ss_sp
    spans = (line.split()[0].split("-") for line in open("/proc/self/maps"))
    return any(int(a, 16) <= s.ss_sp < int(b, 16) for a, b in spans)

faulthandler.enable()  # as pytest and python -X faulthandler: the main thread gets an alternate stack
x = helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])
graph = helper.make_graph([helper.make_node("Relu", ["img"], ["out"])], "g", [x], [y])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
runners = [_openvino_runner(sys.argv[1], 1, "fp32")]
assert runners[0](torch.tensor([[-1.0, 2.0, -3.0, 4.0]])).tolist() == [[0.0, 2.0, 0.0, 4.0]]
dropper = threading.Thread(target=lambda: (runners.clear(), gc.collect()))  # freed elsewhere, as a pool does
dropper.start(); dropper.join()
assert alt_stack_mapped(), "the main thread's alternate signal stack was unmapped"
seen = []
signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
signal.raise_signal(signal.SIGUSR1)  # handled on the alternate stack
assert seen == [1]
print("ok")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
def test_signals_after_an_openvino_predictor_is_freed_are_handled(tmp_path):
    """OpenVINO's CPU plugin gives the thread that loads it an alternate signal stack and unmaps it
    when the plugin is unloaded; a signal handled after that crashed the process (or wrote over
    reused memory). A fresh process: this one has loaded the plugin already."""
    proc = subprocess.run([sys.executable, "-c", ALT_STACK_CHECK, str(tmp_path / "relu.onnx")],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])
