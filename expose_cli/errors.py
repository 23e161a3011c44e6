"""One exception type for every user-facing failure.

The CLI prints ``error: <message>`` and, on a second line, ``hint: <hint>`` (what to do), then
exits with ``exit_code``. No traceback unless ``--verbose``.
"""

from __future__ import annotations

from pathlib import Path


class ExposeError(Exception):
    """A failure the user can act on: say what is wrong and what to do."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        path: str | Path | None = None,
        exit_code: int = 1,
    ) -> None:
        self.reason = message
        self.message = f"{path}: {message}" if path is not None else message
        self.hint = hint
        self.path = Path(path) if path is not None else None
        self.exit_code = exit_code
        super().__init__(self.message if hint is None else f"{self.message} ({hint})")


class MissingFileError(ExposeError):
    """A required file is absent; the hint names the command or website that provides it."""

    def __init__(self, path: str | Path, what: str, provided_by: str) -> None:
        super().__init__(f"{what} not found", hint=provided_by, path=path, exit_code=2)


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after saving what it had (e.g. ``expose train``'s
    ``last.pth``); the CLI exits 130 with one line saying how to continue. ``detail``: where it
    stopped ("at step 31; last.pth saved")."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(detail or "interrupted")
