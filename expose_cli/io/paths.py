"""The data tree: every path `expose` reads or writes, in the layout of MMHuman3D's ExPose README.

All other modules derive their paths from :class:`DataTree`; none hard-codes a folder name.

```text
data/
  body_models/  all_means.pkl  J_regressor_h36m.npy
    smplx/  SMPLX_{NEUTRAL,MALE,FEMALE}.{npz,pkl}  all_means.pkl  shape_mean.npy
            MANO_SMPLX_vertex_ids.pkl  SMPL-X__FLAME_vertex_ids.npy  SMPLX_to_J14.npy
    mano/   MANO_RIGHT.pkl  MANO_LEFT.pkl
    flame/  FLAME_NEUTRAL.pkl  flame_dynamic_embedding.npy  flame_static_embedding.pkl
    smpl/   SMPL_{NEUTRAL,MALE,FEMALE}.pkl
  pretrained_models/  hrnet_hmr_expose_body.pth  resnet18_hmr_expose_face.pth
                      resnet18_hmr_expose_hand.pth  expose.pth
  datasets/  3DPW coco EHF ExPose_curated_fits ffhq FreiHand h36m lsp mpii spin_in_smplx stirling
  preprocessed_datasets/  <dataset>_<split>.h5
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from expose_cli.io.catalog import DATASETS
from expose_cli.kinds import KINDS

GENDERS = ("neutral", "male", "female")

#: The four published checkpoints, by short name (the kind) -> file name in ``pretrained_models/``.
CHECKPOINT_FILES = {k.name: k.checkpoint_file for k in KINDS.values()}

#: Raw dataset folders under ``datasets/`` (the seed's names), by the name ``expose preprocess`` uses
#: (the catalog's), and the raw folders of downloads that no converter reads on their own.
RAW_DATASET_DIRS = {**{d.name: d.raw_dir for d in DATASETS.values()}, "lsp": "lsp", "mpii": "mpii"}

DEFAULT_DATA_DIR = Path("data")
DATA_DIR_ENV = "EXPOSE_DATA_DIR"


def default_data_dir() -> Path:
    """``$EXPOSE_DATA_DIR`` if set, else ``./data``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else DEFAULT_DATA_DIR


