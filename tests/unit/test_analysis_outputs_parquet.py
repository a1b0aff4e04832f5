"""GeoParquet outputs of the templates: geometry, columns and CRS round-trip, provenance embedded."""

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pystac
import pytest
from shapely.geometry import box

from eolab import ids, provenance
from eolab.analysis import outputs
from eolab.errors import EolabError


def _record():
    items = []
    for i, provider in enumerate(["pannonia", "danube"]):
        item = pystac.Item(f"S2_{i}", box(20, 47, 20.1, 47.1).__geo_interface__, [20, 47, 20.1, 47.1],
                           dt.datetime(2026, 5, 1 + i), {}, collection="sentinel-2-l2a")
        item.properties[ids.PROVIDER_PROPERTY] = provider
        items.append(item)
    return provenance.record(items, workflow="cap-parcel-checks", parameters={"min_pixels": np.int64(8)})


def _parcels():
    return gpd.GeoDataFrame(
        {"parcel_id": ["a", "b", "c"], "light": ["green", "red", "yellow"], "p_declared": [0.9, 0.1, np.nan],
         "reasons": ["consistent", "images look like maize", "only 3 clear observations (< 6)"]},
        geometry=[box(0, 0, 100, 50), box(100, 0, 180, 50), box(0, 50, 20, 200)], crs="EPSG:32634")


def test_write_table_writes_geoparquet_that_round_trips_with_provenance(tmp_path):
    gdf, rec = _parcels(), _record()
    files = outputs.write_table(gdf, tmp_path / "out" / "cap_checks.gpkg", rec)
    assert [f.name for f in files] == ["cap_checks.gpkg", "cap_checks.parquet"]
    back = gpd.read_parquet(files[1])
    assert back.crs.to_epsg() == 32634
    assert back.drop(columns="geometry").equals(gdf.drop(columns="geometry"))
    assert back.geometry.geom_equals(gdf.geometry).all()
    embedded = outputs.read_parquet_provenance(files[1])
    assert [i["id"] for i in embedded["items"]] == ["S2_0", "S2_1"]
    assert embedded["parameters"] == {"min_pixels": 8} and embedded["outputs"] == ["cap_checks.parquet"]
    assert embedded["workflow"] == "cap-parcel-checks"
    side = provenance.read(files[1])  # the sidecar carries the same record
    assert side["items"] == embedded["items"] and side["outputs"] == embedded["outputs"]
    assert b"geo" in pq.read_schema(files[1]).metadata  # still GeoParquet for other readers
    assert not list((tmp_path / "out").glob("*partial*"))


def test_embedded_record_survives_without_the_sidecar(tmp_path):
    path = outputs.write_geoparquet(_parcels(), tmp_path / "checks.parquet", _record())
    provenance.sidecar_path(path).unlink()
    assert outputs.read_parquet_provenance(path)["collections"] == ["danube|sentinel-2-l2a",
                                                                     "pannonia|sentinel-2-l2a"]
    assert provenance.read(path) == outputs.read_parquet_provenance(path)  # the generic reader finds it too
    assert len(gpd.read_parquet(path)) == 3


def test_wrong_suffix_and_plain_parquet_are_errors(tmp_path):
    with pytest.raises(EolabError, match="end in .parquet"):
        outputs.write_geoparquet(_parcels(), tmp_path / "checks.gpkg", _record())
    plain = tmp_path / "plain.parquet"
    _parcels().to_parquet(plain)
    with pytest.raises(EolabError, match="no embedded eolab provenance"):
        outputs.read_parquet_provenance(plain)



