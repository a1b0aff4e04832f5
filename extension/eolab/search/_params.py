"""Pure parts of a catalogue search: collection listings and the search body (validated, so errors
name the parameter). No I/O here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eolab import ids
from eolab.errors import EolabError

DEFAULT_SORTBY = "-properties.datetime"


# --------------------------------------------------------------------------- collections

@dataclass(frozen=True)
class CollectionInfo:
    """One collection of the federation: ``id`` is ``provider|collection``."""

    id: str
    provider: str
    collection: str
    title: str
    bbox: tuple[float, float, float, float] | None
    interval: tuple[str | None, str | None]
    data_providers: tuple[str, ...] = ()

    @classmethod
    def from_stac(cls, body: dict) -> "CollectionInfo":
        provider, plain = ids.split(body["id"])
        extent = body.get("extent") or {}
        boxes = (extent.get("spatial") or {}).get("bbox") or []
        intervals = (extent.get("temporal") or {}).get("interval") or [[None, None]]
        start, end = (list(intervals[0]) + [None, None])[:2]
        return cls(id=body["id"], provider=provider or "", collection=plain, title=body.get("title") or plain,
                   bbox=tuple(float(v) for v in boxes[0][:4]) if boxes else None, interval=(start, end),
                   data_providers=tuple(p.get("name", "") for p in body.get("providers") or []))

    @property
    def extent_text(self) -> str:
        start, end = (s[:10] if s else ".." for s in self.interval)
        box = ", ".join(f"{v:.2f}" for v in self.bbox) if self.bbox else "no bbox"
        return f"{start} – {end}; {box}"


@dataclass
class Collections:
    """The broker's collections and the providers that did not answer."""

    collections: list[CollectionInfo]
    missing: list[str] = field(default_factory=list)

    def by_provider(self) -> dict[str, list[CollectionInfo]]:
        groups: dict[str, list[CollectionInfo]] = {}
        for info in sorted(self.collections, key=lambda c: (c.provider, c.collection)):
            groups.setdefault(info.provider, []).append(info)
        return groups

    def __iter__(self) -> Iterator[CollectionInfo]:
        return iter(self.collections)

    def __len__(self) -> int:
        return len(self.collections)


# --------------------------------------------------------------------------- search parameters (pure)

def _as_time(value: Any, end: bool) -> str | None:
    if value in (None, "", ".."):
        return None
    if isinstance(value, str):
        value = value.strip()
        if "T" in value:
            return value
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise EolabError(f"time {value!r} is not a date", hint="use 'YYYY-MM-DD', a date or a datetime") from None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return stamp.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T23:59:59Z" if end else f"{value.isoformat()}T00:00:00Z"
    raise EolabError(f"time {value!r} is not a date", hint="use 'YYYY-MM-DD', a date or a datetime")


def datetime_interval(datetime: Any) -> str | None:
    """An RFC 3339 interval from ``(start, end)`` (dates count whole days; None = open) or a string."""
    if datetime is None:
        return None
    if isinstance(datetime, str) and "/" in datetime:
        datetime = tuple(datetime.split("/", 1))
    if isinstance(datetime, (tuple, list)):
        if len(datetime) != 2:
            raise EolabError(f"time range {datetime!r} needs two values", hint="give (start, end)")
        start, end = _as_time(datetime[0], end=False), _as_time(datetime[1], end=True)
        if start and end and start > end:
            raise EolabError(f"time range starts ({start[:10]}) after it ends ({end[:10]})",
                             hint="swap start and end")
        return f"{start or '..'}/{end or '..'}"
    single = _as_time(datetime, end=False)
    whole_day = isinstance(datetime, str) and "T" not in datetime.strip() and datetime.strip() not in ("", "..")
    if whole_day or (isinstance(datetime, dt.date) and not isinstance(datetime, dt.datetime)):
        # a day, not its first second: '2026-04-05' finds that day's images as date(2026, 4, 5) does
        return f"{single}/{_as_time(datetime, end=True)}"
    return single


def cloud_filter(max_cloud: float | None, extra: str | None = None) -> str | None:
    """CQL2 text: cloud cover at most ``max_cloud`` (items without cloud cover, e.g. radar, pass) and ``extra``."""
    parts = []
    if max_cloud is not None:
        if not 0 <= float(max_cloud) <= 100:
            raise EolabError(f"max_cloud={max_cloud} is not a percentage", hint="use 0 to 100")
        if float(max_cloud) < 100:
            parts.append(f"(eo:cloud_cover <= {float(max_cloud):g} OR eo:cloud_cover IS NULL)")
    if extra and extra.strip():
        parts.append(f"({extra.strip()})")
    return " AND ".join(parts) or None


def search_body(collections: str | Sequence[str] | None = None, *, bbox: Sequence[float] | None = None,
                intersects: Any = None, datetime: Any = None, max_cloud: float | None = None,
                filter: str | None = None, limit: int = 20, sortby: str | None = DEFAULT_SORTBY,
                ids: Sequence[str] | None = None) -> dict:
    """The POST /search body for these parameters (validated, so errors name the parameter)."""
    body: dict[str, Any] = {"limit": int(limit)}
    if not 1 <= body["limit"] <= 10000:
        raise EolabError(f"limit={limit} is out of range", hint="use 1 to 10000 items per page")
    if collections:
        body["collections"] = [collections] if isinstance(collections, str) else list(collections)
    if ids:
        body["ids"] = list(ids)
    if intersects is not None and bbox is not None:
        raise EolabError("give either bbox or intersects, not both")
    if intersects is not None:
        body["intersects"] = intersects.__geo_interface__ if hasattr(intersects, "__geo_interface__") else intersects
    elif bbox is not None:
        if hasattr(bbox, "bounds") and not isinstance(bbox, (list, tuple)):
            bbox = bbox.bounds  # a shapely geometry: its bounding box
        try:
            if isinstance(bbox, str):
                raise TypeError
            box = [float(v) for v in bbox]
        except (TypeError, ValueError):
            raise EolabError(f"bbox {bbox!r} is not four numbers",
                             hint="west, south, east, north in degrees, e.g. [20.60, 47.65, 20.70, 47.72]") from None
        if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
            raise EolabError(f"bbox {bbox} is not west, south, east, north", hint="e.g. [20.60, 47.65, 20.70, 47.72]")
        body["bbox"] = box
    interval = datetime_interval(datetime)
    if interval:
        body["datetime"] = interval
    text = cloud_filter(max_cloud, filter)
    if text:
        body["filter"], body["filter-lang"] = text, "cql2-text"
    if sortby:
        body["sortby"] = [{"field": f.lstrip("+-"), "direction": "desc" if f.startswith("-") else "asc"}
                          for f in sortby.split(",") if f.strip()]
    return body


