"""P1: broker search latency with three members answering in 50 / 150 / 300 ms.

Goal: broker / slowest member ≤ 1.15 and broker / sequential querying ≤ 0.4
(EO-MQS measured 2.28 × the slowest member and 1.29 × the sum, see shared/notes/anchors.md).
With 50/150/300 ms no broker that waits for the slowest member can go below 300/500 = 0.6 of
sequential; `--delays 300,300,300` (bound 0.33) shows the concurrency against that goal.

    .venv/bin/python benchmarks/broker_latency.py [--delays 50,150,300]
"""

from __future__ import annotations

import argparse
import time

import httpx
from broker_common import federation, machine, median

ROUNDS = 30


def timed(client: httpx.Client, url: str, **params) -> float:
    t0 = time.perf_counter()
    response = client.get(url, params=params)
    response.raise_for_status()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="50,150,300", help="per-member latency in ms, comma-separated")
    delays = [float(d) / 1000 for d in parser.parse_args().delays.split(",")]
    specs = {f"m{i}": {"n_items": 1000, "delay": d, "offset_minutes": i * 13} for i, d in enumerate(delays)}
    with federation(specs) as (broker, members), httpx.Client(timeout=30) as client:
        for _ in range(3):  # warm up connections and the broker's member metadata
            timed(client, f"{broker}/search", limit=10)
        broker_t, slowest_t, sequential_t = [], [], []
        for _ in range(ROUNDS):
            broker_t.append(timed(client, f"{broker}/search", limit=10))
            each = [timed(client, f"{url}/search", limit=10) for url in members.values()]
            slowest_t.append(max(each))
            sequential_t.append(sum(each))
    b, s, q = median(broker_t), median(slowest_t), median(sequential_t)
    print(f"machine: {machine()}")
    print(f"median over {ROUNDS} rounds, GET /search limit 10: broker {b * 1000:.0f} ms, slowest member "
          f"{s * 1000:.0f} ms, members one after another {q * 1000:.0f} ms")
    bound = max(delays) / sum(delays)
    print(f"P1 delays={','.join(f'{d * 1000:.0f}' for d in delays)}ms broker/slowest={b / s:.3f} (goal <= 1.15) "
          f"broker/sequential={b / q:.3f} (goal <= 0.4; lower bound slowest/sum = {bound:.2f})")


if __name__ == "__main__":
    main()
