"""`expose eval BENCHMARK`: the seed's benchmarks from a checkpoint and a preprocessed file."""

from __future__ import annotations

import csv
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from expose_cli.cli.common import (
    BackendOpt,
    BatchSizeOpt,
    CkptOpt,
    JsonOpt,
    LimitOpt,
    PrecisionOpt,
    Settings,
    ThreadsOpt,
    console,
    err_console,
    get_settings,
    info,
    resolve_device,
    warn,
)
from expose_cli.io.catalog import DATASETS
from expose_cli.io.outputs import check_writable
from expose_cli.utils.atomic import atomic_path, write_json_atomic
from expose_cli.utils.stale import remove_stale_temps


def _report_folder(folder: Path | None) -> Path | None:
    """``--report``: refused before any work when it is a file or cannot be written to."""
    import os

    if folder is None:
        return None
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{existing} is not a folder you can write to: choose another --report folder")
    return folder


def evaluate(
    ctx: typer.Context,
    benchmark: Annotated[str, typer.Argument(help=" | ".join(d.name for d in DATASETS.values() if d.benchmark_split))],
    ckpt: CkptOpt = None,
    data: Annotated[Path | None, typer.Option("--data", help="Preprocessed .h5 (default: from the data tree).")] = None,
    batch_size: BatchSizeOpt = 8,
    threads: ThreadsOpt = 2,
    limit: LimitOpt = None,
    json_out: JsonOpt = None,
    per_sample: Annotated[Path | None, typer.Option("--per-sample", help="Write per-sample metrics as CSV.")] = None,
    save_predictions: Annotated[Path | None, typer.Option("--save-predictions", help="Save predictions (.h5).")] = None,
    from_predictions: Annotated[Path | None, typer.Option(
        "--from-predictions", help="Re-score saved predictions (no network); they must come from the --data file.")] = None,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "fp32",
    report: Annotated[Path | None, typer.Option("--report", callback=_report_folder, help="Write a report folder for `expose view` (worst samples, errors).")] = None,
) -> None:
    """Score a checkpoint on a benchmark of the seed and compare with the published numbers."""
    from expose_cli.evaluation import benchmark as B  # imports torch: only when a command runs
    from expose_cli.evaluation import runner

    settings = get_settings(ctx)
    bench = B.get_benchmark(benchmark)
    _check_outputs(json_out, per_sample, save_predictions)
    from expose_cli.inference import distributed
    from expose_cli.utils.shard import Shard

    shard = Shard.from_env() if from_predictions is None else Shard()  # torchrun: samples by rank
    device = None
    if from_predictions is None:  # a missing extra or a bad choice: before any file is read
        from expose_cli.inference.backends import check_choice

        device = resolve_device(settings.device)
        precision = check_choice(backend, precision, device, warn=lambda m: warn(settings, m))
        if shard.sharded:
            device = distributed.start(device)
    # Everything checked and loaded before any network work: the data file (exists, right dataset),
    # the checkpoint (exists) or the predictions, the files scoring needs, the model and its body
    # model; only then the hashes and the predictions.
    with B.open_data(bench, data, settings.tree) as reader:
        run = B.prepare(bench, reader, settings.tree, ckpt=ckpt, from_predictions=from_predictions, limit=limit,
                        load_model=lambda path: _load_model(path, settings, backend, precision, device))
        info_d = B.provenance(run, _config_overrides(settings))
        with _progress(settings, run) as tick:
            preds = B.predictions(run, info_d, batch_size, threads, tick, shard)
        if shard.sharded:  # rank 0 scores everything; the others stop here
            preds = distributed.gather_predictions(preds)
            distributed.barrier_and_stop()
            if preds is None:
                return
            info_d["processes"] = shard.world_size
        if run.predictor is not None:
            _record_path(settings, run.predictor, backend, precision, info_d)
        if save_predictions is not None:
            runner.save_predictions(save_predictions, benchmark, preds, info_d)
        result = B.score(run, preds, info_d)
    _report(settings, bench, run, result, info_d, len(preds["vertices"]), json_out, per_sample, (report, preds))


def _check_outputs(json_out: Path | None, per_sample: Path | None, save_predictions: Path | None) -> None:
    """Each output can be written (checked before the evaluation, not after it); a killed run's
    temporary files beside them are removed."""
    for path, what in ((json_out, "--json"), (per_sample, "--per-sample"), (save_predictions, "--save-predictions")):
        if path is not None:
            check_writable(path, what)
            remove_stale_temps(Path(path).parent)


def _report(settings, bench, run, result, info_d: dict, num_samples: int, json_out: Path | None,
            per_sample: Path | None, report: tuple = (None, None)) -> None:
    """The table, then ``--json`` (provenance, protocols used, rows), ``--per-sample`` files and the
    ``--report`` folder (``report``: the folder and the predictions)."""
    from expose_cli.evaluation import protocols

    rows = _print_table(result, run.subset, bench)
    if report[0] is not None:
        _write_report(settings, report[0], run, result, info_d, rows, report[1])
    if json_out is not None:
        used = {r["protocol"]: protocols.PROTOCOLS[r["protocol"]] for r in rows}
        write_json_atomic(json_out, {**info_d, "num_samples": num_samples, "protocols": used, "metrics": rows})
    if per_sample is not None:
        _write_per_sample(per_sample, result)
    info(settings, "protocol: " + bench.protocol)


