"""`make install` gives every package the tests use: a missing one fails the suite, never skips it.

CI (`.ci/run`) builds a fresh virtual environment without the system's site-packages and runs the
README's `make install` and `make test` in it, so these checks see exactly what a new user gets.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["dev"]


def _applies(requirement: str) -> bool:
    marker = requirement.partition(";")[2].strip()
    if not marker:
        return True
    major, minor = re.fullmatch(r"python_version\s*<\s*'(\d+)\.(\d+)'", marker).groups()
    return sys.version_info[:2] < (int(major), int(minor))


def test_every_listed_package_is_installed():
    missing = []
    for requirement in filter(_applies, _requirements()):
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    assert not missing, f"not installed (is `make install` out of date?): {missing}"


def test_the_fast_cpu_runtimes_are_part_of_the_dev_install():
    dev = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"])
    for name in ("onnx", "onnxruntime", "openvino"):
        assert re.search(rf"(^|\s|\"){name}[<>=!~ ]", dev + " "), f"{name} missing from the dev extra"


def test_no_test_skips_for_a_missing_package():
    """`pytest.importorskip` would turn a missing install step into a silent skip."""
    offenders = [p.name for p in sorted((ROOT / "tests").glob("*.py"))
                 if p.name != Path(__file__).name and "importorskip" in p.read_text()]
    assert offenders == [], f"use a plain import (make install provides it): {offenders}"
