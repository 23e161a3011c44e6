"""Install the official body-model downloads into the data tree (`expose import-body-models`).

Takes zip archives as downloaded (SMPL-X v1.1, MANO v1.2, FLAME 2019, SMPL v1.0) or loose files,
recognises the model files by name, validates them (keys and shapes), copies them to the seed's
layout and writes a chumpy-free, pickle-free ``.npz`` beside every ``.pkl``.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from expose_cli.body_models.loading import (
    load_body_model_data,
    validate_body_model,
    write_clean_npz,
)
from expose_cli.errors import ExposeError
from expose_cli.io.paths import DataTree
from expose_cli.utils.atomic import atomic_path

#: The official SMPL file names (lower case) and their gender: SMPL v1.0.0
#: (``basicModel_f_...``, ``basicmodel_m_...``), SMPLify's neutral model
#: (``basicModel_neutral_..._v1.0.0``) and SMPL v1.1.0 (``basicmodel_{f,m,neutral}_..._v1.1.0``).
SMPL_NAMES = {
    f"basicmodel_{code}_lbs_10_207_0_v{version}": gender
    for version in ("1.0.0", "1.1.0")
    for code, gender in (("f", "female"), ("m", "male"), ("neutral", "neutral"))
}


@dataclass(frozen=True)
class Target:
    """Where a recognised file goes: model kind (for validation) and destination path."""

    kind: str  # smplx | mano | flame | smpl | aux
    destination: Path


def recognise(name: str, tree: DataTree) -> Target | None:
    """Map an official file name (any folder, any case) to its place in the data tree."""
    base = PurePosixPath(name).name
    low = base.lower()
    stem, _, ext = low.rpartition(".")
    if ext not in ("pkl", "npz", "npy"):
        return None
    for gender in ("neutral", "male", "female"):
        if stem == f"smplx_{gender}" and ext in ("pkl", "npz"):
            return Target("smplx", tree.smplx_model(gender, ext))
        if stem == f"smpl_{gender}" and ext in ("pkl", "npz"):
            return Target("smpl", tree.smpl_model(gender, ext))
        if stem == f"flame_{gender}" and ext in ("pkl", "npz"):
            return Target("flame", tree.flame_model(gender, ext))
    for side in ("right", "left"):
        if stem == f"mano_{side}" and ext in ("pkl", "npz"):
            return Target("mano", tree.mano_model(side, ext))
    flame = {"generic_model": "neutral", "male_model": "male", "female_model": "female"}
    if stem in flame and ext == "pkl":
        return Target("flame", tree.flame_model(flame[stem], "pkl"))
    if stem in SMPL_NAMES and ext == "pkl":
        return Target("smpl", tree.smpl_model(SMPL_NAMES[stem], "pkl"))
    aux = {
        "all_means.pkl": tree.all_means, "shape_mean.npy": tree.shape_mean,
        "smplx_to_j14.npy": tree.smplx_to_j14, "j_regressor_h36m.npy": tree.j_regressor_h36m,
        "mano_smplx_vertex_ids.pkl": tree.mano_smplx_vertex_ids,
        "smpl-x__flame_vertex_ids.npy": tree.smplx_flame_vertex_ids,
        "flame_dynamic_embedding.npy": tree.flame_dynamic_embedding,
        "flame_static_embedding.pkl": tree.flame_static_embedding,
    }
    if low in aux:
        return Target("aux", aux[low])
    return None


@dataclass
class ImportRecord:
    """One row of the import report."""

    source: str
    installed: str
    status: str  # installed | exists | refused | invalid
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "exists")


def _member_is_safe(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member may not be extracted, or None when it is safe."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in path.parts:
        return "path escapes the target folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def _sources(paths: list[Path]) -> Iterator[tuple[str, Callable[[Path], None] | None, str | None]]:
    """Yield ``(display name, copy-to(path) function, refusal reason)`` for every candidate file."""
    for path in paths:
        if not path.exists():
            raise ExposeError("no such file", path=path, exit_code=2)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                yield str(f), (lambda dst, f=f: shutil.copyfile(f, dst)), None
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    why = _member_is_safe(info)

                    def copy(dst: Path, info=info, path=path) -> None:
                        with zipfile.ZipFile(path) as z, z.open(info) as src, open(dst, "wb") as out:
                            shutil.copyfileobj(src, out, 1 << 20)

                    yield f"{path.name}:{info.filename}", copy, why
        else:
            yield str(path), (lambda dst, p=path: shutil.copyfile(p, dst)), None


def _rel(path: Path, tree: DataTree) -> str:
    return str(path.relative_to(tree.root)) if path.is_relative_to(tree.root) else str(path)


def import_body_models(paths: list[str | Path], tree: DataTree, force: bool = False) -> list[ImportRecord]:
    """Install every recognised file found in ``paths`` (zips, folders, files) into ``tree``.

    No file already in the tree is replaced without ``force``, including the ``.npz`` written
    beside an installed ``.pkl`` (reported as its own ``exists`` row). Within one run, a file given
    explicitly (e.g. the ``SMPLX_NEUTRAL.npz`` of the SMPL-X archive) replaces a ``.npz`` this run
    derived from a ``.pkl``, never the reverse.
    """
    records: list[ImportRecord] = []
    given: set[Path] = set()  # written this run from a file given explicitly
    derived: set[Path] = set()  # written this run as the .npz beside a .pkl
    for display, copy, refusal in _sources([Path(p) for p in paths]):
        target = recognise(display.rsplit(":", 1)[-1], tree)
        if refusal is not None:
            records.append(ImportRecord(display, "-", "refused", refusal))
            continue
        if target is None:
            continue
        dest = target.destination
        rel = _rel(dest, tree)
        if dest.exists() and dest not in derived and (not force or dest in given):
            detail = "given twice; the first one is kept" if dest in given else "already installed; --force replaces it"
            records.append(ImportRecord(display, rel, "exists", detail))
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(dest) as tmp:
                copy(tmp)
                if target.kind != "aux":
                    data = load_body_model_data(tmp)
                    validate_body_model(data, target.kind, display)
                    if dest.suffix == ".npz":
                        write_clean_npz(data, tmp)  # drop pickled members
        except ExposeError as exc:
            records.append(ImportRecord(display, rel, "invalid", exc.reason))
            continue
        given.add(dest)
        derived.discard(dest)
        records.append(ImportRecord(display, rel, "installed"))
        if target.kind != "aux" and dest.suffix == ".pkl":
            npz = dest.with_suffix(".npz")
            if npz in given:  # the download's own .npz, installed earlier in this run
                records[-1].detail = f"{npz.name} from the download kept"
                continue
            if npz.exists() and npz not in derived and not force:
                records.append(ImportRecord(f"{display} (chumpy-free .npz)", _rel(npz, tree), "exists",
                                            "already installed; kept (--force replaces it)"))
                continue
            write_clean_npz(data, npz)
            derived.add(npz)
            records[-1].detail = f"+ {npz.name} (chumpy-free)"
    return records
