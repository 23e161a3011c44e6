"""Image files as RGB arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import atomic_path


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``H x W x 3`` uint8 RGB: EXIF orientation applied, grayscale and RGBA
    converted, 16-bit scaled to 8-bit. Raises an error naming the file when it cannot be decoded."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        raise ExposeError("empty or missing image file", path=path)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # applies EXIF orientation, drops alpha, 16 -> 8 bit
    if image is None:
        raise ExposeError("cannot decode image (corrupt or not an image)", path=path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: str | Path, image_rgb: np.ndarray, params: tuple[int, ...] = ()) -> Path:
    """``image_rgb`` (``H x W x 3`` uint8 RGB) written to ``path`` atomically, in the format its
    ending names (OpenCV's ``params``, e.g. JPEG quality); an ``OSError`` when it cannot be written."""
    path = Path(path)
    with atomic_path(path) as tmp:  # the temporary name keeps the ending: OpenCV picks the format by it
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), list(params)):
            raise OSError(f"cannot write {path}")
    return path
