"""HPC for real: users' servers (batchspawner) and Dask clusters (dask-gateway's Slurm backend) as
Slurm jobs on a real single-node Slurm cluster.

A multiuser hub (system users ``eolabt-*``) submits each user's server as a Slurm job of that user
and its gateway submits every cluster's scheduler and workers the same way (``sudo -nHu <user>
dask-gateway-jobqueue-launcher``). Asserted: the jobs belong to the user and compute, the user's
certificates are staged in their private home, and the jobs end when the cluster closes, when the
kernel dies, when the server stops and when the hub goes down.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

from eolab import hub
from eolab.compute._slurm import job_name
from eolab.testing.hub import HubSession, hub_config_for_accounts
from eolab.testing.stack import free_port_base
from tests._poll import poll
from tests.integration.test_hub_demo import SEARCH_AND_COMPUTE
from tests.integration.test_hub_multiuser import PREFIX, _blocked, _remove_users

pytestmark = [
    pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("slurmctld") is None and not os.path.exists("/usr/sbin/slurmctld"),
                       reason="slurm-wlm is not installed (apt-get install slurm-wlm munge)"),
    pytest.mark.skipif(shutil.which("sudo") is None, reason="the gateway's Slurm backend submits jobs via sudo"),
]
ORPHAN_TIMEOUT = 10


@pytest.fixture(scope="module", autouse=True)
def _multiuser_possible():
    reason = _blocked()  # checked before the Slurm cluster starts
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def gateway_hub(catalog_stack, slurm, shared_dir):
    _remove_users()
    config = hub_config_for_accounts(catalog_stack, run_dir=shared_dir / "run")
    settings = hub.HubSettings(
        mode="multiuser", port=free_port_base(width=9, start=17000), users=["alice"], admin_users=["boss"],
        system_user_prefix=PREFIX, spawner="slurm", gateway_backend="slurm", slurm_conf=str(slurm.conf), slurm_bin=str(slurm.bin),
        slurm_partition=slurm.partition, cluster_orphan_timeout=ORPHAN_TIMEOUT, cluster_idle_timeout=120,
        max_worker_cores=1, max_worker_memory=1.0)
    try:
        hub.up(config, settings)
        session = HubSession(f"http://127.0.0.1:{settings.port}", "alice")
        assert session.login(hub.credentials(config)["passwords"]["alice"]).status_code == 302
        session.new_token()
        session.start_server(timeout=150)
        yield config, settings, session
        session.close()
    finally:
        hub.down(config, settings)
        _remove_users()


def _all_jobs(slurm, config):
    return slurm.jobs(job_name(str(hub.hub_dir(config))))


def _server_job(slurm, config, alice):
    """The Slurm job of Alice's server (the one whose job script runs batchspawner-singleuser)."""
    home = Path(pwd.getpwnam(alice.username).pw_dir)
    logs = sorted(home.glob("jupyterhub_slurmspawner_*.log"))
    return logs[-1].stem.rsplit("_", 1)[1] if logs else None


def _jobs(slurm, config):
    """Dask jobs: every job of this hub but the server's."""
    server = getattr(_jobs, "server", None)
    return [job for job in _all_jobs(slurm, config) if job["id"] != server]


def _wait_jobs(slurm, config, wanted, timeout):
    return poll(lambda: _jobs(slurm, config), wanted, timeout)


def test_users_server_is_a_slurm_job_of_the_user(gateway_hub, slurm):
    config, settings, alice = gateway_hub
    jobs = _all_jobs(slurm, config)
    server = _server_job(slurm, config, alice)
    assert [job["id"] for job in jobs] == [server] and jobs[0]["user"] == alice.username
    assert jobs[0]["state"] == "RUNNING"
    _jobs.server = server
    kernel = alice.start_kernel()
    assert alice.run(kernel, "import os, pwd\nprint(pwd.getpwuid(os.getuid()).pw_name)").strip() == alice.username
    alice.kill_kernel(kernel)