def _write_report(settings, folder: Path, run, result, info_d: dict, rows: list[dict], preds: dict) -> None:
    """``--report``: the folder ``expose view`` reads (expose_cli/evaluation/report.py)."""
    from expose_cli.data.hdf5 import HDF5Reader
    from expose_cli.evaluation.report import write_report

    faces = getattr(getattr(run.predictor, "body_model", None), "faces", None)  # None: re-scored predictions
    faces = None if faces is None else np.asarray(faces, np.int64)
    with HDF5Reader(run.reader.path) as reader:  # the run's reader is closed by now
        write_report(folder, info_d, rows, result.per_sample, preds, reader, faces)
    info(settings, f"report: {folder} (expose view {folder})")


def _load_model(path: Path, settings: Settings, backend: str = "torch", precision: str = "fp32", device=None):
    """The model on the chosen path; off the exact torch fp32 path, wrapped so that its first batch
    also runs the exact path (:class:`expose_cli.inference.backends.MeasuredPredictor`)."""
    from expose_cli.inference.backends import default_cache, measured_predictor
    from expose_cli.models import load_model

    device = device if device is not None else resolve_device(settings.device)
    predictor = load_model(path, settings.tree, device, **settings.model_options())
    say = functools.partial(warn, settings)
    cache = default_cache(settings.tree, warn=say) if backend != "torch" else None
    return measured_predictor(predictor, backend, precision, cache=cache, warn=say, info=functools.partial(info, settings))


def _record_path(settings: Settings, predictor, backend: str, precision: str, info_d: dict) -> None:
    """The backend and precision that ran into the results (``--backend auto`` resolved, fallbacks
    included), and a line naming them; the fast path's measured deviation too, printed."""
    from expose_cli.inference.backends import runtime_info

    ran = runtime_info(predictor)
    info_d.update({"backend": ran["backend"], "precision": ran["precision"], "backend_asked": backend})
    info(settings, f"ran on {ran['backend']} {ran['precision']} ({ran['device']})")
    deviation = getattr(predictor, "deviation", None)
    if deviation is not None:
        info_d["fast_path_deviation"] = {**deviation, "against": "torch fp32 (exact path)",
                                         "measured_on": "the first batch"}
        info(settings, "fast path: vertices {mean_mm:.3f} mm from the exact path on average, "
                       "{max_mm:.3f} mm at most (first batch)".format(**deviation))


def _config_overrides(settings: Settings) -> dict | None:
    """The --model-config file and --set overrides the results were made under (None: the defaults)."""
    if settings.model_config is None and not settings.overrides:
        return None
    return {"file": str(settings.model_config) if settings.model_config else None, "set": list(settings.overrides)}


@contextmanager
def _progress(settings: Settings, run) -> Iterator[Callable[[int], None] | None]:
    """A progress bar (samples and samples/s) while the model runs; nothing when re-scoring."""
    if run.predictor is None:
        yield None
        return
    progress = Progress(TextColumn(f"eval {run.benchmark.name}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err_console,
                        disable=settings.quiet)
    start = time.perf_counter()
    with progress:
        task = progress.add_task("eval", total=run.num_samples, rate="")

        def tick(n: int) -> None:
            progress.advance(task, n)
            done = progress.tasks[0].completed
            progress.update(task, rate=f"{done / (time.perf_counter() - start):.2f} samples/s")

        yield tick


def _print_table(result, subset: str | None, bench) -> list[dict]:
    """Our means next to the published ones (the JSON rows returned)."""
    from expose_cli.evaluation import protocols

    published = bench.published_for(subset)
    title = f"{result.benchmark}{'' if subset is None else ' ' + subset} ({len(result.image_paths)} samples)"
    table = Table(title=title)
    for col in ("metric", "unit", "ours", "published", "difference"):
        table.add_column(col, justify="left" if col in ("metric", "unit") else "right")
    rows = []
    for name, value in result.means.items():
        unit = protocols.unit(name)
        fmt = "{:.4f}" if unit == "fraction" else "{:.2f}"
        pub_text = published.get(name)
        pub = None if pub_text is None else float(pub_text)
        diff = value - pub if pub is not None else None
        table.add_row(name, unit, fmt.format(value), pub_text or "",
                      "" if diff is None else ("+" if diff >= 0 else "") + fmt.format(diff))
        rows.append({"metric": name, "unit": unit, "ours": value, "published": pub, "difference": diff,
                     "protocol": protocols.row_protocol(name)})
    console.print(table)
    for key in dict.fromkeys(r["protocol"] for r in rows):
        prefix = next((p for p, k in protocols.PREFIXES.items() if k == key), "no prefix")
        console.print(f"{prefix.strip()}: {protocols.PROTOCOLS[key]}", highlight=False)
    if subset is not None and not published:
        console.print(f"the seed publishes {bench.name.capitalize()} {', '.join(bench.published_subsets or ())} only: "
                      f"no published {subset} value to compare with", highlight=False)
    return rows


def _write_per_sample(path: Path, result) -> None:
    """Per-sample metrics as CSV: image path, then one column per metric."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        names = list(result.per_sample)
        writer.writerow(["image_path", *names])
        for i, image in enumerate(result.image_paths):
            writer.writerow([image, *[f"{float(np.asarray(result.per_sample[n])[i]):.4f}" for n in names]])


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
