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
from eolab.testing.hub import HubSession, running_demo_hub
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


# As root, demo mode runs each login as its own system account (PREFIX + login), removed at the end.
PREFIX = "eolabd-"
AS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def demo_hub(catalog_stack):
    base = free_port_base(width=9)
    settings = hub.HubSettings(
        port=base, users=["alice", "bob"], system_user_prefix=PREFIX, cluster_orphan_timeout=ORPHAN_TIMEOUT,
        cluster_idle_timeout=120, max_clusters_per_user=2, max_cores_per_user=3, max_memory_per_user=3.0,
        max_worker_cores=1, max_worker_memory=1.0)
    with running_demo_hub(catalog_stack, settings, "eolab-demo-") as config:
        yield config, settings, hub.credentials(config)


def url_of(demo_hub) -> str:
    return f"http://127.0.0.1:{demo_hub[1].port}"


@pytest.fixture(scope="module")
def alice(demo_hub):
    config, settings, creds = demo_hub
    session = HubSession(url_of(demo_hub), "alice")
    assert session.login(creds["passwords"]["alice"]).status_code == 302
    session.new_token()
    session.start_server()
    yield session
    session.close()


@pytest.fixture(scope="module")
def bob(demo_hub):
    config, settings, creds = demo_hub
    session = HubSession(url_of(demo_hub), "bob")
    assert session.login(creds["passwords"]["bob"]).status_code == 302
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
    if AS_ROOT:  # her own system account's home, hers alone
        import pwd

        account = pwd.getpwnam(alice.username)
        assert alice.username == PREFIX + "alice" and home == account.pw_dir
        assert os.stat(home).st_uid == account.pw_uid and os.stat(home).st_mode & 0o077 == 0
    else:
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
    own_a, own_b = f"results-{alice.username}", f"results-{bob.username}"
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
        assert httpx.get(f"{member}/collections/{own_a}/items/demo-result").status_code == 200
        # Bob's hub token opens the gate, but not into Alice's collection.
        refused = httpx.delete(f"{url_of(demo_hub)}/services/catalog/members/workspace/collections/{own_a}"
                               "/items/demo-result", headers={"Authorization": f"token {bob.token}"}, timeout=30)
        assert refused.status_code == 403 and own_b in refused.json()["error"]
        assert httpx.get(f"{member}/collections/{own_a}/items/demo-result").status_code == 200
        # Alice's browser session (the gate's login cookie) reads, but cannot write: any web page
        # could make her browser send that cookie.
        gate = f"{url_of(demo_hub)}/services/catalog/members/workspace"
        page = alice.http.get(f"{gate}/collections", headers={"Accept": "text/html"}, follow_redirects=True)
        assert page.status_code == 200 and own_a in page.text
        by_cookie = alice.http.delete(f"{gate}/collections/{own_a}/items/demo-result")
        assert by_cookie.status_code == 403 and "cookie" in by_cookie.json()["error"]
        assert httpx.get(f"{member}/collections/{own_a}/items/demo-result").status_code == 200
        # Every link of her collection, its items page and its item leads somewhere, through the
        # hub: opened at the workspace (the gate's members/workspace) and through the broker.
        for start in (f"{gate}/collections/{own_a}",
                      f"{url_of(demo_hub)}/services/catalog/collections/workspace|{own_a}"):
            statuses = follow_links(start, {"Authorization": f"token {alice.token}"})
            assert len(statuses) >= 4, statuses
            assert all(href.startswith(url_of(demo_hub) + "/services/catalog/") for href in statuses), statuses
            assert {href: code for href, code in statuses.items() if code != 200} == {}, start
    finally:
        token = _workspace.read_token(config.run_dir)
        httpx.delete(f"{member}/collections/{own_a}", headers={"Authorization": f"Bearer {token}"})


