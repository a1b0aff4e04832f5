"""The hub in `multiuser` mode: one system user per hub user, isolation enforced by the OS.

A real hub (as root) creates the system users ``eolabt-alice`` / ``eolabt-bob`` (removed again at
the end), starts each user's server with LocalProcessSpawner and each Dask cluster with the
gateway's LocalBackend, both as that user. Asserted with real processes: who runs what, homes and
cluster certificates unreadable by the other user, the HTTP refusals, and `down` leaving nothing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import time
from pathlib import Path

import pytest

from eolab import hub
from eolab.stack import workspace as _workspace
from eolab.testing.hub import HubSession, hub_config_for_accounts, remove_system_users
from eolab.testing.stack import free_port_base
from tests.integration.test_hub_demo import (
    HUB_STATE,
    PROBE_COMMS,
    SEARCH_AND_COMPUTE,
    TRY_URLS,
    check_other_users_files_are_refused,
    check_tokens_act_for_their_user_only,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
PREFIX = "eolabt-"
USERS = ["alice", "bob"]
ADMINS = ["boss"]


def _blocked() -> str | None:
    if os.geteuid() != 0:
        return "multiuser mode needs root (it creates system users and starts servers as them)"
    for path in (os.path.realpath(sys.executable), hub.ROOT):
        blocked = hub._inaccessible(path)
        if blocked:
            return (f"{blocked} is not searchable by other users, so their servers could not run the venv "
                    f"({path}); build it from a system Python")
    return None


def _remove_users() -> None:
    remove_system_users([PREFIX + name for name in USERS + ADMINS])


def _processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def mu_hub(catalog_stack):
    reason = _blocked()
    if reason:
        pytest.skip(reason)
    _remove_users()  # leftovers of an interrupted run
    # The hub directory holds the users' cluster directories: it must be searchable by them,
    # which pytest's private tmp root (0700) is not.
    config = hub_config_for_accounts(catalog_stack, "eolab-multiuser-")
    run_dir = config.run_dir
    settings = hub.HubSettings(
        mode="multiuser", port=free_port_base(width=9, start=13000), users=USERS, admin_users=ADMINS,
        system_user_prefix=PREFIX, cluster_idle_timeout=120, max_clusters_per_user=2, max_cores_per_user=3,
        max_memory_per_user=3.0, max_worker_cores=1, max_worker_memory=1.0)
    try:
        hub.up(config, settings)
        yield config, settings, hub.credentials(config)
    finally:
        hub.down(config, settings)
        _remove_users()
        shutil.rmtree(run_dir, ignore_errors=True)


def _url(mu_hub) -> str:
    return f"http://127.0.0.1:{mu_hub[1].port}"


def _session(mu_hub, name):
    session = HubSession(_url(mu_hub), name)
    assert session.login(mu_hub[2]["passwords"][name]).status_code == 302
    session.new_token()
    session.start_server()
    return session


@pytest.fixture(scope="module")
def alice(mu_hub):
    session = _session(mu_hub, "alice")
    yield session
    session.close()


@pytest.fixture(scope="module")
def bob(mu_hub):
    session = _session(mu_hub, "bob")
    yield session
    session.close()


@pytest.fixture(scope="module")
def alice_cluster(alice):
    """Alice's notebook: search, compute on her gateway cluster, report who ran what."""
    kernel = alice.start_kernel()
    out = alice.run(kernel, SEARCH_AND_COMPUTE + """
import os
print("KERNEL_UID", os.getuid(), "SCHEDULER_UID", client.run_on_scheduler(os.getuid),
      "WORKER_UIDS", ",".join(str(u) for u in sorted(set(client.run(os.getuid).values()))),
      "COMMS", ",".join([client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.address),
                         *client.scheduler_info()["workers"]]),
      "DASHBOARDS", ",".join(str(port) for port in [client.scheduler_info()["services"]["dashboard"],
                             *[w["services"]["dashboard"] for w in client.scheduler_info()["workers"].values()]]))
""")
    fields = out.split()
    return {name: fields[fields.index(name) + 1] for name in
            ("ITEMS", "NDVI", "CLUSTER", "KERNEL_UID", "SCHEDULER_UID", "WORKER_UIDS", "COMMS", "DASHBOARDS")}