@pytest.mark.parametrize("named_index", [False, True])
def test_a_table_written_part_by_part_reads_back_whole(tmp_path, monkeypatch, named_index):
    """Country-size tables are written a part at a time (the memory of one part): the files hold every
    row in order, a column empty in the first part keeps its type, the GeoParquet 'geo' metadata has
    the whole table's bbox and geometry types, and a named index survives."""
    from shapely.geometry import Point

    monkeypatch.setattr(outputs, "ROWS_PER_PART", 3)
    n = 10
    gdf = gpd.GeoDataFrame(
        {"parcel_id": [f"P{i}" for i in range(n)], "area": np.arange(n) * 1.5,
         "note": [None] * 4 + [f"note {i}" for i in range(4, n)]},
        geometry=[box(i * 10, 0, i * 10 + 5, 5) for i in range(n - 1)] + [Point(500, 500)], crs="EPSG:32634")
    if named_index:
        gdf = gdf.set_index("parcel_id")
    files = outputs.write_table(gdf, tmp_path / "t.gpkg", _record())
    back_gpkg = gpd.read_file(files[0])
    back_parquet = gpd.read_parquet(files[1])
    expected = gdf.reset_index() if named_index else gdf
    assert list(back_gpkg["note"]) == list(expected["note"]) and list(back_gpkg["area"]) == list(expected["area"])
    assert back_gpkg.geometry.equals(expected.geometry.reset_index(drop=True))
    if named_index:
        assert list(back_parquet.index) == list(gdf.index) and back_parquet.index.name == "parcel_id"
        back_parquet = back_parquet.reset_index()
    assert list(back_parquet.columns) == list(expected.columns)
    assert back_parquet.drop(columns="geometry").equals(expected.drop(columns="geometry"))
    assert back_parquet.geometry.equals(expected.geometry) and back_parquet.crs == gdf.crs
    meta = pq.ParquetFile(files[1])
    assert meta.num_row_groups == 4 and meta.schema_arrow.field("note").type == "string"
    import json
    geo = json.loads(meta.schema_arrow.metadata[b"geo"])["columns"]["geometry"]
    assert geo["bbox"] == [0.0, 0.0, 500.0, 500.0] and geo["geometry_types"] == ["Point", "Polygon"]
    assert outputs.read_parquet_provenance(files[1])["workflow"] == "cap-parcel-checks"


def test_parts_share_the_tables_geometry_type(tmp_path, monkeypatch):
    """Polygons in the first part, a MultiPolygon later: the GeoPackage layer is MultiPolygon (as
    written whole), not a Polygon layer holding a MultiPolygon."""
    import pyogrio
    from shapely.geometry import MultiPolygon

    monkeypatch.setattr(outputs, "ROWS_PER_PART", 2)
    shapes = [box(i, 0, i + 0.5, 1) for i in range(4)] + [MultiPolygon([box(10, 0, 11, 1), box(12, 0, 13, 1)])]
    gdf = gpd.GeoDataFrame({"parcel_id": list("abcde")}, geometry=shapes, crs="EPSG:32634")
    path = outputs.write_table(gdf, tmp_path / "m.gpkg", _record())[0]
    assert pyogrio.read_info(path, layer="m")["geometry_type"] == "MultiPolygon"
    back = gpd.read_file(path, layer="m")
    assert back.geometry.area.round(6).tolist() == gdf.geometry.area.round(6).tolist()


def test_object_columns_are_typed_from_all_their_values_and_a_failed_write_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "ROWS_PER_PART", 2)
    gdf = _parcels()
    gdf["mixed"] = np.array([1, 2, 2.5], dtype=object)  # ints first, a float later
    files = outputs.write_table(gdf, tmp_path / "t.gpkg", _record())
    assert gpd.read_parquet(files[1])["mixed"].tolist() == [1.0, 2.0, 2.5]
    before = {f: f.read_bytes() for f in files}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "_parquet_schema", broken)  # at the first part
    with pytest.raises(OSError):
        outputs.write_table(gdf.assign(light="red"), tmp_path / "t.gpkg", _record())
    assert {f: f.read_bytes() for f in files} == before  # not a new GeoPackage beside the old GeoParquet
    assert not list(tmp_path.glob("*.partial.*"))


def _given_in_parts(gdf, sizes):
    at = 0
    for n in sizes:
        yield gdf.iloc[at:at + n]
        at += n


def test_a_table_given_part_by_part_is_written_as_if_whole(tmp_path):
    """TableWriter: the parts' column types come from the first rows where every column has a value
    (a column empty in the first parts is not typed 'null'), the files equal write_table of the whole
    table, and the 'geo' metadata carries the bbox and types given up front."""
    gdf = _parcels()
    gdf = gpd.GeoDataFrame(pd.concat([gdf] * 4, ignore_index=True), crs=gdf.crs)
    gdf["note"] = [None] * 7 + [f"n{i}" for i in range(7, 12)]  # empty in the first two parts
    gdf["flag"] = [i % 2 == 0 for i in range(12)]
    whole = outputs.write_table(gdf, tmp_path / "whole" / "t.gpkg", _record())
    types, bbox = outputs.geometry_summary(gdf.geometry)
    with outputs.TableWriter(tmp_path / "parts" / "t.gpkg", _record(), geometry_types=types, bbox=bbox) as writer:
        for part in _given_in_parts(gdf, [3, 3, 0, 4, 2]):
            writer.write(part)
            assert not (tmp_path / "parts" / "t.parquet").exists()  # in place only when both are written
    assert [p.name for p in writer.paths] == ["t.gpkg", "t.parquet"] and writer.rows == 12
    a, b = gpd.read_parquet(whole[1]), gpd.read_parquet(writer.paths[1])
    pd.testing.assert_frame_equal(a, b)
    assert b["note"].tolist()[6:8] == [None, "n7"] and b["flag"].dtype == bool
    assert pq.read_schema(writer.paths[1]).metadata[b"geo"] == pq.read_schema(whole[1]).metadata[b"geo"]
    pd.testing.assert_frame_equal(gpd.read_file(whole[0], layer="t"), gpd.read_file(writer.paths[0], layer="t"))
    assert outputs.read_parquet_provenance(writer.paths[1])["outputs"] == ["t.parquet"]
    assert provenance.read(writer.paths[0])["workflow"] == "cap-parcel-checks"


