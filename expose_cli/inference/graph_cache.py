"""Exported backbone graphs kept between runs, under the data tree (``data/cache/onnx/``).

Exporting HRNet-W48 to ONNX takes seconds on an idle CPU (tens on a busy one); every
``--backend onnxruntime|openvino`` run needs the same graph again. An entry is two files:

- ``<network>-<key>.onnx``: the graph (``expose_cli.inference.onnx_export``, role ``backbone``);
- ``<network>-<key>.json``: its record: the key, the graph's size and SHA-256, what went into the key.

The key is a SHA-256 of everything the graph depends on: the backbone's weights (names, shapes,
dtypes, bytes: the checkpoint's content, so a changed or retrained checkpoint gets a new key), the
model config, the network, the opset, and the versions of expose, torch, onnx and the runtime that
will read it. An entry is used only when its record names the same key and the graph's size and
SHA-256 match the record; anything else (a truncated or edited graph, a missing or unreadable
record) is exported again, with one line saying so. Both files are written atomically (temporary
name, rename), so an interrupted export leaves no entry. The :data:`KEEP` most recently used
entries per network stay; older ones are deleted when a new one is written. Deleting the folder
is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from expose_cli import __version__
from expose_cli.utils.atomic import write_json_atomic

#: Entries kept per network (body, hand, face): the most recently used ones.
KEEP = 3
_CHUNK = 1 << 24  # bytes read at a time while hashing a graph


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's state: every tensor's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(-1).view(torch.uint8).numpy().data if data.numel() else b"")
    return digest.hexdigest()


def file_digest(path: Path) -> tuple[int, str]:
    """``(size in bytes, SHA-256)`` of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def cache_key(parts: dict[str, str]) -> str:
    """The entry key: SHA-256 of ``parts`` (name -> text) in a canonical JSON form."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def runtime_version(runtime: str) -> str:
    """``<runtime> <version>`` of the runtime that will read the graph (not imported for torch)."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(runtime)
    if module is None:
        return runtime
    imported = __import__(module)
    return f"{runtime} {getattr(imported, '__version__', None) or imported.get_version()}"


class GraphCache:
    """The cache folder; :meth:`graph` returns the path of a verified graph, exporting it when needed.

    ``warn`` gets one line per entry that was found damaged and exported again.
    """

    def __init__(self, folder: str | Path, warn: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.warn = warn or (lambda message: None)

    def key_parts(self, module: nn.Module, network: str, config: str, opset: int, runtime: str) -> dict[str, str]:
        """What the key of ``network``'s graph is made of (all text; written into the record)."""
        import onnx

        return {"weights_sha256": weights_digest(module), "config": config, "network": network,
                "opset": str(opset), "expose": __version__, "torch": torch.__version__,
                "onnx": onnx.__version__, "runtime": runtime_version(runtime)}

    def graph(self, network: str, parts: dict[str, str], export: Callable[[Path], Path]) -> Path:
        """The cached graph of ``network`` for the key of ``parts``; ``export(path)`` writes it
        (atomically) when there is no valid entry."""
        key = cache_key(parts)
        path = self.folder / f"{network}-{key[:32]}.onnx"
        record_path = path.with_suffix(".json")
        problem = self._check(path, record_path, key)
        if problem is None:
            with contextlib.suppress(OSError):
                os.utime(record_path)  # most recently used: kept by the pruning
            return path
        if problem != "missing":
            self.warn(f"{path}: cached graph {problem}; exporting it again")
        self.folder.mkdir(parents=True, exist_ok=True)
        export(path)
        size, sha = file_digest(path)
        write_json_atomic(record_path, {"key": key, "size": size, "sha256": sha, "parts": parts})
        self._prune(network)
        return path

    @staticmethod
    def _check(path: Path, record_path: Path, key: str) -> str | None:
        """``None`` for a valid entry, else what is wrong with it (``"missing"``: no entry at all)."""
        if not path.exists() and not record_path.exists():
            return "missing"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            expected = (record["key"], int(record["size"]), record["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return "has no readable record"
        if expected[0] != key:
            return "belongs to another key"
        try:
            found = file_digest(path)
        except OSError:
            return "is missing or unreadable"
        if found != expected[1:]:
            return "is damaged (its size or SHA-256 differs from its record)"
        return None

    def _prune(self, network: str) -> None:
        """Delete all but the :data:`KEEP` most recently used entries of ``network``."""
        records = sorted(self.folder.glob(f"{network}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for record in records[KEEP:]:
            for stale in (record.with_suffix(".onnx"), record):
                with contextlib.suppress(OSError):
                    stale.unlink()


def writable_folder(folder: Path) -> bool:
    """Whether files can be written in ``folder``, or in its nearest existing parent (where it
    would be created). Nothing is created."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
