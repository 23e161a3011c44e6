"""Kill it anywhere, run it again, get the same result.

`preprocess`, `infer` (images and a tracked video), `train` and `eval` are stopped by SIGINT and by
SIGKILL at points taken from their progress (:mod:`tests.interruptions`), then run again with the
option each one documents (``--resume``; `eval` starts over). The final outputs must equal an
uninterrupted run's (the same HDF5 rows; byte-identical npz, json and motion files and tracks;
the same checkpoint bits), the interrupted run must exit 130 saying how to continue, and no
temporary file may survive the completed run.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from expose_cli.utils.stale import OLD_TEMP_NAME, TEMP_NAME
from tests.interruptions import Zygote

CONTINUE = "run the same command again with --resume to continue"


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    helper = Zygote(tmp_path_factory.mktemp("kills"))
    yield helper
    helper.close()


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if TEMP_NAME.match(p.name) or OLD_TEMP_NAME.match(p.name)]


def files_of(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


# -- infer: images and a tracked video ----------------------------------------------------------------

class _Walkers(torch.nn.Module):
    """Two persons in a 320 x 320 letterboxed input; in bright frames the second one is elsewhere
    (a new track id), so ids differ between the first and the second half of the video."""

    def forward(self, x):
        n = x.shape[0]
        bright = torch.sigmoid(x[:, 2].mean(dim=(1, 2)) * 20)  # dark frames: ~0, bright: ~1
        first = torch.tensor([10.0, 20.0, 140.0, 230.0, 0.9], dtype=x.dtype).expand(n, 5)
        second = torch.tensor([180.0, 30.0, 250.0, 130.0, 0.8], dtype=x.dtype).expand(n, 5)
        second = second + torch.stack([0 * bright, 100 * bright, 50 * bright, 100 * bright, 0 * bright], 1)
        return torch.stack([first, second], 1), torch.zeros(n, 2, dtype=torch.int64)


def _infer_inputs(tmp_path: Path) -> list[Path]:
    import cv2

    model = tmp_path / "walkers.onnx"
    torch.onnx.export(_Walkers(), (torch.zeros(1, 3, 320, 320),), str(model), input_names=["input"],
                      output_names=["dets", "labels"], dynamo=False)
    writer = cv2.VideoWriter(str(tmp_path / "walk.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(6):
        writer.write(np.full((240, 320, 3), (40 if i < 3 else 200) + 4 * i, np.uint8))
    writer.release()
    (tmp_path / "photos").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "photos" / f"p{i}.png"), np.full((200, 160, 3), 90 + 30 * i, np.uint8))
    return [model, tmp_path / "walk.avi", tmp_path / "photos"]


def _same_outputs(ref: Path, out: Path) -> None:
    """Every file of ``ref`` in ``out`` with the same bytes (json: the same content once the
    output folder's name and the timings are put aside); ``summary.json`` aside."""
    want, got = files_of(ref), files_of(out)
    assert sorted(got) == sorted(want)
    for name, path in want.items():
        if name == "summary.json":
            continue
        a, b = path.read_bytes(), got[name].read_bytes()
        if name.endswith("result.json"):
            a, b = (json.loads(x.decode().replace(str(root), "OUT")) for x, root in ((a, ref), (b, out)))
            for record in (a, b):
                record.pop("timings")
        elif name.endswith(".json"):
            a, b = (x.decode().replace(str(root), "OUT") for x, root in ((a, ref), (b, out)))
        assert a == b, name


def test_infer_killed_twice_and_resumed_equals_one_run(zygote, infer_tree, tmp_path, run_cli):
    model, video, photos = _infer_inputs(tmp_path)

    def args(out: Path, *extra: str) -> list:
        return ["--data-dir", infer_tree, "-q", "--set", "body.img_res=64", "infer", video, photos, "--ckpt", "body",
                "--detector", f"onnx:{model}", "--format", "npz,json", "--batch-size", "3", "--out", out, *extra]

    ref = run_cli(*args(tmp_path / "ref"))
    assert ref.exit_code == 0, ref.output
    tracks = json.loads((tmp_path / "ref" / "walk" / "tracks.json").read_text())
    assert [f["track_ids"] for f in tracks["frames"]] == [[0, 1]] * 3 + [[0, 2]] * 3  # a new id half-way
    out = tmp_path / "out"
    code, log = zygote.kill_at(args(out), "unit", 2, signal.SIGINT)  # Ctrl-C after 2 frames
    assert code == 130 and f"interrupted; {CONTINUE}" in log, log
    assert not temp_files(out)
    code, log = zygote.kill_at(args(out, "--resume"), "unit", 5, signal.SIGKILL)  # kill -9 after frame 4
    assert code == -signal.SIGKILL, log
    done = run_cli(*args(out, "--resume"))
    assert done.exit_code == 0, done.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and sum(bool(r.get("skipped")) for r in summary["inputs"]) >= 4
    _same_outputs(tmp_path / "ref", out)
    assert not temp_files(out)
