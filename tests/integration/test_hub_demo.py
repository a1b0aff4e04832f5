"""The hub in `demo` mode, driven over HTTP like a user: login form, REST API, kernels over websocket.

One hub (with proxy, Dask Gateway, gates, culler, broker) for the module, on free ports next to the
session's catalogue stack. Covers: the user path (login → server → eolab code that searches the
catalogue and computes on a gateway cluster), the security matrix, fault handling and `down`.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from eolab import _services, hub
from eolab.errors import ServiceError
from eolab.testing.hub import HubSession
from eolab.testing.stack import free_port_base

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
ORPHAN_TIMEOUT = 8

SEARCH_AND_COMPUTE = """
import eolab, eolab.compute
catalog = eolab.open_catalog()
items = catalog.search(collections=["pannonia|sentinel-2-l2a"], datetime="2026-04-01/2026-04-12").item_collection()
cube = eolab.load_cube(items, bands=["B04", "B08"], resolution=20, mask=None)
client = eolab.compute.get_client(workers=1)
ndvi = ((cube.B08 - cube.B04) / (cube.B08 + cube.B04)).mean()
value = float(client.compute(ndvi).result())
print("ITEMS", len(items), "NDVI", repr(value), "CLUSTER", client.cluster.name,
      "WORKERS", len(client.scheduler_info()["workers"]))
"""


@pytest.fixture(scope="module")
def demo_hub(catalog_stack):
    config = catalog_stack
    base = free_port_base(width=9)
    settings = hub.HubSettings(
        port=base, users=["alice", "bob"], cluster_orphan_timeout=ORPHAN_TIMEOUT,
        cluster_idle_timeout=120, max_clusters_per_user=2, max_cores_per_user=3, max_memory_per_user=3.0,
        max_worker_cores=1, max_worker_memory=1.0)
    try:
        hub.up(config, settings)
        yield config, settings, hub.credentials(config)
    finally:
        hub.down(config, settings)


def url_of(demo_hub) -> str:
    return f"http://127.0.0.1:{demo_hub[1].port}"


@pytest.fixture(scope="module")
def alice(demo_hub):
    config, settings, creds = demo_hub
    session = HubSession(url_of(demo_hub), "alice")
    assert session.login(creds["user_password"]).status_code == 302
    session.new_token()
    session.start_server()
    yield session
    session.close()


@pytest.fixture(scope="module")
def bob(demo_hub):
    config, settings, creds = demo_hub
    session = HubSession(url_of(demo_hub), "bob")
    assert session.login(creds["user_password"]).status_code == 302
    session.new_token()
    yield session
    session.close()


@pytest.fixture(scope="module")
def alice_kernel(alice):
    kernel = alice.start_kernel()
    yield kernel
    with contextlib.suppress(httpx.HTTPError):  # the last test stops the hub itself
        alice.kill_kernel(kernel)


@pytest.fixture(scope="module")
def alice_result(alice, alice_kernel):
    """Alice's notebook code: search the federated catalogue, compute NDVI on her gateway cluster."""
    out = alice.run(alice_kernel, SEARCH_AND_COMPUTE)
    fields = out.split()
    return {"items": int(fields[fields.index("ITEMS") + 1]), "ndvi": float(fields[fields.index("NDVI") + 1]),
            "cluster": fields[fields.index("CLUSTER") + 1], "workers": int(fields[fields.index("WORKERS") + 1])}


def follow_links(start: str, headers: dict) -> dict[str, int]:
    """GET ``start`` and every STAC link (of JSON media type) of it, of its items page and of the
    items on it, as a client browsing from ``start`` would: {href: status}."""
    statuses: dict[str, int] = {}
    docs = [httpx.get(start, headers=headers, timeout=30).raise_for_status().json()]
    items_link = next(link["href"] for link in docs[0]["links"] if link["rel"] == "items")
    page = httpx.get(items_link, headers=headers, timeout=30).raise_for_status().json()
    docs += [page, *page["features"]]
    for doc in docs:
        for link in doc.get("links", []):
            href = link["href"]
            if href not in statuses and "json" in link.get("type", "application/json"):
                statuses[href] = httpx.get(href, headers=headers, timeout=30).status_code
    return statuses


