"""``DIR/index.html`` for an output folder: which kind of folder it is, the manifest and data files,
the page's assets copied beside it (``.view/``), the page itself written last (atomically)."""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from expose_cli.errors import ExposeError, option
from expose_cli.utils.atomic import atomic_path, write_text_atomic
from expose_cli.view.data import ASSET_DIR, write_manifest

KINDS = {"summary.json": "infer", "fit.json": "fit", "report.json": "eval", "log.jsonl": "train"}
ASSETS = ("three.min.js", "three.LICENSE", "viewer.js", "viewer.css")


def folder_kind(root: Path) -> str:
    """``infer``, ``fit``, ``eval`` or ``train``: from the file that kind of run leaves in its folder."""
    if not root.is_dir():
        raise ExposeError(f"{root} is not a folder", hint=f"give the {option('out')} folder of expose infer, eval {option('report')} or train",
                          exit_code=2)
    for name, kind in KINDS.items():
        if (root / name).is_file():
            return kind
    raise ExposeError(f"{root} holds no summary.json, fit.json, report.json or log.jsonl",
                      hint=f"give the {option('out')} folder of expose infer or fit, the {option('report')} folder of expose eval, "
                           "or the output folder of expose train", exit_code=2)


def count_items(root: Path, kind: str) -> int:
    """Units of work for the progress bar: images and videos of an infer or fit folder, else 1."""
    if kind == "infer":
        from expose_cli.view.infer_page import count_items as infer_items

        return infer_items(root)
    if kind == "fit":
        from expose_cli.view.fit_page import count_items as fit_items

        return fit_items(root)
    return 1


def build_manifest(root: Path, kind: str, on_item: Callable[[], None] | None = None) -> dict:
    """The manifest of ``root`` (data files written on the way); a damaged or foreign file is one
    error naming it."""
    source = next(name for name, k in KINDS.items() if k == kind)
    try:
        return _manifest(root, kind, on_item)
    except (ValueError, KeyError, TypeError, OSError) as exc:  # json's errors are ValueErrors
        raise ExposeError(f"{root / source}: not a complete expose {kind} output ({type(exc).__name__}: {exc})",
                          hint=f"give the folder of a finished expose {kind} run, or run it again") from None


def _manifest(root: Path, kind: str, on_item: Callable[[], None] | None) -> dict:
    if kind == "infer":
        from expose_cli.view.infer_page import infer_manifest

        return infer_manifest(root, on_item)
    if kind == "fit":
        from expose_cli.view.fit_page import fit_manifest

        return fit_manifest(root, on_item)
    if kind == "eval":
        from expose_cli.view.eval_page import eval_manifest

        manifest = eval_manifest(root)
    else:
        from expose_cli.view.train_page import train_manifest

        manifest = train_manifest(root)
    if on_item:
        on_item()
    return manifest


def write_page(root: Path, on_item: Callable[[], None] | None = None) -> Path:
    """Write ``root/index.html`` (and ``root/.view/``) for the output folder ``root``; returns the page."""
    kind = folder_kind(root)
    assets = root / ASSET_DIR
    if (assets / "data").is_dir():
        shutil.rmtree(assets / "data")  # an earlier page's data: rewritten from the folder as it is now
    assets.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(root, kind, on_item)
    write_manifest(root, manifest)
    package = resources.files("expose_cli.view") / "assets"
    for name in ASSETS:
        with atomic_path(assets / name) as tmp:
            tmp.write_bytes((package / name).read_bytes())
    template = (package / "page.html").read_text(encoding="utf-8")
    page = template.replace("{{TITLE}}", html.escape(f"expose {kind}: {manifest['title']}"))
    write_text_atomic(root / "index.html", page)
    return root / "index.html"
