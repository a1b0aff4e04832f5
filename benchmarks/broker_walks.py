"""Load: N concurrent clients each walking a search to its end on the demo stack of real pgstac members.

Starts its own catalogue stack (PostgreSQL/pgstac members, asset server, broker; 127.0.0.1 only,
free ports) over a demo data directory, with the broker's default budgets. Every client walks one
of a mix of searches (all items, a collection, a bbox, a date window, a CQL2 filter, a numeric
sort) with a page size between 10 and 40, by GET or POST, following ``next`` links to the end.
The expected items of each search are computed independently, by paging the members directly.

Clients behave like real ones: a 429/503 is asked again after its ``Retry-After`` (at most
``RETRIES`` times per page). Reports per client count: incomplete walks (an expected item missing),
duplicates, errors (non-200 after the retries, or transport errors), unexpected items, pages
that named a member missing, p50/p99 page latency (retries included), and whether a fresh search
right after the run returns the expected items. Goal: 0 incomplete, 0 duplicates, 0 errors.

    .venv/bin/python benchmarks/broker_walks.py --data /path/to/demo-small [--clients 20,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import tempfile
import time
from pathlib import Path

import httpx
from broker_common import machine, median, pct

SEARCHES = [
    {},
    {"collections": "sentinel-2-l2a"},
    {"bbox": "20.55,47.55,20.66,47.70"},
    {"datetime": "2026-04-01T00:00:00Z/2026-07-31T23:59:59Z"},
    {"filter": "eo:cloud_cover < 50", "collections": "sentinel-2-l2a"},
    {"sortby": "+properties.eo:cloud_cover", "collections": "sentinel-2-l2a"},
]


REASONS: dict[str, int] = {}  # why pages named members missing: category → pages


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _config(run: Path, data: Path):
    from eolab.config import DEFAULT_CONFIG, load_config

    base = load_config(DEFAULT_CONFIG)
    ports = [base.postgres.port, base.assets.port, base.broker.port, base.tiles.port] + [
        m.port for m in base.demo_members]
    for offset in range(31000, 60000, 173):
        if all(_free(p + offset) for p in ports):
            return load_config(DEFAULT_CONFIG, run_dir=str(run), data_dir=str(data), port_offset=offset)
    raise RuntimeError("no free port range on 127.0.0.1")


def _page_all(client: httpx.Client, url: str, params: dict) -> list[dict]:
    items = []
    response = client.get(url, params=params)
    while True:
        response.raise_for_status()
        body = response.json()
        items += body["features"]
        nxt = [ln for ln in body["links"] if ln["rel"] == "next"]
        if not nxt:
            return items
        response = client.get(nxt[0]["href"])


def expected_sets(config) -> list[set]:
    """Each search's items, from the members paged directly (collection ids prefixed as the broker does)."""
    out = []
    with httpx.Client(timeout=60) as client:
        for search in SEARCHES:
            found = set()
            for member in config.demo_members:
                params = {k: v for k, v in search.items() if k != "collections"}
                local = search.get("collections")
                if local and local not in member.collections:
                    continue
                if local:
                    params["collections"] = local
                for item in _page_all(client, f"{config.member_url(member)}/search", {"limit": 100, **params}):
                    found.add((f"{member.id}|{item['collection']}", item["id"]))
            out.append(found)
    return out


RETRIES = 30  # per page: a well-behaved client waits Retry-After and asks again, within bounds
RETRIED: dict[str, int] = {"pages": 0, "retries": 0}


async def _send(client: httpx.AsyncClient, verb: str, url: str, kwargs: dict) -> httpx.Response:
    """One page as a real client gets it: 429/503 are retried after their Retry-After (bounded)."""
    for attempt in range(RETRIES + 1):
        response = await client.request(verb, url, **kwargs)
        if response.status_code not in (429, 503) or attempt == RETRIES:
            return response
        RETRIED["retries"] += 1
        RETRIED["pages"] += attempt == 0
        after = response.headers.get("retry-after", "")
        await asyncio.sleep(float(after) if after.isdigit() else min(30.0, 0.5 * 2 ** attempt))
    return response


