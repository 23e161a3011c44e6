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


def outputs(folder: Path) -> list[str]:
    """The names in ``folder`` that are not hidden."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


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
                "--detector", f"onnx:{model}", "--format", "npz,json", "--batch-size", "3", "--render", "--out", out,
                *extra]  # --render: overlay.mp4 is written as frames come, so a resumed run re-reads the earlier ones

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


# -- train: bit-exact checkpoints ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_body(standin_tree, tmp_path_factory):
    from expose_cli.io.paths import DataTree
    from expose_cli.training.synth import write_synth

    return write_synth(tmp_path_factory.mktemp("synth"), "body", 4, DataTree(standin_tree), seed=0, size=64)


def _checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _same_checkpoint(a: dict, b: dict, where: str = "") -> None:
    """Equal nested dicts/lists, tensors bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _same_checkpoint(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_checkpoint(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_train_killed_twice_and_resumed_gives_the_same_checkpoint(zygote, standin_tree, synth_body, tmp_path,
                                                                 run_cli):
    def args(out: Path, *extra: str) -> list:
        return ["--data-dir", standin_tree, "-q", "--set", "body.hrnet_width=8", "--set", "body.feature_dim=64",
                "--set", "body.hidden=[32,32]", "--set", f"data.members=['{synth_body}']", "--set", "data.ratios=[1.0]",
                "--set", "data.img_res=64", "--set", "body.img_res=64", "--set", "train.val_set=none", "--set", "train.log_every=1",
                "--set", "train.last_every=1", "train", "body", "--out", out, "--init", "none", "--batch-size", "2",
                "--workers", "0", "--max-steps", "4", *extra]  # 2 steps per epoch: a boundary crossed

    ref = run_cli(*args(tmp_path / "ref"))
    assert ref.exit_code == 0, ref.output
    out = tmp_path / "out"
    code, log = zygote.kill_at(args(out), "step", 1, signal.SIGINT)  # Ctrl-C in step 1: it ends, last.pth
    assert code == 130 and f"; {CONTINUE}" in log and "interrupted (SIGINT at step 1;" in log, log
    assert _checkpoint(out / "last.pth")["step"] == 1
    code, log = zygote.kill_at(args(out, "--resume"), "step", 2, signal.SIGKILL)  # kill -9 in step 3, logged
    assert code == -signal.SIGKILL, log
    assert _checkpoint(out / "last.pth")["step"] == 2
    done = run_cli(*args(out, "--resume"))
    assert done.exit_code == 0, done.output
    _same_checkpoint(_checkpoint(tmp_path / "ref" / "last.pth"), _checkpoint(out / "last.pth"))
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4]  # step 3, logged before the kill -9 and run again: once
    assert not temp_files(out)


# -- preprocess: the same rows -------------------------------------------------------------------------

def _freihand_tree(standin_tree, root: Path) -> Path:
    from expose_cli.testing.raw_datasets import write_freihand
    from expose_cli.testing.trees import link_tree

    data = link_tree(standin_tree, root)
    write_freihand(data / "datasets" / "FreiHand", unique=5, eval_samples=3)
    return data


def test_preprocess_killed_twice_and_resumed_gives_the_same_rows(zygote, standin_tree, tmp_path, run_cli):
    from expose_cli.data.hdf5 import HDF5Reader
    from expose_cli.io.paths import DataTree

    ref, data = _freihand_tree(standin_tree, tmp_path / "ref"), _freihand_tree(standin_tree, tmp_path / "data")
    assert run_cli("--data-dir", ref, "-q", "preprocess", "freihand").exit_code == 0
    args = ["--data-dir", data, "-q", "preprocess", "freihand", "--resume"]
    code, log = zygote.kill_at(args, "rows", 1, signal.SIGKILL)  # kill -9 while train is written
    assert code == -signal.SIGKILL, log
    out = DataTree(data).preprocessed_file("freihand", "train").parent
    assert temp_files(out) and not outputs(out)  # a hidden temporary file, no output
    code, log = zygote.kill_at(args, "rows", 2, signal.SIGINT)  # Ctrl-C while val is written
    assert code == 130 and "interrupted; run the same command again with --resume" in log, log
    assert outputs(out) == ["freihand_train.h5"]
    both = run_cli(*args, "--overwrite")
    assert both.exit_code == 2 and "--resume keeps" in both.stderr
    done = run_cli(*args)
    assert done.exit_code == 0, done.output
    assert not temp_files(out)
    for split in ("train", "val", "test"):
        with HDF5Reader(DataTree(ref).preprocessed_file("freihand", split)) as a, \
                HDF5Reader(DataTree(data).preprocessed_file("freihand", split)) as b:
            assert len(a) == len(b) > 0 and a.fields() == b.fields()
            for field in a.fields():
                assert np.array_equal(a.column(field), b.column(field)), (split, field)


# -- eval: starts over, the same results ----------------------------------------------------------------

def test_eval_killed_twice_and_run_again_gives_the_same_results(zygote, model_tree, tmp_path, run_cli):
    import csv

    import h5py

    data = _freihand_tree(model_tree, tmp_path / "data")
    assert run_cli("--data-dir", data, "-q", "preprocess", "freihand", "--split", "test").exit_code == 0

    def args(out: Path) -> list:
        return ["--data-dir", data, "-q", "eval", "freihand", "--batch-size", "1", "--json", out / "r.json",
                "--per-sample", out / "s.csv", "--save-predictions", out / "p.h5"]

    (tmp_path / "ref").mkdir()
    assert run_cli(*args(tmp_path / "ref")).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    code, log = zygote.kill_at(args(out), "batch", 2, signal.SIGINT)
    assert code == 130 and "interrupted; nothing was written; run the same command again" in log, log
    code, log = zygote.kill_at(args(out), "temp", 1, signal.SIGKILL)  # kill -9 while the predictions are saved
    assert code == -signal.SIGKILL, log
    assert temp_files(out) and not outputs(out)
    done = run_cli(*args(out))
    assert done.exit_code == 0, done.output
    assert not temp_files(out) and outputs(out) == ["p.h5", "r.json", "s.csv"]
    assert json.loads((out / "r.json").read_text())["metrics"] == json.loads((tmp_path / "ref" / "r.json").read_text())["metrics"]
    assert list(csv.reader(open(out / "s.csv"))) == list(csv.reader(open(tmp_path / "ref" / "s.csv")))
    with h5py.File(out / "p.h5") as a, h5py.File(tmp_path / "ref" / "p.h5") as b:
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k][()], b[k][()]) for k in a)


