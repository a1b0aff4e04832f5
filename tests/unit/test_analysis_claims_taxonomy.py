"""Claim schemas as data files (packaged + EOLAB_CLAIMS_SCHEMA_DIR), GeoParquet/fiboa, encoding checks,
the HCAT3 taxonomy and the CAP categories read from it (no shared data needed)."""

import subprocess
import sys
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from shapely.geometry import box

from eolab.analysis import cap, claims, taxonomy
from eolab.demo import _parcels
from eolab.errors import EolabError

LT = ["Žieminiai javai", "Vasariniai javai", "Daugiametės žolės", "Ganyklos-pievos virš 5m.", "Kukurūzai"]

LT_SCHEMA = """
name: lt-test
country: LT
detect: [KODAS, PASELIS, PLOTAS]
columns:
  parcel_id: KODAS
  crop_code: PASELIS
  crop_name: PASELIS
  area: {column: PLOTAS, unit: ha}
  year: {value: 2021}
not_claims:
  - when: {PASELIS: [Pastatai]}
    reason: buildings
taxonomy: {code_list: lt_2021, key: name}
"""


def _gdf(df, crs="EPSG:3346"):
    return gpd.GeoDataFrame(df, geometry=[box(0, 0, 200, 200 + i) for i in range(len(df))], crs=crs)


def _lt(n_extra_building=True):
    names = LT + (["Pastatai"] if n_extra_building else [])
    return _gdf(pd.DataFrame({"KODAS": [f"LT{i}" for i in range(len(names))], "PASELIS": names,
                              "PLOTAS": [4.0] * len(names)}))


def test_every_packaged_schema_file_loads_and_names_a_shipped_code_list():
    names = {s.name for s in claims.SCHEMAS}
    assert {"eolab-demo", "eolab-claims", "fiboa", "si-eurocrops", "at-inspire-schlaege", "nl-brp", "dk-marker",
            "fi-kasvulohko", "de-bb-antrag"} <= names
    for s in claims.SCHEMAS:
        assert s.source.endswith(".yaml") and s.required
        if "code_list" in s.taxonomy:
            assert s.taxonomy["code_list"] in taxonomy.available_lists()
    assert len([n for n in taxonomy.available_lists() if not n.startswith("eolab")]) == 27


def test_a_schema_file_dropped_into_the_configured_folder_reads_a_new_country(tmp_path, monkeypatch):
    path = tmp_path / "lt.gpkg"
    _lt().to_file(path)
    with pytest.raises(EolabError, match="unknown parcel schema; columns found: KODAS, PASELIS, PLOTAS") as err:
        claims.read_claims(path)
    assert "EOLAB_CLAIMS_SCHEMA_DIR" in str(err.value) and str(claims.SCHEMA_DIR) in str(err.value)
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "lt.yaml").write_text(LT_SCHEMA, encoding="utf-8")
    monkeypatch.setenv("EOLAB_CLAIMS_SCHEMA_DIR", str(folder))
    c = claims.read_claims(path)
    assert c.schema.iloc[0] == "lt-test" and c.country.iloc[0] == "LT" and (c.year == 2021).all()
    info = c.attrs["eolab:ingest"]
    assert info["claims"] == 5 and info["not_claims"] == 1 and info["not_claims_by_reason"] == {"buildings": 1}
    # the Lithuanian list is keyed by name; its names were repaired (cp1257 read as cp1252 in the source)
    assert (c.hcat3_code != "").all() and info["hcat3_share"] == 1.0
    assert c.hcat3_name.tolist()[:2] == ["winter_unspecified_cereals", "summer_unspecified_cereals"]
    assert cap.grassland_mask(c).tolist() == [False, False, True, True, False]


def test_a_malformed_schema_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("name: x\ndetect: [a]\ncolumns: {crop_code: a}\n")
    monkeypatch.setenv("EOLAB_CLAIMS_SCHEMA_DIR", str(tmp_path))
    with pytest.raises(EolabError, match=r"bad.yaml lacks columns.parcel_id, taxonomy.code_list"):
        claims.schemas()
    monkeypatch.setenv("EOLAB_CLAIMS_SCHEMA_DIR", str(tmp_path / "nope"))
    with pytest.raises(EolabError, match="claims schema folder .*nope does not exist"):
        claims.schemas()


