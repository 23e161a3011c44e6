"""`expose fetch pretrained`: the public ImageNet files (generated stand-ins of the same key layouts,
served on 127.0.0.1) verified, converted to our backbones' key names, and written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json

import pytest
import torch

from expose_cli.assets import imagenet
from expose_cli.assets.manifest import IMAGENET, RESNET18_SHA256, default_manifest, select
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.io.safetensors import write_safetensors
from expose_cli.models.backbones.hrnet import HRNetExpose
from expose_cli.models.backbones.resnet import ResNet18
from expose_cli.testing.imagenet import (
    parameter_count,
    random_state,
    timm_hrnet_layout,
    torchvision_resnet18_layout,
)
from expose_cli.training.pretrained import init_backbone_from_imagenet
from tests.http_server import FileServer

TINY_HRNET = dict(width=4, blocks=2, stage3_modules=2)  # timm layout <-> HRNetExpose(4, 16, 2, 2)
TIMM_HEAD = ("stage4.", "incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


def tiny_backbone(kind: str):
    return HRNetExpose(width=4, out_channels=16, stage3_modules=2, num_blocks=2) if kind == "hrnet" else ResNet18(width=8)


@pytest.fixture
def server():
    srv = FileServer()
    srv.base = srv.start()
    yield srv
    srv.stop()


def test_layouts_carry_the_published_parameter_counts():
    # HRNetV2-W48-C: 77,469,864 parameters (HRNet-Image-Classification, imgclsmob's table; timm's
    # model card: 77.5 M); torchvision's ResNet-18: 11,689,512, saved as 102 tensors.
    assert parameter_count(timm_hrnet_layout(48)) == 77_469_864
    resnet = torchvision_resnet18_layout()
    assert parameter_count(resnet) == 11_689_512 and len(resnet) == 102


def test_full_size_layouts_fill_our_backbones():
    """At full size (meta tensors, no memory): every timm HRNet-W48 tensor outside its stage 4 and
    classification head lands under the same name in ExPose's HRNet, and only ExPose's own layers
    stay unfilled; torchvision's ResNet-18 fills ours entirely, ``fc`` dropped."""
    layout = timm_hrnet_layout(48)
    converted = imagenet.convert_state({k: torch.empty(s, device="meta") for k, s in layout.items()}, "hrnet")
    assert set(converted) == {k for k in layout if not k.startswith(TIMM_HEAD)}
    assert converted["transition3.3.0.0.weight"].shape == (384, 192, 3, 3)
    assert converted["stage3.3.fuse_layers.2.0.1.0.weight"].shape == (192, 48, 3, 3)
    assert converted["stage2.0.fuse_layers.0.1.0.weight"].shape == (48, 96, 1, 1)
    ours = set(imagenet.imagenet_backbone("hrnet").state_dict())
    assert {k.split(".")[0] for k in ours - set(converted)} == {"subsample_2", "subsample_3", "conv_layers"}
    layout = torchvision_resnet18_layout()
    converted = imagenet.convert_state({k: torch.empty(s, device="meta") for k, s in layout.items()}, "resnet18")
    assert len(converted) == 100 and "fc.weight" not in converted
    assert converted["layer4.0.downsample.0.weight"].shape == (512, 256, 1, 1)


def _serve_stand_ins(server, tmp_path):
    """Serve a tiny timm-layout HRNet (.safetensors) and a torchvision-layout ResNet-18 (.pth) at the
    real URLs' paths; return (hrnet state, resnet state, the assets with the stand-in's checksum)."""
    hr_state = random_state(timm_hrnet_layout(**TINY_HRNET), seed=1)
    rn_state = random_state(torchvision_resnet18_layout(8), seed=2)
    by = {a.name: a for a in IMAGENET}
    server.files[by["hrnet_w48_imagenet"].url_path] = write_safetensors(tmp_path / "hr.safetensors", hr_state).read_bytes()
    buf = io.BytesIO()
    torch.save(rn_state, buf)
    server.files[by["resnet18_imagenet"].url_path] = buf.getvalue()
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    assets = [by["hrnet_w48_imagenet"], dataclasses.replace(by["resnet18_imagenet"], sha256=digest, sha256_prefix=digest[:8])]
    return hr_state, rn_state, assets