def test_logins_map_to_their_own_system_users(mu_hub, alice, bob):
    assert (alice.username, bob.username) == (PREFIX + "alice", PREFIX + "bob")
    for session in (alice, bob):
        account = pwd.getpwnam(session.username)
        home = Path(account.pw_dir)
        assert home.stat().st_uid == account.pw_uid and home.stat().st_mode & 0o077 == 0
        assert (home / "workflows" / "cap-parcel-checks").is_dir()
        assert (home / "notebooks").stat().st_uid == account.pw_uid  # templates handed to the user


def test_server_kernel_and_cluster_run_as_the_user(mu_hub, alice, alice_cluster):
    uid = pwd.getpwnam(alice.username).pw_uid
    assert int(alice_cluster["ITEMS"]) > 0 and -1 < float(alice_cluster["NDVI"]) < 1
    assert int(alice_cluster["KERNEL_UID"]) == uid
    assert int(alice_cluster["SCHEDULER_UID"]) == uid
    assert alice_cluster["WORKER_UIDS"] == str(uid)
    # The gateway gave the cluster directory to Alice and nothing else (see EolabLocalBackend).
    workdir = hub.hub_dir(mu_hub[0]) / "clusters" / alice_cluster["CLUSTER"]
    assert workdir.stat().st_uid == uid and workdir.stat().st_mode & 0o077 == 0
    assert (workdir / ".certs" / "dask.pem").stat().st_mode & 0o077 == 0
    assert Path("/").stat().st_uid == 0


def test_bob_cannot_talk_to_alices_scheduler_or_workers(mu_hub, bob, alice_cluster):
    """The Dask ports of Alice's cluster listen on 127.0.0.1 only and speak TLS with client
    certificates: from Bob's kernel every one of them refuses him. (Alice's own client computed on
    the same cluster in the fixture: the legitimate path.)"""
    import ast

    addresses = alice_cluster["COMMS"].split(",")
    assert len(addresses) >= 2 and all(a.startswith("tls://127.0.0.1:") for a in addresses), addresses
    kernel = bob.start_kernel()
    out = bob.run(kernel, f"ADDRESSES = {addresses!r}\n" + PROBE_COMMS)
    seen = ast.literal_eval(out.split("SEEN", 1)[1].strip())
    assert set(seen) == set(addresses)
    assert all(v.startswith("REFUSED") or v == "CLOSED" for v in seen.values()), seen
    assert int(alice_cluster["ITEMS"]) > 0  # her search and computation on that cluster worked


def test_bob_cannot_read_alices_home_or_cluster_certificates(mu_hub, alice, bob, alice_cluster):
    home = pwd.getpwnam(alice.username).pw_dir
    workdir = hub.hub_dir(mu_hub[0]) / "clusters" / alice_cluster["CLUSTER"]
    kernel = bob.start_kernel()
    out = bob.run(kernel, f"""
import os
for label, action in (("home", lambda: os.listdir({home!r})),
                      ("notebook", lambda: open({home!r} + "/notebooks/01_catalogue_and_map.ipynb").read()),
                      ("certs", lambda: os.listdir({str(workdir / ".certs")!r})),
                      ("key", lambda: open({str(workdir / ".certs" / "dask.pem")!r}).read())):
    try:
        action()
        print(label, "READ")
    except OSError as err:
        print(label, type(err).__name__)
""")
    assert out.split() == ["home", "PermissionError", "notebook", "PermissionError",
                           "certs", "PermissionError", "key", "PermissionError"]
    bob.kill_kernel(kernel)


