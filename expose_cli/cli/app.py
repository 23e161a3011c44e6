"""The Typer app ``expose``: global options, error handling, and the subcommands.

Every subcommand lives in its own module under :mod:`expose_cli.cli` and adds itself with
``register(app)``; the imports below are the full list of what runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from expose_cli import __version__
from expose_cli.cli import (
    demo,
    doctor,
    evaluate,
    export,
    fetch,
    fit,
    import_models,
    infer,
    preprocess,
    synth,
    train,
)
from expose_cli.cli.common import Settings, err_console
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR

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
export.register(app)
fetch.register(app)
fit.register(app)
import_models.register(app)
infer.register(app)
preprocess.register(app)
synth.register(app)
train.register(app)


#: Global options (flag or with a value) that may also be written after the subcommand.
_GLOBAL_VALUE_OPTIONS = ("--data-dir", "--device", "--model-config", "--set")
_GLOBAL_FLAGS = ("--verbose", "-v", "--quiet", "-q")


def _is_verbose_flag(arg: str) -> bool:
    return arg == "--verbose" or (arg.startswith("-v") and not arg.startswith("--") and set(arg[1:]) == {"v"})


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move the global options written after the subcommand (``expose infer x --device cpu``) in
    front of it, where the app reads them, unless that subcommand has an option of the same name.
    Everything after ``--`` stays where it is."""
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # options before the subcommand
        i += 2 if argv[i] in _GLOBAL_VALUE_OPTIONS else 1
    if i >= len(argv) or argv[i] not in commands:
        return argv
    own = {opt for param in commands[argv[i]].params for opt in getattr(param, "opts", [])}
    head, command, rest = argv[:i], argv[i], argv[i + 1:]
    moved, kept = [], []
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            kept.extend(rest[j:])
            break
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_VALUE_OPTIONS and name not in own:
            takes_next = "=" not in arg and j + 1 < len(rest)
            moved.extend(rest[j:j + 2] if takes_next else [arg])
            j += 2 if takes_next else 1
            continue
        if (arg in _GLOBAL_FLAGS or _is_verbose_flag(arg)) and arg not in own:
            moved.append(arg)
        else:
            kept.append(arg)
        j += 1
    return [*head, *moved, command, *kept]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``expose`` script: run the app, turn errors into one clear line."""
    argv = list(argv if argv is not None else sys.argv[1:])
    verbose = any(_is_verbose_flag(a) for a in argv)
    try:
        argv = hoist_global_options(argv)
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except ExposeError as exc:
        if verbose:
            err_console.print_exception()
        # escape: a message's own brackets ("pip install 'expose-cli[onnx]'") are not rich markup
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False)
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
