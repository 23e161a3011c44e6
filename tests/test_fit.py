"""`expose fit` on synthetic persons with known answers (stand-in SMPL-X; keypoints projected
exactly from known parameters, plus noise and dropped points): the fit recovers them, the
corrected default beats MMHuman3D's formulation, and the command runs end to end, one line per
bad person or file. Few L-BFGS iterations here (fast); docs/fit.md has the full-length figures
(benchmarks/bench_fit.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from expose_cli.fitting.config import load_config
from expose_cli.fitting.optimize import fit

FAST = ["fit.max_iter=20", "stage1.num_iter=2", "stage2.num_iter=2", "stage3.num_iter=1"]


@pytest.fixture(scope="module")
def keypoint_model(standin_tree):
    from expose_cli.body_models.builders import build_smplx
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
    from expose_cli.io.paths import DataTree

    return SMPLXKeypoints(build_smplx(DataTree(standin_tree)))


@pytest.fixture(scope="module")
def case(keypoint_model):
    from expose_cli.testing.fit_cases import make_case

    return make_case(keypoint_model, persons=1, seed=0)


def _fit(model, case, dims, settings):
    from expose_cli.testing.fit_cases import errors

    cfg = load_config(None, FAST + settings)
    params, terms = fit(model, cfg, case.targets(dims), case.start, case.persons)
    return errors(model, case, params), terms


def test_2d_fit_recovers_the_person_and_the_default_beats_mmhuman3d(keypoint_model, case):
    from expose_cli.testing.fit_cases import errors

    before = errors(keypoint_model, case, case.start)
    assert 50 < before["pa_mpjpe_mm"] < 90  # a regression-like start
    ours, terms = _fit(keypoint_model, case, 2, [])
    theirs, _ = _fit(keypoint_model, case, 2, ["fit.compat=mmhuman3d"])
    assert ours["keypoints2d_px"] < 0.5 * before["keypoints2d_px"]
    assert ours["pa_mpjpe_mm"] < 0.7 * before["pa_mpjpe_mm"]
    assert ours["keypoints2d_px"] < theirs["keypoints2d_px"] and ours["pa_mpjpe_mm"] < theirs["pa_mpjpe_mm"]
    assert set(terms) == {"keypoints2d", "shape_prior", "joint_prior", "start_pull", "total"}


def test_3d_fit_recovers_the_joints(keypoint_model, case):
    from expose_cli.testing.fit_cases import errors

    before = errors(keypoint_model, case, case.start)
    after, terms = _fit(keypoint_model, case, 3, ["fit.max_iter=10", "stage1.num_iter=3", "stage2.num_iter=3"])
    assert before["mpjpe_mm"] > 500 and after["mpjpe_mm"] < 40 and after["pa_mpjpe_mm"] < 25
    assert "keypoints3d" in terms


QUICK = ["--set", "stage1.num_iter=1", "--set", "stage2.num_iter=1", "--set", "stage3.num_iter=1",
         "--set", "fit.max_iter=5"]


def _write_start(folder, case, persons):
    folder.mkdir()
    for p in persons:
        arrays = {f"{n}_aa": case.start[n][p].reshape(-1, 3).numpy() for n in
                  ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")}
        arrays |= {"betas": case.start["betas"][p].numpy(), "expression": case.start["expression"][p].numpy(),
                   "camera_translation": case.start["transl"][p].numpy(), "focal_length": np.float32(5000),
                   "image_size": np.array([512, 512])}
        np.savez(folder / f"person_{p:02d}.npz", **arrays)


def test_fit_command_fits_the_good_persons_and_names_the_bad(run_cli, standin_tree, keypoint_model, tmp_path):
    from expose_cli.testing.fit_cases import make_case

    case = make_case(keypoint_model, persons=3, seed=2)
    points = torch.cat([case.noisy2d, case.confidence[..., None]], -1).numpy()
    points[1, 5, 0] = np.nan  # person 1: a NaN; person 2: no start
    np.savez(tmp_path / "img.npz", keypoints=points, image_size=np.array([512, 512]))
    _write_start(tmp_path / "start", case, [0, 1])
    import cv2

    cv2.imwrite(str(tmp_path / "img.png"), np.full((512, 512, 3), 40, np.uint8))
    res = run_cli("--data-dir", standin_tree, "fit", tmp_path / "img.npz", "--start", tmp_path / "start",
                  "--out", tmp_path / "out", "--format", "npz,json,obj", "--render", "--image", tmp_path / "img.png",
                  *QUICK)
    assert res.exit_code == 1, res.output
    assert "person 1: NaN or infinite" in res.stderr and "person 2 from" in res.stderr
    folder = tmp_path / "out" / "img"
    assert sorted(p.name for p in folder.iterdir()) == ["losses.json", "overlay.png", "person_00.json", "person_00.npz",
                                                        "person_00.obj"]
    assert (cv2.imread(str(folder / "overlay.png")) != 40).any()  # the mesh drawn over the image
    fitted = np.load(folder / "person_00.npz")
    assert fitted["body_pose_rotmat"].shape == (21, 3, 3) and fitted["vertices"].shape == (10475, 3)
    assert np.allclose(fitted["vertices_camera"], fitted["vertices"] + fitted["camera_translation"])
    losses = json.loads((folder / "losses.json").read_text())
    assert losses["persons"] == [0] and losses["losses"][0]["final"]["total"] < losses["losses"][0]["initial"]["total"]
    # the same command again refuses to replace the output before any work
    again = run_cli("--data-dir", standin_tree, "fit", tmp_path / "img.npz", "--start", tmp_path / "start",
                    "--out", tmp_path / "out", *QUICK)
    assert again.exit_code == 2 and "--overwrite" in again.output
    cv2.imwrite(str(tmp_path / "small.png"), np.full((200, 300, 3), 40, np.uint8))
    other = run_cli("--data-dir", standin_tree, "fit", tmp_path / "img.npz", "--image", tmp_path / "small.png",
                    "--out", tmp_path / "o3", *QUICK)
    assert other.exit_code == 1 and "a file for another image?" in other.stderr
    missing = run_cli("--data-dir", standin_tree, "fit", tmp_path / "nope.npz", "--out", tmp_path / "o2")
    assert missing.exit_code == 2 and "nope.npz" in missing.stderr and not (tmp_path / "o2").exists()


def test_fit_command_3d_sequence_from_the_mean_pose_and_a_bad_file(run_cli, standin_tree, keypoint_model, tmp_path):
    from expose_cli.testing.fit_cases import make_case

    case = make_case(keypoint_model, persons=1, frames=3, seed=3)
    points = torch.cat([case.noisy3d, case.confidence[..., None]], -1).numpy().reshape(1, 3, 144, 4)  # persons x frames
    np.savez(tmp_path / "seq.npz", keypoints=points)
    np.savez(tmp_path / "coco.npz", keypoints=np.zeros((2, 17, 3)))
    res = run_cli("--data-dir", standin_tree, "fit", tmp_path / "seq.npz", tmp_path / "coco.npz",
                  "--out", tmp_path / "out", "--set", "fit.temporal_weight=1", *QUICK)
    assert res.exit_code == 1, res.output
    assert "coco.npz: 17 points per person" in res.stderr
    frames = sorted(p.name for p in (tmp_path / "out" / "seq").iterdir() if p.is_dir())
    assert frames == ["frame_000000", "frame_000001", "frame_000002"]
    losses = json.loads((tmp_path / "out" / "seq" / "losses.json").read_text())["losses"][0]
    assert set(losses["final"]) == {"keypoints3d", "shape_prior", "joint_prior", "temporal", "total"}
    assert losses["final"]["keypoints3d"] < losses["initial"]["keypoints3d"]
    summary = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert len(summary["failed"]) == 1 and summary["compat"] == "none"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_the_gpu_matches_the_cpu(keypoint_model, case):
    import copy

    from expose_cli.fitting.objective import evaluate

    cfg = load_config(None, FAST)
    gpu = copy.deepcopy(keypoint_model).cuda()
    start_gpu = {k: v.cuda() for k, v in case.start.items()}
    on_cpu = evaluate(keypoint_model, cfg, cfg.stage3, case.start, case.targets(2), case.start)
    on_gpu = evaluate(gpu, cfg, cfg.stage3, start_gpu, case.targets(2).to("cuda"), start_gpu)
    for name, value in on_cpu.items():
        assert torch.allclose(on_gpu[name].cpu(), value, rtol=1e-4), name
    params, _ = fit(gpu, cfg, case.targets(2).to("cuda"), start_gpu, case.persons)
    assert params["body_pose"].device.type == "cuda"


class _FixedSimCC(torch.nn.Module):
    """A whole-body keypoint network of the RTMW / DWPose signature (SimCC x and y, 133 points)
    whose peaks sit at fixed bins: some keypoints in every crop."""

    def __init__(self, h: int = 32, w: int = 24, k: int = 133) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        sx, sy = torch.zeros(1, k, 2 * w), torch.zeros(1, k, 2 * h)
        sx[0, torch.arange(k), torch.randint(w // 2, 3 * w // 2, (k,), generator=gen)] = 0.9
        sy[0, torch.arange(k), torch.randint(h // 2, 3 * h // 2, (k,), generator=gen)] = 0.9
        self.register_buffer("sx", sx)
        self.register_buffer("sy", sy)

    def forward(self, x):
        zero = 0 * x[:, :1, :1, :1].reshape(-1, 1, 1)
        return self.sx + zero, self.sy + zero


def test_infer_refine_fits_each_person_from_its_estimate(infer_tree, tmp_path, run_cli):
    import cv2

    model = tmp_path / "kp.onnx"
    torch.onnx.export(_FixedSimCC(), (torch.zeros(1, 3, 32, 24),), str(model), input_names=["input"],
                      output_names=["simcc_x", "simcc_y"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}})
    cv2.imwrite(str(tmp_path / "a.png"), np.full((200, 300, 3), 90, np.uint8))
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": [[100, 50, 160, 190, 0.9]]}))
    res = run_cli("--data-dir", infer_tree, "infer", tmp_path / "a.png", "--out", tmp_path / "o", "--boxes",
                  tmp_path / "boxes.json", "--format", "obj", "--refine", "--keypoints", f"onnx:{model}", *QUICK)
    assert res.exit_code == 0, res.output
    folder = tmp_path / "o" / "a"
    assert (folder / "keypoints.json").is_file() and (folder / "person_00.npz").is_file()  # npz added: the start
    refined = np.load(folder / "refined" / "person_00.npz")
    start = np.load(folder / "person_00.npz")
    assert refined["vertices"].shape == start["vertices"].shape
    assert not np.allclose(refined["body_pose_aa"], start["body_pose_aa"])  # it moved
    losses = json.loads((folder / "refined" / "losses.json").read_text())["losses"][0]
    assert losses["final"]["total"] < losses["initial"]["total"]
