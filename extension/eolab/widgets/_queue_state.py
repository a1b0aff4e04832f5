"""Inspection queue of the CAP checks: pure Python (traitlets), no widgets.

Walks the red and yellow parcels of a run in a chosen order and records the inspector's decisions
(confirm the light, change it, add a note) in an append-only JSON-lines log beside the results: one
line per decision with who, when, the light before and after, the reason, and the hash of the
parcel's evidence (:func:`eolab.analysis.dossier.evidence_hash`). Lines are only ever appended.
When the checks are run again, a decision is kept if the parcel's evidence hash is unchanged and
flagged (``stale``) if it changed: the inspector must look again.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitlets import HasTraits, Int, List, Unicode, observe, validate

from eolab.errors import EolabError

LOG_NAME = "inspection_log.jsonl"
ORDERS = ("area × confidence", "area", "confidence", "light")
ACTIONS = ("confirm", "change", "note")
LIGHTS = ("red", "yellow", "green")


class QueueError(EolabError):
    """A decision the queue cannot record; the message says why."""


def _ordered(entries: Sequence[dict], order: str) -> list[str]:
    if order not in ORDERS:
        raise QueueError(f"unknown order {order!r}", hint=f"use one of: {', '.join(ORDERS)}")
    key = {"area × confidence": lambda e: -e["area_ha"] * e["confidence"],
           "area": lambda e: -e["area_ha"], "confidence": lambda e: -e["confidence"],
           "light": lambda e: (e["light"] != "red", -e["area_ha"] * e["confidence"])}[order]
    return [e["parcel_id"] for e in sorted(entries, key=lambda e: (key(e), e["parcel_id"]))]


class InspectionQueue(HasTraits):
    """The red/yellow parcels of a run (``entries``: parcel_id, light, area_ha, confidence,
    evidence_hash) and the decision log at ``log_path``. ``position`` is the parcel shown."""

    order = Unicode(ORDERS[0])
    parcels = List()
    position = Int(0)
    parcel_id = Unicode("")
    inspector = Unicode("")

    def __init__(self, entries: Sequence[dict], log_path: str | Path, *, order: str = ORDERS[0],
                 inspector: str | None = None, render: Any = None) -> None:
        self._entries = {str(e["parcel_id"]): dict(e, parcel_id=str(e["parcel_id"])) for e in entries}
        self.log_path = Path(log_path)
        self._render = render
        super().__init__(inspector=inspector or getpass.getuser())
        self.order = order
        self._reorder()

    @classmethod
    def from_run(cls, run: Any, result: Any, log_path: str | Path, *, items: Sequence | None = None,
                 lights: Sequence[str] = ("red", "yellow"), claims: Any = None, **kw: Any) -> InspectionQueue:
        """The queue of a :class:`cap.CapRun` and its result table; with ``items`` it renders each
        parcel's dossier (:func:`dossier.render`); ``claims`` as in :func:`dossier.evidence`."""
        import numpy as np

        from eolab.analysis import dossier

        table = result.set_index("parcel_id", drop=False) if "parcel_id" in result.columns else result
        entries = []
        for i, (pid, light) in enumerate(zip(run.checks.index, run.checks["light"])):
            if light not in lights:
                continue
            p = run.checks["p_predicted"].iloc[i]
            entries.append({"parcel_id": pid, "light": light, "area_ha": float(run.screen["area_ha"].iloc[i]),
                            "confidence": float(p) if np.isfinite(p) else 0.0,
                            "evidence_hash": dossier.evidence_hash(run, table, pid, claims)})
        render = (lambda pid: dossier.render(run, table, items, pid, claims=claims)) if items is not None else None
        return cls(entries, log_path, render=render, **kw)

    @validate("order")
    def _valid_order(self, proposal: dict) -> str:
        if proposal["value"] not in ORDERS:
            raise QueueError(f"unknown order {proposal['value']!r}", hint=f"use one of: {', '.join(ORDERS)}")
        return proposal["value"]

    @observe("order")
    def _order_changed(self, change: dict) -> None:
        if hasattr(self, "_entries"):
            self._reorder()

    def _reorder(self) -> None:
        current = self.parcel_id
        self.parcels = _ordered(list(self._entries.values()), self.order)
        self.position = self.parcels.index(current) if current in self.parcels else 0
        self._sync()

    @observe("position")
    def _position_changed(self, change: dict) -> None:
        self._sync()

    def _sync(self) -> None:
        if self.parcels:
            self.position = max(0, min(self.position, len(self.parcels) - 1))
            self.parcel_id = self.parcels[self.position]

    def next(self) -> str:
        self.position = min(self.position + 1, len(self.parcels) - 1)
        return self.parcel_id

    def previous(self) -> str:
        self.position = max(self.position - 1, 0)
        return self.parcel_id

    def entry(self, pid: str | None = None) -> dict:
        return self._entries[pid or self.parcel_id]

    # ------------------------------------------------------------ the log

    def log(self) -> list[dict]:
        """Every decision recorded so far (all runs), oldest first."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def latest(self) -> dict[str, dict]:
        """The latest decision per parcel (of the parcels in this queue)."""
        out = {}
        for d in self.log():
            if d["parcel_id"] in self._entries:
                out[d["parcel_id"]] = d
        return out

    def kept(self) -> dict[str, dict]:
        """Decisions still valid: the parcel's evidence is what the inspector saw."""
        return {p: d for p, d in self.latest().items() if d["evidence_hash"] == self._entries[p]["evidence_hash"]}

    def flagged(self) -> dict[str, dict]:
        """Decisions whose evidence changed since (to be looked at again)."""
        return {p: d for p, d in self.latest().items() if d["evidence_hash"] != self._entries[p]["evidence_hash"]}

    def status(self, pid: str | None = None) -> str:
        """'open', 'decided' or 'stale' (decided on evidence that has changed)."""
        pid = pid or self.parcel_id
        d = self.latest().get(pid)
        if d is None:
            return "open"
        return "decided" if d["evidence_hash"] == self._entries[pid]["evidence_hash"] else "stale"

    def light(self, pid: str | None = None) -> str:
        """The parcel's light now: the latest kept decision's, else the checks'."""
        pid = pid or self.parcel_id
        d = self.kept().get(pid)
        return d["after"] if d else self._entries[pid]["light"]

    def decide(self, action: str, *, light: str | None = None, reason: str = "",
               pid: str | None = None) -> dict:
        """Record a decision on the current parcel (or ``pid``): ``confirm`` its light, ``change``
        it to ``light``, or add a ``note``; appended to the log, never rewritten."""
        pid = pid or self.parcel_id
        if pid not in self._entries:
            raise QueueError(f"parcel {pid!r} is not in this queue")
        if action not in ACTIONS:
            raise QueueError(f"unknown action {action!r}", hint=f"use one of: {', '.join(ACTIONS)}")
        before = self.light(pid)
        if action == "change":
            if light not in LIGHTS:
                raise QueueError(f"changing the light needs light= one of {', '.join(LIGHTS)}, not {light!r}")
            if not reason.strip():
                raise QueueError("changing the light needs a reason")
        after = light if action == "change" else before
        rec = {"parcel_id": pid, "who": self.inspector,
               "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "action": action, "before": before, "after": after, "reason": reason,
               "checks_light": self._entries[pid]["light"], "evidence_hash": self._entries[pid]["evidence_hash"]}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return rec

    def dossier(self, pid: str | None = None) -> str:
        """The HTML dossier of the current parcel ('' when the queue has no items to read)."""
        return self._render(pid or self.parcel_id) if self._render else ""
