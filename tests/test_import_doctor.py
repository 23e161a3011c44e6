"""`expose import-body-models` and `expose doctor`."""

from __future__ import annotations

import functools
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from expose_cli.body_models import build_mano, build_smpl
from expose_cli.body_models.loading import load_body_model_data
from expose_cli.io.paths import DataTree
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


def _cut(arrays: dict, shape: int | None = 4, pose: int | None = 9) -> dict:
    """A stand-in model cut down to what importing reads (keys; vertex, face and joint counts): fewer
    blend shapes (``None`` keeps all, to build the model), float32 throughout: a few MB a copy
    instead of 55-233 MB, and these tests make dozens of copies."""
    out = {k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v
           for k, v in arrays.items()}
    out["shapedirs"] = out["shapedirs"][..., :shape]
    out["posedirs"] = out["posedirs"][..., :pose]
    return out


def test_import_official_archives(tmp_path, run_cli):
    mano = _pkl_bytes(tmp_path, standins.standin_mano_arrays(), "MANO_RIGHT.pkl")
    smpl = _pkl_bytes(tmp_path, _cut(standins.standin_smpl_arrays(), None, None), "basic.pkl")  # built below
    smpl_m = _pkl_bytes(tmp_path, _cut(standins.standin_smpl_arrays()), "basic_m.pkl")
    flame = _pkl_bytes(tmp_path, _cut(standins.standin_flame_arrays()), "generic_model.pkl")
    archives = [
        _zip(tmp_path / "mano_v1_2.zip", {"mano_v1_2/models/MANO_RIGHT.pkl": mano, "mano_v1_2/LICENSE.txt": b"x"}),
        _zip(tmp_path / "SMPL_python_v.1.0.0.zip", {
            "SMPL_python_v.1.0.0/smpl/models/basicModel_f_lbs_10_207_0_v1.0.0.pkl": smpl,
            "SMPL_python_v.1.0.0/smpl/models/basicmodel_m_lbs_10_207_0_v1.0.0.pkl": smpl_m,
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
    np.savez(folder / "SMPLX_NEUTRAL.npz", part2num=np.array({"a": 1}, dtype=object), **_slim_smplx())
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
    assert "expected an array of shape 14x10475, found (3, 3)" in report["SMPLX_to_J14.npy"]["detail"]
    assert run_cli("--data-dir", tmp_path, "doctor", "--for", "nothing").exit_code == 1


# --- slim stand-ins: the keys and the vertex/face/joint counts the checks read, small blend shapes


@functools.cache
def _slim_smplx_base() -> dict:
    return _cut(standins.standin_smplx_arrays())


def _slim_smplx(offset: float = 0.0) -> dict:
    arrays = dict(_slim_smplx_base())
    arrays["v_template"] = arrays["v_template"] + offset
    return arrays


def _v_template(path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        return npz["v_template"]


def test_recognises_official_smpl_names(tmp_path):
    from expose_cli.assets.importer import recognise

    tree = DataTree(tmp_path)
    expected = {
        "basicModel_f_lbs_10_207_0_v1.0.0.pkl": "female", "basicmodel_m_lbs_10_207_0_v1.0.0.pkl": "male",
        "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl": "neutral",  # SMPLify's neutral model
        "basicmodel_f_lbs_10_207_0_v1.1.0.pkl": "female", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl": "male",
        "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl": "neutral",
    }
    for name, gender in expected.items():
        target = recognise(f"SMPL_python_v.1.1.0/smpl/models/{name}", tree)
        assert target is not None and target.kind == "smpl", name
        assert target.destination == tree.smpl_model(gender, "pkl")
    assert recognise("basicmodel_x_lbs_10_207_0_v1.1.0.pkl", tree) is None
    assert recognise("SMPLX_NEUTRAL_2020.npz", tree) is None


def test_import_loose_files(tmp_path, run_cli):
    src = tmp_path / "downloads"
    mano = standins.standin_mano_arrays()
    standins.write_chumpy_pickle(src / "MANO_RIGHT.pkl", mano)
    standins.write_chumpy_pickle(src / "sub" / "generic_model.pkl", _cut(standins.standin_flame_arrays()))
    standins.write_chumpy_pickle(src / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", _cut(standins.standin_smpl_arrays()))
    standins.write_chumpy_pickle(src / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl", _cut(standins.standin_smpl_arrays()))
    (src / "all_means.pkl").write_bytes(pickle.dumps(standins.standin_all_means(), protocol=2))
    files = [src / "MANO_RIGHT.pkl", src / "sub" / "generic_model.pkl", src / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl",
             src / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl", src / "all_means.pkl"]
    data = tmp_path / "data"
    result = run_cli("--data-dir", data, "import-body-models", *files, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in report] == ["installed"] * 5
    tree = DataTree(data)
    installed = {tree.mano_model("right"): files[0], tree.flame_model("neutral"): files[1],
                 tree.smpl_model("neutral"): files[2], tree.smpl_model("male"): files[3]}
    for path, source in installed.items():
        assert path.read_bytes() == source.read_bytes(), path
        np.testing.assert_array_equal(_v_template(path.with_suffix(".npz")), load_body_model_data(source)["v_template"])
    assert tree.all_means.read_bytes() == (src / "all_means.pkl").read_bytes()
    assert not tree.smpl_model("female").exists()


def test_import_smplx_zip_with_npz_and_pkl(tmp_path, run_cli):
    pkl = tmp_path / "build" / "SMPLX_NEUTRAL.pkl"
    pkl.parent.mkdir()
    with open(pkl, "wb") as fh:  # the SMPL-X .pkl files are plain numpy pickles
        pickle.dump(_slim_smplx(), fh, protocol=2)
    npz = tmp_path / "build" / "SMPLX_NEUTRAL.npz"
    np.savez(npz, **_slim_smplx(offset=0.5))  # different content: which one wins must be visible
    np.savez(tmp_path / "build" / "SMPLX_MALE.npz", **_slim_smplx(offset=1.0))
    archive = _zip(tmp_path / "models_smplx_v1_1.zip", {
        "models/smplx/SMPLX_NEUTRAL.pkl": pkl.read_bytes(),  # the .pkl first: its derived .npz ...
        "models/smplx/SMPLX_NEUTRAL.npz": npz.read_bytes(),  # ... is replaced by the official one
        "models/smplx/SMPLX_MALE.npz": (tmp_path / "build" / "SMPLX_MALE.npz").read_bytes(),
        "models/smplx/version.txt": b"1.1",
    })
    data = tmp_path / "data"
    result = run_cli("--data-dir", data, "import-body-models", archive, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in report] == ["installed"] * 3
    tree = DataTree(data)
    assert tree.smplx_model("neutral", "pkl").read_bytes() == pkl.read_bytes()
    np.testing.assert_array_equal(_v_template(tree.smplx_model("neutral")), _slim_smplx(offset=0.5)["v_template"])
    np.testing.assert_array_equal(_v_template(tree.smplx_model("male")), _slim_smplx(offset=1.0)["v_template"])
    # The other order (the .npz first): the .pkl does not replace it, and the report is the same.
    archive2 = _zip(tmp_path / "reordered.zip", {
        "models/smplx/SMPLX_NEUTRAL.npz": npz.read_bytes(), "models/smplx/SMPLX_NEUTRAL.pkl": pkl.read_bytes()})
    result = run_cli("--data-dir", tmp_path / "data2", "import-body-models", archive2, "--json", tmp_path / "r3.json")
    assert [r["status"] for r in json.loads((tmp_path / "r3.json").read_text())] == ["installed"] * 2
    np.testing.assert_array_equal(_v_template(DataTree(tmp_path / "data2").smplx_model("neutral")),
                                  _slim_smplx(offset=0.5)["v_template"])
    # Again: everything exists, nothing rewritten.
    again = run_cli("--data-dir", data, "import-body-models", archive, "--json", tmp_path / "r2.json")
    assert again.exit_code == 0
    assert {r["status"] for r in json.loads((tmp_path / "r2.json").read_text())} == {"exists"}


def test_import_pkl_never_overwrites_the_npz_beside_without_force(tmp_path, run_cli):
    data = tmp_path / "data"
    tree = DataTree(data)
    tree.smplx_dir.mkdir(parents=True)
    np.savez(tree.smplx_model("neutral", "npz"), **_slim_smplx(offset=2.0))  # installed before
    before = tree.smplx_model("neutral", "npz").read_bytes()
    src = tmp_path / "SMPLX_NEUTRAL.pkl"
    with open(src, "wb") as fh:
        pickle.dump(_slim_smplx(), fh, protocol=2)
    result = run_cli("--data-dir", data, "import-body-models", src, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(r["installed"], r["status"]) for r in report] == [
        ("body_models/smplx/SMPLX_NEUTRAL.pkl", "installed"), ("body_models/smplx/SMPLX_NEUTRAL.npz", "exists")]
    assert "--overwrite" in report[1]["detail"]
    assert tree.smplx_model("neutral", "npz").read_bytes() == before
    assert tree.smplx_model("neutral", "pkl").read_bytes() == src.read_bytes()
    # --force replaces both.
    forced = run_cli("--data-dir", data, "import-body-models", src, "--force", "--json", tmp_path / "f.json")
    assert forced.exit_code == 0
    assert [r["status"] for r in json.loads((tmp_path / "f.json").read_text())] == ["installed"]
    np.testing.assert_array_equal(_v_template(tree.smplx_model("neutral", "npz")), _slim_smplx()["v_template"])
    # Same for a chumpy .pkl (MANO).
    tree.mano_dir.mkdir(parents=True)
    sentinel = tree.mano_model("right", "npz")
    np.savez(sentinel, **standins.standin_mano_arrays(seed=9))
    before = sentinel.read_bytes()
    standins.write_chumpy_pickle(tmp_path / "mano" / "MANO_RIGHT.pkl", standins.standin_mano_arrays())
    result = run_cli("--data-dir", data, "import-body-models", tmp_path / "mano")
    assert result.exit_code == 0 and "exists" in result.stdout
    assert sentinel.read_bytes() == before


def test_doctor_accepts_a_pkl_only_tree(tmp_path, run_cli):
    tree = DataTree(tmp_path / "data")
    tree.smplx_dir.mkdir(parents=True)
    smplx = _slim_smplx()
    with open(tree.smplx_model("neutral", "pkl"), "wb") as fh:
        pickle.dump(smplx, fh, protocol=2)
    standins.write_standin_aux_files(tree, smplx)
    tree.pretrained_models.mkdir(parents=True)
    _zip(tree.checkpoint("expose"), {"archive/data.pkl": b"x"})  # a torch.save-style zip
    result = run_cli("--data-dir", tree.root, "doctor", "--for", "infer", "--json", tmp_path / "d.json")
    assert result.exit_code == 0, result.output
    report = {r["file"]: r for r in json.loads((tmp_path / "d.json").read_text())}
    assert report["SMPL-X neutral"]["status"] == "ok"
    assert report["SMPL-X neutral"]["path"].endswith("SMPLX_NEUTRAL.pkl")
    assert [p.rsplit("/", 1)[-1] for p in report["SMPL-X neutral"]["accepted"]] == ["SMPLX_NEUTRAL.npz", "SMPLX_NEUTRAL.pkl"]
    # the full paths, .npz first (the file the builders load when both exist)
    assert report["SMPL-X neutral"]["accepted"] == [str(tree.root / "body_models" / "smplx" / f"SMPLX_NEUTRAL.{ext}")
                                                    for ext in ("npz", "pkl")]
    # A damaged .npz takes precedence (the builders would load it) and is reported.
    tree.smplx_model("neutral", "npz").write_bytes(b"garbage")
    result = run_cli("--data-dir", tree.root, "doctor", "--for", "infer", "--json", tmp_path / "d.json")
    assert result.exit_code == 1
    report = {r["file"]: r for r in json.loads((tmp_path / "d.json").read_text())}
    assert report["SMPL-X neutral"]["status"] == "invalid"
    assert report["SMPL-X neutral"]["path"].endswith("SMPLX_NEUTRAL.npz")


def test_doctor_missing_model_names_both_files(tmp_path, run_cli):
    run_cli("--data-dir", tmp_path, "doctor", "--json", tmp_path / "d.json")
    report = {r["file"]: r for r in json.loads((tmp_path / "d.json").read_text())}
    assert "SMPLX_NEUTRAL.npz or SMPLX_NEUTRAL.pkl" in report["SMPL-X neutral"]["detail"]
    assert "MANO_RIGHT.npz or MANO_RIGHT.pkl" in report["MANO right hand"]["detail"]


def _garbage(tree: DataTree) -> dict[str, str]:
    """Write a damaged or wrong file under each auxiliary name; return the detail each must show."""
    tree.smplx_dir.mkdir(parents=True, exist_ok=True)
    tree.flame_dir.mkdir(parents=True, exist_ok=True)
    means = standins.standin_all_means()
    means["left_hand_pose"] = {"cont_rot_repr": np.zeros(7, np.float32)}
    tree.all_means.write_bytes(pickle.dumps(means, protocol=2))
    tree.all_means_root_copy.write_bytes(pickle.dumps({"something": 1}, protocol=2))
    np.save(tree.shape_mean, np.zeros(4, np.float32))
    np.save(tree.smplx_to_j14, np.zeros((14, 100), np.float32))
    tree.j_regressor_h36m.write_bytes(b"not numpy at all")
    tree.mano_smplx_vertex_ids.write_bytes(pickle.dumps({"left_hand": np.arange(778), "right_hand": np.arange(700)}))
    np.save(tree.smplx_flame_vertex_ids, np.arange(5023) + 10000)
    tree.flame_static_embedding.write_bytes(pickle.dumps({"lmk_face_idx": np.zeros(51, np.int64)}))
    np.save(tree.flame_dynamic_embedding, np.zeros((79, 17)))
    return {
        "all_means.pkl": "'left_hand_pose/cont_rot_repr' of shape 90, found (7,)",
        "all_means.pkl (2nd copy)": "'body_pose'",
        "shape_mean.npy": "at least 10 values, found 4",
        "SMPLX_to_J14.npy": "shape 14x10475, found (14, 100)",
        "J_regressor_h36m.npy": "not a .npy file",
        "MANO_SMPLX_vertex_ids.pkl": "'right_hand' of shape 778, found (700,)",
        "SMPL-X__FLAME_vertex_ids.npy": "outside 0..10474",
        "flame_static_embedding.pkl": "'lmk_b_coords'",
        "flame_dynamic_embedding.npy": "expected a pickled dict",
    }


def test_doctor_checks_every_auxiliary_file_with_the_typed_loaders(tmp_path, run_cli):
    tree = DataTree(tmp_path / "data")
    expected = _garbage(tree)
    run_cli("--data-dir", tree.root, "doctor", "--json", tmp_path / "d.json")
    report = {r["file"]: r for r in json.loads((tmp_path / "d.json").read_text())}
    for label, detail in expected.items():
        assert report[label]["status"] == "invalid", (label, report[label])
        assert detail in report[label]["detail"], (label, report[label]["detail"])
    # Other garbage: right shapes but not numbers, a 2-D shape mean, a pickle with code in it.
    np.save(tree.shape_mean, np.zeros((2, 10), np.float32))
    np.save(tree.smplx_flame_vertex_ids, np.array(["x"] * 5023))
    tree.flame_static_embedding.write_bytes(pickle.dumps({"lmk_face_idx": np.zeros(51, np.int64),
                                                          "lmk_b_coords": np.zeros((50, 3))}))
    np.save(tree.flame_dynamic_embedding, np.array({"lmk_face_idx": np.zeros((79, 17), np.int64),
                                                    "lmk_b_coords": np.zeros((79, 3))}, dtype=object), allow_pickle=True)
    tree.mano_smplx_vertex_ids.write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    run_cli("--data-dir", tree.root, "doctor", "--json", tmp_path / "d.json")
    report = {r["file"]: r for r in json.loads((tmp_path / "d.json").read_text())}
    for label, detail in {
        "shape_mean.npy": "1-D array of shape N, found (2, 10)",
        "SMPL-X__FLAME_vertex_ids.npy": "of numbers",
        "flame_static_embedding.pkl": "'lmk_b_coords' of shape 51x3, found (50, 3)",
        "flame_dynamic_embedding.npy": "'lmk_b_coords' of shape 79x17x3, found (79, 3)",
        "MANO_SMPLX_vertex_ids.pkl": "refusing",
    }.items():
        assert report[label]["status"] == "invalid" and detail in report[label]["detail"], (label, report[label])


# --- loose .npz / .pkl files of each model, and archives holding them (an .npz is itself a zip)

def _slim(kind: str, offset: float = 0.0) -> dict:
    """A stand-in of ``kind`` with the counts import checks (vertices, faces, joints), small blend shapes."""
    make = {"smplx": standins.standin_smplx_arrays, "mano": standins.standin_mano_arrays,
            "flame": standins.standin_flame_arrays, "smpl": standins.standin_smpl_arrays}[kind]
    arrays = _cut(make())
    arrays["v_template"] = arrays["v_template"] + offset
    return arrays


#: kind -> (an .npz as released, where it goes), (a .pkl as released, where it goes)
_FILES = {
    "smplx": (("SMPLX_NEUTRAL.npz", lambda t: t.smplx_model("neutral", "npz")),
              ("SMPLX_MALE.pkl", lambda t: t.smplx_model("male", "pkl"))),
    "mano": (("MANO_RIGHT.npz", lambda t: t.mano_model("right", "npz")),
             ("MANO_LEFT.pkl", lambda t: t.mano_model("left", "pkl"))),
    "flame": (("FLAME_NEUTRAL.npz", lambda t: t.flame_model("neutral", "npz")),
              ("female_model.pkl", lambda t: t.flame_model("female", "pkl"))),
    "smpl": (("SMPL_NEUTRAL.npz", lambda t: t.smpl_model("neutral", "npz")),
             ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", lambda t: t.smpl_model("female", "pkl"))),
}


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "archive"])
@pytest.mark.parametrize("kind", sorted(_FILES))
def test_import_npz_and_pkl_of_each_model(tmp_path, run_cli, kind, packed):
    (npz_name, npz_dest), (pkl_name, pkl_dest) = _FILES[kind]
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / npz_name, **_slim(kind, offset=0.25))
    standins.write_chumpy_pickle(src / pkl_name, _slim(kind, offset=0.5))
    given = [src / npz_name, src / pkl_name]
    if packed:
        given = [_zip(tmp_path / f"{kind}.zip", {f"{kind}/models/{p.name}": p.read_bytes() for p in given}
                      | {f"{kind}/LICENSE.txt": b"licence"})]
    data = tmp_path / "data"
    result = run_cli("--data-dir", data, "import-body-models", *given, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    tree = DataTree(data)
    expected = [(f"{kind}.zip:{kind}/models/{n}" if packed else str(src / n), _rel(tree, dest(tree)), "installed")
                for n, dest in _FILES[kind]]
    assert [(r["source"], r["installed"], r["status"]) for r in report] == expected
    np.testing.assert_array_equal(_v_template(npz_dest(tree)), _slim(kind, offset=0.25)["v_template"])
    assert pkl_dest(tree).read_bytes() == (src / pkl_name).read_bytes()
    np.testing.assert_array_equal(_v_template(pkl_dest(tree).with_suffix(".npz")), _slim(kind, offset=0.5)["v_template"])


def _rel(tree: DataTree, path) -> str:
    return str(path.relative_to(tree.root))


def test_import_every_path_given_has_a_row(tmp_path, run_cli):
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "SMPLX_NEUTRAL.npz", **_slim("smplx"))
    standins.write_chumpy_pickle(src / "MANO_RIGHT.pkl", _slim("mano"))
    np.savez(src / "model.npz", **_slim("smpl"))  # a model, but not under an official name
    (src / "notes.txt").write_text("hello")
    (src / "empty").mkdir()
    _zip(src / "docs.zip", {"README.txt": b"read me"})
    (src / "damaged.zip").write_bytes(b"PK\x03\x04 cut short")
    given = {"SMPLX_NEUTRAL.npz": "installed", "notes.txt": "unrecognised", "model.npz": "unrecognised",
             "empty": "unrecognised", "docs.zip": "unrecognised", "damaged.zip": "invalid", "MANO_RIGHT.pkl": "installed"}
    data = tmp_path / "data"
    # A path that does not exist stops the run before anything is written.
    missing = run_cli("--data-dir", data, "import-body-models", src / "SMPLX_NEUTRAL.npz", src / "gone.zip")
    assert missing.exit_code == 2 and "gone.zip: no such file" in missing.stderr
    assert not data.exists()
    result = run_cli("--data-dir", data, "import-body-models", *(src / n for n in given), "--json", tmp_path / "r.json")
    assert result.exit_code == 1  # something given was not a body-model file
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(r["source"], r["status"]) for r in report] == [(str(src / n), s) for n, s in given.items()]
    details = {r["source"]: r["detail"] for r in report}
    assert "not a body-model file" in details[str(src / "notes.txt")]
    assert "not a body-model file" in details[str(src / "model.npz")]
    assert "no body-model file in this folder" in details[str(src / "empty")]
    assert "no body-model file in this archive" in details[str(src / "docs.zip")]
    assert "zip" in details[str(src / "damaged.zip")]
    tree = DataTree(data)
    np.testing.assert_array_equal(_v_template(tree.smplx_model()), _slim("smplx")["v_template"])
    assert tree.mano_model("right").is_file()
    assert "2 installed, 5 refused, invalid or not a body-model file" in result.stderr