def test_fetch_pretrained_converts_both_files(server, tmp_path, run_cli, monkeypatch):
    import expose_cli.cli.fetch as fetch_cli

    hr_state, rn_state, assets = _serve_stand_ins(server, tmp_path)
    monkeypatch.setattr(fetch_cli, "default_manifest", lambda: assets)
    monkeypatch.setattr(imagenet, "imagenet_backbone", tiny_backbone)
    data = tmp_path / "data"
    res = run_cli("--data-dir", data, "fetch", "pretrained", "--mirror", server.base)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "hrnet_pretrain.pth: " in said and "resnet18.pth: 100 tensors converted" in said

    hr = torch.load(data / "pretrained_models" / "hrnet_pretrain.pth", weights_only=True)
    for key in ("conv2.weight", "layer1.0.downsample.1.running_var", "transition1.1.0.0.weight",
                "stage2.0.fuse_layers.1.0.0.1.bias", "stage3.1.branches.2.1.conv2.weight",
                "stage3.1.fuse_layers.0.2.1.running_mean", "transition3.3.0.0.weight",
                "stage3.0.branches.0.0.bn1.num_batches_tracked"):
        assert torch.equal(hr[key], hr_state[key]), key
    assert hr["transition3.3.0.0.weight"].shape == (32, 16, 3, 3)  # width 4: branch 3 made from branch 2
    assert hr["stage2.0.fuse_layers.1.0.0.0.weight"].shape == (8, 4, 3, 3)
    assert not [k for k in hr if k.startswith(TIMM_HEAD)]
    net = tiny_backbone("hrnet")
    own = net.subsample_3[0].weight.detach().clone()
    loaded, _ = init_backbone_from_imagenet(net, data / "pretrained_models" / "hrnet_pretrain.pth")
    assert loaded == len(hr)
    assert torch.equal(net.stage3[1].fuse_layers[0][2][1].running_mean, hr_state["stage3.1.fuse_layers.0.2.1.running_mean"])
    assert torch.equal(net.transition2[2][0][0].weight, hr_state["transition2.2.0.0.weight"])
    assert torch.equal(net.subsample_3[0].weight, own)  # ExPose's own layer: as built

    rn = torch.load(data / "pretrained_models" / "resnet18.pth", weights_only=True)
    assert "fc.weight" not in rn and "fc.bias" not in rn and len(rn) == 100
    assert rn["layer3.0.downsample.0.weight"].shape == (32, 16, 1, 1)
    net = ResNet18(width=8)
    init_backbone_from_imagenet(net, data / "pretrained_models" / "resnet18.pth")
    assert torch.equal(net.layer4[1].bn2.running_var, rn_state["layer4.1.bn2.running_var"])
    assert torch.equal(net.layer2[0].downsample[0].weight, rn_state["layer2.0.downsample.0.weight"])
    assert torch.equal(net.conv1.weight, rn_state["conv1.weight"])

    lock = json.loads(DataTree(data).download_lock.read_text())
    assert "pretrained_models/imagenet/hrnet_w48.ms_in1k.safetensors" in lock  # trusted on first use
    assert lock["pretrained_models/resnet18.pth"]["url"].startswith("converted from pretrained_models/imagenet/resnet18-")

    again = run_cli("--data-dir", data, "fetch", "pretrained", "--mirror", server.base)
    assert again.exit_code == 0 and " ".join(again.stderr.split()).count("up to date") == 2
    assert all(server.count(a.url_path) == 1 for a in assets)
    (data / "pretrained_models" / "resnet18.pth").write_bytes(b"the user's own file")
    kept = run_cli("--data-dir", data, "fetch", "resnet18_imagenet", "--mirror", server.base)
    assert "kept the file already there" in " ".join(kept.stderr.split())
    assert (data / "pretrained_models" / "resnet18.pth").read_bytes() == b"the user's own file"