def test_unknown_file_error_names_columns_and_schema_folder_and_writes_nothing(tmp_path):
    path = tmp_path / "odd.parquet"
    _gdf(pd.DataFrame({"fid": [1, 2], "kultura": ["a", "b"]})).to_parquet(path)
    out = tmp_path / "out" / "claims.parquet"
    with pytest.raises(EolabError) as err:
        claims.ingest(path, out)
    text = str(err.value)
    assert "unknown parcel schema; columns found: fid, kultura" in text and str(claims.SCHEMA_DIR) in text
    assert not out.exists() and not (tmp_path / "out").exists()
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(EolabError, match="cannot read parcel file broken.parquet"):
        claims.ingest(tmp_path / "broken.parquet", out)
    assert not out.exists()


def test_text_read_with_the_wrong_code_page_is_named_with_its_repair(tmp_path, monkeypatch):
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "lt.yaml").write_text(LT_SCHEMA, encoding="utf-8")
    monkeypatch.setenv("EOLAB_CLAIMS_SCHEMA_DIR", str(folder))
    shp = tmp_path / "lt.shp"
    _lt(False).to_file(shp, encoding="cp1257")
    shp.with_suffix(".cpg").unlink(missing_ok=True)  # as published without a code page: GDAL reads Latin-1
    with pytest.warns(claims.ClaimsWarning, match=r"cp1257 text read as cp1252.*encoding='cp1257'"):
        bad = claims.read_claims(shp)
    assert "Þieminiai javai" in bad.crop_name.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("error", claims.ClaimsWarning)
        good = claims.read_claims(shp, encoding="cp1257")
    assert good.crop_name.tolist() == LT and (good.hcat3_code != "").all()
    assert claims.check_text(["GrÃ¼nbrache"])[0].startswith("1 values of names look mis-decoded (utf-8 text read as")
    assert "lost when the file was exported" in claims.check_text(["p?enica (ozimna)"])[0]
    assert claims.check_text(["Grünbrache", "Vårbyg", "What?"]) == []


def test_a_central_european_code_page_is_not_advised_as_western(tmp_path):
    """Slovenian names in cp1250 read as Latin-1: ftfy sees "windows-1252 read as latin-1", and that
    advice left 'Jeèmen' garbled with no warning. Each code page's reading is shown instead."""
    names = ["Pšenica ozimna", "Ječmen", "Oljna ogrščica", "Sončnica"]
    g = gpd.GeoDataFrame({"parcel_id": [f"p{i}" for i in range(4)], "crop_code": ["1", "2", "3", "4"],
                          "crop_name": names, "area_declared_ha": [4.0] * 4},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(4)], crs="EPSG:3794")
    shp = tmp_path / "si.shp"
    g.to_file(shp, encoding="cp1250")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    with pytest.warns(claims.ClaimsWarning, match=r"a Windows code page read as Latin-1.*encoding='cp1252' gives "
                                                  r"'Oljna ogršèica'; encoding='cp1250'.* gives 'Oljna ogrščica'"):
        claims.read_claims(shp)
    # where the code pages read an example alike, they are named together (no one is advised alone)
    said = claims.check_text(["Bl\xe9 d\x92hiver"])[0]
    assert "encoding='cp1252'/'cp1250'/'cp1257' gives" in said or "'cp1252'/'cp1250'" in said, said
    assert claims.read_claims(shp, encoding="cp1250").crop_name.tolist() == names
    shp.with_suffix(".cpg").write_text("UTF-8")  # a .cpg that names the wrong code page
    with pytest.raises(EolabError, match="cannot read the text of parcel file si.shp") as err:
        claims.read_claims(shp)
    assert "encoding='cp1250'" in err.value.hint
    assert claims.read_claims(shp, encoding="cp1250").crop_name.tolist() == names


def test_claims_round_trip_through_fiboa_geoparquet(tmp_path):
    src = tmp_path / "demo.gpkg"
    _gdf(pd.DataFrame({"parcel_id": ["a", "b", "c"], "farmer_id": ["f", "f", "g"], "crop_code": [1110, 6100, 1510],
                       "crop_name": ["winter_wheat", "grassland", "maize"], "area_declared_ha": [4.0, 4.0, 4.0]}),
         "EPSG:32634").to_file(src)
    out = claims.ingest(src, tmp_path / "claims.parquet")
    meta = pq.read_schema(out).metadata
    assert b"fiboa" in meta and b"geo" in meta
    cols = pq.read_schema(out).names
    assert {"id", "area", "crop:code", "crop:name", "ec:hcat_code", "ec:hcat_name"} <= set(cols)
    back = claims.read_claims(out)
    # read back through the fiboa schema, the claims keep the national schema they came from
    assert back.schema.iloc[0] == "eolab-demo" and back.parcel_id.tolist() == ["a", "b", "c"]
    assert back.hcat3_code.tolist() == ["3301010101", "3302000000", "3301010600"]
    assert back.country.tolist() == ["HU"] * 3 and back.farmer_id.tolist() == ["f", "f", "g"]


