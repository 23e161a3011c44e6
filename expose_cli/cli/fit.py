"""`expose fit`: SMPLify-X on 2D or 3D keypoints, started from an `expose infer` output or the mean pose."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    track,
)
from rich.table import Table

from expose_cli.cli.common import (
    FormatOpt,
    JsonOpt,
    OverwriteOpt,
    console,
    err_console,
    error_text,
    get_settings,
    info,
    parse_formats,
    resolve_device,
)
from expose_cli.errors import ExposeError


def _image_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ExposeError(f"--image-size {text!r}", hint="write HEIGHT,WIDTH in pixels, e.g. 1080,1920",
                          exit_code=2) from None
    if h < 1 or w < 1:
        raise ExposeError(f"--image-size {text!r} must be positive", exit_code=2)
    return h, w


def _check(inputs: list[Path], out: Path, formats: str, start: Path | None, overwrite: bool) -> tuple[str, ...]:
    """Arguments, paths and permissions, before any work: one line each."""
    fmts = parse_formats(formats)
    if start is not None and not start.exists():
        raise ExposeError("start not found", path=start, exit_code=2,
                          hint="give an `expose infer` output folder, or leave --start out (mean pose)")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise ExposeError(f"keypoint file not found: {', '.join(missing)}", hint="check the paths", exit_code=2)
    stems = [p.stem for p in inputs]
    if len(set(stems)) != len(stems):
        raise ExposeError("two inputs have the same file name; their outputs would collide", exit_code=2,
                          hint="fit them in separate runs (different --out)")
    for path in inputs:
        done = out / path.stem / "losses.json"
        if done.exists() and not overwrite:
            raise ExposeError("output exists", path=done.parent, exit_code=2, hint="pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    probe = out / ".expose_write_test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError:
        raise ExposeError("cannot write here", path=out, exit_code=2, hint="choose another --out") from None
    return fmts


def _start_for(start: Path | None, path: Path, many: bool) -> Path | None:
    """``--start`` itself for one input, else its sub-folder named after the input (as infer names them)."""
    if start is None or not many:
        return start
    for name in (path.stem, path.stem.removesuffix("_keypoints")):
        if (start / name).is_dir():
            return start / name
    return start / path.stem


def _read_all(paths: list[Path], start: Path | None, image: Path | None, convention: str | None) -> tuple[list, list[str]]:
    """``(keypoints, start)`` per readable input; one line per input that cannot be used."""
    from expose_cli.fitting.inputs import check_image, read_keypoint_input, read_start

    items, failed = [], []
    for path in paths:
        try:
            kin = read_keypoint_input(path, convention)
            if image is not None and len(paths) == 1:
                size = check_image(kin, image)  # one line when the keypoints are of another image
                kin.image_size = kin.image_size or size
                kin.image = str(image)
            where = _start_for(start, path, len(paths) > 1)
            items.append((kin, None if where is None else read_start(where, kin.persons, kin.frames)))
        except ExposeError as exc:
            message, hint = error_text(exc)
            failed.append(message)
            err_console.print(f"[red]{message}[/red]" + (f" ({hint})" if hint else ""), highlight=False)
    return items, failed


def _models(settings, body_model: str, device):
    """``(layer, keypoint model)`` of the body model fitted: SMPL-X (144 keypoints) or SMPL (24 joints)."""
    from expose_cli.body_models.builders import build_smpl, build_smplx
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
    from expose_cli.fitting.smpl import SMPLJoints

    if body_model == "smpl":
        layer = build_smpl(settings.tree).to(device)
        return layer, SMPLJoints(layer).to(device)
    layer = build_smplx(settings.tree).to(device)
    return layer, SMPLXKeypoints(layer).to(device)


def _run(settings, paths: list[Path], start: Path | None, image: Path | None, cfg, options, device, convention=None,
         prior=None, body_model: str = "smplx"):
    """Every input under a progress bar; an input that fails is one line, the others go on."""
    from expose_cli.fitting.run import fit_input

    items, failed = _read_all(paths, start, image, convention)
    layer, model = _models(settings, body_model, device)
    steps = cfg.num_epochs * sum(s.num_iter for s in cfg.stages() if s.fitted())
    records = []
    progress = Progress(TextColumn("fit"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=settings.quiet)
    with progress:
        task = progress.add_task("fit", total=len(items) * steps)
        for kin, begin in items:
            done = progress.tasks[task].completed
            try:
                record = fit_input(model, layer, cfg, kin, begin, options, lambda: progress.advance(task), prior=prior)
            except ExposeError as exc:
                message, hint = error_text(exc)
                failed.append(message)
                err_console.print(f"[red]{message}[/red]" + (f" ({hint})" if hint else ""), highlight=False)
                continue
            finally:
                progress.update(task, completed=done + steps)
            records.append(record)
            for line in record["problems"]:
                err_console.print(f"[yellow]{line}[/yellow]", highlight=False)
    return records, failed


def _report(settings, records: list[dict], failed: list[str], out: Path, cfg, json_out: Path | None) -> None:
    """A table of the final terms per person, the closing line, ``--json``."""
    from expose_cli.utils.atomic import write_json_atomic

    table = Table("input", "person", "initial total", "final total", "final terms")
    for r in records:
        for loss in r.get("losses", []):
            terms = ", ".join(f"{k} {v:.4g}" for k, v in loss["final"].items() if k != "total")
            table.add_row(Path(r["input"]).name, str(loss["person"]), f"{loss['initial']['total']:.4g}",
                          f"{loss['final']['total']:.4g}", terms)
    if not settings.quiet:
        console.print(table)
    summary = {"compat": cfg.compat, "config": cfg.to_dict(), "inputs": records, "failed": failed}
    write_json_atomic(out / "fit.json", summary)
    if json_out is not None:
        write_json_atomic(json_out, summary)
    persons = sum(len(r["persons"]) for r in records)
    problems = sum(len(r["problems"]) for r in records)
    info(settings, f"{len(records)} input(s), {persons} person(s) fitted; results in {out} (fit.json); "
                   f"{len(failed)} input(s) failed, {problems} person(s)/frame(s) not fitted")


def fit(
    ctx: typer.Context,
    keypoints: Annotated[list[Path], typer.Argument(help="Keypoint files (docs/keypoints.md; a folder: per-frame files "
                                                   "of a sequence) or SMPL-X keypoint JSON (docs/fit.md).")],
    start: Annotated[Path | None, typer.Option("--start", help="`expose infer` output to start from (one input: "
                                               "its folder; several: the --out of infer). Default: the mean pose.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (one sub-folder per input).")] = Path("fit_out"),
    formats: FormatOpt = "npz,json",
    focal_length: Annotated[float | None, typer.Option("--focal-length", min=1.0, help="Focal length (px) of 2D "
                                                       "keypoints' camera (default: the start's, else 5000).")] = None,
    image_size: Annotated[str | None, typer.Option("--image-size", help="HEIGHT,WIDTH px of 2D keypoints' image "
                                                   "(default: the file's, else the start's).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="The image, for --render (one input).")] = None,
    render: Annotated[bool, typer.Option("--render", help="Save overlay.png (2D keypoints with an image).")] = False,
    camera_space: Annotated[bool, typer.Option("--camera-space", help="Meshes placed in the camera frame.")] = False,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = None,
    convention: Annotated[str | None, typer.Option("--convention", help="Of array files: coco_wholebody, openpose_137, "
                                                   "openpose_25, h36m, coco, smplx, smpl (default: by point count).")] = None,
    body_model: Annotated[str, typer.Option("--body-model", help="smplx, or smpl (SMPLify: 24 joints, no hands "
                                            "or face).")] = "smplx",
) -> None:
    """Fit SMPL-X (or SMPL) to 2D keypoints (with a camera) or 3D keypoints, persons and frames batched (docs/fit.md).
    Config: MMHuman3D's SMPLify-X stages; --set fit.compat=mmhuman3d for its exact formulation,
    --set fit.<field>=... / stageN.<field>=..., or a TOML file with --model-config."""
    from expose_cli.fitting.config import load_config
    from expose_cli.fitting.pose_prior import load_pose_prior
    from expose_cli.fitting.run import FitOptions

    settings = get_settings(ctx)
    if body_model not in ("smplx", "smpl"):
        raise ExposeError(f"--body-model must be smplx or smpl, not {body_model!r}", exit_code=2)
    cfg = load_config(settings.model_config, settings.overrides)
    device = resolve_device(settings.device)
    prior = load_pose_prior(cfg.pose_prior, settings.tree.gmm_prior, device)
    fmts = _check(keypoints, out, formats, start, overwrite)
    options = FitOptions(out, fmts, focal_length, _image_size(image_size), render, camera_space)
    records, failed = _run(settings, keypoints, start, image, cfg, options, device, convention, prior, body_model)
    _report(settings, records, failed, out, cfg, json_out)
    if failed or any(r["problems"] for r in records):
        raise typer.Exit(1)


def refine_infer_output(settings, out: Path, formats: tuple[str, ...], render: bool, camera_space: bool, device,
                        fit_settings: list[str] | tuple = ()) -> None:
    """`expose infer --refine`: fit every ``keypoints.json`` under ``out`` (an image's folder, or a
    video's frame folders) from the person files beside it, into ``refined/`` there (``--set fit.*``
    / ``stageN.*`` of the command); a person or file that cannot be fitted is one line, exit status 1."""
    from expose_cli.body_models.builders import build_smplx
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
    from expose_cli.fitting.config import load_config
    from expose_cli.fitting.inputs import read_keypoint_input, read_start
    from expose_cli.fitting.pose_prior import load_pose_prior
    from expose_cli.fitting.run import FitOptions, fit_input

    files = sorted(out.rglob("keypoints.json"))
    if not files:
        info(settings, "refine: no keypoints.json (no person found); nothing fitted")
        return
    cfg = load_config(None, fit_settings)
    prior = load_pose_prior(cfg.pose_prior, settings.tree.gmm_prior, device)
    layer = build_smplx(settings.tree).to(device)
    model = SMPLXKeypoints(layer).to(device)
    problems = 0
    for path in track(files, description="refine", console=err_console, disable=settings.quiet):
        try:
            kin = read_keypoint_input(path)
            start = read_start(path.parent, kin.persons, kin.frames)
            options = FitOptions(path.parent / "refined", formats, None, None, render, camera_space)
            record = fit_input(model, layer, cfg, kin, start, options, folder=path.parent / "refined", prior=prior)
        except ExposeError as exc:
            problems += 1
            err_console.print(f"[red]{error_text(exc)[0]}[/red]", highlight=False)
            continue
        for line in record["problems"]:
            problems += 1
            err_console.print(f"[yellow]{line}[/yellow]", highlight=False)
    info(settings, f"refine: {len(files)} keypoint file(s) fitted into refined/ beside them; {problems} problem(s)")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
