"""SMPLify's GMM pose prior file (``gmm_08.pkl``): reading and checking it.

The file (SMPLify's download, which MMHuman3D's ``MaxMixturePrior`` reads from ``data/``) is a
Python-2 pickle of a dict of numpy arrays: ``means`` ``[M, 69]``, ``covars`` ``[M, 69, 69]`` and
``weights`` ``[M]``, a mixture of ``M`` (8) Gaussians over SMPL's 23 x 3 body-pose axis-angles
(radians). It is read through the restricted unpickler (nothing but numpy arrays admitted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError
from expose_cli.io.safe_pickle import safe_load_pickle, to_numpy

#: Values per pose the prior models: SMPL's 23 body joints x 3.
GMM_DIM = 69
GMM_KEYS = ("means", "covars", "weights")


def _bad(path: str | Path, problem: str) -> ExposeError:
    return ExposeError(f"not a GMM pose prior (gmm_08.pkl): {problem}", path=path, exit_code=2,
                       hint="use SMPLify's gmm_08.pkl (from https://smplify.is.tue.mpg.de), unmodified")


def load_gmm_arrays(path: str | Path, display: str | None = None) -> dict[str, np.ndarray]:
    """``{"means": [M, 69], "covars": [M, 69, 69], "weights": [M]}`` as float64, checked: the keys,
    the shapes, finite values, positive weights and positive-definite covariances."""
    where = display or str(path)
    obj = safe_load_pickle(path)
    if not isinstance(obj, dict):
        raise _bad(where, f"the pickle holds a {type(obj).__name__}, not a dict of arrays")
    obj = to_numpy(obj)
    missing = [k for k in GMM_KEYS if k not in obj]
    if missing:
        raise _bad(where, f"missing keys {', '.join(missing)} (has {', '.join(sorted(map(str, obj)))})")
    try:
        arrays = {k: np.asarray(obj[k], dtype=np.float64) for k in GMM_KEYS}
    except (TypeError, ValueError) as exc:
        raise _bad(where, f"non-numeric arrays ({exc})") from exc
    m = arrays["weights"].shape[0] if arrays["weights"].ndim == 1 else -1
    want = {"means": (m, GMM_DIM), "covars": (m, GMM_DIM, GMM_DIM), "weights": (m,)}
    got = {k: arrays[k].shape for k in GMM_KEYS}
    if m < 1 or got != want:
        raise _bad(where, f"shapes {got}, expected means [M, {GMM_DIM}], covars [M, {GMM_DIM}, {GMM_DIM}], weights [M]")
    if not all(np.isfinite(a).all() for a in arrays.values()) or (arrays["weights"] <= 0).any():
        raise _bad(where, "non-finite values or weights <= 0")
    try:
        np.linalg.cholesky(arrays["covars"])
    except np.linalg.LinAlgError as exc:
        raise _bad(where, "a covariance is not positive definite") from exc
    return arrays
