"""The optional GMM pose prior (MMHuman3D's MaxMixturePrior from SMPLify's gmm_08.pkl): its value
against the Gaussian negative log-likelihood written out by hand, the import into the data tree,
bad files, and `expose fit --set fit.pose_prior=gmm` using it."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.fitting.pose_prior import GMMPosePrior
from expose_cli.io.paths import DataTree
from expose_cli.testing import standins
from expose_cli.testing.trees import link_tree


def _hand_nll(x: np.ndarray, means, covars, weights) -> float:
    """min_m [0.5 (x-mu_m)^T C_m^-1 (x-mu_m) - log(w_m / ((2 pi)^(d/2) sqrt(det C_m) / min_k sqrt(det C_k)))]"""
    d = x.shape[0]
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in covars])
    values = []
    for mu, c, w, s in zip(means, covars, weights, sqrdets, strict=True):
        r = x - mu
        quad = r @ np.linalg.solve(c, r)
        values.append(0.5 * quad - np.log(w / ((2 * np.pi) ** (d / 2) * (s / sqrdets.min()))))
    return min(values)


@pytest.mark.parametrize("components", [1, 2])
def test_prior_equals_the_hand_written_gaussian_nll(components):
    arrays = standins.standin_gmm_arrays(components=components, seed=components)
    prior = GMMPosePrior(**arrays)
    rng = np.random.default_rng(0)
    poses = rng.normal(0.0, 0.3, (3, 69))
    got = prior(torch.tensor(poses, dtype=torch.float64)).numpy()
    want = np.array([_hand_nll(p, **arrays) for p in poses])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    if components == 2:  # the min picks different components for poses at either mean
        per = prior.component_nll(torch.tensor(arrays["means"], dtype=torch.float64))
        assert per.argmin(dim=1).tolist() == [0, 1]
    # SMPL-X's 63 body values: SMPL's two hand joints taken as 0
    padded = np.concatenate([poses[:, :63], np.zeros((3, 6))], axis=1)
    np.testing.assert_allclose(prior(torch.tensor(poses[:, :63])).numpy(),
                               [_hand_nll(p, **arrays) for p in padded], rtol=1e-4, atol=1e-3)


def test_import_round_trips_and_bad_files_are_one_line(tmp_path, run_cli):
    arrays = standins.standin_gmm_arrays()
    src = standins.write_standin_gmm(tmp_path / "dl" / "gmm_08.pkl", arrays)
    data = tmp_path / "data"
    res = run_cli("--data-dir", data, "import-body-models", src, "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert [r["status"] for r in json.loads((tmp_path / "r.json").read_text())] == ["installed"]
    installed = DataTree(data).gmm_prior
    assert installed.read_bytes() == src.read_bytes()
    prior = GMMPosePrior.from_file(installed)
    np.testing.assert_allclose(prior.means.numpy(), arrays["means"], rtol=1e-6)

    bad = {**arrays, "covars": arrays["covars"][:, :63, :63]}
    standins.write_standin_gmm(tmp_path / "bad" / "gmm_08.pkl", bad)
    res = run_cli("--data-dir", tmp_path / "d2", "import-body-models", tmp_path / "bad" / "gmm_08.pkl")
    assert res.exit_code != 0
    assert "not a GMM pose prior (gmm_08.pkl): shapes" in res.output
    assert not DataTree(tmp_path / "d2").gmm_prior.exists()
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "gmm_08.pkl").write_bytes(pickle.dumps({"means": os.getcwd}, protocol=2))
    with pytest.raises(ExposeError, match="refusing to load"):
        GMMPosePrior.from_file(tmp_path / "evil" / "gmm_08.pkl")


def test_fit_uses_the_prior_when_enabled_and_needs_it_installed(standin_tree, tmp_path, run_cli):
    from expose_cli.body_models.builders import build_smplx
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
    from expose_cli.testing.fit_cases import make_case

    case = make_case(SMPLXKeypoints(build_smplx(DataTree(standin_tree))), persons=1, seed=3)
    points = torch.cat([case.noisy3d, case.confidence[..., None]], -1).numpy()
    np.savez(tmp_path / "kp.npz", keypoints=points)
    quick = ["--set", "stage1.num_iter=1", "--set", "stage2.num_iter=1", "--set", "stage3.num_iter=1",
             "--set", "fit.max_iter=5", "--set", "fit.pose_prior=gmm"]
    missing = run_cli("--data-dir", standin_tree, "fit", tmp_path / "kp.npz", "--out", tmp_path / "o1", *quick)
    assert missing.exit_code == 2 and "import-body-models gmm_08.pkl" in missing.stderr
    assert not (tmp_path / "o1").exists()
    data = link_tree(standin_tree, tmp_path / "data")
    arrays = standins.standin_gmm_arrays()
    standins.write_standin_gmm(DataTree(data).gmm_prior, arrays)
    res = run_cli("--data-dir", data, "fit", tmp_path / "kp.npz", "--out", tmp_path / "o2", *quick)
    assert res.exit_code == 0, res.output
    final = json.loads((tmp_path / "o2" / "kp" / "losses.json").read_text())["losses"][0]["final"]
    fitted = np.load(tmp_path / "o2" / "kp" / "person_00.npz")["body_pose_aa"].reshape(1, 63)
    want = 4.78 ** 2 * _hand_nll(np.concatenate([fitted[0], np.zeros(6)]), **arrays)
    assert final["pose_prior"] == pytest.approx(want, rel=1e-3, abs=1e-2)


def test_prior_term_of_an_smpl_fit_uses_all_69_values(standin_tree):
    from expose_cli.body_models.builders import build_smpl
    from expose_cli.fitting.config import load_config
    from expose_cli.fitting.objective import Targets, evaluate
    from expose_cli.fitting.smpl import SMPLJoints

    model = SMPLJoints(build_smpl(DataTree(standin_tree)))
    arrays = standins.standin_gmm_arrays(components=2, seed=4)
    gen = torch.Generator().manual_seed(1)
    params = {"global_orient": torch.zeros(2, 3), "transl": torch.tensor([[0.0, 0.0, 5.0]] * 2),
              "body_pose": 0.3 * torch.randn(2, 69, generator=gen), "betas": torch.zeros(2, 10)}
    cfg = load_config(None, ["fit.pose_prior=gmm"])
    targets = Targets(torch.zeros(2, 24, 3), torch.ones(2, 24))
    terms = evaluate(model, cfg, cfg.stage2, params, targets, prior=GMMPosePrior(**arrays))
    want = [4.78 ** 2 * _hand_nll(p, **arrays) for p in params["body_pose"].double().numpy()]
    np.testing.assert_allclose(terms["pose_prior"].numpy(), want, rtol=1e-4)