def test_cluster_is_slurm_jobs_of_the_user_that_compute_and_end_on_close(gateway_hub, slurm):
    config, settings, alice = gateway_hub
    kernel = alice.start_kernel()
    out = alice.run(kernel, SEARCH_AND_COMPUTE + """
import os
print("SCHEDULER_UID", client.run_on_scheduler(os.getuid), "WORKER_UIDS",
      ",".join(str(u) for u in sorted(set(client.run(os.getuid).values()))))
""")
    fields = out.split()
    value = {name: fields[fields.index(name) + 1] for name in ("ITEMS", "NDVI", "CLUSTER", "SCHEDULER_UID",
                                                               "WORKER_UIDS")}
    account = pwd.getpwnam(alice.username)
    assert int(value["ITEMS"]) > 0 and -1 < float(value["NDVI"]) < 1
    assert int(value["SCHEDULER_UID"]) == account.pw_uid and value["WORKER_UIDS"] == str(account.pw_uid)
    running = _jobs(slurm, config)
    assert len(running) == 2 and {job["user"] for job in running} == {alice.username}  # scheduler + 1 worker
    staged = Path(account.pw_dir) / ".dask-gateway" / value["CLUSTER"]
    assert (staged / "dask.pem").stat().st_uid == account.pw_uid
    # The launcher writes the key with the user's umask inside a 0700 staging directory of a 0700 home.
    assert staged.stat().st_mode & 0o077 == 0 and Path(account.pw_dir).stat().st_mode & 0o077 == 0
    alice.run(kernel, "client.cluster.close()")
    assert _wait_jobs(slurm, config, lambda jobs: not jobs, 60) == []
    alice.kill_kernel(kernel)


def test_jobs_end_when_the_kernel_dies(gateway_hub, slurm):
    config, settings, alice = gateway_hub
    kernel = alice.start_kernel()
    alice.run(kernel, "import eolab.compute\nclient = eolab.compute.get_client(workers=1)\n"
                      "print(client.submit(sum, [1, 2]).result())")
    assert len(_wait_jobs(slurm, config, lambda jobs: len(jobs) == 2, 60)) == 2
    alice.kill_kernel(kernel)  # no clean shutdown: the scheduler notices its client is gone
    assert _wait_jobs(slurm, config, lambda jobs: not jobs, ORPHAN_TIMEOUT + 90) == []


def test_stopping_the_server_ends_its_job(gateway_hub, slurm):
    config, settings, alice = gateway_hub
    alice.stop_server()
    assert _wait_jobs(slurm, config, lambda jobs: not _all_jobs(slurm, config), 60) == []
    assert _all_jobs(slurm, config) == []
    alice.start_server(timeout=150)  # for the next test
    _jobs.server = _server_job(slurm, config, alice)


def test_hub_down_cancels_the_users_jobs(gateway_hub, slurm):
    config, settings, alice = gateway_hub
    kernel = alice.start_kernel()
    alice.run(kernel, "import eolab.compute\nclient = eolab.compute.get_client(workers=1)\n"
                      "print(client.submit(sum, [1, 2]).result())")
    assert len(_wait_jobs(slurm, config, lambda jobs: len(jobs) == 2, 60)) == 2
    hub.down(config, settings)
    assert _wait_jobs(slurm, config, lambda jobs: not _all_jobs(slurm, config), 60) == []
    assert _all_jobs(slurm, config) == []


def test_slurm_gateway_needs_multiuser_mode(catalog_stack, tmp_path):
    from eolab.errors import ServiceError

    config = catalog_stack.model_copy(update={"run_dir": tmp_path / "run"})
    with pytest.raises(ServiceError, match="needs EOLAB_HUB_MODE=multiuser"):
        hub.up(config, hub.HubSettings(port=free_port_base(width=9, start=19000), gateway_backend="slurm",
                                       slurm_conf="/nonexistent/slurm.conf"))
