"""configurable-http-proxy started by the hub, with a start budget that a loaded machine can meet.

JupyterHub waits a fixed 10 s for the proxy's two ports (``ConfigurableHTTPProxy.start``,
``server.wait_up(10)``, not configurable) and exits the hub when node takes longer, which happens
on a busy 2-core machine. :class:`PatientProxy` keeps JupyterHub's start and, only when that wait
times out while the proxy process is still alive, waits until ``start_timeout`` more seconds have
passed for both ports, failing at once (as JupyterHub does) if the process exits meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from jupyterhub.objects import Server
from jupyterhub.proxy import ConfigurableHTTPProxy
from jupyterhub.utils import can_connect
from tornado.ioloop import PeriodicCallback
from traitlets import Float


class PatientProxy(ConfigurableHTTPProxy):
    start_timeout = Float(60.0, config=True,
                          help="seconds to wait for a proxy still starting after JupyterHub's own 10 s")

    async def start(self) -> None:
        try:
            await super().start()
            return
        except TimeoutError as error:
            process = getattr(self, "proxy_process", None)
            if process is None or process.poll() is not None:
                raise
            self.log.warning("%s; the proxy (pid %s) is still starting, waiting up to %.0f s more",
                             error, process.pid, self.start_timeout)
        servers = [Server.from_url(url) for url in (self.public_url, self.api_url)]
        deadline = time.monotonic() + self.start_timeout
        while True:
            status = self.proxy_process.poll()
            if status is not None:
                raise RuntimeError(f"Proxy failed to start with exit code {status}")
            if all(can_connect(s.ip, s.port) for s in servers):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the proxy did not answer on {self.public_url} and {self.api_url} "
                                   f"within {10 + self.start_timeout:.0f} s")
            await asyncio.sleep(0.5)
        self.log.info("Proxy is up after the longer wait")
        # What JupyterHub's start does once the ports answer: watch the proxy and restart it if it dies.
        self._check_running_callback = PeriodicCallback(self.check_running, 1e3 * self.check_running_interval)
        self._check_running_callback.start()