def test_options_widget_bounds_come_from_the_server(alice, alice_kernel):
    out = alice.run(alice_kernel, """
from eolab.widgets import ComputeOptions
o = ComputeOptions.from_server()
print(o.backend, o.max_worker_cores, o.max_worker_memory)
""")
    assert out.split() == ["gateway", "1", "1.0"]


# --- security matrix: every cell a real request ----------------------------------------------

# What Bob's code tries from his kernel: each path is printed with READ or the error's name.
READ_ATTEMPTS = """
import glob, os
def attempt(label, path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        print(label, "READ")
    except OSError as err:
        print(label, type(err).__name__)
"""


def _refused_reads(session, targets: dict[str, str]) -> dict[str, str]:
    session.start_server()  # running already: returns at once
    kernel = session.start_kernel()
    try:
        code = READ_ATTEMPTS + "".join(f"attempt({label!r}, {path!r})\n" for label, path in targets.items())
        return dict(line.split(" ", 1) for line in session.run(kernel, code).strip().splitlines())
    finally:
        session.kill_kernel(kernel)


@pytest.mark.skipif(not AS_ROOT, reason="started unprivileged, demo mode runs every user as that one account "
                                        "(documented: no isolation); as root each user has their own")
def test_each_users_server_kernel_and_cluster_run_as_their_own_account(demo_hub, alice, bob, alice_kernel,
                                                                       alice_result):
    import pwd

    out = alice.run(alice_kernel, "import os; print(os.getuid(), client.run_on_scheduler(os.getuid), "
                                  "*sorted(set(client.run(os.getuid).values())))")
    uid = pwd.getpwnam(PREFIX + "alice").pw_uid
    assert out.split() == [str(uid)] * 3 and uid != 0
    assert bob.username == PREFIX + "bob"
    workdir = hub.hub_dir(demo_hub[0]) / "clusters" / alice_result["cluster"]
    assert workdir.stat().st_uid == uid and workdir.stat().st_mode & 0o077 == 0


HUB_STATE = ("secrets.json", "cookie_secret", "passwords.json", "logins.json", "settings.json", "catalog.yaml",
             "jupyterhub.sqlite", "gateway.sqlite")


def check_other_users_files_are_refused(config, alice, bob, cluster: str) -> None:
    """From Bob's kernel: the hub's secrets, the workspace token, the hub's environment, Alice's home
    and cluster certificates are refused; Alice reads her own files, not the hub's secrets."""
    import pwd

    from eolab.stack import workspace as _workspace

    hdir = hub.hub_dir(config)
    home = pwd.getpwnam(alice.username).pw_dir
    hub_pid = _services.running_pid(config.run_dir, "hub")
    targets = {
        **{name: str(hdir / name) for name in HUB_STATE},
        "workspace-token": str(_workspace.token_file(config.run_dir)),
        "hub-environ": f"/proc/{hub_pid}/environ",  # holds the proxy's auth token
        "alice-home": home,
        "alice-notebook": f"{home}/notebooks/README.md",
        "alice-certs": str(hdir / "clusters" / cluster / ".certs"),
        "hub-log": str(Path(config.run_dir) / "logs" / "hub.log"),
    }
    assert all(Path(p).exists() for p in targets.values()), [p for p in targets.values() if not Path(p).exists()]
    assert _refused_reads(bob, targets) == dict.fromkeys(targets, "PermissionError")
    own = _refused_reads(alice, {"own-home": home, "own-notebook": f"{home}/notebooks/README.md",
                                 "secrets": targets["secrets.json"], "workspace-token": targets["workspace-token"]})
    assert own == {"own-home": "READ", "own-notebook": "READ", "secrets": "PermissionError",
                   "workspace-token": "PermissionError"}


@pytest.mark.skipif(not AS_ROOT, reason="started unprivileged, demo mode runs every user as that one account "
                                        "(documented: no isolation); as root each user has their own")