@pytest.mark.parametrize("wrong", ["columns", "types", "bbox", "geometry", "raised"])
def test_a_part_that_does_not_fit_is_refused_and_the_earlier_files_stay(tmp_path, wrong):
    from shapely.geometry import Point

    gdf = _parcels()
    path = tmp_path / "t.gpkg"
    before = outputs.write_table(gdf, path, _record())
    saved = {f: f.read_bytes() for f in before}
    types, bbox = outputs.geometry_summary(gdf.geometry)
    late = gdf.iloc[2:].copy()
    if wrong == "columns":
        late = late.rename(columns={"light": "colour"})
    elif wrong == "types":
        late["p_declared"] = ["high"]
    elif wrong == "bbox":
        late["geometry"] = [box(1000, 0, 1100, 50)]
    elif wrong == "geometry":
        late["geometry"] = [Point(10, 10)]
    message = {"columns": "the columns", "types": "column types", "bbox": "outside the declared bbox",
               "geometry": "geometry types", "raised": "stopped"}[wrong]
    with pytest.raises((EolabError, RuntimeError), match=message):
        with outputs.TableWriter(path, _record(), geometry_types=types, bbox=bbox) as writer:
            writer.write(gdf.iloc[:2])
            if wrong == "raised":
                raise RuntimeError("stopped")
            writer.write(late)
    assert {f: f.read_bytes() for f in before} == saved
    assert not list(tmp_path.glob("*.partial.*"))


def test_a_table_without_rows_still_names_its_columns(tmp_path):
    gdf = _parcels().iloc[:0]
    files = outputs.write_table(gdf, tmp_path / "empty.gpkg", _record())
    back = gpd.read_parquet(files[1])
    assert len(back) == 0 and list(back.columns) == list(gdf.columns)
    with pytest.raises(EolabError, match="no rows or columns"):
        with outputs.TableWriter(tmp_path / "none.gpkg", _record(), geometry_types=[], bbox=[0, 0, 0, 0]):
            pass
    assert not list(tmp_path.glob("none*"))


def test_a_column_empty_throughout_does_not_hold_the_table(tmp_path, monkeypatch):
    """Claims without farmer ids: the writer does not wait for a value that never comes. Named in
    null_columns it writes each part as it comes; unnamed, it holds at most MAX_HELD_ROWS rows."""
    gdf = _parcels()
    gdf = gpd.GeoDataFrame(pd.concat([gdf] * 3, ignore_index=True), crs=gdf.crs).assign(farmer_id=None)
    types, bbox = outputs.geometry_summary(gdf.geometry)
    monkeypatch.setattr(outputs, "MAX_HELD_ROWS", 4)
    for null_columns, groups in ((["farmer_id"], 3), ((), 2)):
        with outputs.TableWriter(tmp_path / "t.gpkg", _record(), geometry_types=types, bbox=bbox,
                                 null_columns=null_columns) as writer:
            for part in _given_in_parts(gdf, [3, 3, 3]):
                writer.write(part)
        assert pq.ParquetFile(writer.paths[1]).metadata.num_row_groups == groups
        back = gpd.read_parquet(writer.paths[1])
        assert back["farmer_id"].isna().all() and back["light"].tolist() == gdf["light"].tolist()


def test_a_refused_part_leaves_the_writer_abandoned_saying_why(tmp_path):
    gdf = _parcels()
    types, bbox = outputs.geometry_summary(gdf.geometry)
    writer = outputs.TableWriter(tmp_path / "t.gpkg", _record(), geometry_types=types, bbox=bbox)
    with pytest.raises(EolabError, match="column types"):
        writer.write(gdf.iloc[:1])
        writer.write(gdf.iloc[1:].assign(p_declared="high"))
    for action in (lambda: writer.write(gdf.iloc[2:]), writer.close):
        with pytest.raises(EolabError, match="abandoned after an error: .*p_declared") as err:
            action()
        assert "start a new TableWriter" in err.value.hint
    assert not list(tmp_path.iterdir())


