"""The model kinds: one entry per kind holding every fact about it (as timm keeps a variant's facts
in one ``default_cfgs`` entry); everything else that varies by kind is derived from :data:`KINDS`.

Plain data, no imports: the CLI reads the names at startup, the model, data and training layers
read the rest. The training recipe of a kind (batch size, validation set, data members, loss
weights) is the training layer's, in :data:`expose_cli.training.recipes.RECIPES`, keyed by these
names. Adding a kind: one entry here and one there (docs/architecture.md, "How to add").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Kind:
    """One model kind.

    ``convention``: the keypoint convention of its ``joints`` and of its training samples
    (:mod:`expose_cli.body_models.keypoints`). ``body_model``: the parametric model it predicts
    (``smplx``, ``mano``, ``flame``: also the HDF5 group and its ``has_<body_model>`` flag).
    ``params``: training sample key -> HDF5 field of its parameters. ``num_betas`` and
    ``num_expression``: the sizes of the samples' shape and expression vectors. ``img_res``: the
    side (px) of the square crop the model takes (its config's ``img_res``, and the training data's).
    ``imagenet_backbone``: the ImageNet weights its backbone starts from (``None``: the full model,
    which starts from the part checkpoints). ``checkpoint_file``: its published checkpoint in
    ``pretrained_models/``. ``full_model_modules``: the (backbone, head) it becomes inside the full
    model, which starts from its checkpoint (``None``: the full model itself). ``parts``: the kinds whose networks it holds, in the order
    the full model runs them (a part model: itself; see :func:`part_modules` for their module
    names). ``core_joints``: the slice of its convention's joint names whose keypoints make a
    training file useful for it (the body: pelvis .. elbows, not the wrists a hand file has; the
    face: the landmarks after the five head, neck, jaw and eye joints). ``model_variant``: the
    variant of its body-model file (a gender, or MANO's side).
    """

    name: str
    convention: str
    body_model: str
    params: Mapping[str, str]
    num_betas: int
    num_expression: int
    img_res: int
    imagenet_backbone: str | None
    checkpoint_file: str
    full_model_modules: tuple[str, str] | None
    parts: tuple[str, ...]
    core_joints: slice
    model_variant: str

    @property
    def optimizer_groups(self) -> tuple[str, ...]:
        """The module groups that get an optimiser each (MMHuman3D's optimizer config keys): each
        part's backbone and head, in the order the parts run."""
        return tuple(name for modules in part_modules(self.name).values() for name in modules)

    @property
    def config_section(self) -> str:
        """The section of :class:`expose_cli.models.config.ModelConfig` whose ``img_res`` is the
        model's crop side: its first part's (the full model's crop is the body's)."""
        return self.parts[0]

    @property
    def keeps_full_image(self) -> bool:
        """Whether its crops keep the whole image: a kind of several parts crops them from it."""
        return len(self.parts) > 1


_SMPLX = MappingProxyType({k: f"smplx/{k}" for k in ("global_orient", "body_pose", "jaw_pose", "left_hand_pose",
                                                      "right_hand_pose", "betas", "expression")})
_MANO = MappingProxyType({"global_orient": "mano/global_orient", "right_hand_pose": "mano/right_hand_pose",
                          "betas": "mano/betas"})
_FLAME = MappingProxyType({"global_orient": "flame/global_orient", "jaw_pose": "flame/jaw_pose",
                           "betas": "flame/betas", "expression": "flame/expression"})

#: Every model kind, by name, in the order the CLI lists them.
KINDS: Mapping[str, Kind] = MappingProxyType({k.name: k for k in (
    Kind("body", "smplx", "smplx", _SMPLX, 10, 10, 256, "hrnet", "hrnet_hmr_expose_body.pth",
         ("backbone", "head"), ("body",), slice(0, 20), "neutral"),
    Kind("hand", "mano", "mano", _MANO, 10, 10, 224, "resnet18", "resnet18_hmr_expose_hand.pth",
         ("hand_backbone", "hand_head"), ("hand",), slice(None), "right"),
    Kind("face", "flame_73", "flame", _FLAME, 100, 50, 256, "resnet18", "resnet18_hmr_expose_face.pth",
         ("face_backbone", "face_head"), ("face",), slice(5, None), "neutral"),
    Kind("expose", "smplx", "smplx", _SMPLX, 10, 10, 256, None, "expose.pth", None, ("body", "hand", "face"),
         slice(0, 20), "neutral"),
)})


def kind_names() -> str:
    """The kinds as a comma-separated list, for error hints."""
    return ", ".join(KINDS)


def part_modules(kind: str) -> dict[str, tuple[str, str]]:
    """The (backbone, head) module names of each part network a ``kind`` model holds, by part: a
    part model's own network is ``backbone``/``head``, the full model's parts are their
    ``full_model_modules``."""
    return {part: ("backbone", "head") if part == kind else KINDS[part].full_model_modules
            for part in KINDS[kind].parts}
