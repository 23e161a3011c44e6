"""`expose doctor`: what the data tree holds and what each command still needs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from expose_cli.assets.inventory import TASKS, inspect_tree
from expose_cli.cli.common import JsonOpt, console, get_settings, info
from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import write_json_atomic

STYLE = {"ok": "green", "missing": "yellow", "invalid": "red"}


def doctor(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option("--for", help="infer | eval | train: exit 1 when it cannot run.")] = None,
    json_out: JsonOpt = None,
) -> None:
    """List every data-tree file the commands need: present, loadable, and where it comes from."""
    settings = get_settings(ctx)
    if task is not None and task not in TASKS:
        raise ExposeError(f"--for {task!r}: unknown task", hint=f"use one of {', '.join(TASKS)}")
    statuses = inspect_tree(settings.tree, task)
    table = Table(title=f"data tree: {settings.tree.root}")
    for col in ("file", "path", "needed by", "status", "detail / where from"):
        table.add_column(col)
    for st in statuses:
        req = st.requirement
        rel = st.path.relative_to(settings.tree.root) if st.path.is_relative_to(settings.tree.root) else st.path
        table.add_row(req.label, str(rel), ",".join(req.tasks), f"[{STYLE[st.state]}]{st.state}[/]", st.detail)
    console.print(table)
    if json_out is not None:
        write_json_atomic(json_out, [
            {"file": s.requirement.label, "path": str(s.path), "tasks": list(s.requirement.tasks),
             "status": s.state, "detail": s.detail, "provided_by": s.requirement.provided_by,
             "accepted": [str(p) for p in s.requirement.candidates]}
            for s in statuses
        ])
    for name in ([task] if task else TASKS):
        bad = [s for s in statuses if name in s.requirement.tasks and s.state != "ok"]
        info(settings, f"{name}: " + ("ready" if not bad else f"{len(bad)} file(s) missing or invalid"))
    if task is not None and any(s.state != "ok" for s in statuses):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
