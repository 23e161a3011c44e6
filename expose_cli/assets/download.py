"""Reliable downloads of manifest assets (standard library only).

Each file streams to ``NAME.part``; a later run resumes it with an HTTP ``Range`` request (and
restarts cleanly when the server ignores ``Range``). Transient failures (connection errors,
timeouts, truncated bodies, 5xx) are retried with exponential backoff; 4xx are not. The finished
file is checked against the sha256 prefix its name carries, recorded with its full sha256 and size in
the lock file, and only then moved into place atomically. A file that fails its check is kept as
``NAME.corrupt`` and never appears under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from expose_cli.assets.manifest import Asset
from expose_cli.assets.paths import DataTree
from expose_cli.utils.atomic import atomic_path, write_json_atomic

CHUNK = 1 << 20
USER_AGENT = "expose-cli"


@dataclass
class DownloadOptions:
    mirror: str | None = None
    force: bool = False
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0  # seconds before the first retry; doubles each time


@dataclass
class Result:
    """Outcome for one asset: ``downloaded``, ``verified`` (already there), ``failed``, ``manual``."""

    asset: str
    status: str
    path: str = ""
    size: int = 0
    sha256: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("downloaded", "verified")


class DownloadError(Exception):
    """A failure with a message for the user; ``transient`` ones are retried."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def source_url(asset: Asset, mirror: str | None) -> str:
    """The URL to fetch: the seed's, or the mirror's base + the URL's path (query dropped: the
    ``versionId`` of the origin means nothing to a plain file server)."""
    if not mirror:
        return asset.url
    return mirror.rstrip("/") + asset.url_path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class LockFile:
    """``downloads.lock.json``: for each verified file (path relative to the tree), its sha256,
    size, mtime and source URL. Thread-safe; written atomically."""

    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.path = tree.download_lock
        self._mutex = threading.Lock()
        try:
            self.entries: dict = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            self.entries = {}

    def key(self, path: Path) -> str:
        return str(path.relative_to(self.tree.root)) if path.is_relative_to(self.tree.root) else str(path)

    def get(self, path: Path) -> dict | None:
        return self.entries.get(self.key(path))

    def record(self, path: Path, sha256: str, url: str) -> None:
        st = path.stat()
        with self._mutex:
            self.entries[self.key(path)] = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": url}
            write_json_atomic(self.path, self.entries)

    def forget(self, path: Path) -> None:
        with self._mutex:
            if self.entries.pop(self.key(path), None) is not None:
                write_json_atomic(self.path, self.entries)


def file_status(asset: Asset, tree: DataTree, lock: LockFile, rehash: bool = False) -> tuple[str, str]:
    """``(status, detail)`` of an asset on disk: ``verified``, ``present``, ``missing``, ``corrupt``
    or ``manual`` (cannot be downloaded and is absent).

    Cheap by default: a file whose size and mtime match its lock entry is ``verified`` without
    hashing; with ``rehash`` (or when they differ) the sha256 is recomputed.
    """
    paths = asset.paths(tree)
    main = paths[0] if paths else None
    if main is None:
        return "missing", ""
    if not asset.downloadable:
        return ("present", "") if main.exists() else ("manual", f"{asset.website} then {asset.install}")
    if not main.is_file():
        if main.with_name(main.name + ".corrupt").exists():
            return "corrupt", f"kept as {main.name}.corrupt"
        return "missing", ""
    entry = lock.get(main)
    st = main.stat()
    if entry and not rehash and entry["size"] == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return "verified", ""
    digest = sha256_file(main)
    if asset.sha256_prefix and not digest.startswith(asset.sha256_prefix):
        return "corrupt", f"sha256 {digest[:8]} != {asset.sha256_prefix} of its name"
    if entry and entry["sha256"] != digest:
        return "corrupt", "sha256 differs from the lock file"
    if entry or asset.sha256_prefix:
        return "verified", ""
    return "present", "not downloaded by expose (no checksum to compare)"