# -- the rule for a killed run's temporary files ----------------------------------------------------------

def _unused_pid() -> int:
    """A process id no process has now (found without starting one: this process holds threads of
    several runtimes, and a fork of it is what the rule must not depend on)."""
    import os

    for pid in range(4_000_000, 300, -997):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no unused process id found")


def test_stale_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    import os
    import time

    from expose_cli.utils.atomic import temp_path_for, writer_tag
    from expose_cli.utils.stale import remove_stale_temps

    ours = temp_path_for(tmp_path / "result.json")  # this process's, in flight
    assert TEMP_NAME.match(ours.name) and f".{os.getpid()}-" in ours.name
    dead, host = _unused_pid(), writer_tag().split("-")[1]
    other = "ffffff" if host != "ffffff" else "000000"
    names = {
        f".person_00.{dead}-{host}.k2j4x8q1.tmp.npz": True,  # killed writer on this host
        f".overlay.{dead}-{other}.k2j4x8q1.tmp.png": False,  # another host, recent: may still run
        f".old_host.{dead}-{other}.k2j4x8q1.tmp.png": True,  # another host, 2 days untouched
        ".freihand_train.x1y2z3w4.tmp.h5": False,  # the older form, recent
        ".coco_train.x1y2z3w4.tmp.h5": True,  # the older form, 2 hours untouched
        ".notes.tmp.txt": False, "person_00.123-abcdef.k2j4x8q1.tmp.npz": False, ".bashrc": False,  # not ours
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    two_days, two_hours = time.time() - 2 * 86400, time.time() - 2 * 3600
    os.utime(tmp_path / f".old_host.{dead}-{other}.k2j4x8q1.tmp.png", (two_days, two_days))
    os.utime(tmp_path / ".coco_train.x1y2z3w4.tmp.h5", (two_hours, two_hours))
    nested = tmp_path / "frame_000001" / f".result.{dead}-{host}.abcdefgh.tmp.json"
    nested.parent.mkdir()
    nested.write_text("{")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, stale in names.items() if stale)
    assert ours.exists() and nested.exists()  # in flight; below the folder (not recursive)
    assert remove_stale_temps(tmp_path, recursive=True) == [nested]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours.name, "frame_000001"] +
                                                              [n for n, stale in names.items() if not stale])


# -- every command: 130 and how to continue -----------------------------------------------------------

@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_fetch_exits_130_saying_how_to_continue(tmp_path, run_cli, monkeypatch, how):
    from expose_cli.cli import fetch

    def interrupted(*args, **kwargs):
        if how == "sigterm":
            signal.raise_signal(signal.SIGTERM)  # as a job scheduler stops a job
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "run_fetch", interrupted)
    res = run_cli("--data-dir", tmp_path, "fetch", "checkpoints")
    assert res.exit_code == 130
    assert res.stderr.strip() == "interrupted; run the same command again to continue (partial downloads are kept as .part)"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_tracking_npz_round_trip_and_damaged_files(tmp_path):
    from expose_cli.inference.video import FRAME_FILE, read_frame_persons, write_frame_persons

    rng = np.random.default_rng(0)
    persons = [{"bbox_xyxy": rng.random(4, dtype=np.float32), "betas": rng.random(10, dtype=np.float32),
                "body_pose": rng.normal(size=(21, 3)).astype(np.float32)} for _ in range(2)]
    write_frame_persons(tmp_path, persons)
    back = read_frame_persons(tmp_path, 2)
    assert [p.keys() for p in back] == [p.keys() for p in persons]
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for a, b in zip(persons, back, strict=True) for k in a)
    assert read_frame_persons(tmp_path, 3) is None and read_frame_persons(tmp_path, 1) is None  # other counts
    (tmp_path / FRAME_FILE).write_bytes((tmp_path / FRAME_FILE).read_bytes()[:100])  # cut short
    assert read_frame_persons(tmp_path, 2) is None
    assert read_frame_persons(tmp_path / "nowhere", 2) is None
