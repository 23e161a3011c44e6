"""`expose demo`: the whole inference path with no downloads, on synthetic stand-ins."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer

from expose_cli.cli.common import Settings, console, get_settings, resolve_device
from expose_cli.io.paths import DataTree


def draw_person(img: np.ndarray, x: int, y: int, height: int, colour) -> list[float]:
    """A stick figure of ``height`` px with its top-left at (x, y); returns its box ``[x1, y1, x2, y2]``."""
    u = height / 8
    head = (int(x + 2 * u), int(y + u))
    cv2.circle(img, head, int(u), colour, -1)
    neck, hip = (head[0], int(y + 2 * u)), (head[0], int(y + 5 * u))
    cv2.line(img, neck, hip, colour, max(2, int(u / 3)))
    for dx in (-1, 1):
        cv2.line(img, (neck[0], int(neck[1] + u / 2)), (int(neck[0] + dx * 1.6 * u), int(y + 4.5 * u)), colour, max(2, int(u / 4)))
        cv2.line(img, hip, (int(hip[0] + dx * u), int(y + 8 * u)), colour, max(2, int(u / 4)))
    return [x, y, x + 4 * u, y + 8 * u]


def write_demo_inputs(root: Path) -> tuple[Path, Path]:
    """Three 640x480 images of one or two stick figures in ``root/images`` and their boxes in
    ``root/boxes.json``; returns both paths."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    boxes = {}
    rng = np.random.default_rng(0)
    for i in range(3):
        img = np.full((480, 640, 3), 200, np.uint8)
        img[:] = (rng.integers(150, 230, 3)).astype(np.uint8)
        people = [draw_person(img, 80 + 220 * k, 60 + 20 * k, 360 - 40 * k, (40 * k, 60, 160)) for k in range(1 + i % 2)]
        cv2.imwrite(str(images / f"demo_{i:02d}.jpg"), img)
        boxes[f"demo_{i:02d}.jpg"] = [p + [1.0] for p in people]
    (root / "boxes.json").write_text(json.dumps(boxes, indent=1))
    return images, root / "boxes.json"


def run_demo_inference(settings: Settings, tree: DataTree, images: Path, boxes: Path, results: Path) -> None:
    """What `expose infer IMAGES --boxes BOXES --render --format obj,ply,glb,npz,json` runs, called
    directly: the pipeline under infer's progress bar and report (exit status 1 when an input failed)."""
    from expose_cli.cli.infer import run_and_report
    from expose_cli.inference.boxes import load_boxes
    from expose_cli.inference.inputs import discover_inputs
    from expose_cli.inference.options import InferOptions
    from expose_cli.models import load_model

    items = discover_inputs([images])
    predictor = load_model("expose", tree, resolve_device(settings.device), **settings.model_options())
    options = InferOptions(out_dir=results, formats=("obj", "ply", "glb", "npz", "json"), render=True,
                           boxes=load_boxes(boxes))
    run_and_report(settings, items, predictor, options)


def demo(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write everything (default: a new temp folder).")] = None,
    full_size: Annotated[bool, typer.Option("--full-size", help="Use full-size networks (slower; small by default).")] = False,
) -> None:
    """Run `expose infer` end to end on stand-in models and generated images (no downloads)."""
    from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint
    from expose_cli.testing.standins import write_standin_data_tree

    settings = get_settings(ctx)
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="expose_demo_"))
    console.print("[bold]expose demo[/bold]: synthetic stand-in body models and random weights.\n"
                  "The shapes it produces are meaningless; it shows that every step runs.")
    tree = write_standin_data_tree(root / "data")
    write_mmhuman3d_checkpoint(tree.checkpoint("expose"), "expose", seed=0, small=not full_size)
    images, boxes = write_demo_inputs(root)
    results = root / "results"
    try:
        run_demo_inference(settings, tree, images, boxes, results)
    finally:
        console.print(f"\nresults: {results} (summary.json, per-image folders with meshes and overlay.png)\n"
                      "For real results: register and download SMPL-X, then `expose import-body-models FILE.zip`,\n"
                      "and `expose fetch-models` for the published checkpoints; then `expose infer YOUR_IMAGES --render`.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
