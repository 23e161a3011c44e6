"""The default person detector: OpenMMLab's RTMDet-nano person model, as MMDeploy exports it.

``expose fetch detector`` downloads OpenMMLab's ONNX SDK archive, then takes ``end2end.onnx`` out
of it (found by its base name wherever it sits in the archive, and written only to our own path,
so no member name can escape the data tree), checks its sha256 and installs it atomically as
``data/detectors/rtmdet_nano_person.onnx``. Licence: Apache-2.0 (OpenMMLab's MMPose, which
publishes it; trained on COCO and Objects365 persons). See docs/infer.md.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import atomic_path

ARCHIVE_URL = ("https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
               "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip")
MEMBER = "end2end.onnx"
#: sha256 of ``end2end.onnx`` inside the archive.
ONNX_SHA256 = "8297e829ccc5590c8e2d32d5a211f322a0585fb7467eec85eb12c9525b0b95d6"


def install_detector(archive: str | Path, destination: str | Path, expected_sha256: str = ONNX_SHA256) -> Path:
    """Take :data:`MEMBER` out of ``archive``, check its sha256, move it to ``destination``."""
    return install_onnx_member(archive, destination, expected_sha256, "detector")


def install_onnx_member(archive: str | Path, destination: str | Path, expected_sha256: str, asset: str) -> Path:
    """:data:`MEMBER` of an MMDeploy ONNX SDK ``archive`` (the manifest's ``asset``), checked against
    ``expected_sha256``, written atomically to ``destination``."""
    archive, destination = Path(archive), Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and Path(i.filename).name == MEMBER]
            if len(members) != 1:
                raise ExposeError(f"expected one {MEMBER} in the archive, found {len(members)}",
                                  hint=f"run `expose fetch {asset} --force`", path=archive)
            digest = hashlib.sha256()
            with atomic_path(destination) as tmp, zf.open(members[0]) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
                if digest.hexdigest() != expected_sha256:
                    raise ExposeError(f"{MEMBER} has sha256 {digest.hexdigest()[:8]}..., expected "
                                      f"{expected_sha256[:8]}...", hint=f"run `expose fetch {asset} --force`",
                                      path=archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExposeError(f"cannot read the {asset} archive: {exc}", hint=f"run `expose fetch {asset} --force`",
                          path=archive) from exc
    return destination
