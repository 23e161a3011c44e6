"""`expose --help` and the commands that run no network start without importing torch (~3 s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

PROBE = """
import sys
from expose_cli.cli.app import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "smplx", "onnx", "onnxruntime", "openvino") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
sys.exit(code)
"""


def _heavy_modules(*args: str) -> tuple[int, str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=120)
    line = [x for x in res.stdout.splitlines() if x.startswith("HEAVY:")]
    assert line, res.stdout + res.stderr
    return res.returncode, line[-1][len("HEAVY:"):]


def test_help_imports_no_torch():
    for args in (["--help"], ["preprocess", "--help"], ["export", "onnx", "--help"], ["--version"]):
        code, heavy = _heavy_modules(*args)
        assert code == 0 and heavy == "", (args, heavy)


def test_the_probe_sees_torch_when_a_command_loads_it():
    # the same probe on a command that does import torch, so an empty answer above means something
    code, heavy = _heavy_modules("export", "onnx", "body", "--ckpt", "/nonexistent-probe.pth", "--out", "/nonexistent/x.onnx")
    assert "torch" in heavy.split(",")
