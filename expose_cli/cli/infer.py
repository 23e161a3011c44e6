"""`expose infer`: images, folders, globs and videos to SMPL-X meshes, parameters and overlays."""

from __future__ import annotations

import functools
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

from expose_cli.cli.common import (  # noqa: E402
    BackendOpt,
    BatchSizeOpt,
    CkptOpt,
    FormatOpt,
    OverwriteOpt,
    PrecisionOpt,
    ResumeOpt,
    WorkersOpt,
    err_console,
    get_settings,
    info,
    parse_formats,
    resolve_device,
    warn,
)
from expose_cli.errors import ExposeError  # noqa: E402
from expose_cli.inference.boxes import NO_PERSON, load_boxes  # noqa: E402
from expose_cli.inference.inputs import discover_inputs, video_frame_estimate  # noqa: E402
from expose_cli.io.outputs import check_writable  # noqa: E402
from expose_cli.utils.shard import Shard  # noqa: E402

SMOOTHING = ("none", "oneeuro", "savgol")
SaveKeypointsOpt = Annotated[bool, typer.Option("--save-keypoints", help="Also write each person's whole-body 2D keypoints "
                                                "(COCO-WholeBody, px) to keypoints.json (docs/keypoints.md).")]
RefineOpt = Annotated[bool, typer.Option("--refine", help="Then fit SMPL-X to each person's whole-body keypoints "
                                        "(`expose fit`, default config) from the estimate: <input>/refined/ (docs/fit.md).")]
KeypointsOpt = Annotated[str, typer.Option("--keypoints", help="Keypoint network: auto (`expose fetch keypoints`) | "
                                           "onnx:PATH (RTMW / DWPose signature).")]


