"""Every asset the seed (MMHuman3D's ExPose README) names: where it comes from, where it goes.

Downloadable assets carry their URL exactly as the seed gives it, their destinations in the data
tree, and, where the file name has one, the sha256 prefix it carries (``expose-d9d5dbf7_...``).
Assets that cannot be downloaded (licensed models, datasets) name their website and the `expose`
command that installs them once the user has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from expose_cli.io.paths import DataTree

OSS = "https://openmmlab-share.oss-cn-hangzhou.aliyuncs.com/mmhuman3d"


@dataclass(frozen=True)
class Asset:
    """One asset of the manifest.

    ``destinations`` are functions of the data tree (first one is primary); ``url`` is ``None`` for
    assets that must be obtained by hand (then ``website`` and ``install`` say how).
    """

    name: str
    kind: str  # checkpoint | auxiliary | annotation | log | body-model | dataset | pretrained | imagenet
    description: str
    url: str | None = None
    destinations: tuple = field(default=())  # callables DataTree -> Path
    sha256_prefix: str | None = None
    website: str | None = None
    install: str | None = None
    sha256: str | None = None  # the full sha256 its publisher gives (or we found published), if any

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    def paths(self, tree: DataTree) -> list[Path]:
        return [dest(tree) for dest in self.destinations]

    @property
    def url_path(self) -> str:
        """The path part of the URL (kept when a mirror replaces the origin)."""
        return urlsplit(self.url).path if self.url else ""


def sha256_prefix_of(url: str) -> str | None:
    """The 8-hex-digit sha256 prefix in a file name like ``expose-d9d5dbf7_20220708.pth``."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    m = re.search(r"-([0-9a-f]{8})_\d{8}\.pth$", name)
    return m.group(1) if m else None


def _download(name, kind, description, url, *destinations) -> Asset:
    return Asset(name, kind, description, url, tuple(destinations), sha256_prefix_of(url))


_V = "?versionId="

