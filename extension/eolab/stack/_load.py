"""Fill each demo member's pgstac database with its share of the demo STAC items.

Which items a member holds comes from the configuration (collection + date window), so one
collection id can live at two members, as Sentinel-2 does across real providers. Asset hrefs in
the demo data are relative; here they become absolute URLs of the asset server.

Numeric item properties (``eo:cloud_cover``, ``gsd``, ``view:*``...) are registered as pgstac
queryables of type number: without them pgstac compares and sorts them as text ("10.5" before
"9.2"), and a federated numeric sort could not be right.

A writable member (the workspace) gets no demo data: its database is only migrated to pgstac
(:func:`prepare_writable`), and what users publish into it is never dropped by a reload.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from eolab.config import MemberConfig, StackConfig
from eolab.errors import EolabError
from eolab.stack._lookalike_items import restyle


def read_manifest(data_dir: Path) -> dict:
    path = data_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EolabError(f"no demo data in {data_dir}", hint="run 'eolab demo-data' (make up does it)")


def _item_day(item: dict) -> dt.date:
    stamp = item["properties"].get("datetime") or item["properties"]["start_datetime"]
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()


def iter_member_items(data_dir: Path, member: MemberConfig, assets_url: str) -> Iterator[dict]:
    """The demo items this member holds, with absolute asset hrefs."""
    for collection_id, window in member.collections.items():
        path = data_dir / "stac" / "items" / f"{collection_id}.ndjson"
        if not path.exists():
            raise EolabError(f"demo collection {collection_id!r} of member {member.id!r} is not in {data_dir}",
                             hint="check the member's 'collections' in the configuration file; demo data made "
                                  "before that collection existed: 'eolab demo-data --force' makes them anew")
        with path.open() as lines:
            for line in lines:
                item = json.loads(line)
                if window.contains(_item_day(item)):
                    item = absolutise(item, assets_url)
                    yield restyle(item, member.lookalike, member.id) if member.lookalike else item


def absolutise(item: dict, assets_url: str) -> dict:
    for asset in item.get("assets", {}).values():
        href = asset["href"]
        if "://" not in href:
            asset["href"] = f"{assets_url.rstrip('/')}/{href.lstrip('./')}"
    return item


def member_collections(data_dir: Path, member: MemberConfig, items: list[dict]) -> list[dict]:
    """The member's collections, with temporal and spatial extents of what it really holds."""
    all_collections = {c["id"]: c for c in json.loads((data_dir / "stac" / "collections.json").read_text())}
    result = []
    for collection_id in member.collections:
        collection = copy.deepcopy(all_collections[collection_id])
        held = [i for i in items if i["collection"] == collection_id]
        if held:
            times = sorted(i["properties"]["datetime"] for i in held)
            collection["extent"]["temporal"]["interval"] = [[times[0], times[-1]]]
            boxes = [i["bbox"] for i in held]
            collection["extent"]["spatial"]["bbox"] = [[
                min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]]
        collection["links"] = []
        result.append(collection)
    return result


# Registered in every member, holding items or not (the workspace receives published ones later).
STANDARD_NUMERIC = ("eo:cloud_cover", "eo:snow_cover", "gsd", "view:sun_elevation", "view:sun_azimuth",
                    "view:off_nadir", "view:incidence_angle", "sat:relative_orbit", "sat:absolute_orbit")
QUERYABLES_VERSION = 1  # part of the load fingerprint: a change reloads the members


def numeric_queryables(items: list[dict]) -> dict[str, dict]:
    """Queryable definitions for the standard numeric properties and every property whose values in
    ``items`` are all numbers (JSON numbers, not booleans)."""
    seen: dict[str, bool] = {}
    for item in items:
        for name, value in (item.get("properties") or {}).items():
            if value is None or name in ("datetime", "start_datetime", "end_datetime"):
                continue
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            seen[name] = seen.get(name, True) and numeric
    names = sorted(set(STANDARD_NUMERIC) | {n for n, numeric in seen.items() if numeric})
    names = [n for n in names if seen.get(n, True)]  # a standard name this member holds as text stays text
    return {n: {"title": n, "type": "number"} for n in names}


def register_queryables(db, items: list[dict]) -> int:
    """Upsert the numeric queryables for all collections of the member (``db``: a PgstacDB)."""
    definitions = {"type": "object", "properties": numeric_queryables(items)}
    result = db.query_one("SELECT pgstac.upsert_queryables(%s::jsonb)", [json.dumps(definitions)])
    return int(result) if isinstance(result, (int, str)) and str(result).isdigit() else 0


def fingerprint(config: StackConfig, member: MemberConfig, manifest: dict) -> str:
    """Changes whenever what the member should hold changes (data, window, asset URL)."""
    text = json.dumps([manifest, member.model_dump(mode="json"), config.member_assets_url(member), QUERYABLES_VERSION],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_member(dsn: str, data_dir: Path, member: MemberConfig, assets_url: str) -> int:
    """Migrate the member's (empty) database to pgstac and load its collections and items."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods
    from pypgstac.migrate import Migrate

    items = list(iter_member_items(data_dir, member, assets_url))
    collections = member_collections(data_dir, member, items)
    with PgstacDB(dsn=dsn) as db:
        Migrate(db).run_migration()
        if member.number_matched:
            db.query_one("INSERT INTO pgstac.pgstac_settings (name, value) VALUES ('context', 'on') "
                         "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value RETURNING name")
        loader = Loader(db=db)
        loader.load_collections(iter(collections), Methods.upsert)
        loader.load_items(iter(items), Methods.upsert)
        register_queryables(db, items)
    return len(items)


def writable_fingerprint(member: MemberConfig) -> str:
    """What a writable member's marker records: the pgstac version its database was migrated to."""
    from pypgstac import __version__ as pgstac_version

    return json.dumps({"writable": member.id, "pgstac": pgstac_version, "number_matched": member.number_matched,
                       "queryables": QUERYABLES_VERSION}, sort_keys=True)


def prepare_writable(dsn: str, member: MemberConfig) -> None:
    """Migrate a writable member's database to pgstac (idempotent; existing collections and items stay)."""
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    with PgstacDB(dsn=dsn) as db:
        Migrate(db).run_migration()
        value = "on" if member.number_matched else "off"
        db.query_one("INSERT INTO pgstac.pgstac_settings (name, value) VALUES ('context', %s) "
                     "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value RETURNING name", [value])
        register_queryables(db, [])
