"""Shared set-up of the broker benchmarks: real member processes and a real broker process."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from eolab.testing import faults as _faults


@contextlib.contextmanager
def federation(specs: dict[str, dict], **broker):
    """Start fake members (uvicorn) and a broker (uvicorn); yields (broker_url, member_urls)."""
    run = Path(tempfile.mkdtemp(prefix="eolab-bench-"))
    started, urls = [], {}
    try:
        for name, spec in specs.items():
            urls[name] = _faults.serve_fake(run, f"fake-{name}", {"id": name, **spec})
            started.append(f"fake-{name}")
        config = {"members": [{"id": k, "url": v} for k, v in urls.items()],
                  "broker": {"port": _faults.free_port(), "token_secret": "bench", **broker}}
        path = run / "catalog.yaml"
        path.write_text(yaml.safe_dump(config))
        url = _faults.serve_broker(run, path, config["broker"]["port"])
        started.append("broker")
        yield url, urls
    finally:
        for name in started:
            _faults.stop(run, name)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


median = statistics.median
