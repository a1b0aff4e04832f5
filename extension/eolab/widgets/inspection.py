"""The inspection queue's view: the dossier of the current parcel, its status and buttons to confirm
the light, change it (with a reason) or add a note. State and the log are in
:class:`InspectionQueue`; this view only observes it and calls it.

    from eolab.widgets import InspectionQueue, InspectionView
    queue = InspectionQueue.from_run(run, result, out / "inspection_log.jsonl", items=s2_items)
    InspectionView(queue).widget
"""

from __future__ import annotations

import html

from eolab.errors import EolabError
from eolab.widgets._display import NotebookView, mark_live
from eolab.widgets._queue_state import LIGHTS, ORDERS, InspectionQueue


class InspectionView(NotebookView):
    """``InspectionView(queue).widget`` walks the queue; every button appends to the queue's log."""

    def __init__(self, queue: InspectionQueue):
        import ipywidgets as w

        self.queue = queue
        self.order = w.Dropdown(options=list(ORDERS), value=queue.order, description="order")
        self.status = w.HTML()
        self.page = w.HTML(layout=w.Layout(width="100%"))
        self.reason = w.Textarea(placeholder="reason / note", layout=w.Layout(width="60%"))
        self.new_light = w.Dropdown(options=list(LIGHTS), description="light")
        self.buttons = {name: w.Button(description=name) for name in
                        ("previous", "next", "confirm", "change light", "add note")}
        self.message = w.HTML()
        w.link((self.order, "value"), (queue, "order"))
        b = self.buttons
        b["previous"].on_click(lambda _: queue.previous())
        b["next"].on_click(lambda _: queue.next())
        b["confirm"].on_click(lambda _: self._decide("confirm"))
        b["change light"].on_click(lambda _: self._decide("change", light=self.new_light.value))
        b["add note"].on_click(lambda _: self._decide("note"))
        queue.observe(lambda _: self._show(), names=["parcel_id"])
        self.widget = w.VBox([w.HBox([self.order, b["previous"], b["next"], self.status]), self.page,
                              w.HBox([b["confirm"], self.new_light, b["change light"], b["add note"]]),
                              self.reason, self.message])
        mark_live(self.widget)
        self._show()

    def _decide(self, action: str, light: str | None = None) -> None:
        try:
            rec = self.queue.decide(action, light=light, reason=self.reason.value)
        except EolabError as err:
            self.message.value = f"<span style='color:#d62728'>{html.escape(str(err))}</span>"
            return
        self.message.value = html.escape(f"recorded: {rec['action']} {rec['before']} → {rec['after']}")
        self.reason.value = ""
        self._show()

    def _show(self) -> None:
        q = self.queue
        if not q.parcels:
            self.status.value = "no red or yellow parcels"
            return
        self.status.value = html.escape(f"{q.position + 1} / {len(q.parcels)}: {q.parcel_id} — "
                                        f"{q.light()} ({q.status()})")
        page = q.dossier()
        self.page.value = (f"<iframe style='width:100%;height:640px;border:0' srcdoc=\"{html.escape(page)}\">"
                           "</iframe>" if page else "")
