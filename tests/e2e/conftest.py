"""Browser tests (marker `e2e`): the catalogue stack fixture comes from tests/conftest.py; the
JupyterLab, tile service and chromium fixtures of every browser test from tests/e2e/_lab.py."""

from tests.e2e._lab import (  # noqa: F401  (fixtures)
    artifacts,
    browser_context_args,
    browser_type_launch_args,
    e2e_tiles,
    jupyter_lab,
    local_only,
)
