"""Failed and refused runs, as a new user meets them (issue 29, part B): nothing left behind that
blocks a re-run, one clear line per mistake, checked before any work, outputs readable by others."""

from __future__ import annotations

import os
import stat

import pytest

from expose_cli.testing.raw_datasets import write_ehf


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_hdf5_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path, run_cli, standin_tree, umask_022):
    """preprocess and synth rename their temporary HDF5 file like every atomic output: 0666 & ~022."""
    write_ehf(tmp_path / "EHF", frames=1)
    out = tmp_path / "ehf.h5"
    assert run_cli("-q", "preprocess", "ehf", "--root", tmp_path / "EHF", "--out", out).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    res = run_cli("--data-dir", standin_tree, "-q", "synth", tmp_path / "s", "--kind", "hand", "--count", "1",
                  "--size", "32", "--no-embed-images")
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE((tmp_path / "s" / "synth_hand_train.h5").stat().st_mode) == 0o644


def test_preprocess_and_synth_refuse_an_unwritable_output_before_any_work(tmp_path, run_cli, standin_tree, monkeypatch):
    """The output's folder is a file: one line naming it, exit 2, and no converter or renderer ran."""
    import expose_cli.data.preprocess as P
    import expose_cli.training.synth as S

    def never(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(P, "_convert_split", never)
    monkeypatch.setattr(S, "HDF5Writer", never)
    write_ehf(tmp_path / "EHF", frames=1)
    (tmp_path / "file").write_text("a file, not a folder")
    res = run_cli("-q", "preprocess", "ehf", "--root", tmp_path / "EHF", "--out", tmp_path / "file" / "ehf.h5")
    assert res.exit_code == 2 and "is a file, not a folder" in one_error_line(res) and "ehf.h5" in res.stderr
    res = run_cli("--data-dir", standin_tree, "-q", "synth", tmp_path / "file", "--kind", "hand", "--count", "1")
    assert res.exit_code == 2 and "is a file, not a folder" in one_error_line(res)
    res = run_cli("--data-dir", standin_tree, "-q", "synth", tmp_path / "s", "--kind", "hand", "--count", "1",
                  "--json", tmp_path / "file" / "s.json")
    assert res.exit_code == 2 and "--json" in one_error_line(res)


# -- expose train ----------------------------------------------------------------------------------
SMALL_BODY = ["--set", "body.hrnet_width=8", "--set", "body.feature_dim=64", "--set", "body.hidden=[32,32]"]


@pytest.fixture(scope="module")
def synth16(standin_tree, tmp_path_factory):
    """16 synthetic body samples: 4 steps of 4 per epoch."""
    from expose_cli.io.paths import DataTree
    from expose_cli.training.synth import write_synth

    return write_synth(tmp_path_factory.mktemp("synth"), "body", 16, DataTree(standin_tree), seed=0, size=64)


def train_args(tree, h5, out, *extra, head=()):
    return ["--data-dir", str(tree), *head, *SMALL_BODY, "--set", f"data.members=['{h5}']", "--set", "data.ratios=[1.0]",
            "--set", "data.img_res=64", "--set", "body.img_res=64",
            "train", "body", "--out", str(out), "--init", "none", "--batch-size", "4", "--workers", "0",
            "--val-every", "0", *extra]


def one_error_line(res) -> str:
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output and "AssertionError" not in res.output, res.output
    return lines[0]


def test_a_train_run_that_fails_leaves_no_folder_that_blocks_the_rerun(run_cli, standin_tree, synth16, tmp_path,
                                                                      monkeypatch):
    """Wrong-kind --init, --device cuda without CUDA, fp16 on the CPU, --workers -1, and a failure
    inside the loop before any checkpoint: nothing is left in --out; the corrected command runs."""
    import torch

    from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint

    hand = tmp_path / "hand.pth"
    write_mmhuman3d_checkpoint(hand, "hand", seed=0, small=True)
    out = tmp_path / "run"
    failures = [(["--init", str(hand)], (), "init"), (["--precision", "fp16"], (), "fp16"),
                (["--workers", "-1"], (), "workers")]
    if not torch.cuda.is_available():
        failures.append(([], ("--device", "cuda"), "CUDA"))
    for extra, head, word in failures:
        res = run_cli(*train_args(standin_tree, synth16, out, "--max-steps", "1", *extra, head=head))
        assert res.exit_code != 0 and word in one_error_line(res), res.output
        assert not out.exists(), (extra, head, sorted(p.name for p in out.iterdir()))
    out.mkdir()  # an empty folder the user made stays, and stays usable

    def broken_fit(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("expose_cli.training.loop.Trainer.fit", broken_fit)
    res = run_cli(*train_args(standin_tree, synth16, out, "--max-steps", "1"))
    assert res.exit_code != 0 and "disk on fire" in res.output
    assert out.is_dir() and not any(out.iterdir())
    monkeypatch.undo()
    # 16 samples / batch 4 = 4 steps per epoch: --max-steps 4 ends on the first epoch's last step
    res = run_cli(*train_args(standin_tree, synth16, out, "--max-steps", "4", "--epochs", "3"))
    assert res.exit_code == 0, res.output
    assert (out / "last.pth").is_file() and "1 complete, step 4" in res.stdout, res.stdout


def test_train_flags_that_no_run_can_use_are_refused_with_one_line(run_cli, standin_tree, synth16, tmp_path):
    out = tmp_path / "run"
    for flag, value, word in (("--max-steps", "0", "leave --max-steps out"), ("--save-every", "-1", "save_every"),
                              ("--grad-clip", "-1", "grad_clip"), ("--nproc", "0", "--nproc"),
                              ("--val-every", "-2", "val_every")):
        res = run_cli(*train_args(standin_tree, synth16, out, flag, value))
        assert res.exit_code == 2 and word in res.output, res.output
        one_error_line(res)
        assert not out.exists()


def test_training_crops_of_another_side_than_the_model_declares_are_refused(run_cli, standin_tree, synth16, tmp_path):
    """A model trained on 64 px crops would be saved declaring the preset's 256 (and inferred at 256):
    refused before any work, naming both values; the same run with both at 64 is accepted."""
    out = tmp_path / "run"
    args = train_args(standin_tree, synth16, out, "--max-steps", "1")
    args[args.index("body.img_res=64")] = "body.img_res=256"
    res = run_cli(*args)
    assert res.exit_code == 2, res.output
    line = one_error_line(res)
    assert "data.img_res is 64 px" in line and "body.img_res = 256 px" in line, line
    assert not out.exists()
    hand = run_cli("--data-dir", str(standin_tree), "--set", "data.img_res=256", "train", "hand", "--out", str(out),
                   "--init", "none")
    assert hand.exit_code == 2 and "hand.img_res = 224 px" in one_error_line(hand), hand.output
    assert not out.exists()


def documented_quickstart() -> list[list[str]]:
    """The command lines of docs/train.md's "Train on synthetic data in one minute", ``$DATA`` expanded."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "train.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- synth-quickstart.*?```sh\n(.*?)```", text, re.S).group(1)
    env, lines = {}, []
    for line in block.strip().splitlines():
        if re.fullmatch(r"\w+=\S+", line):
            key, value = line.split("=")
            env[key] = value
            continue
        for key, value in env.items():
            line = line.replace(f"${key}", value)
        words = shlex.split(line)
        assert words[0] == "expose", line
        lines.append(words[1:])
    return lines


def test_the_documented_synthetic_quickstart_runs_as_written(run_cli, standin_tree, tmp_path, monkeypatch):
    """docs/train.md's lines in a folder holding DATA (= data, the stand-in tree), as written.
    Without --val-every 0 the run stops before work naming the file and the flag."""
    from expose_cli.testing.trees import link_tree

    link_tree(standin_tree, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    synth, train = documented_quickstart()
    assert synth[synth.index("synth") + 1].endswith("preprocessed_datasets") and "train" in train
    assert run_cli(*synth, "-q").exit_code == 0
    no_val = [a for a in train if a != "--val-every"]
    no_val.remove("0")
    res = run_cli(*no_val)
    assert res.exit_code == 2 and "--val-every 0" in res.output and "freihand" in res.output, res.output
    assert not (tmp_path / "runs").exists()
    dry = run_cli(*train, "--dry-run")
    assert dry.exit_code == 0 and "validation: off" in dry.stdout and "synth_hand" in dry.stdout, dry.output
    res = run_cli(*train)
    assert res.exit_code == 0, res.output
    assert "2 complete, step 8" in res.stdout and (tmp_path / "runs" / "synth-hand" / "last.pth").is_file()


# -- expose eval / infer ---------------------------------------------------------------------------
def test_eval_refuses_a_training_file_and_an_unwritable_json_before_running_the_network(
        run_cli, model_tree, tmp_path, monkeypatch):
    from expose_cli.evaluation import runner
    from expose_cli.io.paths import DataTree
    from expose_cli.testing.raw_datasets import write_freihand
    from expose_cli.testing.trees import link_tree

    root = link_tree(model_tree, tmp_path / "data")
    write_freihand(root / "datasets" / "FreiHand", unique=3, eval_samples=2)
    assert run_cli("--data-dir", root, "-q", "preprocess", "freihand").exit_code == 0
    train, test = DataTree(root).preprocessed_file("freihand", "train"), DataTree(root).preprocessed_file("freihand", "test")

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(runner, "predict", no_network)
    res = run_cli("--data-dir", root, "eval", "freihand", "--data", train)
    line = one_error_line(res)
    assert res.exit_code == 2 and str(train) in line and "vertices" in line and "--split test" in res.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for out in (blocker / "r.json", tmp_path):  # under a file; a folder's name
        res = run_cli("--data-dir", root, "eval", "freihand", "--data", test, "--json", out)
        assert res.exit_code == 2 and str(out) in one_error_line(res) and "--json" in res.stderr


@pytest.mark.parametrize("shape", [(20, 2000), (2000, 20), (5, 5)])
def test_the_fallback_person_detector_takes_images_smaller_than_its_window(shape):
    """OpenCV's HOG asserts (2000 x 20 px) or crashes (20 x 2000 px, after its downscale to 1280 px)
    on an image smaller than its 64 x 128 px window; a plain grey strip holds nobody."""
    import numpy as np

    from expose_cli.inference.boxes import detect_hog

    assert detect_hog(np.full((*shape, 3), 128, np.uint8)) == []


# -- checkpoints -----------------------------------------------------------------------------------
def test_unusable_checkpoints_are_one_line_each_and_fetch_models_is_hinted_only_for_published_ones(
        run_cli, small_ckpts, tmp_path):
    """A JSON file named .pth, a truncated copy of a published checkpoint, the same under the user's
    own name, a missing run checkpoint; and the expected skips of an MMHuman3D file are not printed."""
    from expose_cli.io.paths import DataTree
    from expose_cli.models import load_model

    data = small_ckpts["hand"].read_bytes()
    (tmp_path / "pretrained_models").mkdir()
    published = tmp_path / "pretrained_models" / small_ckpts["hand"].name
    published.write_bytes(data[: len(data) // 2])
    own = tmp_path / "last.pth"
    own.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "weights.pth"
    foreign.write_text('{"state_dict": {}}')
    cases = ((foreign, "not a PyTorch checkpoint", False), (published, "truncated or damaged", True),
             (own, "truncated or damaged", False), (tmp_path / "runs" / "best.pth", "checkpoint not found", False))
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "img.png"), np.full((64, 64, 3), 128, np.uint8))
    tree = small_ckpts["hand"].parent.parent
    for path, words, fetch in cases:
        res = run_cli("--data-dir", tree, "infer", tmp_path / "img.png", "--ckpt", path, "--detector", "full-image",
                      "--out", tmp_path / "out")
        line = one_error_line(res)
        assert res.exit_code == 2 and words in line and str(path) in line, res.output
        assert ("fetch-models" in res.stderr) == fetch and "weights_only=False" not in res.output
        assert "miniz" not in res.output
    lines = []
    load_model(small_ckpts["hand"], DataTree(tree), report=lines.append)
    assert len(lines) == 1 and "layer_000" not in lines[0] and "body_model_train" not in lines[0]


def test_doctor_fetch_list_and_fetch_models_agree_on_a_checkpoint_that_is_not_the_published_one(run_cli, tmp_path):
    """`expose demo`'s stand-in expose.pth is intact but not MMHuman3D's file: doctor 'ok' with that
    note, fetch --list 'other', fetch-models keeps it (no .corrupt); a truncated one is damaged in all three."""
    import json

    from expose_cli.io.paths import DataTree
    from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint

    path = DataTree(tmp_path).checkpoint("expose")
    write_mmhuman3d_checkpoint(path, "expose", seed=0, small=True)
    original = path.read_bytes()

    def verdicts():
        run_cli("--data-dir", tmp_path, "-q", "doctor", "--json", tmp_path / "d.json")
        run_cli("--data-dir", tmp_path, "-q", "fetch", "--list", "--json", tmp_path / "f.json")
        doctor = next(r for r in json.loads((tmp_path / "d.json").read_text()) if r["path"].endswith("expose.pth"))
        listed = next(r for r in json.loads((tmp_path / "f.json").read_text()) if r["asset"] == "expose")
        return doctor, listed

    doctor, listed = verdicts()
    assert doctor["status"] == "ok" and "not the published file" in doctor["detail"]
    assert listed["status"] == "other" and listed["detail"] == doctor["detail"]
    res = run_cli("--data-dir", tmp_path, "fetch-models", "--only", "expose", "--mirror", "http://127.0.0.1:9",
                  "--retries", "0")
    assert "kept" in res.stdout and path.read_bytes() == original, res.output
    assert not path.with_name("expose.pth.corrupt").exists()
    path.write_bytes(original[: len(original) // 2])
    doctor, listed = verdicts()
    assert doctor["status"] == "invalid" and listed["status"] == "corrupt"


# -- help and option names -------------------------------------------------------------------------
COMMANDS = [["demo"], ["doctor"], ["eval"], ["fetch-models"], ["fetch"], ["import-body-models"], ["infer"],
            ["preprocess"], ["inspect"], ["synth"], ["train"], ["export", "onnx"]]


def test_help_shows_brackets_no_bool_metavars_and_h_works_everywhere(run_cli):
    env = {"COLUMNS": "220", "TERM": "dumb"}
    top = run_cli("--help", env=env)
    assert top.exit_code == 0 and "([body], [hand], [face], [attention])" in top.stdout, top.stdout
    assert run_cli("-h", env=env).stdout == top.stdout
    for cmd in COMMANDS:
        res = run_cli(*cmd, "-h", env=env)
        assert res.exit_code == 0 and "Usage: " in res.stdout and " ".join(cmd) + " [OPTIONS]" in res.stdout, cmd
        assert "<bool>" not in res.stdout, [x for x in res.stdout.splitlines() if "<bool>" in x]
    assert "--embed-images" in run_cli("synth", "-h", env=env).stdout
    for cmd, old in ((["synth"], "--embed "), (["synth"], "--no-embed "), (["fetch"], "--force"),
                     (["import-body-models"], "--force")):
        assert old not in run_cli(*cmd, "-h", env=env).stdout  # deprecated names: accepted, not shown


def test_deprecated_option_names_still_work_with_a_warning(capsys):
    from expose_cli.cli.app import deprecated_aliases

    argv = ["--data-dir", "d", "synth", "out", "--no-embed", "--", "--no-embed"]
    assert deprecated_aliases(argv) == ["--data-dir", "d", "synth", "out", "--no-embed-images", "--", "--no-embed"]
    assert "--no-embed is deprecated: use --no-embed-images" in capsys.readouterr().err
    assert deprecated_aliases(["fetch-models", "--force"]) == ["fetch-models", "--overwrite"]
    assert deprecated_aliases(["preprocess", "--force"]) == ["preprocess", "--force"]  # not an alias there


def test_export_and_infer_refuse_to_replace_earlier_outputs_without_overwrite(run_cli, small_ckpts, tmp_path):
    import cv2
    import numpy as np

    tree = small_ckpts["hand"].parent.parent
    onnx = tmp_path / "hand.onnx"
    onnx.write_bytes(b"earlier")
    res = run_cli("--data-dir", tree, "export", "onnx", "hand", "--ckpt", small_ckpts["hand"], "--out", onnx)
    assert res.exit_code == 2 and "output exists" in one_error_line(res) and "--overwrite" in res.stderr
    assert onnx.read_bytes() == b"earlier"
    cv2.imwrite(str(tmp_path / "img.png"), np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    args = ["--data-dir", tree, "infer", tmp_path / "img.png", "--ckpt", "hand", "--detector", "full-image", "--out", out]
    res = run_cli(*args)
    assert res.exit_code == 2 and str(out) in one_error_line(res) and "--overwrite" in res.stderr
    assert "loaded" not in res.stderr  # refused before the model was read
    res = run_cli(*args, "--overwrite", "--resume")
    assert res.exit_code == 2 and "give one of the two" in res.stderr
    assert run_cli(*args, "--overwrite", "-q").exit_code == 0
    assert (out / "summary.json").read_text() != "{}"
