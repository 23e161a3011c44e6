"""The default whole-body keypoint network: OpenMMLab's RTMW-l (384 x 288), as MMDeploy exports it.

``expose fetch keypoints`` downloads MMPose's ONNX SDK archive
``rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip`` (the pose model of rtmlib's
``Wholebody`` "performance" mode), checks the archive's sha256 (manifest), takes ``end2end.onnx`` out
of it (by its base name; no member name is ever used as a path), checks that file's sha256 and
installs it atomically as ``data/keypoint_models/rtmw-l_wholebody_384x288.onnx``
(inference/keypoints_net.py runs it). OpenMMLab publishes no checksums for these archives; both
digests are those a public RTMW export helper pins (docs/fetch.md). Licence: Apache-2.0 (MMPose).
"""

from __future__ import annotations

from pathlib import Path

from expose_cli.assets.detector_model import install_onnx_member

ARCHIVE_URL = ("https://download.openmmlab.com/mmpose/v1/projects/rtmw/onnx_sdk/"
               "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip")
#: sha256 of ``end2end.onnx`` inside the archive.
ONNX_SHA256 = "bd033156e5104c4f5d2edfe0453e02661e30a2f3da453ec93c8764d561b83054"


def install_keypoint_model(archive: str | Path, destination: str | Path, expected_sha256: str = ONNX_SHA256) -> Path:
    """Take ``end2end.onnx`` out of ``archive``, check its sha256, move it to ``destination``."""
    return install_onnx_member(archive, destination, expected_sha256, "keypoints")