def test_bob_cannot_read_hub_secrets_or_the_workspace_token(mu_hub, alice, bob, alice_cluster):
    check_other_users_files_are_refused(mu_hub[0], alice, bob, alice_cluster["CLUSTER"])
    for name in HUB_STATE:
        assert (hub.hub_dir(mu_hub[0]) / name).stat().st_mode & 0o077 == 0


def test_a_users_tokens_do_not_act_as_another_user(mu_hub, alice, bob):
    check_tokens_act_for_their_user_only(_url(mu_hub), alice, bob)
    passwords = mu_hub[2]["passwords"]
    wrong = HubSession(_url(mu_hub), "alice")
    assert wrong.login(passwords["bob"]).status_code == 403  # one password per login
    wrong.close()


def test_bob_cannot_open_alices_dashboards_but_she_can_through_the_hub(mu_hub, alice, bob, alice_cluster):
    """Scheduler and worker dashboards, and the gateway proxy's route to them, answer only the
    hub's gate (with the cluster's key): Bob's kernel gets 403 from each, even with the service
    token; Alice gets her dashboard through the hub."""
    import httpx

    name = alice_cluster["CLUSTER"]
    ports = alice_cluster["DASHBOARDS"].split(",")
    urls = [f"http://127.0.0.1:{mu_hub[1].port + 4}/services/dask-gateway/clusters/{name}/status",
            *[f"http://127.0.0.1:{port}/status" for port in ports]]
    kernel = bob.start_kernel()
    out = bob.run(kernel, TRY_URLS.format(urls=urls)).split()
    assert len(ports) >= 2 and out == ["403"] * (2 * len(urls))
    response = httpx.get(f"{_url(mu_hub)}/services/dask-gateway/clusters/{name}/status",
                         headers={"Authorization": f"token {alice.token}"}, timeout=30)
    assert response.status_code == 200 and "bokeh" in response.text.lower()


def test_bob_cannot_use_alices_server_or_cluster(mu_hub, alice, bob, alice_cluster):
    import httpx
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    headers = {"Authorization": f"token {bob.token}"}
    assert httpx.get(f"{_url(mu_hub)}/user/{alice.username}/api/kernels", headers=headers).status_code in (403, 404)
    with Gateway(address=f"{_url(mu_hub)}/services/dask-gateway",
                 proxy_address=f"gateway://127.0.0.1:{mu_hub[1].port + 4}",
                 auth=JupyterHubAuth(api_token=bob.token)) as gateway:
        assert gateway.list_clusters() == []
        with pytest.raises(Exception, match="403|Forbidden|lacks permissions"):
            gateway.get_cluster(alice_cluster["CLUSTER"])


PUBLISH = """
import json, os
from eolab.analysis import publish
from eolab.errors import EolabError

def item(item_id, title):
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "bbox": [16.0, 47.0, 17.0, 48.0],
            "geometry": {"type": "Polygon", "coordinates": [[[16, 47], [17, 47], [17, 48], [16, 48], [16, 47]]]},
            "properties": {"datetime": "2026-05-01T00:00:00Z", "title": title}, "assets": {}, "links": []}

def attempt(label, action):
    try:
        action()
        print(label, "WRITTEN")
    except EolabError as err:
        print(label, "REFUSED", json.dumps(str(err)))
"""


