"""`expose import-body-models` and `expose doctor`."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import torch

from expose_cli.assets.paths import DataTree
from expose_cli.body_models import build_mano, build_smpl
from expose_cli.body_models.loading import load_body_model_data
from expose_cli.testing import standins


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _pkl_bytes(tmp_path, arrays, name):
    p = tmp_path / "src" / name
    standins.write_chumpy_pickle(p, arrays)
    return p.read_bytes()


def test_import_official_archives(tmp_path, run_cli):
    mano = _pkl_bytes(tmp_path, standins.standin_mano_arrays(), "MANO_RIGHT.pkl")
    smpl = _pkl_bytes(tmp_path, standins.standin_smpl_arrays(), "basic.pkl")
    flame = _pkl_bytes(tmp_path, standins.standin_flame_arrays(), "generic_model.pkl")
    archives = [
        _zip(tmp_path / "mano_v1_2.zip", {"mano_v1_2/models/MANO_RIGHT.pkl": mano, "mano_v1_2/LICENSE.txt": b"x"}),
        _zip(tmp_path / "SMPL_python_v.1.0.0.zip", {
            "SMPL_python_v.1.0.0/smpl/models/basicModel_f_lbs_10_207_0_v1.0.0.pkl": smpl,
            "SMPL_python_v.1.0.0/smpl/models/basicmodel_m_lbs_10_207_0_v1.0.0.pkl": smpl,
        }),
        _zip(tmp_path / "FLAME2019.zip", {"generic_model.pkl": flame, "Readme.pdf": b"%PDF"}),
    ]
    data = tmp_path / "data"
    result = run_cli("--data-dir", data, "import-body-models", *archives, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    tree = DataTree(data)
    for path in (tree.mano_model("right"), tree.smpl_model("female"), tree.smpl_model("male"), tree.flame_model("neutral")):
        assert path.is_file() and path.with_suffix(".npz").is_file(), path
        # the .npz beside is pickle-free and holds the same arrays
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
            np.testing.assert_array_equal(npz["v_template"], load_body_model_data(path)["v_template"])
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted(r["status"] for r in report) == ["installed"] * 4
    assert build_mano(tree).v_template.shape == (778, 3)
    assert build_smpl(tree, "female")(betas=torch.zeros(1, 10)).vertices.shape == (1, 6890, 3)
    # A second run changes nothing; --force replaces.
    before = tree.mano_model("right").stat().st_mtime_ns
    again = run_cli("--data-dir", data, "import-body-models", archives[0])
    assert again.exit_code == 0 and "exists" in again.stdout
    assert tree.mano_model("right").stat().st_mtime_ns == before
    forced = run_cli("--data-dir", data, "import-body-models", archives[0], "--force")
    assert forced.exit_code == 0 and "installed" in forced.stdout


def test_import_refuses_path_escape_and_bad_files(tmp_path, run_cli):
    mano = _pkl_bytes(tmp_path, standins.standin_mano_arrays(), "MANO_RIGHT.pkl")
    bad_arrays = dict(standins.standin_mano_arrays())
    bad_arrays["v_template"] = bad_arrays["v_template"][:100]
    bad = _pkl_bytes(tmp_path, bad_arrays, "bad.pkl")
    archive = _zip(tmp_path / "evil.zip", {"../../outside/MANO_RIGHT.pkl": mano, "/abs/MANO_LEFT.pkl": mano,
                                           "models/SMPL_NEUTRAL.pkl": bad})
    data = tmp_path / "data"
    result = run_cli("--data-dir", data, "import-body-models", archive)
    assert result.exit_code == 1
    assert result.stdout.count("refused") == 2 and "invalid" in result.stdout
    assert not (tmp_path / "outside").exists()
    files = [p for p in data.rglob("*") if p.is_file()] if data.exists() else []
    assert files == []  # nothing half-written, nothing under a final name


def test_import_smplx_npz_drops_pickled_members(tmp_path, run_cli):
    folder = tmp_path / "models" / "smplx"
    folder.mkdir(parents=True)
    np.savez(folder / "SMPLX_NEUTRAL.npz", part2num=np.array({"a": 1}, dtype=object), **standins.standin_smplx_arrays())
    result = run_cli("--data-dir", tmp_path / "data", "import-body-models", tmp_path / "models")
    assert result.exit_code == 0, result.output
    with np.load(DataTree(tmp_path / "data").smplx_model(), allow_pickle=False) as npz:
        assert "part2num" not in npz.files and npz["f"].shape == (20908, 3)


def test_import_nothing_recognised(tmp_path, run_cli):
    (tmp_path / "notes.txt").write_text("hello")
    result = run_cli("--data-dir", tmp_path / "data", "import-body-models", tmp_path / "notes.txt")
    assert result.exit_code == 1 and "no SMPL-X, MANO, FLAME or SMPL model file" in result.stderr


def test_doctor_empty_tree_lists_sources(tmp_path, run_cli):
    result = run_cli("--data-dir", tmp_path, "doctor", "--json", tmp_path / "d.json")
    assert result.exit_code == 0
    report = json.loads((tmp_path / "d.json").read_text())
    assert all(r["status"] == "missing" for r in report)
    by_file = {r["file"]: r for r in report}
    assert "import-body-models" in by_file["SMPL-X neutral"]["provided_by"]
    assert "fetch-models" in by_file["all_means.pkl"]["provided_by"]
    assert "preprocess ehf" in by_file["ehf val (HDF5)"]["provided_by"]
    assert run_cli("--data-dir", tmp_path, "doctor", "--for", "infer").exit_code == 1


def test_doctor_on_standins(standin_tree, tmp_path, run_cli):
    result = run_cli("--data-dir", standin_tree, "doctor", "--for", "infer", "--json", tmp_path / "d.json")
    report = {r["file"]: r["status"] for r in json.loads((tmp_path / "d.json").read_text())}
    assert report.pop("checkpoint 'expose'") == "missing"
    assert set(report.values()) == {"ok"}
    assert result.exit_code == 1  # the checkpoint is missing
    bad = tmp_path / "bad"
    bad_tree = DataTree(bad)
    bad_tree.smplx_dir.mkdir(parents=True)
    np.save(bad_tree.smplx_to_j14, np.zeros((3, 3)))
    run_cli("--data-dir", bad, "doctor", "--json", tmp_path / "b.json")
    report = {r["file"]: r for r in json.loads((tmp_path / "b.json").read_text())}
    assert report["SMPLX_to_J14.npy"]["status"] == "invalid"
    assert "expected (14, 10475)" in report["SMPLX_to_J14.npy"]["detail"]
    assert run_cli("--data-dir", tmp_path, "doctor", "--for", "nothing").exit_code == 1
