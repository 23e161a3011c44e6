"""`benchmarks/gpu_check.py --dry-run`: the GPU check's every section runs (CPU, tiny sizes), and
its one JSON carries the figures docs/train.md and docs/infer.md need."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_gpu_check():
    sys.path.insert(0, str(BENCHMARKS))  # its `conditions` import
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARKS / "gpu_check.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_gpu_check_dry_run_prints_one_json_with_every_section(standin_tree, tmp_path, capsys):
    gpu_check = load_gpu_check()
    gpu_check.main(["--dry-run", "--data-dir", str(standin_tree), "--json", str(tmp_path / "out.json")])
    result = json.loads(capsys.readouterr().out)  # stdout is the JSON alone
    assert result == json.loads((tmp_path / "out.json").read_text())
    plan = gpu_check.DRY
    assert result["dry_run"] is True and result["gpu"] is None
    tests = result["tests_gpu"]
    assert tests["exit_code"] == 0 and tests["counts"]["tests collected"] >= 10, tests
    assert set(result["body"]) == set(plan.precisions) and set(gpu_check.Plan().precisions) == {"fp32", "bf16"}
    for precision in plan.precisions:
        body = result["body"][precision]
        assert body["steps"] == plan.steps - plan.warmup and body["losses_finite"], body
        assert body["validations"] == plan.steps // plan.val_every and len(body["validation_s"]) == 1
        assert "PA-MPJPE" in body["validation_metrics"][0] and body["step_samples_per_s"] > 0
    full = result["full"]
    assert full["steps"] == plan.full_steps and full["losses_finite"] and full["validations"] == 0
    assert set(result["loader"]["samples_per_s"]) == {str(w) for w in plan.worker_counts}
    assert result["loader"]["workers_needed_estimate"] >= 1
    for fmt in ("npz", "obj"):
        assert result["infer"][fmt]["failed"] == 0 and result["infer"][fmt]["images_per_s"] > 0
    assert result["model_alone"]["batch"] == plan.model_batch and result["model_alone"]["persons_per_s"] > 0
