"""Layers import only downward: every import in `expose_cli/` against the order in docs/architecture.md.

The order is read from the table under "Layer order" in docs/architecture.md (one row per layer:
its number and the back-quoted folders / modules), so the picture in the doc and this check are
the same list. Imports are read with ``ast`` from every module, at any depth (function-level lazy
imports and ``if TYPE_CHECKING`` blocks included), and ``importlib.import_module("...")`` calls
with a literal name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "expose_cli"
DOC = ROOT / "docs" / "architecture.md"


def read_layer_order(doc: Path) -> dict[str, int]:
    """``{"geometry": 3, "errors.py": 1, ...}`` from the table rows ``| 3 | `geometry/` | ... |``."""
    order: dict[str, int] = {}
    for line in doc.read_text().splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m:
            for name in re.findall(r"`([^`]+)`", m.group(2)):
                order[name.rstrip("/")] = int(m.group(1))
    return order


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, package: Path, order: dict[str, int]) -> int | None:
    """The layer number of ``expose_cli.x.y``: that of folder ``x`` or of module ``x.py``; the
    package's own ``__init__`` when the name is the package itself."""
    parts = module.split(".")
    if len(parts) == 1:
        return order.get("__init__.py")
    top = parts[1]
    if (package / top).is_dir():
        return order.get(top)
    return order.get(top + ".py")


def imported_modules(path: Path, module: str, package_name: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of the package in one file, however deeply nested."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            found.append((node.lineno, target))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == package_name or name.startswith(package_name + ".")]


def _resolves(name: str, package: Path) -> bool:
    """Whether ``expose_cli.a.b`` names a module or package (not a function imported from one)."""
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (package / rel).is_dir() or (package / rel).with_suffix(".py").is_file()


def layer_violations(package: Path, order: dict[str, int]) -> list[str]:
    """One line per import of a higher layer, and per module that belongs to no layer."""
    problems: list[str] = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        own = layer_of(module, package, order)
        where = path.relative_to(package.parent)
        if own is None:
            problems.append(f"{where}: in no layer of docs/architecture.md")
            continue
        for line, name in imported_modules(path, module, package.name):
            if not _resolves(name, package):
                continue  # `from expose_cli.x import f`: the module itself is checked as well
            target = layer_of(name, package, order)
            if target is None:
                problems.append(f"{where}:{line}: imports {name}, which is in no layer")
            elif target > own:
                problems.append(f"{where}:{line}: layer {own} imports {name} (layer {target})")
    return problems


def test_doc_lists_the_layer_order():
    order = read_layer_order(DOC)
    expected = ["__init__.py", "errors.py", "kinds.py", "utils", "io", "geometry", "body_models", "models", "data",
                "inference", "fitting", "evaluation", "training", "assets", "testing", "view", "cli", "__main__.py"]
    assert sorted(order, key=lambda k: (order[k], expected.index(k) if k in expected else 99)) == expected
    assert order["errors.py"] == order["kinds.py"] == order["utils"] < order["io"] < order["geometry"] < order["cli"]


def test_no_module_imports_a_layer_above_its_own():
    problems = layer_violations(PACKAGE, read_layer_order(DOC))
    assert not problems, "upward imports (see docs/architecture.md):\n" + "\n".join(problems)


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "pkg"
    for rel, text in files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    return package


@pytest.mark.parametrize("source,caught", [
    ("from pkg.cli import app\n", True),
    ("def f():\n    from pkg.cli.app import main\n    return main\n", True),  # lazy import
    ("def f():\n    import pkg.cli.app\n", True),
    ("from ..cli import app\n", True),  # relative, up one package
    ("from pkg import cli\n", True),
    ("import importlib\nimportlib.import_module('pkg.cli.app')\n", True),
    ("from pkg.io.paths import DataTree\n", False),
    ("from . import helpers\n", False),
    ("import os\nfrom pkg import __version__\n", False),
])
def test_checker_catches_an_upward_import(tmp_path, source, caught):
    package = _fake_package(tmp_path, {
        "__init__.py": "__version__ = '0'\n", "io/__init__.py": "", "io/paths.py": "DataTree = 1\n",
        "geometry/__init__.py": "", "geometry/helpers.py": "", "geometry/rot.py": source,
        "cli/__init__.py": "", "cli/app.py": "def main():\n    pass\n"})
    order = {"__init__.py": 1, "io": 2, "geometry": 3, "cli": 12}
    problems = layer_violations(package, order)
    assert bool(problems) == caught, problems
    if caught:
        assert problems[0].startswith("pkg/geometry/rot.py:") and "layer 3 imports pkg.cli" in problems[0]


def test_checker_names_a_module_outside_every_layer(tmp_path):
    package = _fake_package(tmp_path, {"__init__.py": "", "extra/__init__.py": "", "extra/x.py": ""})
    assert layer_violations(package, {"__init__.py": 1}) == ["pkg/extra/__init__.py: in no layer of docs/architecture.md",
                                                             "pkg/extra/x.py: in no layer of docs/architecture.md"]
