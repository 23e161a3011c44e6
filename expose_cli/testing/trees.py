"""Data trees for tests that share one set of stand-in files instead of copying them.

The stand-in body models are hundreds of megabytes; a test that needs its own data tree (to add a
dataset, or to remove a file) gets a tree of links to the shared files: no file content is written.
"""

from __future__ import annotations

import os
from pathlib import Path


def link_tree(src: str | Path, dst: str | Path) -> Path:
    """Mirror the folders of ``src`` under ``dst`` and hard-link every file (a symlink where the two
    lie on different file systems). Returns ``dst``.

    Adding, removing or replacing (write to a temporary name, then rename) a file of the copy leaves
    ``src`` as it was; writing into a linked file in place would change the shared original: don't.
    """
    src, dst = Path(src), Path(dst)
    for folder, _dirs, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            target = dst / rel / name
            try:
                os.link(Path(folder) / name, target)
            except OSError:
                target.symlink_to(Path(folder, name).resolve())
    return dst
