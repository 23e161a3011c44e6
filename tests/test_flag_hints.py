"""Hints that name command-line flags live in cli/: below it, an error's message or hint names an
option of the running command only through ``expose_cli.errors.option`` (rendered by the CLI)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from expose_cli.errors import ExposeError, option

ROOT = Path(__file__).resolve().parents[1] / "expose_cli"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: A whole command line to run (an instruction, also right for a Python caller) may spell its flags.
COMMAND_LINE = re.compile(r"`expose [^`]*`|\bexpose [a-z-]+ [^;,()`]*")


def _text(node: ast.AST) -> str:
    """A string literal, or an f-string with ``{}`` for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return ""


def _error_strings(tree: ast.AST):
    """(line, text) of each string given to an exception call, a ``hint=`` argument, or a
    module constant whose name holds HINT."""
    for node in ast.walk(tree):
        roots = []
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name.endswith(("Error", "File")) or name == "_bad":
                roots = [*node.args, *(k.value for k in node.keywords)]
            else:
                roots = [k.value for k in node.keywords if k.arg == "hint"]
        elif isinstance(node, ast.Assign) and any("HINT" in getattr(t, "id", "").upper() for t in node.targets):
            roots = [node.value]
        for root in roots:
            yield from _strings_in(root)


def _strings_in(node: ast.AST):
    """(line, text) of each whole string literal or f-string under ``node``."""
    text = _text(node)
    if text:
        yield node.lineno, text
        return
    for child in ast.iter_child_nodes(node):
        yield from _strings_in(child)


PENDING: set[str] = set()  # files whose hints still spell flags (none)


def test_no_error_below_cli_spells_a_flag():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "cli" or rel.as_posix() in PENDING:
            continue
        for line, text in _error_strings(ast.parse(path.read_text(), str(path))):
            flags = FLAG.findall(COMMAND_LINE.sub("", text))
            if flags:
                found.append(f"{path.relative_to(ROOT.parent)}:{line}: {flags} in {text!r}")
    assert not found, "\n".join(found)


def test_option_references_read_as_parameters_in_python_and_flags_in_the_cli(run_cli, tmp_path):
    exc = ExposeError(f"unknown {option('backend')} 'x'", hint=f"use {option('embed-images')}", path="a.h5")
    assert exc.message == "a.h5: unknown backend 'x'" and exc.hint == "use embed_images"
    assert str(exc) == "a.h5: unknown backend 'x' (use embed_images)"
    assert exc.text(lambda name: "--" + name) == ("a.h5: unknown --backend 'x'", "use --embed-images")
    with pytest.raises(ExposeError, match="unknown backend 'tensorrt'"):  # the library, called from Python
        from expose_cli.inference.backends import check_choice

        check_choice("tensorrt", "fp32", __import__("torch").device("cpu"))
    # The CLI prints the same lines as before the move: the flags, as the commands declare them.
    res = run_cli("--data-dir", tmp_path, "infer", tmp_path, "--backend", "tensorrt")
    assert res.exit_code == 2 and "error: unknown --backend 'tensorrt'" in res.stderr.splitlines(), res.stderr
    res = run_cli("--data-dir", tmp_path, "train", "body", "--out", tmp_path / "r", "--precision", "fp16",
                  "--device", "cpu", "--init", "none", "--max-steps", "1")
    assert res.exit_code == 2 and "--precision fp16 needs a CUDA GPU" in res.stderr and "hint: use --precision bf16 or fp32 on the CPU" in res.stderr


def test_the_cli_spells_an_option_as_the_command_declares_it():
    import typer

    from expose_cli.cli.app import app
    from expose_cli.cli.common import flag_speller

    commands = typer.main.get_command(app).commands
    assert flag_speller(commands["infer"])("skip-existing") == "--resume"  # the parameter's declared flag
    assert flag_speller(commands["eval"])("threads") == "--threads"
    assert flag_speller(commands["infer"])("data-dir") == flag_speller(None)("data-dir") == "--data-dir"
