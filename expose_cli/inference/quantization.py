"""int8 backbones (``--precision int8``): post-training static quantization of the exported graphs.

The backbones' ONNX graphs (:mod:`expose_cli.inference.onnx_export`, role ``backbone``) are
quantized by ONNX Runtime's quantizer into QDQ graphs (QuantizeLinear / DequantizeLinear pairs
around every convolution and matrix product) that ONNX Runtime and OpenVINO both run in int8:

- weights: int8, symmetric, one scale per output channel;
- activations: uint8, asymmetric, one scale per tensor, set from the range (min / max) each tensor
  takes on the calibration set.

The calibration set (:func:`calibration_scene`) is procedural and deterministic, so every machine
quantizes a checkpoint the same way and the graph can be cached: ``crops`` scenes (32 by default)
of smooth colour fields with a stick figure of filled ellipses and limbs in random colours and pose
inside a person box, under fine texture of a random strength (image-like statistics, from flat to
busy), each cropped as a detector box is (:func:`expose_cli.models.crop_person`). The model runs
on them in torch fp32 and each backbone is calibrated on what it is fed there: the body network on
the person crops, the full model's hand and face networks on the crops its attention step takes
from the scenes (the hand and face models alone: on the scenes' person crops). These are not
photographs; how far int8 moves the vertices from fp32 is measured by
``benchmarks/bench_models.py`` and reported on every ``expose eval --precision int8`` run
(docs/models.md has the figures).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.errors import ExposeError, option
from expose_cli.kinds import KINDS
from expose_cli.models import Predictor, collate, crop_person
from expose_cli.utils.atomic import atomic_path

#: Side (px) of a calibration scene.
SCENE_SIDE = 512
#: Strongest fine texture of a scene: Gaussian noise of a standard deviation drawn from 0 to this
#: (grey levels). Scenes with only mild texture (12 levels) set ranges that busier crops exceed:
#: on the benchmark's noise crop the full-size body moved 8.3 mm on average, 2.6 mm with this mix,
#: while held-out mildly textured scenes stayed at 0.4-0.5 mm either way (docs/models.md).
TEXTURE_MAX = 80.0
#: Version of :func:`calibration_scene`'s drawing: part of every int8 graph's cache key.
SCENES_VERSION = 1
QUANTIZER_INSTALL = "pip install 'expose-cli[onnx]'"
_BATCH = 8  # calibration crops run through the model at a time


@dataclass(frozen=True)
class QuantSettings:
    """How the int8 graphs are made; every field is part of their cache key."""

    crops: int = 32  # calibration scenes (persons)
    seed: int = 0  # of the scenes
    method: str = "minmax"  # activation ranges: minmax | entropy | percentile (ONNX Runtime's methods)
    per_channel: bool = True  # one weight scale per output channel (else one per tensor)

    def describe(self) -> str:
        """The settings and the fixed choices, as canonical JSON (what goes into the cache key)."""
        return json.dumps({**asdict(self), "format": "QDQ", "weights": "int8 symmetric",
                           "activations": "uint8 asymmetric", "scenes": SCENES_VERSION, "scene_side": SCENE_SIDE,
                           "texture_max": TEXTURE_MAX}, sort_keys=True)


#: The settings ``--precision int8`` uses.
DEFAULT = QuantSettings()


def require_quantizer():
    """ONNX Runtime's quantization module, or one line naming the pip command that installs it."""
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ExposeError(f"{option('precision')} int8 quantizes the graphs with onnxruntime, which is not installed: "
                          f"{QUANTIZER_INSTALL}", exit_code=2) from None
    return quantization


