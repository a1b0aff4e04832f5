"""Usage accounting through a real hub: the gateway records cluster time, the hub's byte meter counts
bytes read, monthly limits refuse new clusters (eolab.usage, /hub/eolab-usage, `eolab usage`).

One hub (demo mode) for the module, next to the session's catalogue stack. The expected figures
are measured by the test itself: the wall-clock time a cluster ran as its user saw it, and the
bytes the asset server says it sent.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from eolab import hub
from eolab.testing.hub import HubSession, running_demo_hub
from eolab.testing.stack import free_port_base

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
RUN = 30  # s a cluster runs
SERVER_RUN = 10  # s a server runs (its check is an interval, not a ratio)
GIB = 2**30
LOGINS = ("carol", "dave")  # carol has a tiny monthly limit, dave none
# As root, demo mode runs each login as its own system account (PREFIX + login), removed at the end.
PREFIX = "eolabu-"
AS_ROOT = os.geteuid() == 0
LIMITED, FREE = (PREFIX + login if AS_ROOT else login for login in LOGINS)  # the hub's (and gateway's) names
LIMIT = 0.005  # core-hours: 18 core-seconds, used up by the first cluster


@pytest.fixture(scope="module")
def usage_hub(catalog_stack):
    settings = hub.HubSettings(
        port=free_port_base(width=9), users=list(LOGINS), system_user_prefix=PREFIX, cluster_idle_timeout=300,
        max_worker_cores=1, max_worker_memory=1.0, usage_limits={LIMITED: {"core_hours": LIMIT}})
    with running_demo_hub(catalog_stack, settings, "eolab-usage-") as config:
        yield config, settings, hub.credentials(config)


def session(usage_hub, login: str) -> HubSession:
    config, settings, creds = usage_hub
    s = HubSession(f"http://127.0.0.1:{settings.port}", login)
    assert s.login(creds["passwords"][login]).status_code == 302
    s.new_token()
    return s


@pytest.fixture(scope="module")
def carol(usage_hub):
    s = session(usage_hub, LOGINS[0])
    yield s
    s.close()


@pytest.fixture(scope="module")
def dave(usage_hub):
    s = session(usage_hub, LOGINS[1])
    yield s
    s.close()


def gateway(usage_hub, token: str):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    port = usage_hub[1].port
    return Gateway(address=f"http://127.0.0.1:{port}/services/dask-gateway",
                   proxy_address=f"gateway://127.0.0.1:{port + 4}", auth=JupyterHubAuth(api_token=token))


def usage_of(user: HubSession, **params) -> httpx.Response:
    return user.http.get("/hub/eolab-usage", params=params, headers={"Authorization": f"token {user.token}"})


def test_cluster_core_and_memory_hours_match_the_time_it_ran(usage_hub, carol):
    before = usage_of(carol).json()["users"][LIMITED]
    gw = gateway(usage_hub, carol.token)
    started = time.time()
    cluster = gw.new_cluster(worker_cores=1, worker_memory=1.0)
    scaled = time.time()
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=60)
    time.sleep(RUN)
    name = cluster.name
    client.close()
    cluster.shutdown()
    # Gone from the list at once; its processes stop (and stop counting) a few seconds later.
    while gw.get_cluster(name).status.name != "STOPPED":
        time.sleep(0.2)
    stopped = time.time()
    gw.close()
    after = usage_of(carol).json()["users"][LIMITED]
    # The scheduler (1 core, 1 GiB) from the request to the stop, the worker (1 core, 1 GiB) from scale(1).
    expected_core_hours = (1 * (stopped - started) + 1 * (stopped - scaled)) / 3600
    expected_gib_hours = (1 * (stopped - started) + 1 * (stopped - scaled)) / 3600
    recorded = after["core_hours"] - before["core_hours"]
    print(f"core-hours recorded {recorded:.5f}, expected {expected_core_hours:.5f}")
    assert recorded == pytest.approx(expected_core_hours, rel=0.10)
    assert after["memory_gib_hours"] - before["memory_gib_hours"] == pytest.approx(expected_gib_hours, rel=0.10)
    assert after["core_hours"] >= LIMIT  # what the next test relies on


def test_user_over_the_monthly_limit_is_refused_and_others_are_not(usage_hub, carol, dave):
    gw = gateway(usage_hub, carol.token)
    with pytest.raises(Exception) as refused:
        gw.new_cluster()
    message = str(refused.value)
    month = time.strftime("%Y-%m", time.gmtime())
    assert f"{LIMITED} has used" in message and "core-hours of Dask clusters in " + month in message
    assert f"the monthly limit is {LIMIT:g} core-hours" in message
    assert "until the limit resets on " in message and "-01 00:00 UTC" in message
    assert not gw.list_clusters()  # nothing was started
    gw.close()
    # dave, without a limit, starts one as before.
    gw = gateway(usage_hub, dave.token)
    cluster = gw.new_cluster()
    assert cluster.name in {c.name for c in gw.list_clusters()}
    cluster.shutdown()
    gw.close()
    shown = usage_of(carol).json()
    assert shown["limits"][LIMITED]["core_hours"] == LIMIT
    assert usage_of(dave).json()["limits"] == {}


def test_a_servers_time_is_recorded_by_the_hub_apart_from_clusters(usage_hub, carol):
    """Carol's JupyterLab server from the spawn request to its stop, as the hub's default size (1
    core, 2 GiB: local servers have no limits), and not in the cluster core-hours limits count."""
    before = usage_of(carol).json()["users"][LIMITED]
    asked = time.time()
    carol.start_server()
    ready = time.time()
    time.sleep(SERVER_RUN)
    stopping = time.time()
    carol.stop_server()
    while (carol._api("GET", f"/users/{carol.username}").json().get("servers") or {}).get(""):
        time.sleep(0.2)
    stopped = time.time()
    after = usage_of(carol).json()["users"][LIMITED]
    hours = after["server_core_hours"] - before["server_core_hours"]
    print(f"server core-hours recorded {hours * 3600:.1f} s, between {stopping - ready:.1f} and {stopped - asked:.1f} s")
    assert (stopping - ready) / 3600 <= hours <= (stopped - asked) / 3600
    assert after["server_memory_gib_hours"] - before["server_memory_gib_hours"] == pytest.approx(2 * hours)
    assert after["core_hours"] == pytest.approx(before["core_hours"])  # clusters' hours unchanged


LOAD_AND_REPORT = """
import os
import eolab, eolab.compute
from eolab.cli import main
items = eolab.open_catalog().search(collections=["pannonia|sentinel-2-l2a"],
                                    datetime="2026-04-01/2026-04-20").item_collection()