def infer(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns or videos.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (one sub-folder per input).")] = Path("out"),
    ckpt: CkptOpt = "expose",
    formats: FormatOpt = "obj,npz",
    camera_space: Annotated[bool, typer.Option("--camera-space", help="Meshes placed in the camera of the image.")] = False,
    focal_length: Annotated[float, typer.Option("--focal-length", help="Focal length (px) of the full-perspective camera.")] = 5000.0,
    render: Annotated[bool, typer.Option("--render", help="Save the mesh drawn over the image (PNG; MP4 for videos).")] = False,
    views: Annotated[str, typer.Option("--views", callback=lambda text: parse_views(text), help="--render: panels beside the overlay, each mesh turned about its vertical axis by these degrees, e.g. 90,180,270 (none by default, as ExPose's demo).")] = "",
    boxes: Annotated[Path | None, typer.Option("--boxes", help="JSON of person boxes per file (or COCO results).")] = None,
    detector: Annotated[str, typer.Option("--detector", help="auto (the ONNX detector of `expose fetch detector`, else HOG) "
                                                            "| hog | full-image | onnx:PATH, for inputs without boxes.")] = "auto",
    min_score: Annotated[float, typer.Option("--min-score", help="Drop boxes scored lower (HOG: SVM margin, about 0-3; "
                                                                 "boxes file: its scores, e.g. 0-1).")] = 0.0,
    max_people: Annotated[int | None, typer.Option("--max-people", min=1, help="Largest N persons per image.")] = None,
    batch_size: BatchSizeOpt = 8,
    precision: PrecisionOpt = "fp32",
    backend: BackendOpt = "auto",
    every: Annotated[int, typer.Option("--every", min=1, help="Videos: every N-th frame.")] = 1,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Videos: at most N frames.")] = None,
    skip_existing: ResumeOpt = False, overwrite: OverwriteOpt = False,
    track: Annotated[bool | None, typer.Option("--track/--no-track", help="Person ids across frames (on for videos; "
                                                                          "--track also treats each image folder as a sequence).")] = None,
    smooth: Annotated[str, typer.Option("--smooth", help="Tracks: none | oneeuro | savgol (zero-phase, default).")] = "savgol",
    motion: Annotated[bool, typer.Option("--motion/--no-motion", help="Tracks: motion.npz (AMASS) and motion.bvh per track.")] = True,
    fps: Annotated[float, typer.Option("--fps", min=0.001, help="Frame rate of image sequences (--track).")] = 30.0,
    workers: WorkersOpt = None,
    save_keypoints: SaveKeypointsOpt = False, keypoints: KeypointsOpt = "auto", refine: RefineOpt = False,
) -> None:
    """Recover SMPL-X meshes of the people in images and videos."""
    settings = get_settings(ctx)
    from expose_cli.inference import distributed
    from expose_cli.inference.backends import check_choice

    device = resolve_device(settings.device)
    precision = check_choice(backend, precision, device, warn=lambda m: warn(settings, m))
    shard = _check_out(out, _shard(track), skip_existing, overwrite)
    fmts, fit_settings = _refine_options(settings, refine, _check_options(formats, smooth), shard)
    items, workers = _discover(inputs, workers, batch_size)
    from expose_cli.inference.loading import crop_spec  # torch: after the argument checks
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.video import TrackOptions

    box_table, kind, onnx_detector, keypoint_net = _persons(boxes, detector, keypoints if save_keypoints or refine else None, settings, device)
    if shard.sharded:
        device = distributed.start(device)  # this rank's GPU (LOCAL_RANK) or the CPU; joins the group
    predictor = _load_on_runtime(settings, ckpt, device, backend, precision)  # missing files fail here; runs --precision
    crop = crop_spec(predictor, detector=kind, min_score=min_score, max_people=max_people)
    options = InferOptions(out_dir=out, formats=fmts, camera_space=camera_space, focal_length=focal_length,
                           render=render, views=views, crop=crop, boxes=box_table, detect=onnx_detector,
                           batch_size=batch_size, skip_existing=skip_existing, every=every, max_frames=max_frames,
                           tracks=None if track is False else TrackOptions(smooth=smooth, motion=motion),
                           track_images=bool(track), sequence_fps=fps, shard=shard, workers=workers, keypoints=keypoint_net)
    if not shard.sharded:
        _run_local(settings, items, predictor, options, (fmts, render, camera_space, device, fit_settings) if refine else None)
    else:
        _run_sharded(settings, items, predictor, options)


def _check_out(out: Path, shard: Shard, resume: bool, overwrite: bool) -> Shard:
    """An --out holding an earlier run's results is continued (--resume) or replaced
    (--overwrite), never overwritten silently (as preprocess, synth, export and fetch). Returns ``shard``."""
    from expose_cli.inference.distributed import summary_name

    if resume and overwrite:
        raise ExposeError("--resume keeps the results already written, --overwrite replaces them",
                          exit_code=2, hint="give one of the two")
    if not resume and not overwrite and (out / summary_name(shard)).is_file():
        raise ExposeError("holds the results of an earlier run", path=out, exit_code=2,
                          hint="add --resume to continue it, --overwrite to replace them, or choose another --out")
    if out.exists() and not out.is_dir():
        raise ExposeError("--out is a file, not a folder", path=out, exit_code=2, hint="choose a folder")
    check_writable(out / summary_name(shard), "--out")
    return shard


def _run_local(settings, items: list, predictor, options, refine: tuple | None) -> None:
    """One process; then ``--refine`` (``refine``: formats, render, camera space, device, fit settings),
    which also refines the inputs that were done when some failed."""
    try:
        run_and_report(settings, items, predictor, options)
    finally:
        if refine is not None:
            from expose_cli.cli.fit import refine_infer_output

            refine_infer_output(settings, options.out_dir, *refine)