#: The seed's downloadable files (checkpoints, auxiliary files, annotations, training logs), in the
#: order the seed lists them.
DOWNLOADS = (
    _download("hrnet_hmr_expose_body", "checkpoint", "body model (HRNet-W48), 3DPW 92.59 / 60.43",
              f"{OSS}/models/expose/body/hrnet_hmr_expose_body-d7db2e53_20220708.pth{_V}CAEQRBiBgMDFt6zujhgiIDMxODBkODE4ZTI5NjQ1OTRiN2I0MDM4NWMwOTA1NTFm",
              lambda t: t.checkpoint("body")),
    _download("resnet18_hmr_expose_face", "checkpoint", "face model (ResNet-18), Stirling 2.40",
              f"{OSS}/models/expose/face/resnet18_hmr_expose_face-aca68aad_20220708.pth{_V}CAEQRBiBgMCbvbbujhgiIGMxY2RlMjUyMGY4MjRmMDhiM2VkM2VhNWU4Y2ZjODZi",
              lambda t: t.checkpoint("face")),
    _download("resnet18_hmr_expose_hand", "checkpoint", "hand model (ResNet-18), FreiHAND 10.03 / 9.61",
              f"{OSS}/models/expose/hand/resnet18_hmr_expose_hand-c6cf0236_20220708.pth{_V}CAEQRBiBgIDvqbbujhgiIGFiZTI3YmFkOTMyMTQxZWNiYjQxYzU0NjM0N2U1ZGVh",
              lambda t: t.checkpoint("hand")),
    _download("expose", "checkpoint", "full ExPose model, EHF",
              f"{OSS}/models/expose/expose/expose-d9d5dbf7_20220708.pth{_V}CAEQRBiBgMC8vbbujhgiIDg0NWUyM2ZiZGY3MzQ0YmI5YjFjYTA0Y2Q5NDE3MDEw",
              lambda t: t.checkpoint("expose")),
    _download("all_means", "auxiliary", "mean SMPL-X pose parameters (both places the configs read)",
              f"{OSS}/data/body_models/smplx/all_means.pkl{_V}CAEQRBiBgIChyabujhgiIDQwNDMzNzlmM2U4ZTQzNWY5NjUxMmU4ZGQ4NGMwNmIx",
              lambda t: t.all_means, lambda t: t.all_means_root_copy),
    _download("J_regressor_h36m", "auxiliary", "SMPL -> H3.6M joints (3DPW evaluation)",
              f"{OSS}/models/J_regressor_h36m.npy{_V}CAEQHhiBgIDE6c3V6xciIDdjYzE3MzQ4MmU4MzQyNmRiZDA5YTg2YTI5YWFkNjRi",
              lambda t: t.j_regressor_h36m),
    _download("MANO_SMPLX_vertex_ids", "auxiliary", "SMPL-X vertex ids of each hand",
              f"{OSS}/data/body_models/smplx/MANO_SMPLX_vertex_ids.pkl{_V}CAEQRBiBgIDjx9v4jhgiIDJjZjhiMWI1ZGRmMTRmMTI5MDVkMzJkMWUyYTQxZDk2",
              lambda t: t.mano_smplx_vertex_ids),
    _download("shape_mean", "auxiliary", "mean SMPL-X betas",
              f"{OSS}/data/body_models/smplx/shape_mean.npy{_V}CAEQRBiBgIDqwKbujhgiIGM4OTIxMWM3MDNiNzQxN2RiOTRjNDIwZTNiMzdmMDVi",
              lambda t: t.shape_mean),
    _download("SMPL-X__FLAME_vertex_ids", "auxiliary", "SMPL-X vertex ids of the FLAME head",
              f"{OSS}/data/body_models/smplx/SMPL-X__FLAME_vertex_ids.npy{_V}CAEQRBiBgMDUyNv4jhgiIDBlYzNkOTI2YzFlZjRmZWZiZTJkM2IwZGZhZjg4NzE5",
              lambda t: t.smplx_flame_vertex_ids),
    _download("SMPLX_to_J14", "auxiliary", "SMPL-X vertices -> LSP-14 joints",
              f"{OSS}/data/body_models/smplx/SMPLX_to_J14.npy{_V}CAEQRBiBgMDd26fujhgiIDQ3ODhmOGJhMzhhMzQ2M2Y4MTRlNDcxY2VjNmUzY2Qy",
              lambda t: t.smplx_to_j14),
    _download("flame_dynamic_embedding", "auxiliary", "FLAME contour landmark embedding",
              f"{OSS}/data/body_models/smplx/flame_dynamic_embedding.npy{_V}CAEQRBiBgMCn4abujhgiIDBmNmEzYTBiZmIzYjQ5NTg4MmVhZGRjYTYwNWU2MGRk",
              lambda t: t.flame_dynamic_embedding),
    _download("flame_static_embedding", "auxiliary", "FLAME landmark embedding (the seed's tree says .npy; the file is a .pkl)",
              f"{OSS}/data/body_models/smplx/flame_static_embedding.pkl{_V}CAEQRBiBgMCAxqbujhgiIGIzMTRiZjZkZjRhMDQ4NzA5YmU2YjQyMTNmYmQ5OWI5",
              lambda t: t.flame_static_embedding),
    _download("ffhq_annotations", "annotation", "FLAME fits of FFHQ (RingNet + landmark fitting)",
              f"{OSS}/datasets/ffhq_annotations.npz{_V}CAEQRBiBgMCO46zvjhgiIDJhNDhlYTM2N2NmYjRmM2I4NWI2NDY0ZWM4NjExMzhm",
              lambda t: t.raw_dataset("ffhq") / "ffhq_annotations.npz"),
    _download("log_hrnet_hmr_expose_body", "log", "training log of the body model",
              f"{OSS}/models/expose/body/20220704_005929.log{_V}CAEQRBiBgMDCt6zujhgiIGJiYzY0ODdlMGZlMjRjYmZhZDc5YTY2YzM0OTk0NDc3",
              lambda t: t.logs / "hrnet_hmr_expose_body_20220704_005929.log"),
    _download("log_resnet18_hmr_expose_face", "log", "training log of the face model",
              f"{OSS}/models/expose/face/20220630_111340.log{_V}CAEQRBiBgICFtLbujhgiIGUzYmEyOGU3N2ZkOTRkNDM5OTIyODZiOWQ1MzJiMWZj",
              lambda t: t.logs / "resnet18_hmr_expose_face_20220630_111340.log"),
    _download("log_resnet18_hmr_expose_hand", "log", "training log of the hand model",
              f"{OSS}/models/expose/hand/20220630_110254.log{_V}CAEQRBiBgMCSuLbujhgiIDlmNDdhODg2MjA2NzQ1Njg5MTBlNWM1NDIxY2QyZmM2",
              lambda t: t.logs / "resnet18_hmr_expose_hand_20220630_110254.log"),
)

