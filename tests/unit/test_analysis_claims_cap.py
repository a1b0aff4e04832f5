"""Claims ingestion (schema detection, clear errors, no partial output) and CAP screening/light."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from eolab.analysis import cap, claims
from eolab.errors import EolabError


def _write(tmp_path, df, name="x.gpkg"):
    path = tmp_path / name
    gpd.GeoDataFrame(df, geometry=[box(0, 0, 100, 100 + i) for i in range(len(df))], crs="EPSG:25832").to_file(path)
    return path


def test_danish_schema_maps_to_common(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"Marknr": ["1-0", "1-1"], "Journalnr": ["26-1", "26-1"],
                                          "CVR": [42.0, 42.0], "Afgkode": [1.0, 593.0],
                                          "Afgroede": ["Vårbyg", "Poppel"], "IMK_areal": [1.0, 1.01]}))
    c = claims.read_claims(path)
    assert c.schema.tolist() == ["dk-marker"] * 2
    assert c.parcel_id.tolist() == ["26-1/1-0", "26-1/1-1"]
    assert c.crop_code.tolist() == ["1", "593"] and c.farmer_id.tolist() == ["42", "42"]
    assert list(c.columns[:7]) == claims.COLUMNS


def test_unknown_schema_lists_the_columns_found(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"foo": [1], "Bar": ["x"]}))
    with pytest.raises(EolabError, match="unknown parcel schema; columns found: Bar, foo"):
        claims.read_claims(path)


def test_malformed_file_raises_and_writes_nothing(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"parcel_id": ["a", "b"], "crop_code": [1, 2], "crop_name": ["x", "y"],
                                          "area_declared_ha": [1.0, "lots"]}))
    out = tmp_path / "out" / "claims.gpkg"
    with pytest.raises(EolabError, match="invalid area in 'area_declared_ha'.*e.g. b"):
        claims.ingest(path, out)
    assert not out.exists() and not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
    dup = _write(tmp_path, pd.DataFrame({"parcel_id": ["a", "a"], "crop_code": [1, 2], "crop_name": ["x", "y"],
                                         "area_declared_ha": [1.0, 1.0]}), "dup.gpkg")
    with pytest.raises(EolabError, match="occur more than once"):
        claims.ingest(dup, out)
    (tmp_path / "junk.gpkg").write_text("not a geopackage")
    with pytest.raises(EolabError, match="cannot read parcel file junk.gpkg"):
        claims.ingest(tmp_path / "junk.gpkg", out)
    assert not out.exists()


def test_screening_flags_small_and_thin_parcels():
    g = gpd.GeoDataFrame({"id": ["big", "strip", "tiny"]},
                         geometry=[box(0, 0, 200, 200), box(0, 300, 1000, 315), box(0, 400, 30, 430)], crs="EPSG:32634")
    s = cap.screen_parcels(g)
    assert s.monitorable.tolist() == [True, False, False]
    assert "thin" in s.screen_reason[1] and "small" in s.screen_reason[2]
    assert s.width_m[0] == pytest.approx(100.0)


def test_traffic_light_rules():
    g = gpd.GeoDataFrame({"crop_name": ["maize", "maize", "maize", "grassland"],
                          "area_declared_ha": [4.0, 4.0, 4.0, 4.0]},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(4)], crs="EPSG:32634")
    s = cap.screen_parcels(g)
    classes = ["grassland", "maize", "soybean"]
    proba = np.array([[0.0, 0.9, 0.1], [0.0, 0.1, 0.9], [0.0, 0.4, 0.6], [0.9, 0.1, 0.0]])
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20, 20, 20, 20], mowing=[[], [], [], []])
    assert out.light.tolist() == ["green", "red", "yellow", "yellow"]
    assert "look like soybean" in out.reasons[1] and "no mowing" in out.reasons[3]
    assert out.declaration_suspect.tolist() == [False, True, False, False]


def test_failed_crop_is_yellow_not_a_false_declaration():
    g = gpd.GeoDataFrame({"crop_name": ["maize", "maize"], "area_declared_ha": [4.0, 4.0]},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(2)], crs="EPSG:32634")
    s = cap.screen_parcels(g)
    proba = np.array([[0.0, 0.1, 0.9], [0.0, 0.1, 0.9]])
    out = cap.check_parcels(g, s, proba, ["grassland", "maize", "soybean"], n_observations=[20, 20],
                            ndvi_max=[0.8, 0.35], min_growth=0.5)
    assert out.light.tolist() == ["red", "yellow"]
    assert "failed or very weak crop" in out.reasons[1] and out.declaration_suspect.tolist() == [True, False]


def test_growth_threshold_separates_two_modes_without_labels():
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(0.78, 0.03, 200), rng.normal(0.35, 0.05, 15)]
    t = cap.growth_threshold(v)
    assert 0.42 < t < 0.7
    assert cap.growth_threshold([0.8] * 5) == pytest.approx(0.5)  # too few parcels: middle of the bounds


def test_red_rule_compares_the_declared_crop_with_the_predicted_one():
    g = gpd.GeoDataFrame({"crop_name": ["maize"] * 3, "area_declared_ha": [4.0] * 3},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(3)], crs="EPSG:32634")
    s = cap.screen_parcels(g)
    classes = ["grassland", "maize", "soybean"]
    proba = np.array([[0.0, 0.3, 0.7], [0.0, 0.4, 0.6], [0.05, 0.3, 0.65]])
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 3)
    # 0.3 < 0.5 × 0.7 and 0.3 < 0.5 × 0.65: red; 0.4 ≥ 0.5 × 0.6: yellow
    assert out.light.tolist() == ["red", "yellow", "red"]
    # the former absolute rule is still available
    old = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 3, red_probability=0.25, red_ratio=None)
    assert old.light.tolist() == ["yellow", "yellow", "yellow"]


def test_cross_fitted_probabilities_forest_plus_linear_model():
    rng = np.random.default_rng(0)
    y = np.repeat(["maize", "soybean", "winter_wheat"], 40)
    X = rng.normal(0, 1, (y.size, 12)) + 2.0 * (y[:, None] == np.array(["maize", "soybean", "winter_wheat"])).repeat(4, 1)
    X[::7, 3] = np.nan  # gaps are imputed
    p, classes = cap.cross_fit_crop_probabilities(X, y, n_estimators=50, n_jobs=1)
    assert classes == ["maize", "soybean", "winter_wheat"]
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert (np.array(classes)[p.argmax(1)] == y).mean() > 0.9
    forest_only, _ = cap.cross_fit_crop_probabilities(X, y, n_estimators=50, n_jobs=1, linear_weight=0.0)
    assert not np.allclose(p, forest_only)


def test_cross_fit_learns_from_a_bounded_sample():
    from eolab.analysis import cap

    rng = np.random.default_rng(3)
    n = 900
    y = rng.choice(["maize", "soybean", "winter_wheat"], size=n)
    X = rng.normal(size=(n, 6))
    X[:, 0] += (y == "maize") * 3.0
    X[:, 1] += (y == "soybean") * 3.0
    full, classes = cap.cross_fit_crop_probabilities(X, y, n_estimators=30, max_train=None)
    capped, same = cap.cross_fit_crop_probabilities(X, y, n_estimators=30, max_train=150)
    assert classes == same and capped.shape == full.shape == (n, 3)
    np.testing.assert_allclose(capped.sum(axis=1), 1.0)
    accuracy = lambda p: (np.array(classes)[p.argmax(1)] == y).mean()  # noqa: E731
    assert accuracy(full) > 0.85 and accuracy(capped) > 0.8  # still learns from 150 parcels per fold
    assert not np.allclose(capped, full)  # the cap did change what the models saw
    small, _ = cap.cross_fit_crop_probabilities(X[:400], y[:400], n_estimators=30)
    uncapped, _ = cap.cross_fit_crop_probabilities(X[:400], y[:400], n_estimators=30, max_train=None)
    np.testing.assert_array_equal(small, uncapped)  # below the default cap nothing changes


def _nl(n=6, crs="EPSG:32631", **columns):
    """Dutch BRP-like claims: 1 ha squares near 52° N (UTM 31N), no area column (areas are the polygons')."""
    geoms = [box(680_000 + 200 * i, 5_760_000, 680_100 + 200 * i, 5_760_100) for i in range(n)]
    data = {"gewas": ["Grasland, blijvend"] * n, "gewascode": ["265"] * n, "category": ["Grasland"] * n,
            "jaar": [2024] * n, **columns}
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


def test_claims_in_web_mercator_or_feet_are_measured_on_the_ground(tmp_path):
    """Web Mercator scales areas by 1/cos²(lat) (2.7× at 52° N) and a CRS in feet gives ft²: areas are
    taken on the ground (UTM), and the CAP screening refuses such parcels with the fix in the hint."""
    utm = _nl()
    for crs in ("EPSG:3857", "EPSG:2927"):  # Pseudo-Mercator; Washington South in US survey feet
        path = tmp_path / f"nl-{crs[5:]}.gpkg"
        utm.to_crs(crs).to_file(path)
        read = claims.read_claims(path)
        assert read.area_declared_ha.to_numpy() == pytest.approx(1.0, rel=2e-3)  # before: 2.66 ha in 3857
        assert claims.metric_problem(read) is not None
        with pytest.raises(EolabError, match="needs parcels in a CRS of ground metres") as err:
            cap.screen_parcels(read)
        assert "claims.in_metres" in str(err.value)
        metric = claims.in_metres(read)
        assert cap.screen_parcels(metric).area_ha.to_numpy() == pytest.approx(1.0, rel=2e-3)
    assert "scales areas by 2.6" in claims.metric_problem(utm.to_crs("EPSG:3857"))
    assert "US survey foot" in claims.metric_problem(utm.to_crs("EPSG:2927"))
    assert "degrees" in claims.metric_problem(utm.to_crs("EPSG:4326"))
    # The legitimate path: a UTM zone or a national grid is used as it is.
    assert claims.metric_problem(utm) is None and claims.in_metres(utm) is utm
    rd = utm.to_crs("EPSG:28992")  # Amersfoort / RD New, the Dutch grid
    assert claims.metric_problem(rd) is None
    assert cap.screen_parcels(rd).area_ha.to_numpy() == pytest.approx(1.0, rel=2e-3)


def test_blank_crop_names_take_their_codes_name_not_one_blank_crop(tmp_path):
    """The CAP checks tell crops apart by name: blank names made wheat and maize one crop ''."""
    g = _nl(4, gewas=["Wintertarwe", None, "Mais, snij-", ""], gewascode=["233", "233", "259", "266"])
    g.to_file(tmp_path / "nl.gpkg")
    with pytest.warns(claims.ClaimsWarning, match="2 parcels have no crop name in 'gewas'"):
        read = claims.read_claims(tmp_path / "nl.gpkg")
    # the name other parcels of its code carry, else the code itself
    assert read.crop_name.tolist() == ["Wintertarwe", "Wintertarwe", "Mais, snij-", "266"]


def test_a_year_that_is_not_a_number_is_said(tmp_path):
    g = _nl(3)
    g["jaar"] = ["2024", "2023/24", None]
    g.to_file(tmp_path / "nl.gpkg")
    with pytest.warns(claims.ClaimsWarning, match=r"1 parcels have a year in 'jaar' that is not a number "
                                                  r"\(e.g. '2023/24' of NL-"):
        read = claims.read_claims(tmp_path / "nl.gpkg")
    assert read.year.tolist()[0] == 2024 and read.year.isna().tolist() == [False, True, True]


def test_a_file_of_landscape_elements_only_is_no_claims(tmp_path):
    g = _nl(3, category=["Landschapselement"] * 3)
    g.to_file(tmp_path / "le.gpkg")
    with pytest.raises(EolabError, match=r"no claims .*all 3 rows are set aside as not claims \(landscape"):
        claims.read_claims(tmp_path / "le.gpkg")
    out = tmp_path / "out.gpkg"
    with pytest.raises(EolabError, match="no claims"):
        claims.ingest(tmp_path / "le.gpkg", out)
    assert not out.exists()
    g.loc[0, "category"] = "Grasland"  # one real claim among them: read, the rest set aside
    g.to_file(tmp_path / "mixed.gpkg")
    assert claims.read_claims(tmp_path / "mixed.gpkg").attrs["eolab:ingest"]["claims"] == 1


def test_a_zip_of_two_data_files_asks_which(tmp_path):
    import zipfile

    this_year, last_year = _nl(4), _nl(2)
    this_year.to_file(tmp_path / "claims_2026.shp")
    last_year.to_file(tmp_path / "claims_2025.gpkg")
    package = tmp_path / "package.zip"
    with zipfile.ZipFile(package, "w") as zf:
        for f in tmp_path.glob("claims_2026.*"):
            zf.write(f, f.name)
        zf.write(tmp_path / "claims_2025.gpkg", "claims_2025.gpkg")
        zf.writestr("claims_2026.json", "{}")  # a Shapefile's metadata beside it: not a third choice
    with pytest.raises(EolabError, match="holds 2 vector files: claims_2025.gpkg, claims_2026.shp"):
        claims.read_claims(package)  # before: the old GeoPackage, without a word
    assert len(claims.read_claims(package, layer="claims_2026")) == 4
    assert len(claims.read_claims(package, layer="claims_2025")) == 2
    portal = tmp_path / "portal.zip"  # one GeoPackage and the portal's metadata: read without asking
    with zipfile.ZipFile(portal, "w") as zf:
        zf.write(tmp_path / "claims_2025.gpkg", "claims_2025.gpkg")
        zf.writestr("metadata.json", '{"title": "claims"}')
    assert len(claims.read_claims(portal)) == 2


def test_geoparquet_with_another_geometry_column_name(tmp_path):
    g = _nl(3).rename_geometry("geom")
    g.to_parquet(tmp_path / "nl.parquet")
    read = claims.read_claims(tmp_path / "nl.parquet")  # before: "has no geometries"
    assert len(read) == 3 and read.geometry.name == "geometry"


def test_claims_that_share_land_are_named_and_not_judged_from_the_images():
    """The same land declared twice: the images' pixels go to one of the two claims (the later one),
    so the other's series is empty or wrong; both are set aside with the other named. Parcels that
    only touch, and slivers under a pixel's area, are not."""
    g = gpd.GeoDataFrame(
        {"crop_name": ["maize"] * 6},
        geometry=[box(0, 0, 200, 200), box(150, 0, 350, 200),  # A and B share 50 m × 200 m = 1 ha
                  box(350, 0, 550, 200),  # C touches B only
                  box(0, 300, 200, 500), box(0, 300, 200, 500),  # D and E: one polygon declared twice
                  box(199.8, 300, 399.8, 500)],  # F: a 0.2 m sliver over D and E
        index=pd.Index(["A", "B", "C", "D", "E", "F"], name="parcel_id"), crs="EPSG:32634")
    s = cap.screen_parcels(g)
    assert s.monitorable.tolist() == [False, False, True, False, False, True]
    assert s.overlaps.tolist() == ["B", "A", "", "E", "D", ""]
    # shared inside the 5 m inward buffer, as the statistics see the parcels: 40 m × 190 m; 190 m × 190 m
    assert s.overlap_ha.round(3).tolist() == [0.76, 0.76, 0.0, 3.61, 3.61, 0.0]
    assert s.screen_reason["A"] == "overlaps claim B by 0.76 ha (declared twice?)"
    # neighbours digitised 0.5 m over each other along a 400 m edge (200 m²) share nothing inside
    strip = gpd.GeoDataFrame(geometry=[box(0, 0, 250, 400), box(249.5, 0, 500, 400)], crs="EPSG:32634")
    assert cap.screen_parcels(strip).monitorable.all()
    proba = np.full((6, 1), 1.0)
    lights = cap.check_parcels(g, s, proba, ["maize"], n_observations=[20] * 6)
    assert lights.light.tolist()[:3] == ["yellow", "yellow", "green"]
    assert "overlaps claim A" in lights.reasons["B"] and "field visit" in lights.reasons["B"]


def test_column_names_in_other_capitals_or_with_spaces_are_read(tmp_path):
    g = _nl(2).rename(columns={"gewas": "GEWAS", "gewascode": " GewasCode ", "jaar": "Jaar"})
    g.to_file(tmp_path / "nl.gpkg")
    with pytest.warns(claims.ClaimsWarning, match="columns read by the schema's spelling: 'GEWAS' as 'gewas'"):
        read = claims.read_claims(tmp_path / "nl.gpkg")  # before: unknown parcel schema
    assert read.schema.tolist() == ["nl-brp"] * 2 and read.crop_code.tolist() == ["265"] * 2
    assert read.year.tolist() == [2024, 2024]
    assert len(claims.read_claims(tmp_path / "nl.gpkg", schema="nl-brp")) == 2  # named, as detected
    assert "schema: nl-brp" in claims.check_report(tmp_path / "nl.gpkg")  # eolab claims check


def test_a_file_that_nearly_fits_a_schema_is_told_what_it_lacks(tmp_path):
    g = gpd.GeoDataFrame({"id": ["a", "b"], "crop:code": ["1", "2"], "crop:name": ["x", "y"]},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(2)], crs="EPSG:32634")
    g.to_parquet(tmp_path / "fiboa.parquet")
    with pytest.raises(EolabError, match=r"closest: fiboa, which also needs 'ec:hcat_code'"):
        claims.read_claims(tmp_path / "fiboa.parquet")