def test_bobs_kernel_cannot_read_hub_secrets_workspace_token_or_alices_files(demo_hub, alice, bob, alice_result):
    check_other_users_files_are_refused(demo_hub[0], alice, bob, alice_result["cluster"])
    assert alice_result["items"] > 0 and alice_result["workers"] == 1  # her search and cluster worked


def test_hub_state_files_are_private_to_the_hub(demo_hub):
    hdir = hub.hub_dir(demo_hub[0])
    for name in HUB_STATE:
        info = (hdir / name).stat()
        assert (name, info.st_uid, info.st_mode & 0o077) == (name, os.geteuid(), 0)
    hashes = (hdir / "passwords.json").read_text()
    assert all(password not in hashes for password in demo_hub[2]["passwords"].values())  # hashes only
    assert set(demo_hub[2]["passwords"]) == {"alice", "bob", "admin"}
    assert len(set(demo_hub[2]["passwords"].values())) == 3  # one password per login
    # The hub's and its services' logs: the hub's account only, and no password or token in them.
    logs = sorted((Path(demo_hub[0].run_dir) / "logs").glob("hub*.log"))
    assert {"hub.log", "hub-dask-gateway-server.log"} <= {p.name for p in logs}, logs
    assert (Path(demo_hub[0].run_dir) / "logs").stat().st_mode & 0o077 == 0
    secrets_ = [demo_hub[2]["admin_token"], *demo_hub[2]["passwords"].values()]
    for log in logs:
        assert (log.name, log.stat().st_mode & 0o077) == (log.name, 0)
        text = log.read_text(errors="replace")
        assert not [s for s in secrets_ if s in text], f"{log.name} holds a password or token"


def check_tokens_act_for_their_user_only(url: str, alice, bob) -> None:
    """Bob's API token and his server's token (the one in his kernels) against the hub API."""
    bob.start_server()
    kernel = bob.start_kernel()
    try:
        server_token = bob.run(kernel, "import os; print(os.environ['JUPYTERHUB_API_TOKEN'])").strip()
    finally:
        bob.kill_kernel(kernel)
    api = f"{url}/hub/api"
    name = alice.username
    for token in (bob.token, server_token):
        headers = {"Authorization": f"token {token}"}
        assert httpx.get(f"{api}/users/{name}", headers=headers).status_code in (403, 404)
        assert httpx.post(f"{api}/users/{name}/tokens", headers=headers, json={}).status_code in (403, 404)
        assert httpx.get(f"{api}/users/{name}/tokens", headers=headers).status_code in (403, 404)
        assert httpx.post(f"{api}/users/{name}/server", headers=headers).status_code in (403, 404)
        assert httpx.delete(f"{api}/users/{name}/server", headers=headers).status_code in (403, 404)
        assert httpx.patch(f"{api}/users/{bob.username}", headers=headers,
                           json={"admin": True}).status_code in (403, 404)
        assert httpx.post(f"{api}/users", headers=headers, json={"usernames": ["mallory"]}).status_code == 403
        listing = httpx.get(f"{api}/users", headers=headers)
        assert listing.status_code == 403 or [u["name"] for u in listing.json()] == [bob.username]
        assert httpx.get(f"{url}/user/{name}/api/contents", headers=headers).status_code in (403, 404)
    # The legitimate path: the same tokens work for Bob himself, and Alice's server is untouched.
    assert httpx.get(f"{api}/users/{bob.username}", headers={"Authorization": f"token {bob.token}"}).status_code == 200
    assert httpx.get(f"{api}/user", headers={"Authorization": f"token {server_token}"}).json()["name"] == bob.username
    assert alice.server_api("GET", "/contents").status_code == 200


def test_a_users_tokens_do_not_act_as_another_user(demo_hub, alice, bob):
    check_tokens_act_for_their_user_only(url_of(demo_hub), alice, bob)


