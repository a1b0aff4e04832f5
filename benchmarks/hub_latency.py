"""Hub latency as a user feels it: login → server ready, and gateway cluster → first result.

Starts the catalogue stack (small demo data) and the hub on free ports in a temporary run
directory, then repeats each path ROUNDS times and prints medians against the goals
(≤ 5 s and ≤ 10 s). Usage: .venv/bin/python benchmarks/hub_latency.py [ROUNDS]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from eolab import hub
from eolab.config import DEFAULT_CONFIG, load_config
from eolab.stack import core as stack
from eolab.testing.hub import HubSession, remove_system_users

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from eolab.testing.stack import free_port_base  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
CLUSTER_CODE = """
import time, eolab.compute
t0 = time.perf_counter()
client = eolab.compute.get_client(workers=1)
answer = client.submit(lambda x: x + 1, 41).result()
elapsed = time.perf_counter() - t0
client.close(); client.cluster.shutdown()
print(answer, elapsed)
"""


def main() -> None:
    data = Path(os.environ.get("EOLAB_TEST_DEMO_DIR") or tempfile.mkdtemp(prefix="eolab-bench-data-"))
    if not (data / "manifest.json").exists():
        from eolab.demo import generate

        generate(data, "small", progress=False)
    run = Path(tempfile.mkdtemp(prefix="eolab-bench-hub-"))
    run.chmod(0o711)  # as root each user runs as a system account (prefix eolabh-) that must reach it
    base = free_port_base(width=9, start=22000)
    config = load_config(DEFAULT_CONFIG, run_dir=str(run), data_dir=str(data), port_offset=base - 8700 + 100)
    settings = hub.HubSettings(port=base, users=[f"user{i}" for i in range(ROUNDS)] + ["bench"],
                               system_user_prefix="eolabh-")
    stack.up(config, progress=False)
    try:
        t0 = time.perf_counter()
        hub.up(config, settings)
        hub_start = time.perf_counter() - t0
        passwords = hub.credentials(config)["passwords"]
        url = f"http://127.0.0.1:{base}"

        login_to_ready = []
        for i in range(ROUNDS):  # a new user each round: first login, new home, templates copied
            session = HubSession(url, f"user{i}")
            t0 = time.perf_counter()
            assert session.login(passwords[f"user{i}"]).status_code == 302
            session.new_token()
            session.start_server()
            login_to_ready.append(time.perf_counter() - t0)
            session.stop_server()
            session.close()

        session = HubSession(url, "bench")
        session.login(passwords["bench"])
        session.new_token()
        session.start_server()
        kernel = session.start_kernel()
        session.run(kernel, "import eolab.compute, dask_gateway")  # imports are not the cluster's cost
        cluster_to_result = []
        for _ in range(ROUNDS):
            answer, elapsed = session.run(kernel, CLUSTER_CODE).split()
            assert answer == "42"
            cluster_to_result.append(float(elapsed))
        session.close()
    finally:
        hub.down(config, settings)
        stack.down(config)
        if os.geteuid() == 0:
            remove_system_users(["eolabh-" + name for name in [*settings.users, *settings.admin_users]])

    login_median = statistics.median(login_to_ready)
    cluster_median = statistics.median(cluster_to_result)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"hub start (stack already up): {hub_start:.1f} s")
    print(f"login -> server ready, {ROUNDS} new users: " + ", ".join(f"{t:.2f}" for t in login_to_ready))
    print(f"gateway cluster -> first result, {ROUNDS} rounds: " + ", ".join(f"{t:.2f}" for t in cluster_to_result))
    print(f"median login->ready {login_median:.2f} s (goal 5 s, ratio {login_median / 5:.2f}); "
          f"median cluster->result {cluster_median:.2f} s (goal 10 s, ratio {cluster_median / 10:.2f})")


if __name__ == "__main__":
    main()
