"""P4 on the cluster: the CAP pipeline of ``cap_p4.py`` threaded and on a Slurm-backed Dask Gateway, side by side.

One run, on one prepared scene (the 100,000-parcel one ``cap_p4.py`` caches, by default):

1. **gateway** (first: it is the part that can fail): a real local Slurm cluster
   (:class:`eolab.compute._slurm.LocalSlurm`), the catalogue stack on the small demo data and a
   multiuser hub with ``spawner="slurm"`` and ``gateway_backend="slurm"``, as
   ``tests/integration/test_slurm_gateway.py`` starts them. The script logs in as the hub user,
   starts their server (a Slurm job of their system account) and runs ``cap_p4.run_pipeline`` in a
   kernel there, with a gateway cluster of ``--workers`` workers × 1 core (scheduler and workers
   Slurm jobs of the user) as the default Dask client: the zonal statistics (and every other Dask
   computation) run on the workers, the rest in the kernel;
2. **threaded**: ``cap_p4.py --one <scene> --no-ee --tile-parcels N`` in a process of its own (Dask's threaded
   scheduler, 2 threads), the run recorded in RESULTS.md;
3. compares the two result tables parcel by parcel (light, reasons, float columns), prints wall and
   CPU seconds of every step side by side (gateway CPU = kernel + workers + scheduler, each read
   before and after every step) and the gateway/threaded ratios, and projects wall time and parcels
   per hour of one million parcels on N workers from the gateway run's per-step figures.

Both runs take the tiled pipeline (``cap.run_checks_tiled``, tiles of ``--tile-parcels`` parcels,
default 25,000), as the template does for claim sets larger than its ``tile_parcels``; with
``--tile-parcels 0`` the one pass (``parcel_series`` of all parcels, then ``cap.run_checks``).

Both runs import eolab from this checkout (the kernel and the workers are pointed at it; users'
processes would import the venv's), checked by a digest of its .py files. The scene is read once
first so that both runs read from the page cache.

Everything listens on 127.0.0.1. Needs root (system users, slurmd) and slurm-wlm + munge. The
hub's users are ``eolabp4-alice`` / ``eolabp4-boss``, removed at the end, with the hub, the stack
and Slurm. The scene must be readable by other users (the user's kernel and workers read it).

    PYTHONPATH=extension .venv/bin/python benchmarks/cap_p4_gateway.py [--data /tmp/eolab-bench-p4]
    PYTHONPATH=extension .venv/bin/python benchmarks/cap_p4_gateway.py --data /tmp/eolab-bench-p4-small \\
        --make 3000   # a small scene made here first (development)

The demo data of the catalogue stack: ``--demo DIR`` (generated there if missing; the hub needs
the stack, the pipeline does not search it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cap_p4 as p4  # noqa: E402
from broker_common import machine  # noqa: E402

BENCH = Path(__file__).resolve().parent
SOURCE = BENCH.parent / "extension"  # the eolab both runs import (kernel and workers included)
PREFIX = "eolabp4-"  # not the tests' eolabt-: those may run at the same time
LOGINS = ["alice"], ["boss"]


# ------------------------------------------------------------------------------ in the user's kernel


def _proc_cpu() -> float:
    """CPU seconds of this process and its children (run on the workers and the scheduler)."""
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def use_source(path: str) -> None:
    """Import eolab from ``path`` from now on (the users' processes would import the venv's)."""
    sys.path.insert(0, path)
    for name in [m for m in sys.modules if m == "eolab" or m.startswith("eolab.")]:
        del sys.modules[name]


def eolab_source_digest() -> tuple[str, str]:
    """(where eolab is imported from, a digest of its .py files): both runs must run the same code."""
    import eolab

    root = Path(eolab.__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return str(root), h.hexdigest()[:16]


def in_kernel(data_dir: str, workers: int, memory: float, source: str = "", tile_parcels: int = 0) -> dict:
    """Run in the hub user's kernel: a gateway cluster, then ``cap_p4.run_pipeline`` with it as the
    default Dask client. CPU per step split into kernel, workers and scheduler."""
    import cloudpickle
    import dask

    import eolab.compute

    # the workers cannot import this script: ship its functions by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    t0 = time.perf_counter()
    client = eolab.compute.get_client(workers=workers, worker_cores=1, worker_memory=memory)
    client.wait_for_workers(workers, timeout=900)
    startup = time.perf_counter() - t0
    if source:
        client.run(use_source, source)
    info = client.scheduler_info()["workers"]
    readings: list[tuple[float, float, float]] = []

    def clock() -> float:
        reading = (p4.cpu_seconds(), sum(client.run(_proc_cpu).values()), client.run_on_scheduler(_proc_cpu))
        readings.append(reading)
        return sum(reading)

    out_dir = Path.home() / "p4-out"
    out_dir.mkdir(exist_ok=True)
    assert dask.base.get_scheduler() == client.get, "the gateway client is not Dask's default scheduler"
    load_before = os.getloadavg()[0]
    with p4.PeakRSS() as peak:
        times, facts = p4.run_pipeline(Path(data_dir), out_dir, cpu=clock, tile_parcels=tile_parcels)
    load_after = os.getloadavg()[0]
    split = {}
    for k, name in enumerate(times):
        split[name] = {part: readings[k + 1][i] - readings[k][i] for i, part in enumerate(("kernel", "workers",
                                                                                              "scheduler"))}
    uids = sorted(set(client.run(os.getuid).values()))
    worker_eolab = set(client.run(eolab_source_digest).values())
    result = {"startup_s": startup, "workers": len(info), "worker_threads": [w["nthreads"] for w in info.values()],
              "worker_memory": [w["memory_limit"] for w in info.values()], "uid": os.getuid(), "worker_uids": uids,
              "scheduler_uid": client.run_on_scheduler(os.getuid), "cluster": client.cluster.name,
              "steps_wall": times, "steps_cpu": facts["cpu"], "steps_split": split, "peak_rss": peak.peak,
              "parcels": facts["parcels"], "monitorable": facts["monitorable"], "lights": facts["lights"],
              "load": [load_before, load_after], "out_dir": str(out_dir), "eolab": eolab_source_digest(),
              "tiles": facts.get("tiles", 0), "tile_phases_s": facts.get("tile_phases_s", {}),
              "worker_eolab": sorted(worker_eolab)}
    client.cluster.shutdown()
    client.close()
    return result


KERNEL = """
import json, sys
sys.path.insert(0, {bench!r})
import cap_p4_gateway
cap_p4_gateway.use_source({source!r})
print("P4GATEWAY " + json.dumps(cap_p4_gateway.in_kernel({data!r}, {workers}, {memory}, {source!r}, {tiles})))
"""


# ------------------------------------------------------------------------------ driving it


def readable_by_others(data_dir: Path) -> str | None:
    """The first file or folder of the scene another user could not read, or None."""
    for path in [data_dir, *data_dir.rglob("*")]:
        need = 0o005 if path.is_dir() else 0o004
        if path.stat().st_mode & need != need:
            return str(path)
    parent = data_dir.resolve().parent
    while parent != parent.parent:
        if parent.stat().st_mode & 0o001 == 0:
            return str(parent)
        parent = parent.parent
    return None


def warm_cache(data_dir: Path) -> tuple[int, float]:
    """Read every file once, so that neither run pays the first read from disk."""
    t0, size = time.perf_counter(), 0
    for f in data_dir.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    size += len(chunk)
    return size, time.perf_counter() - t0


def users_env() -> dict:
    """The environment of the threaded run: eolab from this checkout, as the gateway run's kernel
    and workers import it (see ``use_source``; checked with ``eolab_source_digest``)."""
    return {**os.environ, "PYTHONPATH": str(SOURCE)}


def threaded(data_dir: Path, dates: int, tile_parcels: int) -> dict:
    cmd = [sys.executable, str(BENCH / "cap_p4.py"), "--one", str(data_dir), "--no-ee", "--dates", str(dates),
           "--tile-parcels", str(tile_parcels)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=users_env()).stdout
    fig = json.loads(out.strip().splitlines()[-1])
    probe = (f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); import cap_p4_gateway as g; "
             "print(json.dumps(g.eolab_source_digest()))")
    fig["eolab"] = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, stdout=subprocess.PIPE,
                                             text=True, env=users_env()).stdout)
    return fig


class JobWatch:
    """Polls squeue during the run: the most Slurm jobs of this hub at once, and their users."""

    def __init__(self, slurm, name: str, every: float = 5.0):
        import threading

        self.seen = {"max_running": 0, "users": []}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(slurm, name, every), daemon=True)
        self._t.start()

    def _run(self, slurm, name, every):
        while not self._stop.is_set():
            try:
                running = [j for j in slurm.jobs(name) if j["state"] == "RUNNING"]
            except (OSError, subprocess.SubprocessError):
                running = []
            self.seen["max_running"] = max(self.seen["max_running"], len(running))
            self.seen["users"] = sorted(set(self.seen["users"]) | {j["user"] for j in running})
            self._stop.wait(every)

    def stop(self):
        self._stop.set()
        self._t.join()


def gateway(data_dir: Path, demo_dir: Path, workers: int, memory: float, tile_parcels: int) -> dict:
    """Slurm, the stack, a multiuser hub with the Slurm gateway; the pipeline in the user's kernel."""
    from eolab import hub
    from eolab.compute._slurm import LocalSlurm, job_name
    from eolab.testing.hub import HubSession, hub_config_for_accounts, remove_system_users
    from eolab.testing.stack import free_port_base, make_stack_config, running_stack

    accounts = [PREFIX + name for names in LOGINS for name in names]
    shared = Path(tempfile.mkdtemp(prefix="eolab-p4-gateway-", dir="/tmp"))
    shared.chmod(0o711)  # the users' jobs reach the Slurm wrappers and the hub's files below
    remove_system_users(accounts)  # leftovers of an interrupted run
    slurm = None
    fig: dict = {}
    try:
        t0 = time.perf_counter()
        slurm = LocalSlurm(shared / "slurm", cpus=8, memory_mb=16000).start()
        with running_stack(make_stack_config(shared / "stack-run", demo_dir)) as stack:
            config = hub_config_for_accounts(stack, run_dir=shared / "run")
            settings = hub.HubSettings(
                mode="multiuser", port=free_port_base(width=9, start=17000), users=LOGINS[0], admin_users=LOGINS[1],
                system_user_prefix=PREFIX, spawner="slurm", gateway_backend="slurm", slurm_conf=str(slurm.conf),
                slurm_bin=str(slurm.bin), slurm_partition=slurm.partition, cluster_orphan_timeout=60,
                cluster_idle_timeout=1800, max_worker_cores=1, max_worker_memory=memory,
                max_cores_per_user=workers, max_memory_per_user=workers * memory)
            try:
                hub.up(config, settings)
                session = HubSession(f"http://127.0.0.1:{settings.port}", LOGINS[0][0])
                if session.login(hub.credentials(config)["passwords"][LOGINS[0][0]]).status_code != 302:
                    raise SystemExit("login to the hub failed")
                session.new_token()
                session.start_server(timeout=300)
                fig["setup_s"] = time.perf_counter() - t0
                kernel = session.start_kernel()
                watch = JobWatch(slurm, job_name(str(hub.hub_dir(config))))
                code = KERNEL.format(bench=str(BENCH), data=str(data_dir), workers=workers, memory=memory,
                                   source=str(SOURCE), tiles=tile_parcels)
                try:
                    out = session.run(kernel, code, timeout=4 * 3600)
                finally:
                    watch.stop()
                    print(getattr(session, "last_stderr", ""), file=sys.stderr, end="")
                line = next(x for x in out.splitlines() if x.startswith("P4GATEWAY "))
                fig.update(json.loads(line[len("P4GATEWAY "):]))
                fig["slurm_jobs"] = watch.seen
                # the result table leaves the user's home before the account goes
                keep = Path(tempfile.mkdtemp(prefix="eolab-p4-gw-out-"))
                for f in Path(fig["out_dir"]).iterdir():
                    shutil.copy(f, keep / f.name)
                fig["out_dir"] = str(keep)
                session.kill_kernel(kernel)
                session.stop_server()
                session.close()
            finally:
                hub.down(config, settings)
    finally:
        remove_system_users(accounts)
        if slurm is not None:
            slurm.stop()
        shutil.rmtree(shared, ignore_errors=True)
    return fig