def gateway_for(demo_hub, token: str):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    return Gateway(address=f"{url_of(demo_hub)}/services/dask-gateway",
                   proxy_address=f"gateway://127.0.0.1:{demo_hub[1].port + 4}",
                   auth=JupyterHubAuth(api_token=token))


# --- the user path --------------------------------------------------------------------------

def test_user_searches_catalogue_and_computes_on_gateway_cluster(demo_hub, alice, alice_result):
    import eolab

    config = demo_hub[0]
    assert alice_result["workers"] == 1
    # The same numbers computed here, without hub or cluster, from the same broker.
    items = eolab.open_catalog(config.broker_url).search(
        collections=["pannonia|sentinel-2-l2a"], datetime="2026-04-01/2026-04-12").item_collection()
    assert alice_result["items"] == len(items) > 0
    cube = eolab.load_cube(items, bands=["B04", "B08"], resolution=20, mask=None)
    expected = float(((cube.B08 - cube.B04) / (cube.B08 + cube.B04)).mean().compute(scheduler="synchronous"))
    assert math.isclose(alice_result["ndvi"], expected, rel_tol=1e-6)
    assert -1 < expected < 1


def test_kernel_environment_points_at_hub_services(demo_hub, alice, alice_kernel):
    config, settings, _ = demo_hub
    out = alice.run(alice_kernel, "import os; print(os.environ['EOLAB_CATALOG_URL'], "
                                  "os.environ['DASK_GATEWAY__ADDRESS'], os.environ['HOME'])")
    catalog, gateway, home = out.split()
    assert catalog == config.broker_url
    assert gateway == f"{url_of(demo_hub)}/services/dask-gateway"
    assert home == str(hub.hub_dir(config) / "homes" / "alice")


def test_templates_and_notebooks_in_new_home(alice):
    listing = alice.server_api("GET", "/contents").json()
    names = {entry["name"] for entry in listing["content"]}
    assert {"notebooks", "workflows"} <= names
    readme = alice.server_api("GET", "/contents/notebooks/README.md", params={"type": "file", "format": "text"}).json()
    assert "Getting-started notebooks" in readme["content"]


def test_dashboard_link_works_for_its_owner(demo_hub, alice, alice_result):
    link = f"{url_of(demo_hub)}/services/dask-gateway/clusters/{alice_result['cluster']}/status"
    response = httpx.get(link, headers={"Authorization": f"token {alice.token}"}, timeout=30)
    assert response.status_code == 200 and "bokeh" in response.text.lower()


