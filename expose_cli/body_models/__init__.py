"""Body models (SMPL-X, MANO, FLAME, SMPL) on top of ``smplx``, loaded safely; auxiliary files."""

from expose_cli.body_models.builders import build_flame, build_mano, build_smpl, build_smplx

__all__ = ["build_flame", "build_mano", "build_smpl", "build_smplx"]