def test_anonymous_is_refused_everywhere(demo_hub, alice, alice_result):
    base = url_of(demo_hub)
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as anon:
        assert anon.get("/hub/api/users").status_code == 403
        server = anon.get(f"/user/{alice.username}/api/contents")
        assert server.status_code in (302, 403) and "content" not in server.text
        assert anon.get("/services/catalog/search").status_code == 401
        assert anon.get(f"/services/dask-gateway/clusters/{alice_result['cluster']}/status").status_code == 401
        assert anon.get("/services/dask-gateway/api/v1/clusters/").status_code == 401
        browser = anon.get("/services/catalog/", headers={"Accept": "text/html"})
        assert browser.status_code == 302 and "/hub/api/oauth2/authorize" in browser.headers["location"]


def test_wrong_password_is_refused(demo_hub, alice):
    passwords = demo_hub[2]["passwords"]
    # Each login has its own password: Bob's (or the admin's) does not open Alice's account.
    for wrong in ("not-the-password", passwords["bob"], passwords["admin"]):
        session = HubSession(url_of(demo_hub), "alice")
        response = session.login(wrong)
        assert response.status_code == 403
        assert session._api("GET", f"/users/{alice.username}").status_code == 403
        session.close()
    unknown = HubSession(url_of(demo_hub), "mallory")
    assert unknown.login(passwords["alice"]).status_code == 403  # not an allowed user
    unknown.close()


def test_bob_cannot_use_alices_server(demo_hub, alice, bob):
    headers = {"Authorization": f"token {bob.token}"}
    base = url_of(demo_hub)
    name = alice.username
    assert httpx.get(f"{base}/user/{name}/api/kernels", headers=headers).status_code in (403, 404)
    assert httpx.post(f"{base}/user/{name}/api/kernels", headers=headers, json={}).status_code in (403, 404)
    assert httpx.get(f"{base}/hub/api/users/{name}", headers=headers).status_code in (403, 404)
    # Bob's browser session (cookie) on Alice's server: sent away, never served.
    page = bob.http.get(f"/user/{name}/lab")
    assert page.status_code in (302, 403, 404) and f"/user/{name}/lab" not in page.headers.get("location", "")


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
        ws.send(json.dumps(["stdin", "eolab templates list; echo DONE-$((6*7)) AS-$(id -un)\r"]))
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
    assert f"AS-{alice.username}" in out  # the terminal is hers too (as root: her system account)


