"""The four ExPose models: checkpoint layouts, loading, and the places implementations drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expose_cli.body_models.auxiliary import Auxiliary
from expose_cli.errors import ExposeError, MissingFileError
from expose_cli.geometry.rotations import axis_angle_to_matrix, matrix_to_rot6d
from expose_cli.io.paths import DataTree
from expose_cli.models import (
    ExPoseNet,
    attention,
    build_predictor,
    collate,
    crop_person,
    load_config,
    load_net,
    preset,
    save_checkpoint,
    small_config,
)
from expose_cli.models.heads import BODY_PARTS, build_mean_param
from expose_cli.testing.checkpoints import reference_layout

D = torch.float64


def person_batch(kind: str, n: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    res = 224 if kind == "hand" else 256
    boxes = [[120, 20, 100, 260], [40, 60, 200, 180]][:n]
    return collate([crop_person(img, b, img_res=res, keep_full_image=kind == "expose") for b in boxes])


# MMHuman3D's groups that our networks do not hold (skipped on load), by key prefix.
_NOT_OURS = ("body_model_train.", "body_model_test.", "backbone.stage4.", "backbone.final_layer.",
             "backbone.downsample_stage_")


def mmhuman3d_state_from_layout(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict in MMHuman3D's layout, made from the reference key list alone (no network of ours):
    random floats (variances positive); the ``*_idxs`` slices of each head consecutive in the file's key order (as MMHuman3D
    lays out its parameter vector); ``num_batches_tracked`` counters; ``layer_00N`` the same tensors as
    ``blocks.N`` (one module registered under two names). Groups we skip cost no memory (expanded zeros)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    start: dict[str, int] = {}
    for key, shape in reference_layout(kind).items():
        head = key.rsplit(".", 1)[0]
        if key.startswith(_NOT_OURS):
            state[key] = torch.zeros(()).expand(shape)
        elif key.endswith("_idxs"):
            state[key] = torch.arange(start.get(head, 0), start.get(head, 0) + shape[0])
            start[head] = start.get(head, 0) + shape[0]
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(int(torch.randint(1, 1000, (), generator=g)))
        elif ".regressor.module.layer_" in key:
            state[key] = state[key.replace(".layer_00", ".blocks.")]
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.rand(shape, generator=g) - 0.5
    return state


# Where a few of MMHuman3D's tensors must land in our networks (written out, not looked up by name).
_PLACES = {
    "hand": {
        "backbone.conv1.weight": lambda n: n.backbone.conv1.weight,
        "backbone.layer2.0.downsample.0.weight": lambda n: n.backbone.layer2[0].downsample[0].weight,
        "backbone.layer4.1.bn2.running_var": lambda n: n.backbone.layer4[1].bn2.running_var,
        "head.regressor.mean_param": lambda n: n.head.regressor.mean_param,
        "head.regressor.module.blocks.1.0.weight": lambda n: n.head.regressor.module.blocks[1][0].weight,
        "head.regressor.module.output_layer.bias": lambda n: n.head.regressor.module.output_layer.bias,
        "head.camera_idxs": lambda n: n.head.camera_idxs,
    },
    "face": {
        "backbone.layer3.1.conv2.weight": lambda n: n.backbone.layer3[1].conv2.weight,
        "head.expression_idxs": lambda n: n.head.expression_idxs,
        "head.regressor.module.blocks.0.0.weight": lambda n: n.head.regressor.module.blocks[0][0].weight,
    },
    "expose": {
        "backbone.conv2.weight": lambda n: n.backbone.conv2.weight,
        "backbone.stage3.2.branches.0.3.bn1.bias": lambda n: n.backbone.stage3[2].branches[0][3].bn1.bias,
        "backbone.conv_layers.4.downsample.weight": lambda n: n.backbone.conv_layers[4].downsample.weight,
        "backbone.subsample_3.4.running_mean": lambda n: n.backbone.subsample_3[4].running_mean,
        "head.body_pose_idxs": lambda n: n.head.body_pose_idxs,
        "head.regressor.module.output_layer.weight": lambda n: n.head.regressor.module.output_layer.weight,
        "hand_backbone.layer1.0.conv1.weight": lambda n: n.hand_backbone.layer1[0].conv1.weight,
        "hand_head.regressor.mean_param": lambda n: n.hand_head.regressor.mean_param,
        "face_backbone.bn1.num_batches_tracked": lambda n: n.face_backbone.bn1.num_batches_tracked,
        "face_head.regressor.module.blocks.1.0.bias": lambda n: n.face_head.regressor.module.blocks[1][0].bias,
    },
}
# What the loader must skip, counted from the reference key lists (MMHuman3D's checkpoints).
_SKIPPED = {
    "hand": {"body_model_train": 11, "body_model_test": 11, "regressor.module.layer_000": 2,
             "regressor.module.layer_001": 2},
    "face": {"body_model_train": 16, "body_model_test": 16, "regressor.module.layer_000": 2,
             "regressor.module.layer_001": 2},
    "expose": {"body_model_train": 17, "body_model_test": 18, "regressor.module.layer_000": 6,
               "regressor.module.layer_001": 6, "backbone.stage4": 720, "backbone.final_layer": 2,
               "backbone.downsample_stage_1": 15, "backbone.downsample_stage_2": 10, "backbone.downsample_stage_3": 5},
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hand", "face", "expose"])
def test_mmhuman3d_state_dict_lands_in_our_modules(kind):
    from expose_cli.models.checkpoint import detect_kind, infer_config, load_state

    state = mmhuman3d_state_from_layout(kind)
    assert detect_kind(state) == kind and infer_config(state, kind) == preset(kind)
    net = ExPoseNet(preset(kind))
    report = load_state(net, state, "mmhuman3d")
    assert dict(report.skipped) == _SKIPPED[kind]
    for key, place in _PLACES[kind].items():
        assert torch.equal(place(net), state[key]), key
    if kind == "expose":  # frozen BatchNorms: MMHuman3D stores no counters there; filled with 0
        assert "backbone.bn1.num_batches_tracked" not in state and net.backbone.bn1.num_batches_tracked.item() == 0
        assert "backbone.bn1.num_batches_tracked" in report.filled
    if kind == "hand":
        # The camera is read where the file's camera_idxs say: with the regressor's output layer at
        # zero every stage returns mean_param, so the camera is [softplus(m[106]), m[107], m[108]].
        with torch.no_grad():
            net.head.regressor.module.output_layer.weight.zero_()
            net.head.regressor.module.output_layer.bias.zero_()
            cam = net.eval()(torch.zeros(1, 3, 224, 224)).camera[0]
        m = state["head.regressor.mean_param"][0, 106:109].tolist()
        torch.testing.assert_close(cam, torch.tensor([math.log1p(math.exp(m[0])), m[1], m[2]]))


def test_body_preset_builds_full_size():
    net = ExPoseNet(preset("body"))
    layout = reference_layout("body")
    skip = ("backbone.stage4", "backbone.final_layer", "backbone.downsample_stage", "body_model_", )
    expected = {k: v for k, v in layout.items() if not k.startswith(skip) and ".layer_00" not in k}
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == expected


def test_mean_parameters_from_aux_files(standin_tree):
    aux = Auxiliary(DataTree(standin_tree))
    means = {p.name: torch.as_tensor(aux.mean_rot6d(p.name, p.num_joints)) for p in BODY_PARTS if p.use_mean}
    mean = build_mean_param(BODY_PARTS, 10, 10, 0.9, means, torch.as_tensor(aux.shape_mean()))
    assert mean.shape == (341,)
    np.testing.assert_allclose(mean[:6], [1, 0, 0, -1, 0, 0])  # global orient: 180 degrees about x
    np.testing.assert_allclose(mean[6:132], aux.mean_rot6d("body_pose", 21).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(mean[312:318], [1, 0, 0, 1, 0, 0])  # jaw: identity
    np.testing.assert_allclose(mean[318:328], aux.shape_mean()[:10], rtol=1e-6)
    assert torch.nn.functional.softplus(mean[338]).item() == pytest.approx(0.9)
    net = ExPoseNet(preset("body"), means, aux.shape_mean())
    out = net.head.decode(net.head.regressor.mean_param)
    torch.testing.assert_close(out.rotations["global_orient"][0, 0], torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    assert out.camera[0, 0].item() == pytest.approx(0.9)


def test_part_keypoints_match_mmhuman3d():
    # MMHuman3D's indices of its 'left_hand', 'right_hand' (+ wrist) and 'head' parts in 'smplx'.
    left = list(range(25, 40)) + [66, 67, 68, 69, 70, 20]
    right = list(range(40, 55)) + [71, 72, 73, 74, 75, 21]
    head = [15, 22, 23, 24, 55, 56, 57, 58, 59] + list(range(76, 144))
    assert attention.hand_keypoint_indices("left").tolist() == sorted(left)
    assert attention.hand_keypoint_indices("right").tolist() == sorted(right)
    assert attention.head_keypoint_indices().tolist() == sorted(head)


def test_crop_sampling_alignment():
    # A crop of side 60 centred at (65, 45), 31 samples wide: sample k sits at c - s/2 + s k / 30, i.e.
    # x = 35 + 2 k and y = 15 + 2 k, on whole pixels 2 px apart.
    # A marker at (x=71, y=41) is sample (k_x=18, k_y=13): it appears there, whole, and nowhere else.
    img = torch.zeros(1, 1, 100, 120)
    img[0, 0, 41, 71] = 1.0
    crop = attention.sample_crop(img, torch.tensor([[65.0, 45.0]]), torch.tensor([60.0]), 31)
    assert crop.shape == (1, 1, 31, 31)
    ys, xs = torch.nonzero(crop[0, 0] > 0.999, as_tuple=True)
    assert (ys.tolist(), xs.tolist()) == ([13], [18])
    assert crop[0, 0].sum().item() == pytest.approx(1.0)
    # A marker at (70, 40) lies between samples (k = 17.5, 12.5): every sample falls on a zero pixel.
    img = torch.zeros(1, 1, 100, 120)
    img[0, 0, 40, 70] = 1.0
    crop = attention.sample_crop(img, torch.tensor([[65.0, 45.0]]), torch.tensor([60.0]), 31)
    assert crop[0, 0].abs().sum().item() == pytest.approx(0.0)
    # Outside the image: zeros.
    out = attention.sample_crop(torch.ones(1, 1, 10, 10), torch.tensor([[100.0, 100.0]]), torch.tensor([10.0]), 5)
    assert out.abs().max().item() == 0.0


def test_part_box_in_image_inverts_the_body_crop():
    from expose_cli.geometry.crops import crop_affine, transform_points

    center, side = np.array([200.0, 150.0]), 320.0
    A = crop_affine(center, np.array([side, side]), 256)
    pts_img = np.array([[180.0, 100.0], [200.0, 130.0], [190.0, 120.0]])
    pts_crop = transform_points(pts_img, A)
    c, s = attention.part_box_in_image(torch.tensor(pts_crop[None], dtype=D), torch.tensor(A[None], dtype=D),
                                       torch.tensor([side], dtype=D), 3.0, 256)
    # Box of the image points: centre (190, 115), side max(20, 30) * 3 = 90 px.
    np.testing.assert_allclose(c[0].numpy(), [190.0, 115.0], atol=1e-6)
    assert s.item() == pytest.approx(90.0)


def _abs_rotation(chain_local: list[torch.Tensor]) -> torch.Tensor:
    out = torch.eye(3, dtype=D)
    for R in chain_local:  # root first
        out = out @ R
    return out


def test_hand_condition_and_merge_through_kinematic_chain():
    g = torch.Generator().manual_seed(0)
    B = 2
    go = axis_angle_to_matrix(0.5 * torch.randn(B, 1, 3, generator=g, dtype=D))
    bp = axis_angle_to_matrix(0.5 * torch.randn(B, 21, 3, generator=g, dtype=D))
    left_fingers = axis_angle_to_matrix(0.3 * torch.randn(B, 15, 3, generator=g, dtype=D))
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    # right wrist (21) chain: 0 -> 3 -> 6 -> 9 -> 14 -> 17 -> 19 -> 21
    chain = [0, 3, 6, 9, 14, 17, 19, 21]
    local = [go[:, 0]] + [bp[:, j - 1] for j in chain[1:]]
    right_abs = torch.stack([_abs_rotation([R[b] for R in local]) for b in range(B)])
    assert attention.kinematic_chain(21, parents) == chain[::-1]
    torch.testing.assert_close(attention.global_rotation(chain[::-1], go, bp), right_abs)

    class _Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("global_orient_idxs", torch.arange(0, 6))
            self.register_buffer("right_hand_pose_idxs", torch.arange(6, 96))
            self.register_buffer("shape_idxs", torch.arange(96, 106))
            self.register_buffer("camera_idxs", torch.arange(106, 109))
            self.mean = torch.arange(109, dtype=D)[None]

        def get_mean(self, name, batch):
            return self.mean[0, getattr(self, f"{name}_idxs")].expand(batch, -1)

    raw_right = torch.randn(B, 90, generator=g, dtype=D)
    cond = attention.hand_condition(_Head(), go, bp, left_fingers, raw_right, parents)
    assert cond.shape == (2 * B, 109)
    torch.testing.assert_close(cond[:B, :6], matrix_to_rot6d(right_abs))
    torch.testing.assert_close(cond[:B, 6:96], raw_right)
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=D))
    left_chain = [0, 3, 6, 9, 13, 16, 18, 20]
    left_abs = torch.stack([_abs_rotation([go[b, 0]] + [bp[b, j - 1] for j in left_chain[1:]]) for b in range(B)])
    torch.testing.assert_close(cond[B:, :6], matrix_to_rot6d(flip @ left_abs @ flip))
    torch.testing.assert_close(cond[B:, 6:96], matrix_to_rot6d(flip @ left_fingers @ flip).reshape(B, -1))
    torch.testing.assert_close(cond[:, 96:], torch.arange(96, 109, dtype=D).expand(2 * B, -1))
    # A hand network that returns its conditions unchanged leaves the body as it was.
    hands = {"global_orient": torch.cat([right_abs, flip @ left_abs @ flip])[:, None],
             "right_hand_pose": torch.cat([torch.eye(3, dtype=D).expand(B, 15, 3, 3), flip @ left_fingers @ flip])}
    merged = attention.merge_hands(go, bp, hands, parents)
    torch.testing.assert_close(merged["body_pose"], bp)
    torch.testing.assert_close(merged["left_hand_pose"], left_fingers)
    # and a new absolute wrist rotation W becomes the local rotation parent^T W
    W = axis_angle_to_matrix(torch.tensor([[0.3, -0.2, 0.9]], dtype=D)).expand(B, 3, 3)
    hands["global_orient"] = torch.cat([W, W])[:, None]
    merged = attention.merge_hands(go, bp, hands, parents)
    parent_abs = torch.stack([_abs_rotation([R[b] for R in local[:-1]]) for b in range(B)])
    torch.testing.assert_close(merged["body_pose"][:, 20], parent_abs.transpose(1, 2) @ W)
    left_parent = torch.stack([_abs_rotation([go[b, 0]] + [bp[b, j - 1] for j in left_chain[1:-1]]) for b in range(B)])
    torch.testing.assert_close(merged["body_pose"][:, 19], left_parent.transpose(1, 2) @ (flip @ W @ flip))


def test_predictor_outputs_and_camera_projection(small_ckpts, standin_tree):
    from expose_cli.models import Predictor

    tree = DataTree(standin_tree)
    for kind in ("body", "hand", "face", "expose"):
        net, _ = load_net(small_ckpts[kind])
        predictor = build_predictor(net, tree)
        pred = predictor(person_batch(kind))
        n_joints = {"hand": 21, "face": 73}.get(kind, 144)
        n_verts = {"hand": 778, "face": 5023}.get(kind, 10475)
        assert pred.vertices.shape == (2, n_verts, 3) and pred.joints.shape == (2, n_joints, 3)
        # (the weak-perspective projection itself: test_geometry, hand-computed values)
        batch = person_batch(kind)
        A = batch.crop_transform
        back = torch.einsum("bij,bnj->bni", A[:, :, :2], pred.keypoints2d) + A[:, None, :, 2]
        torch.testing.assert_close(back, pred.keypoints2d_crop, atol=1e-3, rtol=0)
        aa = pred.axis_angle()
        torch.testing.assert_close(axis_angle_to_matrix(aa["global_orient"]), pred.rotations["global_orient"], atol=1e-5, rtol=0)
        if kind in ("body", "expose"):
            # A one-hot LSP regressor picks vertices: joint j is vertex 7 j + 3.
            picked = 7 * np.arange(14) + 3
            onehot = np.zeros((14, n_verts), np.float32)
            onehot[np.arange(14), picked] = 1.0
            j14 = Predictor(net, predictor.body_model, onehot)(batch).joints_j14
            torch.testing.assert_close(j14, pred.vertices[:, picked], rtol=0, atol=1e-6)


def test_full_model_uses_part_networks(small_ckpts, standin_tree):
    tree = DataTree(standin_tree)
    net, _ = load_net(small_ckpts["expose"])
    predictor = build_predictor(net, tree)
    batch = person_batch("expose")
    full = predictor(batch)
    # The heads' dropout: random in training mode (two passes differ), off in eval mode (they agree).
    net.train()
    with torch.no_grad():
        assert not torch.allclose(predictor.predict(batch).vertices, predictor.predict(batch).vertices)
    net.eval()
    torch.testing.assert_close(predictor(batch).vertices, full.vertices, rtol=0, atol=0)
    for side in ("left", "right"):
        assert full.hand_boxes[side]["size"].gt(0).all()
    # Training mode returns what the losses need (per-stage vectors, part predictions, crops).
    net.train()
    with torch.no_grad():
        train = predictor.predict(batch)
    assert len(train.training["body_stages"]) == 3
    assert train.training["hand_crops"].shape == (4, 3, 224, 224)
    assert train.training["face_crops"].shape == (2, 3, 256, 256)
    hands, face, body = train.training["hands"], train.training["face"], train.training["body"]
    # The merge: fingers from the hand network (right as is, left mirrored back), jaw and the first
    # 10 expression coefficients from the face network, betas from the body.
    B = 2
    torch.testing.assert_close(train.rotations["right_hand_pose"], hands.rotations["right_hand_pose"][:B])
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))  # the mirror x -> -x: R -> F R F
    torch.testing.assert_close(train.rotations["left_hand_pose"], flip @ hands.rotations["right_hand_pose"][B:] @ flip)
    torch.testing.assert_close(train.rotations["jaw_pose"], face.rotations["jaw_pose"])
    for part in ("right_hand_pose", "left_hand_pose", "jaw_pose"):  # each replaced the body network's own
        assert not torch.allclose(train.rotations[part], body.rotations[part], atol=1e-3), part
    torch.testing.assert_close(train.expression, face.expression[:, :10])
    torch.testing.assert_close(train.betas, body.betas)
    # The left-hand crop is the mirror image of a crop sampled at the left hand's box.
    box = train.hand_boxes["left"]
    left = attention.sample_crop(batch.full_images, box["center"], box["size"], 224)
    torch.testing.assert_close(train.training["hand_crops"][B:], torch.flip(left, dims=(-1,)))


def test_own_checkpoint_round_trip(small_ckpts, tmp_path, standin_tree):
    net, _ = load_net(small_ckpts["face"])
    save_checkpoint(net, tmp_path / "mine.pth", step=12, epoch=3)
    obj = torch.load(tmp_path / "mine.pth", weights_only=True)
    assert obj["format"] == "expose-cli-checkpoint" and obj["step"] == 12 and obj["kind"] == "face"
    net2, report = load_net(tmp_path / "mine.pth")
    assert report.source_format == "expose-cli-checkpoint"
    batch = person_batch("face")
    with torch.no_grad():
        torch.testing.assert_close(net2(batch.img).camera, net(batch.img).camera)
    # a bare state_dict (no meta) loads too
    torch.save(net.state_dict(), tmp_path / "bare.pth")
    assert load_net(tmp_path / "bare.pth")[1].source_format == "state_dict"


def test_checkpoint_errors(small_ckpts, tmp_path):
    state = torch.load(small_ckpts["hand"], weights_only=True)
    del state["state_dict"]["head.regressor.module.output_layer.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ExposeError, match=r"broken.pth: checkpoint does not fit the hand model: 1 missing"):
        load_net(tmp_path / "broken.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ExposeError, match="junk.pth: not a PyTorch checkpoint"):
        load_net(tmp_path / "junk.pth")
    torch.save({"state_dict": {"foo.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ExposeError, match="cannot tell which ExPose model"):
        load_net(tmp_path / "other.pth")
    with pytest.raises(MissingFileError, match="expose.pth: checkpoint not found"):
        load_net("expose", DataTree(tmp_path))


def test_config_toml_and_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[body]\ndropout = 0.3\nhidden = [64, 64]\n[attention]\nhand_scale_factor = 2.5\n")
    cfg = load_config("expose", toml, ["face.num_stages=2", "body.activation=relu"])
    assert cfg.body.dropout == 0.3 and cfg.body.hidden == (64, 64) and cfg.attention.hand_scale_factor == 2.5
    assert cfg.face.num_stages == 2 and cfg.body.activation == "relu"
    assert preset("expose").attention.face_crop_size == 256 and preset("hand").hand.img_res == 224
    with pytest.raises(ExposeError, match="unknown config field body.nope"):
        load_config("body", overrides=["body.nope=1"])
    with pytest.raises(ExposeError, match="bad override"):
        load_config("body", overrides=["dropout"])
    assert small_config("expose").body.hrnet_width == 8
    assert math.isclose(preset("face").face.camera_mean_scale, 8.0)


def test_fused_inference_matches_plain_network(small_ckpts, standin_tree):
    from expose_cli.body_models import build_smplx
    from expose_cli.models import Predictor

    tree = DataTree(standin_tree)
    net, _ = load_net(small_ckpts["expose"])
    body = build_smplx(tree)
    j14 = Auxiliary(tree).smplx_to_j14()
    batch = person_batch("expose")
    fast = Predictor(net, body, j14, fuse=True)(batch)
    plain = Predictor(net, body, j14, fuse=False)(batch)
    torch.testing.assert_close(fast.vertices, plain.vertices, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast.camera, plain.camera, atol=1e-5, rtol=0)


def test_attention_keypoint_pass_matches_full_smplx(small_ckpts, standin_tree):
    """The sparse keypoint pass places the part crops exactly where a full SMPL-X pass would."""
    tree = DataTree(standin_tree)
    net, _ = load_net(small_ckpts["expose"])
    predictor = build_predictor(net, tree)
    assert predictor.keypoint_model is not None
    batch = person_batch("expose")
    sparse = predictor(batch)
    predictor.keypoint_model = None  # falls back to the full pass
    full = predictor(batch)
    for side in ("left", "right"):
        for key in ("center", "size"):
            torch.testing.assert_close(sparse.hand_boxes[side][key], full.hand_boxes[side][key], atol=1e-3, rtol=1e-5)  # pixels
    torch.testing.assert_close(sparse.face_box["center"], full.face_box["center"], atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(sparse.vertices, full.vertices, atol=1e-4, rtol=0)


def test_face_is_located_after_the_hand_merge(small_ckpts, standin_tree):
    """MMHuman3D crops the face with keypoints of the hand-merged body (pose blend shapes let the
    hands move face vertices slightly); a full SMPL-X pass on those parameters gives our face box."""
    from expose_cli.geometry.cameras import ndc_to_crop_pixels, weak_perspective_project

    tree = DataTree(standin_tree)
    net, _ = load_net(small_ckpts["expose"])
    predictor = build_predictor(net, tree)
    batch = person_batch("expose")
    net.train()
    with torch.no_grad():
        out = predictor.predict(batch)
    net.eval()
    body = out.training["body"]
    merged = {**body.rotations, "body_pose": out.rotations["body_pose"],
              "left_hand_pose": out.rotations["left_hand_pose"], "right_hand_pose": out.rotations["right_hand_pose"]}
    eye = torch.eye(3).expand(2, 1, 3, 3)
    with torch.no_grad():
        joints = predictor.body_model(**merged, leye_pose=eye, reye_pose=eye, betas=body.betas,
                                      expression=body.expression).joints
        before = predictor.body_model(**body.rotations, leye_pose=eye, reye_pose=eye, betas=body.betas,
                                      expression=body.expression).joints
    head = attention.head_keypoint_indices()
    res = batch.img.shape[-1]

    def face_box(kp):
        px = ndc_to_crop_pixels(weak_perspective_project(kp[:, head], body.camera), res)
        return attention.part_box_in_image(px, batch.crop_transform, batch.box_size, 2.0, res)

    center, size = face_box(joints)
    torch.testing.assert_close(out.face_box["center"], center, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(out.face_box["size"], size, atol=1e-3, rtol=1e-5)
    assert not torch.allclose(face_box(before)[0], center, atol=1e-3, rtol=0)  # the merge does matter here


def test_fused_backbone_follows_weight_changes(small_ckpts, standin_tree):
    tree = DataTree(standin_tree)
    net, _ = load_net(small_ckpts["body"])
    predictor = build_predictor(net, tree)
    img = person_batch("body").img
    with torch.inference_mode():
        before = predictor._features("backbone", img)
    with torch.no_grad():
        for p in net.backbone.parameters():
            p.mul_(1.05)  # an in-place change, as an optimiser step makes
        plain = net.backbone(img)
    with torch.inference_mode():
        after = predictor._features("backbone", img)
    torch.testing.assert_close(after, plain, atol=1e-4, rtol=1e-4)
    assert (after - before).abs().max() > 100 * (after - plain).abs().max()


def test_predictor_runs_the_packed_backbone_on_cpu_without_gradients(small_ckpts, standin_tree):
    net, _ = load_net(small_ckpts["body"])
    predictor = build_predictor(net, DataTree(standin_tree))
    img = person_batch("body").img
    plain = net.backbone(img).detach()
    with torch.inference_mode():
        fast = predictor._features("backbone", img)
    assert "backbone" in predictor._packed
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    predictor._packed.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():
        predictor._features("backbone", img)
    with torch.enable_grad():
        predictor._features("backbone", img.clone().requires_grad_())
    assert predictor._packed == {}  # packed convolutions have no bf16 autocast rule and no backward


def test_train_mode_keeps_batchnorm_statistics_and_freezes_the_full_models_body(small_ckpts, standin_tree):
    tree = DataTree(standin_tree)
    for kind in ("hand", "face", "expose"):
        net, _ = load_net(small_ckpts[kind])
        predictor = build_predictor(net, tree)
        stats = {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}
        net.train()
        out = predictor.predict(person_batch(kind))
        # MMHuman3D's backbones run with norm_eval=True: training never moves BatchNorm statistics.
        for key, value in net.state_dict().items():
            if "running_" in key:
                torch.testing.assert_close(value, stats[key], rtol=0, atol=0)
        stage_key = {"hand": "hand_stages", "face": "face_stages", "expose": "body_stages"}[kind]
        assert len(out.training[stage_key]) == 3
        assert any(m.training for m in net.modules() if isinstance(m, torch.nn.Dropout))
        if kind == "expose":
            # frozen_batchnorm=True: the body network gets no gradient, the part networks do.
            assert not any(p.requires_grad for p in net.backbone.parameters())
            assert not any(p.requires_grad for p in net.head.parameters())
            out.vertices.sum().backward()
            assert net.hand_backbone.conv1.weight.grad is not None
            assert net.face_head.regressor.module.output_layer.weight.grad is not None
            # the starting vector is a buffer (as in MMHuman3D), not a parameter: training never moves it
            assert "regressor.mean_param" in dict(net.face_head.named_buffers())
            assert "regressor.mean_param" not in dict(net.face_head.named_parameters())
        else:
            out.vertices.sum().backward()
            assert net.backbone.conv1.weight.grad is not None


def test_config_values_are_typed(tmp_path):
    cfg = load_config("expose", overrides=["attention.condition_hand_wrist_pose=false", "body.num_stages=2",
                                           "hand.hidden=[16, 16]", "attention.hand_scale_factor=2"])
    assert cfg.attention.condition_hand_wrist_pose is False and cfg.body.num_stages == 2
    assert cfg.hand.hidden == (16, 16) and cfg.attention.hand_scale_factor == 2.0
    for bad, message in (("body.num_stages=2.5", "must be an integer"), ("body.hidden=32", "must be a list"),
                         ("attention.condition_face_jaw_pose=maybe", "must be true or false"),
                         ("body.dropout=high", "must be a number")):
        with pytest.raises(ExposeError, match=message):
            load_config("expose", overrides=[bad])
    toml = tmp_path / "bad.toml"
    toml.write_text('[attention]\ncondition_face_expression = "false"\nface_crop_size = "big"\n')
    with pytest.raises(ExposeError, match=r"bad.toml: attention.face_crop_size must be an integer"):
        load_config("expose", toml)


def test_load_with_overrides_prefix_and_version(small_ckpts, tmp_path, standin_tree):
    path = small_ckpts["expose"]
    net, _ = load_net(path, overrides=["attention.hand_scale_factor=2.0", "attention.condition_face_jaw_pose=false"])
    assert net.cfg.attention.hand_scale_factor == 2.0 and net.cfg.attention.condition_face_jaw_pose is False
    with pytest.raises(ExposeError, match="does not fit the expose model"):
        load_net(path, overrides=["body.hidden=[48, 48]"])  # widths must still fit the weights
    # A DataParallel state_dict ("module." on every key) is recognised and loads.
    state = torch.load(small_ckpts["hand"], weights_only=True)["state_dict"]
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "dp.pth")
    assert load_net(tmp_path / "dp.pth")[0].kind == "hand"
    # Our own format from a newer expose is refused with a clear line.
    hand, _ = load_net(small_ckpts["hand"])
    save_checkpoint(hand, tmp_path / "mine.pth")
    obj = torch.load(tmp_path / "mine.pth", weights_only=True)
    obj["version"] = 99
    torch.save(obj, tmp_path / "future.pth")
    with pytest.raises(ExposeError, match="format version 99 is newer"):
        load_net(tmp_path / "future.pth")
    lines = []
    from expose_cli.models import load_model

    load_model(path, DataTree(standin_tree), report=lines.append)
    # MMHuman3D's body-model buffers and unused layers are skipped as expected: not reported
    assert len(lines) == 1 and "loaded" in lines[0] and "skipped" not in lines[0] and "layer_000" not in lines[0]


def test_new_network_starts_from_the_mean_files(standin_tree):
    from expose_cli.models.checkpoint import new_net

    tree = DataTree(standin_tree)
    aux = Auxiliary(tree)
    net = new_net(small_config("expose"), tree)
    mean = net.head.regressor.mean_param.reshape(-1)
    np.testing.assert_allclose(mean[6:132], aux.mean_rot6d("body_pose", 21).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(mean[318:328], aux.shape_mean()[:10], rtol=1e-6)
    hand_mean = net.hand_head.regressor.mean_param.reshape(-1)
    np.testing.assert_allclose(hand_mean[6:96], aux.mean_rot6d("right_hand_pose", 15).reshape(-1), rtol=1e-6)


def test_hand_keypoints_use_freihands_fingertip_vertices(small_ckpts, standin_tree):
    net, _ = load_net(small_ckpts["hand"])
    pred = build_predictor(net, DataTree(standin_tree))(person_batch("hand"))
    # FreiHAND's toolkit (utils/mano_utils.py, kpId2vertices) and MMHuman3D's MANO layer:
    # thumb 744, index 320, middle 443, ring 555, pinky 672.
    torch.testing.assert_close(pred.joints[:, 16:], pred.vertices[:, [744, 320, 443, 555, 672]])


def test_crop_grid_matches_mmhuman3ds_crop_sampler():
    # MMHuman3D's CropSampler: grid = (S_norm @ T) applied to [t_x, t_y] with T the box transform.
    rng = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 97, 131, generator=rng)
    center = torch.tensor([[60.3, 41.7], [10.0, 90.5]])
    size = torch.tensor([47.9, 80.25])
    crop = 17
    t = torch.arange(crop, dtype=torch.float32) / (crop - 1)
    H, W = img.shape[-2:]
    T = torch.eye(3).repeat(2, 1, 1)
    T[:, 0, 0], T[:, 1, 1] = size, size
    T[:, 0, 2], T[:, 1, 2] = center[:, 0] - size * 0.5, center[:, 1] - size * 0.5
    S = torch.eye(3).repeat(2, 1, 1)
    S[:, 0, 0], S[:, 1, 1], S[:, :2, 2] = 2.0 / (W - 1), 2.0 / (H - 1), -1
    full = torch.bmm(S, T)
    gy, gx = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([gy.flatten(), gx.flatten()], 1)[None].expand(2, -1, -1)
    grid = (torch.bmm(full[:, :2, :2], pts.transpose(1, 2)) + full[:, :2, [2]]).transpose(1, 2)
    grid = grid.reshape(2, crop, crop, 2).transpose(1, 2)
    expected = torch.nn.functional.grid_sample(img, grid, align_corners=True)
    torch.testing.assert_close(attention.sample_crop(img, center, size, crop), expected, atol=1e-6, rtol=0)


def test_cli_model_config_options_reach_the_model(small_ckpts, standin_tree, tmp_path, run_cli):
    import cv2

    img = tmp_path / "p.jpg"
    cv2.imwrite(str(img), np.full((120, 80, 3), 128, np.uint8))
    ckpt = small_ckpts["hand"]
    bad = run_cli("--data-dir", standin_tree, "--set", "hand.nope=1", "infer", img, "--ckpt", ckpt,
                  "--out", tmp_path / "o", "--detector", "full-image")
    assert bad.exit_code != 0 and "unknown config field hand.nope" in bad.stderr
    toml = tmp_path / "m.toml"
    toml.write_text("[hand]\nhidden = [8, 8]\n")
    misfit = run_cli("--data-dir", standin_tree, "--model-config", toml, "infer", img, "--ckpt", ckpt,
                     "--out", tmp_path / "o", "--detector", "full-image")
    assert misfit.exit_code != 0 and "does not fit the hand model" in misfit.stderr
    ok = run_cli("--data-dir", standin_tree, "--set", "hand.dropout=0.1", "infer", img, "--ckpt", ckpt,
                 "--out", tmp_path / "o", "--detector", "full-image")
    assert ok.exit_code == 0, ok.stderr
    assert "loaded hand model" in ok.stderr and "skipped" not in ok.stderr
