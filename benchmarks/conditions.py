"""What every benchmark prints with its figures: the date, the CPU model and its vector flags, the threads.

The flags matter: the same code runs at different ratios on an AVX2-only CPU and on one with
AVX-512, VNNI (int8 dot products), BF16 or AMX; docs keep one table per CPU kind.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

#: Flag groups reported, each as (name, /proc/cpuinfo flags of which any counts).
FLAG_GROUPS = (("AVX2", ("avx2",)), ("AVX-512", ("avx512f",)), ("VNNI", ("avx512_vnni", "avx_vnni")),
               ("BF16", ("avx512_bf16", "amx_bf16")), ("AMX", ("amx_tile",)))
#: Environment variables that make oneDNN / ATen use fewer of the CPU's instructions (e.g. AVX2).
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_flags() -> str:
    """``AVX2, AVX-512, VNNI, BF16, no AMX`` (from /proc/cpuinfo), plus any ISA limit set in the
    environment (``limited by ONEDNN_MAX_CPU_ISA=AVX2``); ``flags unknown`` off Linux."""
    flags = set()
    for line in _cpuinfo():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    if not flags:
        return "flags unknown"
    text = ", ".join(name if flags & set(names) else f"no {name}" for name, names in FLAG_GROUPS)
    limits = [f"{key}={os.environ[key]}" for key in ISA_LIMITS if os.environ.get(key)]
    return text + (f"; limited by {' '.join(limits)}" if limits else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module says, with
    its vector flags: ``AMD EPYC 9B14 (AVX2, AVX-512, VNNI, BF16, no AMX)``."""
    name = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), None)
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} ({cpu_flags()})"


def conditions(threads: int) -> str:
    """``2026-11-30, AMD EPYC (AVX2, AVX-512, VNNI, BF16, no AMX), 2 threads``."""
    return f"{time.strftime('%Y-%m-%d')}, {cpu_model()}, {threads} thread{'s' if threads != 1 else ''}"
