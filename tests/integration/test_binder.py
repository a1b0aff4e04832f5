"""Binder, simulated as far as this machine allows: a fresh venv built only from binder/ files.

repo2docker would build an image from ``binder/`` (``runtime.txt``: Python 3.11, ``apt.txt``,
``requirements.txt``, then ``postBuild``) and run ``binder/start <jupyter command>``. Here: a new
``python3.11 -m venv`` gets ``pip install -r binder/requirements.txt``; ``postBuild`` runs with a
temporary HOME and the repository as the working directory; ``start`` then runs, instead of
JupyterLab, a command that executes the getting-started notebook and a template headless against
the catalogue stack it started. The apt packages come from the machine (``make up`` installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eolab.config import DEFAULT_CONFIG, load_config
from eolab.testing.stack import _free, _ports, free_port_offset, purge

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"

# What `start` runs instead of JupyterLab: both notebooks with papermill, then the environment it saw.
RUNNER = r'''
import json, os, sys
from pathlib import Path
import papermill

out = Path(sys.argv[1])
repo = Path.cwd()
names = ("EOLAB_CATALOG_URL", "EOLAB_TILES_URL", "PANEL_CDN_ROOT", "DASK_GATEWAY__ADDRESS")
seen = {k: os.environ.get(k) for k in names}
seen["python"] = sys.executable
(out / "env.json").write_text(json.dumps(seen))
papermill.execute_notebook(str(repo / "notebooks" / "01_catalogue_and_map.ipynb"), str(out / "01.executed.ipynb"),
                           cwd=str(out), progress_bar=False, kernel_name="python3")
template = repo / "workflows" / "water-monitoring"
params = {"datetime": "2026-05-01/2026-07-31", "period_a": ["2026-05-01", "2026-05-31"],
          "period_b": ["2026-07-01", "2026-07-31"], "out_dir": str(out / "water"), "save_daily_maps": False}
papermill.execute_notebook(str(template / "water-monitoring.ipynb"), str(out / "water.executed.ipynb"),
                           cwd=str(out), progress_bar=False, kernel_name="python3", parameters=params)
'''


def _env(home: Path, venv: Path, offset: int, data_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("PIP_", "LANG", "LC_", "TZ")) or k in ("TERM", "USER", "LOGNAME", "SSL_CERT_FILE")}
    # The registry configuration and cache of the machine (repo2docker has its own); everything else fresh.
    real_home = Path.home()
    if "PIP_CONFIG_FILE" not in env and (real_home / ".config" / "pip" / "pip.conf").exists():
        env["PIP_CONFIG_FILE"] = str(real_home / ".config" / "pip" / "pip.conf")
    env.setdefault("PIP_CACHE_DIR", str(real_home / ".cache" / "pip"))
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", VIRTUAL_ENV=str(venv),
               EOLAB_PORT_OFFSET=str(offset))
    if data_dir is not None:
        env["EOLAB_DATA_DIR"] = str(data_dir)
    return env


def _reusable_demo() -> Path | None:
    """EOLAB_TEST_DEMO_DIR, if it holds a complete small demo (postBuild then skips generating it)."""
    env = os.environ.get("EOLAB_TEST_DEMO_DIR")
    if not env or not (Path(env) / "manifest.json").exists():
        return None
    m = json.loads((Path(env) / "manifest.json").read_text())
    return Path(env) if m.get("size") == "small" and m.get("seed") == 20260301 else None


def _run(cmd, env, timeout, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, f"{cmd[0]} failed ({done.returncode}):\n" + log.read_text()[-4000:]
    return seconds


@pytest.mark.timeout(1800)
def test_binder_build_start_and_notebooks(tmp_path):
    python = shutil.which("python3.11")
    if python is None:
        pytest.skip("python3.11 (binder/runtime.txt) is not installed")
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    home, venv, out = tmp_path / "home", tmp_path / "venv", tmp_path / "out"
    home.mkdir()
    out.mkdir()
    offset = free_port_offset()
    demo = _reusable_demo()
    env = _env(home, venv, offset, demo)
    times = {}
    try:
        times["venv + pip install -r binder/requirements.txt"] = _run(
            [python, "-m", "venv", str(venv)], env, 120, tmp_path / "venv.log") + _run(
            [str(venv / "bin" / "pip"), "install", "-r", str(BINDER / "requirements.txt")], env, 1500,
            tmp_path / "pip.log")
        times["postBuild"] = _run([str(BINDER / "postBuild")], env, 900, tmp_path / "postBuild.log")
        data_dir = demo or home / ".eolab" / "demo-data"
        assert (data_dir / "manifest.json").exists()
        runner = tmp_path / "runner.py"
        runner.write_text(RUNNER)
        times["start + notebooks"] = _run([str(BINDER / "start"), str(venv / "bin" / "python"), str(runner), str(out)],
                                          env, 900, tmp_path / "start.log")
    finally:
        if (venv / "bin" / "eolab").exists():
            # The same directories `start` exported (its run directory is $HOME/.eolab).
            down_env = {**env, "EOLAB_RUN_DIR": str(home / ".eolab"),
                        "EOLAB_DATA_DIR": str(demo or home / ".eolab" / "demo-data")}
            with (tmp_path / "down.log").open("w") as f:
                subprocess.run([str(venv / "bin" / "eolab"), "catalog", "down", "-q"], cwd=REPO, env=down_env,
                               timeout=120, stdout=f, stderr=subprocess.STDOUT)
        config = load_config(DEFAULT_CONFIG, run_dir=str(home / ".eolab"),
                             data_dir=str(demo or home / ".eolab" / "demo-data"), port_offset=offset)
        purge(config)
        # The venv and HOME (with the PostgreSQL cluster) are large; the logs and outputs stay.
        for path in (venv, home):
            shutil.rmtree(path, ignore_errors=True)
    print("binder simulation times (s):", {k: round(v) for k, v in times.items()}, file=sys.stderr)

    # Nothing left running: every port of the stack is free again.
    assert all(_free(p) for p in _ports(config)), (tmp_path / "down.log").read_text()

    # `start` exported the stack's URLs (moved by the offset) and no gateway: LocalCluster.
    seen = json.loads((out / "env.json").read_text())
    assert seen["EOLAB_CATALOG_URL"] == config.broker_url
    assert seen["EOLAB_TILES_URL"] == config.tiles_url
    assert seen["PANEL_CDN_ROOT"] == config.tiles_url + "/static/panel/"
    assert seen["DASK_GATEWAY__ADDRESS"] is None
    assert seen["python"].startswith(str(venv))

    import nbformat

    for name in ("01.executed.ipynb", "water.executed.ipynb"):
        nb = nbformat.read(out / name, as_version=4)
        assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"], name
    nb = nbformat.read(out / "01.executed.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "providers missing from the answer: none" in text
    assert f"{config.tiles_url}/item/{{z}}/{{x}}/{{y}}.png?url=" in text

    import pandas as pd

    extent = pd.read_csv(out / "water" / "water_extent.csv", index_col=0)
    assert len(extent) >= 5 and extent["filled_ha"].max() > 0
    assert (out / "water" / "water_extent.csv.provenance.json").exists()
