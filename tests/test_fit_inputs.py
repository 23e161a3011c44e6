"""`expose fit`'s inputs and config: keypoint files onto persons x frames, starts from an `expose
infer` output, bad input one line each, TOML and --set over the two presets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from expose_cli.errors import ExposeError
from expose_cli.fitting.config import load_config
from expose_cli.fitting.inputs import read_keypoint_input, read_start


def test_keypoint_shapes_become_persons_by_frames(tmp_path):
    seq = np.zeros((2, 4, 55, 4))          # 2 persons x 4 frames, the 55-joint skeleton, 3D
    seq[..., 3] = 1.0
    seq[1, 2, 7, :3] = [1.0, 2.0, 3.0]     # person 1, frame 2, keypoint 7
    np.savez(tmp_path / "seq.npz", keypoints=seq)
    kin = read_keypoint_input(tmp_path / "seq.npz")
    assert kin.points.shape == (2, 4, 144, 3) and not kin.is_2d
    assert kin.points[1, 2, 7].tolist() == [1.0, 2.0, 3.0]
    assert kin.confidence[:, :, :55].min() == 1.0 and kin.confidence[:, :, 55:].max() == 0.0
    one = {"keypoints": np.ones((144, 3)).tolist(), "image_size": [480, 640]}
    (tmp_path / "one.json").write_text(json.dumps(one))
    kin = read_keypoint_input(tmp_path / "one.json")
    assert kin.points.shape == (1, 1, 144, 2) and kin.image_size == (480, 640)


def test_bad_persons_are_one_line_each(tmp_path):
    points = np.ones((3, 144, 3))
    points[0, 4, 1] = np.nan
    points[2, :, 2] = 0.0
    np.savez(tmp_path / "kp.npz", keypoints=points)
    kin = read_keypoint_input(tmp_path / "kp.npz")
    assert kin.valid[:, 0].tolist() == [False, True, False]
    assert len(kin.problems) == 2 and all(str(tmp_path / "kp.npz") in line for line in kin.problems)
    assert "person 0" in kin.problems[0] and "NaN" in kin.problems[0] and "person 2" in kin.problems[1]
    assert np.isfinite(kin.points).all()


@pytest.mark.parametrize("keypoints, says", [(np.ones((2, 17, 3)), "17 points per person"),
                                             (np.ones((144, 5)), "5 numbers per point")])
def test_another_convention_or_shape_is_one_line(tmp_path, keypoints, says):
    """A file in another convention or shape: one line naming it (the keypoint-file readers' words)."""
    np.savez(tmp_path / "kp.npz", keypoints=keypoints)
    with pytest.raises(ExposeError) as err:
        read_keypoint_input(tmp_path / "kp.npz")
    bad = {"keypoints": np.ones((2, 133, 3)).tolist()}  # the SMPL-X JSON of this module: 144, 127 or 55 points
    (tmp_path / "kp.json").write_text(json.dumps(bad))
    with pytest.raises(ExposeError) as err2:
        read_keypoint_input(tmp_path / "kp.json")
    assert "133 keypoints per person: not the SMPL-X keypoint order" in err2.value.message
    assert says in err.value.message and "kp.npz" in err.value.message and err.value.exit_code == 2


def test_start_reads_infer_person_files_and_names_the_missing(tmp_path):
    np.savez(tmp_path / "person_00.npz", body_pose_aa=np.full((21, 3), 0.1), global_orient_aa=np.zeros((1, 3)),
             betas=np.arange(10.0), camera_translation=np.array([0.0, 0.0, 9.0]), focal_length=np.float32(1000),
             image_size=np.array([480, 640]))
    start = read_start(tmp_path, persons=2, frames=1)
    assert start.present[:, 0].tolist() == [True, False] and len(start.problems) == 1
    assert "person_01" in start.problems[0]
    assert start.params["body_pose"][0].tolist() == [0.1] * 63 and start.params["transl"][0, 2] == 9.0
    assert start.focal_length == 1000 and start.image_size == (480, 640)


def test_config_presets_toml_and_settings(tmp_path):
    assert load_config().keypoints2d_weight == 20 and load_config().smooth_spine_weight == 1
    compat = load_config(None, ["fit.compat=mmhuman3d", "stage2.num_iter=7"])
    assert (compat.keypoints2d_weight, compat.smooth_spine_weight, compat.img_res) == (1, 20, 224)
    assert [s.num_iter for s in compat.stages()] == [10, 7, 3] and compat.stage3.fit_right_hand_pose
    toml = tmp_path / "fit.toml"
    toml.write_text('[fit]\ncompat = "mmhuman3d"\nlr = 0.05\n[stage1]\nbody_weight = 2\n')
    cfg = load_config(toml, ["fit.lr=0.5"])
    assert (cfg.compat, cfg.lr, cfg.stage1.body_weight) == ("mmhuman3d", 0.5, 2.0)
    for bad in (["fit.nope=1"], ["fit.compat=smplify"], ["stage4.num_iter=1"], ["fit.lr"]):
        with pytest.raises(ExposeError):
            load_config(None, bad)


def test_other_conventions_come_in_smplx_order(tmp_path):
    """An OpenPose BODY_25 + hands + face JSON (what ExPose's demo reads) lands on SMPL-X indices."""
    body = np.zeros((25, 3))
    body[2] = [10.0, 20.0, 0.9]  # OpenPose's right shoulder -> SMPL-X 17
    person = {"pose_keypoints_2d": body.ravel().tolist(), "hand_left_keypoints_2d": [],
              "hand_right_keypoints_2d": [], "face_keypoints_2d": []}
    (tmp_path / "img_keypoints.json").write_text(json.dumps({"people": [person]}))
    kin = read_keypoint_input(tmp_path / "img_keypoints.json")
    assert kin.points.shape == (1, 1, 144, 2) and kin.points[0, 0, 17].tolist() == [10.0, 20.0]
    assert kin.confidence[0, 0, 17] == pytest.approx(0.9) and kin.confidence.sum() == pytest.approx(0.9)


def test_one_betas_per_video_shares_as_documented():
    import torch

    from expose_cli.fitting.objective import expand_betas
    from expose_cli.fitting.optimize import initial_params

    start = {"betas": torch.arange(40.0).reshape(4, 10)}  # 2 persons x 2 frames, person-major
    ours = initial_params(start, 4, load_config(None, ["fit.one_betas_per_video=true"]), persons=2)
    assert ours["betas"].shape == (2, 10) and ours["betas"][1].tolist() == (torch.arange(20.0, 30.0) + 5).tolist()
    assert expand_betas(ours["betas"], 4)[3].tolist() == ours["betas"][1].tolist()
    mm = load_config(None, ["fit.compat=mmhuman3d", "fit.one_betas_per_video=true"])
    assert initial_params(start, 4, mm, persons=2)["betas"].shape == (4, 10)  # a start turns it off
    assert initial_params(None, 4, mm, persons=2)["betas"].shape == (1, 10)   # one for the whole batch