@dataclass(frozen=True)
class DataTree:
    """Paths of the seed's data tree below ``root``. Nothing is created until asked."""

    root: Path

    def __init__(self, root: str | Path | None = None) -> None:
        object.__setattr__(self, "root", Path(root) if root is not None else default_data_dir())

    # -- top-level folders -------------------------------------------------------------------
    @property
    def body_models(self) -> Path:
        return self.root / "body_models"

    @property
    def pretrained_models(self) -> Path:
        return self.root / "pretrained_models"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def detectors(self) -> Path:
        return self.root / "detectors"

    @property
    def person_detector(self) -> Path:
        """The default ONNX person detector (`expose fetch detector` puts it here)."""
        return self.detectors / "rtmdet_nano_person.onnx"

    @property
    def keypoint_models(self) -> Path:
        return self.root / "keypoint_models"

    @property
    def keypoint_model(self) -> Path:
        """The default ONNX whole-body keypoint network (`expose fetch keypoints` puts it here)."""
        return self.keypoint_models / "rtmw-l_wholebody_384x288.onnx"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed_datasets"

    # -- body models -------------------------------------------------------------------------
    @property
    def smplx_dir(self) -> Path:
        return self.body_models / "smplx"

    @property
    def mano_dir(self) -> Path:
        return self.body_models / "mano"

    @property
    def flame_dir(self) -> Path:
        return self.body_models / "flame"

    @property
    def smpl_dir(self) -> Path:
        return self.body_models / "smpl"

    def smplx_model(self, gender: str = "neutral", ext: str = "npz") -> Path:
        """``smplx/SMPLX_<GENDER>.<ext>`` (``npz`` is what `import-body-models` writes)."""
        _check_gender(gender)
        return self.smplx_dir / f"SMPLX_{gender.upper()}.{ext}"

    def mano_model(self, side: str = "right", ext: str = "pkl") -> Path:
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', not {side!r}")
        return self.mano_dir / f"MANO_{side.upper()}.{ext}"

    def flame_model(self, gender: str = "neutral", ext: str = "pkl") -> Path:
        _check_gender(gender)
        return self.flame_dir / f"FLAME_{gender.upper()}.{ext}"

    def smpl_model(self, gender: str = "neutral", ext: str = "pkl") -> Path:
        _check_gender(gender)
        return self.smpl_dir / f"SMPL_{gender.upper()}.{ext}"

    # -- auxiliary files (downloadable, see `expose fetch-models`) ----------------------------
    @property
    def all_means(self) -> Path:
        """``body_models/smplx/all_means.pkl``; a second copy lives at ``body_models/all_means.pkl``."""
        return self.smplx_dir / "all_means.pkl"

    @property
    def gmm_prior(self) -> Path:
        """``body_models/gmm_08.pkl``: SMPLify's optional GMM pose prior (8 Gaussians over SMPL's 69
        body-pose values), installed by `expose import-body-models gmm_08.pkl`."""
        return self.body_models / "gmm_08.pkl"

    @property
    def all_means_root_copy(self) -> Path:
        return self.body_models / "all_means.pkl"

    @property
    def shape_mean(self) -> Path:
        return self.smplx_dir / "shape_mean.npy"

    @property
    def smplx_to_j14(self) -> Path:
        return self.smplx_dir / "SMPLX_to_J14.npy"

    @property
    def j_regressor_h36m(self) -> Path:
        return self.body_models / "J_regressor_h36m.npy"

    @property
    def mano_smplx_vertex_ids(self) -> Path:
        return self.smplx_dir / "MANO_SMPLX_vertex_ids.pkl"

    @property
    def smplx_flame_vertex_ids(self) -> Path:
        return self.smplx_dir / "SMPL-X__FLAME_vertex_ids.npy"

    @property
    def flame_dynamic_embedding(self) -> Path:
        return self.flame_dir / "flame_dynamic_embedding.npy"

    @property
    def flame_static_embedding(self) -> Path:
        # The seed's tree says `.npy`, but the file it links to is a pickle (`.pkl`).
        return self.flame_dir / "flame_static_embedding.pkl"

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self, name: str) -> Path:
        """Resolve ``body|face|hand|expose`` (or a bare file stem) to ``pretrained_models/<file>``."""
        if name in CHECKPOINT_FILES:
            return self.pretrained_models / CHECKPOINT_FILES[name]
        stem = name[:-4] if name.endswith(".pth") else name
        return self.pretrained_models / f"{stem}.pth"

    # -- datasets ------------------------------------------------------------------------------
    def raw_dataset(self, name: str) -> Path:
        """Raw folder of a dataset, by its `expose preprocess` name (``3dpw`` -> ``datasets/3DPW``)."""
        try:
            return self.datasets / RAW_DATASET_DIRS[name]
        except KeyError:
            known = ", ".join(sorted(RAW_DATASET_DIRS))
            raise ValueError(f"unknown dataset {name!r}; known: {known}") from None

    def preprocessed_file(self, dataset: str, split: str) -> Path:
        """``preprocessed_datasets/<dataset>_<split>.h5`` (dashes become underscores)."""
        return self.preprocessed / f"{dataset.replace('-', '_')}_{split}.h5"

    @property
    def logs(self) -> Path:
        """Training logs of the published checkpoints (``pretrained_models/logs``)."""
        return self.pretrained_models / "logs"

    @property
    def download_lock(self) -> Path:
        """Record of every verified download (full sha256 and size), written by `expose fetch`."""
        return self.root / "downloads.lock.json"


def _check_gender(gender: str) -> None:
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, not {gender!r}")