_BM = "`expose import-body-models FILE.zip`"

#: Licensed body models and the ExPose fits: obtained by hand, installed by an `expose` command.
BY_HAND = (
    Asset("smplx", "body-model", "SMPL-X v1.1 (licensed)", destinations=(lambda t: t.smplx_model("neutral"),),
          website="https://smpl-x.is.tue.mpg.de", install=_BM),
    Asset("mano", "body-model", "MANO v1.2 (licensed)", destinations=(lambda t: t.mano_model("right"),),
          website="https://mano.is.tue.mpg.de", install=_BM),
    Asset("flame", "body-model", "FLAME 2019 (licensed)", destinations=(lambda t: t.flame_model("neutral"),),
          website="https://flame.is.tue.mpg.de", install=_BM),
    Asset("smpl", "body-model", "SMPL v1.0, for 3DPW evaluation (licensed)",
          destinations=(lambda t: t.smpl_model("neutral"),), website="https://smpl.is.tue.mpg.de", install=_BM),
    Asset("curated_fits", "dataset", "ExPose curated SMPL-X fits (train.npz, val.npz)",
          destinations=(lambda t: t.raw_dataset("curated-fits") / "train.npz",),
          website="https://expose.is.tue.mpg.de", install="`expose preprocess curated-fits`"),
    Asset("spin_in_smplx", "dataset", "SPIN fits in SMPL-X (coco/lsp/lspet/mpii .npz)",
          destinations=(lambda t: t.raw_dataset("spin-smplx") / "coco.npz",),
          website="https://expose.is.tue.mpg.de", install="`expose preprocess spin-smplx`"),
)

#: Raw datasets: name, folder under data/datasets, website, what it is.
DATASETS = (
    ("coco", "coco", "https://cocodataset.org", "COCO 2014/2017 images and keypoints"),
    ("3dpw", "3dpw", "https://virtualhumans.mpi-inf.mpg.de/3DPW/", "3DPW sequences and images"),
    ("ffhq", "ffhq", "https://github.com/NVlabs/ffhq-dataset", "FFHQ 1024x1024 images"),
    ("stirling", "stirling", "http://pics.stir.ac.uk/ESRC/", "Stirling/ESRC 3D faces (FG2018 benchmark)"),
    ("freihand", "freihand", "https://lmb.informatik.uni-freiburg.de/projects/freihand/", "FreiHAND v2 + evaluation annotations"),
    ("ehf", "ehf", "https://smpl-x.is.tue.mpg.de", "EHF (100 frames with SMPL-X ground truth)"),
    ("h36m", "h36m-smplx", "http://vision.imar.ro/human3.6m/", "Human3.6M"),
    ("lsp", "lsp", "http://sam.johnson.io/research/lsp.html", "LSP and LSP-extended images"),
    ("mpii", "mpii", "http://human-pose.mpi-inf.mpg.de", "MPII images"),
)

#: ImageNet weights for training from scratch (the seed links none; MMHuman3D's issue #279).
#: `expose fetch pretrained` downloads the published files (the ``imagenet`` kind) into
#: ``pretrained_models/imagenet/`` and converts them to our key names as MMHuman3D's
#: ``hrnet_pretrain.pth`` / ``resnet18.pth`` (the ``pretrained`` kind; assets/imagenet.py).
#: torchvision names its files ``NAME-<first 8 hex digits of the sha256>.pth``; the full digest of
#: ``resnet18-f37072fd.pth`` (46,830,571 bytes) is the one many projects pin. HRNet-W48 is timm's
#: ``hrnet_w48.ms_in1k`` as the Hugging Face hub serves it (``.safetensors``); we found no published
#: checksum for it: the first download is recorded in the lock file and later copies must match it.
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_SHA256 = "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"
HRNET_W48_URL = "https://huggingface.co/timm/hrnet_w48.ms_in1k/resolve/main/model.safetensors"

