"""Template gallery (list/clone), provenance records and the results catalogue."""

import json
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pystac
import pytest

from eolab import ids, provenance
from eolab.analysis import publish, templates
from eolab.errors import EolabError


def test_list_finds_the_three_templates_with_parameters_cells():
    names = {t["name"]: t for t in templates.list_templates()}
    assert set(names) >= {"water-monitoring", "crop-type-map", "cap-parcel-checks"}
    for t in names.values():
        nb = nbformat.read(f"{t['path']}/{t['notebook']}", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        for key in t["parameters"]:  # params.yaml names only real notebook parameters
            assert f"{key} =" in tagged[0].source, (t["name"], key)
        assert t["title"] and t["summary"]


def test_clone_copies_notebook_readme_params_and_refuses_to_overwrite(tmp_path):
    dest = templates.clone("water-monitoring", tmp_path / "mine")
    assert {p.name for p in dest.iterdir()} >= {"water-monitoring.ipynb", "README.md", "params.yaml"}
    nb = nbformat.read(dest / "water-monitoring.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    with pytest.raises(EolabError, match="already exists"):
        templates.clone("water-monitoring", dest)
    with pytest.raises(EolabError, match="no template 'nope'.*water-monitoring"):
        templates.clone("nope", tmp_path / "x")


def _item(i, provider):
    item = pystac.Item(f"S2_{i}", {"type": "Polygon", "coordinates": [[[20, 47], [20.1, 47], [20.1, 47.1], [20, 47.1], [20, 47]]]},
                       [20, 47, 20.1, 47.1], np.datetime64("2026-05-01").astype(object), {}, collection="sentinel-2-l2a")
    item.properties[ids.PROVIDER_PROPERTY] = provider
    return item


def test_provenance_record_roundtrips_through_sidecar_and_geotiff(tmp_path):
    import rasterio
    from affine import Affine

    rec = provenance.record([_item(1, "pannonia"), _item(2, "danube")], workflow="w", parameters={"a": np.float32(1.5)})
    assert rec["collections"] == ["danube|sentinel-2-l2a", "pannonia|sentinel-2-l2a"]
    tif = tmp_path / "x.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=2, height=2, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=Affine(1, 0, 0, 0, -1, 2)) as dst:
        dst.write(np.zeros((1, 2, 2), "uint8"))
    provenance.write(tif, rec)
    provenance.sidecar_path(tif).unlink()
    back = provenance.read(tif)  # from the embedded tag
    assert [i["id"] for i in back["items"]] == ["S2_1", "S2_2"] and back["parameters"] == {"a": 1.5}
    with pytest.raises(EolabError, match="has no source items"):
        provenance.record([], workflow="w")


def test_publish_and_find(tmp_path):
    rec = provenance.record([_item(1, "pannonia")], workflow="water-monitoring")
    f = tmp_path / "r.csv"
    f.write_text("a\n1\n")
    provenance.write(f, rec)
    item = publish.publish([f], workflow="water-monitoring", provenance=rec, bbox=[20, 47, 20.1, 47.1],
                           start="2026-03-01", end="2026-10-31", catalog_dir=tmp_path / "cat")
    found = publish.find_results(tmp_path / "cat", bbox=[20.05, 47.05, 21, 48])
    assert [i.id for i in found] == [item.id]
    assert found[0].properties["eolab:provenance"]["source_items"][0] == {"id": "S2_1", "collection": "sentinel-2-l2a",
                                                                            "provider": "pannonia"}
    assert publish.find_results(tmp_path / "cat", workflow="crop-type-map") == []
    assert json.loads((tmp_path / "cat" / "catalog.json").read_text())["id"] == "eolab-results"


# --------------------------------------------------------------------------- publishing to a member provider

def _result(tmp_path):
    rec = provenance.record([_item(1, "pannonia"), _item(2, "danube")], workflow="water-monitoring",
                            parameters={"threshold": 0.1})
    rec["items"][0]["href"] = "http://broker/collections/pannonia|sentinel-2-l2a/items/S2_1"
    f = tmp_path / "r.csv"
    f.write_text("a\n1\n")
    provenance.write(f, rec)
    return [f, provenance.sidecar_path(f)], rec


def test_build_item_is_what_both_destinations_publish(tmp_path):
    files, rec = _result(tmp_path)
    item = publish.build_item(files, workflow="water-monitoring", provenance=rec, bbox=[20, 47, 20.1, 47.1],
                              start="2026-03-01", end="2026-10-31", title="Water")
    assert item.id == publish.item_id_for("water-monitoring", rec)  # stable: re-publishing replaces
    assert item.datetime is None and item.properties["start_datetime"].startswith("2026-03-01")
    assert item.properties["eolab:provenance"]["source_items"] == [
        {"id": "S2_1", "collection": "sentinel-2-l2a", "provider": "pannonia"},
        {"id": "S2_2", "collection": "sentinel-2-l2a", "provider": "danube"}]
    assert [ln.href for ln in item.links if ln.rel == "derived_from"] == [rec["items"][0]["href"]]
    assert publish.item_problems(item.to_dict(include_self_link=False)) == []
    with pytest.raises(EolabError, match="ends .* before it starts"):
        publish.build_item(files, workflow="w", provenance=rec, bbox=[20, 47, 20.1, 47.1], start="2026-05-01",
                           end="2026-04-01")
    with pytest.raises(EolabError, match="bbox .* is not west, south, east, north"):
        publish.build_item(files, workflow="w", provenance=rec, bbox=[20, 95, 20.1, 96], start="2026-05-01",
                           end="2026-06-01")


def test_a_result_of_thousands_of_items_names_the_first_and_keeps_all_in_its_provenance_files(tmp_path):
    from eolab._item_checks import MAX_ITEM_BYTES
    from eolab.analysis.publish._items import _add_asset

    files, _ = _result(tmp_path)
    rec = provenance.record([_item(i, "pannonia") for i in range(10_000)], workflow="w", parameters={})
    for n, src in enumerate(rec["items"]):
        src["href"] = f"http://broker/collections/pannonia|sentinel-2-l2a/items/S2_{n}"
    provenance.write(files[0], rec)
    item = publish.build_item(files, workflow="w", provenance=rec, bbox=[20, 47, 20.1, 47.1], start="2026-03-01",
                              end="2026-10-31")
    summary = item.properties["eolab:provenance"]
    assert summary["source_count"] == 10_000 and len(summary["source_items"]) == publish.LISTED_SOURCES
    assert summary["source_items"][0]["id"] == "S2_0"
    assert len([ln for ln in item.links if ln.rel == "derived_from"]) == publish.LISTED_SOURCES
    assert summary["source_items_in"] == ["r_csv_provenance_json"]
    _add_asset(item, files[1], str(files[1]))
    as_json = item.to_dict(include_self_link=False)
    assert set(summary["source_items_in"]) <= set(as_json["assets"])
    assert len(provenance.read(files[0])["items"]) == 10_000  # the whole list, in the file the item names
    assert len(json.dumps(as_json)) < MAX_ITEM_BYTES and publish.item_problems(as_json) == []
    with pytest.raises(EolabError, match="10,000 source items.*first 100") as err:
        publish.build_item(files[:1], workflow="w", provenance=rec, bbox=[20, 47, 20.1, 47.1], start="2026-03-01",
                           end="2026-10-31")
    assert "sidecar_path" in err.value.hint
    few = publish.build_item(files[:1], workflow="w", provenance=_result(tmp_path)[1], bbox=[20, 47, 20.1, 47.1],
                             start="2026-03-01", end="2026-10-31")
    assert few.properties["eolab:provenance"]["source_count"] == 2 and "source_items_in" not in \
        few.properties["eolab:provenance"]


def test_item_problems_name_what_a_provider_refuses(tmp_path):
    files, rec = _result(tmp_path)
    good = publish.build_item(files, workflow="w", provenance=rec, bbox=[20, 47, 20.1, 47.1],
                              start="2026-03-01", end="2026-10-31").to_dict(include_self_link=False)
    assert publish.item_problems({**good, "id": "a/b?"}) == ["id contains / ?"]
    assert publish.item_problems({**good, "geometry": None}) == ["no geometry"]
    bow_tie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    assert publish.item_problems({**good, "geometry": bow_tie}) == ["invalid geometry"]
    no_time = {**good, "properties": {"title": "x", "datetime": None}}
    assert publish.item_problems(no_time) == ["neither datetime nor start_datetime and end_datetime"]
    reversed_ = {**good, "properties": {**good["properties"], "start_datetime": "2026-05-01T00:00:00Z",
                                        "end_datetime": "2026-04-01T00:00:00Z"}}
    assert publish.item_problems(reversed_) == ["end_datetime is before start_datetime"]
    assert publish.item_problems({**good, "assets": {"a": {"title": "no href"}}}) == ["asset 'a' has no href"]


def test_results_collection_is_per_user_with_an_open_extent(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "Alice Smith")
    assert publish.current_user() == "Alice Smith"
    assert re.fullmatch(r"results-alice-smith-[0-9a-f]{16}", publish.results_collection_id())
    assert publish.results_collection_id("bob") == "results-bob"
    body = publish.results_collection("results-bob", "bob")
    assert body["id"] == "results-bob" and body["title"] == "Results of bob"
    assert body["extent"] == {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                              "temporal": {"interval": [[None, None]]}}


def test_writable_provider_comes_from_the_catalogue_configuration(monkeypatch):
    from eolab.config import DEFAULT_CONFIG, load_config
    from eolab.errors import ConfigError

    monkeypatch.delenv("EOLAB_WORKSPACE_URL", raising=False)
    config = load_config(DEFAULT_CONFIG, port_offset=0)
    assert publish.writable_provider(config=config) == publish.Provider("workspace", "http://127.0.0.1:8714")
    with pytest.raises(EolabError, match="provider 'pannonia' is not writable.*") as err:
        publish.writable_provider("pannonia", config)
    assert "workspace" in err.value.hint
    with pytest.raises(ConfigError, match="no member 'nope'"):
        publish.writable_provider("nope", config)
    assert publish.writable_provider("https://stac.example/api/") == publish.Provider("stac.example",
                                                                                        "https://stac.example/api")
    monkeypatch.setenv("EOLAB_WORKSPACE_URL", "http://127.0.0.1:9999/")
    assert publish.writable_provider().url == "http://127.0.0.1:9999"


def test_default_catalogue_has_one_writable_workspace_without_demo_data():
    from pydantic import ValidationError

    from eolab.config import DEFAULT_CONFIG, MemberConfig, load_config

    config = load_config(DEFAULT_CONFIG, port_offset=0)
    assert [m.id for m in config.writable_members] == ["workspace"]
    ws = config.member("workspace")
    assert ws.is_workspace and ws.enabled and ws.port == 8714 and ws.collections == {}
    assert ws in config.demo_members  # served by `eolab catalog up` like the demo members
    assert not any(m.writable for m in config.members if m.id != "workspace")
    with pytest.raises(ValidationError, match="holds published results"):
        MemberConfig(id="w", port=9000, writable=True, collections={"sentinel-2-l2a": {}})
    with pytest.raises(ValidationError, match="lists no 'collections'"):
        MemberConfig(id="d", port=9000)


class _FakeProvider:
    """A transactional STAC API in memory (httpx.MockTransport), recording what it is sent."""

    def __init__(self, writable=True, refuse=None):
        self.writable, self.refuse = writable, refuse
        self.collections, self.items, self.sent = {}, {}, []

    def __call__(self, request):
        import httpx

        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, path))
        if path == "/":
            classes = [publish.TRANSACTION_CONFORMANCE] if self.writable else ["https://api.stacspec.org/v1.0.0/core"]
            return httpx.Response(200, json={"conformsTo": classes})
        if request.method == "GET" and path.startswith("/collections/"):
            cid = path.split("/")[2]
            return httpx.Response(200, json=self.collections[cid]) if cid in self.collections else \
                httpx.Response(404, json={"code": "NotFoundError", "description": "no"})
        if request.method == "POST" and path == "/collections":
            self.collections[body["id"]] = body
            return httpx.Response(201, json=body)
        if request.method == "POST" and path.endswith("/bulk_items"):
            if self.refuse:
                return httpx.Response(400, json={"detail": self.refuse})
            assert body["method"] == "upsert"
            self.items.update(body["items"])
            return httpx.Response(200, json={"received": len(body["items"]), "success": len(body["items"]),
                                             "skipped": 0, "errors": []})
        return httpx.Response(405)


