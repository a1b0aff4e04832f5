"""Real national parcel files (../shared/data/parcels) ingest into the common claims schema."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from eolab.analysis import cap, claims
from eolab.errors import EolabError

SHARED = Path(__file__).parents[2].parent / "shared" / "data"
PARCELS = SHARED / "parcels"
pytestmark = pytest.mark.skipif(not PARCELS.is_dir(), reason=f"real parcel files not present at {PARCELS}")

EXPECTED = {"at": "at-inspire-schlaege", "de_bb": "de-bb-antrag", "dk": "dk-marker", "ec_si": "si-eurocrops",
            "fi": "fi-kasvulohko", "nl": "nl-brp"}


def files():
    return sorted(p for d in PARCELS.iterdir() if d.is_dir() for p in d.iterdir() if p.is_file())


@pytest.mark.parametrize("path", files() if PARCELS.is_dir() else [], ids=lambda p: p.parent.name)
def test_every_national_file_ingests_into_the_common_schema(path, tmp_path):
    out = claims.ingest(path, tmp_path / "claims.gpkg")
    c = claims.read_claims(out)  # the common schema reads back as the eolab schema itself
    raw = claims.read_claims(path)
    assert raw.schema.iloc[0] == EXPECTED[path.parent.name]
    assert list(raw.columns[:7]) == claims.COLUMNS
    assert raw.parcel_id.is_unique and (raw.area_declared_ha > 0).all()
    assert raw.crop_code.str.len().min() > 0 and raw.crop_name.str.len().min() > 0
    # landscape elements (NL: 47, DE-BB: 14, AT: 20 of 100 rows) and DE-BB's non-eligible features are
    # set aside as not claims; at least half of each file is crop claims
    assert len(c) == len(raw) >= 50
    assert (c.hcat3_code == raw.hcat3_code).all()  # the HCAT3 code travels with the written claims
    info = raw.attrs["eolab:ingest"]
    assert info["rows_read"] == 100 and info["claims"] + info["not_claims"] == 100
    # every file's own CRS is kept and is metric: screening works on it directly
    screen = cap.screen_parcels(raw)
    assert screen.area_ha.sum() > 0
    print(f"{path.parent.name}: {len(raw)} claims ({info['not_claims']} non-claims), "
          f"{int(screen.monitorable.sum())} monitorable at 10 m, CRS {raw.crs.to_epsg()}")


def test_a_truncated_real_file_gives_a_clear_error_and_no_output(tmp_path):
    src = PARCELS / "dk" / "Marker_2026.zip"
    broken = tmp_path / "Marker_broken.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(broken, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data[: len(data) // 3] if name.endswith(".shp") else data)
    out = tmp_path / "out.gpkg"
    with pytest.raises(EolabError, match="Marker_broken.zip"):
        claims.ingest(broken, out)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    renamed = tmp_path / "renamed.gpkg"
    shutil.copy(PARCELS / "nl" / "brpgewaspercelen_definitief_2023.gpkg", renamed)
    import geopandas as gpd

    g = gpd.read_file(renamed).rename(columns={"gewas": "crop", "gewascode": "code_x"})
    g.to_file(tmp_path / "odd.gpkg")
    with pytest.raises(EolabError, match="unknown parcel schema; columns found: category, code_x, crop, jaar, status"):
        claims.ingest(tmp_path / "odd.gpkg", out)