def test_users_publish_only_into_their_own_results(mu_hub, catalog_stack, alice, bob):
    import httpx

    member = catalog_stack.member_url(catalog_stack.member("workspace"))
    token = _workspace.read_token(catalog_stack.run_dir)
    own_a, own_b = f"results-{alice.username}", f"results-{bob.username}"
    try:
        kernel = alice.start_kernel()
        out = alice.run(kernel, PUBLISH + """
print("URL", os.environ["EOLAB_WORKSPACE_URL"], "TOKEN_ENV", "EOLAB_WORKSPACE_TOKEN" in os.environ)
attempt("own", lambda: publish.upsert_items([item("alice-result", "by alice")]))
""")
        alice.kill_kernel(kernel)
        assert f"URL {_url(mu_hub)}/services/catalog/members/workspace TOKEN_ENV False" in out
        assert "own WRITTEN" in out, out

        kernel = bob.start_kernel()
        out = bob.run(kernel, PUBLISH + f"""
import httpx
gate = os.environ["EOLAB_WORKSPACE_URL"]
hub_auth = {{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}}
hub_as_bearer = {{"Authorization": "Bearer " + os.environ["JUPYTERHUB_API_TOKEN"]}}
attempt("gate-items", lambda: publish.upsert_items([item("alice-result", "by bob")], collection={own_a!r}))
for label, method, url, body, headers in (
        ("gate-delete", "DELETE", gate + "/collections/{own_a}/items/alice-result", None, hub_auth),
        ("gate-collection", "PUT", gate + "/collections/{own_a}", {{"id": {own_a!r}}}, hub_auth),
        ("direct-none", "DELETE", {member!r} + "/collections/{own_a}/items/alice-result", None, {{}}),
        ("direct-hub", "POST", {member!r} + "/collections/{own_a}/bulk_items",
         {{"items": {{}}, "method": "upsert"}}, hub_as_bearer)):
    response = httpx.request(method, url, json=body, headers=headers)
    print(label, response.status_code, json.dumps(response.text[:200]))
try:
    open({str(_workspace.token_file(catalog_stack.run_dir))!r}).read()
    print("token READ")
except OSError as err:
    print("token", type(err).__name__)
attempt("own", lambda: publish.upsert_items([item("bob-result", "by bob")]))
""")
        bob.kill_kernel(kernel)
        lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
        assert lines["gate-items"].startswith("REFUSED")
        assert "only write into your own collection" in lines["gate-items"]
        assert lines["gate-delete"].startswith("403 ") and "the gate refuses this write" in lines["gate-delete"]
        assert lines["gate-collection"].startswith("403 ")
        assert lines["direct-none"].startswith("401 ") and lines["direct-hub"].startswith("403 ")
        assert lines["token"] == "PermissionError"
        assert lines["own"] == "WRITTEN"

        # Alice's result is as she wrote it; Bob's went into his own collection.
        got = httpx.get(f"{member}/collections/{own_a}/items/alice-result").raise_for_status().json()
        assert got["properties"]["title"] == "by alice"
        assert httpx.get(f"{member}/collections/{own_b}/items/bob-result").status_code == 200
    finally:
        # The shared stack's other tests count its collections.
        for cid in (own_a, own_b):
            httpx.delete(f"{member}/collections/{cid}", headers={"Authorization": f"Bearer {token}"})


def test_up_refuses_multiuser_without_reachable_paths(catalog_stack, tmp_path):
    """pytest's tmp root is private (0700): users could not reach their cluster directories there."""
    from eolab.errors import ServiceError

    config = catalog_stack.model_copy(update={"run_dir": tmp_path / "run"})
    with pytest.raises(ServiceError) as err:
        hub.up(config, hub.HubSettings(mode="multiuser", port=free_port_base(width=9, start=15000),
                                       users=["nobody-here"], system_user_prefix=PREFIX))
    assert "hub directory" in str(err.value) and "not searchable" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(KeyError):
        pwd.getpwnam(PREFIX + "nobody-here")  # refused before creating anyone


def test_zz_down_leaves_no_process_of_any_user(mu_hub, alice, bob, alice_cluster):
    config, settings, _ = mu_hub
    uids = [pwd.getpwnam(PREFIX + name).pw_uid for name in USERS]
    assert any(_processes_of_uid(uid) for uid in uids)
    hub.down(config, settings)
    deadline = time.monotonic() + 60  # polled; processes end late on a busy machine
    while time.monotonic() < deadline and any(_processes_of_uid(uid) for uid in uids):
        time.sleep(0.2)
    assert [pid for uid in uids for pid in _processes_of_uid(uid)] == []
    assert hub._processes_of(str(hub.hub_dir(config))) == []
