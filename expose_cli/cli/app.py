"""The Typer app ``expose``: global options, error handling, and the subcommands.

Every subcommand lives in its own module under :mod:`expose_cli.cli` and adds itself with
``register(app)``; the imports below are the full list of what runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from expose_cli import __version__
from expose_cli.assets.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR
from expose_cli.cli import demo, doctor, evaluate, fetch, import_models, infer, preprocess
from expose_cli.cli.common import Settings, err_console
from expose_cli.errors import ExposeError

app = typer.Typer(
    name="expose",
    help="Expressive 3D human mesh recovery (ExPose): one RGB image to a full SMPL-X body.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"expose {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            envvar=DATA_DIR_ENV,
            help="Root of the data tree (body_models/, pretrained_models/, datasets/, ...).",
        ),
    ] = DEFAULT_DATA_DIR,
    device: Annotated[
        str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")
    ] = "auto",
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More output; tracebacks on errors.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and results.")] = False,
    model_config: Annotated[
        Path | None,
        typer.Option("--model-config", help="TOML file overriding model config fields ([body], [hand], [face], [attention])."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one model config field, e.g. --set attention.hand_scale_factor=2.5 (repeatable)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    ctx.obj = Settings(data_dir=data_dir, device=device, verbose=verbose, quiet=quiet,
                       model_config=model_config, overrides=list(overrides or []))


# --- subcommands: each module adds its commands to `app` ------------------------------------
# Each subcommand module is imported at the top; one register line each, here.
demo.register(app)
doctor.register(app)
evaluate.register(app)
fetch.register(app)
import_models.register(app)
infer.register(app)
preprocess.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``expose`` script: run the app, turn errors into one clear line."""
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"})
                  for a in (argv if argv is not None else sys.argv[1:]))
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except ExposeError as exc:
        if verbose:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/yellow] {exc.hint}", highlight=False)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted: nothing was left half-written; run the command again to resume")
        return 130
    except Exception as exc:  # click usage errors and unexpected failures
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a usage error (typer's click): "Usage: ... Error: No such option"
            return exc.exit_code
        if verbose:
            err_console.print_exception()
        else:
            err_console.print(
                f"[bold red]error:[/bold red] {type(exc).__name__}: {exc}", highlight=False
            )
            err_console.print("[yellow]hint:[/yellow] run again with -v for the full traceback")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
