"""`expose import-body-models`: install the licensed SMPL-X / MANO / FLAME / SMPL downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from expose_cli.assets.importer import import_body_models
from expose_cli.cli.common import JsonOpt, OverwriteOpt, console, get_settings, info
from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import write_json_atomic


def import_models(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Zip archives, folders or files as downloaded.")],
    force: OverwriteOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """Install official body-model downloads (zips or files) into the data tree."""
    settings = get_settings(ctx)
    records = import_body_models(paths, settings.tree, force=force)
    table = Table(title="import-body-models")
    for col in ("source", "installed as", "status", "detail"):
        table.add_column(col)
    for r in records:
        colour = {"installed": "green", "exists": "yellow"}.get(r.status, "red")
        table.add_row(r.source, r.installed, f"[{colour}]{r.status}[/]", r.detail)
    console.print(table)
    if json_out is not None:
        write_json_atomic(json_out, [r.__dict__ for r in records])
    if all(r.status == "unrecognised" for r in records):
        raise ExposeError(
            "no SMPL-X, MANO, FLAME or SMPL model file found in " + ", ".join(map(str, paths)),
            hint="pass the archives as downloaded: models_smplx_v1_1.zip, mano_v1_2.zip, FLAME2019.zip, "
            "SMPL_python_v.1.0.0.zip (or the .pkl/.npz files inside them)",
        )
    bad = [r for r in records if not r.ok]
    info(settings, f"{sum(r.status == 'installed' for r in records)} installed, "
                   f"{len(bad)} refused, invalid or not a body-model file")
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("import-body-models")(import_models)
