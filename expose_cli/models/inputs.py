"""Turning an image and a person box into network inputs, exactly as MMHuman3D's test pipeline.

Box ``[x, y, w, h]`` (px) -> centre and square side (``max(w, h) * scale_factor``); the 2x3 crop
affine maps that square onto ``img_res`` pixels; bilinear warp; RGB normalised with ImageNet mean and
std. The full model also keeps the whole normalised image (hands and face are sampled from it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from expose_cli.geometry.crops import bbox_xywh_to_center_scale, crop_affine

MEAN_RGB = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD_RGB = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def normalize_image(image_rgb: np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 RGB -> ``[3, H, W]`` float32, ImageNet-normalised: ``(pixel - mean) / std``
    in float32, written channel-first in one buffer (two passes; ~6x faster than casting, subtracting,
    dividing and transposing into new arrays, with the same bits)."""
    image = np.asarray(image_rgb)
    out = np.empty((3, *image.shape[:2]), dtype=np.float32)
    np.subtract(image.transpose(2, 0, 1), MEAN_RGB[:, None, None], out=out)
    np.divide(out, STD_RGB[:, None, None], out=out)
    return torch.from_numpy(out)


@dataclass
class PersonCrop:
    """Network input of one person: the crop and how it relates to the original image."""

    img: torch.Tensor  # [3, img_res, img_res], normalised
    crop_transform: np.ndarray  # [2, 3] original px -> crop px
    center: np.ndarray  # [2] px
    box_size: float  # side of the square crop in the original image, px
    full_image: torch.Tensor | None = None  # [3, H, W], normalised (full model only)


def crop_person(image_rgb: np.ndarray, bbox_xywh, img_res: int = 256, scale_factor: float = 1.25,
                keep_full_image: bool = False, full_image: torch.Tensor | None = None) -> PersonCrop:
    """Crop one person for the networks.

    ``scale_factor``: 1.25 for a tight detector box (MMHuman3D's demo); 1.0 for dataset boxes,
    which the converters already enlarged (MMHuman3D's evaluation).
    """
    center, scale = bbox_xywh_to_center_scale(np.asarray(bbox_xywh, dtype=np.float64)[:4], 1.0, scale_factor)
    side = float(max(scale))
    affine = crop_affine(center, np.array([side, side]), img_res)
    crop = cv2.warpAffine(np.asarray(image_rgb), affine, (img_res, img_res), flags=cv2.INTER_LINEAR)
    full = None
    if keep_full_image:
        full = full_image if full_image is not None else normalize_image(image_rgb)
    return PersonCrop(normalize_image(crop), affine.astype(np.float32), center.astype(np.float32), side, full)


@dataclass
class ModelInput:
    """A batch for :class:`expose_cli.models.expose.Predictor`."""

    img: torch.Tensor  # [B, 3, res, res]
    crop_transform: torch.Tensor  # [B, 2, 3]
    box_size: torch.Tensor  # [B]
    full_images: torch.Tensor | None = None  # [B, 3, H, W], zero-padded at the bottom/right

    def _map(self, fn) -> ModelInput:
        """``fn`` applied to every tensor (``full_images`` may be None)."""
        tensors = (self.img, self.crop_transform, self.box_size, self.full_images)
        return ModelInput(*(None if t is None else fn(t) for t in tensors))

    def to(self, device, non_blocking: bool = False) -> ModelInput:
        """On ``device``; ``non_blocking``: an asynchronous copy (from pinned memory to a GPU)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> ModelInput:
        """In page-locked memory, so a copy to a GPU can overlap with other work."""
        return self._map(torch.Tensor.pin_memory)


def collate(crops: list[PersonCrop], device: torch.device | str | None = None) -> ModelInput:
    """Stack person crops; full images of different sizes are padded to the largest (top-left).

    ``device`` (a GPU): the crops go through pinned memory with an asynchronous copy, and the full
    images are copied once per image (persons of one image share its tensor) and padded there, so
    the large padded batch is never built in host memory. Otherwise the batch stays on the CPU."""
    img = torch.stack([c.img for c in crops])
    transforms = torch.as_tensor(np.stack([c.crop_transform for c in crops]), dtype=torch.float32)
    sizes = torch.tensor([c.box_size for c in crops], dtype=torch.float32)
    device = torch.device(device) if device is not None else torch.device("cpu")
    full = None
    if all(c.full_image is not None for c in crops):
        full = _full_images(crops, device)
    if device.type != "cpu":
        small = ModelInput(img, transforms, sizes)
        small = small.pin_memory() if device.type == "cuda" else small  # pinning helps CUDA copies only
        small = small.to(device, non_blocking=True)
        img, transforms, sizes = small.img, small.crop_transform, small.box_size
    return ModelInput(img, transforms, sizes, full)


def _full_images(crops: list[PersonCrop], device: torch.device) -> torch.Tensor:
    """``[B, 3, H, W]`` on ``device``: each crop's full image, zero-padded at the bottom and right."""
    H = max(c.full_image.shape[1] for c in crops)
    W = max(c.full_image.shape[2] for c in crops)
    padded = any(tuple(c.full_image.shape[1:]) != (H, W) for c in crops)
    full = (torch.zeros if padded else torch.empty)(len(crops), 3, H, W, device=device)
    on_device: dict[int, torch.Tensor] = {}  # one copy per image (its persons share the tensor)
    for i, c in enumerate(crops):
        src = c.full_image
        if device.type != "cpu":
            if id(src) not in on_device:
                on_device[id(src)] = src.to(device)
            src = on_device[id(src)]
        full[i, :, : src.shape[1], : src.shape[2]] = src
    return full