def test_3d_outlines_index_and_empty_parts_are_written_as_write_table_did(tmp_path):
    """Polygon Z with MultiPolygon Z makes a MultiPolygon Z layer; a named index goes into both files
    or neither; a table given only empty parts keeps its CRS and column types."""
    import pyogrio
    from shapely.geometry import MultiPolygon, Polygon

    z = [Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1)]),
         MultiPolygon([Polygon([(2, 0, 1), (3, 0, 1), (3, 1, 1)]), Polygon([(4, 0, 1), (5, 0, 1), (5, 1, 1)])])]
    gdf = gpd.GeoDataFrame({"a": [1, 2]}, geometry=z, crs="EPSG:32634",
                           index=pd.Index(["p", "q"], name="parcel_id"))
    path = outputs.write_table(gdf, tmp_path / "z.gpkg", _record())[0]
    assert pyogrio.read_info(path, layer="z")["geometry_type"] == "MultiPolygon Z"
    types, bbox = outputs.geometry_summary(gdf.geometry)
    for index, columns in ((False, ["a", "geometry"]), (True, ["parcel_id", "a", "geometry"])):
        with outputs.TableWriter(tmp_path / f"i{index}.gpkg", _record(), geometry_types=types, bbox=bbox,
                                 index=index) as writer:
            writer.write(gdf.iloc[:1])
            writer.write(gdf.iloc[1:])
        assert list(gpd.read_file(writer.paths[0], layer=f"i{index}").columns) == columns
        back = gpd.read_parquet(writer.paths[1])
        assert list(back.reset_index().columns if index else back.columns) == columns
    with outputs.TableWriter(tmp_path / "e.gpkg", _record(), geometry_types=[], bbox=[0, 0, 0, 0]) as writer:
        writer.write(gdf.iloc[:0].rename_geometry("geom"))
    back = gpd.read_parquet(writer.paths[1])
    assert len(back) == 0 and back.crs == gdf.crs and back["a"].dtype == np.int64


@pytest.mark.parametrize("index, written", [
    (pd.RangeIndex(3), False),                       # the default
    (pd.Index([0, 1, 2]), False),                    # the default, not as a RangeIndex (e.g. after concat)
    (pd.RangeIndex(5, 8), False),                    # a slice of a default
    (pd.Index([2, 0, 1]), True),                     # an order of its own is data
    (pd.Index(["x", "y", "z"], name="parcel"), True),
    (pd.RangeIndex(3, name="row"), True),            # named: data
])
def test_every_writer_keeps_the_index_by_one_rule(tmp_path, index, written):
    gdf = _parcels().set_axis(index)
    rec = _record()
    gpkg, parquet = outputs.write_table(gdf, tmp_path / "t.gpkg", rec)
    alone = outputs.write_geoparquet(gdf, tmp_path / "alone" / "t.parquet", rec)
    with outputs.TableWriter(tmp_path / "parts" / "t.gpkg", rec, geometry_types=["Polygon"],
                             bbox=gdf.total_bounds) as writer:
        writer.write(gdf.iloc[:2])
        writer.write(gdf.iloc[2:])
    plain = list(gdf.columns)
    for path in (parquet, alone, writer.paths[1]):
        extra = [c for c in pq.read_schema(path).names if c not in plain]
        assert len(extra) == written, (path, extra)
        if written:
            assert list(pd.read_parquet(path).index) == list(index)
    for path in (gpkg, writer.paths[0]):
        extra = [c for c in gpd.read_file(path).columns if c not in plain]
        assert len(extra) == written, (path, extra)


def test_a_failed_move_into_place_leaves_both_earlier_files(tmp_path, monkeypatch):
    # the GeoPackage is moved first; if the GeoParquet's move then fails, the new GeoPackage must
    # not stay beside the old GeoParquet
    from pathlib import Path

    path = tmp_path / "t.gpkg"
    before = outputs.write_table(_parcels(), path, _record())
    saved = {f: f.read_bytes() for f in before}
    real = Path.replace

    def replace(self, target):
        if self.name == "t.partial.parquet":
            raise OSError("disk full")
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        outputs.write_table(_parcels().iloc[:2], path, _record())
    assert {f: f.read_bytes() for f in before} == saved
    assert sorted(f.name for f in tmp_path.iterdir() if "t." in f.name and "json" not in f.name) == ["t.gpkg", "t.parquet"]
    monkeypatch.setattr(Path, "replace", real)
    again = outputs.write_table(_parcels().iloc[:2], path, _record())  # the next write goes through
    assert len(gpd.read_parquet(again[1])) == 2 and len(gpd.read_file(again[0])) == 2