def _client(fake):
    import httpx

    return httpx.Client(transport=httpx.MockTransport(fake))


def test_publish_to_provider_creates_the_collection_once_and_upserts(tmp_path, monkeypatch):
    monkeypatch.setenv("EOLAB_RESULTS_CATALOG", str(tmp_path / "results"))
    files, rec = _result(tmp_path)
    fake = _FakeProvider()
    args = dict(workflow="water-monitoring", provenance=rec, bbox=[20, 47, 20.1, 47.1], start="2026-03-01",
                end="2026-10-31", to="http://ws.test", user="bob", client=_client(fake))
    item = publish.publish_to_provider(files, **args)
    again = publish.publish_to_provider(files, **args)
    assert again.id == item.id and list(fake.items) == [item.id]
    assert list(fake.collections) == ["results-bob"]
    assert [m for m in fake.sent if m[0] == "POST"] == [
        ("POST", "/collections"), ("POST", "/collections/results-bob/bulk_items"),
        ("POST", "/collections/results-bob/bulk_items")]
    stored = fake.items[item.id]
    assert stored["collection"] == "results-bob"
    assert stored["properties"]["eolab:provenance"]["parameters"] == {"threshold": 0.1}
    assert {ln["rel"] for ln in stored["links"]} == {"derived_from"}
    for asset in stored["assets"].values():
        assert Path(asset["href"]).is_absolute() and Path(asset["href"]).exists()
        assert str(tmp_path / "results" / "workspace" / "results-bob") in asset["href"]