def calibration_scene(index: int, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Scene ``index`` of the calibration set: an RGB uint8 image (:data:`SCENE_SIDE` px square) and
    the person box in it ``[x, y, w, h]`` (px). Depends on ``(seed, index)`` only."""
    rng = np.random.default_rng([seed, index])
    side = SCENE_SIDE
    coarse = rng.uniform(0.0, 255.0, (8, 8, 3)).astype(np.float32)
    img = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
    w, h = rng.uniform(0.25, 0.45) * side, rng.uniform(0.6, 0.85) * side
    x, y = rng.uniform(0.0, side - w), rng.uniform(0.0, side - h)
    _draw_figure(img, rng, x + w / 2, y, w, h)
    img += rng.normal(0.0, rng.uniform(0.0, TEXTURE_MAX), img.shape).astype(np.float32)
    return np.clip(img, 0.0, 255.0).astype(np.uint8), [float(x), float(y), float(w), float(h)]


def _draw_figure(img: np.ndarray, rng: np.random.Generator, cx: float, top: float, w: float, h: float) -> None:
    """A stick figure in the box (centre x ``cx``, top ``top``, ``w`` x ``h`` px): head, torso,
    arms and legs at random angles, each part its own random colour."""
    def colour():
        return tuple(float(c) for c in rng.uniform(0.0, 255.0, 3))

    def pt(px, py):
        return int(round(px)), int(round(py))

    head_r, neck, hip = 0.08 * h, top + 0.16 * h, top + 0.55 * h
    cv2.circle(img, pt(cx, top + head_r), int(head_r), colour(), -1, cv2.LINE_AA)
    cv2.ellipse(img, pt(cx, (neck + hip) / 2), pt(0.22 * w, (hip - neck) / 2), 0.0, 0.0, 360.0, colour(), -1, cv2.LINE_AA)
    thick = max(2, int(0.07 * w))
    for sx, y0, length in ((-1, neck + 0.03 * h, 0.35 * h), (1, neck + 0.03 * h, 0.35 * h),
                           (-1, hip, 0.45 * h), (1, hip, 0.45 * h)):  # arms, legs
        angle = np.deg2rad(rng.uniform(5.0, 60.0))
        x0 = cx + sx * 0.15 * w
        end = (x0 + sx * length * np.sin(angle), y0 + length * np.cos(angle))
        cv2.line(img, pt(x0, y0), pt(*end), colour(), thick, cv2.LINE_AA)


def calibration_inputs(predictor: Predictor, settings: QuantSettings = DEFAULT) -> dict[str, np.ndarray]:
    """What each backbone of ``predictor`` is fed on the calibration scenes, run in torch fp32:
    ``{backbone attribute name: [N, 3, side, side] float32}`` (normalised crops)."""
    keep_full = KINDS[predictor.kind].keeps_full_image
    seen: dict[str, list[np.ndarray]] = {}

    def capture(name: str, img: torch.Tensor) -> torch.Tensor:
        seen.setdefault(name, []).append(img.detach().float().cpu().numpy().copy())
        return Predictor._features(predictor, name, img)

    with torch.inference_mode():
        for start in range(0, settings.crops, _BATCH):
            crops = [crop_person(*calibration_scene(i, settings.seed), img_res=predictor.img_res, keep_full_image=keep_full)
                     for i in range(start, min(start + _BATCH, settings.crops))]
            predictor.model(collate(crops).to(predictor.device), features=capture)
    return {name: np.concatenate(parts) for name, parts in seen.items()}


def quantize_graph(fp32: Path, out: Path, inputs: np.ndarray, settings: QuantSettings = DEFAULT) -> Path:
    """Write the int8 (QDQ) graph of the fp32 backbone graph ``fp32`` to ``out`` (atomically),
    calibrated on ``inputs`` (``[N, 3, H, W]``, the graph's ``img`` input), with the fp32 graph's
    metadata kept."""
    quant = require_quantizer()
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": quant.CalibrationMethod.MinMax, "entropy": quant.CalibrationMethod.Entropy,
               "percentile": quant.CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="expose-int8-") as tmp, atomic_path(out) as target:
        prepared = Path(tmp) / "prepared.onnx"  # constants folded, shapes inferred: what the quantizer expects
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quant.quantize_static(str(prepared), str(Path(tmp) / "int8.onnx"), _Reader(inputs),
                              quant_format=quant.QuantFormat.QDQ, per_channel=settings.per_channel,
                              activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8,
                              calibrate_method=methods[settings.method],
                              extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        model = onnx.load(str(Path(tmp) / "int8.onnx"))
        del model.metadata_props[:]
        model.metadata_props.extend(onnx.load(str(fp32), load_external_data=False).metadata_props)
        onnx.save(model, str(target))
    return out


class _Reader:
    """ONNX Runtime's calibration reader (anything with ``get_next``) over ``inputs``, a batch a call."""

    def __init__(self, inputs: np.ndarray) -> None:
        self.inputs, self.start = inputs, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.inputs):
            return None
        self.start += _BATCH
        return {"img": np.ascontiguousarray(self.inputs[self.start - _BATCH:self.start], dtype=np.float32)}
