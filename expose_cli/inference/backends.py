"""Where the backbones run: torch, ONNX Runtime or OpenVINO, in fp32 (exact), bf16 or int8 (fast).

The backbones hold almost all of the work (the full model's 42 GFLOP per person are HRNet's and
the two ResNets'); the heads (small MLPs), the attention step and the body models stay in torch,
in float32, whatever the backend. So a backend changes only :meth:`Predictor._features`.

- exact path: ``--precision fp32`` on any backend: agrees with torch to ~1e-5 m;
- fast path: ``--precision bf16`` (torch autocast or OpenVINO's bf16 inference precision), on a
  CPU with native bf16 (AVX512-BF16 or AMX) or a CUDA GPU; its deviation from the exact path is
  measured by ``benchmarks/bench_models.py`` and reported by ``expose eval --json``;
- int8 path: ``--precision int8`` (ONNX Runtime or OpenVINO on the CPU): the graphs quantized after
  training, calibrated on a fixed procedural set (:mod:`expose_cli.inference.quantization`); never
  chosen by ``--backend auto`` on its own, since it is not exact.

``--backend auto`` (the default) takes the fastest runtime installed that keeps the asked
precision: on the CPU OpenVINO, then ONNX Runtime, then torch (not for int8); on a GPU torch.
:func:`auto_order` is that choice, :func:`make_predictor` builds it (falling back to the next
runtime, with a warning, when one fails to build) and :func:`runtime_info` says what runs.
The exported graphs are kept in a :class:`expose_cli.inference.graph_cache.GraphCache`.
"""

from __future__ import annotations

import functools
import importlib
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from expose_cli.errors import ExposeError, option
from expose_cli.inference import onnx_export, quantization
from expose_cli.inference.graph_cache import GraphCache, runtime_version, writable_folder
from expose_cli.models import ModelInput, Prediction, Predictor

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _ort_runner(path: Path, threads: int, precision: str) -> Callable:
    """ONNX Runtime's CPU session of the graph at ``path`` (fp32, or the int8 graph as it is)."""
    session = onnx_export.ort_session(path, threads)

    def run(img: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(img.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {"img": array})[0])

    return run


@functools.cache
def _openvino_core():
    """The process's one OpenVINO ``Core``, kept until the process ends.

    Loading OpenVINO's CPU plugin gives the loading thread an alternate signal stack of the
    plugin's own, which unloading the plugin unmaps without undoing (OpenVINO 2026.4). With a
    ``Core`` per predictor, the plugin unloaded as the last one was freed, and every later signal
    (a child's SIGCHLD, SIGTERM, Ctrl-C) was handled on unmapped or reused memory: the process
    crashed at a random later point. Kept loaded, that stack stays valid."""
    return require("openvino").Core()