def test_bob_cannot_open_alices_dashboard(demo_hub, bob, alice_result):
    base = url_of(demo_hub)
    link = f"{base}/services/dask-gateway/clusters/{alice_result['cluster']}/status"
    assert httpx.get(link, headers={"Authorization": f"token {bob.token}"}).status_code == 403
    # Bob logged in with a browser: the gate's OAuth gives him a cookie, still not Alice's dashboard.
    page = bob.http.get(link, headers={"Accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 403 and "bokeh" not in page.text.lower()


# Bob's kernel opens a TLS connection to each of Alice's scheduler and worker ports, without a
# client certificate (he cannot read hers): the handshake or the first read must fail.
PROBE_COMMS = """
import socket, ssl
seen = {}
for address in ADDRESSES:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
            tls.sendall(b"\\x00" * 8)
            seen[address] = "OPEN" if tls.recv(16) else "CLOSED"
    except (ssl.SSLError, OSError) as exc:
        seen[address] = "REFUSED " + type(exc).__name__
print("SEEN", seen)
"""


DASHBOARD_PORTS = """
info = client.scheduler_info()
print(info["services"]["dashboard"], *[w["services"]["dashboard"] for w in info["workers"].values()])
"""

TRY_URLS = """
import os, httpx
for url in {urls!r}:
    plain = httpx.get(url, timeout=20).status_code
    token = httpx.get(url, timeout=20, headers={{"Authorization": "Bearer " + os.environ.get("EOLAB_SERVICE_TOKEN", "")}}).status_code
    print(plain, token)
"""


def test_dashboards_and_dask_ports_answer_only_their_owner(demo_hub, alice, alice_kernel, bob, alice_result):
    """Alice's scheduler and worker dashboards, and the gateway proxy's route to them, refuse any
    local process (Bob's kernel with the hub-given service token, Alice's own kernel) that does not
    come through the hub's gate; through the hub Alice gets her dashboard. Her cluster's Dask ports
    refuse Bob's kernel (TLS with client certificates); her own client computed on them."""
    name = alice_result["cluster"]
    resolved = hub.read_resolved(hub.hub_dir(demo_hub[0]) / "settings.json")
    ports = alice.run(alice_kernel, DASHBOARD_PORTS).split()
    assert len(ports) == 2  # the scheduler and its one worker
    urls = [f"http://127.0.0.1:{resolved.gateway_proxy_port}/services/dask-gateway/clusters/{name}/status",
            f"http://127.0.0.1:{ports[0]}/status", f"http://127.0.0.1:{ports[0]}/metrics",
            f"http://127.0.0.1:{ports[1]}/health"]
    bob.start_server()
    bobs = bob.start_kernel()
    try:
        from_bob = bob.run(bobs, TRY_URLS.format(urls=urls)).split()
    finally:
        bob.kill_kernel(bobs)
    from_alice = alice.run(alice_kernel, TRY_URLS.format(urls=urls)).split()
    assert from_bob == ["403"] * 8 and from_alice == ["403"] * 8
    # The scheduler's and worker's Dask ports speak TLS with client certificates Bob cannot read.
    import ast

    addresses = alice.run(alice_kernel, "print(','.join([client.run_on_scheduler(lambda dask_scheduler: "
                                        "dask_scheduler.address), *client.scheduler_info()['workers']]))")
    addresses = addresses.strip().split(",")
    assert len(addresses) == 2 and all(a.startswith("tls://127.0.0.1:") for a in addresses), addresses
    bobs = bob.start_kernel()
    try:
        seen = ast.literal_eval(bob.run(bobs, f"ADDRESSES = {addresses!r}\n" + PROBE_COMMS).split("SEEN", 1)[1].strip())
    finally:
        bob.kill_kernel(bobs)
    assert set(seen) == set(addresses)
    assert all(v.startswith("REFUSED") or v == "CLOSED" for v in seen.values()), seen
    link = f"{url_of(demo_hub)}/services/dask-gateway/clusters/{name}/status"
    through_hub = httpx.get(link, headers={"Authorization": f"token {alice.token}"}, timeout=30)
    assert through_hub.status_code == 200 and "bokeh" in through_hub.text.lower()


def test_services_refuse_tokens_without_access(demo_hub, alice):
    # A token Alice made without the service access scopes.
    response = alice._api("POST", f"/users/{alice.username}/tokens", json={"scopes": ["read:users:name!user"], "note": "narrow"})
    narrow = response.json()["token"]
    base = url_of(demo_hub)
    assert httpx.get(f"{base}/services/catalog/search", headers={"Authorization": f"token {narrow}"}).status_code == 401
    with gateway_for(demo_hub, narrow) as gateway:
        with pytest.raises(Exception, match="401|Unauthorized"):
            gateway.list_clusters()


def test_tile_service_needs_a_token(demo_hub, alice, alice_kernel):
    if not hub._app_exists(hub.TILES_APP):
        pytest.skip(f"the tile service ({hub.TILES_APP}) does not exist yet; the hub runs it once it does")
    url = f"{url_of(demo_hub)}/services/tiles/styles"
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"token {alice.token}"}, timeout=30).status_code == 200
    # Browsers: a map's tiles carry the pass the user's kernel got from the gate (a burst of image
    # requests cannot each log in through the hub); no pass, or a forged one, gets no tiles.
    tile = f"{url_of(demo_hub)}/services/tiles/base/10/560/360.png"
    image = {"Sec-Fetch-Mode": "no-cors", "Accept": "image/*"}
    assert httpx.get(tile, headers=image, timeout=30).status_code == 401
    out = alice.run(alice_kernel, "import eolab.tiles\nprint('BASE', eolab.tiles.base_tiles())")
    template = out.split("BASE ", 1)[1].split()[0]
    assert template.startswith(f"/services/tiles/base/{{z}}/{{x}}/{{y}}.png?eolab_pass={alice.username}."), out
    answer = httpx.get(url_of(demo_hub) + template.format(z=10, x=560, y=360), headers=image, timeout=30)
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG"), answer.text[:200]
    user, expiry, signature = template.split("eolab_pass=")[1].split(".")
    for forged in (f"{user}.{int(expiry) + 1}.{signature}", f"{user}.{expiry}.{'0' * 64}"):
        refused = httpx.get(f"{tile}?eolab_pass={forged}", headers=image, timeout=30)
        assert refused.status_code == 401 and "pass is not valid" in refused.text
    # The pass is handed out only to hub logins, and opens tiles only, never the catalogue gate.
    assert httpx.get(f"{url_of(demo_hub)}/services/tiles/_gate/pass", timeout=30).status_code == 401
    catalog = httpx.get(f"{url_of(demo_hub)}/services/catalog/collections?eolab_pass={user}.{expiry}.{signature}",
                        timeout=30)
    assert catalog.status_code == 401
    # ... nor the tile service's other routes (titiler's reads, its API): a pass sits in shared notebooks
    for other in ("styles", "cog/info?url=http://127.0.0.1:1/x.tif"):
        sep = "&" if "?" in other else "?"
        answer = httpx.get(f"{url_of(demo_hub)}/services/tiles/{other}{sep}eolab_pass={user}.{expiry}.{signature}",
                           headers=image, timeout=30)
        assert answer.status_code == 401, (other, answer.status_code)
    # Panel's own static files (public JavaScript and CSS) load without a pass.
    import panel

    css = httpx.get(f"{url_of(demo_hub)}/services/tiles/static/panel/{panel.__version__}/dist/css/button.css",
                    timeout=30)
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    sneaky = httpx.get(f"{url_of(demo_hub)}/services/tiles/static/%2e%2e/base/10/560/360.png", timeout=30)
    assert sneaky.status_code == 401


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
    assert f"3 workers exceed {alice.username}'s limit: at most 2 more" in lines["SCALE"]
    assert "already has 2 active clusters, the limit is 2" in lines["COUNT"]
    assert all("\n" not in text for text in lines.values())