def test_cap_categories_come_from_hcat3_codes():
    cases = {"3301010101": ("winter cereals", "winter", "arable"), "3301010402": ("spring cereals", "spring", "arable"),
             "3301060401": ("oilseed rape", "winter", "arable"), "3301090400": ("summer crops", "spring", "arable"),
             "3302000000": ("grassland", "", "grassland"), "3301090100": ("grassland", "", "grassland"),
             "3301110000": ("fallow", "", "fallow"), "3303030200": ("permanent crops", "", "permanent crops"),
             "3306070000": ("not agricultural", "", "not agricultural"), "3301030000": ("other arable", "", "arable"),
             "bogus": ("other", "", "")}
    for code, (group, season, category) in cases.items():
        assert (taxonomy.crop_group(code), taxonomy.season(code), taxonomy.category(code)) == (group, season, category)


def test_demo_declares_through_its_code_list_and_keeps_its_crop_groups():
    # the groups the demo's CAP results were tuned with, formerly a table of demo names
    before = {"winter_wheat": "winter cereals", "winter_barley": "winter cereals", "rapeseed": "oilseed rape",
              "maize": "summer crops", "sunflower": "summer crops", "soybean": "summer crops", "grassland": "grassland"}
    assert cap.CROP_GROUPS == before
    codes = [str(_parcels.CROPS[n][0]) for n in _parcels.CROP_NAMES]
    hcat = taxonomy.map_crops(codes, _parcels.CROP_NAMES, list_name=_parcels.CODE_LIST)
    assert {n: taxonomy.crop_group(h) for n, h in zip(_parcels.CROP_NAMES, hcat)} == before
    assert [_parcels.CROPS[n][0] for n in _parcels.CROP_NAMES] == [1110, 1120, 1630, 1510, 1720, 1640, 6100]


def test_traffic_light_reads_grassland_and_groups_from_hcat3_not_names():
    # national names: a permanent meadow and a temporary ley are grassland; a fallow is not a failed crop
    g = gpd.GeoDataFrame({"crop_name": ["Mähwiese", "Wechselwiese", "Grünbrache", "Silomais"],
                          "hcat3_code": ["3302000000", "3301090100", "3301110000", "3301090400"],
                          "area_declared_ha": [4.0] * 4},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(4)], crs="EPSG:31287")
    s = cap.screen_parcels(g)
    classes = ["Grünbrache", "Mähwiese", "Silomais", "Wechselwiese"]
    proba = np.eye(4)[[1, 3, 0, 1]] * 0.9 + 0.025
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4, mowing=[[], [], [], []],
                            ndvi_max=[0.8, 0.8, 0.2, 0.8], min_growth=0.5)
    assert out.declared_group.tolist() == ["grassland", "grassland", "fallow", "summer crops"]
    assert ["no mowing" in r for r in out.reasons] == [True, True, False, False]
    assert "failed" not in out.reasons[2]
    # silage maize that looks like a meadow: another group with confidence → red
    assert out.light[3] == "red" and out.predicted_group[3] == "grassland"


