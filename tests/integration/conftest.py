"""Integration tests: real servers on 127.0.0.1 (the stack fixture is in tests/conftest.py)."""

import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from eolab.testing.stack import free_port_offset, make_stack_config, purge  # noqa: F401  (used by tests)


@pytest.fixture(scope="module")
def shared_dir(request):
    """A directory the hub's system accounts can reach (pytest's tmp root is 0700): Slurm wrappers
    and the hub's files of the Slurm tests."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    path = Path(tempfile.mkdtemp(prefix=f"eolab-{name}-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm(shared_dir):
    """A real local Slurm cluster (slurmctld + slurmd, 8 CPUs) in ``shared_dir``."""
    from eolab.compute._slurm import LocalSlurm

    cluster = LocalSlurm(shared_dir / "slurm", cpus=8).start()
    yield cluster
    cluster.stop()
