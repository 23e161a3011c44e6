"""`expose infer`: images, folders, globs and videos to SMPL-X meshes, parameters and overlays."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

# OpenCV's and FFmpeg's own warnings ("moov atom not found", libjpeg notes) would add lines of their
# own to each bad input's one line: quiet them before cv2 is first used (read at import / first open).
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

import cv2  # noqa: E402
import typer  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from expose_cli.cli.common import err_console, get_settings, info, resolve_device, warn  # noqa: E402
from expose_cli.errors import ExposeError  # noqa: E402
from expose_cli.inference.boxes import load_boxes  # noqa: E402
from expose_cli.inference.export import FORMATS  # noqa: E402
from expose_cli.inference.inputs import discover_inputs, video_frame_estimate  # noqa: E402


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
    min_score: Annotated[float, typer.Option("--min-score", help="Drop boxes scored lower (HOG: SVM margin, about 0-3; "
                                                                 "boxes file: its scores, e.g. 0-1).")] = 0.0,
    max_people: Annotated[int | None, typer.Option("--max-people", min=1, help="Largest N persons per image.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Persons per forward pass.")] = 8,
    precision: Annotated[str, typer.Option("--precision", help="fp32 (exact) | bf16 (fast: CPU with bf16, GPU) | fp16 (GPU).")] = "fp32",
    backend: Annotated[str, typer.Option("--backend", help="torch | onnxruntime | openvino (CPU; extras).")] = "torch",
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
    from expose_cli.inference.backends import check_choice, make_predictor

    device = resolve_device(settings.device)
    precision = check_choice(backend, precision, device, warn=lambda m: warn(settings, m))
    items = discover_inputs(inputs)
    if not items:
        raise ExposeError("no image or video found in " + ", ".join(inputs), exit_code=2)
    box_table = load_boxes(boxes) if boxes is not None else None
    from expose_cli.inference.pipeline import (  # heavy (torch):
        NO_PERSON,
        InferOptions,
        run_inference,
    )
    from expose_cli.models import load_model  # imported after the argument checks

    predictor = load_model(ckpt, settings.tree, device, **settings.model_options())  # missing files fail here
    predictor = make_predictor(predictor, backend, precision)  # CPU: the backbones' runtime and precision
    options = InferOptions(out_dir=out, formats=fmts, camera_space=camera_space, focal_length=focal_length,
                           render=render, boxes=box_table, detector=detector, min_score=min_score,
                           max_people=max_people, batch_size=batch_size, skip_existing=skip_existing,
                           every=every, max_frames=max_frames,
                           precision="fp32")  # the predictor runs the backbones in --precision
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    progress = Progress(TextColumn("infer"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), console=err_console, disable=settings.quiet)
    total: int | None = 0
    for item in items:  # images and video frames (when every container says how many)
        n = 1 if item.kind == "image" else video_frame_estimate(item.path, every, max_frames)
        total = None if total is None or n is None else total + n
    no_person: dict[str, list[int]] = {}  # video -> [frames without a person, frames]
    with progress:
        task = progress.add_task("infer", total=total or None, rate="")
        start = time.perf_counter()
        done = [0]

        def on_unit(record: dict) -> None:
            if not record.get("skipped"):
                done[0] += 1
            rate = done[0] / max(time.perf_counter() - start, 1e-9)
            progress.update(task, advance=1, rate=f"{rate:.2f} images/s")
            where = record["input"] + (f" frame {record['frame']}" if record.get("frame") is not None else "")
            if record.get("skipped") and record.get("error") in (None, NO_PERSON):
                return  # done in an earlier run, reported then
            if record.get("frame") is not None:
                counts = no_person.setdefault(record["input"], [0, 0])
                counts[1] += 1
                if record.get("error") == NO_PERSON:
                    counts[0] += 1
                    return  # one line per video, after the run
            if record.get("warnings"):
                err_console.print(f"[yellow]{where}[/yellow]: " + "; ".join(record["warnings"]), highlight=False)
            if record.get("error"):
                err_console.print(f"[yellow]{where}[/yellow]: {record['error']}", highlight=False)

        try:
            summary = run_inference(items, predictor, options, on_unit)
        finally:
            for video, (missing, frames) in no_person.items():
                if missing:
                    err_console.print(f"[yellow]{video}[/yellow]: {NO_PERSON} in {missing} of {frames} frame(s)",
                                      highlight=False)
    for video in summary.get("videos", []):
        if video.get("error"):
            err_console.print(f"[yellow]{video['input']}[/yellow]: {video['error']}", highlight=False)
    persons = sum(r.get("persons", 0) for r in summary["inputs"])
    skipped = sum(1 for r in summary["inputs"] if r.get("skipped"))
    info(settings, f"{len(summary['inputs'])} image(s)/frame(s) ({skipped} already done), {persons} person(s); "
                   f"results in {out} (summary.json); {summary['failed']} failed")
    if summary["failed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)
