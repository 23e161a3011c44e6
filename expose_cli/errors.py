"""One exception type for every user-facing failure.

The CLI prints ``error: <message>`` and, on a second line, ``hint: <hint>`` (what to do), then
exits with ``exit_code``. No traceback unless ``--verbose``.

Code below ``cli/`` never spells a command-line flag: a message or hint that names an option of the
running command writes ``option("name")``, which the CLI prints as the command's flag (``--name``,
as the command declares it; cli/app.py) and ``str(error)`` / :attr:`ExposeError.message` (the
Python API) as the parameter name (``name``, underscores). A whole command line to run
(``run `expose fetch body --overwrite` ``) is an instruction, not a flag of the running command,
and is written out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

_OPTION = re.compile(r"<opt:([a-z][a-z0-9-]*)>")


def option(name: str) -> str:
    """A reference to option ``name`` (hyphenated: ``embed-images``) of the running command, for an
    error's message or hint (see the module's docstring)."""
    return f"<opt:{name}>"


def render(text: str, flag: Callable[[str], str] | None = None) -> str:
    """``text`` with each :func:`option` reference written by ``flag(name)`` (default: the Python
    parameter name, ``embed_images``)."""
    spell = flag or (lambda name: name.replace("-", "_"))
    return _OPTION.sub(lambda m: spell(m.group(1)), text)


class ExposeError(Exception):
    """A failure the user can act on: say what is wrong and what to do.

    ``message`` and ``hint`` may hold :func:`option` references: the attributes :attr:`reason`,
    :attr:`message`, :attr:`hint` and ``str()`` show them as parameter names; :meth:`text` with
    another ``flag`` (the CLI's) as flags."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        path: str | Path | None = None,
        exit_code: int = 1,
    ) -> None:
        self.raw_reason = message
        self.raw_hint = hint
        self._where = path  # as given: the message shows it as it was written
        self.path = Path(path) if path is not None else None
        self.exit_code = exit_code
        super().__init__(self.message if hint is None else f"{self.message} ({self.hint})")

    def text(self, flag: Callable[[str], str] | None = None) -> tuple[str, str | None]:
        """(message, hint) with option references written by ``flag`` (see :func:`render`)."""
        message = render(self.raw_reason, flag)
        if self._where is not None:
            message = f"{self._where}: {message}"
        return message, (render(self.raw_hint, flag) if self.raw_hint is not None else None)

    @property
    def reason(self) -> str:
        return render(self.raw_reason)

    @property
    def message(self) -> str:
        return self.text()[0]

    @property
    def hint(self) -> str | None:
        return self.text()[1]


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
