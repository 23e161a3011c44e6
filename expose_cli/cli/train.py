"""`expose train {body,hand,face,expose}`: the seed's four training recipes, resumable, multi-GPU.

Configuration, lowest to highest precedence: the seed's preset (or, with ``--resume``, the run's
saved config), ``--model-config FILE.toml``, ``--set section.field=value``, the flags below.
``--nproc N`` relaunches the command under torchrun (DDP on N processes).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from expose_cli.cli.common import (
    BatchSizeOpt,
    PrecisionOpt,
    ResumeOpt,
    SeedOpt,
    Settings,
    WorkersOpt,
    console,
    get_settings,
    info,
)
from expose_cli.errors import ExposeError, Interrupted

if TYPE_CHECKING:
    from expose_cli.training.checkpointing import ResumeState

#: Flag -> config field; a flag given on the command line wins over TOML and --set.
FLAG_FIELDS = {"epochs": "train.epochs", "max_steps": "train.max_steps", "batch_size": "train.batch_size",
               "workers": "train.workers", "lr": "train.lr", "precision": "train.precision",
               "grad_clip": "train.grad_clip", "val_every": "train.val_every", "save_every": "train.save_every",
               "seed": "train.seed", "init": "train.init"}


def resolve_config(kind: str, settings: Settings, resume: ResumeState | None, flags: dict):
    """The run's config: preset or the config saved in ``resume``, then TOML, ``--set`` and the flags."""
    from expose_cli.training.config import RunConfig, apply_settings, check, run_preset, set_field

    cfg = RunConfig.from_dict(resume.run_config) if resume is not None else run_preset(kind)
    apply_settings(cfg, settings.model_config, settings.overrides)
    for name, value in flags.items():
        if value is not None:
            set_field(cfg, FLAG_FIELDS[name], value)
    check(cfg)  # the final values
    return cfg


def print_config(cfg) -> None:
    table = Table(title=f"expose train {cfg.kind}: resolved config")
    for col in ("setting", "value"):
        table.add_column(col)
    for section, values in cfg.to_dict().items():
        if not isinstance(values, dict):
            table.add_row(section, str(values))
            continue
        for key, value in values.items():
            table.add_row(f"{section}.{key}", str(value))
    console.print(table)


def dry_run(cfg, settings: Settings, world_size: int) -> None:
    """Config, the datasets with sizes and ratios, and the steps per epoch; nothing is trained."""
    from expose_cli.training.datasets import build_train_dataset
    from expose_cli.training.run import preflight, validation_files

    preflight(cfg, settings.tree, None)
    print_config(cfg)
    dataset = build_train_dataset(cfg.data, settings.tree.root, cfg.kind, cfg.train.seed)
    sizes = dataset.member_sizes
    total = sum(cfg.data.ratios)
    table = Table(title="training data")
    for col in ("member", "samples", "ratio", "share"):
        table.add_column(col)
    for name, size, ratio in zip(cfg.data.members, sizes, cfg.data.ratios, strict=True):
        table.add_row(str(name), str(size), f"{ratio:g}", f"{ratio / total:.1%}")
    console.print(table)
    per_rank = math.ceil(max(sizes) / world_size)
    steps = math.ceil(per_rank / cfg.train.batch_size)
    val = validation_files(cfg, settings.tree)
    console.print(f"validation: {cfg.train.val_set} every {cfg.train.val_every} epochs on {val[0][0]}" if val
                  else "validation: off (--val-every 0 or train.val_set=none)")
    console.print(f"epoch = {max(sizes)} samples (the largest member) = {steps} steps of {cfg.train.batch_size}"
                  f" per process x {world_size} process(es); {cfg.train.epochs} epochs = {steps * cfg.train.epochs} steps")


def print_summary(trainer, status: str) -> None:
    from expose_cli.training.run import summary_rows

    table = Table(title="training summary")
    table.add_column("")
    table.add_column("value")
    for key, value in summary_rows(trainer, status):
        table.add_row(key, value)
    console.print(table)


