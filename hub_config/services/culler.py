"""jupyterhub-idle-culler as a hub-managed service that exits promptly on SIGINT.

The hub stops managed services with SIGINT; the culler ignores it and the hub then waits ~30 s
before SIGTERM. Arguments are the culler's own (``--timeout``, ``--cull-every``, ...).
"""

import os
import signal

from jupyterhub_idle_culler import main

if __name__ == "__main__":
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    main()
