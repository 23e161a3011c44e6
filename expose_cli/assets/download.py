"""Reliable downloads of manifest assets (standard library only).

Each file streams to ``NAME.part``; a later run resumes it with an HTTP ``Range`` request (and
restarts cleanly when the server ignores ``Range``). ``NAME.part.json`` beside it records the URL
and the server's validator (strong ETag or Last-Modified), sent as ``If-Range``: a ``.part`` from
another URL, or of a file that changed on the server, is never spliced into a new one. Transient
failures (connection errors, timeouts, truncated bodies, 5xx) are retried with exponential backoff;
4xx are not; a host that cannot be reached at all is tried twice and then skipped for the rest of
the run. The finished file is checked against the sha256 prefix its name carries, the full sha256
its publisher gives (``Asset.sha256``), and against the lock file's record of an earlier verified copy, recorded with its full sha256 and size in the lock
file, and only then moved into place atomically. A file that fails its check is kept as
``NAME.corrupt`` and never appears under its final name.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from expose_cli.assets.manifest import Asset
from expose_cli.errors import ExposeError
from expose_cli.io.hashing import sha256_file
from expose_cli.io.paths import DataTree
from expose_cli.utils.atomic import atomic_path, write_json_atomic

BLOCK = 1 << 16  # network read: written to disk as it arrives, so a reset loses nothing
USER_AGENT = "expose-cli"


@dataclass
class DownloadOptions:
    mirror: str | None = None
    force: bool = False
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    cancel: threading.Event = field(default_factory=threading.Event)  # set it to stop every download
    unreachable: dict[str, str] = field(default_factory=dict)  # host -> why, shared by one run's assets


@dataclass
class Result:
    """Outcome for one asset: ``downloaded``, ``verified`` (already there), ``failed``, ``manual``,
    ``kept`` (another checkpoint is there; ``--overwrite`` replaces it)."""

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
    """A failure with a message for the user; ``transient`` ones are retried; ``unreachable`` ones
    (no connection to the host at all) are retried once."""

    def __init__(self, message: str, transient: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


class DownloadCancelled(Exception):
    """The user interrupted the run; the ``.part`` stays for the next run to resume."""


def source_url(asset: Asset, mirror: str | None) -> str:
    """The URL to fetch: the seed's, or the mirror's base + the URL's path (query dropped: the
    ``versionId`` of the origin means nothing to a plain file server)."""
    if not mirror:
        return asset.url
    return mirror.rstrip("/") + asset.url_path


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


def _main_status(asset: Asset, main: Path, lock: LockFile, rehash: bool) -> tuple[str, str]:
    """Status of the first destination of a downloadable asset (see :func:`file_status`)."""
    if not main.is_file():
        if main.with_name(main.name + ".corrupt").exists():
            return "corrupt", f"kept as {main.name}.corrupt"
        return "missing", ""
    entry = lock.get(main)
    st = main.stat()
    if entry and not rehash and entry["size"] == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return "verified", ""
    digest = sha256_file(main)
    problem = _checksum_problem(asset, digest, entry["sha256"] if entry else None, lock)
    if problem and asset.kind == "checkpoint" and _intact_checkpoint(main):
        return "other", (f"not the published file ({problem}), but an intact checkpoint of its own (e.g. `expose "
                         f"demo`'s stand-in or a trained one): --overwrite downloads the published one, keeping it as "
                         f"{main.name}.old")
    if problem:
        return "corrupt", problem
    if entry or asset.sha256_prefix or asset.sha256:
        return "verified", ""
    return "present", "not downloaded by expose: no checksum to check it against (`expose fetch` verifies it)"


def _intact_checkpoint(path: Path) -> bool:
    """A ``torch.save`` file whose every part passes its CRC: a different checkpoint, not a damaged one."""
    from expose_cli.models.checkpoint import sniff_checkpoint

    try:
        sniff_checkpoint(path)
    except ExposeError:
        return False
    return True


def file_status(asset: Asset, tree: DataTree, lock: LockFile, rehash: bool = False) -> tuple[str, str]:
    """``(status, detail)`` of an asset on disk: ``verified``, ``present`` (there, but nothing to
    check it against yet), ``missing``, ``corrupt`` (damaged, or not the file), ``other`` (a
    checkpoint that is intact but not the published one) or ``manual`` (cannot be downloaded, absent).

    Cheap by default: a file whose size and mtime match its lock entry is ``verified`` without
    hashing; with ``rehash`` (or when they differ) the sha256 is recomputed. An asset with a second
    destination (``all_means.pkl``) is ``missing`` while that copy is.
    """
    paths = asset.paths(tree)
    main = paths[0] if paths else None
    if main is None:
        return "missing", ""
    if not asset.downloadable:
        return ("present", "") if main.exists() else ("manual", f"{asset.website} then {asset.install}")
    status, detail = _main_status(asset, main, lock, rehash)
    if status == "verified":
        for other in paths[1:]:
            if not other.is_file():
                return "missing", f"its copy {other} is missing (`expose fetch {asset.name}` restores it)"
    return status, detail


ProgressHook = Callable[[str, int, int | None], None]  # (asset, bytes so far, total or None)


def _open(url: str, offset: int, validator: str | None, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _is_unreachable(reason: object) -> bool:
    """No connection at all (DNS failure, refused, no route), as opposed to a failure mid-way."""
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def _part_meta(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _validator(headers) -> str | None:
    """What ``If-Range`` may carry: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _content_range_total(value: str | None) -> int | None:
    if value and "/" in value and not value.endswith("/*"):
        with contextlib.suppress(ValueError):
            return int(value.rsplit("/", 1)[1])
    return None