def compare(a_dir: str, b_dir: str) -> dict:
    """Parcel-by-parcel differences of the two result tables (GeoParquet)."""
    import pandas as pd

    a = pd.read_parquet(Path(a_dir) / "cap_checks.parquet").set_index("parcel_id")
    b = pd.read_parquet(Path(b_dir) / "cap_checks.parquet").set_index("parcel_id")
    same_ids = a.index.equals(b.index)
    b = b.reindex(a.index)
    out = {"parcels": len(a), "same_parcel_ids": bool(same_ids),
           "light_differences": int((a["light"] != b["light"]).sum()),
           "reason_differences": int((a["reasons"].fillna("") != b["reasons"].fillna("")).sum())}
    numeric = [c for c in a.columns if c in b.columns and pd.api.types.is_float_dtype(a[c])]
    out["max_abs_numeric_difference"] = {c: float((a[c] - b[c]).abs().max()) for c in numeric
                                         if (a[c] - b[c]).abs().max() > 0}
    return out


def projection(g: dict, parcels_target: int, workers_list: list[int]) -> tuple[dict, str]:
    """Wall time of ``parcels_target`` parcels on N one-core workers from the gateway run's CPU seconds.

    Rests on: the Dask step's worker CPU (spread over N workers), its kernel + scheduler CPU
    (serial: the graph, the one scheduler, the results gathered in the kernel, and in the tiled run
    the features, events, model and lights; added to the workers' time, not overlapped), the
    kernel's CPU of every other step at the parallelism it reached here (CPU / wall, at most 2
    threads). Zonal statistics scale linearly with the parcels (per-parcel cost 1.04x from 100,000
    to 300,000, RESULTS.md). The crop model and lights twice: scaled linearly too (upper bound),
    and held constant (the model learns from at most 4,000 parcels per fold; it cost about the same
    CPU at 300,000 as at 100,000 parcels). One pass: ``cap.run_checks``' CPU is that part; tiled:
    the wall seconds of the run's model-and-lights phase (kernel work, serial)."""
    tiled = bool(g.get("tiles"))
    if tiled:
        dask_step = next(n for n in g["steps_split"] if n.startswith("cap.run_checks_tiled"))
    else:
        dask_step = "zonal statistics (parcel_series)"
    f = parcels_target / g["parcels"]
    split = {n: s["kernel"] + s["workers"] + s["scheduler"] for n, s in g["steps_split"].items()}
    zs = g["steps_split"][dask_step]
    parallel = zs["workers"] * f
    serial = (zs["kernel"] + zs["scheduler"]) * f
    rest_cpu = sum(c for n, c in split.items() if n != dask_step)
    rest_wall = sum(w for n, w in g["steps_wall"].items() if n != dask_step)
    threads = min(2.0, max(1.0, rest_cpu / rest_wall))
    upper = rest_cpu * f / threads
    if tiled:
        constant = g["tile_phases_s"]["model_lights"]  # already wall seconds in the serial part
        lower = upper - constant * (f - 1)
        what = f"the tiled step's model and lights phase, {constant:.1f} wall s"
    else:
        checks = split["cap.run_checks (model, events, lights)"]
        lower = ((rest_cpu - checks) * f + checks) / threads
        what = f"run_checks {checks:.1f} CPU s"
    out = {}
    for n in workers_list:
        hi, lo = serial + parallel / n + upper, serial + parallel / n + lower
        out[n] = {"wall_s": [lo, hi], "parcels_per_hour": [parcels_target / hi * 3600, parcels_target / lo * 3600]}
    basis = (f"{dask_step}: workers {zs['workers']:.1f} CPU s (÷ N), kernel {zs['kernel']:.1f} + scheduler "
             f"{zs['scheduler']:.1f} CPU s (serial); other steps {rest_cpu:.1f} CPU s at {threads:.2f} threads "
             f"(CPU/wall measured); linear, or constant: {what}; ×{f:.2f} for {parcels_target:,} parcels")
    return out, basis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "eolab-bench-p4"))
    ap.add_argument("--make", type=int, metavar="PARCELS",
                    help="make (or reuse) a scene of this many parcels in --data first (cap_p4's synthesis)")
    ap.add_argument("--dates", type=int, default=36)
    ap.add_argument("--width", type=int, default=3500, help="scene width in 10 m pixels (with --make)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", type=float, default=4.0, help="GiB per worker")
    ap.add_argument("--demo", default="/tmp/eolab-p4-gateway-demo", help="the catalogue stack's demo data")
    ap.add_argument("--project", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep both runs' output folders")
    ap.add_argument("--tile-parcels", type=int, default=25_000,
                    help="cap.run_checks_tiled with tiles of about this many parcels, as the template runs "
                         "claim sets larger than its tile_parcels (default 25,000); 0: the one pass")
    args = ap.parse_args()
    # a timeout's SIGTERM still stops the hub and Slurm and removes the users (the finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        raise SystemExit("needs root: the hub creates system users and slurmd runs jobs as them")
    data_dir = Path(args.data).resolve()
    if args.make:
        p4.synthesise(data_dir, args.make, args.dates, args.width)
    if not (data_dir / "manifest.json").exists():
        raise SystemExit(f"{data_dir}: no prepared scene (run cap_p4.py --data {data_dir}, or pass --make N)")
    blocked = readable_by_others(data_dir)
    if blocked:
        raise SystemExit(f"{blocked} is not readable by other users, so the hub user's kernel and workers "
                         "could not read the scene; make it readable (chmod -R o+rX) or use another --data")
    demo = Path(args.demo)
    if not (demo / "manifest.json").exists():
        from eolab.demo import generate

        generate(demo, "small", progress=False)
    size, secs = warm_cache(data_dir)
    print(f"{machine()}; scene {data_dir} ({size / 1e9:.1f} GB read once in {secs:.0f} s to warm the page cache)",
          file=sys.stderr)

    up0 = os.getloadavg()
    # the gateway first: it is the one that may fail
    print(f"--- gateway (Slurm backend, {args.workers} workers × 1 core, {args.worker_memory} GiB each)",
          file=sys.stderr)
    g = gateway(data_dir, demo, args.workers, args.worker_memory, args.tile_parcels)
    print("--- threaded (cap_p4.py --one, Dask threaded scheduler, 2 threads)", file=sys.stderr)
    t = threaded(data_dir, args.dates, args.tile_parcels)
    up1 = os.getloadavg()
    diff = compare(t["out_dir"], g["out_dir"])

    print(f"\nP4 threaded vs Slurm-backed gateway, {t['parcels']:,} parcels ({t['monitorable']:,} monitorable) × "
          f"{args.dates} dates; {machine()}", file=sys.stderr)
    print(f"gateway: {g['workers']} workers × {g['worker_threads']} threads, cluster {g['cluster']}; kernel uid "
          f"{g['uid']}, scheduler uid {g['scheduler_uid']}, worker uids {g['worker_uids']}; "
          f"hub + Slurm + stack + server up in {g['setup_s']:.0f} s, cluster up in {g['startup_s']:.0f} s "
          f"(not in the pipeline's times); Slurm jobs of the hub running at once (server + scheduler + "
          f"workers): up to {g['slurm_jobs']['max_running']}, of {g['slurm_jobs']['users']}", file=sys.stderr)
    same = {tuple(t["eolab"]), tuple(g["eolab"])} | {tuple(w) for w in g["worker_eolab"]}
    print(f"eolab source (path, digest of its .py files): threaded {t['eolab']}, kernel {g['eolab']}, workers "
          f"{g['worker_eolab']}: {'the same' if len(same) == 1 else 'NOT THE SAME CODE'}", file=sys.stderr)
    print(f"{'step':<40s} {'threaded wall/CPU s':>20s} {'gateway wall/CPU s':>20s} {'ratio wall':>10s} "
          f"{'ratio CPU':>9s}   gateway CPU kernel/workers/scheduler", file=sys.stderr)
    for name in t["steps_wall"]:
        tw, tc, gw, gc = t["steps_wall"][name], t["steps_cpu"][name], g["steps_wall"][name], g["steps_cpu"][name]
        s = g["steps_split"][name]
        print(f"{name:<40s} {tw:9.1f} /{tc:8.1f}   {gw:9.1f} /{gc:8.1f}   {gw / tw:8.2f}   {gc / max(tc, 1e-9):8.2f}"
              f"   {s['kernel']:.1f} / {s['workers']:.1f} / {s['scheduler']:.1f}", file=sys.stderr)
    tw, tc = sum(t["steps_wall"].values()), sum(t["steps_cpu"].values())
    gw, gc = sum(g["steps_wall"].values()), sum(g["steps_cpu"].values())
    print(f"{'end to end':<40s} {tw:9.1f} /{tc:8.1f}   {gw:9.1f} /{gc:8.1f}   {gw / tw:8.2f}   {gc / tc:8.2f}",
          file=sys.stderr)
    print(f"lights: threaded {t['lights']}, gateway {g['lights']}; parcel by parcel: {diff['light_differences']} "
          f"lights and {diff['reason_differences']} reasons differ of {diff['parcels']:,} (same ids: "
          f"{diff['same_parcel_ids']}); numeric columns differing: {diff['max_abs_numeric_difference'] or 'none'}",
          file=sys.stderr)
    if g.get("tiles"):
        print(f"tiled run: {g['tiles']} tiles of about {args.tile_parcels:,} parcels; phases (wall s) threaded "
              f"{t.get('tile_phases_s') or '-'}, gateway {g['tile_phases_s']}", file=sys.stderr)
    print(f"peak RSS: threaded process {t['peak_rss'] / 2**30:.2f} GiB, gateway kernel {g['peak_rss'] / 2**30:.2f} GiB; "
          f"1-min load average: {up0[0]:.1f} at start, threaded {t['load']}, gateway {g['load']}, {up1[0]:.1f} at end",
          file=sys.stderr)
    proj, basis = projection(g, args.project, [2, 8, 32, 64, 128])
    print(f"projection for {args.project:,} parcels from the gateway run ({basis}):", file=sys.stderr)
    for n, p in proj.items():
        print(f"  N = {n:3d} workers: {p['wall_s'][0]:6.0f}–{p['wall_s'][1]:.0f} s wall, "
              f"{p['parcels_per_hour'][0] / 1e6:.2f}–{p['parcels_per_hour'][1] / 1e6:.2f} M parcels/h", file=sys.stderr)
    print(json.dumps({"threaded": {k: v for k, v in t.items() if k != "out_dir"},
                      "gateway": {k: v for k, v in g.items() if k != "out_dir"}, "compare": diff,
                      "ratio_wall": gw / tw, "ratio_cpu": gc / tc, "projection": proj, "projection_basis": basis,
                      "load": [up0, up1]}))
    if not args.keep:
        for d in (t["out_dir"], g["out_dir"]):
            shutil.rmtree(d, ignore_errors=True)
    if diff["light_differences"] or not diff["same_parcel_ids"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
