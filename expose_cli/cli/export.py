"""`expose export onnx KIND`: a model's networks as ONNX graphs for other runtimes and languages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from expose_cli.cli.common import CkptOpt, OverwriteOpt, get_settings, info
from expose_cli.errors import ExposeError
from expose_cli.io.outputs import check_writable
from expose_cli.kinds import KINDS, kind_names

export_app = typer.Typer(help="Export a model for other runtimes (ONNX).", no_args_is_help=True)


@export_app.command("onnx")
def onnx_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="body | hand | face | expose")],
    out: Annotated[Path, typer.Option("--out", "-o", help="A .onnx file (body, hand, face) or a folder.")],
    ckpt: CkptOpt = None,
    opset: Annotated[int, typer.Option("--opset", min=13, help="ONNX opset of the graphs.")] = 17,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write the networks of a checkpoint as ONNX with a dynamic batch axis (docs/export.md)."""
    if kind not in KINDS:
        raise ExposeError(f"unknown model kind {kind!r}", hint="use " + kind_names())
    settings = get_settings(ctx)
    from expose_cli.inference import onnx_export  # torch: only when a command runs
    from expose_cli.models import load_net

    onnx_export.require_onnx()  # a missing extra fails before the checkpoint is read
    net, _ = load_net(ckpt or kind, settings.tree, settings.model_config, settings.overrides)
    if net.kind != kind:
        raise ExposeError(f"{ckpt} holds a {net.kind!r} model, not {kind!r}", hint=f"use: expose export onnx {net.kind}")
    _refuse_existing(onnx_export.target_paths(net, out), overwrite)
    paths = onnx_export.export_onnx(net, out, opset)
    for path in paths:
        info(settings, f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {opset})")


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Outputs already there are replaced only with --overwrite (as preprocess, synth and fetch)."""
    there = [p for p in paths if p.exists()]
    if there and not overwrite:
        raise ExposeError("output exists" + (f" (and {len(there) - 1} more)" if len(there) > 1 else ""), path=there[0],
                          exit_code=2, hint="add --overwrite to replace it, or choose another --out")
    for path in paths:
        check_writable(path, "--out")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
