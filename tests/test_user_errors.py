"""Failed and refused runs, as a new user meets them (issue 29, part B): nothing left behind that
blocks a re-run, one clear line per mistake, checked before any work, outputs readable by others."""

from __future__ import annotations

import os
import stat

import pytest

from expose_cli.testing.raw_datasets import write_ehf


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_hdf5_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path, run_cli, standin_tree, umask_022):
    """preprocess and synth rename their temporary HDF5 file like every atomic output: 0666 & ~022."""
    write_ehf(tmp_path / "EHF", frames=1)
    out = tmp_path / "ehf.h5"
    assert run_cli("-q", "preprocess", "ehf", "--root", tmp_path / "EHF", "--out", out).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    res = run_cli("--data-dir", standin_tree, "-q", "synth", tmp_path / "s", "--kind", "hand", "--count", "1",
                  "--size", "32", "--no-embed")
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE((tmp_path / "s" / "synth_hand_train.h5").stat().st_mode) == 0o644
