"""Every function in expose_cli/ is short enough to read at once: at most 60 lines from its ``def``
to its last line (docstring and signature included, decorators not), data tables excepted.

A data table belongs in a module-level constant (see ``assets/manifest.py``), not in a function; a
function that must stay long anyway is named in ``ALLOWED`` with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "expose_cli"
MAX_LINES = 60

#: "path/relative/to/expose_cli.py:qualified.name" -> why it may be longer. Data tables only; empty today.
ALLOWED: dict[str, str] = {}


def long_functions(root: Path, max_lines: int = MAX_LINES) -> dict[str, int]:
    """``"file.py:Class.method"`` -> lines, for every function (nested ones and methods too) longer
    than ``max_lines``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        stack = [(node, "") for node in tree.body]
        while stack:
            node, prefix = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + node.name
                if not isinstance(node, ast.ClassDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > max_lines:
                        found[f"{path.relative_to(root).as_posix()}:{name}"] = lines
                stack += [(child, name + ".") for child in ast.iter_child_nodes(node)]
            else:
                stack += [(child, prefix) for child in ast.iter_child_nodes(node)]
    return found


def test_no_function_over_60_lines():
    too_long = {name: n for name, n in long_functions(PACKAGE).items() if name not in ALLOWED}
    listing = "\n".join(f"  {name}: {n} lines" for name, n in sorted(too_long.items(), key=lambda kv: -kv[1]))
    assert not too_long, f"functions over {MAX_LINES} lines (split them into named parts):\n{listing}"


def test_allow_list_names_only_long_functions():
    """A name stays in ALLOWED only while its function exists and is still long."""
    stale = set(ALLOWED) - set(long_functions(PACKAGE))
    assert not stale, f"no longer long (or gone), remove from ALLOWED: {sorted(stale)}"


@pytest.mark.parametrize("body_lines, flagged", [(57, False), (58, False), (59, True)])
def test_the_count_catches_a_long_function(tmp_path, body_lines, flagged):
    """A def line, a docstring and ``body_lines`` statements: 60 lines pass, 61 and more do not;
    nested functions and methods are counted too."""
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        f'def outer():\n    """Doc."""\n{body}\n\nclass C:\n    def method(self):\n        """Doc."""\n'
        + body.replace("    ", "        ") + "\n    @property\n    def short(self):\n        return 1\n")
    found = long_functions(tmp_path)
    expected = {"pkg/mod.py:outer": body_lines + 2, "pkg/mod.py:C.method": body_lines + 2} if flagged else {}
    assert found == expected
