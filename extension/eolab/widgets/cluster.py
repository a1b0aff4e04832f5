"""The cluster options form: workers, cores, memory and idle timeout within the server's limits.

State (:class:`ComputeOptions`, traitlets) → :mod:`eolab.compute` → a view that only links and observes.
Bounds come from the gateway's own option fields, so the form never offers what the server refuses.
"""

from __future__ import annotations

import html
import os

import traitlets

from eolab.compute import _cluster
from eolab.widgets._display import NotebookView, mark_live


class ComputeOptions(traitlets.HasTraits):
    """What the form edits; the bounds are read-only facts from the server or the machine."""

    workers = traitlets.Int(1, min=0)
    adaptive = traitlets.Bool(False)
    maximum = traitlets.Int(2, min=1)
    worker_cores = traitlets.Int(1, min=1)
    worker_memory = traitlets.Float(1.0, min=0.25)
    idle_timeout = traitlets.Float(30.0, min=0.1, help="minutes")
    max_worker_cores = traitlets.Int(1)
    max_worker_memory = traitlets.Float(4.0)
    max_idle_timeout = traitlets.Float(120.0)
    backend = traitlets.Unicode("local")

    @classmethod
    def from_server(cls) -> "ComputeOptions":
        if not _cluster.gateway_configured():
            cores = os.cpu_count() or 1
            return cls(backend="local", max_worker_cores=cores, worker_cores=1, maximum=cores)
        options = _cluster.cluster_options()
        fields = options._fields
        cores, memory, idle = fields["worker_cores"], fields["worker_memory"], fields["idle_timeout_minutes"]
        return cls(backend="gateway", worker_cores=options["worker_cores"], max_worker_cores=int(cores.max),
                   worker_memory=options["worker_memory"], max_worker_memory=float(memory.max),
                   idle_timeout=options["idle_timeout_minutes"], max_idle_timeout=float(idle.max))

    def spec(self) -> _cluster.ClusterSpec:
        gateway = self.backend == "gateway"
        return _cluster.ClusterSpec(
            workers=self.workers, worker_cores=self.worker_cores, worker_memory=self.worker_memory,
            idle_timeout=self.idle_timeout if gateway else None,
            adaptive=(self.workers, max(self.workers, self.maximum)) if self.adaptive else None)


class ClusterForm(NotebookView):
    """``ClusterForm().widget`` shows the form; Start creates the cluster, Stop shuts it down."""

    def __init__(self, options: ComputeOptions | None = None):
        import ipywidgets as w

        self.options = options or ComputeOptions.from_server()
        self.cluster = None
        self.client = None
        o = self.options
        style = {"description_width": "11em"}
        self.fields = {
            "workers": w.BoundedIntText(min=0, max=64, description="Workers", style=style),
            "adaptive": w.Checkbox(description="Adaptive (scale between workers and maximum)", indent=False),
            "maximum": w.BoundedIntText(min=1, max=64, description="Maximum workers", style=style),
            "worker_cores": w.IntSlider(min=1, max=max(1, o.max_worker_cores), description="Cores per worker",
                                        style=style),
            "worker_memory": w.FloatSlider(min=0.25, max=o.max_worker_memory, step=0.25,
                                           description="Memory per worker (GiB)", style=style),
            "idle_timeout": w.FloatSlider(min=0.1, max=max(0.1, o.max_idle_timeout), step=0.1,
                                          description="Stop when idle (min)", style=style,
                                          disabled=o.backend != "gateway"),
        }
        for name, widget in self.fields.items():
            w.link((o, name), (widget, "value"))
            widget.add_class(f"eolab-compute-{name.replace('_', '-')}")
        self.start_button = w.Button(description="Start cluster", button_style="primary")
        self.stop_button = w.Button(description="Stop cluster", disabled=True)
        self.start_button.add_class("eolab-compute-start")
        self.stop_button.add_class("eolab-compute-stop")
        self.status = w.HTML(f"No cluster yet ({o.backend}).")
        self.status.add_class("eolab-compute-status")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = w.VBox([*self.fields.values(), w.HBox([self.start_button, self.stop_button]), self.status])
        self.widget.add_class("eolab-compute")
        mark_live(self.widget)

    def start(self):
        self.start_button.disabled = True
        self.status.value = "Starting ..."
        try:
            self.cluster = _cluster.new_cluster(self.options.spec())
            self.client = self.cluster.get_client() if hasattr(self.cluster, "get_client") else None
        except Exception as exc:  # noqa: BLE001 - shown to the user in the form
            self.status.value = f"<span class='eolab-error'>{html.escape(str(exc))}</span>"
            self.start_button.disabled = False
            return None
        link = html.escape(_cluster.dashboard_link(self.cluster))
        name = html.escape(getattr(self.cluster, "name", "local"))
        self.status.value = f"Cluster <code>{name}</code> running: <a href='{link}' target='_blank'>dashboard</a>"
        self.stop_button.disabled = False
        return self.cluster

    def stop(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            (getattr(self.cluster, "shutdown", None) or self.cluster.close)()
        self.cluster = self.client = None
        self.status.value = "Cluster stopped."
        self.stop_button.disabled = True
        self.start_button.disabled = False



def options_widget() -> ClusterForm:
    """The cluster options form for this user (gateway limits on the hub, this machine elsewhere)."""
    return ClusterForm()