IMAGENET = (
    Asset("resnet18_imagenet", "imagenet",
          "ImageNet ResNet-18 as PyTorch publishes it (torchvision IMAGENET1K_V1, BSD-3-Clause)",
          RESNET18_URL, (lambda t: t.pretrained_models / "imagenet" / "resnet18-f37072fd.pth",),
          sha256_prefix="f37072fd", sha256=RESNET18_SHA256, website="https://pytorch.org/vision/stable/models/resnet.html"),
    Asset("hrnet_w48_imagenet", "imagenet",
          "ImageNet HRNet-W48 as timm publishes it (hrnet_w48.ms_in1k on the Hugging Face hub, MIT)",
          HRNET_W48_URL, (lambda t: t.pretrained_models / "imagenet" / "hrnet_w48.ms_in1k.safetensors",),
          website="https://huggingface.co/timm/hrnet_w48.ms_in1k"),
)
PRETRAINED = (
    Asset("hrnet_pretrain", "pretrained", "ImageNet HRNet-W48 weights in our key names, to train the body model (the seed links none)",
          destinations=(lambda t: t.pretrained_models / "hrnet_pretrain.pth",),
          website="https://huggingface.co/timm/hrnet_w48.ms_in1k", install="`expose fetch pretrained` downloads and converts it"),
    Asset("resnet18", "pretrained", "ImageNet ResNet-18 weights in our key names, to train the part models (the seed links none)",
          destinations=(lambda t: t.pretrained_models / "resnet18.pth",),
          website=RESNET18_URL, install="`expose fetch pretrained` downloads and converts it"),
)

#: Tools of `expose infer` beyond the seed (assets/detector_model.py installs the ONNX file).
TOOLS = (
    _download("detector", "detector", "person detector for `expose infer` (OpenMMLab RTMDet-nano, ONNX, Apache-2.0)",
              "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
              "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip",
              lambda t: t.detectors / "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip"),
    # OpenMMLab publishes no checksum for its ONNX SDK archives; this sha256 (of the archive; that of
    # its end2end.onnx is in assets/keypoints_model.py) is the one a public RTMW export helper pins.
    Asset("keypoints", "keypoints", "whole-body 2D keypoints for `expose infer --save-keypoints` / `--refine` "
          "(OpenMMLab RTMW-l 384x288, COCO-WholeBody 133, ONNX, Apache-2.0)",
          "https://download.openmmlab.com/mmpose/v1/projects/rtmw/onnx_sdk/"
          "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip",
          (lambda t: t.keypoint_models / "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip",),
          sha256="a87e1af41a0a067776dba7d46e1c21c8f6e9f18e247e0e606718dd1f31e96ffd",
          website="https://github.com/open-mmlab/mmpose/tree/main/projects/rtmpose"),
)


def _dataset(name: str, folder: str, site: str, what: str) -> Asset:
    install = ("used through `expose preprocess spin-smplx`" if folder in ("lsp", "mpii")
               else f"`expose preprocess {folder}`")
    return Asset(name, "dataset", what, destinations=(lambda t: t.raw_dataset(folder),), website=site, install=install)


def default_manifest() -> list[Asset]:
    """The manifest of the seed, in the order the seed lists things, then the tools of `expose infer`
    and the ImageNet files of `expose fetch pretrained`."""
    return [*DOWNLOADS, *BY_HAND, *(_dataset(*row) for row in DATASETS), *PRETRAINED, *TOOLS, *IMAGENET]


#: Groups accepted by `expose fetch`.
GROUPS = {
    "checkpoints": lambda a: a.kind == "checkpoint",
    "auxiliary": lambda a: a.kind == "auxiliary",
    "logs": lambda a: a.kind == "log",
    "all": lambda a: a.downloadable and a.kind != "imagenet",
    "pretrained": lambda a: a.kind == "imagenet",
}


def models_assets(manifest: list[Asset]) -> list[Asset]:
    """What `expose fetch-models` fetches: the four checkpoints and the auxiliary files."""
    return [a for a in manifest if a.kind in ("checkpoint", "auxiliary")]


def select(manifest: list[Asset], names: list[str]) -> list[Asset]:
    """Assets by name or group name; unknown names raise ``KeyError`` listing the valid ones."""
    by_name = {a.name.lower(): a for a in manifest}
    out: list[Asset] = []
    for name in names:
        key = name.lower()
        if key in GROUPS:
            picked = [a for a in manifest if GROUPS[key](a)]
        elif key in by_name:
            picked = [by_name[key]]
        else:
            raise KeyError(name)
        out += [a for a in picked if a not in out]
    return out