ProgressHook = Callable[[str, int, int | None], None]  # (asset, bytes so far, total or None)


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _fetch_once(url: str, part: Path, timeout: float, name: str, progress: ProgressHook | None) -> None:
    """One attempt: resume ``part`` if present; raise :class:`DownloadError` on failure."""
    offset = part.stat().st_size if part.exists() else 0
    host = urlsplit(url).netloc
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the range starts past the end: start over
            part.unlink()
            raise DownloadError(f"HTTP 416 for {url}; restarting", transient=True) from exc
        transient = exc.code >= 500 or exc.code in (408, 429)
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}", transient=transient) from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {host}: {exc.reason}", transient=True) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(f"cannot reach {host}: {exc}", transient=True) from exc
    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        if offset and status == 206:
            mode = "ab"
            total = offset + int(length) if length is not None else None
        else:  # 200: the server sent the whole file (it ignores Range, or no range asked)
            mode, offset = "wb", 0
            total = int(length) if length is not None else None
        received = offset
        try:
            with open(part, mode) as out:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    if progress:
                        progress(name, received, total)
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            raise DownloadError(f"transfer from {host} broke off after {received} bytes: {exc}", transient=True) from exc
    if total is not None and received < total:
        raise DownloadError(f"transfer from {host} ended after {received} of {total} bytes", transient=True)


def download_asset(
    asset: Asset,
    tree: DataTree,
    lock: LockFile,
    options: DownloadOptions,
    progress: ProgressHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Make ``asset`` present and verified in ``tree``: skip, resume or download it."""
    paths = asset.paths(tree)
    main = paths[0]
    rel = lock.key(main)
    if not asset.downloadable:
        if main.exists():
            return Result(asset.name, "verified", rel, message="installed by hand")
        return Result(asset.name, "manual", rel, message=f"cannot be downloaded: get it from {asset.website}, then {asset.install}")
    if not options.force:
        status, detail = file_status(asset, tree, lock)
        if status in ("verified", "present"):
            if status == "present":
                lock.record(main, sha256_file(main), "(found on disk)")
            _copy_to_others(main, paths[1:])
            return Result(asset.name, "verified", rel, main.stat().st_size, lock.get(main)["sha256"], "already present, skipped")
    url = source_url(asset, options.mirror)
    part = main.with_name(main.name + ".part")
    main.parent.mkdir(parents=True, exist_ok=True)
    if options.force and part.exists():
        part.unlink()
    delay = options.backoff
    for attempt in range(options.retries + 1):
        try:
            _fetch_once(url, part, options.timeout, asset.name, progress)
            break
        except DownloadError as exc:
            if not exc.transient or attempt == options.retries:
                hint = f"; use --mirror or copy the file to {main}" if "cannot reach" in str(exc) else ""
                return Result(asset.name, "failed", rel, message=f"{exc}{hint}")
            sleep(delay)
            delay *= 2
    digest = sha256_file(part)
    if asset.sha256_prefix and not digest.startswith(asset.sha256_prefix):
        corrupt = main.with_name(main.name + ".corrupt")
        os.replace(part, corrupt)
        lock.forget(main)
        return Result(asset.name, "failed", rel, corrupt.stat().st_size, digest,
                      f"checksum mismatch: sha256 {digest[:8]}..., expected {asset.sha256_prefix} from the file name; "
                      f"kept as {corrupt.name}")
    os.replace(part, main)
    lock.record(main, digest, url)
    _copy_to_others(main, paths[1:])
    with contextlib.suppress(FileNotFoundError):
        main.with_name(main.name + ".corrupt").unlink()
    return Result(asset.name, "downloaded", rel, main.stat().st_size, digest)


def _copy_to_others(main: Path, others: list[Path]) -> None:
    """Second destinations (e.g. the other ``all_means.pkl``) get an atomic copy when they differ."""
    for other in others:
        if other.is_file() and other.stat().st_size == main.stat().st_size and sha256_file(other) == sha256_file(main):
            continue
        with atomic_path(other) as tmp:
            shutil.copyfile(main, tmp)
