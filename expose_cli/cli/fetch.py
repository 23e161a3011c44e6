"""`expose fetch-models` and `expose fetch`: download the seed's public assets, verified."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from expose_cli.assets.download import (
    DownloadOptions,
    LockFile,
    Result,
    download_asset,
    file_status,
)
from expose_cli.assets.manifest import Asset, default_manifest, models_assets, select
from expose_cli.cli.common import (
    JsonOpt,
    OverwriteOpt,
    Settings,
    console,
    err_console,
    get_settings,
    info,
)
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.utils.atomic import write_json_atomic

MirrorOpt = Annotated[str | None, typer.Option("--mirror", envvar="EXPOSE_MIRROR", help="Base URL replacing the origin; the path of each asset is kept.")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be downloaded, download nothing.")]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, max=16, help="Parallel downloads.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds without data before a try fails.")]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, help="Retries of transient failures (backoff 1 s, doubling).")]


def run_fetch(
    settings: Settings,
    assets: list[Asset],
    options: DownloadOptions,
    jobs: int = 1,
    dry_run: bool = False,
    json_out: Path | None = None,
) -> list[Result]:
    """Fetch ``assets`` with a progress bar per file and a total; print a table; return results."""
    lock = LockFile(settings.tree)
    if dry_run:
        _print_dry_run(settings.tree, lock, assets, options)
        return []
    results = _download_all(settings, lock, assets, options, jobs)
    _print_results(results)
    if json_out is not None:
        write_json_atomic(json_out, [r.__dict__ for r in results])
    ok = sum(r.ok for r in results)
    info(settings, f"{ok} of {len(results)} asset(s) present and verified")
    return results


def _print_dry_run(tree: DataTree, lock: LockFile, assets: list[Asset], options: DownloadOptions) -> None:
    """What each asset has now and what a run would do with it; nothing is downloaded."""
    table = Table(title="dry run: nothing is downloaded")
    for col in ("asset", "now", "would", "to", "from"):
        table.add_column(col)
    for a in assets:
        status, _ = file_status(a, tree, lock)
        # A downloadable file "present" without a checksum is downloaded again to verify it.
        kept = status == "verified" or (status == "present" and not a.downloadable)
        would = ("skip" if kept and not options.force
                 else "download" if a.downloadable else "install by hand")
        src = (options.mirror.rstrip("/") + a.url_path) if (options.mirror and a.url) else (a.url or a.website or "")
        table.add_row(a.name, status, would, str(a.paths(tree)[0]), src)
    console.print(table)


class _TransferBars:
    """Download progress: a bar per file and a total that grows as each download announces its size
    (unknown sizes count as received). Called as ``download_asset``'s progress hook."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.total_id = progress.add_task("total", total=None)
        self.tasks: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.sizes: dict[str, int | None] = {}

    def __call__(self, name: str, received: int, total: int | None) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        self.progress.update(self.tasks[name], completed=received, total=total)
        self.done[name] = received
        self.sizes[name] = total
        known = sum(size if size is not None else self.done[n] for n, size in self.sizes.items())
        self.progress.update(self.total_id, completed=sum(self.done.values()), total=known)


