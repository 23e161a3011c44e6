"""What each command needs from the data tree, and whether it is there (`expose doctor`)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expose_cli.assets.paths import DataTree
from expose_cli.errors import ExposeError

TASKS = ("infer", "eval", "train")

SMPLX_SRC = "https://smpl-x.is.tue.mpg.de (v1.1) + `expose import-body-models`"
MANO_SRC = "https://mano.is.tue.mpg.de (v1.2) + `expose import-body-models`"
FLAME_SRC = "https://flame.is.tue.mpg.de (2019) + `expose import-body-models`"
SMPL_SRC = "https://smpl.is.tue.mpg.de (v1.0) + `expose import-body-models`"
FETCH = "`expose fetch-models`"


@dataclass(frozen=True)
class Requirement:
    """A file of the data tree, the tasks that need it, where it comes from, and a cheap check."""

    label: str
    path: Path
    tasks: tuple[str, ...]
    provided_by: str
    check: Callable[[Path], None] | None = None


@dataclass
class Status:
    requirement: Requirement
    state: str  # ok | missing | invalid
    detail: str = ""


def _body_model(kind: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from expose_cli.body_models.loading import load_body_model_data, validate_body_model

        validate_body_model(load_body_model_data(path), kind, path)

    return check


def _array(shape: tuple) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            got, _, dtype = reader(fh)
        if dtype.hasobject:
            return
        if len(got) != len(shape) or any(w is not None and w != g for w, g in zip(shape, got, strict=True)):
            raise ExposeError(f"shape {got}, expected {shape}", path=path)

    return check


def _pickle(path: Path) -> None:
    from expose_cli.assets.safe_pickle import safe_load_pickle

    safe_load_pickle(path)


def _checkpoint(path: Path) -> None:
    if path.stat().st_size == 0 or not zipfile.is_zipfile(path):
        raise ExposeError("not a torch checkpoint (torch.save zip archive)", path=path)


def _hdf5(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            if "format" not in fh.attrs:
                raise ExposeError("HDF5 file without a 'format' attribute: not written by `expose preprocess`", path=path)
    except OSError as exc:
        raise ExposeError(f"cannot open as HDF5: {exc}", path=path) from exc


def requirements(tree: DataTree) -> list[Requirement]:
    """Every file any command reads, in the seed's layout."""
    all3 = TASKS
    reqs = [
        Requirement("SMPL-X neutral", tree.smplx_model("neutral"), all3, SMPLX_SRC, _body_model("smplx")),
        Requirement("MANO right hand", tree.mano_model("right"), ("eval", "train"), MANO_SRC, _body_model("mano")),
        Requirement("FLAME 2019 neutral", tree.flame_model("neutral"), ("eval", "train"), FLAME_SRC, _body_model("flame")),
    ]
    for gender in ("neutral", "male", "female"):
        reqs.append(Requirement(f"SMPL {gender} (3DPW)", tree.smpl_model(gender), ("eval",), SMPL_SRC, _body_model("smpl")))
    reqs += [
        Requirement("all_means.pkl", tree.all_means, all3, FETCH, _pickle),
        Requirement("all_means.pkl (2nd copy)", tree.all_means_root_copy, ("train",), FETCH, _pickle),
        Requirement("shape_mean.npy", tree.shape_mean, all3, FETCH, _array((None,))),
        Requirement("SMPLX_to_J14.npy", tree.smplx_to_j14, all3, FETCH, _array((14, 10475))),
        Requirement("J_regressor_h36m.npy", tree.j_regressor_h36m, ("eval",), FETCH, _array((17, 6890))),
        Requirement("MANO_SMPLX_vertex_ids.pkl", tree.mano_smplx_vertex_ids, ("eval", "train"), FETCH, _pickle),
        Requirement("SMPL-X__FLAME_vertex_ids.npy", tree.smplx_flame_vertex_ids, ("eval", "train"), FETCH, _array((5023,))),
        Requirement("flame_static_embedding.pkl", tree.flame_static_embedding, ("eval", "train"), FETCH, _pickle),
        Requirement("flame_dynamic_embedding.npy", tree.flame_dynamic_embedding, ("eval", "train"), FETCH, None),
    ]
    for name, tasks in (("expose", ("infer", "eval")), ("body", ("eval",)), ("face", ("eval",)), ("hand", ("eval",))):
        reqs.append(Requirement(f"checkpoint '{name}'", tree.checkpoint(name), tasks, FETCH, _checkpoint))
    for ds, split, tasks in (
        ("ehf", "val", ("eval",)), ("3dpw", "test", ("eval",)), ("freihand", "test", ("eval",)),
        ("stirling", "HQ", ("eval",)), ("curated-fits", "train", ("train",)), ("freihand", "train", ("train",)),
        ("ffhq", "train", ("train",)), ("spin-smplx", "train", ("train",)), ("h36m-smplx", "train", ("train",)),
    ):
        reqs.append(Requirement(f"{ds} {split} (HDF5)", tree.preprocessed_file(ds, split), tasks,
                                f"the dataset's website + `expose preprocess {ds}`", _hdf5))
    return reqs


def inspect_tree(tree: DataTree, task: str | None = None) -> list[Status]:
    """Check each requirement (of ``task``, or all): present, loadable, right shape."""
    out = []
    for req in requirements(tree):
        if task is not None and task not in req.tasks:
            continue
        if not req.path.is_file():
            out.append(Status(req, "missing", f"get it from {req.provided_by}"))
            continue
        try:
            if req.check is not None:
                req.check(req.path)
            out.append(Status(req, "ok"))
        except ExposeError as exc:
            out.append(Status(req, "invalid", exc.reason))
        except Exception as exc:  # any reader failure means the file is unusable
            out.append(Status(req, "invalid", f"{type(exc).__name__}: {exc}"))
    return out
