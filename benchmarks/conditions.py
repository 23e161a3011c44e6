"""What every benchmark prints with its figures: the date, the CPU model and the threads."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def conditions(threads: int) -> str:
    """``2026-11-30, AMD EPYC, 2 threads``."""
    return f"{time.strftime('%Y-%m-%d')}, {cpu_model()}, {threads} thread{'s' if threads != 1 else ''}"
