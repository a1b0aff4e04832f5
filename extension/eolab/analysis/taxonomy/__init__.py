"""One crop taxonomy: declared crops of any national code list mapped to HCAT3 (EuroCrops), and the
CAP categories the checks are written against.

Tables (package data beside this module, CC BY-SA 4.0, see ATTRIBUTION.md): ``hcat3.csv`` (the
taxonomy) and ``code_lists/<list>.csv`` (``code, name, hcat3_code`` per national list, plus
``eolab_additions.csv`` for newer codes and ``eolab_demo.csv`` for the demo scene).

CAP categories are read from the hierarchical HCAT3 code (10 digits: 33 crop type, then main group,
group, crop, variety/season), never from a crop's name:

============================ ==========================================================
grassland (mowing checked)    3302… pasture/meadow/grassland; 3301090000 plants harvested green
                              (leys), 33010901–03 temporary grass,
                              grasses and legumes harvested green
fallow                        3301110000
permanent crops               3303…
not agricultural              3306 tree/wood/forest, 3307 peat/turf, 3308 unmaintained,
                              3399 not known and other (landscape elements map here)
arable                        every other 3301… code
other                         3304 mushrooms/energy crops, 3305 greenhouse
============================ ==========================================================

Crop groups (for the crop-group red rule): winter cereals / spring cereals / cereals (season not
given), oilseed rape, summer crops (maize, sunflower, soybean), grassland, fallow, permanent crops,
not agricultural, other arable. Season (:func:`season`): the HCAT3 name says it (winter_…,
spring_…/summer_…); maize, sunflower and soybean are spring-sown.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

HERE = Path(__file__).parent
CODE_LISTS = HERE / "code_lists"

GRASSLAND, FALLOW, PERMANENT, NOT_AGRICULTURAL, ARABLE = (
    "grassland", "fallow", "permanent crops", "not agricultural", "arable")
_GREEN_GRASS = ("3301090000", "33010901", "33010902", "33010903")  # plants harvested green (leys), temporary grass, grasses, legumes
_SUMMER = ("33010106", "3301090400", "3301060500", "3301160000")  # maize (grain, silage), sunflower, soybean


def normalise_code(value: object) -> str:
    """A crop code as a comparable string: '088', 88, 88.0 → '88'; other text stripped."""
    s = str(value).strip()
    if s in ("", "nan", "None", "<NA>"):
        return ""
    s = re.sub(r"\.0+$", "", s)
    return s.lstrip("0") or "0" if s.isdigit() else s


def normalise_name(value: object) -> str:
    s = str(value).strip()
    return "" if s in ("nan", "None", "<NA>") else " ".join(s.casefold().split())


@functools.cache
def hcat3_names() -> dict[str, str]:
    """HCAT3 code → name."""
    import pandas as pd

    t = pd.read_csv(HERE / "hcat3.csv", dtype=str)
    return dict(zip(t.code, t.name))


def available_lists() -> list[str]:
    return sorted(p.stem for p in CODE_LISTS.glob("*.csv") if p.stem != "eolab_additions")


@functools.cache
def code_list(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(by code, by name) lookups to HCAT3 codes for one shipped list, with eolab's additions.
    The first row wins where a code repeats (the tables list the current year first)."""
    import pandas as pd

    from eolab.errors import EolabError

    path = CODE_LISTS / f"{name}.csv"
    if not path.exists():
        raise EolabError(f"unknown crop-code list {name!r}", hint="shipped lists: " + ", ".join(available_lists()))
    t = pd.read_csv(path, dtype=str, keep_default_na=False)
    extra = pd.read_csv(CODE_LISTS / "eolab_additions.csv", dtype=str, keep_default_na=False)
    t = pd.concat([t, extra[extra.list == name][["code", "name", "hcat3_code"]]], ignore_index=True)
    by_code, by_name = {}, {}
    for code, label, h in zip(t.code, t.name, t.hcat3_code):
        if normalise_code(code):
            by_code.setdefault(normalise_code(code), h)
        if normalise_name(label):
            by_name.setdefault(normalise_name(label), h)
    return by_code, by_name


def map_crops(codes, names, *, list_name: str, key: str = "code") -> list[str]:
    """HCAT3 code per declared crop ('' where the list has none). key: 'code', 'name' or 'code,name'
    (the code first, then the name)."""
    by_code, by_name = code_list(list_name)
    keys = [k.strip() for k in key.split(",")]
    out = []
    for c, n in zip(codes, names):
        h = ""
        for k in keys:
            h = by_code.get(normalise_code(c), "") if k == "code" else by_name.get(normalise_name(n), "")
            if h:
                break
        out.append(h)
    return out


def clean_hcat3(value: object) -> str:
    """A 10-digit HCAT3 code or '' (for codes taken from a file's own column)."""
    s = normalise_code(value)
    return s if s in hcat3_names() else ""


def category(hcat3: object) -> str:
    """The CAP category of an HCAT3 code: grassland, fallow, permanent crops, not agricultural,
    arable — or '' when the code is unknown."""
    h = clean_hcat3(hcat3)
    if not h:
        return ""
    if h.startswith(("3302",) + _GREEN_GRASS):
        return GRASSLAND
    if h == "3301110000":
        return FALLOW
    if h.startswith("3303"):
        return PERMANENT
    if h[:4] in ("3306", "3307", "3308", "3399"):
        return NOT_AGRICULTURAL
    if h.startswith("3301"):
        return ARABLE
    return "other"


def season(hcat3: object) -> str:
    """'winter', 'spring' or '' (not given / not a sown crop)."""
    h = clean_hcat3(hcat3)
    if not h.startswith("3301"):
        return ""
    if h.startswith(_SUMMER):
        return "spring"
    name = hcat3_names()[h]  # HCAT3 names the season: winter_…, spring_… / summer_…
    return "winter" if name.startswith("winter_") else "spring" if name.startswith(("spring_", "summer_")) else ""


def crop_group(hcat3: object) -> str:
    """The crop group the CAP red rule compares (see the module doc); 'other' for unknown codes."""
    h = clean_hcat3(hcat3)
    cat = category(h)
    if cat != ARABLE:
        return cat or "other"
    if h.startswith("330101") and not h.startswith("33010106"):
        s = season(h)
        return f"{s} cereals" if s else "cereals"
    if h.startswith("33010604"):
        return "oilseed rape"
    if h.startswith(_SUMMER):
        return "summer crops"
    return "other arable"


def is_grassland(hcat3: object) -> bool:
    return category(hcat3) == GRASSLAND


@functools.cache
def _name_index() -> dict[str, str]:
    """Demo crop names and HCAT3 names → HCAT3 code (for tables that carry names only)."""
    _, by_name = code_list("eolab_demo")
    out = {v: k for k, v in hcat3_names().items()}
    out.update(by_name)
    return out


def hcat3_of_name(name: object) -> str:
    """HCAT3 code of a demo crop name or an HCAT3 name ('' otherwise)."""
    return _name_index().get(normalise_name(name), "")
