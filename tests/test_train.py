"""`expose train`: end to end on the synthetic set, bit-exact resume, refusals and bad input.

Tiny widths and 64 px crops keep every run to seconds; the synthetic set is written once per module.
"""

from __future__ import annotations

import json

import pytest
import torch

from expose_cli.training.synth import write_synth

SMALL_BODY = ["--set", "body.hrnet_width=8", "--set", "body.feature_dim=64", "--set", "body.hidden=[32,32]"]


@pytest.fixture(scope="module")
def synth_body(standin_tree, tmp_path_factory):
    from expose_cli.io.paths import DataTree

    return write_synth(tmp_path_factory.mktemp("synth"), "body", 16, DataTree(standin_tree), seed=0, size=96)


def body_args(tree, h5, out, *extra):
    return ["--data-dir", str(tree), *SMALL_BODY, "--set", f"data.members=['{h5}']", "--set", "data.ratios=[1.0]",
            "--set", "data.img_res=64", "--set", "body.img_res=64", "--set", "train.val_set=none", "--set", "train.log_every=1",
            "train", "body", "--out", str(out), "--init", "none", "--batch-size", "4", *extra]


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_gives_bit_identical_weights(run_cli, standin_tree, synth_body, tmp_path, monkeypatch):
    """N + N steps with a resume between == 2N steps straight (dropout and augmentations on,
    2 workers, an epoch boundary crossed: 16 samples / batch 4 = 4 steps per epoch); the resume
    reads last.pth once (config, weights and loop state from one load)."""
    straight = run_cli(*body_args(standin_tree, synth_body, tmp_path / "a", "--max-steps", "6", "--workers", "2"))
    assert straight.exit_code == 0, straight.output
    first = run_cli(*body_args(standin_tree, synth_body, tmp_path / "b", "--max-steps", "3", "--workers", "2"))
    assert first.exit_code == 0, first.output
    loads, real_load = [], torch.load

    def counting_load(f, *args, **kwargs):
        loads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    again = run_cli(*body_args(standin_tree, synth_body, tmp_path / "b", "--max-steps", "6", "--workers", "2",
                               "--resume"))
    monkeypatch.setattr(torch, "load", real_load)
    assert again.exit_code == 0, again.output
    assert loads == [str(tmp_path / "b" / "last.pth")]
    a, b = weights(tmp_path / "a" / "last.pth"), weights(tmp_path / "b" / "last.pth")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    start = weights(tmp_path / "b" / "last.pth")["head.regressor.module.output_layer.weight"]
    assert not torch.equal(start, torch.zeros_like(start))
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["type"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "b" / "config.json").is_file()
    assert "--resume" in (tmp_path / "b" / "README.txt").read_text()


def test_a_hook_sees_each_point_of_the_run_in_order(run_cli, standin_tree, synth_body, tmp_path, monkeypatch):
    """A hook added as docs/architecture.md says (a HookBase subclass, one more entry in
    run.build_hooks' list) is called at each point: 16 samples / batch 4 = 4 steps an epoch, so
    --max-steps 6 runs one whole epoch (whose after_epoch already counts it: epoch 1), two steps of
    the next, then after_train with the status; (point, step, epoch) as the hook reads them."""
    from expose_cli.training import run as R
    from expose_cli.training.hooks import HookBase

    seen = []

    class Recorder(HookBase):
        def before_train(self, trainer):
            seen.append(("before_train", trainer.progress.step, trainer.progress.epoch))

        def before_epoch(self, trainer):
            seen.append(("before_epoch", trainer.progress.step, trainer.progress.epoch))

        def after_step(self, trainer, parts, rate):
            assert parts is not None and set(parts) >= {"loss", "keypoints2d"} and rate > 0
            seen.append(("after_step", trainer.progress.step, trainer.progress.epoch))

        def after_epoch(self, trainer):
            seen.append(("after_epoch", trainer.progress.step, trainer.progress.epoch))

        def after_train(self, trainer, status):
            seen.append((f"after_train {status}", trainer.progress.step, trainer.progress.epoch))

    real = R.build_hooks
    monkeypatch.setattr(R, "build_hooks", lambda *args, **kwargs: [*real(*args, **kwargs), Recorder()])
    res = run_cli(*body_args(standin_tree, synth_body, tmp_path / "h", "--max-steps", "6", "--workers", "0"))
    assert res.exit_code == 0, res.output
    assert seen == [("before_train", 0, 0), ("before_epoch", 0, 0), *[("after_step", s, 0) for s in (1, 2, 3, 4)],
                    ("after_epoch", 4, 1), ("before_epoch", 4, 1), ("after_step", 5, 1), ("after_step", 6, 1),
                    ("after_train max_steps", 6, 1)]


