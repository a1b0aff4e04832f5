"""Template gallery (list/clone), provenance records and the results catalogue."""

import json

import nbformat
import numpy as np
import pystac
import pytest

from eolab.analysis import provenance, publish, search, templates
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
    item.properties[search.PROVIDER_PROPERTY] = provider
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
