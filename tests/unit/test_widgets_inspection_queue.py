"""Inspection queue: walks red/yellow parcels by area × confidence, appends decisions (who, when,
before, after, reason, evidence hash) to a JSON-lines log; a re-run keeps decisions whose evidence
is unchanged and flags the others. The view records through the same state."""

from __future__ import annotations

import json

import pytest

from eolab.widgets import InspectionQueue, QueueError
from tests.unit._cap_scene import make_scene


def _entries():
    return [{"parcel_id": "a", "light": "yellow", "area_ha": 1.0, "confidence": 0.9, "evidence_hash": "h-a"},
            {"parcel_id": "b", "light": "red", "area_ha": 5.0, "confidence": 0.5, "evidence_hash": "h-b"},
            {"parcel_id": "c", "light": "red", "area_ha": 2.0, "confidence": 0.95, "evidence_hash": "h-c"}]


def test_order_and_walk(tmp_path):
    q = InspectionQueue(_entries(), tmp_path / "log.jsonl", inspector="ana")
    assert q.parcels == ["b", "c", "a"] and q.parcel_id == "b"  # 2.5, 1.9, 0.9
    assert q.next() == "c" and q.next() == "a" and q.next() == "a" and q.previous() == "c"
    q.order = "confidence"
    assert q.parcels == ["c", "a", "b"] and q.parcel_id == "c"  # stays on the parcel shown
    with pytest.raises(QueueError, match="unknown order"):
        q.order = "colour"
    assert q.order == "confidence"


def test_decisions_are_appended_and_survive_a_rerun_unless_the_evidence_changed(tmp_path):
    log = tmp_path / "results" / "inspection_log.jsonl"
    run, result, items = make_scene(tmp_path)
    q = InspectionQueue.from_run(run, result, log, items=items, inspector="ana")
    assert q.parcels == ["RED-1"] and q.status() == "open" and q.light() == "red"
    q.decide("confirm", reason="looked at the chips")
    rec = q.decide("change", light="yellow", reason="sown late, seen on site")
    assert (rec["who"], rec["before"], rec["after"], rec["action"]) == ("ana", "red", "yellow", "change")
    assert rec["when"].endswith("+00:00") and len(rec["evidence_hash"]) == 64
    lines = log.read_text().splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["confirm", "change"]
    assert q.light() == "yellow" and q.status() == "decided"
    with pytest.raises(QueueError, match="needs a reason"):
        q.decide("change", light="green")
    with pytest.raises(QueueError, match="light= one of"):
        q.decide("change", light="blue", reason="x")
    assert "Parcel RED-1" in q.dossier()
    # a re-run with the same evidence keeps the decision
    again = InspectionQueue.from_run(run, result, log, inspector="ben")
    assert again.kept().keys() == {"RED-1"} and not again.flagged() and again.light("RED-1") == "yellow"
    # changed input: one more clear observation changes the evidence → flagged, back to the checks' light
    run.ndvi[0, 0] = 0.35
    changed = InspectionQueue.from_run(run, result, log)
    assert changed.flagged().keys() == {"RED-1"} and not changed.kept()
    assert changed.status("RED-1") == "stale" and changed.light("RED-1") == "red"
    assert log.read_text().splitlines() == lines  # reading never rewrites the log


def test_the_view_records_through_the_queue(tmp_path):
    pytest.importorskip("ipywidgets")
    from eolab.widgets import InspectionView

    q = InspectionQueue(_entries(), tmp_path / "log.jsonl", inspector="ana", render=lambda pid: f"<p>{pid}</p>")
    v = InspectionView(q)
    assert "1 / 3: b" in v.status.value and "srcdoc" in v.page.value and "&lt;p&gt;b" in v.page.value
    v.buttons["confirm"].click()
    v.buttons["next"].click()
    assert q.parcel_id == "c" and "2 / 3: c" in v.status.value
    v.new_light.value = "green"
    v.buttons["change light"].click()
    assert "needs a reason" in v.message.value
    v.reason.value = "field visit: maize"
    v.buttons["change light"].click()
    assert [(d["parcel_id"], d["action"], d["after"]) for d in q.log()] == [("b", "confirm", "red"),
                                                                             ("c", "change", "green")]
    assert "green (decided)" in v.status.value
    v.order.value = "area"
    assert q.order == "area"


def test_the_decision_log_is_published_with_the_results(tmp_path):
    """The log beside the results goes into the result's STAC item as an asset, byte for byte; publishing
    again after more decisions replaces the copy (one item, the log as it is now)."""
    import pystac

    from eolab import provenance
    from eolab.analysis import outputs, publish

    out = tmp_path / "results"
    run, result, items = make_scene(tmp_path)
    prov = provenance.record(items, workflow="cap-parcel-checks", parameters={})
    files = outputs.write_table(result, out / "cap_checks.gpkg", prov)
    q = InspectionQueue.from_run(run, result, out / "inspection_log.jsonl", items=items, inspector="ana")
    q.decide("confirm", reason="chips agree")
    catalog = tmp_path / "catalog"

    def published_log():
        item = publish.publish(files + [q.log_path], workflow="cap-parcel-checks", provenance=prov,
                               bbox=[20.0, 45.0, 21.0, 46.0], start="2026-04-01", end="2026-07-01",
                               catalog_dir=catalog)
        found = publish.find_results(catalog, workflow="cap-parcel-checks")
        assert [it.id for it in found] == [item.id]
        asset = found[0].assets["inspection_log_jsonl"]
        assert asset.media_type == "application/x-ndjson" and asset.title == "inspection_log.jsonl"
        path = asset.get_absolute_href()
        assert pystac.Catalog.from_file(str(catalog / "catalog.json")) and path != str(q.log_path)
        return open(path, "rb").read()

    assert published_log() == q.log_path.read_bytes()
    q.decide("change", light="yellow", reason="sown late")
    second = published_log()
    assert second == q.log_path.read_bytes()
    assert [json.loads(x)["action"] for x in second.decode().splitlines()] == ["confirm", "change"]
