"""Load: 200 concurrent searches against the broker (three members). Goal: 0 errors; p50/p99 printed."""

from __future__ import annotations

import asyncio
import time

import httpx
from broker_common import federation, machine, median, pct

CONCURRENT = 200


async def fire(broker: str) -> tuple[list[float], list[str]]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one(i: int):
            body = {"limit": 10, "bbox": [16 + (i % 5), 45.5, 23, 48.5]} if i % 2 else {"limit": 10}
            t0 = time.perf_counter()
            try:
                response = await client.post(f"{broker}/search", json=body)
            except httpx.HTTPError as exc:
                return time.perf_counter() - t0, f"{type(exc).__name__}"
            ok = response.status_code == 200 and not response.json()["federation:missing"]
            return time.perf_counter() - t0, None if ok else f"HTTP {response.status_code} {response.text[:80]}"

        await one(0)
        results = await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    return [r[0] for r in results], [r[1] for r in results if r[1]]


def main() -> None:
    specs = {name: {"n_items": 1000, "delay": 0.02, "offset_minutes": i * 11} for i, name in enumerate(("l1", "l2", "l3"))}
    with federation(specs, member_timeout=20, total_timeout=30) as (broker, _):
        times, errors = asyncio.run(fire(broker))
    print(f"machine: {machine()}")
    if errors:
        print("first errors:", errors[:3])
    print(f"LOAD concurrent={CONCURRENT} errors={len(errors)} p50={median(times) * 1000:.0f}ms "
          f"p99={pct(times, 0.99) * 1000:.0f}ms (goal: 0 errors)")


if __name__ == "__main__":
    main()