def test_a_loss_term_added_as_documented_reaches_config_log_and_summary(run_cli, standin_tree, synth_body, tmp_path,
                                                                        monkeypatch):
    """docs/architecture.md's "A loss term": a LossConfig field and a compute_losses term, nothing
    else. `--set loss.toy=2` reaches the run's config.json and checkpoint, each step's log record
    (whose loss is the sum of its terms) and the summary."""
    import dataclasses

    from expose_cli.training import config, loop, objective

    monkeypatch.setattr(config, "LossConfig",
                        dataclasses.make_dataclass("LossConfig", [("toy", float, 0.0)], bases=(config.LossConfig,)))
    real = objective.compute_losses

    def with_toy(pred, batch, cfg):
        terms = real(pred, batch, cfg)
        if cfg.toy:
            terms["toy"] = cfg.toy * (pred.betas.square().mean() + 1.0)
        return terms

    monkeypatch.setattr(objective, "compute_losses", with_toy)
    monkeypatch.setattr(loop, "compute_losses", with_toy)  # the loop's name for it
    res = run_cli("--set", "loss.toy=2", *body_args(standin_tree, synth_body, tmp_path / "t", "--max-steps", "2",
                                                    "--workers", "0"))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "t" / "config.json").read_text())["loss"]["toy"] == 2.0
    saved = torch.load(tmp_path / "t" / "last.pth", weights_only=True)["meta"]["expose_run_config"]
    assert saved["loss"]["toy"] == 2.0
    log = [json.loads(x) for x in (tmp_path / "t" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for record in log:
        terms = {k: v for k, v in record.items() if k not in ("type", "epoch", "step", "lr", "samples_per_s",
                                                             "skipped", "loss")}
        assert record["toy"] >= 2.0 and set(terms) > {"toy", "keypoints2d"}
        assert record["loss"] == pytest.approx(sum(terms.values()), rel=1e-5)
    assert "last toy" in res.output


def test_the_checkpoint_loads_in_expose_infer_unchanged(run_cli, standin_tree, synth_body, tmp_path):
    from expose_cli.io.paths import DataTree
    from expose_cli.models import load_model

    res = run_cli(*body_args(standin_tree, synth_body, tmp_path / "r", "--max-steps", "1", "--workers", "0"))
    assert res.exit_code == 0, res.output
    obj = torch.load(tmp_path / "r" / "last.pth", weights_only=True)
    assert "backbone.conv1.weight" in obj["state_dict"] and "head.regressor.mean_param" in obj["state_dict"]
    predictor = load_model(tmp_path / "r" / "last.pth", DataTree(standin_tree))
    assert predictor.kind == "body"
    # A second run into the same directory without --resume is refused, and nothing is overwritten.
    before = (tmp_path / "r" / "last.pth").read_bytes()
    refused = run_cli(*body_args(standin_tree, synth_body, tmp_path / "r", "--max-steps", "1"))
    assert refused.exit_code != 0 and "not empty" in refused.output and "--resume" in refused.output
    assert (tmp_path / "r" / "last.pth").read_bytes() == before


def test_corrupt_or_foreign_resume_checkpoint_is_one_line(run_cli, standin_tree, synth_body, tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / "last.pth").write_bytes(b"not a checkpoint")
    res = run_cli(*body_args(standin_tree, synth_body, out, "--max-steps", "1", "--resume"))
    assert res.exit_code != 0 and "last.pth" in res.output and "Traceback" not in res.output
    assert (out / "last.pth").read_bytes() == b"not a checkpoint"
    torch.save({"state_dict": {}}, out / "last.pth")  # e.g. an MMHuman3D checkpoint: no resume state
    res = run_cli(*body_args(standin_tree, synth_body, out, "--max-steps", "1", "--resume"))
    assert res.exit_code != 0 and "resume state" in res.output


def test_missing_dataset_or_pretrained_file_is_named_before_any_work(run_cli, standin_tree, synth_body, tmp_path):
    res = run_cli("--data-dir", str(standin_tree), "train", "body", "--out", str(tmp_path / "m"))
    assert res.exit_code != 0 and "curated_fits_train.h5" in res.output and "expose preprocess" in res.output
    assert not (tmp_path / "m").exists()
    args = body_args(standin_tree, synth_body, tmp_path / "p", "--max-steps", "1")
    args[args.index("--init") + 1] = "auto"
    res = run_cli(*args)
    assert res.exit_code != 0 and "hrnet_pretrain.pth" in res.output and "expose fetch pretrained" in res.output
    args = body_args(standin_tree, synth_body, tmp_path / "v", "--max-steps", "1")
    args[args.index("train.val_set=none")] = "train.val_set=3dpw"  # its test file is not there
    res = run_cli(*args)
    assert res.exit_code != 0 and "3dpw_test.h5" in res.output and "expose preprocess 3dpw" in res.output
    assert not (tmp_path / "v").exists()  # nothing written: a second try needs no new --out


def test_dry_run_prints_config_data_and_steps(run_cli, standin_tree, synth_body, tmp_path):
    res = run_cli(*body_args(standin_tree, synth_body, tmp_path / "d", "--dry-run"))
    assert res.exit_code == 0, res.output
    assert "train.lr" in res.output and "0.0001" in res.output and "16" in res.output
    assert "4 steps of 4" in res.output  # 16 samples / batch 4
    assert not (tmp_path / "d").exists()
    res = run_cli(*body_args(standin_tree, synth_body, tmp_path / "d2", "--dry-run", "--nproc", "2"))
    assert res.exit_code == 0 and "2 steps of 4" in res.output  # planned for 2 processes, none started
    assert not (tmp_path / "d2").exists()


NO_AUGMENT = ["--set", "body.dropout=0", "--set", "data.augment.flip_prob=0", "--set", "data.augment.scale_factor=0",
              "--set", "data.augment.rot_prob=0", "--set", "data.augment.noise_factor=0"]


def test_ddp_two_processes_equal_one_process_with_the_doubled_batch(run_cli, standin_tree, synth_body, tmp_path):
    """`expose train --nproc 2` (torchrun, gloo on CPU): rank r takes the mixing stream's draws
    r, r+2, ...; averaged gradients of 2 x batch 2 equal one process's batch 4."""
    two = body_args(standin_tree, synth_body, tmp_path / "ddp", "--max-steps", "2", "--workers", "0", "--nproc", "2")
    two[two.index("--batch-size") + 1] = "2"
    res = run_cli(*NO_AUGMENT, *two)
    assert res.exit_code == 0, res.output
    one = run_cli(*NO_AUGMENT, *body_args(standin_tree, synth_body, tmp_path / "one", "--max-steps", "2", "--workers", "0"))
    assert one.exit_code == 0, one.output
    a, b = weights(tmp_path / "ddp" / "last.pth"), weights(tmp_path / "one" / "last.pth")
    assert a.keys() == b.keys()
    # The head's well-conditioned gradients agree to float precision. In the backbone, Adam divides
    # near-zero gradients by their own size, so summation-order noise moves a few early weights by up
    # to a fraction of lr; a run without averaging (or without training) is off by ~lr = 1e-4 everywhere.
    close = 0
    for key in a:
        tol = 1e-6 if key.startswith("head.") else 5e-5
        torch.testing.assert_close(a[key], b[key], atol=tol, rtol=0, msg=key)
        close += bool(torch.allclose(a[key], b[key], atol=1e-6, rtol=0))
    assert close >= 0.9 * len(a)
    log = [json.loads(x) for x in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["type"] == "train"] == [1, 2]


SMALL_PARTS = ["--set", "hand.resnet_width=8", "--set", "hand.hidden=[32,32]", "--set", "face.resnet_width=8",
               "--set", "face.hidden=[32,32]", "--set", "attention.hand_crop_size=32", "--set", "attention.face_crop_size=32"]


def test_full_model_trains_only_its_part_networks_from_the_part_checkpoints(run_cli, standin_tree, synth_body, tmp_path):
    """`expose train expose --init auto`: the three part checkpoints load by prefix (MMHuman3D's
    config crashed here); one step moves the hand and face networks and leaves the body as loaded."""
    import shutil

    from expose_cli.io.paths import DataTree
    from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint
    from expose_cli.training.pretrained import PART_SOURCES

    data = tmp_path / "data"  # the stand-in tree, linked, with a pretrained_models/ of its own
    data.mkdir()
    for entry in standin_tree.iterdir():
        if entry.name != "pretrained_models":
            (data / entry.name).symlink_to(entry)
    if (standin_tree / "pretrained_models").is_dir():
        shutil.copytree(standin_tree / "pretrained_models", data / "pretrained_models", symlinks=True)
    tree = DataTree(data)
    for part, name, _ in PART_SOURCES:
        write_mmhuman3d_checkpoint(tree.pretrained_models / name, part, seed=5, small=True)
    args = body_args(data, synth_body, tmp_path / "full", "--max-steps", "1", "--workers", "0")
    args[args.index("body", args.index("train"))] = "expose"
    args[args.index("--init") + 1] = "auto"
    args[args.index("--batch-size") + 1] = "2"
    res = run_cli(*SMALL_PARTS, *args)
    assert res.exit_code == 0, res.output
    after = weights(tmp_path / "full" / "last.pth")
    body = torch.load(tree.pretrained_models / PART_SOURCES[0][1], weights_only=True)["state_dict"]
    hand = torch.load(tree.pretrained_models / PART_SOURCES[1][1], weights_only=True)["state_dict"]
    assert torch.equal(after["backbone.conv1.weight"], body["backbone.conv1.weight"])
    assert torch.equal(after["head.regressor.module.output_layer.weight"], body["head.regressor.module.output_layer.weight"])
    assert not torch.equal(after["hand_head.regressor.module.output_layer.weight"],
                           hand["head.regressor.module.output_layer.weight"])
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert {"hand_crop", "face_crop"} <= set(log[0])


def test_validation_runs_the_eval_protocol_and_keeps_the_best(run_cli, standin_tree, tmp_path):
    """Hand model, one epoch of 4 synthetic samples, validated on FreiHAND with `expose eval`'s
    protocol: a JSONL validation record with its metrics, and best.pth."""
    from tests.train_setup import hand_run_with_validation

    data, small = hand_run_with_validation(run_cli, standin_tree, tmp_path)
    res = run_cli("--data-dir", data, *small, "train", "hand", "--out", tmp_path / "h", "--init", "none",
                  "--epochs", "1", "--val-every", "1", "--batch-size", "2", "--workers", "0")
    assert res.exit_code == 0, res.output
    log = [json.loads(x) for x in (tmp_path / "h" / "log.jsonl").read_text().splitlines()]
    val = [r for r in log if r["type"] == "val"]
    assert len(val) == 1 and val[0]["epoch"] == 1 and val[0]["PA-MPJPE"] > 0 and "PA-PVE" in val[0]
    assert (tmp_path / "h" / "best.pth").is_file() and not (tmp_path / "h" / "epoch_1.pth").is_file()  # every 10


def test_non_finite_losses_stop_the_run_with_one_line(run_cli, standin_tree, synth_body, tmp_path):
    toml = tmp_path / "nan.toml"
    toml.write_text("[loss]\nkeypoints2d = nan\n[train]\nmax_bad_steps = 2\n")
    res = run_cli("--model-config", toml, *body_args(standin_tree, synth_body, tmp_path / "n", "--max-steps", "5",
                                                     "--workers", "0"))
    assert res.exit_code != 0 and "2 non-finite losses in a row" in res.output and "keypoints2d" in res.output
    assert "lower --lr, add --grad-clip, or use --precision fp32" in res.output  # the CLI spells the options
    assert "Traceback" not in res.output


def test_a_full_disk_leaves_the_previous_checkpoint_valid(tmp_path, monkeypatch):
    import errno

    from expose_cli.errors import ExposeError
    from expose_cli.models.config import small_config
    from expose_cli.models.network import ExPoseNet
    from expose_cli.training.checkpointing import save_training_checkpoint

    net = ExPoseNet(small_config("hand"))
    path = tmp_path / "last.pth"
    save_training_checkpoint(path, net, {"kind": "hand"}, step=1, epoch=0, resume={"step": 1})
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkp")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ExposeError, match="No space left") as info:
        save_training_checkpoint(path, net, {"kind": "hand"}, step=2, epoch=0, resume={"step": 2})
    assert "previous checkpoint is unchanged" in (info.value.hint or "")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_sigterm_finishes_the_step_and_writes_last_pth(run_cli, standin_tree, synth_body, tmp_path, monkeypatch):
    import signal

    from expose_cli.training import loop

    real = loop.Trainer.step

    def step_then_sigterm(self, batch):
        out = real(self, batch)
        if self.progress.step == 0:
            signal.raise_signal(signal.SIGTERM)  # as a cluster scheduler would, mid-run
        return out

    monkeypatch.setattr(loop.Trainer, "step", step_then_sigterm)
    res = run_cli(*body_args(standin_tree, synth_body, tmp_path / "t", "--max-steps", "5", "--workers", "0"))
    # a stop is not a finish: status 130 (was 0), and one line saying how to continue
    assert res.exit_code == 130, res.output
    assert "interrupted (SIGTERM at step 1;" in res.stderr
    assert "run the same command again with --resume to continue" in res.stderr
    assert torch.load(tmp_path / "t" / "last.pth", weights_only=True)["step"] == 1