def test_checksum_mismatch_installs_nothing(server, tmp_path, run_cli):
    """The real manifest: a file at torchvision's URL that is not the published ResNet-18 is refused
    with one line, kept as .corrupt, and nothing is converted."""
    _serve_stand_ins(server, tmp_path)
    data = tmp_path / "data"
    res = run_cli("--data-dir", data, "fetch", "resnet18_imagenet", "--mirror", server.base, "--retries", "0")
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checksum mismatch" in errors[0], res.stderr
    pm = data / "pretrained_models"
    assert not (pm / "resnet18.pth").exists() and not (pm / "imagenet" / "resnet18-f37072fd.pth").exists()
    assert (pm / "imagenet" / "resnet18-f37072fd.pth.corrupt").exists()


def test_full_published_sha256_is_checked(server, tmp_path):
    """An asset whose only checksum is the full published sha256 (no prefix in its name)."""
    from expose_cli.assets.download import DownloadOptions, LockFile, download_asset, file_status

    _, _, assets = _serve_stand_ins(server, tmp_path)
    tree = DataTree(tmp_path / "data")
    asset = dataclasses.replace(assets[1], sha256_prefix=None, sha256="ab" * 32)
    opts = DownloadOptions(mirror=server.base, retries=0, backoff=0.0)
    r = download_asset(asset, tree, LockFile(tree), opts)
    assert r.status == "failed" and "is not the published abababab..." in r.message
    good = dataclasses.replace(asset, sha256=assets[1].sha256)
    assert download_asset(good, tree, LockFile(tree), opts).status == "downloaded"
    raw = good.paths(tree)[0]
    raw.write_bytes(raw.read_bytes()[:-1] + b"x")  # damaged on disk later: caught on a rehash
    assert file_status(good, tree, LockFile(tree), rehash=True)[0] == "corrupt"


def test_a_file_of_another_layout_is_refused_writing_nothing(tmp_path):
    out = tmp_path / "hrnet_pretrain.pth"
    wide = write_safetensors(tmp_path / "w8.safetensors", random_state(timm_hrnet_layout(8, blocks=2, stage3_modules=2)))
    with pytest.raises(ExposeError, match="do not fit the backbone") as info:
        imagenet.convert_imagenet_file(wide, "hrnet", out, tiny_backbone("hrnet"))
    assert info.value.path == wide and not out.exists()
    layout = {k: s for k, s in torchvision_resnet18_layout(8).items() if not k.startswith("layer4.1.")}
    cut = tmp_path / "cut.pth"
    torch.save(random_state(layout), cut)
    with pytest.raises(ExposeError, match=r"10 of the backbone's 100 ImageNet tensors are not in the file \(e.g. layer4.1."):
        imagenet.convert_imagenet_file(cut, "resnet18", tmp_path / "resnet18.pth", tiny_backbone("resnet18"))
    assert not (tmp_path / "resnet18.pth").exists()


def test_manifest_pretrained_group():
    manifest = default_manifest()
    assert [a.name for a in select(manifest, ["pretrained"])] == ["resnet18_imagenet", "hrnet_w48_imagenet"]
    assert not {"resnet18_imagenet", "hrnet_w48_imagenet"} & {a.name for a in select(manifest, ["all"])}
    by = {a.name: a for a in manifest}
    assert by["resnet18_imagenet"].url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert RESNET18_SHA256.startswith("f37072fd") and len(RESNET18_SHA256) == 64
    assert by["hrnet_w48_imagenet"].url == "https://huggingface.co/timm/hrnet_w48.ms_in1k/resolve/main/model.safetensors"
    assert by["hrnet_w48_imagenet"].sha256 is None  # no published checksum found: trusted on first use
    tree = DataTree("/d")
    assert by["hrnet_pretrain"].paths(tree) == [tree.pretrained_models / "hrnet_pretrain.pth"]
    assert not by["hrnet_pretrain"].downloadable and "expose fetch pretrained" in by["hrnet_pretrain"].install