def _run(cfg, settings: Settings, out: Path, resume: ResumeState | None, argv: list[str]) -> None:
    import torch

    from expose_cli.cli.common import resolve_device
    from expose_cli.training import distributed as D
    from expose_cli.training.run import run

    dist = D.init(resolve_device(settings.device))
    try:
        trainer, status = run(cfg, settings.tree, out, resume, argv, dist, log=lambda m: info(settings, m))
    except torch.cuda.OutOfMemoryError as exc:
        raise ExposeError(f"out of GPU memory at batch size {cfg.train.batch_size} per process",
                          hint=f"lower --batch-size (e.g. {max(1, cfg.train.batch_size // 2)}); "
                               f"the run resumes from {out / 'last.pth'} with --resume") from exc
    finally:
        D.shutdown()
    if dist.is_main:
        print_summary(trainer, status)
    if status not in ("done", "max_steps"):  # SIGINT / SIGTERM: exit 130, saying how to continue
        raise Interrupted(f"{status} at step {trainer.progress.step}; {out / 'last.pth'} saved")


def train(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="body | hand | face | expose (the full model)")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (new or empty unless --resume).")],
    resume: ResumeOpt = False,
    init: Annotated[str | None, typer.Option("--init", help="auto (ImageNet / part checkpoints) | none | CKPT.pth")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after N steps in all.")] = None,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = None,
    lr: Annotated[float | None, typer.Option("--lr")] = None,
    precision: PrecisionOpt = None,
    grad_clip: Annotated[float | None, typer.Option("--grad-clip", help="Max gradient norm (0: off).")] = None,
    val_every: Annotated[int | None, typer.Option("--val-every", help="Validate every N epochs (0: never).")] = None,
    save_every: Annotated[int | None, typer.Option("--save-every", help="epoch_K.pth every N epochs.")] = None,
    seed: SeedOpt = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Processes (GPUs) on this machine: runs torchrun.")] = 1,
    dry: Annotated[bool, typer.Option("--dry-run", help="Print config, data and steps per epoch; train nothing.")] = False,
) -> None:
    """Train one of the four ExPose models with the seed's recipe (see docs/train.md)."""
    from expose_cli.training import distributed as D
    from expose_cli.training.checkpointing import ResumeState

    settings = get_settings(ctx)
    check_flags(settings, max_steps, nproc)
    argv = _rebuild_argv(ctx)
    if nproc > 1 and not dry and not D.launched_by_torchrun():  # a dry run starts no processes
        raise typer.Exit(D.launch(nproc, argv + (["--resume"] if resume else [])))
    flags = dict(epochs=epochs, max_steps=max_steps, batch_size=batch_size, workers=workers, lr=lr,
                 precision=precision, grad_clip=grad_clip, val_every=val_every, save_every=save_every, seed=seed,
                 init=init)
    state = ResumeState.load(out / "last.pth", kind) if resume else None  # read once: config, weights, loop
    cfg = resolve_config(kind, settings, state, flags)
    if dry:
        world = int(os.environ["WORLD_SIZE"]) if D.launched_by_torchrun() else nproc
        dry_run(cfg, settings, world)
        return
    _run(cfg, settings, out, state, argv)


def check_flags(settings: Settings, max_steps: int | None, nproc: int) -> None:
    """Flags no run can use, and a device this machine lacks: one line each, before any work."""
    from expose_cli.cli.common import resolve_device

    if max_steps is not None and max_steps < 1:
        raise ExposeError(f"--max-steps must be >= 1, not {max_steps}", exit_code=2,
                          hint="leave --max-steps out to train all --epochs")
    if nproc < 1:
        raise ExposeError(f"--nproc must be >= 1, not {nproc}", exit_code=2,
                          hint="--nproc 1 trains in this process; N > 1 runs torchrun with N processes")
    resolve_device(settings.device)  # `--device cuda` without CUDA: one line, as infer and eval say it


def _rebuild_argv(ctx: typer.Context) -> list[str]:
    """This command line, rebuilt from the parsed options (for torchrun and the README)."""
    settings = get_settings(ctx)
    head = ["--data-dir", str(settings.data_dir)]
    if settings.model_config:
        head += ["--model-config", str(settings.model_config)]
    for item in settings.overrides:
        head += ["--set", item]
    params = ctx.params
    args = ["train", params["kind"], "--out", str(params["out"])]
    for name, value in params.items():
        if name in ("kind", "out", "nproc", "dry", "resume") or value is None or value is False:
            continue
        args += [f"--{name.replace('_', '-')}", str(value)]
    return head + args


def register(app: typer.Typer) -> None:
    app.command("train")(train)