def test_cli_claims_check(tmp_path):
    src = tmp_path / "dk.gpkg"
    _gdf(pd.DataFrame({"Marknr": ["1-0", "1-1"], "Journalnr": ["26-1", "26-1"], "CVR": [42.0, 42.0],
                       "Afgkode": [1.0, 252.0], "Afgroede": ["Vårbyg", "Permanent græs, normalt udbytte"],
                       "IMK_areal": [4.0, 4.0]}), "EPSG:25832").to_file(src)
    run = subprocess.run([sys.executable, "-m", "eolab", "claims", "check", str(src)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    for text in ("schema: dk-marker", "columns found: Marknr", "parcel_id  <- '/'.join(Journalnr, Marknr)",
                 "EuroCrops list dk_2019 by code", "crops mapped to HCAT3: 100.0%", "spring_barley",
                 "pasture_meadow_grassland_grass", "CAP groups: "):
        assert text in run.stdout, run.stdout
    odd = tmp_path / "odd.gpkg"
    _gdf(pd.DataFrame({"a": [1]})).to_file(odd)
    bad = subprocess.run([sys.executable, "-m", "eolab", "claims", "check", str(odd)], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "unknown parcel schema; columns found: a" in bad.stderr and "claims/schemas" in bad.stderr


def test_a_result_table_is_written_as_fiboa_geoparquet_atomically(tmp_path):
    result = _gdf(pd.DataFrame({"parcel_id": ["a", "b"], "crop_code": ["1110", "6100"],
                                "crop_name": ["winter_wheat", "grassland"], "hcat3_code": ["3301010101", "3302000000"],
                                "area_declared_ha": [4.0, 4.0], "light": ["green", "red"]}), "EPSG:32634")
    out = claims.write_fiboa(result.set_index("parcel_id"), tmp_path / "checks.parquet")
    back = gpd.read_parquet(out)
    assert back["id"].tolist() == ["a", "b"] and back["light"].tolist() == ["green", "red"]
    assert back["ec:hcat_code"].tolist() == ["3301010101", "3302000000"] and back.crs.to_epsg() == 32634
    with pytest.raises(EolabError, match="needs parcel ids"):
        claims.write_fiboa(result.drop(columns="parcel_id"), tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists() and not list(tmp_path.glob(".*partial*"))


def test_the_demo_claims_take_the_same_road_as_a_national_file(small_demo):
    c = claims.read_claims(small_demo / "claims" / "claims.gpkg")
    assert c.schema.iloc[0] == "eolab-demo" and c.attrs["eolab:ingest"]["taxonomy"] == "EuroCrops list eolab_demo by code"
    assert (c.hcat3_code != "").all()
    grass = (c.crop_name == "grassland").values
    assert (cap.grassland_mask(c) == grass).all() and (cap.arable_mask(c) == ~grass).all()
    groups = {n: cap.crop_group(n, h) for n, h in zip(c.crop_name, c.hcat3_code)}
    assert groups == {n: cap.CROP_GROUPS[n] for n in groups}


def _dk(n=4, **cols):
    """A small Danish Marker table (the dk-marker schema), 200 m squares of 4 ha."""
    df = pd.DataFrame({"Marknr": [f"{i}-0" for i in range(n)], "Journalnr": ["J1"] * n, "CVR": ["C1"] * n,
                       "Afgkode": [1, 2, 3, 252][:n], "Afgroede": ["Vårbyg", "Vinterbyg", "Vårhvede", "Permanent græs"][:n],
                       "IMK_areal": [4.0] * n})
    for k, v in cols.items():
        if v is None:
            df = df.drop(columns=k)
        else:
            df[k] = v
    return gpd.GeoDataFrame(df, geometry=[box(0, 300 * i, 200, 300 * i + 200) for i in range(n)], crs="EPSG:25832")


def test_hostile_claims_files_get_clear_errors_and_nothing_is_written(tmp_path):
    good = tmp_path / "good.gpkg"
    _dk().to_file(good)
    assert claims.read_claims(good).parcel_id.tolist() == ["J1/0-0", "J1/1-0", "J1/2-0", "J1/3-0"]

    # a GeoPackage with two parcel layers: which one is asked, not guessed
    two = tmp_path / "two.gpkg"
    _dk().to_file(two, layer="part1")
    _dk().to_file(two, layer="part2")
    with pytest.raises(EolabError, match="has 2 layers: part1, part2") as err:
        claims.read_claims(two)
    assert "--layer" in err.value.hint
    assert len(claims.read_claims(two, layer="part2")) == 4
    with pytest.raises(EolabError, match="no layer 'part3'"):
        claims.read_claims(two, layer="part3")

    # missing ids, points, a missing declared-area column: errors naming what is wrong
    cases = [(_dk(Marknr=[None, "1-0", "2-0", "3-0"]), r"1 parcels without a parcel id .*\(rows 0\)"),
             (_dk(IMK_areal=None), "the area column 'IMK_areal' is missing"),
             (_dk(Afgkode=["1", " ", None, "4"]), "2 parcels without a crop code")]
    pts = _dk()
    pts.geometry = [g.centroid if i == 1 else g for i, g in enumerate(pts.geometry)]
    cases.append((pts, r"1 parcels are not polygons .*Point ×1; e.g. J1/1-0"))
    for gdf, message in cases:
        f = tmp_path / "bad.gpkg"
        gdf.to_file(f)
        out = tmp_path / "out.parquet"
        with pytest.raises(EolabError, match=message):
            claims.ingest(f, out)
        assert not out.exists()

    # ids as published: floats a reader made of whole numbers lose only their ".0"; "7.0" stays text
    ids = claims.to_common(_dk(Marknr=[7.0, 70106910123456792.0, 8.5, 9.0]), claims.detect_schema(_dk().columns))
    assert ids.parcel_id.tolist() == ["J1/7", "J1/70106910123456792", "J1/8.5", "J1/9"]
    nulls = claims.to_common(_dk(CVR=[None, "C2", None, "C3"]), claims.detect_schema(_dk().columns))
    assert nulls.farmer_id.tolist() == [None, "C2", None, "C3"]  # not the text "None"

    # outputs: only the two formats, write errors named
    with pytest.raises(EolabError, match="formats are GeoPackage"):
        claims.ingest(good, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    (tmp_path / "adir.gpkg").mkdir()
    with pytest.raises(EolabError, match="is a folder"):
        claims.ingest(good, tmp_path / "adir.gpkg")
    with pytest.raises(EolabError, match="cannot project the claims"):
        claims.read_claims(good, to_crs="EPSG:999999")

    # projected coordinates labelled as longitude/latitude (a GeoJSON without 'crs')
    lonlat = _dk().set_crs("EPSG:4326", allow_override=True)
    gj = tmp_path / "nocrs.geojson"
    lonlat.to_file(gj)
    with pytest.raises(EolabError, match="coordinates span .* they are projected"):
        claims.read_claims(gj)

    # an encoding for a format that has none; an encoding that does not exist
    with pytest.raises(EolabError, match="applies to Shapefiles"):
        claims.read_claims(good, encoding="cp1257")
    with pytest.raises(EolabError, match="unknown text encoding 'nonsense'"):
        claims.read_claims(good, encoding="nonsense")

    # a GeoParquet under another name is read as what it is
    pq_named_gpkg = tmp_path / "really-parquet.gpkg"
    _dk().to_parquet(pq_named_gpkg)
    assert len(claims.read_claims(pq_named_gpkg)) == 4


def test_zip_with_macos_forks_and_two_shapefiles(tmp_path):
    import zipfile

    for name in ("a", "b"):
        _dk().to_file(tmp_path / f"{name}.shp")
    one, two = tmp_path / "one.zip", tmp_path / "two.zip"
    with zipfile.ZipFile(one, "w") as zf:
        zf.writestr("__MACOSX/._a.shp", b"\x00\x05\x16\x07")  # a resource fork listed first
        zf.writestr("metadata.json", b'{"publisher": "an agency"}')  # metadata beside the Shapefile
        for ext in ("shp", "shx", "dbf", "prj"):
            zf.write(tmp_path / f"a.{ext}", f"a.{ext}")
    assert len(claims.read_claims(one)) == 4
    with zipfile.ZipFile(two, "w") as zf:
        for name in ("a", "b"):
            for ext in ("shp", "shx", "dbf", "prj"):
                zf.write(tmp_path / f"{name}.{ext}", f"{name}.{ext}")
    with pytest.raises(EolabError, match="holds 2 vector files: a.shp, b.shp"):
        claims.read_claims(two)
    assert len(claims.read_claims(two, layer="b")) == 4


def test_declared_areas_far_from_the_polygons_are_named():
    schema = claims.detect_schema(_dk().columns)
    with pytest.warns(claims.ClaimsWarning, match=r"typically 1e\+04 × the polygons' areas: is the column in m2"):
        claims.to_common(_dk(IMK_areal=[40000.0] * 4), schema)  # m² under a schema that says ha
    with pytest.warns(claims.ClaimsWarning, match=r"1 parcels declare an area .* J1/2-0 \(1e\+12 ha declared, 4 ha drawn\)"):
        claims.to_common(_dk(IMK_areal=[4.0, 4.1, 1e12, 3.9]), schema)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plausible areas: no word
        claims.to_common(_dk(IMK_areal=[4.0, 3.5, 4.2, 3.9]), schema)


def test_invalid_polygons_are_named():
    from shapely.geometry import Polygon

    gdf = _dk()
    gdf.geometry = [Polygon([(0, 0), (200, 200), (200, 0), (0, 200)]) if i == 0 else g for i, g in enumerate(gdf.geometry)]
    with pytest.warns(claims.ClaimsWarning, match="1 parcels have invalid polygons .*J1/0-0"):
        claims.to_common(gdf, claims.detect_schema(gdf.columns))


def test_landscape_elements_are_set_aside_also_when_their_names_are_mis_decoded():
    names = ["GLÖZ Hecke", "LSE Feldrain", "Winterweichweizen", "Mähwiese/-weide zwei Nutzungen"]
    garbled = [n.encode("utf-8").decode("cp1252") for n in names]  # 'GLÃ–Z Hecke'
    df = pd.DataFrame({"GEO_ID": ["1", "2", "3", "4"], "SNAR_CODE": ["999", "998", "140", "700"],
                       "SNAR_BEZEICHNUNG": garbled, "SL_FLAECHE_BRUTTO_HA": [4.0] * 4})
    gdf = gpd.GeoDataFrame(df, geometry=[box(0, 300 * i, 200, 300 * i + 200) for i in range(4)], crs="EPSG:31287")
    with pytest.warns(claims.ClaimsWarning, match="look mis-decoded"):
        c = claims.to_common(gdf, claims.detect_schema(gdf.columns))
    assert c.parcel_id.tolist() == ["3", "4"] and c.attrs["eolab:ingest"]["not_claims"] == 2


def test_schema_files_of_the_wrong_shape_are_refused_naming_the_field(tmp_path, monkeypatch):
    import yaml

    base = yaml.safe_load(LT_SCHEMA)
    bad = {"detect: a string": {"detect": "KODAS"},
           "columns as a list": {"columns": ["KODAS"]},
           "not_claims not mappings": {"not_claims": ["Pastatai"]},
           "a broken regex": {"not_claims": [{"when": {"PASELIS": {"matches": "(["}}}]},
           "extra as a list": {"extra": ["a"]},
           "year not a number": {"columns": {**base["columns"], "year": {"value": "twenty"}}},
           "a country list": {"country": ["LT"]},
           "a misspelt taxonomy key": {"taxonomy": {"code_list": "lt_2021", "key": "nmae"}}}
    fields = {"detect: a string": "detect", "columns as a list": "columns", "not_claims not mappings": "not_claims",
              "a broken regex": "not_claims regex", "extra as a list": "extra", "year not a number": "columns.year",
              "a country list": "country", "a misspelt taxonomy key": "taxonomy.key"}
    for what, change in bad.items():
        with pytest.raises(EolabError, match=fields[what]):
            claims.schema_from_dict({**base, **change}, "x.yaml")
    # a year written as a plain number is a constant year
    assert claims.schema_from_dict({**base, "columns": {**base["columns"], "year": 2024}}).year == {"value": 2024}

    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "a.yaml").write_text(LT_SCHEMA)
    (folder / "b.yaml").write_text(LT_SCHEMA)
    monkeypatch.setenv("EOLAB_CLAIMS_SCHEMA_DIR", str(folder))
    with pytest.raises(EolabError, match="two schema files are named 'lt-test'"):
        claims.schemas()
    monkeypatch.setenv("EOLAB_CLAIMS_SCHEMA_DIR", str(folder / "a.yaml"))
    with pytest.raises(EolabError, match="is a file, not a folder"):
        claims.schemas()


def test_what_an_ingested_file_carried_comes_back(tmp_path):
    gdf = _dk()
    gdf["Markblok"] = ["B1", "B2", "B3", "B4"]
    src = tmp_path / "dk.gpkg"
    gdf.to_file(src)
    schema = claims.schema_from_dict({**__import__("yaml").safe_load(open(claims.SCHEMA_DIR / "dk-marker.yaml")),
                                      "extra": {"block": "Markblok"}})
    first = claims.to_common(gdf, schema)
    for out in (tmp_path / "c.parquet", tmp_path / "c.gpkg"):
        if out.suffix == ".parquet":
            claims.write_fiboa(first, out)
        else:
            first.to_file(out, layer="claims")
        back = claims.read_claims(out)
        assert back.schema.tolist() == ["dk-marker"] * 4 and back.block.tolist() == ["B1", "B2", "B3", "B4"], out
        assert back.parcel_id.tolist() == first.parcel_id.tolist()
