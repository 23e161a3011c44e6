"""Body models (SMPL-X, MANO, FLAME, SMPL) on top of ``smplx``, loaded safely; auxiliary files.

The builders import torch and smplx; they load on first use, so that commands which only read
files (``expose --help``, ``fetch``, ``doctor``) start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expose_cli.body_models.builders import build_flame, build_mano, build_smpl, build_smplx

__all__ = ["build_flame", "build_mano", "build_smpl", "build_smplx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from expose_cli.body_models import builders

        return getattr(builders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
