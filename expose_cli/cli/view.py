"""`expose view DIR`: DIR/index.html, one offline page for an infer, eval --report or train folder."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from expose_cli.cli.common import err_console, get_settings, info
from expose_cli.errors import ExposeError


def view(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The output folder of expose infer, eval --report or train.")],
    open_page: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in the web browser.")] = True,
) -> None:
    """Write FOLDER/index.html: meshes in 3D, videos, eval reports or training curves, offline."""
    from expose_cli.view.page import count_items, folder_kind, write_page

    settings = get_settings(ctx)
    kind = folder_kind(folder)
    if not _writable(folder):
        raise ExposeError(f"{folder} is not writable", hint="give a folder you may write to, or copy it first",
                          exit_code=2)
    progress = Progress(TextColumn(f"view {kind}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=settings.quiet)
    with progress:
        task = progress.add_task("view", total=count_items(folder, kind))
        page = write_page(folder, on_item=lambda: progress.advance(task))
    info(settings, f"{kind} page: {page}")
    if open_page:
        webbrowser.open(page.resolve().as_uri())


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK | os.X_OK)


def register(app: typer.Typer) -> None:
    app.command("view")(view)
