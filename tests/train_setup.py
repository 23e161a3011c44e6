"""A hand run with FreiHAND validation, shared by the CPU and GPU training tests: a data tree of the
stand-in assets plus a converted FreiHAND test split, 4 synthetic hands, and tiny widths."""

from __future__ import annotations

from pathlib import Path


def hand_run_with_validation(run_cli, standin_tree: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """``(data_dir, settings)``: the tree to pass as ``--data-dir`` and the ``--set`` arguments."""
    from expose_cli.io.paths import DataTree
    from expose_cli.testing.raw_datasets import write_freihand
    from expose_cli.training.synth import write_synth

    data = tmp_path / "data"
    data.mkdir()
    for entry in standin_tree.iterdir():
        (data / entry.name).symlink_to(entry)
    write_freihand(data / "datasets" / "FreiHand", unique=5, eval_samples=3)
    assert run_cli("--data-dir", data, "-q", "preprocess", "freihand", "--split", "test").exit_code == 0
    h5 = write_synth(tmp_path / "synth", "hand", 4, DataTree(data), seed=0, size=64)
    return data, ["--set", "hand.resnet_width=8", "--set", "hand.hidden=[32,32]", "--set", f"data.members=['{h5}']",
                  "--set", "data.img_res=64", "--set", "hand.img_res=64", "--set", "train.val_limit=3"]