async def walk(client: httpx.AsyncClient, broker: str, search: dict, limit: int, post: bool, latencies: list):
    keys, missing_pages, error = [], 0, None
    if post:
        body = {"limit": limit, **search}
        if "collections" in body:
            body["collections"] = [body["collections"]]
        if "bbox" in body:
            body["bbox"] = [float(v) for v in body["bbox"].split(",")]
        request = ("POST", f"{broker}/search", {"json": body})
    else:
        request = ("GET", f"{broker}/search", {"params": {"limit": limit, **search}})
    pages = 0
    while request and pages < 2000:
        verb, url, kwargs = request
        t0 = time.perf_counter()
        try:
            response = await _send(client, verb, url, kwargs)
        except httpx.HTTPError as exc:
            return keys, missing_pages, f"{type(exc).__name__}"
        latencies.append(time.perf_counter() - t0)  # retries included: what the user waits
        pages += 1
        if response.status_code != 200:
            return keys, missing_pages, f"HTTP {response.status_code} {response.text[:100]}"
        page = response.json()
        keys += [(f["collection"], f["id"]) for f in page["features"]]
        if page["federation:missing"]:
            missing_pages += 1
            error = error or f"missing {page['eolab:member_errors']}"
            for reason in page["eolab:member_errors"].values():
                REASONS[reason.split(":")[0]] = REASONS.get(reason.split(":")[0], 0) + 1
        nxt = [ln for ln in page["links"] if ln["rel"] == "next"]
        request = None
        if nxt:
            request = ("POST", nxt[0]["href"], {"json": nxt[0]["body"]}) if nxt[0].get("method") == "POST" else \
                ("GET", nxt[0]["href"], {})
    return keys, missing_pages, None if not missing_pages else error


async def run_clients(broker: str, n: int, expected: list[set], seed: int) -> dict:
    rng = random.Random(seed)
    plan = [(rng.randrange(len(SEARCHES)), rng.randint(10, 40), rng.random() < 0.5) for _ in range(n)]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        results = await asyncio.gather(*(walk(client, broker, SEARCHES[s], limit, post, latencies)
                                         for s, limit, post in plan))
        fresh, *_ = await walk(client, broker, SEARCHES[0], 20, False, [])
    elapsed = time.perf_counter() - started
    incomplete = duplicates = errors = missing_pages = extra = 0
    first_problem = None
    for (s, limit, post), (keys, missing, error) in zip(plan, results):
        duplicates += len(keys) - len(set(keys))
        if error and error.startswith(("HTTP", "Connect", "Read", "Remote", "Pool", "Write")):
            errors += 1
        if expected[s] - set(keys):  # a walk is incomplete when items are missing from it
            incomplete += 1
        missing_pages += missing
        extra += len(set(keys) - expected[s])
        if (error or set(keys) != expected[s]) and first_problem is None:
            first_problem = f"search {s} limit {limit}: {error} ({len(set(keys))}/{len(expected[s])} items)"
    return {"clients": n, "incomplete": incomplete, "duplicates": duplicates, "errors": errors,
            "missing_pages": missing_pages, "extra": extra, "pages": len(latencies), "p50": median(latencies) * 1000,
            "p99": pct(latencies, 0.99) * 1000, "seconds": elapsed, "fresh_ok": set(fresh) == expected[0],
            "first_problem": first_problem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="demo data directory (eolab demo-data output)")
    parser.add_argument("--clients", default="20,50,200")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    from eolab.stack import core as stack

    run = Path(tempfile.mkdtemp(prefix="eolab-walks-"))
    config = _config(run, Path(args.data).resolve())
    try:
        stack.up(config, progress=False)
        expected = expected_sets(config)
        print(f"machine: {machine()}")
        print(f"searches: {[len(e) for e in expected]} items; broker member_timeout={config.broker.member_timeout} s "
              f"total_timeout={config.broker.total_timeout} s member_concurrency={config.broker.member_concurrency}")
        for n in (int(c) for c in args.clients.split(",")):
            r = asyncio.run(run_clients(config.broker_url, n, expected, args.seed + n))
            print(f"WALKS clients={r['clients']} incomplete={r['incomplete']} duplicates={r['duplicates']} "
                  f"errors={r['errors']} unexpected_items={r['extra']} pages_naming_missing={r['missing_pages']} pages={r['pages']} "
                  f"p50={r['p50']:.0f}ms p99={r['p99']:.0f}ms total={r['seconds']:.1f}s "
                  f"fresh_search_after={'ok' if r['fresh_ok'] else 'WRONG'}")
            if r["first_problem"]:
                print(f"  first problem: {r['first_problem']}")
            print(f"  pages retried after 429/503 Retry-After: {RETRIED['pages']} ({RETRIED['retries']} retries)")
            RETRIED.update(pages=0, retries=0)
            if REASONS:
                print(f"  missing reasons (pages): {dict(sorted(REASONS.items()))}")
                REASONS.clear()
    finally:
        stack.down(config)
        import shutil

        from eolab.stack.postgres import Cluster

        cluster = Cluster(Path(config.run_dir), config.postgres.port)
        for path in (cluster.pgdata, cluster.socket_dir):
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
