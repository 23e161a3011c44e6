"""The app shell: version, help, global options, error formatting, device choice."""

from __future__ import annotations

import pytest

from expose_cli import __version__
from expose_cli.cli.common import resolve_device
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree


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


def test_resolve_device(monkeypatch):
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    with monkeypatch.context() as m:  # "auto" follows what torch sees
        m.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device("auto") == torch.device("cuda")
        m.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve_device("auto") == torch.device("cpu")
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


def test_atomic_files_get_the_umask_mode(tmp_path):
    import os
    import stat

    from expose_cli.utils.atomic import write_bytes_atomic, write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644  # not mkstemp's 0600
        (tmp_path / "plain.txt").write_text("x")
        assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
        os.umask(0o027)
        write_bytes_atomic(tmp_path / "b.bin", b"x")
        assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o640
        # Replacing a file keeps its mode, as open(path, "w") would.
        os.chmod(tmp_path / "a.txt", 0o600)
        write_text_atomic(tmp_path / "a.txt", "y")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o600
        assert (tmp_path / "a.txt").read_text() == "y"
    finally:
        os.umask(old)


def test_errors_print_one_line_and_a_traceback_only_with_verbose(tmp_path, run_cli):
    missing = tmp_path / "nothing.zip"
    plain = run_cli("--data-dir", tmp_path, "import-body-models", missing)
    assert plain.exit_code == 2
    assert "error:" in plain.stderr and "no such file" in plain.stderr
    assert "Traceback" not in plain.output
    verbose = run_cli("-v", "--data-dir", tmp_path, "import-body-models", missing)
    assert verbose.exit_code == 2
    assert "Traceback" in verbose.stderr and "no such file" in verbose.stderr


def test_unexpected_errors_traceback_only_with_verbose(tmp_path, run_cli, monkeypatch):
    import expose_cli.cli.doctor as doctor_cli

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(doctor_cli, "inspect_tree", broken)
    plain = run_cli("--data-dir", tmp_path, "doctor")
    assert plain.exit_code == 1
    assert "RuntimeError: disk on fire" in plain.stderr and "-v" in plain.stderr
    assert "Traceback" not in plain.output
    verbose = run_cli("--verbose", "--data-dir", tmp_path, "doctor")
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr and "disk on fire" in verbose.stderr


