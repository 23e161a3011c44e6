"""`expose infer`: images, folders, globs and videos to SMPL-X meshes, parameters and overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from expose_cli.cli.common import err_console, get_settings, info, resolve_device
from expose_cli.errors import ExposeError
from expose_cli.inference.boxes import load_boxes
from expose_cli.inference.export import FORMATS
from expose_cli.inference.inputs import discover_inputs
from expose_cli.inference.pipeline import InferOptions, run_inference


def infer(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns or videos.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (one sub-folder per input).")] = Path("out"),
    ckpt: Annotated[str, typer.Option("--ckpt", help="Checkpoint path or name: expose, body, hand, face.")] = "expose",
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: obj, ply, glb, npz, json.")] = "obj,npz",
    camera_space: Annotated[bool, typer.Option("--camera-space", help="Meshes placed in the camera of the image.")] = False,
    focal_length: Annotated[float, typer.Option("--focal-length", help="Focal length (px) of the full-perspective camera.")] = 5000.0,
    render: Annotated[bool, typer.Option("--render", help="Save the mesh drawn over the image (PNG; MP4 for videos).")] = False,
    boxes: Annotated[Path | None, typer.Option("--boxes", help="JSON of person boxes per file (or COCO results).")] = None,
    detector: Annotated[str, typer.Option("--detector", help="hog | full-image, for inputs without boxes.")] = "hog",
    min_score: Annotated[float, typer.Option("--min-score", help="Drop boxes scored lower.")] = 0.0,
    max_people: Annotated[int | None, typer.Option("--max-people", min=1, help="Largest N persons per image.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Persons per forward pass.")] = 8,
    precision: Annotated[str, typer.Option("--precision", help="fp32 | bf16 | fp16 (reduced only on GPU).")] = "fp32",
    every: Annotated[int, typer.Option("--every", min=1, help="Videos: every N-th frame.")] = 1,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Videos: at most N frames.")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Resume: skip inputs already done.")] = False,
) -> None:
    """Recover SMPL-X meshes of the people in images and videos."""
    settings = get_settings(ctx)
    fmts = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ExposeError(f"unknown --format {', '.join(bad) or repr(formats)}", hint=f"choose from {', '.join(FORMATS)}")
    if detector not in ("hog", "full-image"):
        raise ExposeError(f"unknown --detector {detector!r}", hint="use hog or full-image")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ExposeError(f"unknown --precision {precision!r}", hint="use fp32, bf16 or fp16")
    device = resolve_device(settings.device)
    if precision != "fp32" and device.type != "cuda":
        raise ExposeError(f"--precision {precision} needs a CUDA device (running on {device})",
                          hint="use --precision fp32 on CPU")
    items = discover_inputs(inputs)
    if not items:
        raise ExposeError("no image or video found in " + ", ".join(inputs), exit_code=2)
    box_table = load_boxes(boxes) if boxes is not None else None
    from expose_cli.models import load_model  # heavy import after argument checks

    predictor = load_model(ckpt, settings.tree, device)  # missing checkpoint / body model: fails here
    options = InferOptions(out_dir=out, formats=fmts, camera_space=camera_space, focal_length=focal_length,
                           render=render, boxes=box_table, detector=detector, min_score=min_score,
                           max_people=max_people, batch_size=batch_size, skip_existing=skip_existing,
                           every=every, max_frames=max_frames, precision=precision)
    progress = Progress(TextColumn("infer"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), console=err_console, disable=settings.quiet)
    images_total = sum(1 for i in items if i.kind == "image")
    with progress:
        task = progress.add_task("infer", total=images_total or None, rate="")
        start = __import__("time").perf_counter()
        done = [0]

        def on_unit(record: dict) -> None:
            done[0] += 1
            rate = done[0] / max(__import__("time").perf_counter() - start, 1e-9)
            progress.update(task, advance=1, rate=f"{rate:.2f} images/s")
            if record.get("error"):
                err_console.print(f"[yellow]{record['input']}[/yellow]"
                                  + (f" frame {record['frame']}" if record.get("frame") is not None else "")
                                  + f": {record['error']}", highlight=False)

        summary = run_inference(items, predictor, options, on_unit)
    persons = sum(r.get("persons", 0) for r in summary["inputs"])
    info(settings, f"{len(summary['inputs'])} image(s)/frame(s), {persons} person(s); results in {out} "
                   f"(summary.json); {summary['failed']} failed")
    if summary["failed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)
