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
