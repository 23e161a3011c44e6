"""What an interrupted command says, and how SIGTERM becomes Ctrl-C.

Every command exits 130 when it is interrupted (SIGINT or SIGTERM) and prints one line saying how
to continue: the command's own continuation option, or that running it again starts it over.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: How each command continues after an interruption (the rest: "run the same command again").
CONTINUE = {
    "train": "run the same command again with --resume to continue",
    "infer": "run the same command again with --resume to continue",
    "demo": "run the same command again to start it over",
    "preprocess": "run the same command again with --resume to continue (finished splits are kept)",
    "fetch": "run the same command again to continue (partial downloads are kept as .part)",
    "fetch-models": "run the same command again to continue (partial downloads are kept as .part)",
    "eval": "nothing was written; run the same command again to start it over",
}


def interrupted_line(command: str | None, detail: str | None = None) -> str:
    """The one line an interrupted ``command`` prints, e.g. ``interrupted; run the same command
    again with --resume to continue``; ``detail`` (where it stopped) goes in parentheses."""
    how = CONTINUE.get(command or "", "run the same command again to start it over")
    where = f" ({detail})" if detail else ""
    return f"interrupted{where}; {how}"


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`KeyboardInterrupt` as Ctrl-C does (outputs stay whole, exit 130)
    while the block runs; the previous handler is restored after. Only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
