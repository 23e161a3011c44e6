"""``--backend auto`` (the default): the fastest runtime installed, per device, named where it ran;
and the cache of exported graphs under the data tree (hit, miss, stale, damaged)."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
import torch

from expose_cli.inference import backends, onnx_export
from expose_cli.inference.graph_cache import KEEP, GraphCache, file_digest
from expose_cli.io.paths import DataTree
from expose_cli.models import build_predictor, collate, crop_person
from expose_cli.models.checkpoint import load_net

CPU = torch.device("cpu")
HALF_MM = 5e-4  # metres


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def body_predictor(small_ckpts, standin_tree):
    return build_predictor(load_net(small_ckpts["body"])[0], DataTree(standin_tree))


def person_batch(n: int = 2):
    img = (np.random.default_rng(1).random((300, 400, 3)) * 255).astype(np.uint8)
    return collate([crop_person(img, b, img_res=256) for b in [[120, 20, 100, 260], [40, 60, 200, 180]][:n]])


def test_auto_order_follows_what_is_installed(monkeypatch):
    assert backends.auto_order("fp32", CPU) == ["openvino", "onnxruntime", "torch"]  # make install: all three
    assert backends.auto_order("bf16", CPU) == ["openvino", "torch"]  # onnxruntime runs fp32 only
    assert backends.auto_order("fp32", torch.device("cuda")) == ["torch"]  # a GPU: torch
    assert backends.check_choice("auto", "fp16", torch.device("cuda")) == "fp16"
    hide(monkeypatch, "openvino")
    assert backends.auto_order("fp32", CPU) == ["onnxruntime", "torch"]
    assert backends.auto_order("bf16", CPU) == ["torch"]
    hide(monkeypatch, "onnxruntime")
    assert backends.auto_order("fp32", CPU) == ["torch"]
    assert backends.check_choice("auto", "fp32", CPU) == "fp32"


def test_auto_runs_the_first_installed_and_names_it(monkeypatch, small_ckpts, standin_tree, tmp_path):
    base = body_predictor(small_ckpts, standin_tree)
    batch = person_batch()
    ref = base(batch)
    hide(monkeypatch, "openvino")
    fast = backends.make_predictor(base, "auto", "fp32", threads=1, cache=GraphCache(tmp_path))
    assert backends.runtime_info(fast) == {"backend": "onnxruntime", "precision": "fp32", "device": "cpu"}
    assert (fast(batch).vertices - ref.vertices).norm(dim=-1).max() < HALF_MM
    hide(monkeypatch, "onnxruntime")
    plain = backends.make_predictor(base, "auto", "fp32", threads=1, cache=GraphCache(tmp_path))
    assert plain is base and backends.runtime_info(plain)["backend"] == "torch"


def test_auto_falls_back_with_one_line(monkeypatch, small_ckpts, standin_tree, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("no CPU plugin\nsecond line")

    monkeypatch.setitem(backends.RUNTIMES, "openvino", dataclasses.replace(backends.RUNTIMES["openvino"], runner=broken))
    said = []
    fast = backends.make_predictor(body_predictor(small_ckpts, standin_tree), "auto", "fp32", threads=1,
                                   cache=GraphCache(tmp_path), warn=said.append)
    assert said == ["--backend auto: openvino failed (no CPU plugin); running onnxruntime instead"]
    assert backends.runtime_info(fast)["backend"] == "onnxruntime"
    with pytest.raises(RuntimeError, match="no CPU plugin"):  # asked for by name: no fallback
        backends.make_predictor(body_predictor(small_ckpts, standin_tree), "openvino", "fp32", cache=GraphCache(tmp_path))


@pytest.mark.parametrize("hidden, ran", [(("openvino",), "onnxruntime"), (("openvino", "onnxruntime"), "torch")])
def test_infer_names_the_runtime_that_ran(hidden, ran, monkeypatch, infer_tree, tmp_path, run_cli):
    hide(monkeypatch, *hidden)
    img = (np.random.default_rng(0).random((200, 160, 3)) * 255).astype(np.uint8)
    import cv2

    cv2.imwrite(str(tmp_path / "one.png"), img)
    out = tmp_path / "out"
    res = run_cli("--data-dir", infer_tree, "--device", "cpu", "infer", tmp_path / "one.png", "--ckpt", "body",
                  "--out", out, "--detector", "full-image", "--format", "npz")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runtime"] == {"backend": ran, "precision": "fp32", "device": "cpu"}
    assert f"ran on {ran} fp32 (cpu)" in res.output


def test_eval_records_the_runtime_that_ran(small_ckpts, standin_tree, tmp_path, capsys):
    from expose_cli.cli.common import Settings
    from expose_cli.cli.evaluate import _record_path

    fast = backends.make_predictor(body_predictor(small_ckpts, standin_tree), "onnxruntime", "fp32", threads=1,
                                   cache=GraphCache(tmp_path))
    info_d: dict = {}
    _record_path(Settings(data_dir=tmp_path), fast, "auto", "fp32", info_d)
    assert (info_d["backend"], info_d["precision"], info_d["backend_asked"]) == ("onnxruntime", "fp32", "auto")
    assert "ran on onnxruntime fp32 (cpu)" in capsys.readouterr().err


# -- the graph cache ---------------------------------------------------------------------------------

@pytest.fixture()
def exports(monkeypatch) -> list[str]:
    """The networks exported (a spy on ``onnx_export.export_network``)."""
    calls: list[str] = []
    real = onnx_export.export_network

    def spy(net, spec, path, *args, **kwargs):
        calls.append(spec.name)
        return real(net, spec, path, *args, **kwargs)

    monkeypatch.setattr(onnx_export, "export_network", spy)
    return calls


def test_graph_cache_hit_miss_stale_damaged(exports, small_ckpts, standin_tree, tmp_path):
    base, batch = body_predictor(small_ckpts, standin_tree), person_batch()
    said: list[str] = []
    cache = GraphCache(tmp_path / "cache", warn=said.append)
    ref = base(batch).vertices

    def run() -> torch.Tensor:
        return backends.make_predictor(base, "onnxruntime", "fp32", threads=1, cache=cache)(batch).vertices

    assert (run() - ref).norm(dim=-1).max() < HALF_MM and exports == ["body"]  # miss: exported
    graphs = sorted(cache.folder.glob("*.onnx"))
    assert len(graphs) == 1 and graphs[0].with_suffix(".json").is_file()
    assert (run() - ref).norm(dim=-1).max() < HALF_MM and exports == ["body"]  # hit: not exported again
    # damaged: a truncated graph is exported again, with one line, never used
    data = graphs[0].read_bytes()
    graphs[0].write_bytes(data[: len(data) // 2])
    assert (run() - ref).norm(dim=-1).max() < HALF_MM and exports == ["body", "body"]
    assert len(said) == 1 and str(graphs[0]) in said[0] and "damaged" in said[0]
    record = json.loads(graphs[0].with_suffix(".json").read_text())
    assert file_digest(graphs[0]) == (record["size"], record["sha256"])
    # stale: a changed checkpoint gets a new key (a new entry); the old one is not used
    with torch.no_grad():
        base.net.backbone.conv1.weight.mul_(1.01)
    new_ref = base(batch).vertices
    assert (run() - new_ref).norm(dim=-1).max() < HALF_MM and exports == ["body"] * 3
    assert len(list(cache.folder.glob("*.onnx"))) == 2 and len(said) == 1


def test_graph_cache_keys_and_records(tmp_path):
    said: list[str] = []
    cache = GraphCache(tmp_path, warn=said.append)
    written: list[str] = []

    def export(path):
        written.append(path.name)
        path.write_bytes(b"graph of " + path.name.encode())
        return path

    parts = {"weights_sha256": "a" * 64, "config": "{}", "opset": "17", "runtime": "openvino 2026.4.1"}
    first = cache.graph("body-body", parts, export)
    assert cache.graph("body-body", dict(parts), export) == first and len(written) == 1  # hit
    first.with_suffix(".json").write_text("{not json")  # a damaged record: exported again
    assert cache.graph("body-body", parts, export) == first and len(written) == 2
    assert said == [f"{first}: cached graph has no readable record; exporting it again"]
    for change in ({"config": '{"img_res": 192}'}, {"opset": "18"}, {"runtime": "openvino 2027.0"}):
        assert cache.graph("body-body", {**parts, **change}, export) != first  # stale: another key
    assert len(written) == 5 and len(said) == 1
    assert len(list(tmp_path.glob("body-body-*.onnx"))) == KEEP and not first.exists()  # the oldest went
