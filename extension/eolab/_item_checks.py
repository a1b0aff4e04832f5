"""What makes a STAC item unfit to publish into a catalogue that every user searches (pure).

Shared by the kernels (``eolab.analysis.publish`` checks before sending) and the workspace member
(``eolab.stack.workspace`` checks what any writer sends), so both refuse the same with the same words.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

INVALID_ID_CHARS = ":/?#[]@!$&'()*+,;="  # what stac-fastapi-pgstac refuses in ids


def item_problems(item: dict) -> list[str]:
    """What a provider would refuse in this item (pure); empty if it can be published."""
    problems = []
    iid = item.get("id")
    if not isinstance(iid, str) or not iid:
        return ["no id"]
    bad = sorted({c for c in iid if c in INVALID_ID_CHARS})
    if bad:
        problems.append(f"id contains {' '.join(bad)}")
    if item.get("type") != "Feature":
        problems.append(f"type is {item.get('type')!r}, not 'Feature'")
    geometry = item.get("geometry")
    if not isinstance(geometry, dict) or not geometry.get("type") or "coordinates" not in geometry and \
            "geometries" not in geometry:
        problems.append("no geometry")
    else:
        try:
            from shapely.geometry import shape

            if not shape(geometry).is_valid:
                problems.append("invalid geometry")
        except Exception as exc:  # shapely raises several types for malformed GeoJSON
            problems.append(f"malformed geometry ({exc})".splitlines()[0][:120])
    bbox = item.get("bbox")
    if bbox is not None:
        try:
            ok = len(bbox) in (4, 6) and all(isinstance(v, (int, float)) for v in bbox)
        except TypeError:
            ok = False
        if not ok:
            problems.append(f"bbox {bbox!r} is not 4 numbers")
    props = item.get("properties")
    if not isinstance(props, dict):
        return problems + ["no properties"]
    stamps = {}
    for key in ("datetime", "start_datetime", "end_datetime"):
        if props.get(key) is not None:
            try:
                stamps[key] = dt.datetime.fromisoformat(str(props[key]).replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{key} {props[key]!r} is not a date-time")
    if props.get("datetime") is None and not (props.get("start_datetime") and props.get("end_datetime")):
        problems.append("neither datetime nor start_datetime and end_datetime")
    if "start_datetime" in stamps and "end_datetime" in stamps:
        try:
            if stamps["end_datetime"] < stamps["start_datetime"]:
                problems.append("end_datetime is before start_datetime")
        except TypeError:
            problems.append("start_datetime and end_datetime mix time zones")
    # A result describes data already taken: a date ahead of now would put it first in everyone's
    # newest-first searches for as long as it lasts.
    latest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    for key, when in stamps.items():
        # a period may end later (a season still running); what sorts the item is when it starts
        if key != "end_datetime" and when.tzinfo is not None and when > latest:
            problems.append(f"{key} {props[key]} is in the future")
    assets = item.get("assets") or {}
    if not isinstance(assets, dict):
        problems.append("assets is not an object")
        assets = {}
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str) or not asset["href"]:
            problems.append(f"asset {key!r} has no href")
    links = item.get("links") or []
    if not isinstance(links, list):
        problems.append("links is not a list")
        links = []
    for n, link in enumerate(links):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str) or not isinstance(link.get("rel"), str):
            problems.append(f"link {n} needs 'rel' and 'href' strings")  # searches meeting it failed (HTTP 500)
    size = len(json.dumps(item, default=str))
    if size > MAX_ITEM_BYTES:  # every search meeting it would carry it to every user
        problems.append(f"the item takes {size / 1024:,.0f} kB as JSON (at most {MAX_ITEM_BYTES // 1024} kB)")
    control = control_text(item)
    if control:
        problems.append(f"a text holds a control character: {control[:40]!r}")
    return problems


# Real providers' items are 5-50 kB; a published result names at most 100 source items (~40 kB).
# A broker's member page of 1,000 such items (catalog._federation.MAX_MEMBER_PAGE) then stays under
# the 128 MB it reads of one member answer (catalog._members.MAX_ANSWER_BYTES).
MAX_ITEM_BYTES = 128 * 1024
# Collections are listed, not paged in thousands.
MAX_COLLECTION_BYTES = 2 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # C0, C1, bidi overrides


def control_text(value: Any) -> str | None:
    """The first text (key or value) in ``value`` holding a control character (C0 but tab and line
    breaks, C1) or a bidirectional override."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _CONTROL.search(node):
                return node
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None
