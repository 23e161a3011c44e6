"""Image files as RGB arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from expose_cli.errors import ExposeError


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
