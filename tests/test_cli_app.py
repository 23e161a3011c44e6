"""The app shell: version, help, global options, error formatting, device choice."""

from __future__ import annotations

import pytest

from expose_cli import __version__
from expose_cli.assets.paths import DataTree
from expose_cli.cli.common import resolve_device
from expose_cli.errors import ExposeError


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"expose {__version__}"


def test_help_lists_global_options(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for option in ("--data-dir", "--device", "--verbose", "--quiet"):
        assert option in result.stdout


def test_unknown_command_is_an_error(run_cli):
    result = run_cli("no-such-command")
    assert result.exit_code != 0


def test_resolve_device():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ExposeError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ExposeError, match="no CUDA"):
            resolve_device("cuda:0")


def test_data_tree_layout(tmp_path):
    tree = DataTree(tmp_path)
    assert tree.checkpoint("expose") == tmp_path / "pretrained_models" / "expose.pth"
    assert tree.checkpoint("body").name == "hrnet_hmr_expose_body.pth"
    assert tree.smplx_model("male").relative_to(tmp_path).as_posix() == "body_models/smplx/SMPLX_MALE.npz"
    assert tree.raw_dataset("3dpw") == tmp_path / "datasets" / "3DPW"
    assert tree.preprocessed_file("h36m-smplx", "train").name == "h36m_smplx_train.h5"
    with pytest.raises(ValueError, match="unknown dataset"):
        tree.raw_dataset("kitti")
    with pytest.raises(ValueError):
        tree.smplx_model("other")


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPOSE_DATA_DIR", str(tmp_path))
    assert DataTree().root == tmp_path


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    from expose_cli.utils.atomic import atomic_path, write_json_atomic

    final = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(final, {"a": 1})
    assert final.read_text().strip() == '{\n  "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