def _fetch_once(url: str, part: Path, timeout: float, name: str, progress: ProgressHook | None,
                cancel: threading.Event | None = None) -> None:
    """One attempt: resume ``part`` if it belongs to ``url``; raise :class:`DownloadError` on failure."""
    meta_path = _part_meta(part)
    meta: dict = {}
    if part.exists():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            meta = json.loads(meta_path.read_text())
        if meta.get("url") != url:  # not ours, or from another source: never splice it
            part.unlink()
            meta = {}
    offset = part.stat().st_size if part.exists() else 0
    host = urlsplit(url).netloc
    try:
        resp = _open(url, offset, meta.get("validator"), timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the range starts past the end: start over
            part.unlink()
            raise DownloadError(f"HTTP 416 for {url}; restarting", transient=True) from exc
        transient = exc.code >= 500 or exc.code in (408, 429)
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}", transient=transient) from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {host}: {exc.reason}", transient=True,
                            unreachable=_is_unreachable(exc.reason)) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(f"cannot reach {host}: {exc}", transient=True, unreachable=_is_unreachable(exc)) from exc
    with resp:
        status = getattr(resp, "status", None) or 200
        length = resp.headers.get("Content-Length")
        if offset and status == 206:
            mode = "ab"
            total = offset + int(length) if length is not None else None
            whole = _content_range_total(resp.headers.get("Content-Range"))
            if whole is not None and meta.get("length") not in (None, whole):
                part.unlink()  # the file on the server changed size since the .part began
                raise DownloadError(f"{url} changed on the server since the partial download; restarting", transient=True)
        else:  # 200: the server sent the whole file (it ignores Range, or no range asked)
            mode, offset = "wb", 0
            total = int(length) if length is not None else None
            write_json_atomic(meta_path, {"url": url, "validator": _validator(resp.headers), "length": total})
        received = offset
        read = getattr(resp, "read1", resp.read)
        try:
            with open(part, mode) as out:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled(name)
                    block = read(BLOCK)
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
    """Make ``asset`` present and verified in ``tree``: skip, resume or download it.

    A copy already on disk counts as verified when its name's sha256 prefix or the lock file vouches
    for it; one with nothing to check it against is downloaded again and compared. A corrupt copy is
    moved to ``NAME.corrupt`` before anything else, so no bad file stays under the final name.
    """
    paths = asset.paths(tree)
    main = paths[0]
    rel = lock.key(main)
    if not asset.downloadable:
        if main.exists():
            return Result(asset.name, "verified", rel, message="installed by hand")
        return Result(asset.name, "manual", rel, message=f"cannot be downloaded: get it from {asset.website}, then {asset.install}")
    status, detail = _main_status(asset, main, lock, rehash=False)
    if status == "verified" and not options.force:
        _copy_to_others(main, paths[1:])
        return Result(asset.name, "verified", rel, main.stat().st_size, lock_sha(lock, main), "already present, skipped")
    if status == "other" and not options.force:  # the user's own checkpoint: never renamed .corrupt
        return Result(asset.name, "kept", rel, main.stat().st_size, message=detail)
    corrupt = main.with_name(main.name + ".corrupt")
    notes = []
    moved_aside = status == "corrupt" and main.is_file()  # the user's bad copy is kept as NAME.corrupt
    if moved_aside:
        os.replace(main, corrupt)
        notes.append(f"the copy on disk was corrupt ({detail}): moved to {corrupt.name}")
    entry = lock.get(main)
    url = source_url(asset, options.mirror)
    host = urlsplit(url).netloc
    if host in options.unreachable:
        return Result(asset.name, "failed", rel, message=f"{options.unreachable[host]}{_hint(main)}")
    part = main.with_name(main.name + ".part")
    failure = _fetch_with_retries(url, part, main, asset.name, options, progress, sleep)
    if failure is not None:
        if status == "present":
            failure = f"{rel} is present but unverified: {failure}"
        return Result(asset.name, "failed", rel, message="; ".join([*notes, failure]))
    digest = sha256_file(part)
    problem = _checksum_problem(asset, digest, entry["sha256"] if entry and not options.force else None, lock)
    if problem:
        os.replace(part, corrupt)
        _part_meta(part).unlink(missing_ok=True)
        return Result(asset.name, "failed", rel, corrupt.stat().st_size, digest,
                      "; ".join([*notes, f"{problem}; kept as {corrupt.name}"]))
    notes += _install(part, main, digest, keep_old=status in ("present", "other"),
                      replaced=entry["sha256"] if options.force and entry else None)
    lock.record(main, digest, url)
    _copy_to_others(main, paths[1:])
    if not moved_aside:  # a stale .corrupt from an earlier failed download
        corrupt.unlink(missing_ok=True)
    return Result(asset.name, "downloaded", rel, main.stat().st_size, digest, "; ".join(notes))


