"""Acquisition calendars (Sentinel-2, Sentinel-1), reservoir regulation curve and sun geometry."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from eolab.demo._common import YEAR, rng

LAT, LON = 47.70, 20.60  # scene centre (approx.), degrees


@dataclass(frozen=True)
class Acq:
    """One acquisition date: index, date, UTC datetime, platform and orbit details."""

    index: int
    date: dt.date
    datetime: dt.datetime
    platform: str
    orbit_state: str | None = None

    @property
    def doy(self) -> int:
        return self.date.timetuple().tm_yday

    @property
    def iso(self) -> str:
        return self.date.isoformat()


#: Early-winter Sentinel-2 dates after the crop season: (date, snow on the ground, reservoir and
#: ponds iced, haze path reflectance at 490 nm). Rendered by eolab.demo._winter.
WINTER_DATES = [
    (dt.date(YEAR, 11, 25), False, False, 0.030),  # low sun, long terrain shadows, haze
    (dt.date(YEAR, 12, 10), True, False, 0.015),  # snow, open water
    (dt.date(YEAR, 12, 20), True, True, 0.008),  # snow, iced reservoir
    (dt.date(YEAR, 12, 30), True, True, 0.022),  # snow, iced reservoir, haze
]
N_WINTER = len(WINTER_DATES)


def s2_dates(seed: int) -> list[Acq]:
    """40 dates from the 5-day combined revisit 1 Mar - 31 Oct, irregularly subsampled, then the
    ``WINTER_DATES`` (Nov - Dec)."""
    g = rng(seed, "s2-dates")
    start = dt.date(YEAR, 3, 1)
    all_dates = [start + dt.timedelta(days=5 * k) for k in range(49)]  # up to 27 Oct
    keep = np.sort(g.choice(len(all_dates), size=40, replace=False))
    keep[0], keep[-1] = 0, len(all_dates) - 1  # span the whole season
    keep = np.unique(keep)
    out = []
    for i, k in enumerate(keep):
        d = all_dates[int(k)]
        # S2B and S2C alternate on the 5-day grid; S2A (extended campaign) replaces some S2B passes.
        platform = "sentinel-2c" if k % 2 == 0 else ("sentinel-2a" if k % 6 == 1 else "sentinel-2b")
        sec = int(g.integers(-150, 150))
        t = dt.datetime(d.year, d.month, d.day, 9, 40, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec)
        out.append(Acq(i, d, t, platform))
    for k, (d, *_rest) in enumerate(WINTER_DATES):
        sec = int(rng(seed, "s2-winter-dates").integers(-150, 150, N_WINTER)[k])
        t = dt.datetime(d.year, d.month, d.day, 9, 40, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec)
        out.append(Acq(len(out), d, t, "sentinel-2c" if k % 2 == 0 else "sentinel-2b"))
    return out


def s1_dates(seed: int) -> list[Acq]:
    """12-day repeat per orbit: Sentinel-1A descending (~04:50 UTC) and Sentinel-1C ascending
    (~16:30 UTC) alternating every 6 days, subsampled to every other acquisition -> 21 dates."""
    g = rng(seed, "s1-dates")
    start = dt.date(YEAR, 3, 4)
    out = []
    for i in range(21):
        d = start + dt.timedelta(days=12 * i)
        if i % 3 == 2:  # every third acquisition comes from the other orbit, 6 days earlier
            d = d - dt.timedelta(days=6)
            platform, orbit, hh, mm = "sentinel-1c", "ascending", 16, 30
        else:
            platform, orbit, hh, mm = "sentinel-1a", "descending", 4, 50
        sec = int(g.integers(-60, 60))
        t = dt.datetime(d.year, d.month, d.day, hh, mm, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec)
        out.append(Acq(i, d, t, platform, orbit))
    return out


# Reservoir regulation curve (Kisköre-like): winter low, filled by mid-April, summer high,
# drawn down from October.  Levels in metres above an arbitrary datum of the synthetic bathymetry.
_LEVEL_KNOTS = np.array(
    [(1, 87.15), (60, 87.20), (78, 87.30), (92, 87.85), (105, 88.40), (120, 88.55),
     (180, 88.50), (230, 88.42), (268, 88.40), (283, 88.05), (304, 87.50), (366, 87.15)]
)
LEVEL_MIN, LEVEL_MAX = 87.20, 88.55


def water_level(doy: float) -> float:
    """Regulated reservoir level on a day of year (m)."""
    base = float(np.interp(doy, _LEVEL_KNOTS[:, 0], _LEVEL_KNOTS[:, 1]))
    # small wind set-up / operation wiggle, deterministic
    return round(base + 0.02 * math.sin(doy / 9.0), 3)


def sun_angles(when: dt.datetime) -> tuple[float, float]:
    """(elevation, azimuth) in degrees at the scene centre (NOAA-style approximation)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    gamma = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                       - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    tst = hour * 60 + eqtime + 4 * LON
    ha = math.radians(tst / 4 - 180)
    lat = math.radians(LAT)
    cosz = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cosz)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(lat) - math.tan(decl) * math.cos(lat)))
    return 90 - math.degrees(zen), (az + 180) % 360
