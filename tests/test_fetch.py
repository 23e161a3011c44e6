"""Downloads against a local HTTP server: resume, retries, checksums, mirrors, the CLI."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from expose_cli.assets.download import (
    DownloadCancelled,
    DownloadOptions,
    LockFile,
    download_asset,
    file_status,
    source_url,
)
from expose_cli.assets.manifest import (
    Asset,
    default_manifest,
    models_assets,
    select,
    sha256_prefix_of,
)
from expose_cli.io.paths import DataTree
from tests.http_server import Behaviour, FileServer


@pytest.fixture
def server():
    srv = FileServer()
    base = srv.start()
    srv.base = base
    yield srv
    srv.stop()


def payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed * 13) % 251 for i in range(n))


def make_asset(server, name: str, data: bytes, with_prefix: bool = True, dest=None) -> Asset:
    digest = hashlib.sha256(data).hexdigest()
    fname = f"{name}-{digest[:8]}_20220708.pth" if with_prefix else f"{name}.npy"
    path = f"/mmhuman3d/models/{fname}"
    server.files[path] = data
    return Asset(name, "checkpoint", name, url=f"https://example.invalid{path}?versionId=X",
                 destinations=(dest or (lambda t, n=name: t.pretrained_models / f"{n}.pth"),),
                 sha256_prefix=sha256_prefix_of(f"https://x{path}"))


OPTS = dict(timeout=5.0, retries=3, backoff=0.0)


def fetch(server, asset, tree, **kw):
    opts = DownloadOptions(mirror=server.base, **{**OPTS, **kw})
    return download_asset(asset, tree, LockFile(tree), opts, sleep=lambda s: None)


def test_manifest_matches_the_seed():
    manifest = default_manifest()
    names = {a.name for a in manifest}
    for n in ("hrnet_hmr_expose_body", "resnet18_hmr_expose_face", "resnet18_hmr_expose_hand", "expose",
              "all_means", "J_regressor_h36m", "MANO_SMPLX_vertex_ids", "shape_mean", "SMPL-X__FLAME_vertex_ids",
              "SMPLX_to_J14", "flame_dynamic_embedding", "flame_static_embedding", "ffhq_annotations",
              "smplx", "mano", "flame", "smpl", "curated_fits", "spin_in_smplx"):
        assert n in names
    by = {a.name: a for a in manifest}
    assert by["hrnet_hmr_expose_body"].sha256_prefix == "d7db2e53"
    assert by["expose"].sha256_prefix == "d9d5dbf7"
    tree = DataTree("/d")
    assert by["hrnet_hmr_expose_body"].paths(tree) == [tree.pretrained_models / "hrnet_hmr_expose_body.pth"]
    assert by["all_means"].paths(tree) == [tree.all_means, tree.all_means_root_copy]
    assert by["expose"].url.startswith("https://openmmlab-share.oss-cn-hangzhou.aliyuncs.com/mmhuman3d/models/expose/expose/expose-d9d5dbf7_20220708.pth?versionId=")
    assert not by["smplx"].downloadable and "import-body-models" in by["smplx"].install
    assert len(models_assets(manifest)) == 12
    assert [a.name for a in select(manifest, ["logs"])] == [a.name for a in manifest if a.kind == "log"]
    with pytest.raises(KeyError):
        select(manifest, ["nope"])


def test_mirror_keeps_path_drops_query():
    a = default_manifest()[0]
    assert source_url(a, "http://127.0.0.1:9/base/") == "http://127.0.0.1:9/base" + a.url_path
    assert source_url(a, None) == a.url


def test_normal_download_then_skip(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(300_000)
    asset = make_asset(server, "body", data)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and r.sha256 == hashlib.sha256(data).hexdigest()
    final = tree.pretrained_models / "body.pth"
    assert final.read_bytes() == data and not final.with_name("body.pth.part").exists()
    lock = json.loads(tree.download_lock.read_text())
    assert lock["pretrained_models/body.pth"]["size"] == len(data)
    r2 = fetch(server, asset, tree)
    assert r2.status == "verified" and server.count(asset.url_path) == 1  # nothing downloaded again


def test_resume_interrupted_transfer_with_range(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(500_000, 1)
    asset = make_asset(server, "part", data)
    server.behaviours[asset.url_path] = Behaviour(drop_after=123_456)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded"
    assert (tree.pretrained_models / "part.pth").read_bytes() == data
    ranges = [rng for p, rng in server.requests if p == asset.url_path]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0


def test_server_without_range_restarts_cleanly(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(200_000, 2)
    asset = make_asset(server, "norange", data)
    part = tree.pretrained_models / "norange.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage-from-an-earlier-run")
    server.behaviours[asset.url_path] = Behaviour(ignore_range=True)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and (tree.pretrained_models / "norange.pth").read_bytes() == data


def test_truncated_response_is_retried(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(100_000, 3)
    asset = make_asset(server, "trunc", data)
    server.behaviours[asset.url_path] = Behaviour(truncate_to=1000)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and (tree.pretrained_models / "trunc.pth").read_bytes() == data
    assert server.count(asset.url_path) == 2


def test_wrong_checksum_kept_as_corrupt(server, tmp_path):
    tree = DataTree(tmp_path)
    asset = make_asset(server, "bad", payload(5000, 4))
    server.files[asset.url_path] = payload(5000, 5)  # content no longer matches the name's prefix
    r = fetch(server, asset, tree)
    assert r.status == "failed" and "checksum mismatch" in r.message
    assert not (tree.pretrained_models / "bad.pth").exists()
    assert (tree.pretrained_models / "bad.pth.corrupt").exists()
    assert file_status(asset, tree, LockFile(tree))[0] == "corrupt"


def test_404_not_retried(server, tmp_path):
    tree = DataTree(tmp_path)
    asset = make_asset(server, "gone", payload(10))
    server.behaviours[asset.url_path] = Behaviour(status=404)
    r = fetch(server, asset, tree)
    assert r.status == "failed" and "HTTP 404" in r.message and asset.url_path in r.message
    assert server.count(asset.url_path) == 1


def test_500_then_success(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(4000, 6)
    asset = make_asset(server, "flaky", data)
    server.behaviours[asset.url_path] = Behaviour(fail_first=2)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and server.count(asset.url_path) == 3
    server.behaviours[asset.url_path] = Behaviour(fail_first=10)
    r = fetch(server, asset, DataTree(tmp_path / "other"), retries=1)
    assert r.status == "failed" and "HTTP 500" in r.message


def test_unreachable_host_says_what_to_do(tmp_path):
    asset = Asset("x", "auxiliary", "x", url="http://127.0.0.1:9/x.npy", destinations=(lambda t: t.root / "x.npy",))
    tree = DataTree(tmp_path)
    r = download_asset(asset, tree, LockFile(tree), DownloadOptions(retries=1, backoff=0.0, timeout=2), sleep=lambda s: None)
    assert r.status == "failed"
    assert r.message.startswith("cannot reach 127.0.0.1:9") and f"copy the file to {tmp_path / 'x.npy'}" in r.message
    assert list(tmp_path.iterdir()) == []


def test_second_destination_and_no_prefix(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(1000, 7)
    asset = make_asset(server, "all_means", data, with_prefix=False)
    asset = Asset(asset.name, "auxiliary", "", asset.url, (lambda t: t.all_means, lambda t: t.all_means_root_copy))
    r = fetch(server, asset, tree)
    assert r.status == "downloaded"
    assert tree.all_means.read_bytes() == data == tree.all_means_root_copy.read_bytes()


def test_cli_fetch_list_and_parallel_download(server, tmp_path, run_cli, monkeypatch):
    assets = [make_asset(server, f"m{i}", payload(50_000 + i, i)) for i in range(3)]
    import expose_cli.cli.fetch as fetch_cli

    monkeypatch.setattr(fetch_cli, "default_manifest", lambda: assets)
    env = {"EXPOSE_RETRY_BACKOFF": "0"}
    data = tmp_path / "data"
    result = run_cli("--data-dir", data, "fetch", "all", "--mirror", server.base, "--jobs", "3",
                     "--json", tmp_path / "r.json", env=env)
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in json.loads((tmp_path / "r.json").read_text())] == ["downloaded"] * 3
    again = run_cli("--data-dir", data, "fetch", "all", "--mirror", server.base, env=env)
    assert again.exit_code == 0 and "already present" in again.stdout
    assert all(server.count(a.url_path) == 1 for a in assets)
    assert run_cli("--data-dir", data, "fetch", "--list", "--json", tmp_path / "l.json").exit_code == 0
    assert [r["status"] for r in json.loads((tmp_path / "l.json").read_text())] == ["verified"] * 3
    dry = run_cli("--data-dir", tmp_path / "d2", "fetch", "m0", "--dry-run", "--mirror", server.base)
    assert dry.exit_code == 0 and "download" in dry.stdout and not (tmp_path / "d2").exists()
    bad = run_cli("--data-dir", data, "fetch", "nonsense")
    assert bad.exit_code == 1 and "unknown asset 'nonsense'" in bad.stderr


def test_cli_fetch_list_on_empty_tree_shows_every_asset(tmp_path, run_cli):
    result = run_cli("--data-dir", tmp_path, "fetch", "--list", "--json", tmp_path / "l.json")
    assert result.exit_code == 0
    rows = {r["asset"]: r for r in json.loads((tmp_path / "l.json").read_text())}
    assert rows.keys() == {a.name for a in default_manifest()}
    assert rows["expose"]["status"] == "missing" and "openmmlab-share" in rows["expose"]["source"]
    assert rows["smplx"]["status"] == "manual" and "smpl-x.is.tue.mpg.de" in rows["smplx"]["source"]
    assert not os.path.exists(tmp_path / "pretrained_models")


def test_cli_fetch_models_offline_fails_cleanly(tmp_path, run_cli):
    result = run_cli("--data-dir", tmp_path, "fetch-models", "--only", "shape_mean", "--mirror", "http://127.0.0.1:9",
                     "--retries", "0", "--timeout", "2")
    assert result.exit_code == 1
    assert "cannot reach 127.0.0.1:9" in result.stderr and "use --mirror" in result.stderr and "copy the file to" in result.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_connection_reset_keeps_the_bytes_received(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(3_000_000, 8)
    asset = make_asset(server, "reset", data)
    server.behaviours[asset.url_path] = Behaviour(reset_after=1_500_000)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and (tree.pretrained_models / "reset.pth").read_bytes() == data
    ranges = [rng for p, rng in server.requests if p == asset.url_path]
    assert len(ranges) == 2 and int(ranges[1][6:-1]) > 1_000_000  # resumed far in, not from 0


def test_foreign_part_file_is_never_spliced(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(200_000, 9)
    asset = make_asset(server, "foreign", data, with_prefix=False)
    part = tree.pretrained_models / "foreign.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(bytes(100_000))  # a .part expose did not start (no .part.json)
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and (tree.pretrained_models / "foreign.pth").read_bytes() == data
    assert [rng for p, rng in server.requests if p == asset.url_path] == [None]
    assert not part.exists() and not part.with_name(part.name + ".json").exists()


def test_part_of_a_changed_file_restarts_through_if_range(server, tmp_path):
    tree = DataTree(tmp_path)
    old = payload(300_000, 10)
    asset = make_asset(server, "changed", old, with_prefix=False)
    cancel_after_first = DownloadOptions(mirror=server.base, **OPTS)

    def stop(name, received, total):
        cancel_after_first.cancel.set()

    with pytest.raises(DownloadCancelled):
        download_asset(asset, tree, LockFile(tree), cancel_after_first, progress=stop, sleep=lambda s: None)
    part = tree.pretrained_models / "changed.pth.part"
    assert 0 < part.stat().st_size < len(old)
    new = payload(300_000, 11)  # same size, other content: a new version on the server
    server.files[asset.url_path] = new
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and (tree.pretrained_models / "changed.pth").read_bytes() == new
    assert server.requests[-1][1] is not None  # it asked to resume, the ETag said no, it got it all


def test_cancelled_download_resumes_in_the_next_run(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(400_000, 12)
    asset = make_asset(server, "cancel", data)
    opts = DownloadOptions(mirror=server.base, **OPTS)
    with pytest.raises(DownloadCancelled):
        download_asset(asset, tree, LockFile(tree), opts, progress=lambda *a: opts.cancel.set(), sleep=lambda s: None)
    assert not (tree.pretrained_models / "cancel.pth").exists()
    done = (tree.pretrained_models / "cancel.pth.part").stat().st_size
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and (tree.pretrained_models / "cancel.pth").read_bytes() == data
    assert server.requests[-1][1] == f"bytes={done}-"


def test_corrupt_file_under_the_final_name_is_moved_aside(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(5000, 13)
    asset = make_asset(server, "ckpt", data)
    final = tree.pretrained_models / "ckpt.pth"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"garbage")
    server.files[asset.url_path] = payload(5000, 14)  # and the source is bad too
    r = fetch(server, asset, tree)
    assert r.status == "failed" and "corrupt" in r.message and "checksum mismatch" in r.message
    assert not final.exists()  # no bad file under the final name
    server.files[asset.url_path] = data
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and final.read_bytes() == data


def test_unverified_copy_on_disk_is_checked_against_the_source(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(3000, 15)
    asset = make_asset(server, "aux", data, with_prefix=False)
    final = tree.pretrained_models / "aux.pth"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"")  # e.g. an empty file copied by hand: nothing vouches for it
    assert file_status(asset, tree, LockFile(tree))[0] == "present"
    offline = download_asset(asset, tree, LockFile(tree), DownloadOptions(mirror="http://127.0.0.1:9", **OPTS),
                             sleep=lambda s: None)
    assert offline.status == "failed" and "present but unverified" in offline.message
    r = fetch(server, asset, tree)
    assert r.status == "downloaded" and final.read_bytes() == data and "differed" in r.message
    assert final.with_name("aux.pth.old").read_bytes() == b""
    assert file_status(asset, tree, LockFile(tree))[0] == "verified"


def test_redownload_must_match_the_lock_file_unless_forced(server, tmp_path):
    tree = DataTree(tmp_path)
    data = payload(3000, 16)
    asset = make_asset(server, "locked", data, with_prefix=False)
    assert fetch(server, asset, tree).status == "downloaded"
    final = tree.pretrained_models / "locked.pth"
    final.unlink()
    server.files[asset.url_path] = payload(3000, 17)  # the mirror now serves something else
    r = fetch(server, asset, tree)
    assert r.status == "failed" and "differs from the copy verified before" in r.message and not final.exists()
    r = fetch(server, asset, tree, force=True)
    assert r.status == "downloaded" and final.read_bytes() == payload(3000, 17) and "new version" in r.message


def test_unreachable_host_is_not_retried_for_every_asset(tmp_path):
    tree = DataTree(tmp_path)
    assets = [Asset(f"x{i}", "auxiliary", "x", url=f"http://127.0.0.1:9/x{i}.npy",
                    destinations=(lambda t, i=i: t.root / f"x{i}.npy",)) for i in range(4)]
    opts = DownloadOptions(retries=5, backoff=0.0, timeout=2)
    sleeps = []
    results = [download_asset(a, tree, LockFile(tree), opts, sleep=sleeps.append) for a in assets]
    assert all(r.status == "failed" and r.message.startswith("cannot reach 127.0.0.1:9") for r in results)
    assert len(sleeps) == 1  # one retry for the first asset; the others know the host is down


def test_cli_force_env_mirror_and_mirror_with_a_path(server, tmp_path, run_cli, monkeypatch):
    data = payload(20_000, 18)
    asset = make_asset(server, "m", data)
    server.files["/base" + asset.url_path] = data  # a mirror whose base URL has a path part
    import expose_cli.cli.fetch as fetch_cli

    monkeypatch.setattr(fetch_cli, "default_manifest", lambda: [asset])
    env = {"EXPOSE_RETRY_BACKOFF": "0", "EXPOSE_MIRROR": server.base + "/base/"}
    root = tmp_path / "data"
    assert run_cli("--data-dir", root, "fetch", "m", env=env).exit_code == 0
    assert server.count("/base" + asset.url_path) == 1 and server.count(asset.url_path) == 0
    again = run_cli("--data-dir", root, "fetch", "m", "--force", env=env)
    assert again.exit_code == 0 and server.count("/base" + asset.url_path) == 2
    assert (root / "pretrained_models" / "m.pth").read_bytes() == data


def test_dry_run_says_an_unverified_copy_is_downloaded_again(server, tmp_path, run_cli, monkeypatch):
    asset = make_asset(server, "aux", payload(100, 19), with_prefix=False)
    import expose_cli.cli.fetch as fetch_cli

    monkeypatch.setattr(fetch_cli, "default_manifest", lambda: [asset])
    root = tmp_path / "data"
    (root / "pretrained_models").mkdir(parents=True)
    (root / "pretrained_models" / "aux.pth").write_bytes(b"copied by hand")
    dry = run_cli("--data-dir", root, "fetch", "aux", "--dry-run", "--json", tmp_path / "x.json")
    assert dry.exit_code == 0
    row = next(line for line in dry.stdout.splitlines() if "aux" in line and "present" in line)
    assert "download" in row and "skip" not in row
