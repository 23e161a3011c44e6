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
    view,
)
from expose_cli.cli.common import Settings, err_console, error_text
from expose_cli.cli.interrupts import interrupted_line, sigterm_as_interrupt
from expose_cli.errors import ExposeError, Interrupted
from expose_cli.io.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR

app = typer.Typer(
    name="expose",
    help="Expressive 3D human mesh recovery (ExPose): one RGB image to a full SMPL-X body.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},  # every subcommand inherits -h
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
        typer.Option("--model-config", help="TOML file overriding model config fields (\\[body], \\[hand], \\[face], \\[attention])."),
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
view.register(app)


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


#: Old option names, still accepted (hidden from --help) with a warning: one name per idea.
DEPRECATED = {("fetch", "--force"): "--overwrite", ("fetch-models", "--force"): "--overwrite",
              ("import-body-models", "--force"): "--overwrite", ("synth", "--embed"): "--embed-images",
              ("synth", "--no-embed"): "--no-embed-images",
              ("infer", "--skip-existing"): "--resume", ("eval", "--workers"): "--threads"}


def deprecated_aliases(argv: list[str]) -> list[str]:
    """``argv`` with the old names of :data:`DEPRECATED` replaced (one warning line each)."""
    command = next((a for a in argv if not a.startswith("-") and a in typer.main.get_command(app).commands), None)
    out = []
    for i, arg in enumerate(argv):
        new = DEPRECATED.get((command, arg))
        if new is not None and "--" not in argv[:i]:
            err_console.print(f"[yellow]warning:[/yellow] {arg} is deprecated: use {new}", highlight=False)
            arg = new
        out.append(arg)
    return out


def command():
    """The click command of the app, with no type shown beside flags in --help (typer shows <bool>)."""
    root = typer.main.get_command(app)
    stack = [root]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for param in cmd.params:
            if getattr(param, "is_flag", False) or getattr(param, "count", False):  # options only
                param.metavar = ""
        cmd.get_help_option = _plain_help(cmd.get_help_option)  # -h/--help: made when asked for
    return root


def _plain_help(make):
    def get_help_option(ctx):
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return get_help_option


def _command_name(argv: list[str]) -> str | None:
    """The subcommand in ``argv`` (global options hoisted in front of it), or ``None``."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GLOBAL_VALUE_OPTIONS else 1
    return argv[i] if i < len(argv) else None


def _subcommand(argv: list[str]):
    """The click command ``argv`` runs (a group's subcommand too), or None."""
    cmd, i = typer.main.get_command(app), 0
    while i < len(argv) and argv[i].startswith("-"):  # the global options, hoisted in front
        i += 2 if argv[i] in _GLOBAL_VALUE_OPTIONS else 1
    for name in argv[i:i + 2]:  # "infer", or "export onnx"
        sub = getattr(cmd, "commands", {}).get(name)
        if sub is None:
            break
        cmd = sub
    return cmd


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``expose`` script: run the app, turn errors into one clear line.

    Exit status: 0 done, 1 some inputs failed, 2 bad usage, 130 interrupted (SIGINT or SIGTERM,
    with one line saying how to continue)."""
    argv = list(argv if argv is not None else sys.argv[1:])
    verbose = any(_is_verbose_flag(a) for a in argv)
    try:
        argv = deprecated_aliases(hoist_global_options(argv))
        with sigterm_as_interrupt():
            rv = command()(args=argv, standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            if rv == 130:  # typer returns Ctrl-C (KeyboardInterrupt) as status 130, silently
                err_console.print(escape(interrupted_line(_command_name(argv))), highlight=False)
            return rv
    except ExposeError as exc:
        if verbose:
            err_console.print_exception()
        message, hint = error_text(exc, _subcommand(argv))  # option references written as this command's flags
        # escape: a message's own brackets ("pip install 'expose-cli[onnx]'") are not rich markup
        err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)
        if hint:
            err_console.print(f"[yellow]hint:[/yellow] {escape(hint)}", highlight=False)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt, Interrupted) as exc:  # click turns Ctrl-C into Abort
        detail = exc.detail if isinstance(exc, Interrupted) else None
        err_console.print(escape(interrupted_line(_command_name(argv), detail)), highlight=False)
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
