"""ONNX graphs of the ExPose networks, and loading them back with a check.

One graph per network (backbone + head), batch axis dynamic:

- ``body``: ``img [N, 3, 256, 256]`` -> the body parameters;
- ``hand``: ``img [N, 3, 224, 224]`` (right hands; mirror left hands first) -> hand parameters;
- ``face``: ``img [N, 3, 256, 256]`` -> face parameters.

The full model (``expose``) is exported as its three networks; its hand and face networks take a
second input, ``cond [N, P]``, the starting vector of their regressor that the body-driven
attention builds (:mod:`expose_cli.models.attention`). The attention step itself (SMPL-X keypoints,
crop sampling, merging) stays in Python: it needs the licensed SMPL-X model, which must not be
baked into a file one might share. Every graph outputs ``params [N, P]`` (the regressor's flat
vector, layout in the ``expose.layout`` metadata) and the same decoded: rotation matrices per part
``[N, J, 3, 3]``, ``betas``, ``expression`` (body, face) and ``camera [N, 3] = [s, tx, ty]``.
docs/export.md documents names, shapes and units.

The backends (:mod:`expose_cli.inference.backends`) export the backbones alone
(``role="backbone"``: ``img -> features [N, C]``) and keep the small heads in torch.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from expose_cli import __version__
from expose_cli.errors import ExposeError, option
from expose_cli.kinds import part_modules
from expose_cli.models.model import module_device
from expose_cli.utils.atomic import atomic_path

#: The opset written by default: opset 17 is read by onnxruntime >= 1.13 and OpenVINO >= 2022.3.
DEFAULT_OPSET = 17
ONNX_EXTRA = "pip install 'expose-cli[onnx]'"


@dataclass(frozen=True)
class NetworkSpec:
    """One network of a model: its name, attribute prefix in ``ExPoseNet`` and crop size (px)."""

    name: str  # body | hand | face
    prefix: str  # "" (the model's own network), "hand_" or "face_" (parts of the full model)
    img_res: int
    conditioned: bool  # takes the regressor's starting vector as a second input ``cond``


def network_specs(net) -> list[NetworkSpec]:
    """The networks of ``net`` (an ``ExPoseNet``) in the order the full model runs them."""
    sides = net.cfg.crop_sides()  # the full model's hand and face networks are conditioned on the body's
    return [NetworkSpec(part, backbone.removesuffix("backbone"), sides[part], backbone != "backbone")
            for part, (backbone, _) in part_modules(net.cfg.kind).items()]


def output_names(head) -> list[str]:
    """Graph outputs of a network whose head is ``head``: params, each rotation part, betas, [expression,] camera."""
    return ["params", *[p.name for p in head.parts], "betas", *(["expression"] if head.has_expression else []), "camera"]


def head_layout(head) -> dict[str, list[int]]:
    """``name -> [start, stop)`` slices of ``params`` (6D rotations, betas, expression, raw camera)."""
    names = [p.name for p in head.parts] + ["shape"] + (["expression"] if head.has_expression else []) + ["camera"]
    out = {}
    for name in names:
        idxs = getattr(head, f"{name}_idxs")
        out["betas" if name == "shape" else name] = [int(idxs[0]), int(idxs[-1]) + 1]
    return out


class NetworkGraph(nn.Module):
    """Backbone + head as one module with plain tensor outputs (what the exporter traces)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, img: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        params = self.head.regressor(self.backbone(img), cond)[-1]
        out = self.head.decode(params)
        rest = [out.betas, *([out.expression] if out.expression is not None else []), out.camera]
        rotations = [out.rotations[p.name].reshape(-1, p.num_joints, 3, 3) for p in self.head.parts]  # static J
        return (params, *rotations, *rest)


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise ExposeError(f"ONNX export needs the onnx package: {ONNX_EXTRA}") from None
    return onnx