def _download_all(settings: Settings, lock: LockFile, assets: list[Asset], options: DownloadOptions,
                  jobs: int) -> list[Result]:
    """``jobs`` downloads at a time under the progress bars; Ctrl-C stops them all, keeping the .part files."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=err_console, disable=settings.quiet, transient=False,
    )
    with progress:
        hook = _TransferBars(progress)
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            futures = [pool.submit(download_asset, a, settings.tree, lock, options, hook) for a in assets]
            results = [f.result() for f in futures]
        except KeyboardInterrupt:
            # Stop every transfer at its next block; the .part files stay for the next run to resume.
            options.cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise  # the CLI's one line: partial downloads are kept and continue on the next run
        pool.shutdown()
    return results


def _print_results(results: list[Result]) -> None:
    """The results table, then one error line per failed asset."""
    table = Table(title="expose fetch")
    for col in ("asset", "status", "size", "path / message"):
        table.add_column(col)
    colours = {"downloaded": "green", "verified": "green", "manual": "yellow", "failed": "red", "kept": "yellow"}
    for r in results:
        size = f"{r.size / 1e6:.1f} MB" if r.size else ""
        table.add_row(r.asset, f"[{colours[r.status]}]{r.status}[/]", size, r.message or r.path)
    console.print(table)
    for r in results:
        if r.status == "failed":
            err_console.print(f"[red]error:[/red] {r.asset}: {r.message}", highlight=False)


def _options(mirror, force, timeout, retries) -> DownloadOptions:
    backoff = float(os.environ.get("EXPOSE_RETRY_BACKOFF", "1.0"))
    return DownloadOptions(mirror=mirror, force=force, timeout=timeout, retries=retries, backoff=backoff)


def fetch_models(
    ctx: typer.Context,
    only: Annotated[list[str] | None, typer.Option("--only", help="Only these assets (repeatable).")] = None,
    mirror: MirrorOpt = None, force: OverwriteOpt = False, dry_run: DryOpt = False, jobs: JobsOpt = 2,
    timeout: TimeoutOpt = 30.0, retries: RetriesOpt = 3, json_out: JsonOpt = None,
) -> None:
    """Download the four checkpoints and the auxiliary body-model files of the seed."""
    settings = get_settings(ctx)
    assets = models_assets(default_manifest())
    if only:
        assets = _select(assets, only)
    results = run_fetch(settings, assets, _options(mirror, force, timeout, retries), jobs, dry_run, json_out)
    if not dry_run and not all(r.ok for r in results):
        raise typer.Exit(1)


def fetch(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Assets or groups (checkpoints, auxiliary, logs, pretrained, all).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Table of every asset with its status.")] = False,
    mirror: MirrorOpt = None, force: OverwriteOpt = False, dry_run: DryOpt = False, jobs: JobsOpt = 2,
    timeout: TimeoutOpt = 30.0, retries: RetriesOpt = 3, json_out: JsonOpt = None,
) -> None:
    """Download any asset of the manifest, or list them all with `--list`."""
    settings = get_settings(ctx)
    manifest = default_manifest()
    if list_:
        list_assets(settings, manifest, json_out)
        return
    if not names:
        raise ExposeError("name at least one asset", hint="`expose fetch --list` shows them; groups: checkpoints, auxiliary, logs, pretrained, all")
    results = run_fetch(settings, _select(manifest, names), _options(mirror, force, timeout, retries), jobs, dry_run, json_out)
    if not dry_run and not all(r.ok for r in results):
        raise typer.Exit(1)
    if not dry_run and any(r.asset == "detector" for r in results):
        _install_detector(settings, manifest)
    if not dry_run and any(r.asset == "keypoints" for r in results):
        _install_keypoints(settings, manifest)
    if not dry_run:
        _install_imagenet(settings, manifest, {r.asset for r in results}, force)


def _install_detector(settings, manifest: list[Asset]) -> None:
    """Take the ONNX file out of the downloaded detector archive and check it (assets/detector_model.py)."""
    from expose_cli.assets import detector_model

    tree = settings.tree
    archive = next(a for a in manifest if a.name == "detector").paths(tree)[0]
    path = detector_model.install_detector(archive, tree.person_detector, detector_model.ONNX_SHA256)
    console.print(f"person detector installed: {path}")


def _install_keypoints(settings, manifest: list[Asset]) -> None:
    """Take the ONNX file out of the downloaded keypoint-network archive and check it (assets/keypoints_model.py)."""
    from expose_cli.assets import keypoints_model

    tree = settings.tree
    archive = next(a for a in manifest if a.name == "keypoints").paths(tree)[0]
    path = keypoints_model.install_keypoint_model(archive, tree.keypoint_model, keypoints_model.ONNX_SHA256)
    console.print(f"keypoint network installed: {path}")


def _install_imagenet(settings, manifest: list[Asset], fetched: set[str], force: bool) -> None:
    """Convert the fetched ImageNet weights to our backbones' key names (assets/imagenet.py)."""
    assets = [a for a in manifest if a.name in fetched and a.kind == "imagenet"]
    if not assets:
        return
    from expose_cli.assets.imagenet import install_imagenet  # torch: only when needed

    lock = LockFile(settings.tree)
    for asset in assets:
        info(settings, f"ImageNet backbone {install_imagenet(settings.tree, lock, asset, force)}")


def _select(manifest: list[Asset], names: list[str]) -> list[Asset]:
    try:
        return select(manifest, names)
    except KeyError as exc:
        known = ", ".join(a.name for a in manifest)
        raise ExposeError(f"unknown asset {exc.args[0]!r}", hint=f"known: {known}; groups: checkpoints, auxiliary, logs, pretrained, all") from None


def list_assets(settings: Settings, manifest: list[Asset], json_out: Path | None) -> None:
    """Print every asset: status on disk, size, destination, and where it comes from."""
    tree = settings.tree
    lock = LockFile(tree)
    table = Table(title=f"assets of the seed (data tree: {tree.root})")
    for col in ("asset", "kind", "status", "size", "destination", "source"):
        table.add_column(col, overflow="fold")
    rows = []
    colours = {"verified": "green", "present": "green", "missing": "yellow", "manual": "yellow", "corrupt": "red",
               "other": "yellow"}
    for a in manifest:
        status, detail = file_status(a, tree, lock)
        dest = a.paths(tree)[0]
        size = dest.stat().st_size if dest.is_file() else 0
        source = a.url if a.downloadable else f"{a.website} + {a.install}"
        rows.append({"asset": a.name, "kind": a.kind, "status": status, "detail": detail, "size": size,
                     "destination": str(dest), "source": source})
        table.add_row(a.name, a.kind, f"[{colours.get(status, 'white')}]{status}[/]", f"{size / 1e6:.1f} MB" if size else "",
                      str(dest.relative_to(tree.root)) if dest.is_relative_to(tree.root) else str(dest), source)
    console.print(table)
    for row in rows:  # what "corrupt" and "other" mean for this file
        if row["status"] in ("corrupt", "other"):
            console.print(f"{row['asset']}: {row['status']}: {row['detail']}", highlight=False)
    if json_out is not None:
        write_json_atomic(json_out, rows)


def register(app: typer.Typer) -> None:
    app.command("fetch-models")(fetch_models)
    app.command("fetch")(fetch)
