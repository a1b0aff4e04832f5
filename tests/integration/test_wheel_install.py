"""The package as a user installs it: a wheel in a fresh venv outside the checkout runs the CLI.

The new venv gets eolab only from the wheel; its dependencies come from the project's venv through a
``.pth`` path (not a site dir, so the project's editable eolab is not on the path). Everything runs
from a temporary working directory, so nothing can be found through the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from eolab import ids
from eolab.testing.stack import free_port_offset, purge

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(work / "dist"), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((work / "dist").glob("eolab-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv


def _run(venv: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOLAB_") and k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / "eolab"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_installed_package_is_the_wheel(wheel_venv, tmp_path):
    where = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", "import eolab; print(eolab.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(wheel_venv)) and str(REPO) not in where.stdout


def test_help_and_templates_list_from_the_wheel(wheel_venv, tmp_path):
    helped = _run(wheel_venv, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "templates" in helped.stdout
    listed = _run(wheel_venv, "templates", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {line.split(":")[0] for line in listed.stdout.splitlines() if line and not line.startswith(" ")}
    assert names == {"water-monitoring", "crop-type-map", "cap-parcel-checks"}
    cloned = _run(wheel_venv, "templates", "clone", "water-monitoring", str(tmp_path / "mine"), cwd=tmp_path)
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "mine" / "params.yaml").exists() and (tmp_path / "mine" / "water-monitoring.ipynb").exists()


def test_catalog_up_from_the_wheel(wheel_venv, small_demo, tmp_path):
    from eolab.config import DEFAULT_CONFIG, load_config

    offset = free_port_offset()
    run_dir = tmp_path / "run"
    common = ["--run-dir", str(run_dir), "--data-dir", str(small_demo), "--port-offset", str(offset)]
    config = load_config(DEFAULT_CONFIG, run_dir=str(run_dir), data_dir=str(small_demo), port_offset=offset)
    try:
        up = _run(wheel_venv, "catalog", "up", "-q", *common, cwd=tmp_path)
        assert up.returncode == 0, up.stderr[-2000:]
        page = httpx.post(f"{config.broker_url}/search", json={"collections": ["sentinel-2-l2a"], "limit": 5},
                          timeout=60).json()
        assert len(page["features"]) == 5 and page.get("federation:missing", []) == []
        assert {ids.provider(f["collection"]) for f in page["features"]} <= {"pannonia", "danube"}
    finally:
        down = _run(wheel_venv, "catalog", "down", *common, cwd=tmp_path)
        purge(config)
    assert down.returncode == 0, down.stderr[-2000:]
