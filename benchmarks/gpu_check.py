"""The GPU figures of docs/train.md and docs/infer.md in one run: prints ONE JSON on stdout.

    python benchmarks/gpu_check.py [--json out.json]     # one CUDA GPU (sized for 8 minutes; not yet run on one)
    python benchmarks/gpu_check.py --dry-run             # CPU, tiny sizes and steps (tests/test_gpu_check.py)
    make gpu-check

What it runs, in this order (each section's wall seconds are in the JSON):

1. ``tests/test_gpu.py`` (pytest in a subprocess; ``--dry-run`` only collects it);
2. the body preset (HRNet-W48, 256 px) at batch 48 in fp32 and in bf16: 200 steps (the first 10
   warm up and are not timed), validating on 3DPW every 100 steps (the `expose eval` protocol through the training
   loop's validator): samples/s of the steps alone and of the whole run (loader waits included;
   validation and checkpoint time excluded and reported apart), peak GPU memory, whether every
   loss was finite;
3. the full model (its hand and face networks train, the body is frozen) at batch 48, bf16;
4. the loader: training samples/s with 1, 2, 4, 8 worker processes against the body step rate,
   and the fewest workers that keep up with it;
5. `expose infer`'s pipeline end to end (full model, full-image boxes, batch 8, loader workers as
   the command picks them): images/s writing ``npz`` and ``obj``;
6. the full model alone on a batch of 64 persons in bf16 (persons/s).

Data: stand-in body models (``--data-dir`` to use a tree that has them, else written to a temporary
folder), a synthetic training set (``expose synth``'s renders, embedded 256 px crops: lighter to
decode than raw photographs), a small synthetic 3DPW. Weights are random (speed and memory do not
depend on their values; the losses are finite either way).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from conditions import cpu_model  # benchmarks/conditions.py

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    """Sizes of one check (the real one on a GPU, or the dry run on the CPU)."""

    device: str = "cuda:0"
    small: bool = False  # tiny network widths (dry run)
    img_res: int = 256
    batch: int = 48
    precisions: tuple[str, ...] = ("fp32", "bf16")  # of the body run (bf16 also the full model's)
    warmup: int = 10
    steps: int = 200
    val_every: int = 100  # steps
    samples: int = 48  # synthetic training rows (drawn with replacement)
    render: int = 256  # px of the synthetic renders
    full_steps: int = 40
    train_workers: int = 6
    worker_counts: tuple[int, ...] = (1, 2, 4, 8)
    loader_batches: int = 15
    infer_images: int = 256
    infer_workers: int | None = None  # as `expose infer` picks them
    model_batch: int = 64
    model_iters: int = 30
    tests: tuple[str, ...] = ()  # extra pytest arguments
    run_tests: bool = True


DRY = Plan(device="cpu", small=True, img_res=64, batch=2, precisions=("bf16",), warmup=0, steps=1, val_every=1, samples=4, render=64,
           full_steps=1, train_workers=0, worker_counts=(0, 1), loader_batches=1, infer_images=2, infer_workers=0,
           model_batch=2, model_iters=1, tests=("--collect-only",))


def timed(fn, seconds: list):
    """``fn`` whose wall time (the GPU synchronised after it) is appended to ``seconds``."""
    def wrapper(*args, **kwargs):
        tic = time.perf_counter()
        out = fn(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - tic)
        return out

    return wrapper


def peak_memory_mb() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


# -- data ------------------------------------------------------------------------------------------

def prepare(plan: Plan, work: Path, data_dir: Path | None) -> dict:
    """The data tree, the synthetic training file and a preprocessed synthetic 3DPW test file."""
    from expose_cli.cli.app import main as expose
    from expose_cli.io.paths import DataTree
    from expose_cli.testing.raw_datasets import write_pw3d
    from expose_cli.testing.standins import write_standin_data_tree
    from expose_cli.training.synth import write_synth

    tree = DataTree(data_dir) if data_dir is not None else write_standin_data_tree(work / "data")
    h5 = write_synth(work / "synth", "body", plan.samples, tree, seed=0, size=plan.render)
    write_pw3d(work / "3DPW")
    pw3d = work / "pw3d_test.h5"
    with contextlib.redirect_stdout(sys.stderr):  # its table: stdout is the JSON's alone
        code = expose(["--data-dir", str(tree.root), "-q", "preprocess", "3dpw", "--root", str(work / "3DPW"),
                       "--split", "test", "--out", str(pw3d)])
    if code != 0:
        raise SystemExit(f"gpu_check: preprocessing the synthetic 3DPW failed (exit {code})")
    return {"tree": tree, "h5": h5, "pw3d": pw3d, "images": sorted((work / "synth").rglob("*.jpg"))}


# -- 1. tests/test_gpu.py -------------------------------------------------------------------------

def run_tests(plan: Plan) -> dict:
    tic = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py", *plan.tests]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else proc.stderr.strip()[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|tests? collected)", last)}
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return {"command": " ".join(cmd[1:]), "exit_code": proc.returncode, "summary": last, "counts": counts,
            "failed": failed, "seconds": round(time.perf_counter() - tic, 1)}


# -- 2, 3. training --------------------------------------------------------------------------------

def train_config(kind: str, precision: str, plan: Plan, data: dict, validate: bool):
    from expose_cli.kinds import KINDS
    from expose_cli.training.config import check, run_preset, set_field

    cfg = run_preset(kind, small=plan.small)
    settings = {"data.members": [str(data["h5"])], "data.ratios": [1.0], "data.img_res": plan.img_res, f"{KINDS[kind].config_section}.img_res": plan.img_res,
                "train.batch_size": plan.batch, "train.workers": plan.train_workers, "train.init": "none",
                "train.precision": precision, "train.last_every": 0, "train.save_every": 0, "train.log_every": 10,
                "train.val_set": "3dpw" if validate else "none", "train.val_data": str(data["pw3d"]) if validate else "",
                "train.val_every": 1, "train.epochs": plan.steps // plan.val_every if validate else 10**6}
    for key, value in settings.items():
        set_field(cfg, key, value)
    check(cfg)
    return cfg


def build_trainer(cfg, plan: Plan, data: dict, out: Path, validate: bool):
    """A Trainer whose epoch is ``val_every`` steps (validation at each epoch's end)."""
    from expose_cli.training import distributed as D
    from expose_cli.training import run as R
    from expose_cli.training.datasets import build_train_dataset, collate
    from expose_cli.training.loop import Trainer
    from expose_cli.training.mixing import MixedSampler
    from expose_cli.training.validation import build_validation

    tree = data["tree"]
    R.seed_everything(0)
    dataset = build_train_dataset(cfg.data, tree.root, cfg.kind, 0)
    sampler = MixedSampler(dataset, cfg.data.ratios, seed=0, length=plan.val_every * plan.batch)
    validator = build_validation(cfg, tree) if validate else None
    info = D.DistInfo(device=torch.device(plan.device))
    return Trainer(cfg, R.build_model(cfg, tree), dataset, sampler, collate, out, info,
                   R.build_hooks(cfg, out, info, validator, log=lambda line: None))


def train_figures(kind: str, precision: str, plan: Plan, data: dict, out: Path, steps: int, validate: bool) -> dict:
    """``steps`` steps after ``plan.warmup`` warm-up steps: rates, memory, validation, finiteness."""
    cfg = train_config(kind, precision, plan, data, validate)
    trainer = build_trainer(cfg, plan, data, out, validate)
    step_s, val_s, save_s = [], [], []
    from expose_cli.training.checkpointer import Checkpointer
    from expose_cli.training.hooks import Validation

    checkpointer = next(h for h in trainer.hooks if isinstance(h, Checkpointer))
    validation = next(h for h in trainer.hooks if isinstance(h, Validation))
    trainer.step, checkpointer.save = timed(trainer.step, step_s), timed(checkpointer.save, save_s)
    if validation.validate is not None:
        validation.validate = timed(validation.validate, val_s)
    if plan.warmup:
        cfg.train.max_steps = plan.warmup
        trainer.fit()
        del step_s[:], save_s[:]
    reset_peak()
    cfg.train.max_steps = plan.warmup + steps if not validate else 0  # with validation: whole epochs
    tic = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - tic
    ran, parts = len(step_s), trainer.last_parts  # no parts: every step was skipped
    finite = trainer.progress.skipped == 0 and bool(parts) and all(math.isfinite(v) for v in parts.values())
    vals = list(validation.history)
    return {"steps": ran, "batch": plan.batch, "precision": precision,
            "step_samples_per_s": round(ran * plan.batch / sum(step_s), 1),
            "run_samples_per_s": round(ran * plan.batch / max(wall - sum(val_s) - sum(save_s), 1e-9), 1),
            "peak_memory_mb": peak_memory_mb(), "losses_finite": finite,
            "last_loss": round(parts["loss"], 4) if parts else None, "validations": len(vals),
            "validation_s": [round(v, 2) for v in val_s], "validation_metrics": vals,
            "checkpoint_s": round(sum(save_s), 1), "wall_s": round(wall, 1)}


# -- 4. loader workers -----------------------------------------------------------------------------

def loader_figures(plan: Plan, data: dict, step_rate: float) -> dict:
    """Training samples/s of the body preset's data pipeline with N worker processes."""
    from torch.utils.data import DataLoader

    from expose_cli.training.data_config import data_preset, with_members
    from expose_cli.training.datasets import build_train_dataset, collate
    from expose_cli.training.mixing import MixedSampler

    cfg = replace(with_members(data_preset("body"), (str(data["h5"]),)), img_res=plan.img_res)
    dataset = build_train_dataset(cfg, data["tree"].root, "body", 0)
    rates = {}
    for workers in plan.worker_counts:
        sampler = MixedSampler(dataset, cfg.ratios, length=(plan.loader_batches + 1) * plan.batch)
        it = iter(DataLoader(dataset, batch_size=plan.batch, sampler=sampler, num_workers=workers, collate_fn=collate))
        next(it)  # worker start-up and the first batch are not counted
        tic = time.perf_counter()
        n = sum(int(batch["img"].shape[0]) for batch in it)
        rates[workers] = n / (time.perf_counter() - tic)
    one = rates.get(1) or rates[max(rates)]
    enough = [w for w, r in sorted(rates.items()) if r >= step_rate]
    return {"samples_per_s": {str(w): round(r, 1) for w, r in rates.items()},
            "per_worker_samples_per_s": round(one, 1), "gpu_step_samples_per_s": round(step_rate, 1),
            "workers_needed_estimate": math.ceil(step_rate / one) if one > 0 else None,
            "fewest_measured_that_keep_up": enough[0] if enough else None}


# -- 5, 6. inference -------------------------------------------------------------------------------

def full_predictor(plan: Plan, tree):
    from expose_cli.models import build_predictor
    from expose_cli.testing.checkpoints import random_net

    return build_predictor(random_net("expose", small=plan.small), tree).to(plan.device)


def infer_figures(plan: Plan, predictor, data: dict, work: Path) -> dict:
    """`expose infer`'s pipeline on ``infer_images`` images: images/s per output format."""
    import shutil

    from expose_cli.inference.inputs import discover_inputs
    from expose_cli.inference.loading import crop_spec
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.pipeline import run_inference

    folder = work / "infer_in"
    folder.mkdir(exist_ok=True)
    for i in range(plan.infer_images):
        shutil.copy(data["images"][i % len(data["images"])], folder / f"{i:04d}.jpg")
    crop = crop_spec(predictor, detector="full-image")
    warm = InferOptions(out_dir=work / "infer_warm", crop=crop, formats=("npz",), batch_size=8, workers=0)
    run_inference(discover_inputs(sorted(folder.iterdir())[:8]), predictor, warm)  # fused copies, cuDNN search
    out = {}
    for fmt in ("npz", "obj"):
        options = InferOptions(out_dir=work / f"infer_{fmt}", crop=crop, formats=(fmt,), batch_size=8,
                               workers=plan.infer_workers)
        tic = time.perf_counter()
        summary = run_inference(discover_inputs([folder]), predictor, options)
        seconds = time.perf_counter() - tic
        out[fmt] = {"images": plan.infer_images, "failed": summary["failed"], "seconds": round(seconds, 2),
                    "images_per_s": round(plan.infer_images / seconds, 2)}
    return out


def model_figures(plan: Plan, predictor, data: dict) -> dict:
    """The full model alone on ``model_batch`` persons, bf16 autocast (crops already on the device)."""
    from expose_cli.io.images import read_image
    from expose_cli.models import collate, crop_person

    image = read_image(data["images"][0])
    h, w = image.shape[:2]
    crop = crop_person(image, [w * 0.1, h * 0.05, w * 0.8, h * 0.9], img_res=predictor.img_res, keep_full_image=True)
    batch = collate([crop] * plan.model_batch, predictor.device)
    seconds: list[float] = []
    run = timed(lambda: predictor(batch), seconds)
    with torch.autocast(predictor.device.type, dtype=torch.bfloat16):
        for _ in range(2):  # warm-up (cuDNN's algorithm search)
            run()
        del seconds[:]
        for _ in range(plan.model_iters):
            run()
    return {"batch": plan.model_batch, "precision": "bf16", "iterations": plan.model_iters,
            "persons_per_s": round(plan.model_batch * len(seconds) / sum(seconds), 1), "peak_memory_mb": peak_memory_mb()}


# -- the whole check -------------------------------------------------------------------------------

def check(plan: Plan, work: Path, data_dir: Path | None) -> dict:
    """Every section in order; ``section_seconds`` gives each one's wall time."""
    out: dict = {}
    clock: dict[str, float] = {}
    tic = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tic
        clock[name] = round(time.perf_counter() - tic, 1)
        tic = time.perf_counter()
        print(f"gpu_check: {name} done ({clock[name]} s)", file=sys.stderr, flush=True)

    out["tests_gpu"] = run_tests(plan) if plan.run_tests else {"skipped": "--skip-tests"}
    lap("tests_gpu")
    data = prepare(plan, work, data_dir)
    lap("data")
    out["body"] = {}
    for precision in plan.precisions:
        out["body"][precision] = train_figures("body", precision, plan, data, work / f"body_{precision}", plan.steps,
                                               validate=True)
        lap(f"body_{precision}")
    out["full"] = train_figures("expose", "bf16", plan, data, work / "full", plan.full_steps, validate=False)
    lap("full")
    out["loader"] = loader_figures(plan, data, out["body"]["bf16"]["step_samples_per_s"])
    lap("loader")
    predictor = full_predictor(plan, data["tree"])
    out["infer"] = infer_figures(plan, predictor, data, work)
    lap("infer")
    reset_peak()
    out["model_alone"] = model_figures(plan, predictor, data)
    lap("model_alone")
    out["section_seconds"] = clock
    out["seconds"] = round(sum(clock.values()), 1)
    return out


def header(plan: Plan, dry: bool) -> dict:
    gpu = torch.cuda.get_device_name(0) if plan.device.startswith("cuda") else None
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": dry, "gpu": gpu,
            "cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes and steps (checks the script)")
    parser.add_argument("--data-dir", type=Path, help="a data tree with the (stand-in) body models")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--skip-tests", action="store_true", help="leave tests/test_gpu.py out (run it with pytest)")
    args = parser.parse_args(argv)
    plan = replace(DRY if args.dry_run else Plan(), run_tests=not args.skip_tests)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; run it on a GPU machine, or pass --dry-run")
    with tempfile.TemporaryDirectory(prefix="expose-gpu-check-") as tmp:
        result = {**header(plan, args.dry_run), "plan": asdict(plan), **check(plan, Path(tmp), args.data_dir)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