def _refine_options(settings, refine: bool, fmts: tuple[str, ...], shard) -> tuple[tuple[str, ...], list[str]]:
    """``--refine``: one process; npz added when no parameter file is asked for (the fit starts from
    them); ``--set fit.*`` / ``stageN.*`` are the fit's, the model config keeps the rest."""
    if not refine:
        return fmts, []
    if shard.sharded:
        raise ExposeError("--refine runs in one process", hint="run `expose fit` on the outputs after torchrun", exit_code=2)
    from expose_cli.fitting.config import SECTIONS

    mine = [s for s in settings.overrides if s.split(".", 1)[0].strip() in SECTIONS]
    settings.overrides = [s for s in settings.overrides if s not in mine]
    return (fmts if {"npz", "json"} & set(fmts) else (*fmts, "npz")), mine


def _load_on_runtime(settings, ckpt: str, device, backend: str, precision: str):
    """The model, its backbones on ``--backend`` (``auto``: the fastest installed) and
    ``--precision``; ONNX graphs come from the data tree's cache."""
    from expose_cli.inference.backends import default_cache, make_predictor
    from expose_cli.models import load_model

    predictor = load_model(ckpt, settings.tree, device, **settings.model_options())
    say = functools.partial(warn, settings)
    cache = default_cache(settings.tree, warn=say) if backend != "torch" else None
    return make_predictor(predictor, backend, precision, cache=cache, warn=say, info=functools.partial(info, settings))


def _discover(inputs: list[str], workers: int | None, batch_size: int) -> tuple[list, int]:
    """The inputs, and the processes that will load them (their fork server started now, so it
    imports while the model loads)."""
    items = discover_inputs(inputs)
    if not items:
        raise ExposeError("no image or video found in " + ", ".join(inputs), exit_code=2)
    from expose_cli.inference import loading  # torch

    workers = loading.workers_for(items, batch_size, workers)
    if workers:
        loading.start_fork_server()
    return items, workers


def _shard(track: bool | None) -> Shard:
    """This process's shard (``RANK``, ``WORLD_SIZE``) under torchrun, else ``Shard(0, 1)``."""
    shard = Shard.from_env()
    if shard.sharded and track:
        raise ExposeError("--track follows persons through a whole image folder in one process",
                          hint="run it without torchrun, or leave --track off (videos are tracked per process)")
    return shard


def _persons(boxes: Path | None, detector: str, keypoints: str | None, settings, device):
    """The boxes file, the person detector (kind, ONNX model) and the keypoint network of
    ``--keypoints`` (when asked for, else ``None``; on ``device``'s GPU when ONNX Runtime has CUDA):
    all checked before any work."""
    from expose_cli.inference.keypoints_net import resolve_keypoint_net

    box_table = load_boxes(boxes) if boxes is not None else None
    kind, onnx_detector = _detector(detector, settings, warn_hog=box_table is None)
    net = resolve_keypoint_net(keypoints, settings.tree.keypoint_model, device) if keypoints is not None else None
    return box_table, kind, onnx_detector, net


def _detector(spec: str, settings, warn_hog: bool):
    """``--detector`` resolved (kind, ONNX detector or None); HOG's one-line warning when it applies."""
    from expose_cli.inference.detector import resolve_detector

    kind, onnx_detector, warning = resolve_detector(spec, settings.tree.person_detector)
    if warning and warn_hog:
        warn(settings, warning)
    return kind, onnx_detector


def _run_sharded(settings, items: list, predictor, options) -> None:
    """Under torchrun: every rank its share of the inputs; then rank 0 merges the summaries."""
    from expose_cli.inference import distributed

    try:
        run_and_report(settings, items, predictor, options)
    except typer.Exit:
        pass  # failures are in the merged summary; the exit status follows it
    finally:
        distributed.barrier_and_stop()
    if options.shard.is_main:
        merged = distributed.merge_summaries(options.out_dir, options.shard.world_size, [str(item.path) for item in items])
        _report_summary(settings, merged, options.out_dir)


