"""The country map: every parcel of a run from its GeoParquet as one lonboard polygon layer coloured
by light, no CDN base map, and a click (the layer's selected_index) shows that parcel's dossier."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

pytest.importorskip("lonboard")

from eolab.analysis import dossier  # noqa: E402
from eolab.widgets.country_map import LIGHT_RGBA, CountryMap, light_colours  # noqa: E402


def _results(tmp_path, n=20_000):
    side = int(np.ceil(np.sqrt(n)))
    x = 500000 + (np.arange(n) % side) * 120.0
    y = 5000000 - (np.arange(n) // side) * 120.0
    g = gpd.GeoDataFrame({"parcel_id": [f"26-1/{i}" for i in range(n)],
                          "light": np.array(["green", "yellow", "red"])[np.arange(n) % 3], "reasons": "x"},
                         geometry=shapely.box(x, y, x + 100, y + 100), crs="EPSG:32634")
    path = tmp_path / "cap_checks.parquet"
    g.to_parquet(path)
    return path


def test_colours_by_light():
    c = light_colours(["red", "green", "yellow", "unknown"])
    assert c.dtype == np.uint8 and c.shape == (4, 4)
    assert tuple(c[0]) == LIGHT_RGBA["red"] and tuple(c[1]) == LIGHT_RGBA["green"] and c[3, 0] == 128


def test_all_parcels_on_one_layer_and_a_click_shows_the_dossier(tmp_path, monkeypatch):
    monkeypatch.delenv("EOLAB_TILES_URL", raising=False)
    path = _results(tmp_path)
    folder = tmp_path / "dossiers"
    folder.mkdir()
    (folder / dossier.file_name("26-1/5")).write_text("<html><body>dossier of 26-1/5</body></html>")
    m = CountryMap(path, dossiers=folder)
    assert len(m.table) == 20_000 and m.table.crs.is_geographic
    assert m.layer.table.num_rows == 20_000 and m.layer.pickable
    import pyarrow as pa

    fill = m.layer.get_fill_color
    fill = pa.chunked_array(fill) if hasattr(fill, "__arrow_c_stream__") else pa.array(fill)
    colours = np.concatenate([c.flatten().to_numpy() for c in getattr(fill, "chunks", [fill])]).reshape(-1, 4)
    assert colours.shape == (20_000, 4) and tuple(colours[2]) == LIGHT_RGBA["red"]
    assert m.map.basemap is None  # no CDN style; the base layer is the project's tile service
    m.layer.selected_index = 5  # what a click in the browser sets
    assert m.parcel_id == "26-1/5" and "dossier of 26-1/5" in m.dossier.value and "srcdoc" in m.dossier.value
    m.layer.selected_index = 3
    assert m.parcel_id == "26-1/3" and "no dossier" in m.dossier.value
    assert CountryMap(path, dossiers=lambda pid: f"<b>{pid}</b>").select(7) == "26-1/7"


def test_focus_centres_a_parcel_and_names_an_unknown_one(tmp_path, monkeypatch):
    from eolab.errors import EolabError

    monkeypatch.delenv("EOLAB_TILES_URL", raising=False)
    m = CountryMap(_results(tmp_path, n=400), height=600)
    west, south, east, north = m.table.total_bounds
    vs = m.map.view_state
    assert west < vs.longitude < east and south < vs.latitude < north
    m.focus("26-1/399")
    one = m.table.geometry.iloc[399]
    vs2 = m.map.view_state
    assert vs2.zoom > vs.zoom + 3  # one 100 m parcel vs. 20 × 20 of them
    assert one.bounds[0] < vs2.longitude < one.bounds[2] and one.bounds[1] < vs2.latitude < one.bounds[3]
    with pytest.raises(EolabError, match="nope"):
        m.focus("nope")