def test_publish_routes_member_destinations(tmp_path, monkeypatch):
    files, rec = _result(tmp_path)
    seen = {}
    monkeypatch.setattr(publish, "publish_to_provider", lambda files, **kw: seen.setdefault("to", kw["to"]))
    args = dict(workflow="w", provenance=rec, bbox=[20, 47, 20.1, 47.1], start="2026-03-01", end="2026-10-31")
    assert publish.publish(files, catalog_dir="member:workspace", **args) == "workspace"
    seen.clear()
    assert publish.publish(files, catalog_dir="http://127.0.0.1:8714", **args) == "http://127.0.0.1:8714"
    seen.clear()
    assert publish.publish(files, to="workspace", catalog_dir=tmp_path / "ignored", **args) == "workspace"


def test_provider_errors_name_the_provider_and_quote_its_answer(tmp_path):
    files, rec = _result(tmp_path)
    item = publish.build_item(files, workflow="w", provenance=rec, bbox=[20, 47, 20.1, 47.1],
                              start="2026-03-01", end="2026-10-31")
    with pytest.raises(EolabError, match=r"provider 'ro.test' at http://ro.test is not writable"):
        publish.upsert_items([item], to="http://ro.test", user="bob", client=_client(_FakeProvider(writable=False)))
    refusing = _FakeProvider(refuse="Item geometry is not valid")
    with pytest.raises(EolabError, match=r"provider 'ws.test' refused the items .*: HTTP 400: Item geometry is not"):
        publish.upsert_items([item], to="http://ws.test", user="bob", client=_client(refusing))
    assert refusing.items == {}
    quiet = _FakeProvider()
    bad = item.to_dict(include_self_link=False)
    bad["id"] = "a#b"
    with pytest.raises(EolabError, match=r"nothing was written: 'a#b': id contains #"):
        publish.upsert_items([item, bad], to="http://ws.test", user="bob", client=_client(quiet))
    assert quiet.sent == []  # refused before asking the provider anything
    with pytest.raises(EolabError, match="ids repeat"):
        publish.upsert_items([item, item], to="http://ws.test", user="bob", client=_client(quiet))


