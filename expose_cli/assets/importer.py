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

from expose_cli.body_models.gmm_prior import load_gmm_arrays
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

    kind: str  # smplx | mano | flame | smpl | aux | gmm
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
    if low == "gmm_08.pkl":
        return Target("gmm", tree.gmm_prior)
    return None


#: Suffixes of the files :func:`recognise` knows; a file with one is never opened as an archive
#: (an ``.npz`` is a zip archive of ``.npy`` members).
MODEL_SUFFIXES = (".pkl", ".npz", ".npy")
OFFICIAL_NAMES = ("SMPLX_NEUTRAL.npz, MANO_RIGHT.pkl, FLAME_NEUTRAL.pkl or generic_model.pkl, "
                  "basicModel_f_lbs_10_207_0_v1.0.0.pkl, all_means.pkl, gmm_08.pkl, ...")


@dataclass
class ImportRecord:
    """One row of the import report."""

    source: str
    installed: str
    status: str  # installed | exists | refused | invalid | unrecognised
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "exists")


@dataclass(frozen=True)
class Source:
    """One candidate file: its name in the report, how to copy it, why it may not be (if so),
    and the path given on the command line it was found in."""

    display: str
    copy: Callable[[Path], None]
    refusal: str | None
    given: Path


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


def is_archive(path: Path) -> bool:
    """A zip archive to look into: a zip file whose name is not that of a model file (``.npz``)."""
    return path.suffix.lower() not in MODEL_SUFFIXES and zipfile.is_zipfile(path)


def _archive_members(path: Path) -> Iterator[Source]:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue

            def copy(dst: Path, info=info) -> None:
                with zipfile.ZipFile(path) as z, z.open(info) as src, open(dst, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)

            yield Source(f"{path.name}:{info.filename}", copy, _member_is_safe(info), path)


def _sources(path: Path) -> Iterator[Source]:
    """Every candidate file of one path given: a folder's files, an archive's members, or the file."""
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            yield Source(str(f), lambda dst, f=f: shutil.copyfile(f, dst), None, path)
    elif is_archive(path):
        yield from _archive_members(path)
    else:
        yield Source(str(path), lambda dst: shutil.copyfile(path, dst), None, path)


def _unrecognised(path: Path) -> ImportRecord:
    """The row of a path given in which no body-model file was found."""
    if path.is_dir():
        why = f"no body-model file in this folder (names looked for: {OFFICIAL_NAMES})"
    elif is_archive(path):
        why = f"no body-model file in this archive (names looked for: {OFFICIAL_NAMES})"
    elif path.suffix.lower() == ".zip":
        return ImportRecord(str(path), "-", "invalid", "not a readable zip archive (damaged or incomplete download?)")
    else:
        why = f"not a body-model file: the name is none of the official ones ({OFFICIAL_NAMES})"
    return ImportRecord(str(path), "-", "unrecognised", why)


def _rel(path: Path, tree: DataTree) -> str:
    return str(path.relative_to(tree.root)) if path.is_relative_to(tree.root) else str(path)


class _Run:
    """One import: the rows so far, and which destinations this run wrote from what."""

    def __init__(self, tree: DataTree, force: bool) -> None:
        self.tree, self.force = tree, force
        self.records: list[ImportRecord] = []
        self.given: set[Path] = set()  # written this run from a file given explicitly
        self.derived: set[Path] = set()  # written this run as the .npz beside a .pkl

    def add(self, source: Source) -> bool:
        """Report (and install) one candidate file; False when it is not a body-model file."""
        target = recognise(source.display.rsplit(":", 1)[-1], self.tree)
        if source.refusal is not None:
            self.records.append(ImportRecord(source.display, "-", "refused", source.refusal))
            return True
        if target is None:
            return False
        dest = target.destination
        rel = _rel(dest, self.tree)
        if dest.exists() and dest not in self.derived and (not self.force or dest in self.given):
            detail = "given twice; the first one is kept" if dest in self.given else "already installed; --overwrite replaces it"
            self.records.append(ImportRecord(source.display, rel, "exists", detail))
            return True
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(dest) as tmp:
                source.copy(tmp)
                data = self._validate(tmp, target, source.display, dest)
        except ExposeError as exc:
            self.records.append(ImportRecord(source.display, rel, "invalid", exc.reason))
            return True
        self.given.add(dest)
        self.derived.discard(dest)
        self.records.append(ImportRecord(source.display, rel, "installed"))
        if data is not None and dest.suffix == ".pkl":
            self._npz_beside(source.display, dest, data)
        return True

    @staticmethod
    def _validate(tmp: Path, target: Target, display: str, dest: Path) -> dict | None:
        """The model's arrays, checked (``None`` for auxiliary files); a ``.npz`` loses pickled members."""
        if target.kind == "aux":
            return None
        if target.kind == "gmm":
            load_gmm_arrays(tmp, display)
            return None
        data = load_body_model_data(tmp)
        validate_body_model(data, target.kind, display)
        if dest.suffix == ".npz":
            write_clean_npz(data, tmp)  # drop pickled members
        return data

    def _npz_beside(self, display: str, dest: Path, data: dict) -> None:
        """Write the chumpy-free ``.npz`` beside an installed ``.pkl`` unless one must be kept."""
        npz = dest.with_suffix(".npz")
        if npz in self.given:  # the download's own .npz, installed earlier in this run
            self.records[-1].detail = f"{npz.name} from the download kept"
            return
        if npz.exists() and npz not in self.derived and not self.force:
            self.records.append(ImportRecord(f"{display} (chumpy-free .npz)", _rel(npz, self.tree), "exists",
                                             "already installed; kept (--overwrite replaces it)"))
            return
        write_clean_npz(data, npz)
        self.derived.add(npz)
        self.records[-1].detail = f"+ {npz.name} (chumpy-free)"


def import_body_models(paths: list[str | Path], tree: DataTree, force: bool = False) -> list[ImportRecord]:
    """Install every recognised file found in ``paths`` (zips, folders, files) into ``tree``.

    Every path given ends in at least one row: its files' (installed, exists, refused, invalid), or
    one of its own saying why nothing in it is a body-model file (``unrecognised``; ``invalid`` for
    a damaged zip). A loose ``.npz`` is a model file, never an archive. Missing paths stop the run
    before anything is written. No file already in the tree is replaced without ``force``,
    including the ``.npz`` written beside an installed ``.pkl`` (reported as its own ``exists``
    row). Within one run, a file given explicitly (e.g. the ``SMPLX_NEUTRAL.npz`` of the SMPL-X
    archive) replaces a ``.npz`` this run derived from a ``.pkl``, never the reverse.
    """
    given = [Path(p) for p in paths]
    for path in given:
        if not path.exists():
            raise ExposeError("no such file", path=path, exit_code=2)
    run = _Run(tree, force)
    for path in given:
        found = False
        try:
            for source in _sources(path):
                found = run.add(source) or found
        except zipfile.BadZipFile as exc:
            run.records.append(ImportRecord(str(path), "-", "invalid", f"damaged zip archive: {exc}"))
            continue
        if not found:
            run.records.append(_unrecognised(path))
    return run.records
