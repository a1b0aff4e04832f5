"""How eolab's views appear in a notebook, also after the notebook is closed and reopened.

A widget is a live view of an object in the kernel; the notebook file keeps only a reference to
it. Reopened with a new kernel, JupyterLab has nothing to draw ("model not found", or nothing at
all). So each view is displayed as two outputs: the widget, then a one-line note saying what to do.
While the widget is alive, a style rule it carries hides the note that follows it; once the widget
is gone, so is the rule, and the note shows. Frontends without ``:has()`` simply show the note.
"""

from __future__ import annotations

import html

HINT_CLASS = "eolab-rerun-hint"
LIVE_CLASS = "eolab-live"
# Hides only the note right after a live eolab widget's output (not notes of dead widgets elsewhere).
_HIDE_RULE = (f".jp-OutputArea-child:has(.{LIVE_CLASS}) + .jp-OutputArea-child .{HINT_CLASS},"
              f" .output_area:has(.{LIVE_CLASS}) + .output_area .{HINT_CLASS} {{display: none}}")


def hint_text(name: str) -> str:
    return (f"{name}: re-run this cell to show the widget (widgets live in the running kernel and are not "
            "saved with the notebook)")


def mark_live(box) -> None:
    """Give a view's top box the class and the style rule that hide its note while it is alive."""
    import ipywidgets as w

    box.add_class(LIVE_CLASS)
    box.children = (*box.children, w.HTML(f"<style>{_HIDE_RULE}</style>", layout=w.Layout(display="none")))


class NotebookView:
    """Mixin for views with a ``widget``: the widget plus the re-run note (see the module doc)."""

    widget = None

    def _hint_bundle(self) -> dict:
        text = hint_text(type(self).__name__)
        return {"text/plain": text, "text/html": f"<div class='{HINT_CLASS}' style='color:#8a5300;font-style:italic'>"
                                                 f"⟳ {html.escape(text)}</div>"}

    def _repr_mimebundle_(self, **kwargs):
        data = self.widget._repr_mimebundle_(**kwargs)
        data["text/plain"] = hint_text(type(self).__name__)
        return data

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        display(self._hint_bundle(), raw=True)
