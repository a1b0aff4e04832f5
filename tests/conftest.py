"""Shared pytest fixtures."""

import contextlib
import fcntl
import os
from pathlib import Path

import pytest

# `make test` runs the suite in two processes (pytest-xdist). Each test module is one unit of work;
# the modules that create system users or start Slurm share one unit, so they run one after another
# in one worker (useradd locks /etc/passwd; Slurm daemons are machine-wide).
SERIAL_GROUP = "system-users-and-slurm"
SERIAL_MODULES = {f"tests/integration/test_{name}.py" for name in (
    "hub_demo", "hub_multiuser", "hub_oidc", "hub_usage", "make_up", "security_local_account", "slurm_gateway",
    "slurm_hub")}
# The longest units first, so that the short ones fill the end of the run (measured in `make test`'s
# --durations; the unit tests are many short modules and come last).
FIRST = [f"tests/integration/test_{name}.py" for name in (
    "lookalike_members", "binder", "workflows_crops_cap", "real_data_water_landuse", "workflows_water",
    "broker_validator", "notebooks_training")]


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = _module(item.nodeid)
        if name in SERIAL_MODULES:
            return 0
        if name in FIRST:
            return 1 + FIRST.index(name)
        return len(FIRST) + (2 if name.startswith("tests/unit/") else 1)

    items.sort(key=rank)  # stable: the order within a module is kept


def pytest_xdist_make_scheduler(config, log):
    """Units of work by module, the serial group as one unit, in collection order (see above).

    (Written here rather than with xdist_group marks: pytest-xdist 3.8's loadgroup renames nodes
    through ``_nodeid``, which pytest 9.2's nodes no longer read, so the groups were silently lost.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return SERIAL_GROUP if module in SERIAL_MODULES else module

    return ModuleScheduling(config, log)


@contextlib.contextmanager
def _exclusive(path: Path):
    """One process at a time (the workers of a parallel run share the demo data)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory, worker_id) -> Path:
    """The `small` demo data set (default seed), generated once per run (shared by parallel workers).

    Set EOLAB_TEST_DEMO_DIR to reuse a directory across runs: it is generated there unless it
    already holds a complete small data set (manifest.json is written last).
    """
    import json

    from eolab.demo import generate

    env = os.environ.get("EOLAB_TEST_DEMO_DIR")
    if env:
        out = Path(env)
    elif worker_id != "master":  # the run's common temporary root, beside each worker's own
        out = tmp_path_factory.getbasetemp().parent / "demo-small"
    else:
        out = tmp_path_factory.mktemp("demo-small")
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out.parent / f".{out.name}.lock"):
        manifest = out / "manifest.json"
        if manifest.exists():
            m = json.loads(manifest.read_text())
            # (a data set from before the Landsat look-alike lacks its collection: made anew)
            if m.get("size") == "small" and m.get("seed") == 20260301 and "landsat-c2-l2" in m.get("collections", {}):
                return out
        generate(out, "small", progress=False)
    return out


@pytest.fixture(scope="session")
def catalog_stack(small_demo, tmp_path_factory):
    """The catalogue stack (PostgreSQL/pgstac members, asset server, broker) serving the small demo data."""
    from eolab.testing.stack import make_stack_config, running_stack

    with running_stack(make_stack_config(tmp_path_factory.mktemp("stack-run"), small_demo)) as config:
        yield config


