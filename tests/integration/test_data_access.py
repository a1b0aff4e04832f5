"""Credentials at read time against provider look-alike asset servers on 127.0.0.1.

A Planetary-Computer-like server refuses reads without a valid, unexpired SAS token from its
token endpoint; a capped server answers 429 beyond its connection limit. Both count what they saw.
"""

from __future__ import annotations

import pickle
import socket
import threading
import time

import dask
import httpx
import numpy as np
import pytest
import rasterio
import uvicorn
from rasterio.transform import from_origin

import eolab
from eolab.config import ProviderProfile
from eolab.data import access
from eolab.errors import EolabError
from eolab.stack._lookalike import create_app

SIZE, RES, X0, Y0, EPSG = 512, 10.0, 500000.0, 5200000.0, 32634


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    def __init__(self, app):
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_stats").json()

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Four dates of a 512² uint16 band as COGs in container 'sentinel2-l2'."""
    root = tmp_path_factory.mktemp("lookalike")
    rng = np.random.default_rng(15)
    truth = {}
    for day in range(4):
        dn = rng.integers(1000, 9000, (SIZE, SIZE), dtype=np.uint16)
        path = root / "sentinel2-l2" / f"d{day}" / "B04.tif"
        path.parent.mkdir(parents=True)
        with rasterio.open(path, "w", driver="COG", width=SIZE, height=SIZE, count=1, dtype="uint16",
                           crs=f"EPSG:{EPSG}", transform=from_origin(X0, Y0, RES, RES), nodata=0,
                           blocksize=256, compress="DEFLATE") as dst:
            dst.write(dn, 1)
        truth[day] = dn
    return root, truth


def _items(base_url: str, provider: str) -> list[dict]:
    """Planetary-Computer-like items: B04 key, eo:bands, no raster scale/offset, baseline 05.10."""
    items = []
    for day in range(4):
        items.append({
            "type": "Feature", "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
            "id": f"S2B_MSIL2A_2026060{day + 1}_T34TDT",
            "collection": f"{provider}|sentinel-2-l2a",
            "geometry": {"type": "Polygon", "coordinates": [[[20, 46], [20.1, 46], [20.1, 46.1], [20, 46]]]},
            "bbox": [20, 46, 20.1, 46.1],
            "properties": {"datetime": f"2026-06-0{day + 1}T10:00:00Z", "s2:processing_baseline": "05.10",
                           "proj:epsg": EPSG},
            "links": [{"rel": "root", "href": "https://planetarycomputer.example/api/stac/v1"}],
            "assets": {"B04": {"href": f"{base_url}/sentinel2-l2/d{day}/B04.tif", "roles": ["data"],
                               "eo:bands": [{"name": "B04", "common_name": "red", "center_wavelength": 0.665}],
                               "proj:shape": [SIZE, SIZE], "proj:transform": [RES, 0, X0, 0, -RES, Y0]}},
        })
    return items


def _expected(truth, day):
    return truth[day].astype("float32") * np.float32(0.0001) - np.float32(0.1)


def test_sas_reads_outlive_their_token_with_fresh_tokens_and_no_failed_read(scene, monkeypatch):
    root, truth = scene
    server = _Server(create_app(root, sas_lifetime=3.0))
    try:
        profile = ProviderProfile(access="sas", token_url=f"{server.url}/token")
        items = _items(server.url, "pc-like")
        access.reset()
        # Unsigned, the server refuses: a clear error naming the provider and the setting.
        with pytest.raises(EolabError, match="provider 'pc-like'.*") as info, \
                dask.config.set(scheduler="synchronous"):
            eolab.load_cube(items, bands=["red"], resolution=10, mask=None, chunks={"x": 256, "y": 256},
                            profile=ProviderProfile(access="public", max_connections=4, retries=0)).red.values
        assert "profile: access:" in str(info.value) or "profile" in info.value.hint
        access.reset()
        cube = eolab.load_cube(items, bands=["red"], resolution=10, mask=None, chunks={"x": 256, "y": 256},
                               profile=profile)
        graph = pickle.dumps(dict(cube.red.data.__dask_graph__()))
        assert b"sig=" not in graph  # the token is fetched by the reader, never carried in the graph
        first = cube.red.values
        time.sleep(3.5)  # every cached token has now expired
        second = cube.red.values
        for day in range(4):
            np.testing.assert_allclose(first[day], _expected(truth, day), atol=1e-6)
        np.testing.assert_array_equal(first, second)
        stats = server.stats()
        assert stats["tokens_seen"] >= 2 and stats["tokens_issued"] >= 2
        counters = access.stats()
        assert counters.get("pc-like:failures", 0) == 0
        assert counters["pc-like:reads"] >= 32
    finally:
        server.stop()


def test_reads_above_the_connection_cap_are_held_back_and_429s_retried(scene, monkeypatch):
    root, truth = scene
    cap = 2
    server = _Server(create_app(root, max_connections=cap, latency_ms=30))
    try:
        items = _items(server.url, "capped")
        access.reset()
        # The client's cap at the provider's: no 429 at all, the server never over its cap.
        cube = eolab.load_cube(items, bands=["red"], resolution=10, mask=None, chunks={"x": 128, "y": 128},
                               profile=ProviderProfile(max_connections=cap))
        values = cube.red.compute(scheduler="threads", num_workers=8).values
        np.testing.assert_allclose(values[2], _expected(truth, 2), atol=1e-6)
        stats = server.stats()
        assert stats["max_in_flight"] <= cap and stats["throttled"] == 0
        assert access.stats().get("capped:failures", 0) == 0

        # Without the client cap (more threads than the server allows), 429 bursts are retried
        # and counted, and no read is lost.
        server.stop()
        server = _Server(create_app(root, max_connections=cap, latency_ms=30))  # new URLs: nothing cached
        items = _items(server.url, "capped")
        access.reset()
        monkeypatch.setenv("EOLAB_RETRY_BACKOFF", "0.05")
        monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{server.url}")  # every read asks the server
        cube = eolab.load_cube(items, bands=["red"], resolution=10, mask=None, chunks={"x": 128, "y": 128},
                               profile=ProviderProfile(max_connections=64, retries=30))
        again = cube.red.compute(scheduler="threads", num_workers=8).values
        np.testing.assert_array_equal(again, values)
        counters = access.stats()
        assert server.stats()["throttled"] > 0 and counters.get("capped:retries", 0) > 0
        assert counters.get("capped:failures", 0) == 0
        assert server.stats()["max_in_flight"] <= cap
    finally:
        server.stop()


def test_sas_tokens_are_fetched_and_renewed_on_dask_workers(scene):
    from distributed import Client, LocalCluster

    root, truth = scene
    server = _Server(create_app(root, sas_lifetime=3.0))
    try:
        access.reset()
        profile = ProviderProfile(access="sas", token_url=f"{server.url}/token")
        cube = eolab.load_cube(_items(server.url, "pc-like"), bands=["red"], resolution=10, mask=None,
                               chunks={"x": 256, "y": 256}, profile=profile)
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            first = cube.red.compute()
            time.sleep(3.5)  # the workers' tokens expire between the two computations
            second = cube.red.compute()
            on_workers = list(client.run(access.stats).values())
        np.testing.assert_allclose(first.values[1], _expected(truth, 1), atol=1e-6)
        np.testing.assert_array_equal(first.values, second.values)
        assert sum(s.get("pc-like:tokens", 0) for s in on_workers) >= 2
        assert sum(s.get("pc-like:failures", 0) for s in on_workers) == 0
        assert access.stats().get("pc-like:tokens", 0) == 0  # the kernel itself fetched none
        assert server.stats()["tokens_seen"] >= 2 and server.stats()["refused"] == 0
    finally:
        server.stop()


def test_connection_cap_is_shared_by_all_workers_of_a_cluster(scene):
    from distributed import Client, LocalCluster

    root, truth = scene
    cap = 2
    server = _Server(create_app(root, max_connections=cap, latency_ms=30))
    try:
        cube = eolab.load_cube(_items(server.url, "cluster-capped"), bands=["red"], resolution=10, mask=None,
                               chunks={"x": 128, "y": 128}, profile=ProviderProfile(max_connections=cap))
        with LocalCluster(n_workers=2, threads_per_worker=4, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            values = cube.red.compute().values
            on_workers = list(client.run(access.stats).values())
        np.testing.assert_allclose(values[3], _expected(truth, 3), atol=1e-6)
        stats = server.stats()
        assert stats["max_in_flight"] <= cap and stats["throttled"] == 0  # 8 threads, 2 processes, cap 2
        assert sum(s.get("cluster-capped:reads", 0) for s in on_workers) >= 64
        assert sum(s.get("cluster-capped:failures", 0) for s in on_workers) == 0
    finally:
        server.stop()


def test_reads_run_ahead_of_the_dask_threads_and_give_the_same_pixels(scene, monkeypatch):
    """Latency hiding: with one Dask thread, a far-away store (30 ms per answer) still has several
    reads in flight at once; the pixels are those of a read without read-ahead, and no result is
    left held once the cube is computed."""
    root, truth = scene
    server = _Server(create_app(root, latency_ms=30))
    try:
        items = _items(server.url, "far")
        kwargs = dict(bands=["red"], resolution=10, mask=None, chunks={"x": 128, "y": 128})
        monkeypatch.setenv("EOLAB_READ_THREADS", "8")
        ahead = eolab.load_cube(items, **kwargs).red.compute(scheduler="threads", num_workers=1).values
        assert server.stats()["max_in_flight"] > 1
        pool = access._ahead[8]
        assert pool.held == 0 and not pool.started, (pool.held, list(pool.started))
        for day in range(4):
            np.testing.assert_allclose(ahead[day], _expected(truth, day), atol=1e-6)

        monkeypatch.setenv("EOLAB_READ_THREADS", "0")  # one read per Dask thread, as odc-stac alone
        server.stop()
        server = _Server(create_app(root, latency_ms=30))
        items = _items(server.url, "far")
        plain = eolab.load_cube(items, **kwargs).red.compute(scheduler="threads", num_workers=1).values
        assert server.stats()["max_in_flight"] == 1
        np.testing.assert_array_equal(plain, ahead)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_server(scene):
    """A real S3-protocol server (moto) on 127.0.0.1 that checks signatures: bucket 'eodata' holds the
    scene, readable with the access key of an IAM user; unsigned or wrongly signed requests get 403."""
    import json
    import os
    import subprocess
    import sys

    import boto3

    root, _ = scene
    port = _free_port()
    # The first 3 requests (creating the user, its key and its policy) need no signature; all others do.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="eolab-reader")
        key = iam.create_access_key(UserName="eolab-reader")["AccessKey"]
        iam.put_user_policy(UserName="eolab-reader", PolicyName="eodata", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
        s3.create_bucket(Bucket="eodata")
        for path in sorted(root.rglob("*.tif")):
            s3.upload_file(str(path), "eodata", str(path.relative_to(root)))
        yield url, {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    finally:
        proc.kill()
        proc.wait()


def test_s3_assets_are_read_with_the_providers_keys_and_wrong_keys_are_refused_by_name(scene, s3_server,
                                                                                        monkeypatch):
    import json

    root, truth = scene
    url, keys = s3_server
    endpoint = url.split("://", 1)[1]
    profile = ProviderProfile(access="s3", s3_endpoint=endpoint, s3_https=False)
    items = _items("s3://eodata", "cdse-s3")
    assert httpx.get(f"{url}/eodata/sentinel2-l2/d0/B04.tif").status_code == 403  # unsigned: refused

    def read_with(credentials, after_refusal=False):
        monkeypatch.setenv("EOLAB_S3_CREDENTIALS", json.dumps({"cdse-s3": credentials}))
        access.reset()
        cube = eolab.load_cube(items, bands=["red"], resolution=10, mask=None, profile=profile)
        values = cube.red.compute(scheduler="threads", num_workers=2).values
        for day in range(4):
            np.testing.assert_allclose(values[day], _expected(truth, day), atol=1e-6)
        assert access.stats().get("cdse-s3:reads", 0) >= 4
        if not after_refusal:  # (reads started ahead for the refused load may still end and count)
            assert access.stats().get("cdse-s3:failures", 0) == 0

    read_with(keys)

    wrong = dict(keys, secret_access_key="not-the-secret")
    monkeypatch.setenv("EOLAB_S3_CREDENTIALS", json.dumps({"cdse-s3": wrong}))
    access.reset()
    cube = eolab.load_cube(items, bands=["red"], resolution=10, mask=None, profile=profile)
    with pytest.raises(access.AccessError) as refused:
        cube.red.compute(scheduler="threads", num_workers=2)
    text = str(refused.value)
    assert "'cdse-s3'" in text and "s3://eodata/sentinel2-l2/" in text and "EOLAB_S3_CREDENTIALS" in text
    assert "signature" in text  # the S3 server's own reason (SignatureDoesNotMatch)
    # Right keys again at once, in the same process: read, not refused from GDAL's memory of the
    # wrong ones nor handed the refused load's reads started ahead.
    read_with(keys, after_refusal=True)


@pytest.fixture(scope="module")
def minting_store(scene, tmp_path_factory):
    """The CDSE-like S3 store (eolab.stack._lookalike_s3) holding the scene, whose keys (6 s lifetime)
    are minted with access tokens of a real OIDC provider on 127.0.0.1; and alice's token from it."""
    from eolab.testing import oidc

    if oidc.available():
        pytest.skip(oidc.available())
    root, _ = scene
    work = tmp_path_factory.mktemp("minting")
    with oidc.provider_with_user(work, "alice") as (idp, _, tokens), \
            oidc.s3_store(root, sorted(root.rglob("*.tif")), idp.issuer, work, EOLAB_LOOKALIKE_S3_KEY_LIFETIME="6",
                          EOLAB_LOOKALIKE_MAX_CONNECTIONS="4") as url:
        yield url, tokens["access_token"], idp.issuer