def test_catalogue_service_through_hub_with_token(demo_hub, alice):
    response = httpx.get(f"{url_of(demo_hub)}/services/catalog/search",
                         params={"collections": "pannonia|sentinel-2-l2a", "limit": 2},
                         headers={"Authorization": f"token {alice.token}"}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert len(body["features"]) == 2
    # Links lead back through the hub, not to the internal port.
    assert all(link["href"].startswith(f"{url_of(demo_hub)}/services/catalog") for link in body["links"])


def test_kernels_publish_through_the_gate_into_their_own_collection(demo_hub, alice, alice_kernel, bob):
    from eolab.stack import workspace as _workspace

    config = demo_hub[0]
    member = config.member_url(config.member("workspace"))
    try:
        out = alice.run(alice_kernel, """
from eolab.analysis import publish
item = {"type": "Feature", "stac_version": "1.0.0", "id": "demo-result", "bbox": [16.0, 47.0, 17.0, 48.0],
        "geometry": {"type": "Polygon", "coordinates": [[[16, 47], [17, 47], [17, 48], [16, 48], [16, 47]]]},
        "properties": {"datetime": "2026-05-01T00:00:00Z"}, "assets": {}, "links": []}
publish.upsert_items([item])
print(publish.writable_provider().url)
""")
        assert out.split() == [f"{url_of(demo_hub)}/services/catalog/members/workspace"]
        assert httpx.get(f"{member}/collections/results-alice/items/demo-result").status_code == 200
        # Bob's hub token opens the gate, but not into Alice's collection.
        refused = httpx.delete(f"{url_of(demo_hub)}/services/catalog/members/workspace/collections/results-alice"
                               "/items/demo-result", headers={"Authorization": f"token {bob.token}"}, timeout=30)
        assert refused.status_code == 403 and "results-bob" in refused.json()["error"]
        assert httpx.get(f"{member}/collections/results-alice/items/demo-result").status_code == 200
        # Alice's browser session (the gate's login cookie) reads, but cannot write: any web page
        # could make her browser send that cookie.
        gate = f"{url_of(demo_hub)}/services/catalog/members/workspace"
        page = alice.http.get(f"{gate}/collections", headers={"Accept": "text/html"}, follow_redirects=True)
        assert page.status_code == 200 and "results-alice" in page.text
        by_cookie = alice.http.delete(f"{gate}/collections/results-alice/items/demo-result")
        assert by_cookie.status_code == 403 and "cookie" in by_cookie.json()["error"]
        assert httpx.get(f"{member}/collections/results-alice/items/demo-result").status_code == 200
        # Every link of her collection, its items page and its item leads somewhere, through the
        # hub: opened at the workspace (the gate's members/workspace) and through the broker.
        for start in (f"{gate}/collections/results-alice",
                      f"{url_of(demo_hub)}/services/catalog/collections/workspace|results-alice"):
            statuses = follow_links(start, {"Authorization": f"token {alice.token}"})
            assert len(statuses) >= 4, statuses
            assert all(href.startswith(url_of(demo_hub) + "/services/catalog/") for href in statuses), statuses
            assert {href: code for href, code in statuses.items() if code != 200} == {}, start
    finally:
        token = _workspace.read_token(config.run_dir)
        httpx.delete(f"{member}/collections/results-alice", headers={"Authorization": f"Bearer {token}"})


def test_options_widget_bounds_come_from_the_server(alice, alice_kernel):
    out = alice.run(alice_kernel, """
from eolab.widgets import ComputeOptions
o = ComputeOptions.from_server()
print(o.backend, o.max_worker_cores, o.max_worker_memory)
""")
    assert out.split() == ["gateway", "1", "1.0"]


# --- security matrix: every cell a real request ----------------------------------------------

def test_anonymous_is_refused_everywhere(demo_hub, alice, alice_result):
    base = url_of(demo_hub)
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as anon:
        assert anon.get("/hub/api/users").status_code == 403
        server = anon.get("/user/alice/api/contents")
        assert server.status_code in (302, 403) and "content" not in server.text
        assert anon.get("/services/catalog/search").status_code == 401
        assert anon.get(f"/services/dask-gateway/clusters/{alice_result['cluster']}/status").status_code == 401
        assert anon.get("/services/dask-gateway/api/v1/clusters/").status_code == 401
        browser = anon.get("/services/catalog/", headers={"Accept": "text/html"})
        assert browser.status_code == 302 and "/hub/api/oauth2/authorize" in browser.headers["location"]


def test_wrong_password_is_refused(demo_hub):
    session = HubSession(url_of(demo_hub), "alice")
    response = session.login("not-the-password")
    assert response.status_code == 403
    assert "jupyterhub-session-id" not in response.headers.get("set-cookie", "") or \
        session._api("GET", "/users/alice").status_code == 403
    assert session._api("GET", "/users/alice").status_code == 403
    unknown = HubSession(url_of(demo_hub), "mallory")
    assert unknown.login(demo_hub[2]["user_password"]).status_code == 403  # not an allowed user
    session.close()
    unknown.close()


def test_bob_cannot_use_alices_server(demo_hub, alice, bob):
    headers = {"Authorization": f"token {bob.token}"}
    base = url_of(demo_hub)
    assert httpx.get(f"{base}/user/alice/api/kernels", headers=headers).status_code in (403, 404)
    assert httpx.post(f"{base}/user/alice/api/kernels", headers=headers, json={}).status_code in (403, 404)
    assert httpx.get(f"{base}/hub/api/users/alice", headers=headers).status_code in (403, 404)
    # Bob's browser session (cookie) on Alice's server: sent away, never served.
    page = bob.http.get("/user/alice/lab")
    assert page.status_code in (302, 403, 404) and "/user/alice/lab" not in page.headers.get("location", "")


def test_bob_cannot_list_connect_stop_or_scale_alices_cluster(demo_hub, alice, bob, alice_result):
    name = alice_result["cluster"]
    with gateway_for(demo_hub, bob.token) as bobs_gateway:
        assert [c.name for c in bobs_gateway.list_clusters()] == []
        with pytest.raises(Exception, match="403|Forbidden|lacks permissions"):
            bobs_gateway.get_cluster(name)  # what connect() asks first: the cluster's TLS credentials
        with pytest.raises(Exception, match="403|Forbidden|lacks permissions"):
            bobs_gateway.scale_cluster(name, 2)
        with pytest.raises(Exception, match="403|Forbidden|lacks permissions"):
            bobs_gateway.stop_cluster(name)
    with gateway_for(demo_hub, alice.token) as alices_gateway:
        assert name in [c.name for c in alices_gateway.list_clusters()]  # still running


def test_nothing_listens_beyond_loopback_while_clusters_run(demo_hub, alice, alice_result):
    """The stack, the hub, its services, users' servers, schedulers and workers: 127.0.0.1 only."""
    from eolab.testing.stack import is_loopback, listeners

    config, settings, _ = demo_hub
    with gateway_for(demo_hub, alice.token) as gateway:
        assert alice_result["cluster"] in [c.name for c in gateway.list_clusters()]  # a cluster is running
    ours = set(hub._processes_of(hub.read_resolved(hub.hub_dir(config) / "settings.json").hub_id))
    run_dir = str(Path(config.run_dir).resolve())
    for pid_file in (Path(config.run_dir) / "pids").glob("*.pid"):
        pid = _services.running_pid(Path(config.run_dir), pid_file.stem)
        if pid:
            ours.add(pid)
    for proc in Path("/proc").iterdir():  # PostgreSQL's processes carry the cluster's directory
        if proc.name.isdigit():
            try:
                if run_dir.encode() in (proc / "cmdline").read_bytes():
                    ours.add(int(proc.name))
            except OSError:
                pass
    found = [(pid, ip, port) for pid, ip, port in listeners() if pid in ours]
    assert len({p for p, _, _ in found}) >= 8  # the stack, hub, proxy, gateway, gates, server, scheduler, workers
    assert [f for f in found if not is_loopback(f[1])] == []


def test_stopping_a_cluster_through_the_gate_answers_204(demo_hub, alice):
    """The gate passes the gateway's 204 on (it used to add a body and answer 500)."""
    with gateway_for(demo_hub, alice.token) as gateway:
        name = gateway.new_cluster().name
        stopped = httpx.delete(f"{url_of(demo_hub)}/services/dask-gateway/api/v1/clusters/{name}",
                               headers={"Authorization": f"jupyterhub {alice.token}"}, timeout=60)
        assert stopped.status_code == 204 and stopped.content == b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and name in [c.name for c in gateway.list_clusters()]:
            time.sleep(0.5)
        assert name not in [c.name for c in gateway.list_clusters()]


def test_eolab_runs_in_a_terminal_on_the_hub(alice):
    """A JupyterLab terminal keeps the venv on PATH: the README's `eolab templates list` works there."""
    import json

    import websocket  # websocket-client

    name = alice.server_api("POST", "/terminals").json()["name"]
    ws = websocket.create_connection(
        "ws" + alice.url[len("http"):] + f"/user/{alice.username}/terminals/websocket/{name}",
        header=[f"Authorization: token {alice.token}"], timeout=60)
    try:
        ws.send(json.dumps(["stdin", "eolab templates list; echo DONE-$((6*7))\r"]))
        out, deadline = "", time.monotonic() + 90
        while "DONE-42" not in out and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                out += message[1]
    finally:
        ws.close()
        alice.server_api("DELETE", f"/terminals/{name}")
    assert "DONE-42" in out, out[-500:]
    assert "command not found" not in out and "water-monitoring" in out, out[-800:]


def test_bob_cannot_open_alices_dashboard(demo_hub, bob, alice_result):
    base = url_of(demo_hub)
    link = f"{base}/services/dask-gateway/clusters/{alice_result['cluster']}/status"
    assert httpx.get(link, headers={"Authorization": f"token {bob.token}"}).status_code == 403
    # Bob logged in with a browser: the gate's OAuth gives him a cookie, still not Alice's dashboard.
    page = bob.http.get(link, headers={"Accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 403 and "bokeh" not in page.text.lower()


def test_services_refuse_tokens_without_access(demo_hub, alice):
    # A token Alice made without the service access scopes.
    response = alice._api("POST", "/users/alice/tokens", json={"scopes": ["read:users:name!user"], "note": "narrow"})
    narrow = response.json()["token"]
    base = url_of(demo_hub)
    assert httpx.get(f"{base}/services/catalog/search", headers={"Authorization": f"token {narrow}"}).status_code == 401
    with gateway_for(demo_hub, narrow) as gateway:
        with pytest.raises(Exception, match="401|Unauthorized"):
            gateway.list_clusters()


def test_tile_service_needs_a_token(demo_hub, alice):
    if not hub._app_exists(hub.TILES_APP):
        pytest.skip(f"the tile service ({hub.TILES_APP}) does not exist yet; the hub runs it once it does")
    url = f"{url_of(demo_hub)}/services/tiles/styles"
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"token {alice.token}"}, timeout=30).status_code == 200


# --- limits and faults ----------------------------------------------------------------------

def test_user_over_limit_gets_a_clear_error(demo_hub, alice, alice_kernel, alice_result):
    # Alice has one cluster with one 1-core worker; her budget is 3 cores, 2 clusters.
    out = alice.run(alice_kernel, """
import eolab.compute
try:
    eolab.compute.new_cluster(workers=3)
except eolab.compute.ComputeError as exc:
    print("SCALE:", exc)
second = eolab.compute.new_cluster(workers=0)
try:
    eolab.compute.new_cluster(workers=0)
except eolab.compute.ComputeError as exc:
    print("COUNT:", exc)
second.shutdown()
""")
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines() if ": " in line)
    assert "3 workers exceed alice's limit: at most 2 more" in lines["SCALE"]
    assert "already has 2 active clusters, the limit is 2" in lines["COUNT"]
    assert all("\n" not in text for text in lines.values())