def test_parameters_come_from_params_yaml_with_overrides_on_top(tmp_path, monkeypatch):
    import yaml

    for t in templates.list_templates():
        nb = nbformat.read(f"{t['path']}/{t['notebook']}", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = [line.split(" = ")[0] for line in cell.source.splitlines() if " = " in line and not line.startswith("#")]
        assert sorted(names) == sorted(t["parameters"]), t["name"]  # every parameter in both places
        assert all(line.split(" = ")[1].startswith("...") for line in cell.source.splitlines() if " = " in line)
    monkeypatch.chdir(tmp_path)
    got = templates.parameters("water-monitoring", {"method": "ndwi", "bbox": ..., "unrelated": 1})
    assert got["method"] == "ndwi" and got["bbox"] is None and "unrelated" not in got
    assert got["period_a"] == ["2026-03-01", "2026-05-31"]  # YAML dates as the ISO strings a notebook writes
    # a misspelt papermill parameter (-p catalogs URL) is named, not silently dropped; other globals are not
    with pytest.warns(UserWarning, match="'catalogs' is not a parameter of water-monitoring.*did you mean 'catalog'"):
        got = templates.parameters("water-monitoring", {"catalogs": "http://127.0.0.1:1", "catalog": ...})
    assert got["catalog"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        templates.parameters("water-monitoring", {"cube": 1, "items": [], "np": np, "In": [], "result": 3,
                                                   "catalogue": object(), "test_i": np.arange(3)})
    mine = templates.clone("water-monitoring", tmp_path / "mine")
    params = yaml.safe_load((mine / "params.yaml").read_text())
    (mine / "params.yaml").write_text(yaml.safe_dump({**params, "resolution": 20}))
    monkeypatch.chdir(mine)  # a cloned template's own params.yaml wins over the installed one
    assert templates.parameters("water-monitoring", {})["resolution"] == 20