def export_module(module: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], path: Path,
                  opset: int, metadata: dict[str, str]) -> Path:
    """Trace ``module`` on ``inputs`` to ``path`` (atomically) with a dynamic batch axis and metadata."""
    onnx = require_onnx()
    dynamic = {name: {0: "batch"} for name in [*inputs, *outputs]}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(module.eval(), tuple(inputs.values()), str(tmp), input_names=list(inputs),
                          output_names=outputs, dynamic_axes=dynamic, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
        model = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
    return path


def export_network(net, spec: NetworkSpec, path: Path, opset: int = DEFAULT_OPSET, role: str = "network") -> Path:
    """One network of ``net`` (``role="network"``: backbone + head; ``"backbone"``: features only)."""
    backbone, head = getattr(net, spec.prefix + "backbone"), getattr(net, spec.prefix + "head")
    img = torch.zeros(2, 3, spec.img_res, spec.img_res, device=module_device(backbone))  # where the weights are
    meta = {"expose.kind": net.cfg.kind, "expose.network": spec.name, "expose.role": role,
            "expose.img_res": str(spec.img_res), "expose.version": __version__,
            "expose.config": json.dumps(net.cfg.to_dict())}
    with torch.no_grad():
        if role == "backbone":
            return export_module(backbone, {"img": img}, ["features"], path, opset, meta)
        inputs = {"img": img}
        if spec.conditioned:
            inputs["cond"] = head.regressor.mean_param.expand(2, -1).clone()
        meta["expose.layout"] = json.dumps(head_layout(head))
        return export_module(NetworkGraph(backbone, head), inputs, output_names(head), path, opset, meta)


def target_paths(net, out: Path) -> list[Path]:
    """The files :func:`export_onnx` writes for ``net`` at ``out``."""
    out = Path(out)
    if out.suffix.lower() == ".onnx":
        return [out]
    return [out / f"{spec.name}.onnx" for spec in network_specs(net)]


def export_onnx(net, out: Path, opset: int = DEFAULT_OPSET) -> list[Path]:
    """Every network of ``net`` as ONNX. ``out``: a ``.onnx`` file (body, hand, face models) or a
    folder (``<network>.onnx`` inside; the full model's three networks always go to a folder)."""
    specs = network_specs(net)
    out = Path(out)
    if out.suffix.lower() == ".onnx":
        if len(specs) > 1:
            raise ExposeError(f"the full model exports as three networks (body, hand, face): {out} must be a folder",
                              hint=f"use {option('out')} {out.with_suffix('')}")
        return [export_network(net, specs[0], out, opset)]
    out.mkdir(parents=True, exist_ok=True)
    return [export_network(net, spec, out / f"{spec.name}.onnx", opset) for spec in specs]


def graph_metadata(path: Path) -> tuple[dict[str, str], int]:
    """The ``expose.*`` metadata and the default-domain opset of an ONNX file (onnx package)."""
    onnx = require_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's parse errors have many types
        raise ExposeError(f"not an ONNX model ({type(exc).__name__})", path=path) from None
    meta = {p.key: p.value for p in model.metadata_props}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return meta, opset


def check_graph(path: Path, kind: str, network: str, role: str = "network") -> int:
    """Refuse (one line) an ONNX file that is not ``network`` of an ``expose`` ``kind`` model.
    Returns its opset."""
    meta, opset = graph_metadata(path)
    found = (meta.get("expose.kind"), meta.get("expose.network"), meta.get("expose.role", "network"))
    if found != (kind, network, role):
        what = "not exported by expose" if found[0] is None else f"the {found[1]} {found[2]} of a {found[0]} model"
        raise ExposeError(f"{what}; expected the {network} {role} of a {kind} model", path=path,
                          hint=f"export it with: expose export onnx {kind} --out DIR")
    return opset


def ort_session(path: Path, threads: int):
    """An onnxruntime CPU session; a graph newer than the runtime's opsets is one clear line."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExposeError(f"onnxruntime is not installed: {ONNX_EXTRA}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        text = str(exc)
        if "opset" in text.lower():
            _, opset = graph_metadata(path)
            raise ExposeError(f"uses ONNX opset {opset}, newer than onnxruntime {ort.__version__} reads", path=path,
                              hint=f"upgrade onnxruntime, or export again with a lower {option('opset')}") from None
        raise ExposeError(f"onnxruntime cannot load it: {text.splitlines()[0] if text else type(exc).__name__}",
                          path=path) from None
