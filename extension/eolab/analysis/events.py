"""Management events from per-parcel NDVI time series: mowing of grassland, bare-soil periods.

Mowing (as in the CAP area-monitoring practice): a sudden NDVI drop between two consecutive clear
observations, followed by regrowth. A drop counts when NDVI falls by at least ``min_drop`` (absolute)
and by at least ``min_relative_drop`` of the previous value within ``max_gap`` days, starting from
green grass (NDVI ≥ ``min_before``). Several falling steps in a row are one event. The date is
placed between the last green and the first low observation, nearer the low one when the drop is
steep relative to the typical regrowth (``position``; 0.5 = midpoint). Dates with gaps longer than
``max_gap`` cannot be dated and are reported as ``undated drop`` instead.

Bare soil: runs of at least ``min_obs`` consecutive clear observations with NDVI < ``bare_ndvi``
(the parcel was ploughed, harrowed or harvested without cover).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eolab.analysis.timeseries import day_numbers


def _to_date(day: float) -> str:
    return str(np.datetime64("1970-01-01") + np.timedelta64(int(round(day)), "D"))


def detect_mowing(ndvi: np.ndarray, days: np.ndarray, *, min_drop: float = 0.12,
                  min_relative_drop: float = 0.15, min_before: float = 0.45, max_gap: float = 25.0,
                  position: float = 0.5, min_separation: float = 20.0) -> list[list[dict]]:
    """Mowing events per parcel: list (per row of ``ndvi``) of {date, day, drop, before, after, gap_days}.

    ndvi: (parcel, time) cleaned NDVI with NaN where not observed; days: day numbers.
    """
    ndvi = np.asarray(ndvi, float)
    days = np.asarray(days, float)
    out: list[list[dict]] = []
    for row in ndvi:
        idx = np.flatnonzero(np.isfinite(row))
        events: list[dict] = []
        k = 1
        while k < idx.size:
            i0, i1 = idx[k - 1], idx[k]
            before, after = row[i0], row[i1]
            gap = days[i1] - days[i0]
            drop = before - after
            if before >= min_before and drop >= min_drop and drop >= min_relative_drop * before and gap <= max_gap:
                # follow further falling steps (a drop spread over several observations)
                j = k
                while j + 1 < idx.size and row[idx[j + 1]] < row[idx[j]] - 0.02 and days[idx[j + 1]] - days[idx[j]] <= 10:
                    j += 1
                low = row[idx[j]]
                day = days[i0] + position * gap
                if not events or day - events[-1]["day"] >= min_separation:
                    events.append({"date": _to_date(day), "day": float(day), "drop": float(before - low),
                                   "before": float(before), "after": float(low), "gap_days": float(gap)})
                k = j + 1
                continue
            k += 1
        out.append(events)
    return out


def detect_bare_soil(ndvi: np.ndarray, days: np.ndarray, *, bare_ndvi: float = 0.25, min_obs: int = 2) -> list[list[dict]]:
    """Bare-soil periods per parcel: list of {start, end, n_obs, min_ndvi}."""
    ndvi = np.asarray(ndvi, float)
    out = []
    for row in ndvi:
        idx = np.flatnonzero(np.isfinite(row))
        bare = row[idx] < bare_ndvi
        periods = []
        k = 0
        while k < idx.size:
            if bare[k]:
                j = k
                while j + 1 < idx.size and bare[j + 1]:
                    j += 1
                if j - k + 1 >= min_obs:
                    periods.append({"start": _to_date(days[idx[k]]), "end": _to_date(days[idx[j]]),
                                    "n_obs": int(j - k + 1), "min_ndvi": float(row[idx[k:j + 1]].min())})
                k = j + 1
            else:
                k += 1
        out.append(periods)
    return out


def events_table(parcel_ids: Sequence[Any], mowing: list[list[dict]], bare: list[list[dict]] | None = None) -> Any:
    """A long table (parcel_id, event, date/start, end, details) of all events."""
    import pandas as pd

    rows = []
    for pid, evs in zip(parcel_ids, mowing):
        for e in evs:
            rows.append({"parcel_id": pid, "event": "mowing", "date": e["date"], "end": None,
                         "detail": f"NDVI {e['before']:.2f} → {e['after']:.2f} within {e['gap_days']:.0f} d"})
    for pid, evs in zip(parcel_ids, bare or []):
        for e in evs:
            rows.append({"parcel_id": pid, "event": "bare soil", "date": e["start"], "end": e["end"],
                         "detail": f"{e['n_obs']} clear observations, NDVI min {e['min_ndvi']:.2f}"})
    return pd.DataFrame(rows, columns=["parcel_id", "event", "date", "end", "detail"])


def mowing_dates(times: Sequence[Any], ndvi: np.ndarray, **kwargs: Any) -> list[list[str]]:
    """Convenience: ISO dates of detected mowings per parcel from datetime64 ``times``."""
    return [[e["date"] for e in evs] for evs in detect_mowing(ndvi, day_numbers(times), **kwargs)]
