"""Where training starts: ImageNet files in the published key layouts, and the full model's parts."""

from __future__ import annotations

import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.models.backbones.hrnet import HRNetExpose
from expose_cli.models.backbones.resnet import ResNet18
from expose_cli.training import pretrained as P


def _random_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
            for k, v in module.state_dict().items()}


def test_resnet18_has_torchvisions_keys_and_converts(tmp_path):
    # torchvision's resnet18 state dict: 122 tensors (stem 6, 8 blocks x 12, 3 downsamples x 6, fc 2).
    own = ResNet18(64).state_dict()
    assert len(own) == 122 - 2
    for key in ("layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.running_var", "bn1.num_batches_tracked"):
        assert key in own
    published = {**_random_state(ResNet18(64), 1), "fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    tree = DataTree(tmp_path)
    src = tree.pretrained_models / "imagenet" / "resnet18-f37072fd.pth"
    src.parent.mkdir(parents=True)
    torch.save(published, src)
    from expose_cli.assets.imagenet import convert_imagenet_file

    assert convert_imagenet_file(src, "resnet18", tree.pretrained_models / "resnet18.pth") == 120
    converted = torch.load(tree.pretrained_models / "resnet18.pth", weights_only=True)
    assert set(converted) == set(own) and torch.equal(converted["layer3.1.conv2.weight"], published["layer3.1.conv2.weight"])
    backbone = ResNet18(64)
    assert P.init_backbone_from_imagenet(backbone, tree.pretrained_models / "resnet18.pth") == (120, 120)
    assert torch.equal(backbone.conv1.weight, published["conv1.weight"])


def test_hrnet_in_timms_layout_fills_the_shared_layers_only():
    backbone = HRNetExpose(8, 64)
    own = backbone.state_dict()
    # Names of timm's HighResolutionNet that ExPose's backbone shares.
    for key in ("stage2.0.fuse_layers.0.1.0.weight", "stage3.3.fuse_layers.2.0.1.1.weight", "transition2.2.0.0.weight",
                "stage3.3.branches.2.3.conv2.weight", "layer1.0.downsample.0.weight", "transition3.3.0.0.weight"):
        assert key in own, key
    timm_only = {"incre_modules.0.0.conv1.weight": torch.randn(32, 8, 1, 1), "downsamp_modules.0.0.weight": torch.randn(1),
                 "final_layer.0.weight": torch.randn(1), "classifier.weight": torch.randn(1000, 2048),
                 "stage4.0.branches.0.0.conv1.weight": torch.randn(8, 8, 3, 3)}
    shared = {k: v for k, v in _random_state(backbone, 2).items() if not k.startswith(("subsample_", "conv_layers."))}
    converted = P.convert_backbone({**shared, **timm_only}, backbone)
    assert set(converted) == set(shared)  # classifier and unused stages dropped; ExPose's new layers absent
    bad = dict(shared)
    bad["conv1.weight"] = torch.randn(3, 3, 3, 3)
    with pytest.raises(ExposeError, match="do not fit"):
        P.convert_backbone(bad, backbone)
    with pytest.raises(ExposeError, match="not a torchvision"):
        P.convert_backbone({"something.else": torch.zeros(1)}, backbone)


def test_full_model_starts_from_the_three_part_checkpoints(tmp_path):
    from expose_cli.models.config import small_config
    from expose_cli.models.network import ExPoseNet
    from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint

    tree = DataTree(tmp_path)
    sources = {}
    for part, name, _ in P.PART_SOURCES:
        kind = {"body": "body", "hand": "hand", "face": "face"}[part]
        sources[part] = write_mmhuman3d_checkpoint(tree.pretrained_models / name, kind, seed=7, small=True)
    net = ExPoseNet(small_config("expose"))
    line = P.initialise(net, "expose", "auto", tree)
    assert "part checkpoints" in line
    torch.testing.assert_close(net.backbone.conv1.weight, sources["body"].backbone.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(net.hand_head.regressor.module.output_layer.weight,
                               sources["hand"].head.regressor.module.output_layer.weight, rtol=0, atol=0)
    torch.testing.assert_close(net.face_backbone.layer4[1].conv2.weight, sources["face"].backbone.layer4[1].conv2.weight,
                               rtol=0, atol=0)
    (tree.pretrained_models / "resnet18_hmr_expose_face.pth").unlink()
    with pytest.raises(ExposeError, match="face checkpoint not found"):
        P.init_full_from_parts(net, {p: tree.pretrained_models / n for p, n, _ in P.PART_SOURCES})
