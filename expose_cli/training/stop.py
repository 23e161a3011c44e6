"""Ctrl-C and SIGTERM during training: finish the step, then stop (and write ``last.pth``)."""

from __future__ import annotations

import signal
import threading


class StopRequested:
    """Ctrl-C / SIGTERM set a flag that the loop checks after each step (a second Ctrl-C aborts)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._old: dict = {}

    def __enter__(self) -> StopRequested:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
