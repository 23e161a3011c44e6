"""`expose synth`: write a synthetic, learnable training set in the preprocessed HDF5 schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from expose_cli.cli.common import (
    JsonOpt,
    OverwriteOpt,
    SeedOpt,
    console,
    err_console,
    get_settings,
    info,
)
from expose_cli.errors import ExposeError
from expose_cli.io.outputs import check_writable
from expose_cli.utils.atomic import write_json_atomic


def synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="Folder for synth_<kind>_train.h5 and its images "
                                            "(DATA_DIR/preprocessed_datasets makes it a training member).")],
    kind: Annotated[str, typer.Option("--kind", help="body (SMPL-X), hand (MANO) or face (FLAME).")] = "body",
    count: Annotated[int, typer.Option("--count", min=1, help="Number of samples.")] = 256,
    size: Annotated[int, typer.Option("--size", min=32, help="Image side (px).")] = 256,
    seed: SeedOpt = 0,
    embed: Annotated[bool, typer.Option("--embed-images/--no-embed-images", help="Also store each image (JPEG) in the file.")] = True,
    overwrite: OverwriteOpt = False,
    pose_dims: Annotated[int, typer.Option("--pose-dims", min=0, help="0: independent random joints; K > 0: poses "
                                           "from K fixed directions (a family a small network learns fast).")] = 0,
    orient_range: Annotated[float, typer.Option("--orient-range", min=0.0, max=180.0,
                                                help="Yaw range +- degrees (the tilt scales with it).")] = 60.0,
    pitch: Annotated[float, typer.Option("--pitch", help="Turn about x, degrees (90: a stand-in hand's palm).")] = 0.0,
    json_out: JsonOpt = None,
) -> None:
    """Render random SMPL-X bodies / MANO hands / FLAME faces (body models from --data-dir) with
    their keypoints, parameters and boxes: a small training set that tests and benchmarks use.
    ``--pose-dims 1 --orient-range 0`` is the family of the learning-proof test (docs/train.md)."""
    from expose_cli.training.synth import (  # torch: only when the command runs
        SYNTH_KINDS,
        write_synth,
    )

    settings = get_settings(ctx)
    if kind not in SYNTH_KINDS:
        raise ExposeError(f"unknown --kind {kind!r}", hint=f"use one of {', '.join(SYNTH_KINDS)}")
    check_writable(out_dir / f"synth_{kind}_train.h5", "the output folder")  # before any rendering
    if json_out is not None:
        check_writable(json_out, "--json")
    progress = Progress(TextColumn(f"synth {kind}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=settings.quiet)
    with progress:
        task = progress.add_task("synth", total=count)
        path = write_synth(out_dir, kind, count, settings.tree, seed=seed, size=size, embed=embed,
                           overwrite=overwrite, on_sample=lambda: progress.advance(task), pose_dims=pose_dims,
                           orient_range=orient_range, pitch=pitch)
    summary = {"path": str(path), "kind": kind, "count": count, "size": size, "seed": seed, "embedded": embed,
               "pose_dims": pose_dims, "orient_range": orient_range, "pitch": pitch}
    console.print(f"{path}: {count} {kind} samples ({size} px)")
    info(settings, f"train on it with member name `synth_{kind}` when {out_dir} is DATA_DIR/preprocessed_datasets, "
                   "or pass the .h5 path as a member")
    if json_out is not None:
        write_json_atomic(json_out, summary)


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