def _openvino_runner(path: Path, threads: int, precision: str) -> Callable:
    """OpenVINO's CPU plugin compiling the graph at ``path`` (fp32, or bf16 inference precision; an
    int8 (QDQ) graph runs its quantized layers in int8 whatever the hint)."""
    core = _openvino_core()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
              "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()

    def run(img: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(img.detach().cpu().numpy(), dtype=np.float32)
        request.infer({0: array})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run


@dataclass(frozen=True)
class Runtime:
    """A runtime the backbones can run on besides torch, on the CPU, from their exported ONNX graphs."""

    module: str  # the package to import
    install: str  # the pip command that installs it (and onnx)
    precisions: tuple[str, ...]  # what it runs
    runner: Callable[[Path, int, str], Callable[[torch.Tensor], torch.Tensor]]  # (graph, threads, precision) -> img -> features


#: The runtimes besides torch, fastest first (``--backend auto`` on the CPU takes the first installed
#: that runs the asked precision, then torch; all exact in fp32; docs/models.md has the figures).
RUNTIMES: dict[str, Runtime] = {
    "openvino": Runtime("openvino", "pip install 'expose-cli[openvino]'", ("fp32", "bf16", "int8"), _openvino_runner),
    "onnxruntime": Runtime("onnxruntime", "pip install 'expose-cli[onnx]'", ("fp32", "int8"), _ort_runner),
}
BACKENDS = ("auto", "torch", *sorted(RUNTIMES))


def require(backend: str):
    """The backend's module, or one line naming the pip command that installs it."""
    module, command = RUNTIMES[backend].module, RUNTIMES[backend].install
    try:
        importlib.import_module("onnx")
        return importlib.import_module(module)
    except ImportError:
        raise ExposeError(f"{option('backend')} {backend} needs the {module} and onnx packages: {command}",
                          exit_code=2) from None


def installed(backend: str) -> bool:
    """Whether ``backend`` can run here (torch always; the others need their package and onnx)."""
    if backend == "torch":
        return True
    try:
        require(backend)
        return True
    except ExposeError:
        return False


def auto_order(precision: str, device: torch.device) -> list[str]:
    """The runtimes ``--backend auto`` tries, best first: on the CPU the installed ones of
    :data:`RUNTIMES` that run ``precision``, then torch (int8: the runtimes only, maybe none); on
    any other device torch alone."""
    if device.type != "cpu":
        return ["torch"]
    runtimes = [b for b, runtime in RUNTIMES.items() if precision in runtime.precisions and installed(b)]
    return runtimes + ([] if precision == "int8" else ["torch"])


def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic on this CPU (x86 AVX512-BF16 / AMX-BF16, or ARM's BF16 extension)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = set(" ".join(line for line in fh if line.startswith(("flags", "Features"))).split())
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    except OSError:  # not Linux: oneDNN's own check (true also where it only emulates bf16)
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_choice(backend: str, precision: str, device: torch.device, warn: Callable[[str], None] | None = None) -> str:
    """Validate ``--backend``/``--precision`` for ``device``; returns the precision that will run
    (bf16 on a CPU without native bf16: ``warn`` gets one line and fp32 runs). A choice that cannot
    run is bad usage, found before any work: one line, exit code 2."""
    if backend not in BACKENDS:
        raise ExposeError(f"unknown {option('backend')} {backend!r}", hint="use " + ", ".join(BACKENDS), exit_code=2)
    if precision not in PRECISIONS:
        raise ExposeError(f"unknown {option('precision')} {precision!r}", hint="use fp32, bf16 or int8 (fp16: CUDA only)", exit_code=2)
    if precision == "int8":
        _check_int8(backend, device)
    if backend == "auto":
        backend = "torch" if device.type != "cpu" or precision == "fp16" else auto_order(precision, device)[0]
    if backend != "torch" and device.type != "cpu":
        raise ExposeError(f"{option('backend')} {backend} runs on the CPU, not on {device}",
                          hint=f"use {option('device')} cpu, or {option('backend')} torch on the GPU", exit_code=2)
    if backend != "torch":
        require(backend)  # a missing extra stops here, before any file is read
    if device.type == "cuda":
        return precision
    if precision == "fp16":
        raise ExposeError(f"{option('precision')} fp16 needs a CUDA device", hint=f"use {option('precision')} bf16 or fp32 on CPU", exit_code=2)
    if backend in RUNTIMES and precision not in RUNTIMES[backend].precisions:
        others = [b for b, runtime in RUNTIMES.items() if precision in runtime.precisions]
        raise ExposeError(f"{option('backend')} {backend} runs {' / '.join(RUNTIMES[backend].precisions)} only on CPU",
                          hint=f"use {option('backend')} {' or '.join([*others, 'torch'])} for {option('precision')} {precision}", exit_code=2)
    if precision == "bf16" and not cpu_has_bf16():
        message = "--precision bf16: this CPU has no native bf16 (AVX512-BF16, AMX): running fp32"
        (warn or (lambda m: warnings.warn(m, stacklevel=3)))(message)
        return "fp32"
    return precision


def _check_int8(backend: str, device: torch.device) -> None:
    """One line where ``--precision int8`` cannot run: on a GPU, in torch, with no runtime or no quantizer."""
    if device.type != "cpu":
        raise ExposeError(f"{option('precision')} int8 runs on the CPU, not on {device}",
                          hint=f"use {option('device')} cpu, or {option('precision')} bf16 or fp16 on the GPU", exit_code=2)
    if backend == "torch":
        raise ExposeError(f"{option('precision')} int8 runs in onnxruntime or openvino, not in torch",
                          hint=f"use {option('backend')} auto, openvino or onnxruntime", exit_code=2)
    if backend == "auto" and not auto_order("int8", device):
        raise ExposeError(f"{option('precision')} int8 needs onnxruntime or openvino, and neither is installed",
                          hint=RUNTIMES["onnxruntime"].install, exit_code=2)
    quantization.require_quantizer()


class BackendPredictor:
    """``base`` (a :class:`Predictor`) with its backbones run through ``runners[name](img) ->
    features``: it holds ``base`` and runs ``base``'s model with those features; every other
    attribute (networks, body models, device, crop size) is ``base``'s. In training mode the torch
    modules run as usual."""

    def __init__(self, base: Predictor, runners: dict[str, Callable[[torch.Tensor], torch.Tensor]],
                 backend: str, precision: str, keep: object = None) -> None:
        self.base, self.runners, self.backend, self.precision = base, runners, backend, precision
        self._keep = keep  # e.g. the temporary folder of the exported graphs

    def __getattr__(self, name: str):
        if name == "base":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)

    def _features(self, name: str, img: torch.Tensor) -> torch.Tensor:
        if self.base.net.training:
            return self.base._features(name, img)
        return self.runners[name](img)

    def __call__(self, batch: ModelInput) -> Prediction:
        with torch.inference_mode():
            return self.predict(batch.to(self.device, non_blocking=True))

    def to(self, device) -> BackendPredictor:
        """``base`` moved (the torch-autocast runners follow it; the ONNX runners stay on the CPU)."""
        self.base.to(device)
        return self

    def predict(self, batch: ModelInput) -> Prediction:
        """``base``'s model with these backbones (no ``inference_mode`` here, as :meth:`Predictor.predict`)."""
        return self.base.model(batch, features=self._features)


def _torch_autocast_runner(predictor: Predictor, name: str, precision: str) -> Callable:
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16

    def run(img: torch.Tensor) -> torch.Tensor:
        with torch.autocast(predictor.device.type, dtype=dtype):  # where the weights are now
            features = Predictor._features(predictor, name, img)
        return features.float()

    return run


def make_predictor(base: Predictor, backend: str = "torch", precision: str = "fp32",
                   threads: int | None = None, cache: GraphCache | None = None,
                   warn: Callable[[str], None] | None = None,
                   quant: quantization.QuantSettings = quantization.DEFAULT,
                   info: Callable[[str], None] | None = None) -> Predictor:
    """``base`` itself for the exact torch path, else a :class:`BackendPredictor` (reduced
    precision: the backbones only; heads, attention and body models stay float32).

    ``precision`` must have gone through :func:`check_choice`. ONNX Runtime and OpenVINO read the
    backbones' ONNX graphs from ``cache`` (exported there when missing, stale or damaged) or, with
    no cache, from a temporary folder exported now. ``backend="auto"`` tries :func:`auto_order`
    in turn: a runtime that fails to build is reported to ``warn`` (one line) and the next runs
    (the last one's failure is raised). ``quant``: how int8 graphs are quantized and calibrated;
    ``info`` gets a line before each backbone is quantized (a minute or so, once per cache entry).
    """
    int8 = Int8Job(quant, functools.cache(lambda: quantization.calibration_inputs(base, quant)),
                   info or (lambda message: None)) if precision == "int8" else None
    if backend != "auto":
        return _make_one(base, backend, precision, threads, cache, int8)
    order = auto_order(precision, base.device)
    for i, candidate in enumerate(order):
        if i == len(order) - 1:
            return _make_one(base, candidate, precision, threads, cache, int8)
        try:
            return _make_one(base, candidate, precision, threads, cache, int8)
        except Exception as exc:  # noqa: BLE001 - any runtime failure: the next runtime runs
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            (warn or (lambda m: warnings.warn(m, stacklevel=2)))(
                f"--backend auto: {candidate} failed ({text}); running {order[i + 1]} instead")
    raise ExposeError(f"{option('precision')} {precision}: no runtime installed runs it", hint=RUNTIMES["onnxruntime"].install,
                      exit_code=2)


@dataclass(frozen=True)
class Int8Job:
    """What the int8 graphs are made from: the settings (part of their key), the calibration inputs
    of every backbone (computed once, when a graph is first quantized) and where a line goes before
    each quantization."""

    settings: quantization.QuantSettings
    inputs: Callable[[], dict[str, np.ndarray]]  # () -> {backbone attribute name: [N, 3, H, W]}
    say: Callable[[str], None]


def _make_one(base: Predictor, backend: str, precision: str, threads: int | None,
              cache: GraphCache | None, int8: Int8Job | None = None) -> Predictor:
    names = [spec.prefix + "backbone" for spec in onnx_export.network_specs(base.net)]
    if backend == "torch":
        if precision == "fp32":
            return base
        return BackendPredictor(base, {n: _torch_autocast_runner(base, n, precision) for n in names}, backend, precision)
    require(backend)
    threads = threads or torch.get_num_threads()
    folder = None if cache is not None else tempfile.TemporaryDirectory(prefix="expose-onnx-")
    runners = {}
    for spec in onnx_export.network_specs(base.net):
        path = _backbone_graph(base.net, spec, backend, cache, folder, int8)
        runners[spec.prefix + "backbone"] = RUNTIMES[backend].runner(path, threads, precision)
    return BackendPredictor(base, runners, backend, precision, keep=folder)


def _backbone_graph(net, spec: onnx_export.NetworkSpec, backend: str, cache: GraphCache | None,
                    folder: tempfile.TemporaryDirectory | None, int8: Int8Job | None = None) -> Path:
    """The ONNX graph of one backbone: from ``cache`` (verified, exported when needed) or exported
    into ``folder`` and checked. ``int8``: its int8 graph instead (quantized from a fresh fp32 export;
    the settings and the quantizer's version are part of its key)."""
    def export(path: Path) -> Path:
        onnx_export.export_network(net, spec, path, opset=onnx_export.DEFAULT_OPSET, role="backbone")
        onnx_export.check_graph(path, net.cfg.kind, spec.name, "backbone")
        return path

    def export_int8(path: Path) -> Path:
        with tempfile.TemporaryDirectory(prefix="expose-onnx-") as tmp:
            fp32 = export(Path(tmp) / "fp32.onnx")
            int8.say(f"quantizing the {spec.name} backbone to int8, calibrated on {int8.settings.crops} scenes "
                     "(once: the graph is cached)")
            quantization.quantize_graph(fp32, path, int8.inputs()[spec.prefix + "backbone"], int8.settings)
        onnx_export.check_graph(path, net.cfg.kind, spec.name, "backbone")
        return path

    suffix = "-int8" if int8 else ""
    if cache is None:
        return (export_int8 if int8 else export)(Path(folder.name) / f"{spec.name}_backbone{suffix}.onnx")
    config = json.dumps(net.cfg.to_dict(), sort_keys=True)
    parts = cache.key_parts(getattr(net, spec.prefix + "backbone"), f"{net.cfg.kind}.{spec.name}_backbone",
                            config, onnx_export.DEFAULT_OPSET, backend)
    if int8:
        # the same int8 graph serves both runtimes: its key names the quantizer, not the reader
        parts = {**parts, "runtime": "any", "int8": int8.settings.describe(), "quantizer": runtime_version("onnxruntime")}
    return cache.graph(f"{net.cfg.kind}-{spec.name}{suffix}", parts, export_int8 if int8 else export)


def runtime_info(predictor) -> dict[str, str]:
    """What runs the backbones of ``predictor``: ``{"backend", "precision", "device"}`` (the
    runtime actually built, after ``auto`` and any fallback)."""
    return {"backend": getattr(predictor, "backend", "torch"), "precision": getattr(predictor, "precision", "fp32"),
            "device": str(getattr(predictor, "device", "cpu"))}


def describe_runtime(info: dict[str, str]) -> str:
    """``openvino fp32 on cpu``: the runtime for a closing line."""
    return f"{info['backend']} {info['precision']} on {info['device']}"


def default_cache(tree, warn: Callable[[str], None] | None = None) -> GraphCache | None:
    """The graph cache of a data tree (``<data>/cache/onnx``), or ``None`` (graphs exported to a
    temporary folder, one ``warn`` line) when that folder cannot be written."""
    folder = Path(tree.root) / "cache" / "onnx"
    if writable_folder(folder):
        return GraphCache(folder, warn)
    if warn is not None:
        warn(f"{folder}: cannot write the graph cache there; exporting to a temporary folder "
             "(check the folder's permissions to keep exports between runs)")
    return None


def vertex_deviation_mm(pred: Prediction, ref: Prediction) -> dict[str, float]:
    """Per-vertex distance between two predictions of the same batch, in millimetres."""
    dist = torch.linalg.vector_norm(pred.vertices.float() - ref.vertices.float(), dim=-1) * 1000.0
    return {"mean_mm": round(float(dist.mean()), 4), "max_mm": round(float(dist.max()), 4)}


class MeasuredPredictor:
    """Runs ``fast``; on the first batch runs ``exact`` too and keeps the vertex deviation
    (:attr:`deviation`), so results on the fast path carry their accuracy cost."""

    def __init__(self, fast: Predictor, exact: Predictor) -> None:
        self.fast, self.exact = fast, exact
        self.deviation: dict | None = None

    def __getattr__(self, name: str):
        return getattr(self.fast, name)

    def __call__(self, batch) -> Prediction:
        pred = self.fast(batch)
        if self.deviation is None:
            ref = self.exact(batch)
            self.deviation = {**vertex_deviation_mm(pred, ref), "samples": int(pred.vertices.shape[0])}
        return pred


def measured_predictor(base: Predictor, backend: str, precision: str, cache: GraphCache | None = None,
                       warn: Callable[[str], None] | None = None, info: Callable[[str], None] | None = None):
    """``base`` on the exact path (torch fp32); otherwise the fast predictor wrapped in a
    :class:`MeasuredPredictor` against ``base``."""
    fast = make_predictor(base, backend, precision, cache=cache, warn=warn, info=info)
    return base if fast is base else MeasuredPredictor(fast, base)
