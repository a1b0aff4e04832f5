"""P2: enumerate > 10,000 items across three members through the broker vs. paging each member directly.

Goal: 100 % of the items, 0 duplicates, throughput ratio (broker / direct) ≥ 0.8
(EO-MQS reached 20 of 9,000 items, see shared/notes/anchors.md).
"""

from __future__ import annotations

import time

import httpx
from broker_common import federation, machine

N = {"p1": 3400, "p2": 3400, "p3": 3400}
LIMIT = 250


def walk(client: httpx.Client, url: str) -> list[tuple[str, str]]:
    found = []
    response = client.post(f"{url}/search", json={"limit": LIMIT})
    while True:
        response.raise_for_status()
        body = response.json()
        found += [(f["collection"], f["id"]) for f in body["features"]]
        nxt = [ln for ln in body["links"] if ln["rel"] == "next"]
        if not nxt:
            return found
        response = client.post(nxt[0]["href"], json=nxt[0]["body"])


def main() -> None:
    specs = {name: {"n_items": n, "offset_minutes": i * 17} for i, (name, n) in enumerate(N.items())}
    total = sum(N.values())
    with federation(specs, member_timeout=20, total_timeout=40) as (broker, members), \
            httpx.Client(timeout=60) as client:
        walk(client, broker)  # warm-up (connections, member metadata)
        t0 = time.perf_counter()
        direct = []
        for name, url in members.items():
            direct += [(f"{name}|{c}", i) for c, i in walk(client, url)]
        t_direct = time.perf_counter() - t0
        t0 = time.perf_counter()
        through = walk(client, broker)
        t_broker = time.perf_counter() - t0
    dupes = len(through) - len(set(through))
    complete = len(set(through) & set(direct)) / total
    ratio = (len(through) / t_broker) / (len(direct) / t_direct)
    print(f"machine: {machine()}")
    print(f"direct: {len(direct)} items in {t_direct:.2f} s ({len(direct) / t_direct:.0f}/s); "
          f"broker: {len(through)} items in {t_broker:.2f} s ({len(through) / t_broker:.0f}/s); limit {LIMIT}")
    print(f"P2 items={len(set(through))}/{total} ({complete:.0%}) duplicates={dupes} throughput_ratio={ratio:.2f} "
          f"(goals 100 %, 0, >= 0.8)")


if __name__ == "__main__":
    main()