def run_and_report(settings, items: list, predictor, options) -> None:
    """The run under a progress bar, then the closing lines (`expose infer` and `expose demo`)."""
    from expose_cli.inference.pipeline import run_inference

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    progress = Progress(TextColumn("infer"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), console=err_console, disable=settings.quiet)
    with progress:
        total = _count_units(options.shard.share(items), options.every, options.max_frames)
        report = _Report(progress, progress.add_task("infer", total=total, rate=""))
        try:
            summary = run_inference(items, predictor, options, report.on_unit)
        finally:
            report.videos_without_persons()
    _report_summary(settings, summary, options.out_dir)


def _check_options(formats: str, smooth: str) -> tuple[str, ...]:
    """The --format list; refuses an unknown format or smoothing (--precision and --backend:
    ``backends.check_choice``; --detector: when resolved)."""
    fmts = parse_formats(formats)
    if smooth not in SMOOTHING:
        raise ExposeError(f"unknown --smooth {smooth!r}", hint=f"use {', '.join(SMOOTHING)}")
    return fmts


def parse_views(text: str) -> tuple[float, ...]:
    """``--views`` ("90,270") as degrees; refuses what is not a number (a usage error, exit status 2)."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of numbers: give degrees, e.g. --views 90,180,270") from None


def _count_units(items: list, every: int, max_frames: int | None) -> int | None:
    """Images plus video frames, or ``None`` when a video's container does not say how many."""
    total: int | None = 0
    for item in items:
        n = 1 if item.kind == "image" else video_frame_estimate(item.path, every, max_frames)
        total = None if total is None or n is None else total + n
    return total or None


class _Report:
    """The progress bar and one line per input that failed or warned; a video's frames without a
    person are counted and reported in one line after the run."""

    def __init__(self, progress: Progress, task) -> None:
        self.progress, self.task = progress, task
        self.start, self.done = time.perf_counter(), 0
        self.no_person: dict[str, list[int]] = {}  # video -> [frames without a person, frames]

    def on_unit(self, record: dict) -> None:
        if not record.get("skipped"):
            self.done += 1
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        self.progress.update(self.task, advance=1, rate=f"{rate:.2f} images/s")
        where = record["input"] + (f" frame {record['frame']}" if record.get("frame") is not None else "")
        if record.get("skipped") and record.get("error") in (None, NO_PERSON):
            return  # done in an earlier run, reported then
        if record.get("frame") is not None:
            counts = self.no_person.setdefault(record["input"], [0, 0])
            counts[1] += 1
            if record.get("error") == NO_PERSON:
                counts[0] += 1
                return  # one line per video, after the run
        if record.get("warnings"):
            err_console.print(f"[yellow]{where}[/yellow]: " + "; ".join(record["warnings"]), highlight=False)
        if record.get("error"):
            err_console.print(f"[yellow]{where}[/yellow]: {record['error']}", highlight=False)

    def videos_without_persons(self) -> None:
        for video, (missing, frames) in self.no_person.items():
            if missing:
                err_console.print(f"[yellow]{video}[/yellow]: {NO_PERSON} in {missing} of {frames} frame(s)",
                                  highlight=False)


def _report_summary(settings, summary: dict, out: Path) -> None:
    """Failed overlay videos, the closing line; exit status 1 when any input failed."""
    for video in summary.get("videos", []):
        if video.get("error"):
            err_console.print(f"[yellow]{video['input']}[/yellow]: {video['error']}", highlight=False)
    persons = sum(r.get("persons", 0) for r in summary["inputs"])
    skipped = sum(1 for r in summary["inputs"] if r.get("skipped"))
    runtime = summary.get("runtime")
    ran = f"; ran on {runtime['backend']} {runtime['precision']} ({runtime['device']})" if runtime else ""
    info(settings, f"{len(summary['inputs'])} image(s)/frame(s) ({skipped} already done), {persons} person(s); "
                   f"results in {out} (summary.json); {summary['failed']} failed{ran}")
    if summary["failed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)
