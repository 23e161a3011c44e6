"""What every subcommand shares: the global settings, the consoles, device choice, JSON output, and
the options more than one command takes, declared once below (one name, one meaning, one help).

A command takes a shared option as ``batch_size: BatchSizeOpt = 8``: the default stays the
command's; the help is the same everywhere (tests/test_cli_app.py checks it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from expose_cli.errors import ExposeError
from expose_cli.inference import export
from expose_cli.io.paths import DataTree

#: Options shared by several commands. Defaults are each command's (docs/<command>.md).
CkptOpt = Annotated[str | None, typer.Option(
    "--ckpt", help="Checkpoint: a .pth file, or a model name: expose, body, hand, face (default: the command's model).")]


def _at_least(least: int, what: str):
    """A typer callback refusing values below ``least`` with one line (exit 2), in every command."""

    def check(value: int | None) -> int | None:
        if value is not None and value < least:
            raise ExposeError(f"--{what} must be >= {least}, not {value}", hint=f"use {least} or more", exit_code=2)
        return value

    return check


BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", callback=_at_least(1, "batch-size"),
                                                  help="Persons (crops) per forward pass, per process.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", callback=_at_least(0, "workers"),
    help="Worker processes loading and preparing data in parallel, per process (0: none, the main process does "
         "it; default: the command's, see docs/<command>.md).")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", callback=_at_least(1, "threads"), help="Threads decoding and encoding images in parallel (default: the command's, see "
                             "docs/<command>.md).")]
PrecisionOpt = Annotated[str | None, typer.Option(
    "--precision", help="fp32 (exact) | bf16 (fast on CPUs with bf16 and on GPUs) | fp16 (CUDA GPUs only) | "
                        "int8 (infer and eval: CPU, onnxruntime or openvino; quantized, not exact).")]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto (the fastest installed: openvino, onnxruntime, torch; "
                                                        "torch on a GPU) | torch | onnxruntime | openvino.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace existing outputs (an earlier run's, or files already installed or downloaded).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted run into the same output, keeping the work it finished.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="At most N samples (the first N of each split).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (the same seed gives the same result).")]
FormatOpt = Annotated[str, typer.Option("--format", help=f"Comma-separated: {', '.join(export.FORMATS)}.")]

#: Results (tables) go to stdout; messages, progress and errors to stderr.
# Tables printed to a pipe or file are not squeezed into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


@dataclass
class Settings:
    """Options given before the subcommand: ``expose --data-dir D --device cpu -v <command>``."""

    data_dir: Path
    device: str = "auto"
    verbose: int = 0
    quiet: bool = False
    model_config: Path | None = None  # --model-config FILE.toml
    overrides: list[str] = field(default_factory=list)  # --set section.field=value

    def model_options(self) -> dict:
        """Keyword arguments of :func:`expose_cli.models.load_model` that the global options set:
        config overrides, and the one line saying what was loaded and skipped (hidden by ``-q``)."""
        return {"config_file": self.model_config, "overrides": self.overrides,
                "report": lambda line: info(self, line)}

    @property
    def tree(self) -> DataTree:
        return DataTree(self.data_dir)


def get_settings(ctx: typer.Context) -> Settings:
    """The global settings stored by the app callback (defaults when a command runs standalone)."""
    root = ctx.find_root()
    obj = root.obj if root is not None else None
    if isinstance(obj, Settings):
        return obj
    from expose_cli.io.paths import default_data_dir

    return Settings(data_dir=default_data_dir())


def info(settings: Settings, message: str) -> None:
    """Print a status line to stderr unless ``--quiet``."""
    if not settings.quiet:
        err_console.print(message)


def warn(settings: Settings, message: str) -> None:
    """A yellow ``warning:`` line on stderr (shown with ``--quiet`` too)."""
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)


def debug(settings: Settings, message: str) -> None:
    """Print only with ``--verbose``."""
    if settings.verbose > 0:
        err_console.print(f"[dim]{message}[/dim]")


def flag_speller(command: Any = None):
    """How the CLI writes an option reference of an error (``expose_cli.errors.option``): the long
    flag of ``command``'s parameter of that name (a click command), else ``--name``. Library code
    names options; only the CLI spells them as flags."""
    flags = {p.name: next((o for o in p.opts if o.startswith("--")), None)
             for p in getattr(command, "params", []) if getattr(p, "opts", None)}

    def spell(name: str) -> str:
        return flags.get(name.replace("-", "_")) or f"--{name}"

    return spell


def error_text(exc: ExposeError, command: Any = None) -> tuple[str, str | None]:
    """``exc``'s (message, hint) as the CLI prints them: option references written as flags."""
    return exc.text(flag_speller(command))


def resolve_device(spec: str) -> Any:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cpu``; ``cuda`` / ``cuda:N``.

    Returns a ``torch.device``; raises :class:`ExposeError` for an unknown or unavailable device.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ExposeError(
                f"device {spec!r} asked for, but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__})",
                hint="use --device cpu, or install a CUDA build of torch (see README)",
            )
        if ":" in spec:
            index = spec.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise ExposeError(
                    f"device {spec!r}: there are {torch.cuda.device_count()} CUDA device(s)",
                    hint="use cuda:0 .. cuda:N-1",
                )
        return torch.device(spec)
    raise ExposeError(f"unknown device {spec!r}", hint="use auto, cpu, cuda or cuda:N")


def parse_formats(text: str) -> tuple[str, ...]:
    """The ``--format`` list of `expose infer` and `expose fit`: names of
    :data:`expose_cli.inference.export.FORMATS`; an unknown one is a usage error (exit 2)."""
    fmts = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in export.FORMATS]
    if bad or not fmts:
        raise ExposeError(f"unknown --format {', '.join(bad) or repr(text)}",
                          hint=f"choose from {', '.join(export.FORMATS)}", exit_code=2)
    return fmts