def test_scheduler_requests_are_capped_server_side(demo_hub, alice):
    # Adaptive scaling asks the scheduler for workers; the gateway caps them to the budget.
    with gateway_for(demo_hub, alice.token) as gateway:
        before = {c.name for c in gateway.list_clusters()}
        options = gateway.cluster_options()
        with pytest.raises(Exception, match="exceed alice's limit"):
            cluster = gateway.new_cluster(options)
            try:
                cluster.adapt(minimum=0, maximum=50)
            finally:
                cluster.shutdown()
        assert {c.name for c in gateway.list_clusters()} == before


def _cluster_processes(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"DASK_GATEWAY_CLUSTER_NAME={name}".encode() in env:
                found.append(int(entry.name))
    return found


def test_killed_kernel_leaves_no_cluster(demo_hub, alice):
    kernel = alice.start_kernel()
    out = alice.run(kernel, """
import os, eolab.compute
client = eolab.compute.get_client(workers=1)
print(os.getpid(), client.cluster.name, client.submit(lambda: 6 * 7).result())
""")
    pid, name, answer = out.split()
    assert answer == "42" and _cluster_processes(name)
    os.kill(int(pid), signal.SIGKILL)  # the kernel dies without any cleanup
    deadline = time.monotonic() + ORPHAN_TIMEOUT + 60
    with gateway_for(demo_hub, alice.token) as gateway:
        while time.monotonic() < deadline and name in [c.name for c in gateway.list_clusters()]:
            time.sleep(1)
        assert name not in [c.name for c in gateway.list_clusters()]
    while time.monotonic() < deadline and _cluster_processes(name):
        time.sleep(0.5)
    assert _cluster_processes(name) == []
    alice.kill_kernel(kernel)


def _health(demo_hub) -> dict:
    token = demo_hub[2]["admin_token"]
    return httpx.get(f"{url_of(demo_hub)}/hub/eolab-health", timeout=10,
                     headers={"Authorization": f"token {token}"}).json()


def test_health_details_are_for_admins_only(demo_hub, alice):
    anyone = httpx.get(f"{url_of(demo_hub)}/hub/eolab-health", timeout=10)
    assert anyone.json() == {"ok": anyone.json()["ok"]}  # healthy or not, nothing more
    as_alice = httpx.get(f"{url_of(demo_hub)}/hub/eolab-health", timeout=10,
                         headers={"Authorization": f"token {alice.token}"})
    assert "services" not in as_alice.json()
    details = _health(demo_hub)["services"]
    assert details and all("pid" in s and "url" in s for s in details.values())


@pytest.mark.parametrize("service", ["catalog", "dask-gateway", "dask-gateway-server"])
def test_crashed_service_is_reported_then_restarted(demo_hub, alice, alice_result, service):
    before = _health(demo_hub)["services"]
    if service not in before:
        pytest.skip(f"{service} is not managed by this hub (it ran before the hub started)")
    os.kill(before[service]["pid"], signal.SIGKILL)
    seen_states, deadline = set(), time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _health(demo_hub)
        seen_states.add(now["services"][service]["state"])
        if now["ok"] and now["services"][service]["pid"] != before[service]["pid"]:
            break
        time.sleep(0.2)
    assert now["ok"] and now["services"][service]["pid"] != before[service]["pid"]
    assert seen_states & {"down", "starting"}  # the health page reported it while it was gone
    path = "/services/catalog/search?limit=1" if service.startswith("catalog") else \
        "/services/dask-gateway/api/v1/clusters/"
    header = ("token" if service.startswith("catalog") else "jupyterhub") + f" {alice.token}"
    response = httpx.get(url_of(demo_hub) + path, headers={"Authorization": header}, timeout=30)
    assert response.status_code == 200


def test_status_lists_the_hub_and_its_services(demo_hub):
    statuses = {s.name: s for s in hub.status(demo_hub[0], demo_hub[1])}
    assert statuses["hub"].state == "running"
    for name in ("hub-dask-gateway", "hub-dask-gateway-server", "hub-idle-culler", "hub-catalog"):
        assert statuses[name].state == "running"


def test_up_again_is_idempotent(demo_hub):
    pid = _services.running_pid(Path(demo_hub[0].run_dir), "hub")
    statuses = hub.up(demo_hub[0], demo_hub[1])
    assert statuses[0].state == "running"
    assert _services.running_pid(Path(demo_hub[0].run_dir), "hub") == pid


def test_up_refuses_a_taken_port_with_one_line(catalog_stack, tmp_path):
    config = catalog_stack.model_copy(update={"run_dir": tmp_path})
    base = free_port_base(start=47000)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 3))
        blocker.listen()
        with pytest.raises(ServiceError) as err:
            hub.up(config, hub.HubSettings(port=base))
    assert f"port {base + 3}" in str(err.value) and "\n" not in str(err.value)


def test_zz_down_stops_everything_including_clusters(demo_hub, alice):
    config, settings, _ = demo_hub
    with gateway_for(demo_hub, alice.token) as gateway:
        cluster = gateway.new_cluster(shutdown_on_close=False)  # left running for `down` to stop
        cluster.scale(1)
        name = cluster.name
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _cluster_processes(name):
            time.sleep(0.2)
        assert _cluster_processes(name)
        cluster.close()
    statuses = hub.down(config, settings)
    assert statuses[0].state == "stopped"
    assert hub._processes_of(str(hub.hub_dir(config))) == []
    assert _cluster_processes(name) == []
    assert all(not _services.port_in_use(p) for p in settings.ports().values())
    assert hub.status(config, settings)[0].state == "down"