def _hint(main: Path) -> str:
    return f"; use --mirror (a file:// folder works) or copy the file to {main}"


def _fetch_with_retries(url: str, part: Path, main: Path, name: str, options: DownloadOptions,
                        progress: ProgressHook | None, sleep: Callable[[float], None]) -> str | None:
    """Download ``url`` into ``part`` (resumed; restarted with ``--overwrite``), retrying transient
    failures with a doubling backoff (an unreachable host once, then remembered for the run's
    other assets). ``None`` when complete, else the failure in one line."""
    main.parent.mkdir(parents=True, exist_ok=True)
    if options.force:
        for stale in (part, _part_meta(part)):
            stale.unlink(missing_ok=True)
    delay = options.backoff
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, options.timeout, name, progress, options.cancel)
            return None
        except DownloadError as exc:
            limit = min(options.retries, 1) if exc.unreachable else options.retries
            if not exc.transient or attempt >= limit:
                if exc.unreachable:
                    options.unreachable.setdefault(urlsplit(url).netloc, str(exc))
                return f"{exc}{_hint(main)}" if "cannot reach" in str(exc) else str(exc)
            attempt += 1
            sleep(delay)
            delay *= 2


def _checksum_problem(asset: Asset, digest: str, expected: str | None, lock: LockFile) -> str:
    """Why a file with sha256 ``digest`` is refused: not the prefix its name carries, not the
    published sha256, or not the copy verified before (``expected``, from the lock file); ``""``
    when it is accepted. Used for downloads and for the copy already on disk."""
    if asset.sha256_prefix and not digest.startswith(asset.sha256_prefix):
        return f"checksum mismatch: sha256 {digest[:8]}..., expected {asset.sha256_prefix} from the file name"
    if asset.sha256 and digest != asset.sha256:
        return f"checksum mismatch: sha256 {digest[:8]}... is not the published {asset.sha256[:8]}..."
    if expected and digest != expected:
        return (f"checksum mismatch: sha256 {digest[:8]}... differs from the copy verified before "
                f"({expected[:8]}... in {lock.path.name}); `--overwrite` accepts a new version")
    return ""


def _install(part: Path, main: Path, digest: str, keep_old: bool, replaced: str | None) -> list[str]:
    """Move the verified ``part`` to ``main``; an unverified copy there (``keep_old``) that differs
    is kept as ``NAME.old``. Returns the notes for the result (also a new version under ``--overwrite``:
    ``replaced`` is the sha256 recorded before)."""
    notes = []
    if keep_old and main.is_file() and sha256_file(main) != digest:
        old = main.with_name(main.name + ".old")
        os.replace(main, old)
        notes.append(f"the unverified copy on disk differed from the source: kept as {old.name}")
    if replaced and replaced != digest:
        notes.append(f"new version: sha256 {replaced[:8]}... -> {digest[:8]}...")
    os.replace(part, main)
    _part_meta(part).unlink(missing_ok=True)
    return notes


def lock_sha(lock: LockFile, path: Path) -> str:
    entry = lock.get(path)
    return entry["sha256"] if entry else ""


def _copy_to_others(main: Path, others: list[Path]) -> None:
    """Second destinations (e.g. the other ``all_means.pkl``) get an atomic copy when they differ."""
    for other in others:
        if other.is_file() and other.stat().st_size == main.stat().st_size and sha256_file(other) == sha256_file(main):
            continue
        with atomic_path(other) as tmp:
            shutil.copyfile(main, tmp)
