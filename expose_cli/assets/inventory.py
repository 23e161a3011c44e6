"""What each command needs from the data tree, and whether it is there (`expose doctor`)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from expose_cli.data.outputs import BENCHMARK_SPLITS, TRAINING_SPLITS, output_files, training_files
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree

TASKS = ("infer", "eval", "train")

SMPLX_SRC = "https://smpl-x.is.tue.mpg.de (v1.1) + `expose import-body-models`"
MANO_SRC = "https://mano.is.tue.mpg.de (v1.2) + `expose import-body-models`"
FLAME_SRC = "https://flame.is.tue.mpg.de (2019) + `expose import-body-models`"
SMPL_SRC = "https://smpl.is.tue.mpg.de (v1.0) + `expose import-body-models`"
FETCH = "`expose fetch-models`"


@dataclass(frozen=True)
class Requirement:
    """A file of the data tree, the tasks that need it, where it comes from, and a check.

    ``path`` is the preferred file; ``alternatives`` are other files the commands accept instead
    (e.g. ``SMPLX_NEUTRAL.pkl`` when there is no ``SMPLX_NEUTRAL.npz``), tried in order.
    """

    label: str
    path: Path
    tasks: tuple[str, ...]
    provided_by: str
    check: Callable[[Path], str | None] | None = None  # raises when unusable; may return a note
    alternatives: tuple[Path, ...] = ()

    @property
    def candidates(self) -> tuple[Path, ...]:
        return (self.path, *self.alternatives)


@dataclass
class Status:
    requirement: Requirement
    state: str  # ok | missing | invalid
    detail: str = ""
    found: Path | None = None  # the candidate that was checked

    @property
    def path(self) -> Path:
        return self.found if self.found is not None else self.requirement.path


def _body_model(kind: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from expose_cli.body_models.loading import load_body_model_data, validate_body_model

        validate_body_model(load_body_model_data(path), kind, path)

    return check


def _auxiliary(name: str) -> Callable[[Path], None]:
    """Check with the typed loader the commands use (:mod:`expose_cli.body_models.auxiliary`)."""

    def check(path: Path) -> None:
        from expose_cli.body_models.auxiliary import LOADERS

        LOADERS[name](path)

    return check


def _model(label: str, candidates: list[Path], tasks: tuple[str, ...], source: str, kind: str) -> Requirement:
    return Requirement(label, candidates[0], tasks, source, _body_model(kind), tuple(candidates[1:]))


def _checkpoint(tree: DataTree) -> Callable[[Path], str | None]:
    """A published checkpoint's file, judged as `expose fetch --list` and `fetch-models` judge it:
    damaged (invalid), or intact but not the published file (ok, with that note)."""

    def check(path: Path) -> str | None:
        from expose_cli.assets.download import LockFile, file_status
        from expose_cli.assets.manifest import default_manifest

        if path.stat().st_size == 0 or not zipfile.is_zipfile(path):
            raise ExposeError("not a torch checkpoint (torch.save zip archive)", path=path)
        asset = next((a for a in default_manifest() if a.kind == "checkpoint" and path in a.paths(tree)), None)
        if asset is None:
            return None
        status, detail = file_status(asset, tree, LockFile(tree))
        if status == "corrupt":
            raise ExposeError(detail, path=path)
        return detail if status == "other" else None

    return check


def _hdf5(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            if "format" not in fh.attrs:
                raise ExposeError("HDF5 file without a 'format' attribute: not written by `expose preprocess`", path=path)
    except OSError as exc:
        raise ExposeError(f"cannot open as HDF5: {exc}", path=path) from exc


def _usable(tree: DataTree) -> Callable[[Path], None]:
    """A preprocessed file: written by `expose preprocess`, not by a converter version known to be
    broken, and its image paths (16 evenly spaced rows) open under its raw root or in ``tree``."""

    def check(path: Path) -> None:
        from expose_cli.data.validity import check_training_file

        _hdf5(path)
        check_training_file(path, tree.root, sample=16)

    return check


def _preprocessed(tree: DataTree, path: Path, dataset: str, label: str, tasks: tuple[str, ...]) -> Requirement:
    return Requirement(f"{label} (HDF5)", path, tasks, f"the dataset's website + `expose preprocess {dataset}`",
                       _usable(tree))


def requirements(tree: DataTree) -> list[Requirement]:
    """Every file any command reads, in the seed's layout.

    Body models accept the same files, in the same order, as the builders that load them
    (:func:`expose_cli.body_models.builders.model_candidates`): ``.npz`` first, else ``.pkl``.
    """
    from expose_cli.body_models.builders import model_candidates

    all3 = TASKS
    reqs = [
        _model("SMPL-X neutral", model_candidates(tree, "smplx", "neutral"), all3, SMPLX_SRC, "smplx"),
        _model("MANO right hand", model_candidates(tree, "mano", "right"), ("eval", "train"), MANO_SRC, "mano"),
        _model("FLAME 2019 neutral", model_candidates(tree, "flame", "neutral"), ("eval", "train"), FLAME_SRC, "flame"),
    ]
    for gender in ("neutral", "male", "female"):
        reqs.append(_model(f"SMPL {gender} (3DPW)", model_candidates(tree, "smpl", gender), ("eval",), SMPL_SRC, "smpl"))
    aux = [
        (tree.all_means, "all_means.pkl", all3),
        (tree.shape_mean, "shape_mean.npy", all3),
        (tree.smplx_to_j14, "SMPLX_to_J14.npy", all3),
        (tree.j_regressor_h36m, "J_regressor_h36m.npy", ("eval",)),
        (tree.mano_smplx_vertex_ids, "MANO_SMPLX_vertex_ids.pkl", ("eval", "train")),
        (tree.smplx_flame_vertex_ids, "SMPL-X__FLAME_vertex_ids.npy", ("eval", "train")),
        (tree.flame_static_embedding, "flame_static_embedding.pkl", ("eval", "train")),
        (tree.flame_dynamic_embedding, "flame_dynamic_embedding.npy", ("eval", "train")),
    ]
    for path, name, tasks in aux:
        reqs.append(Requirement(name, path, tasks, FETCH, _auxiliary(name)))
        if name == "all_means.pkl":
            reqs.append(Requirement("all_means.pkl (2nd copy)", tree.all_means_root_copy, ("train",), FETCH,
                                    _auxiliary(name)))
    for name, tasks in (("expose", ("infer", "eval")), ("body", ("eval",)), ("face", ("eval",)), ("hand", ("eval",))):
        reqs.append(Requirement(f"checkpoint '{name}'", tree.checkpoint(name), tasks, FETCH, _checkpoint(tree)))
    for ds, split in BENCHMARK_SPLITS.items():
        reqs.append(_preprocessed(tree, output_files(ds, tree, (split,))[0], ds, f"{ds} {split}", ("eval",)))
    for ds in TRAINING_SPLITS:  # the files the converters write, from the data layer's one list
        for split, path in zip(TRAINING_SPLITS[ds], training_files(ds, tree), strict=True):
            reqs.append(_preprocessed(tree, path, ds, f"{ds} {split}", ("train",)))
    return reqs


def inspect_tree(tree: DataTree, task: str | None = None) -> list[Status]:
    """Check each requirement (of ``task``, or all): present, loadable, right shape.

    Of a requirement with alternatives, the first file present is the one checked (the one the
    commands would load).
    """
    out = []
    for req in requirements(tree):
        if task is not None and task not in req.tasks:
            continue
        found = next((p for p in req.candidates if p.is_file()), None)
        if found is None:
            names = " or ".join(p.name for p in req.candidates)
            where = f"{names}: " if req.alternatives else ""
            out.append(Status(req, "missing", f"{where}get it from {req.provided_by}"))
            continue
        try:
            note = req.check(found) if req.check is not None else None
            out.append(Status(req, "ok", note or "", found=found))
        except ExposeError as exc:
            out.append(Status(req, "invalid", exc.reason, found=found))
        except Exception as exc:  # any reader failure means the file is unusable
            out.append(Status(req, "invalid", f"{type(exc).__name__}: {exc}", found=found))
    return out
