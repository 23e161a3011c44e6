"""The kinds table (expose_cli/kinds.py) and the training recipes keyed by it give the seed's values
that were spelt out per kind before: the expectations below are those values, written by hand."""

from __future__ import annotations

import pytest

from expose_cli.kinds import KINDS, part_modules
from expose_cli.models.config import preset, small_config
from expose_cli.training.config import LossConfig, loss_preset, run_preset
from expose_cli.training.data_config import data_preset

SEED = {  # kind: convention, batch size, validation set, its primary metric, crop side (px)
    "body": ("smplx", 48, "3dpw", "PA-MPJPE", 256),
    "hand": ("mano", 64, "freihand", "PA-MPJPE", 224),
    "face": ("flame_73", 64, "stirling", "3DRMSE", 256),
    "expose": ("smplx", 48, "ehf", "PA-PVE", 256),
}


def test_the_kinds_and_their_recipes_are_the_seeds():
    from expose_cli.training.validation import PRIMARY

    assert tuple(KINDS) == ("body", "hand", "face", "expose")
    for kind, (convention, batch, val_set, metric, res) in SEED.items():
        cfg = run_preset(kind)
        assert KINDS[kind].convention == convention
        assert (cfg.train.batch_size, cfg.train.val_set, PRIMARY[val_set]) == (batch, val_set, metric)
        assert cfg.train.find_unused_parameters == (kind == "body")
        assert cfg.data.img_res == cfg.model.img_res == preset(kind).img_res == res
    assert PRIMARY["heldout"] == "PA-MPJPE" and len(PRIMARY) == 5
    off = dict(keypoints3d=0.0, body_pose=0.0, betas=0.0)
    assert loss_preset("hand") == LossConfig(**off, jaw_pose=0.0, expression=0.0)
    assert loss_preset("face") == LossConfig(**off, hand_pose=0.0)
    assert loss_preset("expose") == LossConfig(hand_crop=1.0, face_crop=1.0) and loss_preset("body") == LossConfig()
    assert data_preset("hand").members == ("freihand",) and data_preset("face").members == ("ffhq",)
    with pytest.raises(ValueError, match="expected one of body, hand, face, expose"):
        data_preset("toes")


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_gets_one_optimiser_per_trainable_module_group(kind):
    """The part models optimise backbone and head; the full model (body frozen) its four part modules."""
    from expose_cli.models.network import ExPoseNet
    from expose_cli.training.loop import build_optimizers

    cfg = run_preset(kind, small=True)
    net = ExPoseNet(small_config(kind))
    groups = list(build_optimizers(net, cfg))
    expected = ["hand_backbone", "hand_head", "face_backbone", "face_head"] if kind == "expose" else ["backbone", "head"]
    assert groups == expected
    for name in groups:
        trainable = sum(p.numel() for p in getattr(net, name).parameters() if p.requires_grad)
        assert trainable > 0


def test_published_checkpoints_and_the_full_models_part_sources():
    """MMHuman3D's file names; the full model starts from the three part checkpoints, body first."""
    from expose_cli.io.paths import CHECKPOINT_FILES
    from expose_cli.training.pretrained import PART_SOURCES

    assert CHECKPOINT_FILES == {"body": "hrnet_hmr_expose_body.pth", "face": "resnet18_hmr_expose_face.pth",
                                "hand": "resnet18_hmr_expose_hand.pth", "expose": "expose.pth"}
    assert PART_SOURCES == (("body", "hrnet_hmr_expose_body.pth", ("backbone", "head")),
                            ("hand", "resnet18_hmr_expose_hand.pth", ("hand_backbone", "hand_head")),
                            ("face", "resnet18_hmr_expose_face.pth", ("face_backbone", "face_head")))


def test_the_full_models_part_widths_are_read_back_from_its_modules():
    """A full model whose hand and face networks differ in width: reading its state dict back finds
    each part's widths in that part's modules (not the other's)."""
    from expose_cli.models.checkpoint import infer_config
    from expose_cli.models.network import ExPoseNet

    cfg = small_config("expose")
    cfg.hand.resnet_width, cfg.hand.hidden = 8, (24,)
    cfg.face.resnet_width, cfg.face.hidden = 16, (40, 40)
    back = infer_config(ExPoseNet(cfg).state_dict(), "expose")
    assert (back.hand.resnet_width, back.hand.hidden, back.face.resnet_width, back.face.hidden) == (8, (24,), 16, (40, 40))


PARTS = {  # kind: (part, backbone module, head module) in the order the full model runs them, by hand
    "body": (("body", "backbone", "head"),),
    "hand": (("hand", "backbone", "head"),),
    "face": (("face", "backbone", "head"),),
    "expose": (("body", "backbone", "head"), ("hand", "hand_backbone", "hand_head"),
               ("face", "face_backbone", "face_head")),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_kinds_parts_are_the_modules_its_network_and_checkpoint_hold(kind):
    """The parts table names the modules the network builds, which are its checkpoint's key
    prefixes; only the full model keeps the whole image (it crops hands and face from it)."""
    from expose_cli.models.network import ExPoseNet

    assert [(p, *m) for p, m in part_modules(kind).items()] == list(PARTS[kind])
    net = ExPoseNet(small_config(kind))
    modules = {m for _, bb, hd in PARTS[kind] for m in (bb, hd)}
    assert {name for name, _ in net.named_children()} == modules
    assert {key.split(".")[0] for key in net.state_dict()} == modules
    assert KINDS[kind].keeps_full_image == (kind == "expose")
    sides = {"body": 256, "hand": 224, "face": 256}  # px: the seed's crops (the full model's parts: its attention's)
    assert preset(kind).crop_sides() == {part: sides[part] for part, _, _ in PARTS[kind]}


def test_the_joints_a_kind_trains_on():
    """Body (and full) model: SMPL-X pelvis .. elbows; hand: all 21 MANO joints; face: the 68
    landmarks after FLAME-73's head, neck, jaw and eyes."""
    from expose_cli.training.datasets import _core_joints

    body = _core_joints("body")
    assert body == _core_joints("expose") and len(body) == 20
    assert (body[0], body[-2], body[-1]) == ("pelvis", "left_elbow", "right_elbow")
    hand = _core_joints("hand")
    assert len(hand) == 21 and hand[0] == "right_wrist"
    face = _core_joints("face")
    assert len(face) == 68 and face[0] == "right_eye_brow1"


def test_the_body_model_file_each_kind_checks_before_training(tmp_path):
    """SMPL-X neutral for the body and full model, MANO right for the hand, FLAME neutral for the face."""
    from expose_cli.io.paths import DataTree
    from expose_cli.training.run import body_model_files

    names = {kind: body_model_files(kind, DataTree(tmp_path))[0][0].name for kind in KINDS}
    assert names == {"body": "SMPLX_NEUTRAL.npz", "hand": "MANO_RIGHT.npz", "face": "FLAME_NEUTRAL.npz",
                     "expose": "SMPLX_NEUTRAL.npz"}