cube = eolab.load_cube(items, bands=["B04", "B08"], resolution=20, mask=None)
cube.B04.mean().compute(scheduler="threads")   # read in the kernel
client = eolab.compute.get_client(workers=1)
client.compute(cube.B08.mean()).result()       # read by the cluster's worker
client.cluster.shutdown()
print("GDAL_HTTP_PROXY" in os.environ, os.environ.get("EOLAB_METERED") == "1")
"""


def test_bytes_read_per_provider_match_what_the_asset_server_sent(usage_hub, dave):
    config = usage_hub[0]
    dave.start_server()
    kernel = dave.start_kernel()
    served_before = httpx.get(f"{config.assets_url}/_served", timeout=10).json()["bytes"]
    before = usage_of(dave).json()["users"][FREE]["bytes_read"].get("pannonia", 0)
    from eolab.usage._meter import FLUSH_EVERY

    assert dave.run(kernel, LOAD_AND_REPORT).split() == ["True", "True"]  # reads went through the meter
    served = httpx.get(f"{config.assets_url}/_served", timeout=10).json()["bytes"] - served_before
    time.sleep(FLUSH_EVERY + 2)  # the meter writes its counts every few seconds
    recorded = usage_of(dave).json()["users"][FREE]["bytes_read"]
    print(f"bytes recorded {recorded.get('pannonia', 0) - before}, served {served}")
    assert served > 100_000
    assert recorded["pannonia"] - before == pytest.approx(served, rel=0.05)
    assert set(recorded) == {"pannonia"}  # only pannonia's assets were read
    out = dave.run(kernel, 'from eolab.cli import main\nmain(["usage"])')
    # `eolab usage` in the kernel shows the same account (dave has no limit).
    lines = [line for line in out.splitlines() if line.strip().startswith(FREE)]
    assert f"usage in {time.strftime('%Y-%m', time.gmtime())}" in out
    assert len(lines) == 1 and "pannonia" in lines[0] and lines[0].rstrip().endswith("none")


def test_map_tiles_count_for_the_user_who_asked(usage_hub, carol, dave):
    """The tile service reads a map's COGs on the user's behalf: the hub's gate records what each
    tile read under the user who asked (the tile service names it, the gate drops the header)."""
    import morecantile

    from eolab.search import Catalogue
    from eolab.usage._meter import FLUSH_EVERY

    config, settings, _ = usage_hub
    with Catalogue(config.broker_url) as cat:
        item = cat.items("sentinel-2-l2a", filter="\"grid:code\" = 'EOLAB-r02c02'", limit=1)[0]
    west, south, east, north = item["bbox"]
    tile = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 12)
    self_href = next(link["href"] for link in item["links"] if link["rel"] == "self")
    host = config.assets_url.split("//", 1)[1].split(":", 1)[0]
    dave_before = usage_of(dave).json()["users"][FREE]["bytes_read"].get(host, 0)
    carol_before = usage_of(carol).json()["users"][LIMITED]["bytes_read"]
    served_before = httpx.get(f"{config.assets_url}/_served", timeout=10).json()["bytes"]
    answer = httpx.get(f"http://127.0.0.1:{settings.port}/services/tiles/item/{tile.z}/{tile.x}/{tile.y}.png",
                       params={"url": self_href, "style": "ndvi"}, headers={"Authorization": f"token {dave.token}"},
                       timeout=60)
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG"), answer.text[:300]
    assert "x-eolab-read" not in answer.headers  # the browser does not see it
    served = httpx.get(f"{config.assets_url}/_served", timeout=10).json()["bytes"] - served_before
    time.sleep(FLUSH_EVERY + 2)  # the gate writes every 5 s
    recorded = usage_of(dave).json()["users"][FREE]["bytes_read"].get(host, 0) - dave_before
    print(f"tile bytes recorded {recorded}, served {served}")
    assert served > 10_000 and recorded == pytest.approx(served, rel=0.05)
    assert usage_of(carol).json()["users"][LIMITED]["bytes_read"] == carol_before


def test_kernels_cannot_report_bytes_the_meter_counts(usage_hub, carol, dave):
    """What is recorded is the meter's count: a user's own report is refused, with or without a token."""
    report = dave.http.post("/hub/eolab-usage", json={"bytes": {"danube": 1234}},
                            headers={"Authorization": f"token {dave.token}"})
    assert report.status_code == 409 and "meter" in report.json()["message"]
    assert "danube" not in usage_of(dave).json()["users"][FREE]["bytes_read"]
    assert "danube" not in usage_of(carol).json()["users"][LIMITED]["bytes_read"]
    assert dave.http.post("/hub/eolab-usage", json={"bytes": {"danube": 1}}).status_code in (403, 409)
    assert httpx.get(f"http://127.0.0.1:{usage_hub[1].port}/hub/eolab-usage", timeout=10).status_code in (302, 403)


def test_admins_see_every_user_per_day_and_users_do_not(usage_hub, carol, dave):
    assert usage_of(dave, all="1").status_code == 403
    admin = session(usage_hub, "admin")
    try:
        admin.token = None  # the browser session (login cookie) of an admin
        body = admin.http.get("/hub/eolab-usage", params={"all": "1", "daily": "1"}).json()
    finally:
        admin.close()
    assert {LIMITED, FREE} <= set(body["users"])
    assert body["users"][LIMITED]["core_hours"] > 0
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert body["daily"][today][FREE]["bytes_read"]["pannonia"] > 100_000  # the bytes test's reads
