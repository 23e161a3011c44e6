"""The kinds table (expose_cli/kinds.py) and the training recipes keyed by it give the seed's values
that were spelt out per kind before: the expectations below are those values, written by hand."""

from __future__ import annotations

import pytest

from expose_cli.kinds import KINDS
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