def test_scheduler_requests_are_capped_server_side(demo_hub, alice):
    # Adaptive scaling asks the scheduler for workers; the gateway caps them to the budget.
    with gateway_for(demo_hub, alice.token) as gateway:
        before = {c.name for c in gateway.list_clusters()}
        options = gateway.cluster_options()
        with pytest.raises(Exception, match=f"exceed {alice.username}'s limit"):
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
    base = free_port_base(start=17000)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 3))
        blocker.listen()
        with pytest.raises(ServiceError) as err:
            hub.up(config, hub.HubSettings(port=base))
    assert f"port {base + 3}" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(not AS_ROOT, reason="unprivileged, demo mode creates no system accounts")
def test_demo_as_root_refuses_a_run_directory_its_users_cannot_reach(catalog_stack, tmp_path):
    """pytest's tmp root is private (0700): the users' accounts could not reach their cluster directories."""
    import pwd

    config = catalog_stack.model_copy(update={"run_dir": tmp_path / "run"})
    with pytest.raises(ServiceError) as err:
        hub.up(config, hub.HubSettings(port=free_port_base(width=9, start=17000), users=["nobody-here"],
                                       system_user_prefix=PREFIX))
    message = str(err.value)
    assert "hub directory" in message and "not searchable" in message and "\n" not in message
    assert "unprivileged user" in err.value.hint  # the other way to run the demo
    with pytest.raises(KeyError):
        pwd.getpwnam(PREFIX + "nobody-here")  # refused before creating anyone


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
