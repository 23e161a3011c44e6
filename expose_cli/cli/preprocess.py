"""`expose preprocess NAME` and `expose inspect FILE.h5`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from expose_cli.cli.common import (
    JsonOpt,
    LimitOpt,
    OverwriteOpt,
    ResumeOpt,
    ThreadsOpt,
    WorkersOpt,
    console,
    err_console,
    error_text,
    flag_speller,
    get_settings,
    info,
    warn,
)
from expose_cli.data.converters import CONVERTERS
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.data.preprocess import convert
from expose_cli.errors import ExposeError, render
from expose_cli.io.paths import DataTree
from expose_cli.utils.atomic import write_json_atomic


def preprocess(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=f"Dataset ({', '.join(sorted(CONVERTERS))}) or 'all'.")],
    root: Annotated[Path | None, typer.Option("--root", help="Raw dataset folder (default: data/datasets/<name>).")] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Split(s) to convert (default: all).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output .h5 (one split only).")] = None,
    limit: LimitOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable samples (counted) instead of stopping.")] = False,
    embed_images: Annotated[bool, typer.Option("--embed-images", help="Store each person's image crop (JPEG) in the file.")] = False,
    workers: WorkersOpt = None, threads: ThreadsOpt = None,
) -> None:
    """Convert a raw dataset into the uniform HDF5 layout (docs/hdf5-schema.md).

    Without --split, the splits whose raw input is missing are skipped (and listed). `all` converts
    every dataset whose raw folder is present, skips existing outputs unless --overwrite, goes on
    after a dataset fails and exits non-zero at the end if any did.
    """
    settings = get_settings(ctx)
    if resume and overwrite:
        raise ExposeError("--resume keeps the files already written, --overwrite replaces them",
                          hint="choose one of them", exit_code=2)
    if embed_images and workers is not None and threads is None:  # the old spelling of --threads here
        warn(settings, "--workers with --embed-images is deprecated: use --threads")
        threads = workers
    workers = (threads or 4) if embed_images else (workers or 1)  # image threads, or Human3.6M's processes
    every = name == "all"
    names = _dataset_names(name, settings.tree, root, split, out)
    table = Table(title="expose preprocess")
    for col in ("dataset", "split", "samples", "dropped", "file"):
        table.add_column(col, overflow="fold")
    failed: list[str] = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=settings.quiet)
    with progress:
        for n in names:
            try:
                results = convert(n, settings.tree, root, split, out, overwrite, skip_bad, limit,
                                  _SplitBars(progress, n), embed_images, workers, skip_existing=every or resume)
            except ExposeError as exc:
                if not every:
                    raise
                failed.append(n)
                _report_failure(table, n, exc)
                continue
            _add_rows(table, results)
    console.print(table)
    if failed:
        raise ExposeError(f"{len(failed)} of {len(names)} datasets failed: {', '.join(failed)}",
                          hint="see the errors above; the other datasets were converted")
    info(settings, "done")


def _dataset_names(name: str, tree: DataTree, root: Path | None, split: list[str] | None, out: Path | None) -> list[str]:
    """``[name]``, or for ``all`` every dataset whose raw folder is present (options naming one
    dataset's files refused)."""
    if name != "all":
        return [name]
    given = [opt for opt, value in (("--root", root), ("--split", split), ("--out", out)) if value]
    if given:
        raise ExposeError(f"{', '.join(given)} name one dataset's files; they cannot be used with 'all'",
                          hint="convert that dataset by name, or use --data-dir for another data tree")
    names = [n for n in sorted(CONVERTERS) if tree.raw_dataset(n).is_dir()]
    if not names:
        raise ExposeError(f"no raw dataset found under {tree.datasets}", hint="`expose fetch --list` shows where each comes from")
    return names


class _SplitBars:
    """A progress bar per split of one dataset, advanced per sample or block of ``rows`` (``convert``'s ``on_sample``)."""

    def __init__(self, progress: Progress, dataset: str) -> None:
        self.progress, self.dataset = progress, dataset
        self.tasks: dict[str, int] = {}

    def __call__(self, split: str, rows: int = 1) -> None:
        if split not in self.tasks:
            self.tasks[split] = self.progress.add_task(f"{self.dataset} {split}", total=None)
        self.progress.advance(self.tasks[split], rows)


def _report_failure(table: Table, dataset: str, exc: ExposeError) -> None:
    """A dataset of `all` that failed: its error and hint now, a FAILED row in the table."""
    message, hint = error_text(exc)
    err_console.print(f"[bold red]error:[/bold red] {dataset}: {message}", highlight=False)
    if hint:
        err_console.print(f"[yellow]hint:[/yellow] {hint}", highlight=False)
    table.add_row(dataset, "-", "-", "-", f"FAILED: {render(exc.raw_reason, flag_speller())}")


def _add_rows(table: Table, results: list) -> None:
    """A row per converted split (samples, dropped by reason, file); skipped splits said on stderr too."""
    for r in results:
        if r.skipped is not None:
            err_console.print(f"skipped {r.dataset} {r.split}: {r.skipped}", highlight=False)
            table.add_row(r.dataset, r.split, "-", "-", f"skipped: {r.skipped}")
            continue
        dropped = ", ".join(f"{k}: {v}" for k, v in r.stats.dropped.items()) or "0"
        table.add_row(r.dataset, r.split, str(r.samples), dropped, str(r.path))


def inspect(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file written by `expose preprocess`.")],
    samples: Annotated[int, typer.Option("--samples", min=0, help="How many rows to show.")] = 2,
    json_out: JsonOpt = None,
) -> None:
    """Print a preprocessed file's attributes, fields, shapes, counts and a few rows."""
    with HDF5Reader(path) as reader:
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in reader.attrs.items()}
        fields = {f: (list(reader.file[f].shape), str(reader.file[f].dtype)) for f in reader.fields()}
        table = Table(title=f"{path} ({len(reader)} samples)")
        table.add_column("attribute")
        table.add_column("value", overflow="fold")
        for k, v in attrs.items():
            table.add_row(k, str(v))
        console.print(table)
        ft = Table(title="fields")
        for col in ("field", "shape", "dtype"):
            ft.add_column(col)
        for f, (shape, dtype) in fields.items():
            ft.add_row(f, str(tuple(shape)), dtype)
        console.print(ft)
        images = _report_images(reader, get_settings(ctx).tree.root)
        rows = []
        for i in range(min(samples, len(reader))):
            row = reader[i]
            short = {k: (v if np.ndim(v) == 0 or isinstance(v, str) else f"array{tuple(np.shape(v))}") for k, v in row.items()}
            rows.append({k: (v.item() if hasattr(v, "item") else v) for k, v in short.items()})
            console.print(f"[bold]sample {i}[/bold]: image_path={row['image_path']} bbox_xywh={np.round(row['bbox_xywh'], 1).tolist()}")
        if json_out is not None:
            write_json_atomic(json_out, {"attrs": attrs, "fields": fields, "num_samples": len(reader), "samples": rows,
                                         "image_paths": images})


def _report_images(reader: HDF5Reader, data_dir: Path) -> dict:
    """Print (and return) how many image paths open, and why the file is stale if it is."""
    from expose_cli.data.validity import count_resolving, stale_reason

    check = count_resolving(reader, data_dir)
    style = "green" if check.complete else "yellow" if check.resolved else "red"
    note = " (the crops are embedded in the file)" if check.embedded else ""
    console.print(f"image paths: [{style}]{check.resolved} of {check.checked}[/] open under {check.root}{note}",
                  highlight=False)
    if check.first_missing is not None:
        console.print(f"first missing: {check.first_missing}", highlight=False)
    stale = stale_reason(reader.attrs)
    if stale is not None:
        console.print(f"[red]stale:[/] {stale}", highlight=False)
    return {"checked": check.checked, "resolved": check.resolved, "root": str(check.root),
            "first_missing": check.first_missing, "embedded": check.embedded, "stale": stale}


def register(app: typer.Typer) -> None:
    app.command("preprocess")(preprocess)
    app.command("inspect")(inspect)
