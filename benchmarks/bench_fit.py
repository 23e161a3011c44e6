"""`expose fit` on synthetic persons (stand-in SMPL-X; exact keypoints + noise + dropped points;
starts perturbed like a regression): accuracy of the default and of the MMHuman3D-compatible
formulation, the pull towards the start against outliers, and speed (persons/s) for a 1-person
image and a 64-frame sequence, CPU with 2 threads. MMHuman3D's own registrant needs mmcv and its
body-model files, so it does not run here: only our reproduction of it (``fit.compat=mmhuman3d``)
is timed."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conditions import conditions  # noqa: E402

from expose_cli.body_models.builders import build_smplx  # noqa: E402
from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints  # noqa: E402
from expose_cli.fitting.config import load_config  # noqa: E402
from expose_cli.fitting.optimize import fit  # noqa: E402
from expose_cli.testing.fit_cases import errors, make_case  # noqa: E402
from expose_cli.testing.standins import write_standin_data_tree  # noqa: E402

OUTLIERS = [4, 5, 7, 8, 18, 19, 20, 21]  # knees, ankles, elbows, wrists: 60 px off


def _row(label: str, e: dict, seconds: float | None = None) -> str:
    t = "" if seconds is None else f"  ({seconds:.1f} s)"
    return (f"{label:<34} 2D {e['keypoints2d_px']:6.2f} px  PA-MPJPE {e['pa_mpjpe_mm']:6.1f} mm  "
            f"MPJPE {e['mpjpe_mm']:7.1f} mm{t}")


def accuracy(model, persons: int, seed: int) -> None:
    case = make_case(model, persons=persons, seed=seed)
    print(_row("start", errors(model, case, case.start)))
    runs = [("2D, default", 2, [], None), ("2D, compat=mmhuman3d", 2, ["fit.compat=mmhuman3d"], None),
            ("3D, default", 3, [], None), ("3D, default, stage3.num_iter=10", 3, ["stage3.num_iter=10"], None),
            ("3D, compat=mmhuman3d", 3, ["fit.compat=mmhuman3d"], None),
            ("2D + outliers, default (pull 0.5)", 2, [], OUTLIERS),
            ("2D + outliers, start_pull_weight=0", 2, ["fit.start_pull_weight=0"], OUTLIERS)]
    for label, dims, settings, outliers in runs:
        targets = case.targets(dims)
        if outliers is not None:
            targets.keypoints = targets.keypoints.clone()
            targets.keypoints[:, outliers] += 60.0
        t0 = time.perf_counter()
        params, _ = fit(model, load_config(None, settings), targets, case.start, persons)
        print(_row(label, errors(model, case, params), time.perf_counter() - t0), flush=True)


def speed(model, frames: int, settings: list[str], repeats: int) -> float:
    """Persons (person-frames) per second of the whole staged fit, best of ``repeats``."""
    case = make_case(model, persons=1, frames=frames, seed=5)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit(model, load_config(None, settings), case.targets(2), case.start, 1)
        best = min(best, time.perf_counter() - t0)
    return frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=4, help="persons in the accuracy case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = SMPLXKeypoints(build_smplx(write_standin_data_tree(tmp)))
    print(f"expose fit on stand-in SMPL-X ({conditions(2)})")
    if not args.skip_accuracy:
        accuracy(model, args.persons, args.seed)
    for frames in (1, 64):
        for label, settings in (("default", []), ("compat=mmhuman3d", ["fit.compat=mmhuman3d"])):
            rate = speed(model, frames, settings, args.repeats)
            print(f"speed, {'1-person image' if frames == 1 else f'{frames}-frame sequence'}, {label}: "
                  f"{rate:.2f} persons/s", flush=True)


if __name__ == "__main__":
    main()