def test_data_dir_env_through_the_cli(tmp_path, run_cli, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    env_root = tmp_path / "from_env"
    result = run_cli("doctor", "--json", tmp_path / "d.json", env={"EXPOSE_DATA_DIR": str(env_root)})
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    assert report and all(r["path"].startswith(str(env_root)) for r in report)
    # --data-dir wins over the environment.
    run_cli("--data-dir", tmp_path / "cli", "doctor", "--json", tmp_path / "e.json", env={"EXPOSE_DATA_DIR": str(env_root)})
    report = json.loads((tmp_path / "e.json").read_text())
    assert all(r["path"].startswith(str(tmp_path / "cli")) for r in report)


def test_global_options_also_after_the_subcommand(tmp_path, run_cli):
    from expose_cli.cli.app import hoist_global_options

    missing = tmp_path / "nothing.zip"
    after = run_cli("import-body-models", missing, "--data-dir", tmp_path, "-v")
    assert after.exit_code == 2 and "Traceback" in after.stderr and "no such file" in after.stderr
    assert hoist_global_options(["infer", "a.jpg", "--device=cpu", "--set", "x.y=1", "-q", "--out", "o"]) == [
        "--device=cpu", "--set", "x.y=1", "-q", "infer", "a.jpg", "--out", "o"]
    # A subcommand's own option of the same name, and anything after "--", stay where they are.
    assert hoist_global_options(["eval", "ehf", "--data", "f.h5", "--", "-v"]) == ["eval", "ehf", "--data", "f.h5", "--", "-v"]
    assert hoist_global_options(["--help"]) == ["--help"]
    doctor_json = tmp_path / "d.json"
    run_cli("doctor", "--data-dir", tmp_path / "tree", "--json", doctor_json)
    import json

    paths = [row["path"] for row in json.loads(doctor_json.read_text())]
    assert paths and all(p.startswith(str(tmp_path / "tree")) for p in paths)  # the data dir given after "doctor"


def _options_by_name() -> dict[str, list[tuple[str, str | None]]]:
    """``--name`` -> [(command, help)] over every command of the app (click objects)."""
    import typer

    from expose_cli.cli.app import app

    found: dict[str, list[tuple[str, str | None]]] = {}
    stack = [("", typer.main.get_command(app))]
    while stack:
        name, cmd = stack.pop()
        stack.extend((f"{name} {n}".strip(), c) for n, c in getattr(cmd, "commands", {}).items())
        for param in cmd.params:
            if getattr(param, "param_type_name", "") == "option":
                for opt in param.opts:
                    found.setdefault(opt, []).append((name, param.help))
    return found


def test_shared_options_are_declared_once_with_one_help():
    """Each option of cli/common.py's shared Annotated types reads the same help in every command
    that takes it (and at least two commands take it); no command declares it another way."""
    import typing

    from expose_cli.cli import common

    shared = {name: typing.get_args(value)[1] for name, value in vars(common).items()
              if name.endswith("Opt") and typing.get_origin(value) is typing.Annotated}
    assert {"CkptOpt", "BatchSizeOpt", "WorkersOpt", "PrecisionOpt", "ThreadsOpt"} <= set(shared)
    found = _options_by_name()
    for name, info in shared.items():
        opt = info.default  # typer: the first name given, in an Annotated declaration
        uses = found.get(opt, [])
        assert len({cmd for cmd, _ in uses}) >= 2, (name, uses)
        assert all(text == info.help for _, text in uses), (name, [u for u in uses if u[1] != info.help])
    commands = {cmd for cmd, _ in found["--precision"]}
    assert {"infer", "eval", "train"} <= commands and {"infer", "eval", "train"} <= {c for c, _ in found["--batch-size"]}
    assert {c for c, _ in found["--workers"]} == {"infer", "train", "preprocess"}  # processes, everywhere
    assert {c for c, _ in found["--threads"]} == {"eval", "preprocess"}
    assert {"infer", "eval", "export onnx"} <= {c for c, _ in found["--ckpt"]}


def test_evals_old_workers_is_a_hidden_alias_of_threads(run_cli, tmp_path):
    from expose_cli.cli.app import deprecated_aliases

    assert deprecated_aliases(["eval", "ehf", "--workers", "3"]) == ["eval", "ehf", "--threads", "3"]
    assert deprecated_aliases(["infer", "a.jpg", "--workers", "3"]) == ["infer", "a.jpg", "--workers", "3"]
    res = run_cli("--data-dir", tmp_path, "eval", "no-such-benchmark", "--workers", "3")
    assert "warning: --workers is deprecated: use --threads" in res.stderr
    assert "No such option" not in res.stderr and "no-such-benchmark" in res.stderr  # parsed; failed later
    assert "--workers" not in run_cli("eval", "-h", env={"COLUMNS": "220", "TERM": "dumb"}).stdout


def test_shared_range_checks_are_one_line_in_every_command(run_cli, tmp_path):
    for args, line in ((["infer", "x.jpg", "--batch-size", "0"], "error: --batch-size must be >= 1, not 0"),
                       (["eval", "ehf", "--threads", "0"], "error: --threads must be >= 1, not 0"),
                       (["eval", "ehf", "--workers", "-1"], "error: --threads must be >= 1, not -1"),  # the old name
                       (["train", "body", "--out", tmp_path / "r", "--workers", "-1"], "error: --workers must be >= 0, not -1")):
        res = run_cli("--data-dir", tmp_path, *args)
        assert res.exit_code == 2 and line in res.stderr.splitlines(), (args, res.stderr)
        assert "Usage:" not in res.stderr, (args, res.stderr)
    assert not (tmp_path / "r").exists()
