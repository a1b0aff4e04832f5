"""HPC for real: a single-node Slurm cluster (slurm-wlm + munge) and a hub whose users' Dask workers
are Slurm jobs (dask-jobqueue from the kernel). Workers compute, and their jobs end when the cluster
closes, when the kernel dies, and when the hub goes down.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from eolab import hub
from eolab.compute._slurm import job_name
from eolab.testing.hub import HubSession, remove_system_users
from eolab.testing.stack import free_port_base
from tests._poll import poll

pytestmark = [
    pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("slurmctld") is None and not os.path.exists("/usr/sbin/slurmctld"),
                       reason="slurm-wlm is not installed (apt-get install slurm-wlm munge)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a local Slurm cluster needs root"),
]
DEATH_TIMEOUT = 20  # eolab.compute._slurm's default: workers leave this long after their scheduler


PREFIX = "eolabs-"  # demo mode as root: login alice runs as system user eolabs-alice




@pytest.fixture(scope="module")
def slurm_hub(catalog_stack, slurm, shared_dir):
    config = catalog_stack.model_copy(update={"run_dir": shared_dir / "run"})
    base = free_port_base(width=9, start=13000)
    settings = hub.HubSettings(port=base, users=["alice"], compute_backend="slurm", system_user_prefix=PREFIX,
                               slurm_conf=str(slurm.conf), slurm_bin=str(slurm.bin))
    remove_system_users([PREFIX + "alice", PREFIX + "admin"])
    try:
        hub.up(config, settings)
        session = HubSession(f"http://127.0.0.1:{base}", "alice")
        session.login(hub.credentials(config)["passwords"]["alice"])
        session.new_token()
        session.start_server()
        yield config, settings, session
        session.close()
    finally:
        hub.down(config, settings)
        remove_system_users([PREFIX + "alice", PREFIX + "admin"])


def _wait_jobs(slurm, name, wanted, timeout):
    return poll(lambda: slurm.jobs(name), wanted, timeout)


def test_workers_are_slurm_jobs_that_compute_and_end_on_close(slurm_hub, slurm):
    config, settings, alice = slurm_hub
    kernel = alice.start_kernel()
    name = job_name(str(hub.hub_dir(config)))
    out = alice.run(kernel, """
import eolab.compute, dask.array as da
client = eolab.compute.get_client(workers=2)
client.wait_for_workers(2, timeout=60)
x = da.ones((2000, 2000), chunks=500)
print("SUM", int(client.compute(x.sum()).result()), "WORKERS", len(client.scheduler_info()["workers"]))
""")
    assert out.split() == ["SUM", "4000000", "WORKERS", "2"]
    running = slurm.jobs(name)
    assert len(running) == 2 and {j["state"] for j in running} == {"RUNNING"}
    alice.run(kernel, "client.close(); client.cluster.close()")
    assert _wait_jobs(slurm, name, lambda jobs: not jobs, 30) == []
    alice.kill_kernel(kernel)


def test_jobs_end_when_the_kernel_dies(slurm_hub, slurm):
    config, settings, alice = slurm_hub
    kernel = alice.start_kernel()
    name = job_name(str(hub.hub_dir(config)))
    out = alice.run(kernel, """
import os, eolab.compute
client = eolab.compute.get_client(workers=1)
client.wait_for_workers(1, timeout=60)
print(os.getpid(), client.submit(lambda: 6 * 7).result())
""")
    pid, answer = out.split()
    assert answer == "42" and len(slurm.jobs(name)) == 1
    os.kill(int(pid), signal.SIGKILL)
    assert _wait_jobs(slurm, name, lambda jobs: not jobs, DEATH_TIMEOUT + 40) == []
    alice.kill_kernel(kernel)


def test_hub_down_cancels_users_jobs(slurm_hub, slurm):
    config, settings, alice = slurm_hub
    kernel = alice.start_kernel()
    name = job_name(str(hub.hub_dir(config)))
    alice.run(kernel, """
import eolab.compute
client = eolab.compute.get_client(workers=2)
client.wait_for_workers(2, timeout=60)
""")
    assert len(slurm.jobs(name)) == 2
    hub.down(config, settings)
    assert _wait_jobs(slurm, name, lambda jobs: not jobs, 20) == []