def _profile_of(url, issuer, keys_url=None):
    return ProviderProfile(access="s3", s3_endpoint=url.split("://", 1)[1], s3_https=False,
                           s3_keys_url=keys_url or f"{url}/_s3keys/credentials", s3_keys_issuer=issuer,
                           max_connections=4)


def _minting(url, monkeypatch, tmp_path, token, issuer, *, token_issuer=None, keys_url=None):
    monkeypatch.delenv("EOLAB_S3_CREDENTIALS", raising=False)
    monkeypatch.setenv("EOLAB_S3_KEYS_FILE", str(tmp_path / "keys" / "s3-keys.json"))
    if token is None:
        monkeypatch.delenv("EOLAB_OIDC_ACCESS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("EOLAB_OIDC_ACCESS_TOKEN", token)
    monkeypatch.setenv("EOLAB_OIDC_ISSUER", token_issuer or issuer)  # as the hub sets it
    access.reset()
    profile = _profile_of(url, issuer, keys_url)
    return lambda: eolab.load_cube(_items("s3://eodata", "cdse-mint"), bands=["red"], resolution=10, mask=None,
                                   profile=profile).red.compute(scheduler="threads", num_workers=4).values


def test_s3_keys_are_minted_from_an_oidc_login_shared_by_processes_and_renewed(scene, minting_store, monkeypatch,
                                                                              tmp_path):
    import json

    _, truth = scene
    url, token, issuer = minting_store
    assert httpx.get(f"{url}/eodata/sentinel2-l2/d0/B04.tif").status_code == 403  # unsigned: refused
    assert httpx.get(f"{url}/eodata/sentinel2-l2/d0/B04.tif?X-Amz-Signature=00").status_code == 403
    assert httpx.get(f"{url}/eodata/no-such-object.tif").status_code == 403  # (moto alone: a 500)
    stats = lambda: httpx.get(f"{url}/_stats").json()  # noqa: E731
    before = stats()
    read = _minting(url, monkeypatch, tmp_path, token, issuer)

    def check(values):
        for day in range(4):
            np.testing.assert_allclose(values[day], _expected(truth, day), atol=1e-6)
        assert access.stats().get("cdse-mint:failures", 0) == 0

    check(read())
    assert stats()["keys_minted"] == before["keys_minted"] + 1
    keys_file = tmp_path / "keys" / "s3-keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert token not in keys_file.read_text()
    # Another process of the user (nothing cached in memory) takes the keys from the file: none minted.
    access.reset()
    check(read())
    assert stats()["keys_minted"] == before["keys_minted"] + 1

    # Keys the store refuses (expired there, though the file still trusts them): minted anew, no failed read.
    time.sleep(6.5)
    data = json.loads(keys_file.read_text())
    data["cdse-mint"]["expires"] = time.time() + 3600
    keys_file.write_text(json.dumps(data))
    access.reset()
    check(read())
    after = stats()
    assert after["expired_refused"] > before["expired_refused"]
    assert after["keys_minted"] == before["keys_minted"] + 2

    # Keys about to expire are renewed before they are used: no refusal at all.
    time.sleep(6.5)
    access.reset()
    check(read())
    assert stats()["keys_minted"] == before["keys_minted"] + 3
    assert stats()["expired_refused"] == after["expired_refused"]
    assert stats()["max_in_flight"] <= 4


def test_s3_keys_without_or_with_a_refused_token_fail_naming_what_to_set(minting_store, monkeypatch, tmp_path):
    url, token, issuer = minting_store
    minted = lambda: httpx.get(f"{url}/_stats").json()["keys_minted"]  # noqa: E731
    read = _minting(url, monkeypatch, tmp_path, None, issuer)
    with pytest.raises(access.AccessError) as missing:
        read()
    text = str(missing.value)
    assert "'cdse-mint'" in text and "no OIDC access token" in text and "EOLAB_OIDC_ACCESS_TOKEN" in text

    read = _minting(url, monkeypatch, tmp_path, "not-a-token-of-that-provider", issuer)
    with pytest.raises(access.AccessError) as refused:
        read()
    text = str(refused.value)
    assert "'cdse-mint'" in text and "refused the OIDC access token" in text and "log in" in text

    # The token is never sent to a keys service of another identity provider, nor over plain http
    # to another host: refused before any request (the store mints nothing).
    before = minted()
    read = _minting(url, monkeypatch, tmp_path, token, issuer, token_issuer="https://login.example.org/realms/other")
    with pytest.raises(access.AccessError, match="is not sent there"):
        read()
    read = _minting(url, monkeypatch, tmp_path, token, issuer, keys_url="http://keys.example.org/credentials")
    with pytest.raises(access.AccessError, match="not https"):
        read()
    assert minted() == before

    read = _minting(url, monkeypatch, tmp_path, token, issuer)  # the legitimate path still works
    assert read().shape[0] == 4
    assert minted() == before + 1


def _hub_token_endpoint(answer: dict):
    """What the hub's GET /hub/eolab-oidc-token answers (tested against a real hub in test_hub_oidc.py):
    ``answer`` to the server's hub token, 403 to anything else; counts the calls."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    calls = []

    async def token(request):
        calls.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != "token server-hub-token":
            return JSONResponse({"status": 403, "message": "no"}, status_code=403)
        return JSONResponse(answer)

    return _Server(Starlette(routes=[Route("/hub/eolab-oidc-token", token)])), calls


def test_an_expired_or_refused_oidc_token_is_replaced_by_the_hubs_fresh_one(minting_store, monkeypatch, tmp_path):
    url, token, issuer = minting_store
    minted = lambda: httpx.get(f"{url}/_stats").json()["keys_minted"]  # noqa: E731
    time.sleep(6.5)  # the earlier tests' keys expire: this one mints two (the store allows 2 live per user)
    hub, calls = _hub_token_endpoint({"access_token": token, "expires_at": time.time() + 600, "issuer": issuer})
    try:
        monkeypatch.setenv("JUPYTERHUB_API_URL", f"{hub.url}/hub/api")
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-hub-token")
        # The server's start token is past its end: the hub is asked before the keys service.
        monkeypatch.setenv("EOLAB_OIDC_TOKEN_EXPIRES_AT", str(time.time() - 5))
        before = minted()
        read = _minting(url, monkeypatch, tmp_path / "a", "expired-start-token", issuer)
        assert read().shape[0] == 4
        assert (len(calls), minted()) == (1, before + 1)
        # A token the keys service refuses though it should still be valid (revoked): once more, fresh.
        monkeypatch.setenv("EOLAB_OIDC_TOKEN_EXPIRES_AT", str(time.time() + 3600))
        read = _minting(url, monkeypatch, tmp_path / "b", "revoked-token", issuer)
        assert read().shape[0] == 4
        assert (len(calls), minted()) == (2, before + 2)
    finally:
        hub.stop()
    # A hub answering a token of another identity provider: not used, the refusal is reported.
    hub, calls = _hub_token_endpoint({"access_token": token, "expires_at": None,
                                      "issuer": "https://login.example.org/realms/other"})
    try:
        monkeypatch.setenv("JUPYTERHUB_API_URL", f"{hub.url}/hub/api")
        read = _minting(url, monkeypatch, tmp_path / "c", "revoked-token", issuer)
        with pytest.raises(access.AccessError, match="refused the OIDC access token"):
            read()
        assert len(calls) == 1 and minted() == before + 2
    finally:
        hub.stop()


def test_workers_without_the_token_read_with_keys_the_client_minted(scene, monkeypatch, tmp_path):
    """Dask workers (here a LocalCluster's processes with the token removed, like Gateway or Slurm
    workers that never get it) read with the keys the notebook's process minted when it built the
    cube, from the user's keys file."""

    from distributed import Client, LocalCluster

    from eolab.testing import oidc

    if oidc.available():
        pytest.skip(oidc.available())
    root, truth = scene
    with oidc.provider_with_user(tmp_path, "alice") as (idp, _, tokens), \
            oidc.s3_store(root, sorted(root.rglob("*.tif")), idp.issuer, tmp_path) as url:
        _minting(url, monkeypatch, tmp_path, tokens["access_token"], idp.issuer)  # the notebook's environment
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            _on_workers_without_the_token(client, url, idp, truth, tmp_path)


def _on_workers_without_the_token(client, url, idp, truth, tmp_path):
    import os

    dropped = client.run(lambda: os.environ.pop("EOLAB_OIDC_ACCESS_TOKEN", None) is not None)
    assert all(dropped.values())  # the workers had inherited it; now they have none
    client.run(lambda: os.environ.update(EOLAB_S3_KEYS_FILE=str(tmp_path / "keys" / "s3-keys.json")))
    cube = eolab.load_cube(_items("s3://eodata", "cdse-mint"), bands=["red"], resolution=10, mask=None,
                           profile=_profile_of(url, idp.issuer))
    values = cube.red.compute().values  # on the workers
    for day in range(4):
        np.testing.assert_allclose(values[day], _expected(truth, day), atol=1e-6)
    assert httpx.get(f"{url}/_stats").json()["keys_minted"] == 1
    # Without keys minted by the client, a worker cannot mint: it says what is missing.
    access.reset()
    client.run(access.reset)
    (tmp_path / "keys" / "s3-keys.json").unlink()
    task = client.submit(access.s3_keys, access.spec_for("cdse-mint", _profile_of(url, idp.issuer)), pure=False)
    with pytest.raises(access.AccessError, match="no OIDC access token"):
        task.result()
